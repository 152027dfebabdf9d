"""Checkout holds: the two steps every operation on a hold is made of."""

from __future__ import annotations

from ..events import HoldConfirmed, HoldReleased, LineAllocated
from ..ledger import ALLOCATION, RELEASE
from .changes import HoldRemoved, HoldShrunk, UndoLog
from .state import CheckoutHold, LineState, State, drop_hold

__all__ = ["shrink_hold", "take_hold"]


def shrink_hold(state: State, log: UndoLog, hold: CheckoutHold, units: int, reason: str) -> None:
    """Give `units` held units back (all of them drops the hold); no fill. O(log h)."""
    target = state.skus[hold.sku]
    log.touch_sku(target)
    target.allocated -= units
    state.journal.record(RELEASE, hold.sku, 0, -units, None, hold.hold_id, log.at)
    log.events.append(HoldReleased(hold.hold_id, hold.sku, units, reason, log.at))
    if units == hold.quantity:
        log.changes.append(HoldRemoved(hold))
        drop_hold(state, hold)
    else:
        log.changes.append(HoldShrunk(hold, hold.quantity))
        hold.quantity -= units


def take_hold(state: State, log: UndoLog, hold: CheckoutHold, line: LineState) -> None:
    """Move a confirmed hold's units to the new order's line: the hold is
    released in the ledger and the line allocated, with no fill between, so
    nobody else can take them; what the line does not need is freed."""
    at = log.at
    target = state.skus[hold.sku]
    held = hold.quantity
    shrink_hold(state, log, hold, held, "confirmed")
    log.events.pop()  # reported below as HoldConfirmed (and a release of the rest)
    n = min(held, line.ordered)
    log.touch_line(line)
    line.allocated = n
    target.allocated += n
    target.mark_allocated(line.key)
    if target.movable is not None:
        target.movable.shift(line, 0, n)
    state.journal.record(ALLOCATION, hold.sku, 0, n, line.order.id, hold.hold_id, at)
    log.events.append(HoldConfirmed(hold.hold_id, line.order.id, hold.sku, n, at))
    log.events.append(LineAllocated(line.order.id, hold.sku, n, at))
    if held > n:
        log.events.append(HoldReleased(hold.hold_id, hold.sku, held - n, "confirmed", at))
