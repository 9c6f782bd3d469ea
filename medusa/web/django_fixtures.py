"""The fixture that replaces pytest-django's django_db_setup in a medusa runner (see
django_plugin.py)."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None) -> Iterator[None]:
    """The runner's test databases exist already: medusa.web.django copied the template
    for this runner and pointed Django's connections at the copies (setup_runner), and
    drops them when the runner has ended (teardown_runner). Nothing to create, nothing
    to destroy."""
    yield
