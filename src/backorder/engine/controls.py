"""Shop controls: backorder caps, fill-by deadlines, checkout holds."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain import Order, add_duration, check_quantity, check_text
from ..errors import (
    ArgumentTypeError,
    BackorderLimitExceeded,
    DuplicateHold,
    HoldExpired,
    InsufficientStock,
    InvalidArgument,
    InvalidOrder,
    UnknownHold,
    shown,
)
from ..events import OrderExpired, PolicyChanged, StockHeld
from ..ledger import HOLD
from ..policies import AllocationPolicy, policy_identity
from ..results import ExpireResult, HoldResult, PlaceResult, SettingResult
from .changes import (
    DeadlineRemoved,
    ExpiredHoldIdReused,
    HoldAdded,
    HoldCounterSet,
    HoldIdExpired,
    LimitSet,
    OrderReranked,
    PolicyRecorded,
    rekey,
)
from .core import MAX_DURATION, Applied, Engine
from .holds import shrink_hold
from .orders import apply_cancel, place
from .state import CheckoutHold, LineState, add_hold
from .stock import stock_level

__all__ = [
    "active_hold",
    "change_policy",
    "confirm_hold",
    "expire",
    "hold",
    "release_hold",
    "set_backorder_limit",
]


def set_backorder_limit(engine: Engine, sku: str, units: int | None) -> Applied[SettingResult]:
    """Cap the units that may wait on a SKU (see `BackorderBook.set_backorder_limit`)."""
    check_text(sku, "sku")
    if units is not None and units != 0:
        units = check_quantity(units, "units")
    elif units is not None and (not isinstance(units, int) or isinstance(units, bool)):
        check_quantity(units, "units")  # raises: 0 of the wrong type
    current = engine.state.skus.get(sku)
    short = current.backordered if current is not None else 0
    if units is not None and units < short:
        raise BackorderLimitExceeded(
            f"backorder limit {units} for sku {shown(sku)} is below the {short} units "
            f"already backordered"
        )
    with engine.begin() as log:
        target = engine.sku(log, sku)
        log.changes.append(LimitSet(target, target.limit))
        target.limit = units
    return Applied(log, SettingResult)


def expire(engine: Engine, at: datetime, when: datetime) -> Applied[ExpireResult]:
    """Act on every deadline and hold that has passed by `when` (see
    `BackorderBook.expire`); `at` is the operation's time. O(e log n) for e
    deadlines and holds that passed, plus the fill."""
    state = engine.state
    log = engine.begin(at)
    expired: list[str] = []
    released: list[str] = []
    with log:
        freed: list[LineState] = []
        deadlines = state.deadlines
        while deadlines and deadlines[0][0] <= when:
            item = deadlines.pop(0)
            log.changes.append(DeadlineRemoved(item))
            record = state.orders[item[2]]
            if not any(line.backordered for line in record.lines):
                continue  # filled (or cancelled) in time
            complete = record.order.ship_complete
            plan = [
                (line, line.backordered, line.allocated if complete else 0)
                for line in record.lines
                if line.backordered or (complete and line.allocated)
            ]
            total = apply_cancel(engine, log, record, plan)
            log.events.append(OrderExpired(record.order.id, total, at))
            expired.append(record.order.id)
            freed.extend(line for line, _, _ in plan)
        expiry = state.hold_expiry
        while expiry and expiry[0][0] <= when:
            item_hold = state.holds[expiry[0][1]]
            shrink_hold(state, log, item_hold, item_hold.quantity, "expired")
            state.expired_holds.add(item_hold.hold_id)
            log.changes.append(HoldIdExpired(item_hold.hold_id))
            released.append(item_hold.hold_id)
            engine.fill(state.skus[item_hold.sku], log)
        engine.fill_all(log, freed)
    return Applied(log, lambda events: ExpireResult(tuple(expired), tuple(released), events))


def hold(
    engine: Engine, sku: str, quantity: int, ttl: timedelta, hold_id: str | None
) -> Applied[HoldResult]:
    """Reserve available units for a checkout (see `BackorderBook.hold`). O(log h)."""
    sku = check_text(sku, "sku")
    quantity = check_quantity(quantity, "quantity")
    if not isinstance(ttl, timedelta):
        raise ArgumentTypeError(f"ttl must be a timedelta, got {type(ttl).__name__} {shown(ttl)}")
    if ttl <= timedelta(0):
        raise InvalidArgument(f"ttl must be positive, got {shown(ttl)}")
    if ttl > MAX_DURATION:
        raise InvalidArgument(f"ttl must be at most {MAX_DURATION.days} days, got {shown(ttl)}")
    state = engine.state
    if hold_id is not None:
        check_text(hold_id, "hold_id")
        if hold_id in state.holds:
            raise DuplicateHold(f"hold_id {shown(hold_id)} is already an active hold")
    current = state.skus.get(sku)
    if current is not None and current.queue:
        raise InsufficientStock(
            f"sku {shown(sku)} has {len(current.queue)} lines waiting: its stock goes to "
            f"them first, so quantity {quantity} cannot be held"
        )
    available = 0 if current is None else current.on_hand - current.allocated
    if quantity > available:
        raise InsufficientStock(
            f"quantity {quantity} of sku {shown(sku)} cannot be held: only {available} available"
        )
    with engine.begin() as log:
        at = log.at
        log.changes.append(HoldCounterSet(state.hold_seq))
        state.hold_seq += 1
        if hold_id is None:
            hold_id = f"H-{state.hold_seq}"
            while hold_id in state.holds or hold_id in state.expired_holds:
                state.hold_seq += 1
                hold_id = f"H-{state.hold_seq}"
        assert current is not None
        new = CheckoutHold(hold_id, sku, quantity, add_duration(at, ttl, "ttl"), state.hold_seq)
        if hold_id in state.expired_holds:  # an expired id used again
            state.expired_holds.discard(hold_id)
            log.changes.append(ExpiredHoldIdReused(hold_id))
        add_hold(state, new)
        log.changes.append(HoldAdded(new))
        log.touch_sku(current)
        current.allocated += quantity
        state.journal.record(HOLD, sku, 0, quantity, None, hold_id, at)
        log.events.append(StockHeld(hold_id, sku, quantity, new.expires_at, at))
    return Applied(
        log,
        lambda events: HoldResult(
            new.hold_id, sku, quantity, new.expires_at, stock_level(state, sku), events
        ),
    )


def active_hold(engine: Engine, hold_id: object) -> CheckoutHold:
    """The active hold `hold_id`. Raises UnknownHold, HoldExpired. O(1)."""
    state = engine.state
    found = state.holds.get(check_text(hold_id, "hold_id"))
    if found is None:
        if hold_id in state.expired_holds:
            raise HoldExpired(f"hold_id {shown(hold_id)} expired: its units went back to the line")
        raise UnknownHold(f"hold_id {shown(hold_id)} is not an active hold")
    return found


def release_hold(engine: Engine, hold_id: str) -> Applied[HoldResult]:
    """Give a hold's units back to the line (see `BackorderBook.release_hold`)."""
    held = active_hold(engine, hold_id)
    state = engine.state
    with engine.begin() as log:
        shrink_hold(state, log, held, held.quantity, "released")
        engine.fill(state.skus[held.sku], log)
    return Applied(
        log,
        lambda events: HoldResult(
            held.hold_id,
            held.sku,
            held.quantity,
            held.expires_at,
            stock_level(state, held.sku),
            events,
        ),
    )


def confirm_hold(engine: Engine, hold_id: str, order: Order) -> Applied[PlaceResult]:
    """Turn a hold into an order (see `BackorderBook.confirm_hold`)."""
    held = active_hold(engine, hold_id)
    if not isinstance(order, Order):
        raise ArgumentTypeError(
            f"order must be an Order, got {type(order).__name__} {shown(order)}"
        )
    if held.expires_at <= engine.now():
        raise HoldExpired(
            f"hold_id {shown(hold_id)} ran out at {held.expires_at.isoformat()}: "
            f"confirm before it runs out"
        )
    if all(line.sku != held.sku for line in order.lines):
        raise InvalidOrder(
            f"order {shown(order.id)} has no line for sku {shown(held.sku)} "
            f"of hold {shown(hold_id)}"
        )
    result = place(engine, order, held)
    assert isinstance(result, Applied)
    return result


def change_policy(
    engine: Engine, policy: AllocationPolicy
) -> Applied[SettingResult] | SettingResult:
    """Switch the book to `policy` (see `BackorderBook.change_policy`): every
    line keeps its arrival number, is ranked again, and the fill loop runs
    on every SKU. Every new rank is computed (and checked) before anything
    changes. O(lines log n)."""
    for method in ("rank", "allot"):
        if not callable(getattr(policy, method, None)):
            raise ArgumentTypeError(f"policy must have a {method} method, got {shown(policy)}")
    identity = policy_identity(policy)
    if identity == engine.identity and engine.state.policy_id == identity:
        return SettingResult(())
    state = engine.state
    old = engine.policy
    probe = Engine(state, policy, engine.now)
    ranks = [(record, probe.rank(record.order)) for record in state.orders.values()]
    with engine.begin() as log:
        old_id = engine.identity
        log.changes.append(PolicyRecorded(state, lambda: engine.set_policy(old)))
        engine.set_policy(policy)
        state.policy_id, state.policy_saved = identity, False
        for record, rank in ranks:
            if rank != record.rank:
                for line in record.lines:
                    log.touch_sku(state.skus[line.sku])
                log.changes.append(OrderReranked(record, record.order, record.rank))
                rekey(state, record, record.order, rank)
        log.events.append(PolicyChanged(old_id, identity, log.at))
        for sku in list(state.skus.values()):
            if engine.preempts:  # (a preempting policy rebalances what an operation
                log.touch_sku(sku)  # touches: a switch touches every SKU)
            engine.fill(sku, log)
    return Applied(log, SettingResult)
