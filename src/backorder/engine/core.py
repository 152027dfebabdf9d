"""The engine's core: the state it works on, the policy, and the fill loop.

An operation of the engine validates everything first, then changes the
state inside `with engine.begin() as log:` (leaving the block by an
exception undoes every change) and returns an `Applied`: the undo log and a
function that builds the caller's result once the change is committed. The
book (the façade) commits, builds the result and hands out the events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from ..domain import LineStatus, Order, OrderStatus, check_quantity, check_text
from ..errors import InvalidArgument, PolicyError, UnknownOrder, UnknownSku, shown
from ..events import Event, LineAllocated, LineBackordered
from ..ledger import ALLOCATION
from ..policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO, policy_identity
from .changes import SkuAdded, UndoLog
from .etas import EtaRules
from .state import LineState, Record, SkuState, State

__all__ = [
    "FILL_CUSTOM",
    "FILL_PARTIAL",
    "FILL_STRICT",
    "Applied",
    "Engine",
    "line_status",
    "lines_named",
    "order_status",
]

_R = TypeVar("_R")

# How the fill loop decides an allotment: the built-in fills are computed
# inline (plain ints, compared in the hot loop); anything else asks the policy.
FILL_CUSTOM = 0
#: The longest lead time or hold: about 100 years, so every date stays computable.
MAX_DURATION = timedelta(days=36_600)
#: Ranks are stored as 64-bit integers: -2**63 <= rank < 2**63.
MAX_RANK = 2**63
FILL_STRICT = 1
FILL_PARTIAL = 2


def fill_mode(policy: object) -> int:
    """The fill mode of a policy. A subclass may override `allot`, so only
    the exact built-in types are computed inline."""
    if type(policy) is PriorityTiers:
        policy = policy.fill
    if type(policy) is PartialFill:
        return FILL_PARTIAL
    if type(policy) is StrictFIFO:
        return FILL_STRICT
    return FILL_CUSTOM


def line_status(line: LineState) -> LineStatus:
    """The public read view of a line. O(1)."""
    return LineStatus(
        line.order.id,
        line.sku,
        line.order.tier,
        line.ordered,
        line.allocated,
        line.shipped,
        line.cancelled,
        line.ordered - line.allocated - line.shipped - line.cancelled,
        line.firm,
        line.returned,
    )


def order_status(record: Record) -> OrderStatus:
    """The public read view of an order. O(lines)."""
    return OrderStatus(record.order, tuple(line_status(ln) for ln in record.lines))


class Applied(Generic[_R]):
    """A change the engine made: its undo log and how to build the result
    once it is committed (`make(events)`)."""

    __slots__ = ("log", "make")

    def __init__(self, log: UndoLog, make: Callable[[tuple[Event, ...]], _R]) -> None:
        self.log = log
        self.make = make


class Engine:
    """The state of one book and the rules it is changed by.

    `state` is replaced by the book when storage reloads it; `now` is the
    book's clock (already checked to return aware datetimes).
    """

    __slots__ = ("eta_hook", "etas", "fill_mode", "identity", "now", "policy", "preempts", "state")

    def __init__(self, state: State, policy: AllocationPolicy, now: Callable[[], datetime]) -> None:
        self.state = state
        self.now = now
        self.set_policy(policy)

    def set_policy(self, policy: AllocationPolicy) -> None:
        """Work under `policy` from now on (the caller re-ranks the lines)."""
        self.policy = policy
        self.identity = policy_identity(policy)
        self.fill_mode = fill_mode(policy)
        # a preempting policy: every SKU an operation touches is rebalanced
        self.preempts = bool(getattr(policy, "preempts", False))
        self.etas = EtaRules(self.fill_mode == FILL_PARTIAL)
        self.eta_hook = self.etas.snapshot  # (bound once, not per operation)

    def begin(self, at: datetime | None = None) -> UndoLog:
        """A new undo log for an operation at `at` (the clock's time when None)."""
        return UndoLog(self.state, self.now() if at is None else at, self.eta_hook)

    # -- look-ups --------------------------------------------------------

    def record(self, order_id: object) -> Record:
        """The order's record. Raises UnknownOrder (bad ids: InvalidArgument). O(1)."""
        record = self.state.orders.get(check_text(order_id, "order_id"))
        if record is None:
            raise UnknownOrder(f"order_id {shown(order_id)} is not in the book")
        return record

    def line(self, order_id: object, sku: object) -> LineState:
        """The order's line for `sku`. Raises UnknownOrder / UnknownSku. O(lines)."""
        record = self.state.orders.get(check_text(order_id, "order_id"))  # (`record`, inlined:
        if record is None:  # every read of a line comes through here)
            raise UnknownOrder(f"order_id {shown(order_id)} is not in the book")
        check_text(sku, "sku")
        for line in record.lines:
            if line.sku == sku:
                return line
        raise UnknownSku(f"order {shown(order_id)} has no line for sku {shown(sku)}")

    def sku(self, log: UndoLog, name: str) -> SkuState:
        """The SKU's state, made (and recorded) if the book never saw it."""
        sku = self.state.skus.get(name)
        if sku is None:
            sku = self.state.skus[name] = SkuState(name)
            log.changes.append(SkuAdded(name))
        return sku

    # -- the policy --------------------------------------------------------

    def rank(self, order: Order) -> int:
        """The policy's rank of an order. Raises PolicyError for a non-int."""
        rank = self.policy.rank(order)
        if type(rank) is int and -MAX_RANK <= rank < MAX_RANK:
            return rank  # (the usual case, checked at once)
        return self.checked_rank(rank, order)

    def checked_rank(self, rank: object, order: Order) -> int:
        """`rank` (what the policy's rank returned for `order`) as a plain
        int in range. Raises PolicyError for anything else. O(1)."""
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise PolicyError(
                f"policy {shown(self.policy)} rank returned {shown(rank)} for order "
                f"{shown(order.id)}; it must be an int"
            )
        rank = int.__int__(rank)  # an int subclass's own arithmetic is never used
        if not -MAX_RANK <= rank < MAX_RANK:
            raise PolicyError(
                f"policy {shown(self.policy)} rank returned {shown(rank)} for order "
                f"{shown(order.id)}; it must be an int from {-MAX_RANK} to {MAX_RANK - 1}"
            )
        return rank

    def allot(self, line: LineState, available: int, short: int) -> int:
        """The policy's allotment to the head. Raises PolicyError out of range."""
        n = self.policy.allot(line_status(line), available)
        if isinstance(n, int) and not isinstance(n, bool):
            n = int.__int__(n)  # an int subclass's own arithmetic is never used
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= min(short, available):
            raise PolicyError(
                f"policy {shown(self.policy)} allot returned {shown(n)} for order "
                f"{shown(line.order.id)} sku {shown(line.sku)} (backordered {short}, "
                f"available {available}); it must be an int from 0 to "
                f"{min(short, available)}"
            )
        return n

    # -- the fill loop -----------------------------------------------------

    def fill(self, sku: SkuState, log: UndoLog) -> None:
        """Offer the head of the SKU's line what is available, until it waits
        or nothing is left. Only the head is ever offered stock. O(k log n)
        for k allocations. One flat loop with locals hoisted: it inlines the
        queue/index/counter step of `changes.resync` for speed."""
        queue = sku.queue
        if not queue or sku.on_hand <= sku.allocated:
            return
        lines = sku.lines
        allocated_keys = sku.allocated_keys
        movable = sku.movable
        mode = self.fill_mode
        record = self.state.journal.record
        events = log.events
        at = log.at
        log.touch_sku(sku)
        while queue:
            available = sku.on_hand - sku.allocated
            if available <= 0:
                break
            key = queue[0]
            line = lines[key]
            short = line.ordered - line.allocated - line.shipped - line.cancelled
            if mode == FILL_PARTIAL:
                n = short if short <= available else available
            elif mode == FILL_STRICT:
                if short > available:
                    break
                n = short
            else:
                n = self.allot(line, available, short)
                if n == 0:
                    break
            log.touch_line(line)
            if line.allocated == 0 and key not in allocated_keys:
                sku.mark_allocated(key)
            if movable is not None:
                before = line.allocated - line.firm
                movable.shift(line, before, before + n)
            line.allocated += n
            sku.allocated += n
            sku.backordered -= n
            if sku.demand is not None:
                sku.demand.add(line, -n)
            if n == short:
                queue.pop(0)
            record(ALLOCATION, sku.sku, 0, n, line.order.id, None, at)
            events.append(LineAllocated(line.order.id, sku.sku, n, at))

    def fill_all(self, log: UndoLog, lines: list[LineState]) -> None:
        """Run the fill loop once for each SKU of these lines."""
        seen: set[str] = set()
        for line in lines:
            if line.sku not in seen:
                seen.add(line.sku)
                self.fill(self.state.skus[line.sku], log)

    def backordered_events(
        self, log: UndoLog, lines: tuple[LineState, ...] | list[LineState]
    ) -> None:
        """A `LineBackordered` (with its place and first ETA) for each line still short."""
        skus = self.state.skus
        etas = self.etas
        at = log.at
        for line in lines:
            short = line.ordered - line.allocated - line.shipped - line.cancelled  # (backordered)
            if short > 0:
                sku = skus[line.sku]
                queue = sku.queue
                # a new line usually joins at the back: its place is the length
                key = line.key
                place = len(queue) if queue[-1] == key else queue.index(key) + 1
                eta = (
                    etas.line_eta(sku, line, at)
                    if sku.expected or sku.lead_time is not None  # (`has_dates`, inlined)
                    else etas.unknown
                )
                log.events.append(LineBackordered(line.order.id, line.sku, short, place, at, eta))


def lines_named(
    engine: Engine, order_id: object, sku: object, quantity: object
) -> tuple[Record, list[LineState]]:
    """The order and the lines an operation names (all, or the one for `sku`),
    with `quantity` checked. Raises UnknownOrder, UnknownSku, InvalidArgument
    (a quantity without a SKU), InvalidQuantity."""
    record = engine.record(order_id)
    if sku is None:
        if quantity is not None:
            raise InvalidArgument(
                f"quantity {shown(quantity)} needs a sku: a quantity applies to one line"
            )
        return record, list(record.lines)
    line = engine.line(order_id, sku)
    if quantity is not None:
        check_quantity(quantity, "quantity")
    return record, [line]
