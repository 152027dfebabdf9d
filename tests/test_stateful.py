"""The design's invariants, checked after every step of random operation sequences.

A hypothesis `RuleBasedStateMachine` drives a book with places (including
retries and conflicting duplicates), receipts (with repeated references),
adjustments, cancels (whole, line, partial), ships, firms, rebalances, returns
(restocked or not, with repeated references), reopen steps and bad calls,
under each built-in policy, preempting or not. After every step it checks:
never served out of order, no oversell, conservation, nothing lost,
work-conserving, ledger agrees, priority-consistent (invariant 9, preempting
policies), firm is firm (invariant 10); and every bad call must leave the
book exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from backorder import (
    AllocationPolicy,
    BackorderBook,
    BackorderError,
    CannotCancel,
    CannotFirm,
    CannotReturn,
    DuplicateOrder,
    DuplicateReceipt,
    DuplicateReturn,
    Event,
    HoldConfirmed,
    InMemoryRepository,
    InsufficientStock,
    InvalidArgument,
    InvalidQuantity,
    LineAllocated,
    LineReleased,
    LineShipped,
    LineStatus,
    NotReadyToShip,
    Order,
    OrderLine,
    PartialFill,
    PriorityTiers,
    Repository,
    ReturnResult,
    SQLiteRepository,
    StrictFIFO,
    UnknownOrder,
    UnknownSku,
    UnknownTier,
)
from backorder.storage import sqlite as sqlite_module
from benchmarks.naive import NaiveBook

from .helpers import TickingClock, snapshot
from .strategies import SKUS, bad_quantities, order_lines, orders, quantities, skus

pytestmark = pytest.mark.property

REFERENCES = st.sampled_from([None, "GRN-1", "GRN-2", "GRN-3"])
RETURN_REFERENCES = st.sampled_from([None, "RMA-1", "RMA-2"])


class AtMostTwo:
    """A custom preempting policy: tiers as `PriorityTiers`, the head takes at most 2 units."""

    preempts = True
    policy_id = "tests.AtMostTwo"

    def rank(self, order: Order) -> int:
        return PriorityTiers().rank(order)

    def allot(self, line: LineStatus, available: int) -> int:
        return min(2, line.backordered, available)


class BookMachine(RuleBasedStateMachine):
    """Drives one book; subclasses fix the policy."""

    policy: AllocationPolicy = PartialFill()

    def __init__(self) -> None:
        super().__init__()
        self.repository = self.new_repository()
        self.clock = TickingClock()
        self.book = BackorderBook(self.policy, self.repository, self.clock)
        # The naive peer of the benchmarks does every successful operation too,
        # and must end in the same state (differential test of both).
        self.naive = NaiveBook(self.policy)
        self.mirror = True
        self.placed: list[str] = []
        self.orders: dict[str, Order] = {}
        self.key: dict[str, tuple[int, int]] = {}
        self.seq = 0
        self.received: dict[str, int] = defaultdict(int)
        self.adjusted: dict[str, int] = defaultdict(int)
        self.shipped: dict[str, int] = defaultdict(int)
        self.refs: dict[tuple[str, str], int] = {}
        self.restocked: dict[str, int] = defaultdict(int)
        self.return_refs: dict[tuple[str, str, str], int] = {}
        self.heard: list[Event] = []
        self.told: list[Event] = []
        self.book.subscribe(self.heard.append)

    # -- helpers ---------------------------------------------------------------

    def new_repository(self) -> Repository | InMemoryRepository:
        """The store the machine's book starts on (empty)."""
        return InMemoryRepository()

    def reopen_repository(self) -> Repository | InMemoryRepository:
        """A new handle on the same store, for a reopen step."""
        return self.repository

    def teardown(self) -> None:
        self.book.close()

    def refused(self, error: type[BaseException], call: Callable[[], object]) -> None:
        """`call` must raise `error` and change nothing at all."""
        before = snapshot(self.book)
        heard = len(self.heard)
        with pytest.raises(error):
            call()
        assert snapshot(self.book) == before
        assert len(self.heard) == heard

    def served(self, events: tuple[Event, ...]) -> None:
        """Check invariant 1 on one operation's events, and keep them."""
        self.told.extend(events)
        from_hold: set[tuple[str, str]] = set()
        for event in events:
            if isinstance(event, HoldConfirmed):
                # units held before this line joined: claimed already, not served now
                from_hold.add((event.order_id, event.sku))
            if isinstance(event, LineAllocated) and (event.order_id, event.sku) not in from_hold:
                key = self.key[event.order_id]
                for other in self.placed:
                    if self.key[other] < key and any(
                        ln.sku == event.sku for ln in self.orders[other].lines
                    ):
                        line = self.book.line(other, event.sku)
                        assert line.backordered == 0, (
                            f"{event.order_id} served on {event.sku} while earlier "
                            f"{other} is short by {line.backordered}"
                        )
            if isinstance(event, LineShipped):
                self.shipped[event.sku] += event.quantity

    def pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.placed), label="order_id")

    def firm_units(self) -> dict[tuple[str, str], int]:
        """The firm units of every line."""
        return {
            (order_id, line.sku): line.firm
            for order_id in self.placed
            for line in self.book.status(order_id).lines
        }

    # -- rules -------------------------------------------------------------------

    @initialize(sku=skus, quantity=quantities)
    def opening_stock(self, sku: str, quantity: int) -> None:
        result = self.book.receive(sku, quantity)
        if self.mirror:
            self.naive.receive(sku, quantity)
        self.received[sku] += quantity
        self.served(result.events)

    @rule(data=st.data())
    def place(self, data: st.DataObject) -> None:
        order_id = f"O-{len(self.placed) + 1}"
        order = data.draw(orders(order_id), label="order")
        try:
            rank = self.policy.rank(order)
        except UnknownTier:  # pragma: no cover - the strategy draws known tiers
            raise
        firm = self.firm_units()
        result = self.book.place(order)
        if self.mirror:
            self.naive.place(order)
        assert not result.replayed
        assert {k: v for k, v in self.firm_units().items() if k in firm} == firm
        self.seq += 1
        self.placed.append(order_id)
        self.orders[order_id] = order
        self.key[order_id] = (rank, self.seq)
        assert [ln.ordered for ln in result.lines] == [ol.quantity for ol in order.lines]
        self.served(result.events)

    @rule(data=st.data())
    def place_again(self, data: st.DataObject) -> None:
        if not self.placed:
            return
        order = self.orders[self.pick(data)]
        before = snapshot(self.book)
        result = self.book.place(order)
        assert result.replayed
        assert result.events == ()
        assert snapshot(self.book) == before
        assert result.status == self.book.status(order.id)

    @rule(data=st.data())
    def place_conflicting(self, data: st.DataObject) -> None:
        if not self.placed:
            return
        order = self.orders[self.pick(data)]
        lines = data.draw(order_lines(), label="lines")
        other = Order(order.id, lines, tier=order.tier, ship_complete=not order.ship_complete)
        self.refused(DuplicateOrder, lambda: self.book.place(other))

    @rule(sku=skus, quantity=quantities, reference=REFERENCES)
    def receive(self, sku: str, quantity: int, reference: str | None) -> None:
        seen = self.refs.get((sku, reference)) if reference is not None else None
        if seen is not None and seen != quantity:
            self.refused(DuplicateReceipt, lambda: self.book.receive(sku, quantity, reference))
            return
        before = snapshot(self.book)
        result = self.book.receive(sku, quantity, reference)
        if self.mirror:
            self.naive.receive(sku, quantity, reference)
        if seen is not None:
            assert result.replayed
            assert snapshot(self.book) == before
            return
        assert not result.replayed
        if reference is not None:
            self.refs[sku, reference] = quantity
        self.received[sku] += quantity
        self.served(result.events)

    @rule(sku=skus, delta=st.integers(min_value=-10, max_value=6).filter(bool))
    def adjust(self, sku: str, delta: int) -> None:
        stock = self.book.stock(sku)
        if stock.on_hand + delta < 0:
            self.refused(InsufficientStock, lambda: self.book.adjust(sku, delta, "count"))
            return
        result = self.book.adjust(sku, delta, "count")
        if self.mirror:
            self.naive.adjust(sku, delta, "count")
        self.adjusted[sku] += delta
        after = self.book.stock(sku)
        assert after.on_hand == stock.on_hand + delta
        assert result.reclaimed == max(0, stock.allocated - (stock.on_hand + delta))
        self.served(result.events)

    @rule(data=st.data(), mode=st.sampled_from(["order", "line", "part"]))
    def cancel(self, data: st.DataObject, mode: str) -> None:
        if not self.placed:
            return
        order_id = self.pick(data)
        status = self.book.status(order_id)
        if mode == "order":
            open_units = sum(ln.backordered + ln.allocated for ln in status.lines)
            if open_units == 0:
                self.refused(CannotCancel, lambda: self.book.cancel(order_id))
                return
            result = self.book.cancel(order_id)
            assert not self.mirror or self.naive.cancel(order_id) == open_units
            assert result.cancelled == open_units
        else:
            line = data.draw(st.sampled_from(status.lines), label="line")
            open_units = line.backordered + line.allocated
            quantity = None if mode == "line" else data.draw(quantities, label="quantity")
            wanted = open_units if quantity is None else quantity
            if wanted == 0 or wanted > open_units:
                self.refused(CannotCancel, lambda: self.book.cancel(order_id, line.sku, quantity))
                return
            result = self.book.cancel(order_id, line.sku, quantity)
            assert not self.mirror or self.naive.cancel(order_id, line.sku, quantity) == wanted
            assert result.cancelled == wanted
            after = self.book.line(order_id, line.sku)
            # backordered units go first; allocated ones only for the rest
            assert after.cancelled == line.cancelled + wanted
            from_short = min(wanted, line.backordered)
            assert after.backordered <= line.backordered - from_short
        self.served(result.events)

    @rule(data=st.data(), mode=st.sampled_from(["order", "line", "part"]))
    def ship(self, data: st.DataObject, mode: str) -> None:
        if not self.placed:
            return
        order_id = self.pick(data)
        status = self.book.status(order_id)
        blocked = status.order.ship_complete and any(ln.backordered for ln in status.lines)
        if mode == "order":
            ready = sum(ln.allocated for ln in status.lines)
            if blocked or ready == 0:
                self.refused(NotReadyToShip, lambda: self.book.ship(order_id))
                return
            result = self.book.ship(order_id)
            assert not self.mirror or self.naive.ship(order_id) == ready
            assert result.shipped == ready
        else:
            line = data.draw(st.sampled_from(status.lines), label="line")
            quantity = None if mode == "line" else data.draw(quantities, label="quantity")
            wanted = line.allocated if quantity is None else quantity
            if blocked or wanted == 0 or wanted > line.allocated:
                self.refused(NotReadyToShip, lambda: self.book.ship(order_id, line.sku, quantity))
                return
            result = self.book.ship(order_id, line.sku, quantity)
            assert not self.mirror or self.naive.ship(order_id, line.sku, quantity) == wanted
            assert result.shipped == wanted
        self.served(result.events)

    @rule(data=st.data(), mode=st.sampled_from(["order", "line", "part"]))
    def firm(self, data: st.DataObject, mode: str) -> None:
        if not self.placed:
            return
        order_id = self.pick(data)
        status = self.book.status(order_id)
        if mode == "order":
            can = sum(ln.allocated - ln.firm for ln in status.lines)
            if can == 0:
                self.refused(CannotFirm, lambda: self.book.firm(order_id))
                return
            result = self.book.firm(order_id)
            assert not self.mirror or self.naive.firm(order_id) == can
            assert result.firmed == can
            assert all(ln.firm == ln.allocated for ln in result.status.lines)
        else:
            line = data.draw(st.sampled_from(status.lines), label="line")
            can = line.allocated - line.firm
            quantity = None if mode == "line" else data.draw(quantities, label="quantity")
            wanted = can if quantity is None else quantity
            if wanted == 0 or wanted > can:
                self.refused(CannotFirm, lambda: self.book.firm(order_id, line.sku, quantity))
                return
            result = self.book.firm(order_id, line.sku, quantity)
            assert not self.mirror or self.naive.firm(order_id, line.sku, quantity) == wanted
            assert result.firmed == wanted
            assert self.book.line(order_id, line.sku).firm == line.firm + wanted
        self.served(result.events)

    @rule(sku=st.none() | skus)
    def rebalance(self, sku: str | None) -> None:
        firm = self.firm_units()
        entries = len(self.book.ledger)
        result = self.book.rebalance(sku)
        if self.mirror:
            self.naive.rebalance(sku)
        assert self.firm_units() == firm  # invariant 10: never takes a firm unit
        released = sum(
            e.quantity
            for e in result.events
            if isinstance(e, LineReleased) and e.reason == "rebalance"
        )
        assert result.moved == released
        # a reallocation is a release and an allocation, never a receipt
        for entry in list(self.book.ledger)[entries:]:
            assert entry.kind in ("release", "allocation"), entry
            assert entry.reference == "rebalance", entry
        self.served(result.events)

    @rule(
        data=st.data(),
        quantity=st.integers(min_value=1, max_value=4),
        reference=RETURN_REFERENCES,
        restock=st.booleans(),
    )
    def receive_return(
        self, data: st.DataObject, quantity: int, reference: str | None, restock: bool
    ) -> None:
        if not self.placed:
            return
        order_id = self.pick(data)
        line = data.draw(st.sampled_from(self.book.status(order_id).lines), label="line")
        seen = None if reference is None else self.return_refs.get((order_id, line.sku, reference))

        def call() -> ReturnResult:
            return self.book.receive_return(order_id, line.sku, quantity, reference, restock)

        if seen is not None and seen != quantity:
            self.refused(DuplicateReturn, call)
            return
        if seen is not None:
            before = snapshot(self.book)
            assert call().replayed
            assert snapshot(self.book) == before
            return
        if quantity > line.shipped - line.returned:
            self.refused(CannotReturn, call)
            return
        result = call()
        if self.mirror:
            self.naive.receive_return(order_id, line.sku, quantity, reference, restock)
        assert not result.replayed
        assert self.book.line(order_id, line.sku).returned == line.returned + quantity
        if reference is not None:
            self.return_refs[order_id, line.sku, reference] = quantity
        if restock:
            self.restocked[line.sku] += quantity
        self.served(result.events)

    @rule()
    def reopen(self) -> None:
        before = snapshot(self.book)
        self.book.close()
        self.book = BackorderBook(self.policy, self.reopen_repository(), self.clock)
        self.book.subscribe(self.heard.append)
        assert snapshot(self.book) == before

    @rule(data=st.data(), which=st.integers(min_value=0, max_value=16))
    def bad_call(self, data: st.DataObject, which: int) -> None:
        book = self.book
        gold = Order("NEW-TIER", [OrderLine("MUG", 1)], tier="gold")
        calls: list[tuple[type[BaseException], Callable[[], Any]]] = [
            (UnknownOrder, lambda: book.cancel("NO-SUCH-ORDER")),
            (UnknownOrder, lambda: book.ship("NO-SUCH-ORDER")),
            (UnknownOrder, lambda: book.position("NO-SUCH-ORDER", "MUG")),
            (InvalidQuantity, lambda: book.receive("MUG", data.draw(bad_quantities))),
            (InvalidQuantity, lambda: book.adjust("MUG", 0, "count")),
            (InvalidArgument, lambda: book.receive("", 1)),
            (InvalidArgument, lambda: book.adjust("MUG", 1, "")),
            (InvalidArgument, lambda: book.cancel(self.placed[0], None, 1)),
            (UnknownSku, lambda: book.cancel(self.placed[0], "NO-SUCH-SKU")),
            (UnknownSku, lambda: book.ship(self.placed[0], "NO-SUCH-SKU")),
            (
                InvalidQuantity,
                lambda: book.cancel(
                    self.placed[0],
                    self.orders[self.placed[0]].lines[0].sku,
                    data.draw(bad_quantities.filter(lambda q: q is not None)),
                ),
            ),
            (
                UnknownTier,
                lambda: book.place(gold),
            ),
            (UnknownOrder, lambda: book.firm("NO-SUCH-ORDER")),
            (UnknownOrder, lambda: book.receive_return("NO-SUCH-ORDER", "MUG", 1)),
            (InvalidArgument, lambda: book.rebalance("")),
            (UnknownSku, lambda: book.firm(self.placed[0], "NO-SUCH-SKU")),
            (
                InvalidQuantity,
                lambda: book.receive_return(
                    self.placed[0],
                    self.orders[self.placed[0]].lines[0].sku,
                    data.draw(bad_quantities.filter(lambda q: q is not None)),
                ),
            ),
        ]
        error, call = calls[which]
        if which in (7, 8, 9, 10, 11, 15, 16) and not self.placed:
            return
        if error is UnknownTier and not isinstance(self.policy, PriorityTiers):
            return
        self.refused(error, call)
        assert issubclass(error, BackorderError)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def naive_peer_agrees(self) -> None:
        if not self.mirror:
            return
        for sku in SKUS:
            assert self.naive.stock(sku) == self.book.stock(sku)
            assert self.naive.waiting(sku) == self.book.waiting(sku)
        for order_id in self.placed:
            for line in self.book.status(order_id).lines:
                assert self.naive.line(order_id, line.sku) == line
                assert self.naive.position(order_id, line.sku) == self.book.position(
                    order_id, line.sku
                )

    @invariant()
    def internal_structure_agrees(self) -> None:
        self.book._check()

    @invariant()
    def no_oversell_and_conservation(self) -> None:
        for sku in SKUS:
            stock = self.book.stock(sku)
            assert 0 <= stock.allocated <= stock.on_hand
            assert stock.available == stock.on_hand - stock.allocated
            assert stock.on_hand == (
                self.received[sku] + self.restocked[sku] + self.adjusted[sku] - self.shipped[sku]
            )
            state = self.book._state.skus.get(sku)
            allocated = sum(h.quantity for h in state.holds.values()) if state else 0
            for order_id in self.placed:
                for line in self.book.status(order_id).lines:
                    if line.sku == sku:
                        allocated += line.allocated
            assert stock.allocated == allocated

    @invariant()
    def nothing_lost(self) -> None:
        assert list(self.book.order_ids()) == self.placed
        for order_id in self.placed:
            status = self.book.status(order_id)
            order = self.orders[order_id]
            assert status.order.lines == order.lines
            assert status.order.tier == order.tier
            for line in status.lines:
                parts = (line.allocated, line.shipped, line.cancelled, line.backordered)
                assert min(parts) >= 0
                assert line.ordered == sum(parts)

    @invariant()
    def work_conserving(self) -> None:
        for sku in SKUS:
            stock = self.book.stock(sku)
            waiting = self.book.waiting(sku)
            if stock.available and waiting:
                assert self.policy.allot(waiting[0], stock.available) == 0
            for place, line in enumerate(waiting, start=1):
                assert self.book.position(line.order_id, sku) == place
            keys = [self.key[line.order_id] for line in waiting]
            assert keys == sorted(keys)

    @invariant()
    def ledger_agrees(self) -> None:
        self.book.ledger.verify()
        for sku in SKUS:
            entries = self.book.ledger.entries(sku)
            receipts = sum(e.on_hand_delta for e in entries if e.kind == "receipt")
            assert receipts == self.received[sku]
            assert all(e.kind != "receipt" for e in entries if e.order_id is not None)
            returns = sum(e.on_hand_delta for e in entries if e.kind == "return")
            assert returns == self.restocked[sku]

    @invariant()
    def priority_consistent_and_firm_is_firm(self) -> None:
        # invariant 10: 0 <= firm <= allocated (and 0 <= returned <= shipped)
        for order_id in self.placed:
            for line in self.book.status(order_id).lines:
                assert 0 <= line.firm <= line.allocated
                assert 0 <= line.returned <= line.shipped
        if not getattr(self.policy, "preempts", False):
            return
        # invariant 9, from the public reads
        for sku in SKUS:
            waiting = self.book.waiting(sku)
            if not waiting:
                continue
            head = waiting[0]
            movable = sum(
                line.allocated - line.firm
                for order_id in self.placed
                if self.key[order_id] > self.key[head.order_id]
                for line in self.book.status(order_id).lines
                if line.sku == sku
            )
            offer = self.book.stock(sku).available + movable
            if offer > 0:
                assert self.policy.allot(head, offer) == 0, (sku, head, offer)

    @invariant()
    def every_event_heard_once_in_order(self) -> None:
        assert self.heard == self.told


class StrictFIFOMachine(BookMachine):
    policy = StrictFIFO()


class PartialFillMachine(BookMachine):
    policy = PartialFill()


class TiersPartialMachine(BookMachine):
    policy = PriorityTiers()


class TiersStrictMachine(BookMachine):
    policy = PriorityTiers(fill=StrictFIFO())


class TiersPreemptPartialMachine(BookMachine):
    policy = PriorityTiers(preempt=True)


class TiersPreemptStrictMachine(BookMachine):
    policy = PriorityTiers(fill=StrictFIFO(), preempt=True)


class CustomPreemptMachine(BookMachine):
    policy = AtMostTwo()


class SQLiteMachine(BookMachine):
    """The same machine over a SQLite file, reopened from the file at reopen
    steps, and gone on with through a second handle on the file at
    `other_handle` steps (which then catches up with the first's commits
    through the change log)."""

    # the change log kept short, so that its "*" entries (a table written past
    # KEYS_LISTED keys) and a handle behind the kept log (it loads again) come up
    LOG_LIMITS = (1, 3, 2)  # KEYS_LISTED, COMMITS_KEPT, _PRUNE_EVERY
    # whole loads (a lazy book's whole-book reads, a handle behind the log) in
    # parts of 2 orders: an order's lines and its part's neighbours split often
    PART_SIZE = 2

    def new_repository(self) -> Repository | InMemoryRepository:
        self.directory = tempfile.mkdtemp(prefix="backorder-")
        self.path = os.path.join(self.directory, "book.db")
        self.other: BackorderBook | None = None
        module = sqlite_module
        self.limits = (module.KEYS_LISTED, module.COMMITS_KEPT, module._PRUNE_EVERY)
        module.KEYS_LISTED, module.COMMITS_KEPT, module._PRUNE_EVERY = self.LOG_LIMITS
        self.part_size = SQLiteRepository.load_parts.__defaults__
        setattr(SQLiteRepository.load_parts, "__defaults__", (self.PART_SIZE,))  # noqa: B010
        return SQLiteRepository(self.path)

    def reopen_repository(self) -> Repository | InMemoryRepository:
        return SQLiteRepository(self.path)

    @rule()
    def other_handle(self) -> None:
        before = snapshot(self.book)
        if self.other is None:
            self.other = BackorderBook(self.policy, SQLiteRepository(self.path), self.clock)
            self.other.subscribe(self.heard.append)
        self.book, self.other = self.other, self.book
        assert snapshot(self.book) == before

    def teardown(self) -> None:
        super().teardown()
        if self.other is not None:
            self.other.close()
        module = sqlite_module
        module.KEYS_LISTED, module.COMMITS_KEPT, module._PRUNE_EVERY = self.limits
        setattr(SQLiteRepository.load_parts, "__defaults__", self.part_size)  # noqa: B010
        shutil.rmtree(self.directory, ignore_errors=True)


class SQLiteTiersStrictMachine(SQLiteMachine):
    policy = PriorityTiers(fill=StrictFIFO())


class SQLitePreemptMachine(SQLiteMachine):
    policy = PriorityTiers(preempt=True)


TestSQLiteTiersStrict = SQLiteTiersStrictMachine.TestCase
TestSQLitePreempt = SQLitePreemptMachine.TestCase
TestTiersPreemptPartial = TiersPreemptPartialMachine.TestCase
TestTiersPreemptStrict = TiersPreemptStrictMachine.TestCase
TestCustomPreempt = CustomPreemptMachine.TestCase
TestStrictFIFO = StrictFIFOMachine.TestCase
TestPartialFill = PartialFillMachine.TestCase
TestTiersPartial = TiersPartialMachine.TestCase
TestTiersStrict = TiersStrictMachine.TestCase
