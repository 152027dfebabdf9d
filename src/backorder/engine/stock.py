"""Operations on stock: receive and adjust."""

from __future__ import annotations

from ..domain import MAX_QUANTITY, StockLevel, check_delta, check_quantity, check_text
from ..errors import DuplicateReceipt, InsufficientStock, InvalidArgument, InvalidQuantity, shown
from ..events import StockAdjusted, StockReceived
from ..ledger import ADJUSTMENT, RECEIPT
from ..results import AdjustResult, ReceiveResult
from .changes import ReceiptCounted
from .core import Applied, Engine
from .holds import shrink_hold
from .moves import reopen_deadlines, take_back
from .state import LineState, ScheduledReceipt, State
from .supply import receive_against, scheduled

__all__ = ["adjust", "receive", "stock_level"]


def stock_level(state: State, sku: str) -> StockLevel:
    """The `StockLevel` of a SKU (all zero for one never seen). O(1)."""
    current = state.skus.get(sku)
    if current is None:
        return StockLevel(sku, 0, 0, 0)
    return StockLevel(sku, current.on_hand, current.allocated, current.on_hand - current.allocated)


def receive(
    engine: Engine, sku: str, quantity: int, reference: str | None, against: str | None
) -> Applied[ReceiveResult] | ReceiveResult:
    """Take units into stock, then serve the line (see `BackorderBook.receive`)."""
    sku = check_text(sku, "sku")
    quantity = check_quantity(quantity, "quantity")
    if reference is not None:
        reference = check_text(reference, "reference")
    state = engine.state
    expected: ScheduledReceipt | None = None
    if against is not None:
        expected = scheduled(state, against)
        if expected.sku != sku:
            raise InvalidArgument(
                f"against {shown(against)} is an expected receipt of sku "
                f"{shown(expected.sku)}, not {shown(sku)}"
            )
    current = state.skus.get(sku)
    if current is not None and reference is not None:
        seen = current.receipts.get(reference)
        if seen is not None:
            if seen != quantity:
                raise DuplicateReceipt(
                    f"reference {shown(reference)} was already received for sku "
                    f"{shown(sku)} with quantity {seen}, not {quantity}"
                )
            return ReceiveResult(stock_level(state, sku), (), True)
    on_hand = current.on_hand if current is not None else 0
    if on_hand + quantity > MAX_QUANTITY:
        raise InvalidQuantity(
            f"quantity {quantity} would put sku {shown(sku)} on hand above {MAX_QUANTITY}"
        )
    log = engine.begin()
    try:  # (the hot path spells out `with log:`: two calls fewer)
        at = log.at
        target = engine.sku(log, sku)
        log.touch_sku(target)
        target.on_hand += quantity
        if expected is not None:
            receive_against(state, log, expected, quantity)
        if reference is not None:
            target.receipts[reference] = quantity
            log.changes.append(ReceiptCounted(target, reference))
        state.journal.record(RECEIPT, sku, quantity, 0, None, reference, at)
        log.events.append(StockReceived(sku, quantity, reference, at))
        engine.fill(target, log)
    except BaseException:
        log.rollback()
        raise
    return Applied(log, lambda events: ReceiveResult(stock_level(state, sku), events))


def adjust(engine: Engine, sku: str, delta: int, reason: str) -> Applied[AdjustResult]:
    """Correct the count on hand (see `BackorderBook.adjust`): holds give units
    back first, then the lines last in line (units that are not firm before
    any firm one). O(r log n) for r lines reclaimed."""
    sku = check_text(sku, "sku")
    delta = check_delta(delta, "delta")
    reason = check_text(reason, "reason")
    state = engine.state
    current = state.skus.get(sku)
    on_hand = current.on_hand if current is not None else 0
    if on_hand + delta < 0:
        raise InsufficientStock(
            f"delta {delta} would remove more than the {on_hand} units of sku {shown(sku)} on hand"
        )
    if on_hand + delta > MAX_QUANTITY:
        raise InvalidQuantity(
            f"delta {delta} would put sku {shown(sku)} on hand above {MAX_QUANTITY}"
        )
    reclaimed_units = 0
    with engine.begin() as log:
        at = log.at
        target = engine.sku(log, sku)
        log.touch_sku(target)
        excess = target.allocated - (target.on_hand + delta)
        reclaimed: list[LineState] = []
        # checkout holds are the newest claims: they give units back first
        for hold in sorted(target.holds.values(), key=lambda h: h.seq, reverse=True):
            if excess <= 0:
                break
            take = min(hold.quantity, excess)
            shrink_hold(state, log, hold, take, "adjustment")
            excess -= take
            reclaimed_units += take
        # then the lines last in line: their units that are not firm first (the
        # movable index, kept once any unit of the SKU is firm), firm ones last
        movable = target.movable
        while excess > 0:
            key = None if movable is None else movable.last()
            if key is None:  # every allocated unit left is firm (or none is)
                line = target.lines[target.last_allocated()]
                take = min(line.allocated, excess)
            else:
                line = target.lines[key]
                take = min(line.allocated - line.firm, excess)
            take_back(state, log, target, line, take, "adjustment")
            excess -= take
            reclaimed_units += take
            reclaimed.append(line)
        reopen_deadlines(state, log, reclaimed)
        target.on_hand += delta
        state.journal.record(ADJUSTMENT, sku, delta, 0, None, reason, at)
        log.events.append(StockAdjusted(sku, delta, reason, at))
        engine.backordered_events(log, reclaimed)
        engine.fill(target, log)
    units = reclaimed_units
    return Applied(log, lambda events: AdjustResult(stock_level(state, sku), units, events))
