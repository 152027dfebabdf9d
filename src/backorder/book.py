"""The backorder book: places orders, takes in stock, serves each line in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import attrs

from ._state import _Line, _OrderRecord, _Sku, _State, pack, unpack
from .domain import (
    MAX_QUANTITY,
    LineStatus,
    Order,
    OrderStatus,
    StockLevel,
    check_aware,
    check_delta,
    check_quantity,
    check_text,
)
from .errors import (
    ArgumentTypeError,
    CannotCancel,
    DuplicateOrder,
    DuplicateReceipt,
    EventHandlerError,
    InsufficientStock,
    InvalidArgument,
    InvalidQuantity,
    NotReadyToShip,
    PolicyError,
    UnknownOrder,
    UnknownSku,
)
from .events import (
    Event,
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineReleased,
    LineShipped,
    OrderCancelled,
    OrderPlaced,
    StockAdjusted,
    StockReceived,
)
from .ledger import ADJUSTMENT, ALLOCATION, RECEIPT, RELEASE, SHIPMENT, StockLedger
from .policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from .results import AdjustResult, CancelResult, PlaceResult, ReceiveResult, ShipResult
from .storage import InMemoryRepository, Repository

__all__ = ["BackorderBook", "Clock"]

#: A clock: a callable returning the current time as an aware `datetime`.
Clock = Callable[[], datetime]
Handler = Callable[[Event], object]

_STRICT = 1
_PARTIAL = 2


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _fast_mode(policy: object) -> int:
    # The built-in fills are computed inline; a subclass may override `allot`,
    # so only the exact built-in types qualify.
    if type(policy) is PriorityTiers:
        policy = policy.fill
    if type(policy) is PartialFill:
        return _PARTIAL
    if type(policy) is StrictFIFO:
        return _STRICT
    return 0


def _line_status(line: _Line) -> LineStatus:
    return LineStatus(
        line.order.id,
        line.sku,
        line.order.tier,
        line.ordered,
        line.allocated,
        line.shipped,
        line.cancelled,
        line.ordered - line.allocated - line.shipped - line.cancelled,
    )


class _Txn:
    """One operation's undo record: what to put back if it fails."""

    __slots__ = (
        "at",
        "events",
        "lines",
        "mark",
        "seq",
        "skus",
        "undo",
    )

    def __init__(self, state: _State, at: datetime) -> None:
        self.at = at
        self.events: list[Event] = []
        self.mark = state.ledger._mark()
        self.seq = state.seq
        self.lines: dict[_Line, tuple[int, int, int]] = {}
        self.skus: dict[_Sku, tuple[int, int]] = {}
        # What was added and must go if the operation fails, in order:
        # ("order", order_id) / ("sku", name) / ("receipt", _Sku, reference).
        self.undo: list[tuple[Any, ...]] = []

    def touch_line(self, line: _Line) -> None:
        if line not in self.lines:
            self.lines[line] = (line.allocated, line.shipped, line.cancelled)

    def touch_sku(self, sku: _Sku) -> None:
        if sku not in self.skus:
            self.skus[sku] = (sku.on_hand, sku.allocated)

    def rollback(self, state: _State) -> None:
        for line, (allocated, shipped, cancelled) in self.lines.items():
            sku = state.skus[line.sku]
            was_short, was_held = line.backordered > 0, line.allocated > 0
            line.allocated, line.shipped, line.cancelled = allocated, shipped, cancelled
            _resync(sku, line, was_short, was_held)
        for sku, (on_hand, allocated) in self.skus.items():
            sku.on_hand, sku.allocated = on_hand, allocated
        for entry in self.undo:  # orders first: their lines sit in the SKUs
            if entry[0] == "order":
                record = state.orders.pop(entry[1])
                for line in record.lines:
                    sku = state.skus[line.sku]
                    sku.queue.discard(line.key)
                    sku.held.discard(line.key)  # its heap entry goes stale
                    del sku.lines[line.key]
            elif entry[0] == "sku":
                del state.skus[entry[1]]
            else:
                del entry[1].receipts[entry[2]]
        state.ledger._rollback(self.mark)
        state.seq = self.seq


def _resync(sku: _Sku, line: _Line, was_short: bool, was_held: bool) -> None:
    # Put the line's key in (or out of) the queue and the held index to match
    # its counters: in the queue iff short, held iff anything is allocated.
    short, held = line.backordered > 0, line.allocated > 0
    if short != was_short:
        if short:
            sku.queue.add(line.key)
        else:
            sku.queue.remove(line.key)
    if held != was_held:
        if held:
            sku.hold(line.key)
        else:
            sku.held.discard(line.key)  # its heap entry goes stale


@attrs.define(slots=True, eq=False, repr=False)
class _Unsubscribe:
    _handlers: list[Handler]
    _handler: Handler

    def __call__(self) -> None:
        if self._handler in self._handlers:
            self._handlers.remove(self._handler)


class BackorderBook:
    """The backorders of a shop: every order's lines, each SKU's line of
    customers, the stock on hand, and the ledger of every movement.

    Args:
        policy: the allocation policy (`PartialFill()` when None).
        repository: where the state lives (a new `InMemoryRepository` when
            None). A repository that already holds a book's state continues it.
        clock: returns the current time as an aware `datetime`
            (`datetime.now(timezone.utc)` when None); inject one for tests and
            simulations.

    Raises:
        ArgumentTypeError: `policy` lacks `rank`/`allot`, `repository` lacks
            `state`/`commit`, or `clock` is not callable.

    Every operation validates everything first and is atomic: when it raises,
    the book, the ledger and the repository are exactly as before, and no
    event is handed out. Costs below use n for the waiting lines of the SKU
    concerned.

    >>> from backorder import BackorderBook, Order, OrderLine
    >>> book = BackorderBook()
    >>> _ = book.place(Order("A-1", [OrderLine("MUG", 2)]))
    >>> _ = book.place(Order("A-2", [OrderLine("MUG", 1)]))
    >>> book.position("A-2", "MUG")
    2
    >>> _ = book.receive("MUG", 2, reference="GRN-1")
    >>> book.line("A-1", "MUG").allocated, book.position("A-2", "MUG")
    (2, 1)
    """

    __slots__ = ("_clock", "_fast", "_handlers", "_policy", "_repository", "_state")

    def __init__(
        self,
        policy: AllocationPolicy | None = None,
        repository: Repository | None = None,
        clock: Clock | None = None,
    ) -> None:
        policy = PartialFill() if policy is None else policy
        repository = InMemoryRepository() if repository is None else repository
        for method in ("rank", "allot"):
            if not callable(getattr(policy, method, None)):
                raise ArgumentTypeError(f"policy must have a {method} method, got {policy!r}")
        for method in ("state", "commit"):
            if not callable(getattr(repository, method, None)):
                raise ArgumentTypeError(
                    f"repository must have a {method} method, got {repository!r}"
                )
        if clock is not None and not callable(clock):
            raise ArgumentTypeError(f"clock must be callable, got {clock!r}")
        self._policy = policy
        self._fast = _fast_mode(policy)
        self._repository = repository
        self._state = repository.state()
        self._clock: Clock = _utc_now if clock is None else clock
        self._handlers: list[Handler] = []

    def __repr__(self) -> str:
        waiting = sum(len(sku.queue) for sku in self._state.skus.values())
        return (
            f"<BackorderBook {len(self._state.orders)} orders, "
            f"{len(self._state.skus)} SKUs, {waiting} lines waiting, "
            f"policy={self._policy!r}>"
        )

    # -- reading -------------------------------------------------------------

    @property
    def policy(self) -> AllocationPolicy:
        """The book's allocation policy."""
        return self._policy

    @property
    def ledger(self) -> StockLedger:
        """The book's `StockLedger`: every stock movement, append-only. Cost: O(1)."""
        return self._state.ledger

    def __len__(self) -> int:
        """The number of orders in the book. Cost: O(1)."""
        return len(self._state.orders)

    def __contains__(self, order_id: object) -> bool:
        """Whether an order with this id is in the book. Cost: O(1)."""
        return order_id in self._state.orders

    def order_ids(self) -> Iterator[str]:
        """Every order id, in the order they were placed. Cost: O(1) per id."""
        return iter(list(self._state.orders))

    def skus(self) -> tuple[str, ...]:
        """Every SKU the book has seen (ordered, received or adjusted). Cost: O(SKUs)."""
        return tuple(self._state.skus)

    def _record(self, order_id: object) -> _OrderRecord:
        record = self._state.orders.get(check_text(order_id, "order_id"))
        if record is None:
            raise UnknownOrder(f"order_id {order_id!r} is not in the book")
        return record

    def _line(self, order_id: object, sku: object) -> _Line:
        record = self._record(order_id)
        check_text(sku, "sku")
        for line in record.lines:
            if line.sku == sku:
                return line
        raise UnknownSku(f"order {order_id!r} has no line for sku {sku!r}")

    def _order_status(self, record: _OrderRecord) -> OrderStatus:
        return OrderStatus(record.order, tuple(_line_status(ln) for ln in record.lines))

    def position(self, order_id: str, sku: str) -> int | None:
        """The line's 1-based place among the lines still short on `sku`.

        Returns None when the line is not short (fully allocated, shipped or
        cancelled).

        Raises:
            UnknownOrder: no order `order_id`.
            UnknownSku: the order has no line for `sku`.
            ArgumentTypeError, InvalidArgument: an id that is not a non-empty str.

        Cost: O(log n).
        """
        line = self._line(order_id, sku)
        if line.backordered <= 0:
            return None
        return int(self._state.skus[line.sku].queue.index(line.key)) + 1

    def line(self, order_id: str, sku: str) -> LineStatus:
        """The `LineStatus` of the order's line for `sku`.

        Raises:
            UnknownOrder, UnknownSku, ArgumentTypeError, InvalidArgument: as `position`.

        Cost: O(lines of the order).
        """
        return _line_status(self._line(order_id, sku))

    def status(self, order_id: str) -> OrderStatus:
        """The `OrderStatus` of an order: the order and each line's status.

        Raises:
            UnknownOrder: no order `order_id`.
            ArgumentTypeError, InvalidArgument: `order_id` is not a non-empty str.

        Cost: O(lines of the order).
        """
        return self._order_status(self._record(order_id))

    def waiting(self, sku: str) -> tuple[LineStatus, ...]:
        """The status of every line short on `sku`, in serving order (head first).

        Empty for a SKU never seen.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(n).
        """
        check_text(sku, "sku")
        state = self._state.skus.get(sku)
        if state is None:
            return ()
        lines = state.lines
        return tuple(_line_status(lines[key]) for key in state.queue)

    def stock(self, sku: str) -> StockLevel:
        """The `StockLevel` of `sku` (all zero for a SKU never seen).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        state = self._state.skus.get(sku)
        if state is None:
            return StockLevel(sku, 0, 0, 0)
        return StockLevel(sku, state.on_hand, state.allocated, state.on_hand - state.allocated)

    # -- events --------------------------------------------------------------

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every event, in order, after each operation
        that caused it has succeeded (and been committed).

        If a handler raises, the others still get every event and the
        operation, which has succeeded, raises `EventHandlerError` afterwards.

        Returns:
            A callable that unsubscribes the handler.

        Raises:
            ArgumentTypeError: `handler` is not callable.

        Cost: O(1).
        """
        if not callable(handler):
            raise ArgumentTypeError(f"handler must be callable, got {handler!r}")
        self._handlers.append(handler)
        return _Unsubscribe(self._handlers, handler)

    # -- the machinery of every operation -----------------------------------

    def _now(self) -> datetime:
        if self._clock is _utc_now:
            return _utc_now()
        return check_aware(self._clock(), "clock()")

    def _commit(self, txn: _Txn) -> None:
        try:
            self._repository.commit()
        except BaseException:
            txn.rollback(self._state)
            raise

    def _publish(self, events: tuple[Event, ...], result: object) -> None:
        if not events or not self._handlers:
            return
        errors: list[Exception] = []
        for event in events:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception as exc:  # every handler still gets every event
                    errors.append(exc)
        if errors:
            raise EventHandlerError(
                f"the operation succeeded, but {len(errors)} handler call(s) raised; "
                f"first: {errors[0]!r}",
                result,
                errors,
            ) from errors[0]

    def _sku(self, txn: _Txn, name: str) -> _Sku:
        sku = self._state.skus.get(name)
        if sku is None:
            sku = self._state.skus[name] = _Sku(name)
            txn.undo.append(("sku", name))
        return sku

    def _fill(self, sku: _Sku, txn: _Txn) -> None:
        # Offer the head of the line what is available, until it waits or
        # nothing is left. Only the head is ever offered stock.
        queue = sku.queue
        if not queue or sku.on_hand <= sku.allocated:
            return
        lines = sku.lines
        held = sku.held
        fast = self._fast
        ledger_record = self._state.ledger._record
        events = txn.events
        at = txn.at
        txn.touch_sku(sku)
        while queue:
            available = sku.on_hand - sku.allocated
            if available <= 0:
                break
            key = queue[0]
            line = lines[key]
            short = line.ordered - line.allocated - line.shipped - line.cancelled
            if fast == _PARTIAL:
                n = short if short <= available else available
            elif fast == _STRICT:
                if short > available:
                    break
                n = short
            else:
                n = self._allot(line, available, short)
                if n == 0:
                    break
            txn.touch_line(line)
            if line.allocated == 0 and key not in held:
                sku.hold(key)
            line.allocated += n
            sku.allocated += n
            if n == short:
                queue.pop(0)
            ledger_record(ALLOCATION, sku.sku, 0, n, line.order.id, None, at)
            events.append(LineAllocated(line.order.id, sku.sku, n, at))

    def _allot(self, line: _Line, available: int, short: int) -> int:
        n = self._policy.allot(_line_status(line), available)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= min(short, available):
            raise PolicyError(
                f"policy {self._policy!r} allot returned {n!r} for order "
                f"{line.order.id!r} sku {line.sku!r} (backordered {short}, "
                f"available {available}); it must be an int from 0 to "
                f"{min(short, available)}"
            )
        return n

    def _backordered_events(self, txn: _Txn, lines: tuple[_Line, ...] | list[_Line]) -> None:
        for line in lines:
            short = line.backordered
            if short > 0:
                queue = self._state.skus[line.sku].queue
                # a new line usually joins at the back: its place is the length
                key = line.key
                place = len(queue) if queue[-1] == key else queue.index(key) + 1
                txn.events.append(LineBackordered(line.order.id, line.sku, short, place, txn.at))

    # -- operations ----------------------------------------------------------

    def place(self, order: Order) -> PlaceResult:
        """Place an order: each line joins its SKU's line, then stock is served.

        Every line enters its SKU's line at `(policy.rank(order), seq)`, `seq`
        being the book's arrival counter; then the fill loop runs for each
        SKU, so stock on hand goes to the new line only if it is the head.
        Events: `OrderPlaced`, a `LineAllocated` per allocation, and a
        `LineBackordered` for each line still short.

        Placing the same order again (same id, lines, tier, `ship_complete`
        and metadata; `placed_at` None or equal) changes nothing and returns
        the current status with `replayed=True`.

        Raises:
            ArgumentTypeError: `order` is not an `Order`.
            DuplicateOrder: the id is in the book with other content.
            UnknownTier: (from `PriorityTiers`) the order's tier is unknown.
            PolicyError: the policy's rank or allot returned a bad value.

        Cost: O(k log n) per line for k allocations made.
        """
        if not isinstance(order, Order):
            raise ArgumentTypeError(f"order must be an Order, got {type(order).__name__} {order!r}")
        state = self._state
        existing = state.orders.get(order.id)
        if existing is not None:
            if existing.order.same_request(order):
                return PlaceResult(self._order_status(existing), (), True)
            raise DuplicateOrder(
                f"order id {order.id!r} is already in the book with other content "
                f"(stored {existing.order!r})"
            )
        rank = self._policy.rank(order)
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise PolicyError(
                f"policy {self._policy!r} rank returned {rank!r} for order "
                f"{order.id!r}; it must be an int"
            )
        at = self._now()
        if order.placed_at is None:
            order = order._stamped(at)
        txn = _Txn(state, at)
        try:
            state.seq += 1
            key = pack(rank, state.seq)
            lines = tuple(_Line(order, ol.sku, key, ol.quantity) for ol in order.lines)
            state.orders[order.id] = _OrderRecord(order, rank, lines)
            txn.undo.append(("order", order.id))
            txn.events.append(OrderPlaced(order.id, order, at))
            for line in lines:
                sku = self._sku(txn, line.sku)
                sku.lines[key] = line
                sku.queue.add(key)
                self._fill(sku, txn)
            self._backordered_events(txn, lines)
        except BaseException:
            txn.rollback(state)
            raise
        self._commit(txn)
        events = tuple(txn.events)
        result = PlaceResult(self._order_status(state.orders[order.id]), events)
        self._publish(events, result)
        return result

    def receive(self, sku: str, quantity: int, reference: str | None = None) -> ReceiveResult:
        """Take `quantity` units of `sku` into stock; then serve its line.

        A `(sku, reference)` pair already received is a no-op returning
        `replayed=True` (a redelivered warehouse message must not count
        twice); one reference may cover several SKUs. Events: `StockReceived`
        and a `LineAllocated` per allocation.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` or `reference` is not a
                non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` is not an int from 1
                to 2**63 - 1, or on hand would pass 2**63 - 1.
            DuplicateReceipt: the reference was received for `sku` with
                another quantity.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(k log n) for k allocations made.
        """
        check_text(sku, "sku")
        check_quantity(quantity, "quantity")
        if reference is not None:
            check_text(reference, "reference")
        state = self._state
        current = state.skus.get(sku)
        if current is not None and reference is not None:
            seen = current.receipts.get(reference)
            if seen is not None:
                if seen != quantity:
                    raise DuplicateReceipt(
                        f"reference {reference!r} was already received for sku "
                        f"{sku!r} with quantity {seen}, not {quantity}"
                    )
                return ReceiveResult(self.stock(sku), (), True)
        on_hand = current.on_hand if current is not None else 0
        if on_hand + quantity > MAX_QUANTITY:
            raise InvalidQuantity(
                f"quantity {quantity} would put sku {sku!r} on hand above {MAX_QUANTITY}"
            )
        at = self._now()
        txn = _Txn(state, at)
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            target.on_hand += quantity
            if reference is not None:
                target.receipts[reference] = quantity
                txn.undo.append(("receipt", target, reference))
            state.ledger._record(RECEIPT, sku, quantity, 0, None, reference, at)
            txn.events.append(StockReceived(sku, quantity, reference, at))
            self._fill(target, txn)
        except BaseException:
            txn.rollback(state)
            raise
        self._commit(txn)
        events = tuple(txn.events)
        result = ReceiveResult(self.stock(sku), events)
        self._publish(events, result)
        return result

    def adjust(self, sku: str, delta: int, reason: str) -> AdjustResult:
        """Correct the count of `sku` on hand by `delta` (a stock-take, breakage).

        A negative delta that leaves less on hand than is allocated takes the
        missing units back from the allocated-but-unshipped lines *last* in
        line first; those lines go back to backordered at their original
        place. A positive delta is served to the line like a receipt (but
        recorded as an adjustment). Events: a `LineReleased` (reason
        `"adjustment"`) per line reclaimed, `StockAdjusted`, a
        `LineBackordered` per line reclaimed, and a `LineAllocated` per
        allocation.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` or `reason` is not a
                non-empty str.
            QuantityTypeError, InvalidQuantity: `delta` is 0, not an int, beyond
                +-(2**63 - 1), or would put on hand above 2**63 - 1.
            InsufficientStock: `delta` removes more than is on hand.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(r log n) for r lines reclaimed, plus O(k log n) for k allocations.
        """
        check_text(sku, "sku")
        check_delta(delta, "delta")
        check_text(reason, "reason")
        state = self._state
        current = state.skus.get(sku)
        on_hand = current.on_hand if current is not None else 0
        if on_hand + delta < 0:
            raise InsufficientStock(
                f"delta {delta} would remove more than the {on_hand} units of sku {sku!r} on hand"
            )
        if on_hand + delta > MAX_QUANTITY:
            raise InvalidQuantity(
                f"delta {delta} would put sku {sku!r} on hand above {MAX_QUANTITY}"
            )
        at = self._now()
        txn = _Txn(state, at)
        reclaimed_units = 0
        try:
            target = self._sku(txn, sku)
            txn.touch_sku(target)
            excess = target.allocated - (target.on_hand + delta)
            reclaimed: list[_Line] = []
            while excess > 0:
                line = target.lines[target.last_held()]
                take = min(line.allocated, excess)
                txn.touch_line(line)
                was_short = line.backordered > 0
                line.allocated -= take
                target.allocated -= take
                _resync(target, line, was_short, True)
                excess -= take
                reclaimed_units += take
                reclaimed.append(line)
                state.ledger._record(RELEASE, sku, 0, -take, line.order.id, "adjustment", at)
                txn.events.append(LineReleased(line.order.id, sku, take, "adjustment", at))
            target.on_hand += delta
            state.ledger._record(ADJUSTMENT, sku, delta, 0, None, reason, at)
            txn.events.append(StockAdjusted(sku, delta, reason, at))
            self._backordered_events(txn, reclaimed)
            self._fill(target, txn)
        except BaseException:
            txn.rollback(state)
            raise
        self._commit(txn)
        events = tuple(txn.events)
        result = AdjustResult(self.stock(sku), reclaimed_units, events)
        self._publish(events, result)
        return result

    def _pick(
        self, order_id: str, sku: str | None, quantity: int | None
    ) -> tuple[_OrderRecord, list[_Line]]:
        record = self._record(order_id)
        if sku is None:
            if quantity is not None:
                raise InvalidArgument(
                    f"quantity {quantity!r} needs a sku: a quantity applies to one line"
                )
            return record, list(record.lines)
        line = self._line(order_id, sku)
        if quantity is not None:
            check_quantity(quantity, "quantity")
        return record, [line]

    def cancel(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> CancelResult:
        """Cancel a whole order, one line (`sku`), or `quantity` units of a line.

        A partial cancel takes backordered units first and releases allocated
        units only for the rest. Released units go through the fill loop at
        once, so the next in line gets them; the ledger records them as a
        release, never as a receipt. Cancelling a whole order skips lines with
        nothing left. Events: a `LineReleased` (reason `"cancel"`) for
        allocated units given back, a `LineCancelled` per line,
        `OrderCancelled` for a whole order, then a `LineAllocated` per
        allocation of the freed stock.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            InvalidArgument: `quantity` without `sku`; ids not non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1.
            CannotCancel: more than can still be cancelled (the message says
                how many can), or nothing at all can be.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(lines of the order * log n) plus O(k log n) for k allocations.
        """
        record, lines = self._pick(order_id, sku, quantity)
        plan: list[tuple[_Line, int, int]] = []
        for line in lines:
            open_units = line.backordered + line.allocated
            wanted = open_units if quantity is None else quantity
            if wanted > open_units:
                raise CannotCancel(
                    f"quantity {wanted} of order {order_id!r} sku {line.sku!r} cannot "
                    f"be cancelled: only {open_units} units can still be cancelled"
                )
            if wanted:
                from_short = min(wanted, line.backordered)
                plan.append((line, from_short, wanted - from_short))
        if not plan:
            what = f"order {order_id!r}" if sku is None else f"order {order_id!r} sku {sku!r}"
            raise CannotCancel(f"{what} has nothing left to cancel: 0 units can still be cancelled")
        state = self._state
        at = self._now()
        txn = _Txn(state, at)
        total = 0
        try:
            touched: list[_Sku] = []
            for line, from_short, from_allocated in plan:
                target = state.skus[line.sku]
                txn.touch_line(line)
                txn.touch_sku(target)
                was_short, was_held = line.backordered > 0, line.allocated > 0
                line.cancelled += from_short + from_allocated
                if from_allocated:
                    line.allocated -= from_allocated
                    target.allocated -= from_allocated
                    state.ledger._record(
                        RELEASE, line.sku, 0, -from_allocated, record.order.id, "cancel", at
                    )
                    txn.events.append(
                        LineReleased(record.order.id, line.sku, from_allocated, "cancel", at)
                    )
                _resync(target, line, was_short, was_held)
                txn.events.append(
                    LineCancelled(record.order.id, line.sku, from_short + from_allocated, at)
                )
                total += from_short + from_allocated
                touched.append(target)
            if sku is None:
                txn.events.append(OrderCancelled(record.order.id, total, at))
            for target in touched:
                self._fill(target, txn)
        except BaseException:
            txn.rollback(state)
            raise
        self._commit(txn)
        events = tuple(txn.events)
        result = CancelResult(self._order_status(record), total, events)
        self._publish(events, result)
        return result

    def ship(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> ShipResult:
        """Ship allocated units: the whole order's, one line's, or `quantity` of a line's.

        On hand and allocated both fall by what ships (a partial shipment is
        fine). A `ship_complete` order ships only when no line of it has
        anything backordered, whether or not a SKU is named. Events: a
        `LineShipped` per line shipped.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            InvalidArgument: `quantity` without `sku`; ids not non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1.
            NotReadyToShip: nothing allocated; `quantity` above what is
                allocated (the message says how many can ship); a ship-complete
                order with units still backordered.

        Cost: O(lines of the order * log n).
        """
        record, lines = self._pick(order_id, sku, quantity)
        if record.order.ship_complete:
            short = [(line.sku, line.backordered) for line in record.lines if line.backordered]
            if short:
                raise NotReadyToShip(
                    f"order {order_id!r} is ship-complete and still has units "
                    f"backordered: {', '.join(f'{s} {n}' for s, n in short)}"
                )
        plan: list[tuple[_Line, int]] = []
        for line in lines:
            wanted = line.allocated if quantity is None else quantity
            if wanted > line.allocated:
                raise NotReadyToShip(
                    f"quantity {wanted} of order {order_id!r} sku {line.sku!r} cannot "
                    f"ship: only {line.allocated} units are allocated and can ship"
                )
            if wanted:
                plan.append((line, wanted))
        if not plan:
            what = f"order {order_id!r}" if sku is None else f"order {order_id!r} sku {sku!r}"
            raise NotReadyToShip(f"{what} has nothing allocated: 0 units can ship")
        state = self._state
        at = self._now()
        txn = _Txn(state, at)
        total = 0
        try:
            for line, n in plan:
                target = state.skus[line.sku]
                txn.touch_line(line)
                txn.touch_sku(target)
                was_short = line.backordered > 0
                line.allocated -= n
                line.shipped += n
                target.allocated -= n
                target.on_hand -= n
                _resync(target, line, was_short, True)
                state.ledger._record(SHIPMENT, line.sku, -n, -n, record.order.id, None, at)
                txn.events.append(LineShipped(record.order.id, line.sku, n, at))
                total += n
        except BaseException:
            txn.rollback(state)
            raise
        self._commit(txn)
        events = tuple(txn.events)
        result = ShipResult(self._order_status(record), total, events)
        self._publish(events, result)
        return result

    # -- self-check ------------------------------------------------------------

    def _check(self) -> None:
        """Verify every internal invariant; raise AssertionError naming the first broken.

        For tests and stress runs. Cost: O(orders + lines + ledger entries).
        """
        state = self._state
        seen_keys: dict[str, set[int]] = {}
        for order_id, record in state.orders.items():
            assert record.order.id == order_id, order_id
            assert record.order.placed_at is not None, order_id
            assert len(record.lines) == len(record.order.lines), order_id
            for ol, line in zip(record.order.lines, record.lines, strict=True):
                assert line.sku == ol.sku, (order_id, ol)
                assert line.ordered == ol.quantity, (order_id, ol)
                assert line.order is record.order, order_id
                assert unpack(line.key)[0] == record.rank, order_id
                assert 0 < unpack(line.key)[1] <= state.seq, order_id
                for field in ("allocated", "shipped", "cancelled"):
                    assert getattr(line, field) >= 0, (order_id, line.sku, field)
                assert line.backordered >= 0, (order_id, line.sku)
                assert state.skus[line.sku].lines.get(line.key) is line, (order_id, line.sku)
                keys = seen_keys.setdefault(line.sku, set())
                assert line.key not in keys, ("two lines share a key", order_id, line.sku)
                keys.add(line.key)
        for name, sku in state.skus.items():
            assert sku.sku == name
            assert set(sku.lines) == seen_keys.get(name, set()), name
            assert 0 <= sku.allocated <= sku.on_hand, (name, sku.allocated, sku.on_hand)
            lines = sku.lines.values()
            assert sku.allocated == sum(line.allocated for line in lines), name
            assert list(sku.queue) == sorted(k for k, ln in sku.lines.items() if ln.backordered > 0)
            assert sku.held == {k for k, ln in sku.lines.items() if ln.allocated > 0}, name
            assert sku.held <= {-k for k in sku.held_heap}, name
            balance = state.ledger.balance(name)
            assert (balance.on_hand, balance.allocated) == (sku.on_hand, sku.allocated), name
            available = sku.on_hand - sku.allocated
            if available > 0 and sku.queue:
                head = sku.lines[sku.queue[0]]
                allot = self._policy.allot(_line_status(head), available)
                assert allot == 0, ("not work-conserving", name, available, allot)
        state.ledger.verify()
