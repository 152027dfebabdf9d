"""One book shared by the threads of a process (issue 14): calls from any
thread run one at a time; subscribers that call the book; a fork."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from backorder import (
    BackorderBook,
    BackorderError,
    Event,
    InMemoryRepository,
    Order,
    OrderLine,
    OrderPlaced,
    event_to_dict,
)
from backorder.testing import DictRepository, snapshot

from .helpers import START
from .pg import DSN, schema, schemas

__all__ = ["schema", "schemas"]  # the fixtures

THREADS = 8
SKUS = ("MUG", "CUP", "LAMP")


def _key(event: Event) -> str:
    return json.dumps(event_to_dict(event), sort_keys=True)


def _worker(book: BackorderBook, number: int, steps: int, told: list[Event]) -> list[str]:
    # Random operations on shared SKUs; returns the ids of orders acknowledged.
    rng = random.Random(number)
    placed: list[str] = []
    for step in range(steps):
        sku = rng.choice(SKUS)
        choice = rng.random()
        try:
            if choice < 0.4 or not placed:
                order_id = f"T{number}-{step}"
                lines = [OrderLine(sku, rng.randint(1, 4))]
                other = rng.choice(SKUS)
                if other != sku and rng.random() < 0.3:
                    lines.append(OrderLine(other, rng.randint(1, 3)))
                result = book.place(Order(order_id, lines))
                told.extend(result.events)
                placed.append(order_id)
            elif choice < 0.6:
                # a reference shared by every thread: counted once in all
                reference = f"GRN-{step % 5}" if rng.random() < 0.3 else f"R{number}-{step}"
                told.extend(book.receive(sku, rng.randint(1, 6), reference=reference).events)
            elif choice < 0.7:
                told.extend(book.cancel(rng.choice(placed)).events)
            elif choice < 0.8:
                told.extend(book.ship(rng.choice(placed)).events)
            elif choice < 0.85:
                told.extend(book.adjust(sku, rng.choice((-1, 1, 2)), "count").events)
            else:
                order_id = rng.choice(placed)
                status = book.status(order_id)
                line = status.lines[0]
                book.position(order_id, line.sku)
                book.eta(order_id, line.sku)
                book.stock(line.sku)
        except BackorderError:
            pass  # not ready to ship, nothing left to cancel, too few on hand: expected
    return placed


def _hammer(book: BackorderBook, steps: int) -> None:
    told: list[list[Event]] = [[] for _ in range(THREADS)]
    placed: list[list[str]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(number: int) -> None:
        try:
            start.wait()
            placed[number] = _worker(book, number, steps, told[number])
        except BaseException as exc:  # a failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    book.inspect().check()  # every internal invariant
    book.ledger.verify()  # raises LedgerCorrupted when a balance disagrees
    for ids in placed:
        assert all(order_id in book for order_id in ids)
    assert len(book) == sum(len(ids) for ids in placed)
    outbox = [pending.event for pending in book.pending_events()]
    # the outbox is exactly what the threads were told, each thread's in its order
    assert Counter(map(_key, outbox)) == Counter(_key(e) for events in told for e in events)
    keys = [_key(event) for event in outbox]
    for events in told:  # each thread's events are in the outbox in its order
        at = 0
        for event in events:
            at = keys.index(_key(event), at) + 1
    for sku in SKUS:
        level = book.stock(sku)
        assert 0 <= level.allocated <= level.on_hand
        assert level.allocated == sum(
            book.line(order_id, sku).allocated
            for order_id in book.order_ids()
            if any(line.sku == sku for line in book.status(order_id).lines)
        )


def test_eight_threads_on_one_memory_book() -> None:
    book = BackorderBook(repository=InMemoryRepository(outbox=True))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible (without the
    try:  # lock this fails every round)
        _hammer(book, steps=250)
    finally:
        sys.setswitchinterval(interval)


def test_eight_threads_on_one_sqlite_book(tmp_path: Path) -> None:
    with BackorderBook.open(tmp_path / "book.db") as book:
        _hammer(book, steps=30)
    with BackorderBook.open(tmp_path / "book.db") as again:  # and it reopens as it was
        again.inspect().check()
        again.ledger.verify()


def test_eight_threads_on_one_postgres_book(schema: str) -> None:
    from backorder.storage.postgres import PostgresRepository

    with BackorderBook(None, PostgresRepository(DSN, schema=schema)) as book:
        _hammer(book, steps=20)
        before = snapshot(book)
    with BackorderBook(None, PostgresRepository(DSN, schema=schema)) as again:
        assert snapshot(again) == before  # and it reopens as it was
        again.inspect().check()
        again.ledger.verify()


def test_eight_threads_on_one_dict_repository_book() -> None:
    _hammer(BackorderBook(repository=DictRepository()), steps=60)


Opener = Callable[[Path], BackorderBook]

OPENERS: dict[str, Opener] = {
    "memory": lambda _: BackorderBook(clock=lambda: START),
    "sqlite": lambda path: BackorderBook.open(path / "book.db", clock=lambda: START),
    "dict": lambda _: BackorderBook(repository=DictRepository(), clock=lambda: START),
}


@pytest.mark.parametrize("store", list(OPENERS))
def test_a_subscriber_that_calls_the_book_runs_after_the_operation(
    store: str, tmp_path: Path
) -> None:
    book = OPENERS[store](tmp_path)
    heard: list[str] = []

    def follow_up(event: Event) -> None:
        heard.append(type(event).__name__ + ":" + getattr(event, "order_id", ""))
        if isinstance(event, OrderPlaced) and event.order_id.startswith("A-"):
            # runs after the placement that caused it has committed
            assert event.order_id in book
            book.place(Order("F" + event.order_id[1:], [OrderLine("MUG", 1)]))
            book.receive("MUG", 1, reference="for-" + event.order_id)

    book.subscribe(follow_up)
    result = book.place(Order("A-1", [OrderLine("MUG", 2)]))
    assert result.lines[0].backordered == 2  # the result is of the operation alone
    assert book.status("F-1").lines[0].allocated == 0
    assert book.line("A-1", "MUG").allocated == 1  # the follow-up's receipt served A-1
    # every event of the placement reached the handler before any of the follow-up's
    assert heard[:2] == ["OrderPlaced:A-1", "LineBackordered:A-1"]
    assert heard[2] == "OrderPlaced:F-1"
    book.inspect().check()
    state = snapshot(book)
    book.close()
    # and the same book results on every repository
    reference = BackorderBook(clock=lambda: START)
    reference.place(Order("A-1", [OrderLine("MUG", 2)]))
    reference.place(Order("F-1", [OrderLine("MUG", 1)]))
    reference.receive("MUG", 1, reference="for-A-1")
    assert state == snapshot(reference)


def test_a_sqlite_book_works_from_threads_other_than_its_own(tmp_path: Path) -> None:
    with BackorderBook.open(tmp_path / "book.db") as book:
        done: list[int] = []

        def elsewhere() -> None:
            book.place(Order("O-1", [OrderLine("MUG", 1)]))
            done.append(book.stock("MUG").on_hand)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert done == [0]
        assert "O-1" in book


_FORK = r"""
import os, sys
from backorder import BackorderBook, Order, OrderLine, StorageError
book = BackorderBook.open(sys.argv[1])
book.place(Order("P-1", [OrderLine("MUG", 1)]))
pid = os.fork()
if pid == 0:
    try:
        book.place(Order("C-1", [OrderLine("MUG", 1)]))
    except StorageError as exc:
        code = 3 if "after a fork" in str(exc) and "open the book" in str(exc) else 4
    else:
        code = 5
    book.close()  # harmless: the parent's connection is left alone
    with BackorderBook.open(sys.argv[1]) as mine:  # opened after the fork: works
        mine.place(Order("C-2", [OrderLine("MUG", 1)]))
    os._exit(code)
_, status = os.waitpid(pid, 0)
book.place(Order("P-2", [OrderLine("MUG", 1)]))  # the parent's book is unharmed
print(os.waitstatus_to_exitcode(status), sorted(book.order_ids()))
book.close()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_sqlite_book_refuses_clearly_to_cross_a_fork(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORK, str(tmp_path / "book.db")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=60,
    )
    assert done.stdout.split(maxsplit=1) == ["3", "['C-2', 'P-1', 'P-2']\n"]
