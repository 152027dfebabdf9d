"""Helpers shared by the tests: a deterministic clock (and `backorder.testing.snapshot`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from backorder import BackorderBook, Order, OrderLine, PriorityTiers
from backorder.testing import snapshot

__all__ = ["START", "TickingClock", "small_book", "snapshot"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class TickingClock:
    """A clock that moves one second every time it is read."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def small_book(reference: str = "PO-1") -> BackorderBook:
    """Two orders in two tiers on MUG and CUP, a receipt, and a scheduled receipt."""
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.place(Order("A-1", [OrderLine("MUG", 2), OrderLine("CUP", 1)]))
    book.place(Order("V-1", [OrderLine("MUG", 1)], tier="vip"))
    book.receive("MUG", 2, reference="GRN-1")
    book.expect("MUG", 5, date(2026, 3, 1), reference)
    return book
