"""The contract suite a storage adapter must pass (pytest + hypothesis).

Subclass `RepositoryContract` in a test module of your own and give it one
fixture, `open_store`: a callable that takes a store name and returns a
repository handle on that store, creating it empty the first time; called
again with the same name it opens the same store again (as a process opening
the same database file). pytest then runs every test below on your adapter::

    import pytest
    from backorder import SQLiteRepository
    from backorder.testing.contract import RepositoryContract

    class TestMyAdapter(RepositoryContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda name: SQLiteRepository(tmp_path / f"{name}.db")

What it proves: reopening restores exactly the same book (every order and
line in every state, firm and returned units included, queues and positions,
counters, ledger, receipt and return references, holds, scheduled receipts,
settings, deadlines), a failed
operation writes nothing, the outbox keeps every event until it is marked
published, two books on one store see each other's commits, a batch is
stored whole, and — the stateful machine — any random sequence of
operations, reopens, second-handle writes and batches of mixed operations
(atomic or not, ended by an exception or not) leaves the stored book equal to
an in-memory twin that did the same operations (firm, rebalance and returns
among them, switches of policy, and two senders claiming and publishing
events; once more under a preempting policy),
with every invariant of the
design holding after every step. A repository with `claim_events` (optional)
leases outbox events to one sender at a time, and again once a lease ran out;
one with `load_parts` (optional) hands over in parts exactly what `load`
returns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, NoReturn

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ..book import BackorderBook
from ..domain import Order, OrderLine
from ..errors import BackorderError, RepositoryClosed
from ..events import Event
from ..policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from ..storage import (
    ClaimingRepository,
    IncrementalRepository,
    InMemoryRepository,
    Repository,
    StreamingRepository,
)
from . import snapshot

__all__ = ["OpenStore", "RepositoryContract", "StorageMachine"]

#: A store opener: `open_store(name)` returns a handle on the store `name`.
OpenStore = Callable[[str], "Repository | InMemoryRepository"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
SKUS = ("MUG", "CUP", "TEE")
TIERS = ("contract", "vip", "standard")


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _claims(book: BackorderBook) -> bool:
    # whether the book's repository leases events to several senders
    return isinstance(book.repository, (ClaimingRepository, InMemoryRepository))


def _events(book: BackorderBook) -> list[Event]:
    return [pending.event for pending in book.pending_events()]


def _scenario(book: BackorderBook, clock: _Clock) -> None:
    # Every state a line, an order, a SKU and the book can be in.
    def tick() -> None:
        clock.now += timedelta(minutes=1)

    for i, (sku, quantity, tier) in enumerate(
        [("MUG", 2, "standard"), ("MUG", 3, "vip"), ("CUP", 1, "standard"), ("MUG", 1, "contract")]
    ):
        tick()
        book.place(Order(f"A-{i}", [OrderLine(sku, quantity), OrderLine("TEE", 1)], tier=tier))
    tick()
    book.place(
        Order(
            "B-1",
            [OrderLine("CUP", 4)],
            ship_complete=True,
            metadata={"channel": "web"},
            fill_by=date(2026, 1, 6),
        )
    )
    tick()
    book.place(Order("B-2", [OrderLine("MUG", 2)], fill_by=START + timedelta(hours=2)))
    tick()
    book.receive("MUG", 4, reference="GRN-1")
    tick()
    book.receive("TEE", 3)
    tick()
    book.ship("A-3")
    tick()
    book.cancel("A-0", "TEE")
    tick()
    book.cancel("A-1", "MUG", 1)
    tick()
    book.adjust("MUG", -1, "broken")
    tick()
    book.expect("CUP", 6, date(2026, 1, 20), "PO-7")
    tick()
    book.expect("MUG", 2, START + timedelta(days=3), "PO-8")
    tick()
    book.update_expected("PO-8", quantity=5)
    tick()
    book.set_lead_time("TEE", timedelta(days=2, hours=3))
    tick()
    book.set_backorder_limit("CUP", 50)
    tick()
    book.receive("HAT", 5, reference="GRN-2")
    tick()
    book.hold("HAT", 2, timedelta(minutes=30), "H-1")
    tick()
    book.hold("HAT", 1, timedelta(minutes=5), "H-2")
    tick()
    book.change_tier("A-2", "contract")
    clock.now += timedelta(hours=3)
    book.expire()  # B-2's deadline and hold H-2 pass; H-1 too (30 minutes)
    tick()
    book.receive("CUP", 2, reference="GRN-3", against="PO-7")
    tick()
    book.firm("A-1", "MUG", 1)  # firm units
    tick()
    book.receive_return("A-3", "MUG", 1, reference="RMA-1")  # a return, restocked
    tick()
    book.receive_return("A-3", "TEE", 1, restock=False)  # one written off
    tick()
    book.rebalance()


def _skip_without(repository: Repository | InMemoryRepository, method: str) -> NoReturn:
    # Skip a test of an optional method the repository lacks (closed first).
    if not isinstance(repository, InMemoryRepository):
        repository.close()
    pytest.skip(f"the repository has no {method} (optional)")


def _reopen(open_store: OpenStore, name: str, policy: AllocationPolicy, clock: _Clock) -> Any:
    return BackorderBook(policy, open_store(name), clock)


class RepositoryContract:
    """The tests every repository must pass; subclass and define `open_store`."""

    #: The policy the contract's books use (ranks by tier, so tiers matter).
    policy: AllocationPolicy = PriorityTiers()
    #: At most this many random histories per machine test (None: a quarter of
    #: the hypothesis profile's examples); set it for a store with slow round trips.
    machine_examples: int | None = None

    @pytest.fixture
    def open_store(self) -> OpenStore:
        """Override: return `open_store(name)` (see the module text)."""
        raise NotImplementedError("define an open_store fixture in your subclass")

    def test_a_new_store_opens_an_empty_book(self, open_store: OpenStore) -> None:
        book = BackorderBook(self.policy, open_store("empty"), _Clock())
        assert len(book) == 0
        assert book.skus() == ()
        assert len(book.ledger) == 0
        book.ledger.verify()
        book.close()

    def test_reopening_restores_exactly_the_same_book(self, open_store: OpenStore) -> None:
        clock = _Clock()
        book = BackorderBook(self.policy, open_store("full"), clock)
        _scenario(book, clock)
        before = snapshot(book)
        book.inspect().check()
        book.close()
        again = _reopen(open_store, "full", self.policy, clock)
        assert snapshot(again) == before
        again.inspect().check()
        again.ledger.verify()
        # the idempotency keys came back too: a redelivered receipt, a retried order
        assert again.receive("MUG", 4, reference="GRN-1").replayed
        assert again.place(Order("A-0", [OrderLine("MUG", 2), OrderLine("TEE", 1)])).replayed
        assert snapshot(again) == before
        # and the reopened book goes on where the first stopped
        clock.now += timedelta(minutes=1)
        again.receive("CUP", 10, reference="GRN-9")
        after = snapshot(again)
        again.close()
        with _reopen(open_store, "full", self.policy, clock) as last:
            assert snapshot(last) == after

    def test_a_failed_operation_writes_nothing(self, open_store: OpenStore) -> None:
        clock = _Clock()
        book = BackorderBook(self.policy, open_store("fail"), clock)
        _scenario(book, clock)
        before = snapshot(book)
        pending = _events(book)
        failing: list[Callable[[], object]] = [
            lambda: book.ship("B-1"),  # ship-complete with lines short
            lambda: book.adjust("MUG", -100, "count"),
            lambda: book.place(Order("A-0", [OrderLine("MUG", 9)])),
            lambda: book.place(Order("Z-1", [OrderLine("CUP", 100)])),  # over the cap
            lambda: book.cancel("A-3"),
            lambda: book.receive("MUG", 9, reference="GRN-1"),  # same reference, other count
            lambda: book.place(Order("Z-2", [OrderLine("MUG", 1)], tier="gold")),
        ]
        for call in failing:
            with pytest.raises(BackorderError):
                call()
            assert snapshot(book) == before
        book.close()
        with _reopen(open_store, "fail", self.policy, clock) as again:
            assert snapshot(again) == before
            assert _events(again) == pending

    def test_claims_lease_events_to_one_sender_at_a_time(self, open_store: OpenStore) -> None:
        repository = open_store("claims")
        if not isinstance(repository, (ClaimingRepository, InMemoryRepository)):
            _skip_without(repository, "claim_events")
        clock = _Clock()
        book = BackorderBook(self.policy, repository, clock)
        _scenario(book, clock)
        pending = book.pending_events()
        other = _reopen(open_store, "claims", self.policy, clock)  # a second sender
        first = book.claim_events(limit=3, lease=timedelta(seconds=30))
        second = other.claim_events(limit=len(pending), lease=timedelta(seconds=90))
        assert first == pending[:3]
        assert second == pending[3:]
        assert book.claim_events() == ()
        assert other.claim_events() == ()
        assert book.pending_events() == pending  # a look ignores leases
        assert other.mark_published(second[:2]) == 2
        clock.now += timedelta(seconds=31)  # the first lease ran out
        assert other.claim_events() == first
        clock.now += timedelta(seconds=60)  # and the second, and the re-claim's
        assert book.claim_events(limit=len(pending)) == (*first, *second[2:])
        book.close()
        other.close()

    def test_a_whole_load_in_parts_is_the_whole_load(self, open_store: OpenStore) -> None:
        repository = open_store("parts")
        if not isinstance(repository, StreamingRepository):
            _skip_without(repository, "load_parts")
        clock = _Clock()
        book = BackorderBook(self.policy, repository, clock)
        _scenario(book, clock)
        whole = repository.load()
        parts = list(repository.load_parts())
        first, middle, last = parts[0], parts[1:-1], parts[-1]
        # the SKUs, counters and policy first; every part at the version of
        # its one read (a number another read may not share: PostgreSQL's are
        # tokens for snapshots)
        assert (first.skus, first.counters, first.policy) == (
            whole.skus,
            whole.counters,
            whole.policy,
        )
        assert not first.orders
        assert not first.lines
        assert len({part.version for part in parts}) == 1
        # then the orders in arrival order, each part with every line of its orders
        assert [row for part in middle for row in part.orders] == list(whole.orders)
        for part in middle:
            assert {line.order_id for line in part.lines} == {row.order_id for row in part.orders}
        assert sorted(line for part in middle for line in part.lines) == sorted(whole.lines)
        # then every other row
        assert not last.orders
        assert not last.lines
        for name in ("receipts", "holds", "expired_holds", "expected", "deadlines", "returns"):
            assert sorted(getattr(last, name)) == sorted(getattr(whole, name)), name
        assert sorted(last.ledger) == sorted(whole.ledger)
        book.close()

    def test_the_outbox_keeps_every_event_until_published(self, open_store: OpenStore) -> None:
        clock = _Clock()
        book = BackorderBook(self.policy, open_store("outbox"), clock)
        told: list[Event] = []
        book.subscribe(told.append)
        _scenario(book, clock)
        assert _events(book) == told
        book.close()
        again = _reopen(open_store, "outbox", self.policy, clock)
        pending = again.pending_events()
        assert [p.event for p in pending] == told
        assert [p.id for p in pending] == sorted({p.id for p in pending})
        assert again.pending_events(limit=3) == pending[:3]
        assert again.mark_published(pending[:5]) == 5
        assert again.mark_published([pending[0].id]) == 0  # twice is harmless
        assert again.pending_events() == pending[5:]
        clock.now += timedelta(minutes=1)
        result = again.receive("MUG", 1, reference="GRN-LATE")
        assert [p.event for p in again.pending_events()] == told[5:] + list(result.events)
        assert max(p.id for p in again.pending_events()) > max(p.id for p in pending)
        again.close()

    def test_two_books_on_one_store_see_each_other(self, open_store: OpenStore) -> None:
        clock = _Clock()
        first = BackorderBook(self.policy, open_store("shared"), clock)
        second = BackorderBook(self.policy, open_store("shared"), clock)
        first.place(Order("A-1", [OrderLine("MUG", 2)]))
        second.place(Order("A-2", [OrderLine("MUG", 2)]))
        assert first.position("A-2", "MUG") == 2
        first.receive("MUG", 3, reference="GRN-1")
        assert second.line("A-1", "MUG").allocated == 2
        assert second.line("A-2", "MUG").allocated == 1
        assert second.receive("MUG", 3, reference="GRN-1").replayed
        second.cancel("A-1")
        assert first.line("A-2", "MUG").allocated == 2
        assert snapshot(first) == snapshot(second)
        first.inspect().check()
        second.inspect().check()
        first.ledger.verify()
        first.close()
        second.close()

    def test_a_batch_is_stored_whole(self, open_store: OpenStore) -> None:
        clock = _Clock()
        book = BackorderBook(self.policy, open_store("batch"), clock)
        told: list[Event] = []
        book.subscribe(told.append)
        with book.batch():
            for i in range(20):
                book.place(Order(f"A-{i}", [OrderLine(SKUS[i % 3], 1 + i % 4)]))
            with pytest.raises(BackorderError):
                book.cancel("NO-SUCH-ORDER")
            book.receive("MUG", 7, reference="GRN-1")
            assert told == []  # handed out only after the commit
        assert len(told) > 20
        before = snapshot(book)
        book.close()
        with _reopen(open_store, "batch", self.policy, clock) as again:
            assert snapshot(again) == before
            assert _events(again) == told

    def test_a_closed_book_refuses_to_work(self, open_store: OpenStore) -> None:
        book = BackorderBook(self.policy, open_store("closed"), _Clock())
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
        book.close()
        book.close()  # twice is harmless
        with pytest.raises(RepositoryClosed):
            book.place(Order("A-2", [OrderLine("MUG", 1)]))
        with pytest.raises(RepositoryClosed):
            book.status("A-1")
        with BackorderBook(self.policy, open_store("closed"), _Clock()) as again:
            assert again.status("A-1").lines[0].backordered == 1
        with pytest.raises(RepositoryClosed):
            again.stock("MUG")

    def test_random_operations_and_reopens_match_an_in_memory_twin(
        self, open_store: OpenStore
    ) -> None:
        names = itertools.count()
        current = settings()
        run_state_machine_as_test(
            lambda: StorageMachine(open_store, f"machine-{next(names)}", self.policy),  # type: ignore[arg-type]  # hypothesis accepts any factory
            settings=settings(current, max_examples=self._machine_examples(current)),
        )

    def _machine_examples(self, current: settings) -> int:
        # a quarter of the profile's examples (each is a whole random history),
        # at most `machine_examples` when the subclass sets it (a slow store)
        examples = max(10, current.max_examples // 4)
        cap = self.machine_examples
        return examples if cap is None else max(1, min(examples, cap))

    def test_random_operations_match_the_twin_with_a_preempting_policy(
        self, open_store: OpenStore
    ) -> None:
        # every operation may move stock between orders (rebalance on what it touches)
        names = itertools.count()
        current = settings()
        preempting = PriorityTiers(preempt=True)
        run_state_machine_as_test(
            lambda: StorageMachine(open_store, f"preempt-{next(names)}", preempting),  # type: ignore[arg-type]  # hypothesis accepts any factory
            settings=settings(current, max_examples=self._machine_examples(current)),
        )


class _Abandoned(Exception):
    """Raised inside a batch to make the block end by an exception."""


# the operations a batch draws from (a reopen, a switch of handles or
# another handle's write cannot happen inside a block: the block holds the store)
BATCH_STEPS = (
    "place",
    "place",
    "receive",
    "cancel",
    "ship",
    "change_tier",
    "expect",
    "receive_against",
    "update_expected",
    "cancel_expected",
    "hold",
    "settle_hold",
    "expire",
    "firm",
    "rebalance",
    "receive_return",
    "lead_time",
    "cap",
    "change_policy",
)
# the policies `change_policy` switches between (built-ins: another handle
# follows a switch; the two-tier one refuses a book with a "contract" order)
POLICIES: tuple[Callable[[], AllocationPolicy], ...] = (
    PartialFill,
    StrictFIFO,
    PriorityTiers,
    lambda: PriorityTiers(preempt=True),
    lambda: PriorityTiers(fill=StrictFIFO()),
    lambda: PriorityTiers(("vip", "standard")),
)
QUANTITIES = st.integers(min_value=1, max_value=5)
# enough SKUs that a lazily loaded book holds only some of them between steps
MACHINE_SKUS = ("MUG", "CUP", "TEE", "HAT", "CAP", "PEN")


class StorageMachine(RuleBasedStateMachine):
    """A book over a repository and an in-memory twin, driven alike.

    Every rule runs the same call on both; they must return equal results
    or raise the same error. After every step the stored book must equal the
    twin (`snapshot`), pass the book's own structural check and
    `ledger.verify()`, and hold in its outbox exactly the events the twin
    returned. `reopen` closes the book and opens the store again; `other`
    writes through a second handle, which the first must then see; `batch`
    runs a few operations in a block on both books, and may end it by an
    exception (an atomic block then leaves no trace in either).
    """

    def __init__(self, open_store: OpenStore, name: str, policy: AllocationPolicy) -> None:
        super().__init__()
        self.open_store = open_store
        self.name = name
        self.policy = policy
        self.clock = _Clock()
        self.book = BackorderBook(policy, open_store(name), self.clock)
        # a second long-lived handle, as a second process: `switch` swaps them
        self.second = BackorderBook(policy, open_store(name), self.clock)
        self.twin = BackorderBook(policy, InMemoryRepository(), self.clock)
        self.told: list[Event] = []
        self.ids = itertools.count()
        self.placed: list[str] = []
        # atomic blocks abandoned by each handle: a handle on a store loaded
        # whole loads it again after one (it keeps no undo records)
        self.abandoned: dict[int, int] = {}

    def both(self, call: Callable[[BackorderBook], Any], book: BackorderBook | None = None) -> None:
        # (The books are compared whole after every step, through a fresh
        # handle, so a lazily loaded book stays lazy here.)
        self.clock.now += timedelta(minutes=7)
        try:
            expected = call(self.twin)
        except BackorderError as exc:
            with pytest.raises(type(exc)):
                call(self.book if book is None else book)
            return
        got = call(self.book if book is None else book)
        assert got == expected
        self.told.extend(getattr(expected, "events", ()))

    @rule(
        lines=st.lists(
            st.tuples(st.sampled_from(MACHINE_SKUS), QUANTITIES), min_size=1, max_size=3
        ),
        tier=st.sampled_from(TIERS),
        ship_complete=st.booleans(),
        deadline=st.sampled_from([None, 1, 3]),
        again=st.booleans(),
    )
    def place(
        self,
        lines: list[tuple[str, int]],
        tier: str,
        ship_complete: bool,
        deadline: int | None,
        again: bool,
    ) -> None:
        lines = list(dict(lines).items())
        order_id = self.placed[-1] if again and self.placed else f"O-{next(self.ids)}"
        fill_by = None if deadline is None else self.clock.now + timedelta(hours=deadline)
        order = Order(
            order_id,
            [OrderLine(sku, q) for sku, q in lines],
            tier=tier,
            ship_complete=ship_complete,
            fill_by=fill_by,
        )
        self.both(lambda book: book.place(order))
        if order_id in self.twin and order_id not in self.placed:
            self.placed.append(order_id)

    @rule(
        sku=st.sampled_from(MACHINE_SKUS),
        quantity=QUANTITIES,
        ref=st.sampled_from([None, "R1", "R2"]),
    )
    def receive(self, sku: str, quantity: int, ref: str | None) -> None:
        self.both(lambda book: book.receive(sku, quantity, reference=ref))

    @rule(
        sku=st.sampled_from(MACHINE_SKUS), delta=st.integers(min_value=-6, max_value=4).filter(bool)
    )
    def adjust(self, sku: str, delta: int) -> None:
        self.both(lambda book: book.adjust(sku, delta, "count"))

    @rule(data=st.data(), part=st.booleans())
    def cancel(self, data: st.DataObject, part: bool) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        sku = data.draw(st.sampled_from(MACHINE_SKUS)) if part else None
        quantity = data.draw(st.sampled_from([None, 1, 2])) if part else None
        self.both(lambda book: book.cancel(order_id, sku, quantity))

    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        self.both(lambda book: book.ship(order_id))

    @rule(data=st.data(), tier=st.sampled_from(TIERS))
    def change_tier(self, data: st.DataObject, tier: str) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        self.both(lambda book: book.change_tier(order_id, tier))

    @rule(
        sku=st.sampled_from(MACHINE_SKUS),
        quantity=QUANTITIES,
        ref=st.sampled_from(["PO-1", "PO-2"]),
    )
    def expect(self, sku: str, quantity: int, ref: str) -> None:
        arriving = self.clock.now + timedelta(days=2)
        self.both(lambda book: book.expect(sku, quantity, arriving, ref))

    @rule(
        sku=st.sampled_from(MACHINE_SKUS),
        quantity=QUANTITIES,
        ref=st.sampled_from(["PO-1", "PO-2"]),
    )
    def receive_against(self, sku: str, quantity: int, ref: str) -> None:
        self.both(lambda book: book.receive(sku, quantity, against=ref))

    @rule(
        ref=st.sampled_from(["PO-1", "PO-2"]),
        quantity=st.none() | QUANTITIES,
        days=st.sampled_from([None, 1, 5]),
    )
    def update_expected(self, ref: str, quantity: int | None, days: int | None) -> None:
        arriving = None if days is None else self.clock.now + timedelta(days=days)
        self.both(lambda book: book.update_expected(ref, quantity, arriving))

    @rule(ref=st.sampled_from(["PO-1", "PO-2"]))
    def cancel_expected(self, ref: str) -> None:
        self.both(lambda book: book.cancel_expected(ref))

    @rule(sku=st.sampled_from(MACHINE_SKUS), days=st.sampled_from([None, 1, 4]))
    def lead_time(self, sku: str, days: int | None) -> None:
        lead = None if days is None else timedelta(days=days)
        self.both(lambda book: book.set_lead_time(sku, lead))

    @rule(sku=st.sampled_from(MACHINE_SKUS), units=st.sampled_from([None, 3, 12]))
    def cap(self, sku: str, units: int | None) -> None:
        self.both(lambda book: book.set_backorder_limit(sku, units))

    @rule(
        sku=st.sampled_from(MACHINE_SKUS),
        quantity=QUANTITIES,
        hold_id=st.sampled_from(["H-1", "H-2"]),
    )
    def hold(self, sku: str, quantity: int, hold_id: str) -> None:
        self.both(lambda book: book.hold(sku, quantity, timedelta(minutes=10), hold_id))

    @rule(hold_id=st.sampled_from(["H-1", "H-2"]), confirm=st.booleans())
    def settle_hold(self, hold_id: str, confirm: bool) -> None:
        if confirm:
            order = Order(f"O-{next(self.ids)}", [OrderLine("MUG", 1), OrderLine("CUP", 1)])
            self.both(lambda book: book.confirm_hold(hold_id, order))
            if order.id in self.twin:
                self.placed.append(order.id)
        else:
            self.both(lambda book: book.release_hold(hold_id))

    @rule(hours=st.sampled_from([0, 2, 5]))
    def expire(self, hours: int) -> None:
        self.clock.now += timedelta(hours=hours)
        self.both(lambda book: book.expire())

    @rule(data=st.data(), part=st.booleans())
    def firm(self, data: st.DataObject, part: bool) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        sku = data.draw(st.sampled_from(MACHINE_SKUS)) if part else None
        quantity = data.draw(st.sampled_from([None, 1, 2])) if part else None
        self.both(lambda book: book.firm(order_id, sku, quantity))

    @rule(sku=st.none() | st.sampled_from(MACHINE_SKUS))
    def rebalance(self, sku: str | None) -> None:
        self.both(lambda book: book.rebalance(sku))

    @rule(
        data=st.data(),
        quantity=st.sampled_from([1, 2]),
        ref=st.sampled_from([None, "RMA-1", "RMA-2"]),
        restock=st.booleans(),
    )
    def receive_return(
        self, data: st.DataObject, quantity: int, ref: str | None, restock: bool
    ) -> None:
        if not self.placed:
            return
        order_id = data.draw(st.sampled_from(self.placed))
        sku = data.draw(st.sampled_from(MACHINE_SKUS))
        self.both(lambda book: book.receive_return(order_id, sku, quantity, ref, restock))

    @rule(which=st.integers(min_value=0, max_value=len(POLICIES) - 1))
    def change_policy(self, which: int) -> None:
        # every line ranked again (a lazily loaded book loads everything
        # first); the second handle follows the stored identity at its next step
        policy = POLICIES[which]()
        self.both(lambda book: book.change_policy(policy))
        self.policy = self.twin.policy

    @rule(
        limit=st.integers(min_value=1, max_value=4),
        minutes=st.sampled_from([5, 30]),
        publish=st.sampled_from(["none", "first", "both"]),
    )
    def claim_and_publish(self, limit: int, minutes: int, publish: str) -> None:
        # two senders (the two handles) claim the oldest events: never the
        # same one while its lease runs; what they mark published leaves the
        # outbox, the rest stays (and is claimed again once its lease ran out)
        if not all(_claims(book) for book in (self.book, self.second)):
            return
        pending = self.book.pending_events()
        lease = timedelta(minutes=minutes)
        first = self.book.claim_events(limit=limit, lease=lease)
        second = self.second.claim_events(limit=limit, lease=lease)
        assert not {e.id for e in first} & {e.id for e in second}
        assert set(first) | set(second) <= set(pending)
        published = {"none": (), "first": first, "both": (*first, *second)}[publish]
        if published:
            assert self.book.mark_published(published) == len(published)
            gone = {event.id for event in published}
            self.told = [
                told for told, event in zip(self.told, pending, strict=True) if event.id not in gone
            ]

    @rule()
    def reopen(self) -> None:
        self.book.close()
        self.abandoned.pop(id(self.book), None)
        self.book = BackorderBook(self.policy, self.open_store(self.name), self.clock)

    @rule()
    def switch(self) -> None:
        self.book, self.second = self.second, self.book

    @rule(sku=st.sampled_from(MACHINE_SKUS), quantity=QUANTITIES)
    def other(self, sku: str, quantity: int) -> None:
        # another handle (another process) writes; the first book must see it
        other = BackorderBook(self.policy, self.open_store(self.name), self.clock)
        self.both(lambda book: book.receive(sku, quantity), book=other)
        other.close()

    @rule(
        data=st.data(),
        steps=st.lists(st.sampled_from(BATCH_STEPS), min_size=1, max_size=6),
        atomic=st.booleans(),
        abandon=st.booleans(),
    )
    def batch(self, data: st.DataObject, steps: list[str], atomic: bool, abandon: bool) -> None:
        # a block of mixed operations on both books, each in a batch of its
        # own; the stored book writes the block's rows when it ends. When an
        # exception leaves an atomic block, neither book keeps any of it;
        # a plain block keeps what returned.
        told, placed, policy = len(self.told), list(self.placed), self.policy
        try:
            with self.book.batch(atomic=atomic), self.twin.batch(atomic=atomic):
                for step in steps:
                    self._batch_step(step, data)
                if abandon:
                    raise _Abandoned
        except _Abandoned:
            if atomic:
                del self.told[told:]
                self.placed, self.policy = placed, policy
                self.abandoned[id(self.book)] = self.abandoned.get(id(self.book), 0) + 1

    def _batch_step(self, step: str, data: st.DataObject) -> None:
        # one operation of a batch, its arguments drawn as its own rule draws them
        skus, quantities = st.sampled_from(MACHINE_SKUS), QUANTITIES
        if step == "place":
            lines = data.draw(st.lists(st.tuples(skus, quantities), min_size=1, max_size=3))
            self.place(
                lines,
                data.draw(st.sampled_from(TIERS)),
                data.draw(st.booleans()),
                data.draw(st.sampled_from([None, 1, 3])),
                data.draw(st.booleans()),
            )
        elif step == "receive":
            ref = data.draw(st.sampled_from([None, "R1", "R2"]))
            self.receive(data.draw(skus), data.draw(quantities), ref)
        elif step == "cancel":
            self.cancel(data, data.draw(st.booleans()))
        elif step == "ship":
            self.ship(data)
        elif step == "change_tier":
            self.change_tier(data, data.draw(st.sampled_from(TIERS)))
        elif step == "expect":
            ref = data.draw(st.sampled_from(["PO-1", "PO-2"]))
            self.expect(data.draw(skus), data.draw(quantities), ref)
        elif step == "receive_against":
            ref = data.draw(st.sampled_from(["PO-1", "PO-2"]))
            self.receive_against(data.draw(skus), data.draw(quantities), ref)
        elif step == "hold":
            hold_id = data.draw(st.sampled_from(["H-1", "H-2"]))
            self.hold(data.draw(skus), data.draw(quantities), hold_id)
        elif step == "settle_hold":
            self.settle_hold(data.draw(st.sampled_from(["H-1", "H-2"])), data.draw(st.booleans()))
        elif step == "expire":
            self.expire(data.draw(st.sampled_from([0, 2, 5])))
        elif step == "firm":
            self.firm(data, data.draw(st.booleans()))
        elif step == "rebalance":
            self.rebalance(data.draw(st.none() | skus))
        elif step == "receive_return":
            self.receive_return(
                data,
                data.draw(st.sampled_from([1, 2])),
                data.draw(st.sampled_from([None, "RMA-1", "RMA-2"])),
                data.draw(st.booleans()),
            )
        elif step == "update_expected":
            self.update_expected(
                data.draw(st.sampled_from(["PO-1", "PO-2"])),
                data.draw(st.none() | quantities),
                data.draw(st.sampled_from([None, 1, 5])),
            )
        elif step == "cancel_expected":
            self.cancel_expected(data.draw(st.sampled_from(["PO-1", "PO-2"])))
        elif step == "lead_time":
            self.lead_time(data.draw(skus), data.draw(st.sampled_from([None, 1, 4])))
        elif step == "change_policy":
            self.change_policy(data.draw(st.integers(min_value=0, max_value=len(POLICIES) - 1)))
        else:
            assert step == "cap", step
            self.cap(data.draw(skus), data.draw(st.sampled_from([None, 3, 12])))

    @invariant()
    def the_stored_book_is_the_twin(self) -> None:
        # the store, opened afresh, holds exactly the twin
        with BackorderBook(self.policy, self.open_store(self.name), self.clock) as fresh:
            stored, twin = snapshot(fresh), snapshot(self.twin)
            assert stored == twin, {k: (stored[k], twin[k]) for k in twin if stored[k] != twin[k]}
            fresh.inspect().check()
            fresh.ledger.verify()
        # and both long-lived handles answer alike about what they hold (a
        # lazily loaded book is not made to load more here)
        for book in (self.book, self.second):
            held = book.inspect().loaded_skus()
            for sku in held:
                assert book.stock(sku) == self.twin.stock(sku)
                assert book.waiting(sku) == self.twin.waiting(sku)
                assert book.promise(sku, 3, "vip") == self.twin.promise(sku, 3, "vip")
            for order_id in book.inspect().loaded_orders():
                assert book.status(order_id) == self.twin.status(order_id)
                assert book.eta_for_order(order_id) == self.twin.eta_for_order(order_id)

    @invariant()
    def catching_up_reads_only_what_changed(self) -> None:
        # a repository that can list what changed never needs a whole re-load
        # (but after an abandoned atomic block)
        for book in (self.book, self.second):
            if isinstance(book.repository, IncrementalRepository):
                assert book.inspect().reloads <= self.abandoned.get(id(book), 0)

    @invariant()
    def every_invariant_holds(self) -> None:
        for book in (self.book, self.second):
            book.inspect().check()  # on what a lazily loaded book holds
            for sku in book.inspect().loaded_skus():
                level = book.stock(sku)
                assert 0 <= level.allocated <= level.on_hand

    @invariant()
    def the_outbox_holds_every_event(self) -> None:
        assert _events(self.book) == self.told

    def teardown(self) -> None:
        self.book.close()
        self.second.close()
