"""Operations on orders: place, cancel, ship, change tier."""

from __future__ import annotations

from ..domain import Order, check_quantity, check_text
from ..errors import (
    ArgumentTypeError,
    BackorderLimitExceeded,
    CannotCancel,
    DuplicateOrder,
    NotReadyToShip,
    shown,
)
from ..events import (
    LineCancelled,
    LineReleased,
    LineShipped,
    OrderCancelled,
    OrderPlaced,
    TierChanged,
)
from ..ledger import RELEASE, SHIPMENT
from ..results import CancelResult, LineCounts, PlaceResult, ShipResult, TierResult, placed
from .changes import (
    DeadlineAdded,
    DeadlineRemoved,
    OrderAdded,
    OrderReranked,
    UndoLog,
    rekey,
    resync,
)
from .core import MAX_RANK, Applied, Engine, lines_named, order_status
from .holds import take_hold
from .state import (
    CheckoutHold,
    LineState,
    Record,
    SkuState,
    State,
    deadline_entry,
    order_open,
    pack,
    record_of,
)

__all__ = ["apply_cancel", "cancel", "change_tier", "drop_closed_deadline", "place", "ship"]

# A cancel plan: (line, units taken from its backordered, units released from its allocated)
CancelPlan = list[tuple[LineState, int, int]]


def place(
    engine: Engine, order: object, hold: CheckoutHold | None = None, dry_run: bool = False
) -> Applied[PlaceResult] | PlaceResult | None:
    """Place an order (see `BackorderBook.place`); with `hold`, its line for
    the hold's SKU first takes the held units; `dry_run` undoes it at the end
    (and returns None). O(k log n) per line for k allocations."""
    if not isinstance(order, Order):
        raise ArgumentTypeError(
            f"order must be an Order, got {type(order).__name__} {shown(order)}"
        )
    state = engine.state
    existing = state.orders.get(order.id)
    if existing is not None:
        if existing.order.same_request(order) and hold is None:
            return PlaceResult(order_status(existing), (), True)
        raise DuplicateOrder(
            f"order id {shown(order.id)} is already in the book with other content "
            f"(stored {shown(existing.order)})"
        )
    rank = engine.policy.rank(order)  # (`engine.rank` and `engine.begin`, inlined)
    if type(rank) is not int or not -MAX_RANK <= rank < MAX_RANK:
        rank = engine.checked_rank(rank, order)
    at = engine.now()
    log = UndoLog(state, at, engine.eta_hook)
    if order.placed_at is None:
        order = order._stamped(at)
    try:  # (the hot path spells out `with log:`: two calls fewer)
        state.seq += 1
        key = pack(rank, state.seq)
        order_lines = order.lines
        if len(order_lines) == 1:  # (the usual order: no generator)
            lines: tuple[LineState, ...] = (
                LineState(order, order_lines[0].sku, key, order_lines[0].quantity),
            )
        else:
            lines = tuple(LineState(order, ol.sku, key, ol.quantity) for ol in order_lines)
        state.orders[order.id] = record_of(order, rank, lines)
        log.changes.append(OrderAdded(order.id))
        log.events.append(OrderPlaced(order.id, order, at))
        capped: list[tuple[SkuState, int]] = []
        skus = state.skus
        for line in lines:
            sku = skus.get(line.sku)  # (`engine.sku`, inlined for a SKU already seen)
            if sku is None:
                sku = engine.sku(log, line.sku)
            if sku.limit is not None:
                capped.append((sku, sku.backordered))
            log.touch_sku(sku)
            sku.lines[key] = line
            sku.slots += 1
            line.slot = sku.slots
            if hold is not None and hold.sku == line.sku:
                take_hold(state, log, hold, line)
            short = line.ordered - line.allocated  # (`backordered`: nothing shipped or cancelled)
            if short:
                sku.queue.add(key)
                sku.backordered += short
                if sku.demand is not None:
                    sku.demand.add(line, short)
            if sku.on_hand > sku.allocated:  # (else the fill loop has nothing to offer)
                engine.fill(sku, log)
        for sku, before in capped:
            if sku.limit is not None and sku.backordered > sku.limit:
                raise BackorderLimitExceeded(
                    f"order {shown(order.id)} would leave {sku.backordered - before} units of sku "
                    f"{shown(sku.sku)} backordered, but its backorder limit {sku.limit} "
                    f"leaves room for {max(0, sku.limit - before)}"
                )
        if order.fill_by is not None:
            deadline = order.deadline
            assert deadline is not None
            item = (deadline, state.seq, order.id)
            state.deadlines.add(item)
            log.changes.append(DeadlineAdded(item))
        if engine.preempts:  # served from later lines before it is reported short
            from .moves import settle

            settle(engine, log)
            log.settled = True  # nothing changes below: the unit of work need not again
        engine.backordered_events(log, lines)
    except BaseException:
        log.rollback()
        raise
    if dry_run:
        log.rollback()
        return None
    record = state.orders[order.id]
    return Applied(log, lambda events: placed(record.order, line_counts(record), events))


def line_counts(record: Record) -> tuple[LineCounts, ...]:
    """Each line's (sku, ordered, allocated, shipped, cancelled, firm,
    returned) now, for a result built later (`results.placed`). O(lines)."""
    if type(record) is LineState:  # an order of one line
        ln = record
        return ((ln.sku, ln.ordered, ln.allocated, ln.shipped, ln.cancelled, ln.firm, ln.returned),)
    return tuple(
        (ln.sku, ln.ordered, ln.allocated, ln.shipped, ln.cancelled, ln.firm, ln.returned)
        for ln in record.lines
    )


def drop_closed_deadline(state: State, log: UndoLog, record: Record) -> None:
    """An order none of whose lines is open any more (every unit shipped or
    cancelled): its fill-by deadline no longer applies and goes (no line of
    it can be short again). O(lines + log d); O(1) for an order without one."""
    item = deadline_entry(record)
    if item is None or order_open(record):
        return
    if item in state.deadlines:
        state.deadlines.remove(item)
        log.changes.append(DeadlineRemoved(item))


def apply_cancel(engine: Engine, log: UndoLog, record: Record, plan: CancelPlan) -> int:
    """Cancel the planned units of each line; the caller runs the fill loop
    afterwards. Returns the units cancelled. O(lines log n)."""
    state, at, order_id = engine.state, log.at, record.order.id
    record_entry = state.journal.record
    total = 0
    for line, from_short, from_allocated in plan:
        target = state.skus[line.sku]
        log.touch_line(line)
        log.touch_sku(target)
        was_short, had_allocated = line.backordered > 0, line.allocated > 0
        line.cancelled += from_short + from_allocated
        target.backordered -= from_short
        if target.demand is not None:
            target.demand.add(line, -from_short)
        if from_allocated:
            # non-firm units are released first, firm ones only for the rest
            movable = line.allocated - line.firm
            line.firm -= max(0, from_allocated - movable)
            line.allocated -= from_allocated
            target.allocated -= from_allocated
            if target.movable is not None:
                target.movable.shift(line, movable, line.allocated - line.firm)
            record_entry(RELEASE, line.sku, 0, -from_allocated, order_id, "cancel", at)
            log.events.append(LineReleased(order_id, line.sku, from_allocated, "cancel", at))
        resync(target, line, was_short, had_allocated)
        log.events.append(LineCancelled(order_id, line.sku, from_short + from_allocated, at))
        total += from_short + from_allocated
    drop_closed_deadline(state, log, record)
    return total


def cancel(
    engine: Engine, order_id: str, sku: str | None, quantity: int | None
) -> Applied[CancelResult]:
    """Cancel an order, a line or part of one (see `BackorderBook.cancel`)."""
    record, lines = lines_named(engine, order_id, sku, quantity)
    if quantity is not None:
        quantity = check_quantity(quantity, "quantity")  # an exact int
    plan: CancelPlan = []
    for line in lines:
        open_units = line.backordered + line.allocated
        wanted = open_units if quantity is None else quantity
        if wanted > open_units:
            raise CannotCancel(
                f"quantity {wanted} of order {shown(order_id)} sku {shown(line.sku)} cannot "
                f"be cancelled: only {open_units} units can still be cancelled"
            )
        if wanted:
            from_short = min(wanted, line.backordered)
            plan.append((line, from_short, wanted - from_short))
    if not plan:
        what = (
            f"order {shown(order_id)}"
            if sku is None
            else f"order {shown(order_id)} sku {shown(sku)}"
        )
        raise CannotCancel(f"{what} has nothing left to cancel: 0 units can still be cancelled")
    log = engine.begin()
    try:  # (the hot path spells out `with log:`: two calls fewer)
        total = apply_cancel(engine, log, record, plan)
        if sku is None:
            log.events.append(OrderCancelled(record.order.id, total, log.at))
        engine.fill_all(log, [line for line, _, _ in plan])
    except BaseException:
        log.rollback()
        raise
    return Applied(log, lambda events: CancelResult(order_status(record), total, events))


def ship(
    engine: Engine, order_id: str, sku: str | None, quantity: int | None
) -> Applied[ShipResult]:
    """Ship allocated units (see `BackorderBook.ship`). O(lines log n)."""
    record, lines = lines_named(engine, order_id, sku, quantity)
    if quantity is not None:
        quantity = check_quantity(quantity, "quantity")  # an exact int
    if record.order.ship_complete:
        short = [(line.sku, line.backordered) for line in record.lines if line.backordered]
        if short:
            raise NotReadyToShip(
                f"order {shown(order_id)} is ship-complete and still has units "
                f"backordered: {', '.join(f'{s} {n}' for s, n in short)}"
            )
    plan: list[tuple[LineState, int]] = []
    for line in lines:
        wanted = line.allocated if quantity is None else quantity
        if wanted > line.allocated:
            raise NotReadyToShip(
                f"quantity {wanted} of order {shown(order_id)} sku {shown(line.sku)} cannot "
                f"ship: only {line.allocated} units are allocated and can ship"
            )
        if wanted:
            plan.append((line, wanted))
    if not plan:
        what = (
            f"order {shown(order_id)}"
            if sku is None
            else f"order {shown(order_id)} sku {shown(sku)}"
        )
        raise NotReadyToShip(f"{what} has nothing allocated: 0 units can ship")
    state = engine.state
    total = 0
    with engine.begin() as log:
        at = log.at
        for line, n in plan:
            target = state.skus[line.sku]
            log.touch_line(line)
            log.touch_sku(target)
            was_short = line.backordered > 0
            # firm units (the ones being picked) ship first
            movable = line.allocated - line.firm
            line.firm -= min(line.firm, n)
            line.allocated -= n
            line.shipped += n
            if target.movable is not None:
                target.movable.shift(line, movable, line.allocated - line.firm)
            target.allocated -= n
            target.on_hand -= n
            resync(target, line, was_short, True)
            state.journal.record(SHIPMENT, line.sku, -n, -n, record.order.id, None, at)
            log.events.append(LineShipped(record.order.id, line.sku, n, at))
            total += n
        drop_closed_deadline(state, log, record)
    return Applied(log, lambda events: ShipResult(order_status(record), total, events))


def change_tier(engine: Engine, order_id: str, tier: str) -> Applied[TierResult] | TierResult:
    """Move an order to another tier, keeping its arrival number (see
    `BackorderBook.change_tier`). O(lines log n) plus the fill."""
    record = engine.record(order_id)
    check_text(tier, "tier")
    old = record.order
    if tier == old.tier:
        return TierResult(order_status(record), ())
    new = old._with_tier(tier)
    rank = engine.rank(new)
    state = engine.state
    with engine.begin() as log:
        for line in record.lines:
            log.touch_sku(state.skus[line.sku])
        log.changes.append(OrderReranked(record, old, record.rank))
        rekey(state, record, new, rank)
        log.events.append(TierChanged(order_id, old.tier, tier, log.at))
        engine.fill_all(log, list(record.lines))
    return Applied(log, lambda events: TierResult(order_status(record), events))
