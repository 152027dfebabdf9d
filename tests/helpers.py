"""Helpers shared by the tests: a deterministic clock (and `backorder.testing.snapshot`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backorder.testing import snapshot

__all__ = ["START", "TickingClock", "snapshot"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class TickingClock:
    """A clock that moves one second every time it is read."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
