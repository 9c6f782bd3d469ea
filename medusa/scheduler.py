"""The queue of files and its order: policy only, no sockets, no processes.

The master asks `next_file()` when a runner is free, tells `finished()` when a file is done
and `give_back()` when a file's runner went away without finishing it.
"""
from __future__ import annotations

from collections import deque


class Scheduler:
    def __init__(self, files: list[str]) -> None:
        self.files = tuple(files)
        self._queue: deque[str] = deque(files)
        self._in_flight: set[str] = set()

    def next_file(self) -> str | None:
        if not self._queue:
            return None
        file = self._queue.popleft()
        self._in_flight.add(file)
        return file

    def finished(self, file: str) -> None:
        self._in_flight.discard(file)

    def drop_queued(self) -> list[str]:
        """Empty the queue (build ending early); returns what was still waiting."""
        dropped = list(self._queue)
        self._queue.clear()
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def done(self) -> bool:
        return not self._queue and not self._in_flight
