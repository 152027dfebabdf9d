"""The book's shop controls and supply: scheduled receipts, lead times,
caps, checkout holds, stock that moves between orders, and the policy.

A part of `BackorderBook` (one of its base classes), kept in a module of its
own so each file holds one job; every method here is a method of the book.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .domain import Order
from .engine import controls, moves, supply
from .engine.core import Applied, Engine
from .policies import AllocationPolicy
from .reads import BookReads
from .results import (
    ExpectResult,
    FirmResult,
    HoldResult,
    PlaceResult,
    RebalanceResult,
    ReturnResult,
    SettingResult,
)
from .unit_of_work import UnitOfWork, writes

__all__ = ["BookControls"]


class BookControls(BookReads):
    """What a `BackorderBook` does besides orders and stock (see there)."""

    __slots__ = ()
    _engine: Engine
    _work: UnitOfWork

    @writes
    def expect(
        self, sku: str, quantity: int, arriving: datetime | date, reference: str
    ) -> ExpectResult:
        """Record a scheduled receipt: `quantity` units of `sku` due at `arriving`.

        A purchase order or a production run. It never counts as stock on
        hand (nothing is allocated from it) but sets the ETAs of the lines it
        will serve. A `date` means the start of that day in UTC. Events:
        `SupplyExpected`, and `EtaChanged` for every waiting line whose ETA moved.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku` or `reference`, a
                naive `arriving`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            DuplicateReference: `reference` is already an expected receipt.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        outcome = supply.expect(self._engine, sku, quantity, arriving, reference)
        return self._work.finish(outcome)

    @writes
    def update_expected(
        self,
        reference: str,
        quantity: int | None = None,
        arriving: datetime | date | None = None,
    ) -> ExpectResult:
        """Resize or move a scheduled receipt (a delayed or changed purchase order).

        Events: `SupplyExpected` with the new values, and `EtaChanged` for
        every waiting line whose ETA moved.

        Raises:
            UnknownReference: no expected receipt `reference`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            ArgumentTypeError, InvalidArgument: a naive or wrong-typed `arriving`.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        outcome = supply.update_expected(self._engine, reference, quantity, arriving)
        return self._work.finish(outcome)

    @writes
    def cancel_expected(self, reference: str) -> ExpectResult:
        """Drop a scheduled receipt. Events: `SupplyCancelled`, `EtaChanged`s.

        Raises:
            UnknownReference: no expected receipt `reference`.

        Cost: O(log r), plus O(n) to find the ETAs that moved.
        """
        return self._work.finish(supply.cancel_expected(self._engine, reference))

    @writes
    def set_lead_time(self, sku: str, lead_time: timedelta | None) -> SettingResult:
        """Set the supplier lead time of `sku` (None: none known).

        Demand beyond all scheduled supply then gets the estimate now + lead
        time (basis `"lead_time"`). Events: `EtaChanged` for every waiting
        line whose ETA moved.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku`; `lead_time` not a
                positive `timedelta` or None.

        Cost: O(n) to find the ETAs that moved.
        """
        outcome = supply.set_lead_time(self._engine, sku, lead_time)
        return self._work.finish(outcome)

    @writes
    def set_backorder_limit(self, sku: str, units: int | None) -> SettingResult:
        """Cap the units that may wait backordered on `sku` (None: no cap).

        `place` refuses, whole, an order that would take the SKU's backordered
        units past the cap (`BackorderLimitExceeded`), and `can_place` says so
        in advance. A count correction (`adjust`) that takes allocated units
        back can still push the total past the cap — the units are gone
        either way — and then no new backorder is accepted until it is below.
        0 means no backorders at all: only orders that stock on hand fills.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.
            QuantityTypeError, InvalidQuantity: `units` is not None or an int
                from 0 to 2**63 - 1.
            BackorderLimitExceeded: `units` is below what is already backordered.

        Cost: O(1).
        """
        outcome = controls.set_backorder_limit(self._engine, sku, units)
        return self._work.finish(outcome)

    @writes
    def change_policy(self, policy: AllocationPolicy) -> SettingResult:
        """Switch the book to another policy: the one way to change the policy
        of a stored book (opening it with another raises `PolicyMismatch`).

        Every line keeps its arrival number and is ranked again by `policy`;
        then the fill loop runs on every SKU (a line moved up may be served
        now; nothing allocated is taken back — unless the new policy
        preempts: then every SKU is rebalanced, as a preempting policy does
        after every operation, and a line now ranked first takes movable
        units from lines after it). The new identity is recorded
        with the change, atomically. Events: `PolicyChanged`, then the
        allocations and `EtaChanged` it causes. Switching to the policy the
        book has changes nothing.

        Raises:
            ArgumentTypeError: `policy` lacks `rank`/`allot`, or has a
                `policy_id` that is not a non-empty str.
            UnknownTier: (from `PriorityTiers`) an order's tier is not one of
                the new policy's; nothing changed.
            PolicyError: the new policy's rank returned a bad value.

        Cost: O(lines log n) over the whole book (a lazily loaded book loads
        everything first).
        """
        self._work.load_everything()  # (inside the unit of work, holding the lock)
        outcome = controls.change_policy(self._engine, policy)
        if isinstance(outcome, Applied):
            return self._work.finish(outcome)
        return outcome

    @writes
    def firm(
        self, order_id: str, sku: str | None = None, quantity: int | None = None
    ) -> FirmResult:
        """Mark allocated units firm: they are being picked or packed.

        Firm units are never taken by `rebalance` (nor by a preempting
        policy); a count correction (`adjust`) takes them only after every
        unit of the SKU that is not firm. They still ship (firm units ship
        first), cancel (after the units that are not firm) and expire as
        before. Marks every allocated unit of the order that is not firm
        yet, of one line (`sku`), or `quantity` more units of that line
        (so calling it twice with a quantity firms twice as many).
        `LineStatus.firm` counts them; `0 <= firm <= allocated` always.
        Events: a `LineFirmed` per line.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            InvalidArgument: `quantity` without `sku`; ids not non-empty str.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1.
            CannotFirm: `quantity` above the line's allocated units that are
                not firm yet (the message says how many can be firmed), or
                nothing at all can be.

        Cost: O(lines of the order * log n) (the first firm on a SKU also
        builds its movable index: O(a log a) for a lines allocated).

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.receive("MUG", 3)
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 3)]))
        >>> book.firm("A-1", "MUG", 2).firmed
        2
        >>> book.line("A-1", "MUG").firm
        2
        """
        return self._work.finish(moves.firm(self._engine, order_id, sku, quantity))

    @writes
    def rebalance(self, sku: str | None = None) -> RebalanceResult:
        """Move allocated stock to the lines first in line, for one SKU or all.

        While the SKU's first short line H exists: let A be the available
        units and M the movable units (allocated, not firm) of the lines
        after H; H is offered `policy.allot(H, A + M)`; if that is n > 0,
        `max(0, n - A)` units are taken from the lines after H, last in line
        first (each is short again at its own place), and n are allocated to
        H. So the policy still decides (a strict-FIFO head takes its whole
        shortfall or nothing), held units (checkout holds) and firm units
        are nobody's to take, and no line's backordered total grows past
        what it was (caps hold). Recorded as a `"release"` (reason
        `"rebalance"`) from each line that gave units and an `"allocation"`
        to the line served, never a receipt. Events: `LineReleased` (reason
        `"rebalance"`), `LineAllocated`, `LineBackordered` for each line
        made short again, and `EtaChanged` for waiting lines whose ETA
        moved. A preempting policy (`PriorityTiers(preempt=True)`) runs this
        on every SKU each operation touches. An unknown SKU changes nothing.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not None or a
                non-empty str.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(ranks + log n) per SKU when nothing moves, O(k log n) for k
        units moved (the first rebalance of a SKU also builds its movable
        index: O(a log a) for a lines allocated); `sku=None` visits every
        SKU (and a lazily loaded book loads everything).

        >>> from backorder import BackorderBook, Order, OrderLine, PriorityTiers
        >>> book = BackorderBook(PriorityTiers())
        >>> _ = book.receive("MUG", 2)
        >>> _ = book.place(Order("S-1", [OrderLine("MUG", 2)]))
        >>> _ = book.place(Order("C-1", [OrderLine("MUG", 1)], tier="contract"))
        >>> book.rebalance("MUG").moved
        1
        >>> book.line("C-1", "MUG").allocated, book.line("S-1", "MUG").backordered
        (1, 1)
        """
        if sku is None:
            self._work.load_everything()
        return self._work.finish(moves.rebalance(self._engine, sku))

    @writes
    def receive_return(
        self,
        order_id: str,
        sku: str,
        quantity: int,
        reference: str | None = None,
        restock: bool = True,
    ) -> ReturnResult:
        """Shipped units of a line came back (a customer return).

        `LineStatus.returned` grows by `quantity` (at most what was shipped
        and not returned yet; `shipped` stays as it was, so the line is not
        served again). With `restock` the units go back on hand (a
        `"return"` ledger entry, with the order id and reference) and the
        fill loop serves the next in line from them; without, they are
        written off (counted on the line only, no stock moves). An
        `(order_id, sku, reference)` already received is a no-op returning
        `replayed=True`. Events: `StockReturned`, then a `LineAllocated` per
        allocation.

        Raises:
            UnknownOrder, UnknownSku: no such order or line.
            ArgumentTypeError, InvalidArgument: ids or `reference` not
                non-empty str; `restock` not a bool.
            QuantityTypeError, InvalidQuantity: `quantity` not an int from 1 to
                2**63 - 1, or on hand would pass 2**63 - 1.
            CannotReturn: `quantity` above the shipped units not returned yet
                (the message says how many can come back).
            DuplicateReturn: the reference was received for this line with
                another quantity (the message names both).
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(1), plus O(k log n) for k allocations with `restock`.

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.receive("MUG", 1)
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 1)]))
        >>> _ = book.ship("A-1")
        >>> _ = book.place(Order("A-2", [OrderLine("MUG", 1)]))
        >>> _ = book.receive_return("A-1", "MUG", 1, reference="RMA-1")
        >>> book.line("A-1", "MUG").returned, book.line("A-2", "MUG").allocated
        (1, 1)
        """
        outcome = moves.receive_return(self._engine, order_id, sku, quantity, reference, restock)
        if isinstance(outcome, Applied):
            return self._work.finish(outcome)
        return outcome  # already received: nothing changed

    @writes
    def hold(
        self,
        sku: str,
        quantity: int,
        ttl: timedelta,
        hold_id: str | None = None,
    ) -> HoldResult:
        """Reserve `quantity` available units of `sku` for a checkout in progress.

        The units are allocated to nobody else until `confirm_hold` turns them
        into an order, `release_hold` gives them back, or `expire` finds the
        `ttl` has run out. A hold never jumps the line: while any line waits
        on `sku` (even a strict-FIFO head that is blocked), nothing can be held.

        Args:
            hold_id: the checkout's id; a new one (`"H-1"`, ...) when None.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku`, `hold_id`, or `ttl`
                not a positive `timedelta`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            DuplicateHold: a hold with `hold_id` is active.
            InsufficientStock: a line is waiting on `sku`, or fewer than
                `quantity` units are available.

        Cost: O(log h) for h active holds.
        """
        outcome = controls.hold(self._engine, sku, quantity, ttl, hold_id)
        return self._work.finish(outcome)

    @writes
    def release_hold(self, hold_id: str) -> HoldResult:
        """Give a hold's units back: they go to the head of the line at once.

        Raises:
            UnknownHold: no active hold `hold_id`.
            HoldExpired: the hold expired already.
            PolicyError: a custom policy's allot returned a bad value.

        Cost: O(log h) plus the fill.
        """
        return self._work.finish(controls.release_hold(self._engine, hold_id))

    @writes
    def confirm_hold(self, hold_id: str, order: Order) -> PlaceResult:
        """Turn a hold into an order whose line for the held SKU is already allocated.

        The order is placed as by `place` (its key, caps and deadline
        included), except that its line for the hold's SKU first takes the
        held units: up to its quantity; what it needs beyond waits in line
        as usual, what it does not need goes to the line at once.

        Raises:
            UnknownHold: no active hold `hold_id`.
            HoldExpired: the hold expired (by `expire`, or its time is up).
            InvalidOrder: the order has no line for the hold's SKU.
            BackorderError: the errors of `place` (a duplicate id included: a
                hold is confirmed once).

        Cost: that of `place`.
        """
        outcome = controls.confirm_hold(self._engine, hold_id, order)
        return self._work.finish(outcome)
