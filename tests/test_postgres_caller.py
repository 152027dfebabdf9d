"""A book inside the caller's transaction (`PostgresRepository(connection=...)`),
under attack: random operations, commits, rollbacks and savepoints of the
caller's, against in-memory twins of what committed and of what is pending.

The promise (DESIGN.md, PostgreSQL): the book never commits or rolls back;
its rows and outbox events commit or roll back with the caller's own; after
a rollback the book's next operation sees the database as it is; no outbox
ever holds an event of work that did not commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from backorder import (
    BackorderBook,
    BackorderError,
    InMemoryRepository,
    InvalidArgument,
    Order,
    OrderLine,
    PriorityTiers,
)
from backorder.events import Event
from backorder.testing import snapshot

from .pg import DSN, new_schema, schemas

__all__ = ["schemas"]  # the fixture

pytestmark = pytest.mark.property

SKUS = ("MUG", "CUP", "TEE")
TIERS = ("contract", "vip", "standard")
Call = Callable[[BackorderBook], Any]


class _Clock:
    """A clock the machine moves on; a replay sets it back to each step's time."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def _events(book: BackorderBook) -> list[Event]:
    return [pending.event for pending in book.pending_events()]


class _Savepoint(Exception):
    """Raised inside a savepoint of the caller's to roll it back."""


class CallerTransactionMachine(RuleBasedStateMachine):
    """Two books over the caller's connection, and the history of what they did.

    `committed` holds the operations of committed transactions and `pending`
    those of the open one, each with its time; a twin built by replaying
    them is what the database must hold, seen from inside the transaction
    (both) and from outside it (`committed` alone)."""

    def __init__(self, schema: str, lazy: bool) -> None:
        super().__init__()
        self.lazy = lazy
        import psycopg

        from backorder.storage.postgres import PostgresRepository

        self.schema = schema
        self.clock = _Clock()
        self.policy = PriorityTiers()
        # the store is made beforehand (making it inside the caller's
        # transaction would hold others until the caller commits)
        PostgresRepository(DSN, schema=schema).close()
        self.conn = psycopg.connect(DSN)
        self.book = self._inside()
        # a second long-lived book on the caller's connection: `switch` swaps them
        self.second = self._inside()
        self.committed: list[tuple[datetime, Call]] = []
        self.pending: list[tuple[datetime, Call]] = []
        self.twin = self._replay(self.committed)
        self.ids = iter(range(10**6))
        self.placed: list[str] = []

    def _inside(self) -> BackorderBook:
        from backorder.storage.postgres import PostgresRepository

        repository = PostgresRepository(schema=self.schema, connection=self.conn, lazy=self.lazy)
        return BackorderBook(self.policy, repository, self.clock)

    def _outside(self) -> BackorderBook:
        from backorder.storage.postgres import PostgresRepository

        repository = PostgresRepository(DSN, schema=self.schema, timeout=10)
        return BackorderBook(self.policy, repository, self.clock)

    def _replay(self, history: list[tuple[datetime, Call]]) -> BackorderBook:
        # an in-memory book that did these operations at their times
        now = self.clock.now
        twin = BackorderBook(self.policy, InMemoryRepository(outbox=True), self.clock)
        for at, call in history:
            self.clock.now = at
            call(twin)
        self.clock.now = now
        return twin

    def _do(self, call: Call) -> None:
        # the operation on the twin and on the book: the same result or the
        # same error; kept in the open transaction's history when it worked
        self.clock.now += timedelta(minutes=7)
        try:
            expected = call(self.twin)
        except BackorderError as exc:
            with pytest.raises(type(exc)):
                call(self.book)
            return
        assert call(self.book) == expected
        self.pending.append((self.clock.now, call))

    # -- operations ----------------------------------------------------------

    @rule(
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=2),
        tier=st.sampled_from(TIERS),
        again=st.booleans(),
    )
    def place(self, lines: list[tuple[str, int]], tier: str, again: bool) -> None:
        order_id = self.placed[-1] if again and self.placed else f"O-{next(self.ids)}"
        order = Order(order_id, [OrderLine(s, q) for s, q in dict(lines).items()], tier=tier)
        self._do(lambda book: book.place(order))
        self.placed.append(order_id)

    @rule(
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 5),
        ref=st.sampled_from([None, "GRN-1", "GRN-2"]),
    )
    def receive(self, sku: str, quantity: int, ref: str | None) -> None:
        self._do(lambda book: book.receive(sku, quantity, ref))

    @rule(sku=st.sampled_from(SKUS), delta=st.sampled_from([-2, -1, 1, 3]))
    def adjust(self, sku: str, delta: int) -> None:
        self._do(lambda book: book.adjust(sku, delta, "count"))

    @rule(data=st.data(), what=st.sampled_from(["cancel", "ship", "firm"]))
    def on_an_order(self, data: st.DataObject, what: str) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        sku = data.draw(st.none() | st.sampled_from(SKUS))
        self._do(lambda book: getattr(book, what)(order_id, sku))

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 3), ref=st.sampled_from(["PO-1"]))
    def expect(self, sku: str, quantity: int, ref: str) -> None:
        self._do(lambda book: book.expect(sku, quantity, self.clock.now + timedelta(days=3), ref))

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 2))
    def hold(self, sku: str, quantity: int) -> None:
        self._do(lambda book: book.hold(sku, quantity, timedelta(hours=1), "H-1"))

    @rule()
    def expire(self) -> None:
        self._do(lambda book: book.expire())

    # -- the caller's transaction ---------------------------------------------

    @rule()
    def commit(self) -> None:
        self.conn.commit()
        self.committed.extend(self.pending)
        self.pending.clear()
        self._outside_sees_what_committed()

    @rule()
    def rollback(self) -> None:
        self.conn.rollback()
        self.pending.clear()
        self.twin = self._replay(self.committed)
        self._outside_sees_what_committed()

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 5))
    def savepoint_rolled_back(self, sku: str, quantity: int) -> None:
        # a savepoint of the caller's around the book's work, rolled back:
        # that work goes, the rest of the transaction stays
        self.clock.now += timedelta(minutes=7)
        with pytest.raises(_Savepoint), self.conn.transaction():  # noqa: PT012
            self.book.receive(sku, quantity)
            raise _Savepoint

    @rule()
    def new_handle(self) -> None:
        # another book on the caller's connection, in the same transaction
        self.book.close()
        self.book = self._inside()

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        # a sender on the caller's connection: refused while the transaction
        # holds a book's work (its events may still be rolled back); else it
        # gets committed events only
        try:
            claimed = self.book.claim_events(limit=limit, lease=timedelta(minutes=1))
        except InvalidArgument:
            assert self.pending, "refused with no work of a book in the transaction"
            return
        committed = _events(self._replay(self.committed))
        assert all(outbox.event in committed for outbox in claimed)

    @rule()
    def switch(self) -> None:
        # the other book on the connection works next: it must see what this
        # one did in the transaction (and what a rollback took away)
        self.book, self.second = self.second, self.book

    def _outside_sees_what_committed(self) -> None:
        # (run with nothing pending: outside the transaction, what committed)
        with self._outside() as outside:
            wanted = self._replay(self.committed)
            assert snapshot(outside) == snapshot(wanted)
            assert _events(outside) == _events(wanted)

    # -- what must hold after every step -------------------------------------

    @invariant()
    def the_book_sees_its_transaction(self) -> None:
        # the long-lived book answers as the twin about what it holds (it is
        # not made to load more), and a fresh book on the caller's
        # connection holds exactly the twin, outbox included
        for book in (self.book, self.second):
            for sku in book.inspect().loaded_skus():
                assert book.stock(sku) == self.twin.stock(sku)
                assert book.waiting(sku) == self.twin.waiting(sku)
            book.inspect().check()
        fresh = self._inside()
        assert snapshot(fresh) == snapshot(self.twin)
        assert _events(fresh) == _events(self.twin)
        fresh.ledger.verify()
        fresh.close()

    def teardown(self) -> None:
        self.book.close()
        self.second.close()
        self.conn.close()


@pytest.fixture
def made(schemas: list[str]) -> Callable[[], str]:
    def one() -> str:
        name = new_schema("caller")
        schemas.append(name)
        return name

    return one


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "whole"])
def test_random_work_inside_the_callers_transaction(made: Callable[[], str], lazy: bool) -> None:
    current = settings()
    run_state_machine_as_test(
        lambda: CallerTransactionMachine(made(), lazy),  # type: ignore[arg-type]  # hypothesis accepts any factory
        settings=settings(current, max_examples=max(5, current.max_examples // 8)),
    )
