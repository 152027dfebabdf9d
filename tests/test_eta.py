"""Promises: ETAs checked against a brute-force replay of the schedule, quotes,
EtaChanged events, inbound supply and time zones."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backorder import (
    AllocationPolicy,
    ArgumentTypeError,
    BackorderBook,
    DuplicateReference,
    Eta,
    EtaChanged,
    InMemoryRepository,
    InvalidArgument,
    LineBackordered,
    Order,
    OrderLine,
    PartialFill,
    PriorityTiers,
    StrictFIFO,
    SupplyExpected,
    UnknownReference,
)

from .helpers import START, snapshot
from .strategies import TIERS

POLICIES: list[AllocationPolicy] = [
    StrictFIFO(),
    PartialFill(),
    PriorityTiers(),
    PriorityTiers(fill=StrictFIFO()),
]
SKU_NAMES = ("MUG", "TEE")
DAY = timedelta(days=1)


class FixedClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def book_for(policy: AllocationPolicy) -> tuple[BackorderBook, FixedClock]:
    clock = FixedClock()
    return BackorderBook(policy, InMemoryRepository(), clock), clock


op = st.one_of(
    st.tuples(
        st.just("place"),
        st.sampled_from(SKU_NAMES),
        st.integers(1, 6),
        st.sampled_from(TIERS),
        st.booleans(),
    ),
    st.tuples(st.just("receive"), st.sampled_from(SKU_NAMES), st.integers(1, 8)),
    st.tuples(st.just("expect"), st.sampled_from(SKU_NAMES), st.integers(1, 8), st.integers(1, 20)),
    st.tuples(st.just("delay"), st.integers(0, 30), st.integers(-5, 10)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("lead"), st.sampled_from(SKU_NAMES), st.none() | st.integers(1, 40)),
    st.tuples(st.just("against"), st.integers(0, 30), st.integers(1, 8)),
    st.tuples(st.just("tier"), st.integers(0, 30), st.sampled_from(TIERS)),
    st.tuples(st.just("adjust"), st.sampled_from(SKU_NAMES), st.integers(-6, 6).filter(bool)),
    st.tuples(st.just("ship"), st.integers(0, 30)),
    st.tuples(st.just("cancel_expected"), st.integers(0, 30)),
)


def apply(book: BackorderBook, step: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """Apply one random step; return the events it caused (empty if it did nothing)."""
    kind = step[0]
    refs = sorted(book._state.expected)
    orders = list(book.order_ids())
    if kind == "place":
        _, sku, qty, tier, two = step
        lines = [OrderLine(sku, qty)]
        if two:
            other = SKU_NAMES[1 - SKU_NAMES.index(sku)]
            lines.append(OrderLine(other, qty))
        return book.place(Order(f"O-{n}", lines, tier=tier)).events
    if kind == "receive":
        return book.receive(step[1], step[2]).events
    if kind == "expect":
        _, sku, qty, days = step
        return book.expect(sku, qty, START + days * DAY, f"PO-{n}").events
    if kind == "delay" and refs:
        ref = refs[step[1] % len(refs)]
        arriving = book._state.expected[ref].arriving + step[2] * DAY
        return book.update_expected(ref, arriving=arriving).events
    if kind == "cancel" and orders:
        order_id = orders[step[1] % len(orders)]
        status = book.status(order_id)
        if any(ln.backordered + ln.allocated for ln in status.lines):
            return book.cancel(order_id).events
    if kind == "lead":
        lead = None if step[2] is None else step[2] * DAY
        return book.set_lead_time(step[1], lead).events
    if kind == "tier" and orders:
        return book.change_tier(orders[step[1] % len(orders)], step[2]).events
    if kind == "adjust":
        if book.stock(step[1]).on_hand + step[2] >= 0:
            return book.adjust(step[1], step[2], "count").events
        return ()
    if kind == "ship" and orders:
        order_id = orders[step[1] % len(orders)]
        status = book.status(order_id)
        ready = not (status.order.ship_complete and status.backordered)
        if ready and status.allocated:
            return book.ship(order_id).events
        return ()
    if kind == "cancel_expected" and refs:
        return book.cancel_expected(refs[step[1] % len(refs)]).events
    if kind == "against" and refs:
        ref = refs[step[1] % len(refs)]
        sku = book._state.expected[ref].sku
        return book.receive(sku, step[2], f"GRN-{n}", against=ref).events
    return ()


def brute_force(book: BackorderBook, now: datetime) -> dict[tuple[str, str], Eta]:
    """Replay every scheduled receipt, in date order, through a copy of the book."""
    repository = InMemoryRepository()
    repository.state = copy.deepcopy(book._state)
    twin = BackorderBook(book.policy, repository, FixedClock(now))
    partial = isinstance(book.policy, PartialFill) or (
        isinstance(book.policy, PriorityTiers) and isinstance(book.policy.fill, PartialFill)
    )
    waiting = {
        (line.order_id, line.sku): line.allocated for sku in SKU_NAMES for line in book.waiting(sku)
    }
    done: dict[tuple[str, str], datetime] = {}
    first: dict[tuple[str, str], datetime] = {}
    schedule = sorted(
        (e.arriving, e.seq, e.reference, e.sku, e.quantity) for e in book._state.expected.values()
    )
    for arriving, _, ref, sku, qty in schedule:
        twin.receive(sku, qty, f"replay-{ref}", against=ref)
        for key, allocated_before in waiting.items():
            line = twin.line(*key)
            if key not in first and line.allocated > allocated_before:
                first[key] = arriving
            if key not in done and line.backordered == 0:
                done[key] = arriving

    def date_of(key: tuple[str, str], found: dict[tuple[str, str], datetime]) -> tuple[Any, str]:
        if key in found:
            return found[key], "scheduled"
        lead = book.lead_time(key[1])
        if lead is not None:
            return now + lead, "lead_time"
        return None, "unknown"

    out = {}
    for key in waiting:
        at, basis = date_of(key, done)
        if partial:
            first_at, first_basis = date_of(key, first)
            out[key] = Eta(at, basis, first_at, first_basis)
        else:
            out[key] = Eta(at, basis)
    return out


@pytest.mark.property
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@given(steps=st.lists(op, max_size=30))
def test_eta_matches_a_replay_of_the_schedule(
    policy: AllocationPolicy, steps: list[tuple[Any, ...]]
) -> None:
    book, clock = book_for(policy)
    for n, step in enumerate(steps):
        apply(book, step, n)
    expected = brute_force(book, clock.now)
    for (order_id, sku), eta in expected.items():
        assert book.eta(order_id, sku) == eta, (order_id, sku)
    for order_id in book.order_ids():
        for line in book.status(order_id).lines:
            if line.backordered == 0:
                assert book.eta(order_id, line.sku) is None
    book._check()


@pytest.mark.property
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@given(
    steps=st.lists(op, max_size=25),
    sku=st.sampled_from(SKU_NAMES),
    quantity=st.integers(1, 9),
    tier=st.sampled_from(TIERS),
)
def test_promise_equals_eta_right_after_placing(
    policy: AllocationPolicy, steps: list[tuple[Any, ...]], sku: str, quantity: int, tier: str
) -> None:
    book, _ = book_for(policy)
    for n, step in enumerate(steps):
        apply(book, step, n)
    before = snapshot(book)
    promised = book.promise(sku, quantity, tier=tier)
    assert snapshot(book) == before
    book.place(Order("QUOTED", [OrderLine(sku, quantity)], tier=tier))
    assert book.eta("QUOTED", sku) == promised


def all_etas(book: BackorderBook) -> dict[tuple[str, str], Eta | None]:
    return {
        (line.order_id, line.sku): book.eta(line.order_id, line.sku)
        for sku in SKU_NAMES
        for line in book.waiting(sku)
    }


@pytest.mark.property
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@given(steps=st.lists(op, min_size=1, max_size=30))
def test_eta_changed_is_emitted_for_exactly_the_lines_that_moved(
    policy: AllocationPolicy, steps: list[tuple[Any, ...]]
) -> None:
    book, _ = book_for(policy)
    for n, step in enumerate(steps):
        before = all_etas(book)
        events = apply(book, step, n)
        after = all_etas(book)
        moved = {
            key
            for key in before.keys() & after.keys()
            if (before[key].at, before[key].basis) != (after[key].at, after[key].basis)  # type: ignore[union-attr]  # waiting lines have an Eta
        }
        told = [e for e in events if isinstance(e, EtaChanged)]
        assert {(e.order_id, e.sku) for e in told} == moved, step
        assert len(told) == len(moved)
        for event in told:
            assert event.old == before[event.order_id, event.sku]
            assert event.new == after[event.order_id, event.sku]
        for event in events:
            if isinstance(event, LineBackordered):
                assert event.eta == book.eta(event.order_id, event.sku) or (
                    book.line(event.order_id, event.sku).backordered != event.quantity
                )


def test_the_story_of_a_purchase_order() -> None:
    book, clock = book_for(PartialFill())
    book.place(Order("ANN", [OrderLine("LAMP", 3)]))
    book.place(Order("BOB", [OrderLine("LAMP", 2)]))
    assert book.eta("ANN", "LAMP") == Eta(None, "unknown", None, "unknown")
    book.set_lead_time("LAMP", timedelta(days=30))
    assert book.eta("BOB", "LAMP") == Eta(
        START + timedelta(days=30), "lead_time", START + timedelta(days=30), "lead_time"
    )
    result = book.expect("LAMP", 4, date(2026, 2, 1), "PO-1")
    feb1 = datetime(2026, 2, 1, tzinfo=timezone.utc)
    # BOB needs 5 in all, beyond the 4 due: only his first unit moved (no event)
    assert [type(e) for e in result.events] == [SupplyExpected, EtaChanged]
    assert book.eta("ANN", "LAMP") == Eta(feb1, "scheduled", feb1, "scheduled")
    bob = book.eta("BOB", "LAMP")
    assert bob is not None
    assert (bob.at, bob.basis, bob.first_unit_at) == (START + timedelta(days=30), "lead_time", feb1)
    # the purchase order is late by a week: both customers hear of it
    moved = book.update_expected("PO-1", arriving=date(2026, 2, 8)).events
    assert {e.order_id for e in moved if isinstance(e, EtaChanged)} == {"ANN"} | (
        {"BOB"} if bob.basis == "scheduled" else set()
    )
    # a first partial delivery: 3 of 4 arrive; 1 stays expected
    book.receive("LAMP", 3, "GRN-1", against="PO-1")
    assert book.line("ANN", "LAMP").allocated == 3
    assert [e.quantity for e in book.expected("LAMP")] == [1]
    assert book.stock("LAMP").on_hand == 3  # expected supply is never on hand
    book.receive("LAMP", 1, "GRN-2", against="PO-1")
    assert book.expected("LAMP") == ()
    # BOB now waits on the lead time; the passing of time alone emits nothing
    clock.now += timedelta(days=1)
    later = book.place(Order("CAT", [OrderLine("LAMP", 1)])).events
    assert not [e for e in later if isinstance(e, EtaChanged)]
    bob_now = book.eta("BOB", "LAMP")
    assert bob_now is not None
    assert bob_now.at == clock.now + timedelta(days=30)


def test_eta_for_a_ship_complete_order_is_its_latest_line() -> None:
    book, _ = book_for(PartialFill())
    book.place(Order("ANN", [OrderLine("MUG", 1), OrderLine("TEE", 1)], ship_complete=True))
    book.expect("MUG", 1, date(2026, 2, 1), "PO-M")
    book.expect("TEE", 1, date(2026, 3, 1), "PO-T")
    order_eta = book.eta_for_order("ANN")
    assert order_eta.eta == Eta(datetime(2026, 3, 1, tzinfo=timezone.utc), "scheduled")
    assert [sku for sku, _ in order_eta.lines] == ["MUG", "TEE"]
    book.cancel_expected("PO-T")
    assert book.eta_for_order("ANN").eta == Eta(None, "unknown")


def test_dates_and_aware_datetimes_compare_and_naive_ones_are_refused() -> None:
    book, _ = book_for(PartialFill())
    book.place(Order("ANN", [OrderLine("MUG", 2)]))
    book.expect("MUG", 1, date(2026, 2, 1), "PO-DATE")
    tokyo = timezone(timedelta(hours=9))
    # 08:00 in Tokyo on 1 February is 23:00 UTC on 31 January: it comes first
    book.expect("MUG", 1, datetime(2026, 2, 1, 8, 0, tzinfo=tokyo), "PO-TOKYO")
    assert [e.reference for e in book.expected("MUG")] == ["PO-TOKYO", "PO-DATE"]
    eta = book.eta("ANN", "MUG")
    assert eta is not None
    assert eta.first_unit_at == datetime(2026, 1, 31, 23, 0, tzinfo=timezone.utc)
    before = snapshot(book)
    with pytest.raises(InvalidArgument, match="arriving"):
        book.expect("MUG", 1, datetime(2026, 2, 1), "PO-NAIVE")
    with pytest.raises(ArgumentTypeError, match="arriving"):
        book.expect("MUG", 1, "2026-02-01", "PO-TEXT")  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(DuplicateReference, match="PO-DATE"):
        book.expect("TEE", 1, date(2026, 2, 1), "PO-DATE")
    with pytest.raises(UnknownReference, match="PO-NONE"):
        book.update_expected("PO-NONE", quantity=2)
    with pytest.raises(UnknownReference):
        book.receive("MUG", 1, "GRN-9", against="PO-NONE")
    with pytest.raises(InvalidArgument, match="MUG"):
        book.receive("TEE", 1, "GRN-9", against="PO-DATE")
    with pytest.raises(InvalidArgument, match="lead_time"):
        book.set_lead_time("MUG", timedelta(0))
    assert snapshot(book) == before


def test_eta_and_promise_answer_none_when_nothing_waits() -> None:
    book, _ = book_for(StrictFIFO())
    book.receive("MUG", 5)
    book.place(Order("ANN", [OrderLine("MUG", 2)]))
    assert book.eta("ANN", "MUG") is None
    assert book.promise("MUG", 3) is None
    assert book.promise("MUG", 4) == Eta(None, "unknown")


def test_a_tier_change_moves_the_dates_of_the_mover_and_those_it_passes() -> None:
    book, _ = book_for(PriorityTiers())
    book.place(Order("S-1", [OrderLine("MUG", 2)]))
    book.place(Order("S-2", [OrderLine("MUG", 2)]))
    book.expect("MUG", 2, date(2026, 2, 1), "PO-1")
    book.expect("MUG", 2, date(2026, 3, 1), "PO-2")
    feb, mar = (datetime(2026, m, 1, tzinfo=timezone.utc) for m in (2, 3))
    assert book.eta("S-2", "MUG").at == mar  # type: ignore[union-attr]  # S-2 waits
    events = book.change_tier("S-2", "vip").events
    moved = {e.order_id: (e.old.at, e.new.at) for e in events if isinstance(e, EtaChanged)}
    assert moved == {"S-2": (mar, feb), "S-1": (feb, mar)}
