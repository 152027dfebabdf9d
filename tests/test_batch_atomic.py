"""`batch(atomic=True)`: a block left by an exception is abandoned whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backorder import ArgumentTypeError, BackorderBook, InMemoryRepository, Order, OrderLine
from backorder.testing import DictRepository, snapshot
from tests.helpers import START, TickingClock

Opener = Callable[[Path], BackorderBook]

OPENERS: dict[str, Opener] = {
    "memory": lambda path: BackorderBook(clock=TickingClock()),
    "sqlite": lambda path: BackorderBook.open(path / "book.db", clock=TickingClock()),
    "dict": lambda path: BackorderBook(repository=DictRepository(), clock=TickingClock()),
    "memory-outbox": lambda path: BackorderBook(
        repository=InMemoryRepository(outbox=True), clock=TickingClock()
    ),
}


@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_an_atomic_batch_left_by_an_error_changes_nothing(kind: str, tmp_path: Path) -> None:
    book = OPENERS[kind](tmp_path)
    book.receive("MUG", 2, reference="GRN-0")
    book.place(Order("A-0", [OrderLine("MUG", 3)]))
    heard: list[object] = []
    book.subscribe(heard.append)
    before, outbox = snapshot(book), book.pending_events()

    def stopped_import() -> None:
        with book.batch(atomic=True):
            book.place(Order("A-1", [OrderLine("MUG", 1)]))
            book.receive("MUG", 5, reference="GRN-1")  # serves
            book.cancel("A-0")
            assert book.stock("MUG").on_hand == 7  # inside the block the work is seen
            raise RuntimeError("the import stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        stopped_import()
    assert heard == []  # nothing of the block is told
    assert snapshot(book) == before
    assert book.pending_events() == outbox  # nor kept to be sent
    book.inspect().check()
    book.ledger.verify()
    # and the book goes on working: the same receipt reference counts once, later
    assert book.receive("MUG", 5, reference="GRN-1").replayed is False
    assert book.line("A-0", "MUG").allocated == 3
    book.close()


def test_an_atomic_batch_abandoned_on_sqlite_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path, clock=TickingClock()) as book:
        book.place(Order("A-0", [OrderLine("MUG", 1)]))
        before = snapshot(book)

        def long_import() -> None:
            with book.batch(atomic=True):
                for i in range(3_000):  # more than one staged flush
                    book.place(Order(f"B-{i}", [OrderLine("MUG", 1)]))
                raise ValueError("bad line 3001")

        with pytest.raises(ValueError, match="bad line"):
            long_import()
        assert snapshot(book) == before
    with BackorderBook.open(path, clock=TickingClock()) as again:
        assert snapshot(again) == before
        assert len(again.pending_events()) == 2  # OrderPlaced, LineBackordered of A-0


def test_a_plain_batch_still_keeps_what_returned(tmp_path: Path) -> None:
    book = BackorderBook(clock=TickingClock())

    def stopped() -> None:
        with book.batch():
            book.place(Order("A-1", [OrderLine("MUG", 1)]))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        stopped()
    assert "A-1" in book


def test_atomic_must_be_a_bool() -> None:
    book = BackorderBook()
    with pytest.raises(ArgumentTypeError, match="atomic"), book.batch(atomic=1):  # type: ignore[arg-type]
        pass


def test_a_batch_on_sqlite_hands_over_each_row_once_per_write(tmp_path: Path) -> None:
    # SQLite's `write` only folds rows: a batch gathers what its operations
    # touched and builds the rows once per 500 operations, each as it is
    # after the last (a SKU's row once, not once per place). Reads inside
    # the batch that need its rows (a whole-book read, the outbox) see them.
    from backorder import SQLiteRepository
    from backorder.storage.rows import Changes

    class Counting(SQLiteRepository):
        __slots__ = ("sku_rows", "writes")

        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.writes = self.sku_rows = 0

        def write(self, changes: Changes) -> None:
            self.writes += 1
            self.sku_rows += len(changes.skus)
            super().write(changes)

    path = tmp_path / "book.db"
    repository = Counting(path)
    book = BackorderBook(repository=repository, clock=TickingClock())
    with book.batch():
        for n in range(1_200):
            book.place(Order(f"A-{n}", [OrderLine("MUG" if n % 2 else "CUP", 1)]))
        book.receive("MUG", 3, reference="GRN-1")
        assert len(book) == 1_200  # a whole-book read in the batch: its rows first
        # each place: placed, backordered; the receipt: received, 3 lines allocated
        assert len(book.pending_events()) == 1_200 * 2 + 1 + 3
    assert repository.writes == 3  # 500 operations, the read, the rest
    assert repository.sku_rows == 2 * 3
    assert book.position("A-1", "MUG") is None  # served by the receipt
    assert book.position("A-7", "MUG") == 1
    book.inspect().check()
    kept = snapshot(book)
    book.close()
    again = BackorderBook(repository=SQLiteRepository(path), clock=TickingClock())
    assert snapshot(again) == kept
    again.close()


@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_holds_undone_by_an_abandoned_batch_keep_their_order(kind: str, tmp_path: Path) -> None:
    from datetime import timedelta

    book = OPENERS[kind](tmp_path)
    book.receive("TEE", 2)
    first = book.hold("TEE", 1, timedelta(seconds=5)).hold_id
    second = book.hold("TEE", 1, timedelta(hours=1)).hold_id
    before = snapshot(book)

    def expiring() -> None:
        with book.batch(atomic=True):
            assert book.expire(now=START + timedelta(minutes=1)).released_holds == (first,)
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        expiring()
    assert snapshot(book) == before
    assert before["sku_holds"] == {"TEE": [first, second]}
    book.inspect().check()
    book.close()
