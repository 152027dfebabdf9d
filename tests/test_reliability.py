"""Findings of the hostile test run (issue 12) fixed in the engine and SQLite store."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from backorder import (
    BackorderBook,
    InvalidArgument,
    LineStatus,
    Order,
    OrderLine,
    PolicyError,
    UnknownOrder,
)
from backorder.testing import snapshot
from tests.helpers import TickingClock


def test_a_lead_time_whose_dates_cannot_be_computed_is_refused() -> None:
    book = BackorderBook(clock=TickingClock())
    before = snapshot(book)
    with pytest.raises(InvalidArgument, match="lead_time"):
        book.set_lead_time("LAMP", timedelta(days=3_000_000))
    assert snapshot(book) == before
    book.set_lead_time("LAMP", timedelta(days=36_600))  # the bound itself works
    book.place(Order("A-1", [OrderLine("LAMP", 1)]))
    assert book.promise("LAMP", 1) is not None


def test_a_hold_for_ever_is_refused() -> None:
    book = BackorderBook(clock=TickingClock())
    book.receive("MUG", 2)
    with pytest.raises(InvalidArgument, match="ttl"):
        book.hold("MUG", 1, timedelta.max)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 1e9])
def test_an_open_timeout_that_is_not_a_finite_number_is_refused(
    tmp_path: Path, timeout: float
) -> None:
    with pytest.raises(InvalidArgument, match="timeout"):
        BackorderBook.open(tmp_path / "book.db", timeout=timeout)
    assert not (tmp_path / "book.db").exists()


def test_containment_of_a_value_that_is_no_id_is_false() -> None:
    book = BackorderBook()
    assert [] not in book
    assert {} not in book


class _Liar(int):
    """An int whose arithmetic lies: it claims to be 100 in every sum."""

    def __radd__(self, other: object) -> int:
        return 100

    def __add__(self, other: object) -> int:
        return 100

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True


class _LyingPolicy:
    def rank(self, order: Order) -> int:
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        return _Liar(100)


def test_a_policy_returning_a_lying_int_cannot_oversell() -> None:
    book = BackorderBook(_LyingPolicy(), clock=TickingClock())
    book.receive("MUG", 1)
    before = snapshot(book)
    with pytest.raises(PolicyError, match="allot returned 100"):
        book.place(Order("A-1", [OrderLine("MUG", 100)]))
    assert snapshot(book) == before
    assert book.stock("MUG").allocated == 0


class _HugeRank:
    def rank(self, order: Order) -> int:
        return 2**63

    def allot(self, line: LineStatus, available: int) -> int:
        return min(line.backordered, available)


def test_a_rank_that_cannot_be_stored_is_a_policy_error(tmp_path: Path) -> None:
    with BackorderBook.open(tmp_path / "book.db", _HugeRank()) as book:
        with pytest.raises(PolicyError, match="rank"):
            book.place(Order("A-1", [OrderLine("MUG", 1)]))
        assert "A-1" not in book


def test_opening_and_reading_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path) as book:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in a long batch
    try:
        with BackorderBook.open(path, timeout=0.2) as reader:
            assert reader.line("A-1", "MUG").backordered == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_durations_are_elapsed_time_across_a_clock_change() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    # 02:50 in the repeated hour (first pass) of the autumn change
    at = datetime(2026, 10, 25, 2, 50, tzinfo=berlin)
    book = BackorderBook(clock=lambda: at)
    book.receive("MUG", 1)
    held = book.hold("MUG", 1, timedelta(minutes=15))
    assert (held.expires_at.astimezone(ZoneInfo("UTC")) - at.astimezone(ZoneInfo("UTC"))) == (
        timedelta(minutes=15)
    )
    spring = datetime(2026, 3, 28, 12, 0, tzinfo=berlin)
    book = BackorderBook(clock=lambda: spring)
    book.set_lead_time("LAMP", timedelta(days=1))
    book.place(Order("A-1", [OrderLine("LAMP", 1)]))
    eta = book.eta("A-1", "LAMP")
    assert eta is not None
    assert eta.at is not None
    utc = ZoneInfo("UTC")
    assert eta.at.astimezone(utc) - spring.astimezone(utc) == timedelta(hours=24)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_marking_an_id_no_outbox_can_hold_is_harmless(kind: str, tmp_path: Path) -> None:
    from backorder import InMemoryRepository

    book = (
        BackorderBook(repository=InMemoryRepository(outbox=True))
        if kind == "memory"
        else BackorderBook.open(tmp_path / "book.db")
    )
    book.place(Order("A-1", [OrderLine("MUG", 1)]))
    assert book.mark_published([2**63, -1, 0, 2**70]) == 0
    assert len(book.pending_events()) == 2
    book.close()


def test_a_huge_id_gives_a_short_message() -> None:
    book = BackorderBook()
    with pytest.raises(UnknownOrder, match=r"chars\)") as caught:
        book.cancel("x" * 1_000_000)
    assert len(str(caught.value)) < 300
