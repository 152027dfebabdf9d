"""Scheduled supply and promises: expected receipts, lead times, ETAs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from ..domain import Order, OrderLine, check_quantity, check_text
from ..errors import ArgumentTypeError, DuplicateReference, InvalidArgument, UnknownReference, shown
from ..eta import LEAD_TIME, SCHEDULED, UNKNOWN, Eta, arrival
from ..events import Event, SupplyCancelled, SupplyExpected
from ..results import ExpectResult, OrderEta, SettingResult
from .changes import (
    LeadTimeSet,
    SupplyChanged,
    SupplyCounterSet,
    SupplyScheduled,
    SupplyUnscheduled,
    UndoLog,
)
from .core import FILL_STRICT, MAX_DURATION, Applied, Engine
from .etas import has_dates
from .state import ScheduledReceipt, State, schedule, unschedule

__all__ = [
    "cancel_expected",
    "eta",
    "eta_for_order",
    "expect",
    "promise",
    "receive_against",
    "scheduled",
    "set_lead_time",
    "update_expected",
]

_BASIS_RANK = {SCHEDULED: 0, LEAD_TIME: 1, UNKNOWN: 2}


def scheduled(state: State, reference: object) -> ScheduledReceipt:
    """The expected receipt `reference`. Raises UnknownReference. O(1)."""
    expected = state.expected.get(check_text(reference, "reference"))
    if expected is None:
        raise UnknownReference(f"reference {shown(reference)} is not an expected receipt")
    return expected


def _result(expected: ScheduledReceipt) -> Callable[[tuple[Event, ...]], ExpectResult]:
    return lambda events: ExpectResult(
        expected.reference, expected.sku, expected.quantity, expected.arriving, events
    )


def expect(
    engine: Engine, sku: str, quantity: int, arriving: datetime | date, reference: str
) -> Applied[ExpectResult]:
    """Record a scheduled receipt (see `BackorderBook.expect`). O(log r)."""
    sku = check_text(sku, "sku")
    quantity = check_quantity(quantity, "quantity")
    when = arrival(arriving, "arriving")
    reference = check_text(reference, "reference")
    state = engine.state
    if reference in state.expected:
        raise DuplicateReference(
            f"reference {shown(reference)} is already an expected receipt "
            f"(of sku {shown(state.expected[reference].sku)})"
        )
    with engine.begin() as log:
        target = engine.sku(log, sku)
        log.touch_sku(target)
        log.changes.append(SupplyCounterSet(state.expected_seq))
        state.expected_seq += 1
        expected = ScheduledReceipt(reference, sku, quantity, when, state.expected_seq)
        schedule(state, expected)
        log.changes.append(SupplyScheduled(expected))
        log.events.append(SupplyExpected(reference, sku, quantity, when, log.at))
    return Applied(log, _result(expected))


def update_expected(
    engine: Engine,
    reference: str,
    quantity: int | None,
    arriving: datetime | date | None,
) -> Applied[ExpectResult]:
    """Resize or move a scheduled receipt (see `BackorderBook.update_expected`)."""
    state = engine.state
    expected = scheduled(state, reference)
    new_quantity = expected.quantity if quantity is None else check_quantity(quantity, "quantity")
    when = expected.arriving if arriving is None else arrival(arriving, "arriving")
    with engine.begin() as log:
        log.touch_sku(state.skus[expected.sku])
        log.changes.append(SupplyChanged(expected, expected.quantity, expected.arriving))
        unschedule(state, expected)
        expected.quantity, expected.arriving = new_quantity, when
        schedule(state, expected)
        log.events.append(
            SupplyExpected(expected.reference, expected.sku, new_quantity, when, log.at)
        )
    return Applied(log, _result(expected))


def cancel_expected(engine: Engine, reference: str) -> Applied[ExpectResult]:
    """Drop a scheduled receipt (see `BackorderBook.cancel_expected`)."""
    state = engine.state
    expected = scheduled(state, reference)
    with engine.begin() as log:
        log.touch_sku(state.skus[expected.sku])
        unschedule(state, expected)
        log.changes.append(SupplyUnscheduled(expected))
        log.events.append(
            SupplyCancelled(expected.reference, expected.sku, expected.quantity, log.at)
        )
    return Applied(log, _result(expected))


def receive_against(state: State, log: UndoLog, expected: ScheduledReceipt, quantity: int) -> None:
    """A delivery against a scheduled receipt: what arrived is no longer expected."""
    if quantity >= expected.quantity:
        unschedule(state, expected)
        log.changes.append(SupplyUnscheduled(expected))
    else:
        log.changes.append(SupplyChanged(expected, expected.quantity, expected.arriving))
        unschedule(state, expected)
        expected.quantity -= quantity
        schedule(state, expected)


def expected_of(state: State, sku: str) -> tuple[ExpectResult, ...]:
    """Every scheduled receipt of `sku`, in date order. O(r)."""
    check_text(sku, "sku")
    target = state.skus.get(sku)
    if target is None:
        return ()
    return tuple(
        ExpectResult(ref, sku, target.expected[ref].quantity, when, ())
        for when, _, ref in target.schedule
    )


def set_lead_time(engine: Engine, sku: str, lead_time: timedelta | None) -> Applied[SettingResult]:
    """Set a SKU's supplier lead time (see `BackorderBook.set_lead_time`)."""
    check_text(sku, "sku")
    if lead_time is not None:
        if not isinstance(lead_time, timedelta):
            raise ArgumentTypeError(
                f"lead_time must be a timedelta, got {type(lead_time).__name__} {shown(lead_time)}"
            )
        if lead_time <= timedelta(0):
            raise InvalidArgument(f"lead_time must be positive, got {shown(lead_time)}")
        if lead_time > MAX_DURATION:
            raise InvalidArgument(
                f"lead_time must be at most {MAX_DURATION.days} days (dates beyond cannot "
                f"be promised), got {shown(lead_time)}"
            )
    with engine.begin() as log:
        target = engine.sku(log, sku)
        log.touch_sku(target)
        log.changes.append(LeadTimeSet(target, target.lead_time))
        target.lead_time = lead_time
    return Applied(log, SettingResult)


def eta(engine: Engine, order_id: str, sku: str) -> Eta | None:
    """When the order's line will be complete (see `BackorderBook.eta`)."""
    line = engine.line(order_id, sku)
    if line.backordered <= 0:
        return None
    target = engine.state.skus[line.sku]
    if not has_dates(target):
        return engine.etas.unknown
    return engine.etas.line_eta(target, line, engine.now())


def eta_for_order(engine: Engine, order_id: str) -> OrderEta:
    """The order's promised date and each line's ETA (see `BackorderBook.eta_for_order`)."""
    record = engine.record(order_id)
    lines = tuple((line.sku, eta(engine, order_id, line.sku)) for line in record.lines)
    etas = [value for _, value in lines if value is not None]
    latest: Eta | None = None
    if etas:
        basis = max((value.basis for value in etas), key=_BASIS_RANK.__getitem__)
        dates = [value.at for value in etas if value.at is not None]
        at = None if basis == UNKNOWN else max(dates)
        latest = Eta(at, basis)
    return OrderEta(order_id, record.order.ship_complete, latest, lines)


def promise(engine: Engine, sku: str, quantity: int, tier: str) -> Eta | None:
    """What `eta` would say for a new line placed now (see `BackorderBook.promise`)."""
    check_text(sku, "sku")
    check_quantity(quantity, "quantity")
    check_text(tier, "tier")
    probe = Order("promise", (OrderLine(sku, quantity),), tier=tier)
    rank = engine.rank(probe)
    target = engine.state.skus.get(sku)
    if target is None:
        return engine.etas.unknown
    available = target.on_hand - target.allocated
    ahead = target.demand_index().through_rank(rank) if target.queue else 0
    short = quantity
    if ahead == 0 and available > 0:
        # the new line would be the head: the fill loop serves it at once
        if quantity <= available:
            return None
        if engine.fill_mode != FILL_STRICT:
            short, available = quantity - available, 0
    if not has_dates(target):
        return engine.etas.unknown
    return engine.etas.eta_from(target, ahead, short, engine.now(), available)
