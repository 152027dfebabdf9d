"""Outbox claims for several senders (issue 14): leases disjoint across
threads and processes, expired leases claimed again, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backorder import (
    ArgumentTypeError,
    BackorderBook,
    InMemoryRepository,
    InvalidArgument,
    InvalidQuantity,
    Order,
    OrderLine,
    QuantityTypeError,
)
from backorder.storage import ClaimingRepository, SQLiteRepository
from backorder.testing import DictRepository

from .helpers import START


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


Opener = Callable[[Path, Clock], BackorderBook]

OPENERS: dict[str, Opener] = {
    "memory": lambda _, clock: BackorderBook(
        repository=InMemoryRepository(outbox=True), clock=clock
    ),
    "sqlite": lambda path, clock: BackorderBook.open(path / "book.db", clock=clock),
    "dict": lambda _, clock: BackorderBook(repository=DictRepository(), clock=clock),
}


def _fill(book: BackorderBook, orders: int) -> int:
    with book.batch():
        for n in range(orders):
            book.place(Order(f"O-{n}", [OrderLine("MUG", 1)]))
    return len(book.pending_events())


@pytest.mark.parametrize("store", list(OPENERS))
def test_claims_are_disjoint_while_leased_and_return_after(store: str, tmp_path: Path) -> None:
    clock = Clock()
    book = OPENERS[store](tmp_path, clock)
    total = _fill(book, 10)  # OrderPlaced + LineBackordered each
    assert total == 20
    first = book.claim_events(limit=7, lease=timedelta(seconds=30))
    second = book.claim_events(limit=100, lease=timedelta(seconds=60))
    assert [e.id for e in first] == sorted(e.id for e in first)  # oldest first
    assert len(first) == 7
    assert len(second) == 13
    assert not {e.id for e in first} & {e.id for e in second}
    assert book.claim_events() == ()  # everything is leased
    assert len(book.pending_events()) == 20  # a look ignores leases
    assert book.mark_published(first[:3]) == 3
    clock.now += timedelta(seconds=31)  # the first lease ran out, not the second
    again = book.claim_events()
    assert [e.id for e in again] == [e.id for e in first[3:]]
    assert [e.event for e in again] == [e.event for e in first[3:]]
    clock.now += timedelta(seconds=30)  # now the second too, not the re-claim's
    assert [e.id for e in book.claim_events()] == [e.id for e in second]
    clock.now += timedelta(seconds=31)  # and now the re-claim's
    assert [e.id for e in book.claim_events()] == [e.id for e in first[3:]]
    assert book.mark_published([e.id for e in (*first, *second)]) == 17
    assert book.claim_events() == ()
    assert book.pending_events() == ()
    book.close()


def test_every_built_in_repository_claims(tmp_path: Path) -> None:
    repository = SQLiteRepository(tmp_path / "x.db")
    assert isinstance(repository, ClaimingRepository)
    assert isinstance(DictRepository(), ClaimingRepository)
    repository.close()


def test_a_memory_book_without_an_outbox_claims_nothing() -> None:
    book = BackorderBook()
    book.place(Order("O-1", [OrderLine("MUG", 1)]))
    assert book.claim_events() == ()


def test_bad_claim_arguments_are_refused() -> None:
    book = BackorderBook(repository=InMemoryRepository(outbox=True))
    book.place(Order("O-1", [OrderLine("MUG", 1)]))
    for limit, error in ((0, InvalidQuantity), (True, QuantityTypeError), (1.5, QuantityTypeError)):
        with pytest.raises(error, match="limit"):
            book.claim_events(limit=limit)  # type: ignore[arg-type]
    for lease, lease_error in (
        (60, ArgumentTypeError),
        (timedelta(0), InvalidArgument),
        (timedelta(seconds=-1), InvalidArgument),
        (timedelta(days=40_000), InvalidArgument),
    ):
        with pytest.raises(lease_error, match="lease"):
            book.claim_events(lease=lease)  # type: ignore[arg-type]
    assert len(book.claim_events()) == 2  # nothing was leased by the refused calls


class _Plain(DictRepository):
    # a third-party repository without claim_events
    claim_events = None  # type: ignore[assignment]


def test_a_repository_without_claims_gets_leases_kept_by_the_book() -> None:
    clock = Clock()
    repository = _Plain()
    book = BackorderBook(repository=repository, clock=clock)
    book.place(Order("O-1", [OrderLine("MUG", 1)]))
    first = book.claim_events(limit=1)
    assert len(first) == 1
    assert len(book.claim_events()) == 1
    assert book.claim_events() == ()
    clock.now += timedelta(minutes=2)
    assert len(book.claim_events()) == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_eight_threads_claim_each_event_once(store: str, tmp_path: Path) -> None:
    book = OPENERS[store](tmp_path, Clock())
    total = _fill(book, 150)
    got: list[list[int]] = [[] for _ in range(8)]

    def send(number: int) -> None:
        while batch := book.claim_events(limit=7):
            got[number].extend(e.id for e in batch)
            book.mark_published(batch)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(i for ids in got for i in ids)
    assert len(counts) == total
    assert set(counts.values()) == {1}
    assert book.pending_events() == ()
    book.close()


_SENDER = r"""
import sys, time
from datetime import timedelta
from backorder import BackorderBook
path, lease, die = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "die"
with BackorderBook.open(path) as book:
    while True:
        batch = book.claim_events(limit=5, lease=timedelta(seconds=lease))
        if not batch:
            if not book.pending_events():
                break
            time.sleep(0.05)  # another sender holds the rest
            continue
        for event in batch:
            print(event.id, time.time(), flush=True)
        if die:
            time.sleep(60)  # claimed, never published: killed here
        time.sleep(0.002)  # sending
        book.mark_published(batch)
"""


def _sender(path: Path, lease: float, die: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SENDER, str(path), str(lease), "die" if die else "live"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_four_sender_processes_deliver_every_event_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path) as book:
        total = _fill(book, 150)
        ids = {e.id for e in book.pending_events()}
    senders = [_sender(path, lease=120) for _ in range(4)]
    delivered: list[int] = []
    for sender in senders:
        out, _ = sender.communicate(timeout=120)
        assert sender.returncode == 0
        delivered.extend(int(line.split()[0]) for line in out.splitlines())
    assert len(delivered) == total
    assert Counter(delivered) == Counter(ids)  # each exactly once
    with BackorderBook.open(path) as book:
        assert book.pending_events() == ()


def test_a_killed_senders_events_are_delivered_by_another_after_its_lease(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path) as book:
        _fill(book, 20)
        ids = [e.id for e in book.pending_events()]
    doomed = _sender(path, lease=1.5, die=True)
    assert doomed.stdout is not None
    lost = [doomed.stdout.readline() for _ in range(5)]  # it claimed five
    claimed_at = float(lost[-1].split()[1])
    doomed.kill()
    doomed.communicate()
    lost_ids = [int(line.split()[0]) for line in lost]
    assert lost_ids == ids[:5]
    heir = _sender(path, lease=60)
    out, _ = heir.communicate(timeout=60)
    assert heir.returncode == 0
    rows = [line.split() for line in out.splitlines()]
    delivered = {int(i): float(at) for i, at in rows}
    assert sorted(delivered) == ids  # the lost five too, and nothing twice
    assert len(rows) == len(ids)
    for event_id in lost_ids:  # ... but only once their lease had run out
        assert delivered[event_id] >= claimed_at + 1.2  # (claimed just before)
