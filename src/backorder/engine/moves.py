"""Stock that moves between orders: firm allocations, rebalance, returns.

`rebalance` serves the first short line of a SKU from the available units
and, beyond them, from the movable units (allocated, not firm) of the lines
after it, last in line first. A SKU's `MovableIndex` finds the last line
with movable units in O(log n) and sums the movable units after a line in
O(ranks + log n), so moving k units costs O(k log n) and finding that
nothing moves costs O(ranks + log n). No queue is ever scanned.
"""

from __future__ import annotations

from ..domain import MAX_QUANTITY, StockLevel, check_quantity, check_text
from ..errors import ArgumentTypeError, CannotFirm, CannotReturn, DuplicateReturn, InvalidQuantity
from ..events import LineAllocated, LineFirmed, LineReleased, StockReturned
from ..ledger import ALLOCATION, RELEASE, RETURN
from ..results import FirmResult, RebalanceResult, ReturnResult
from .changes import DeadlineAdded, ReturnCounted, UndoLog, resync
from .core import FILL_PARTIAL, FILL_STRICT, Applied, Engine, lines_named, order_status
from .state import LineState, SkuState, State, unpack

__all__ = [
    "firm",
    "rebalance",
    "rebalance_sku",
    "receive_return",
    "reopen_deadlines",
    "settle",
    "take_back",
]

#: The reason a rebalance gives for the units it takes and allocates.
REBALANCE = "rebalance"


def take_back(
    state: State, log: UndoLog, sku: SkuState, line: LineState, units: int, reason: str
) -> None:
    """Take `units` allocated units back from a line: it is short again by
    them at its own place. Non-firm units go first, firm ones only for the
    rest. Records the release and its event; no fill. O(log n)."""
    log.touch_line(line)
    was_short = line.backordered > 0
    movable = line.allocated - line.firm
    line.firm -= max(0, units - movable)
    line.allocated -= units
    sku.allocated -= units
    sku.backordered += units
    if sku.demand is not None:
        sku.demand.add(line, units)
    if sku.movable is not None:
        sku.movable.shift(line, movable, line.allocated - line.firm)
    resync(sku, line, was_short, True)
    state.journal.record(RELEASE, sku.sku, 0, -units, line.order.id, reason, log.at)
    log.events.append(LineReleased(line.order.id, sku.sku, units, reason, log.at))


def reopen_deadlines(state: State, log: UndoLog, lines: list[LineState]) -> None:
    """Lines short again: a fill-by deadline acted on while they were filled
    applies again (`expire` cancels them if it has passed). O(lines log d)."""
    for line in lines:
        deadline = line.order.deadline
        if deadline is not None and line.backordered > 0:
            item = (deadline, unpack(line.key)[1], line.order.id)
            if item not in state.deadlines:
                state.deadlines.add(item)
                log.changes.append(DeadlineAdded(item))


def rebalance_sku(engine: Engine, sku: SkuState, log: UndoLog) -> tuple[int, int]:
    """Rebalance one SKU (see `BackorderBook.rebalance`); returns (units
    moved, units allocated). O(1) with nobody short; O(ranks + log n) when
    nothing moves; O(k log n) for k units moved."""
    queue = sku.queue
    if not queue:
        return 0, 0
    if sku.movable is None and not sku.allocated_keys and sku.on_hand <= sku.allocated:
        return 0, 0  # nothing allocated to any line, nothing available
    state = engine.state
    movable = sku.movable_index()
    lines = sku.lines
    mode = engine.fill_mode
    moved = given = 0
    victims: list[LineState] = []
    at = log.at
    while queue:
        head = lines[queue[0]]
        available = sku.on_hand - sku.allocated
        offer = available + movable.after(head)
        if offer <= 0:
            break
        short = head.backordered
        if mode == FILL_PARTIAL:
            n = short if short <= offer else offer
        elif mode == FILL_STRICT:
            if short > offer:
                break
            n = short
        else:
            n = engine.allot(head, offer, short)
            if n == 0:
                break
        log.touch_sku(sku)
        take = n - available
        while take > 0:
            key = movable.last()
            # take <= the movable units after head, so the last is after it
            assert key is not None
            assert key > head.key
            victim = lines[key]
            units = min(victim.allocated - victim.firm, take)
            take_back(state, log, sku, victim, units, REBALANCE)
            victims.append(victim)
            moved += units
            take -= units
        log.touch_line(head)
        if head.allocated == 0 and head.key not in sku.allocated_keys:
            sku.mark_allocated(head.key)
        before = head.allocated - head.firm
        movable.shift(head, before, before + n)
        head.allocated += n
        sku.allocated += n
        sku.backordered -= n
        if sku.demand is not None:
            sku.demand.add(head, -n)
        if n == short:
            queue.pop(0)
        state.journal.record(ALLOCATION, sku.sku, 0, n, head.order.id, REBALANCE, at)
        log.events.append(LineAllocated(head.order.id, sku.sku, n, at))
        given += n
    if victims:
        unique = list(dict.fromkeys(victims))
        reopen_deadlines(state, log, unique)
        engine.backordered_events(log, unique)
    return moved, given


def settle(engine: Engine, log: UndoLog) -> None:
    """With a preempting policy: rebalance every SKU the operation touched
    (O(ranks + log n) per SKU when nothing moves), unless the operation did
    so after its last change (`log.settled`). Nothing otherwise."""
    if engine.preempts and not log.settled:
        for sku in list(log.skus):
            rebalance_sku(engine, sku, log)


def rebalance(engine: Engine, sku: str | None) -> Applied[RebalanceResult]:
    """Rebalance one SKU or every SKU (see `BackorderBook.rebalance`)."""
    state = engine.state
    if sku is None:
        targets = list(state.skus.values())
    else:
        check_text(sku, "sku")
        found = state.skus.get(sku)
        targets = [] if found is None else [found]
    moved = given = 0
    with engine.begin() as log:
        for target in targets:
            m, g = rebalance_sku(engine, target, log)
            moved += m
            given += g
    return Applied(log, lambda events: RebalanceResult(moved, given, events))


def firm(
    engine: Engine, order_id: str, sku: str | None, quantity: int | None
) -> Applied[FirmResult]:
    """Mark allocated units firm (see `BackorderBook.firm`). O(lines log n)."""
    record, lines = lines_named(engine, order_id, sku, quantity)
    if quantity is not None:
        quantity = check_quantity(quantity, "quantity")  # an exact int
    plan: list[tuple[LineState, int]] = []
    for line in lines:
        can = line.allocated - line.firm
        wanted = can if quantity is None else quantity
        if wanted > can:
            raise CannotFirm(
                f"quantity {wanted} of order {order_id!r} sku {line.sku!r} cannot be "
                f"firmed: only {can} allocated units are not firm yet and can be firmed"
            )
        if wanted:
            plan.append((line, wanted))
    if not plan:
        what = f"order {order_id!r}" if sku is None else f"order {order_id!r} sku {sku!r}"
        raise CannotFirm(
            f"{what} has no allocated units that are not firm yet: 0 units can be firmed"
        )
    state = engine.state
    total = 0
    with engine.begin() as log:
        for line, n in plan:
            movable = state.skus[line.sku].movable_index()
            log.touch_line(line)
            before = line.allocated - line.firm
            line.firm += n
            movable.shift(line, before, before - n)
            log.events.append(LineFirmed(record.order.id, line.sku, n, log.at))
            total += n
    return Applied(log, lambda events: FirmResult(order_status(record), total, events))


def receive_return(
    engine: Engine,
    order_id: str,
    sku: str,
    quantity: int,
    reference: str | None,
    restock: bool,
) -> Applied[ReturnResult] | ReturnResult:
    """Take shipped units of a line back (see `BackorderBook.receive_return`).
    O(1), plus the fill with `restock`."""
    line = engine.line(order_id, sku)
    quantity = check_quantity(quantity, "quantity")
    if reference is not None:
        reference = check_text(reference, "reference")
    if type(restock) is not bool:
        raise ArgumentTypeError(f"restock must be a bool, got {type(restock).__name__} {restock!r}")
    state = engine.state
    record = engine.record(order_id)
    target = state.skus[line.sku]
    if reference is not None:
        seen = target.returns.get((record.order.id, reference))
        if seen is not None:
            if seen != quantity:
                raise DuplicateReturn(
                    f"reference {reference!r} was already received as a return of order "
                    f"{order_id!r} sku {sku!r} with quantity {seen}, not {quantity}"
                )
            return ReturnResult(order_status(record), _level(target), (), True)
    can = line.shipped - line.returned
    if quantity > can:
        raise CannotReturn(
            f"quantity {quantity} of order {order_id!r} sku {sku!r} cannot come back: "
            f"only {can} shipped units are not returned yet and can be"
        )
    if restock and target.on_hand + quantity > MAX_QUANTITY:
        raise InvalidQuantity(
            f"quantity {quantity} would put sku {sku!r} on hand above {MAX_QUANTITY}"
        )
    with engine.begin() as log:
        at = log.at
        log.touch_line(line)
        line.returned += quantity
        if reference is not None:
            target.returns[record.order.id, reference] = quantity
            log.changes.append(ReturnCounted(target, record.order.id, reference))
        if restock:
            log.touch_sku(target)
            target.on_hand += quantity
            state.journal.record(RETURN, target.sku, quantity, 0, record.order.id, reference, at)
        log.events.append(
            StockReturned(record.order.id, target.sku, quantity, reference, restock, at)
        )
        if restock:
            engine.fill(target, log)
    return Applied(log, lambda events: ReturnResult(order_status(record), _level(target), events))


def _level(sku: SkuState) -> StockLevel:
    return StockLevel(sku.sku, sku.on_hand, sku.allocated, sku.on_hand - sku.allocated)
