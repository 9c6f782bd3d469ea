"""Keep the worker's objects shared with its forked runners, and visible to gc's introspection.

The worker freezes what it has made (the framework, the project's modules) before it forks:
a garbage collection walking those objects in a runner would write into every object's header
and so copy every page of the worker's heap into every runner. But `gc.freeze()` also hides
the frozen objects from `gc.get_referrers()` and `gc.get_objects()`, so code that asks "does
anything still refer to this?" gets a different answer than under pytest. Hypothesis does, in
`register_random` (trio's entry point calls it): it warns that the PRNG will be collected at
once, and under `-W error` that warning fails a test that passes under pytest.

So the two functions are wrapped to see the frozen objects again: `gc.unfreeze()` and
`gc.freeze()` only splice gc's lists (constant time, no object touched) and the search only
reads the objects, so the pages stay shared. The price: what the process made before such a
call is frozen with the rest, which only matters for reference cycles that become garbage
later, in code that calls these functions at all.
"""
from __future__ import annotations

import functools
import gc
from typing import Any, Callable


def freeze() -> None:
    """Freeze every object made so far, as `gc.freeze()`, keeping gc's searches whole."""
    gc.freeze()
    if not hasattr(gc.get_referrers, "__medusa_sees_frozen__"):
        gc.get_referrers = _seeing_frozen(gc.get_referrers)
        gc.get_objects = _seeing_frozen(gc.get_objects)


def _seeing_frozen(search: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(search)
    def whole_search(*args: Any, **kwargs: Any) -> Any:
        gc.unfreeze()
        try:
            return search(*args, **kwargs)
        finally:
            gc.freeze()
    whole_search.__medusa_sees_frozen__ = True   # type: ignore[attr-defined]
    return whole_search
