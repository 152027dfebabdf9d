"""The naive peer: the back-order book a typical application would write.

A Python list of waiting lines per SKU kept sorted with `bisect.insort`,
`list.pop(0)` to serve the head, `list.remove` to cancel, `list.index` for a
position; plain dicts for orders and stock. It follows the same semantics as
`backorder.BackorderBook` for the operations it supports (place, receive,
adjust, cancel, ship, firm, rebalance, receive_return, position, line, stock,
waiting; a preempting policy rebalances every SKU after each operation) and
the test suite runs it side by side with the real book, so the comparison is
honest. No ledger, no events, no atomicity, almost no validation; a
rebalance scans every line of the SKU for each step.
"""

from __future__ import annotations

import bisect
from typing import Any

from backorder import (
    AllocationPolicy,
    CannotCancel,
    CannotFirm,
    CannotReturn,
    InsufficientStock,
    LineStatus,
    NotReadyToShip,
    Order,
    PartialFill,
    StockLevel,
    UnknownOrder,
    UnknownSku,
)

# ordered, allocated, shipped, cancelled, firm (of allocated), returned (of shipped)
ORDERED, ALLOCATED, SHIPPED, CANCELLED, FIRM, RETURNED = range(6)


class NaiveBook:
    """A list-based back-order book, O(n) per cancel, position and fill step."""

    def __init__(self, policy: AllocationPolicy | None = None) -> None:
        self.policy = policy if policy is not None else PartialFill()
        self.orders: dict[str, dict[str, Any]] = {}
        self.waiting_lines: dict[str, list[tuple[tuple[int, int], str]]] = {}
        self.on_hand: dict[str, int] = {}
        self.allocated: dict[str, int] = {}
        self.references: set[tuple[str, str]] = set()
        self.returns: set[tuple[str, str, str]] = set()
        self.seq = 0

    # -- reading ---------------------------------------------------------------

    def _line(self, order_id: str, sku: str) -> list[int]:
        if order_id not in self.orders:
            raise UnknownOrder(order_id)
        lines = self.orders[order_id]["lines"]
        if sku not in lines:
            raise UnknownSku(sku)
        return lines[sku]  # type: ignore[no-any-return]

    def line(self, order_id: str, sku: str) -> LineStatus:
        ln = self._line(order_id, sku)
        order: Order = self.orders[order_id]["order"]
        short = ln[ORDERED] - ln[ALLOCATED] - ln[SHIPPED] - ln[CANCELLED]
        return LineStatus(
            order_id,
            sku,
            order.tier,
            ln[ORDERED],
            ln[ALLOCATED],
            ln[SHIPPED],
            ln[CANCELLED],
            short,
            ln[FIRM],
            ln[RETURNED],
        )

    def position(self, order_id: str, sku: str) -> int | None:
        self._line(order_id, sku)
        entry = (self.orders[order_id]["key"], order_id)
        queue = self.waiting_lines.get(sku, [])
        if entry not in queue:
            return None
        return queue.index(entry) + 1

    def waiting(self, sku: str) -> tuple[LineStatus, ...]:
        return tuple(self.line(oid, sku) for _, oid in self.waiting_lines.get(sku, []))

    def stock(self, sku: str) -> StockLevel:
        on_hand, allocated = self.on_hand.get(sku, 0), self.allocated.get(sku, 0)
        return StockLevel(sku, on_hand, allocated, on_hand - allocated)

    # -- the fill loop -----------------------------------------------------------

    def _fill(self, sku: str) -> None:
        queue = self.waiting_lines.get(sku, [])
        while queue:
            available = self.on_hand.get(sku, 0) - self.allocated.get(sku, 0)
            if available <= 0:
                return
            _, order_id = queue[0]
            status = self.line(order_id, sku)
            n = self.policy.allot(status, available)
            if n == 0:
                return
            self._line(order_id, sku)[ALLOCATED] += n
            self.allocated[sku] = self.allocated.get(sku, 0) + n
            if n == status.backordered:
                queue.pop(0)

    def _holders(self, sku: str) -> list[tuple[tuple[int, int], str]]:
        # every line of the SKU with units allocated, last in line first
        return sorted(
            (
                (record["key"], oid)
                for oid, record in self.orders.items()
                if sku in record["lines"] and record["lines"][sku][ALLOCATED]
            ),
            reverse=True,
        )

    def _take(self, sku: str, key: tuple[int, int], oid: str, units: int) -> None:
        # take allocated units back (not firm first): short again at its place
        ln = self.orders[oid]["lines"][sku]
        queue = self.waiting_lines.setdefault(sku, [])
        if (key, oid) not in queue:
            bisect.insort(queue, (key, oid))
        ln[FIRM] -= max(0, units - (ln[ALLOCATED] - ln[FIRM]))
        ln[ALLOCATED] -= units
        self.allocated[sku] -= units

    def _rebalance(self, sku: str) -> None:
        queue = self.waiting_lines.get(sku, [])
        while queue:
            head_key, head_id = queue[0]
            available = self.on_hand.get(sku, 0) - self.allocated.get(sku, 0)
            after = [
                (key, oid)
                for key, oid in self._holders(sku)
                if key > head_key
                and self.orders[oid]["lines"][sku][ALLOCATED] > self.orders[oid]["lines"][sku][FIRM]
            ]
            movable = sum(
                self.orders[oid]["lines"][sku][ALLOCATED] - self.orders[oid]["lines"][sku][FIRM]
                for _, oid in after
            )
            if available + movable <= 0:
                return
            status = self.line(head_id, sku)
            n = self.policy.allot(status, available + movable)
            if n == 0:
                return
            take = n - available
            for key, oid in after:
                if take <= 0:
                    break
                ln = self.orders[oid]["lines"][sku]
                units = min(ln[ALLOCATED] - ln[FIRM], take)
                self._take(sku, key, oid, units)
                take -= units
            self._line(head_id, sku)[ALLOCATED] += n
            self.allocated[sku] = self.allocated.get(sku, 0) + n
            if n == status.backordered:
                queue.pop(0)

    def _settle(self) -> None:
        if getattr(self.policy, "preempts", False):
            for sku in list(self.waiting_lines):
                self._rebalance(sku)

    # -- operations ----------------------------------------------------------------

    def place(self, order: Order) -> None:
        if order.id in self.orders:
            return
        self.seq += 1
        key = (self.policy.rank(order), self.seq)
        self.orders[order.id] = {
            "order": order,
            "key": key,
            "lines": {ol.sku: [ol.quantity, 0, 0, 0, 0, 0] for ol in order.lines},
        }
        for ol in order.lines:
            bisect.insort(self.waiting_lines.setdefault(ol.sku, []), (key, order.id))
            self._fill(ol.sku)
        self._settle()

    def rebalance(self, sku: str | None = None) -> None:
        for name in list(self.waiting_lines) if sku is None else [sku]:
            self._rebalance(name)

    def firm(self, order_id: str, sku: str | None = None, quantity: int | None = None) -> int:
        if order_id not in self.orders:
            raise UnknownOrder(order_id)
        skus = list(self.orders[order_id]["lines"]) if sku is None else [sku]
        plan = []
        for name in skus:
            ln = self._line(order_id, name)
            can = ln[ALLOCATED] - ln[FIRM]
            wanted = can if quantity is None else quantity
            if wanted > can:
                raise CannotFirm(f"only {can} units can be firmed")
            if wanted:
                plan.append((ln, wanted))
        if not plan:
            raise CannotFirm("0 units can be firmed")
        for ln, wanted in plan:
            ln[FIRM] += wanted
        return sum(wanted for _, wanted in plan)

    def receive_return(
        self,
        order_id: str,
        sku: str,
        quantity: int,
        reference: str | None = None,
        restock: bool = True,
    ) -> None:
        ln = self._line(order_id, sku)
        if reference is not None and (order_id, sku, reference) in self.returns:
            return
        if quantity > ln[SHIPPED] - ln[RETURNED]:
            raise CannotReturn(f"only {ln[SHIPPED] - ln[RETURNED]} units can come back")
        if reference is not None:
            self.returns.add((order_id, sku, reference))
        ln[RETURNED] += quantity
        if restock:
            self.on_hand[sku] = self.on_hand.get(sku, 0) + quantity
            self._fill(sku)
        self._settle()

    def receive(self, sku: str, quantity: int, reference: str | None = None) -> None:
        if reference is not None:
            if (sku, reference) in self.references:
                return
            self.references.add((sku, reference))
        self.on_hand[sku] = self.on_hand.get(sku, 0) + quantity
        self._fill(sku)
        self._settle()

    def adjust(self, sku: str, delta: int, reason: str) -> None:
        on_hand = self.on_hand.get(sku, 0) + delta
        if on_hand < 0:
            raise InsufficientStock(f"delta {delta} for {sku!r}")
        excess = self.allocated.get(sku, 0) - on_hand
        # units that are not firm first (last in line first), then firm ones
        for firm_too in (False, True):
            for key, oid in self._holders(sku):
                if excess <= 0:
                    break
                ln = self.orders[oid]["lines"][sku]
                take = min(ln[ALLOCATED] if firm_too else ln[ALLOCATED] - ln[FIRM], excess)
                if take > 0:
                    self._take(sku, key, oid, take)
                    excess -= take
        self.on_hand[sku] = on_hand
        self._fill(sku)
        self._settle()

    def cancel(self, order_id: str, sku: str | None = None, quantity: int | None = None) -> int:
        if order_id not in self.orders:
            raise UnknownOrder(order_id)
        skus = list(self.orders[order_id]["lines"]) if sku is None else [sku]
        plan = []
        for name in skus:
            status = self.line(order_id, name)
            open_units = status.backordered + status.allocated
            wanted = open_units if quantity is None else quantity
            if wanted > open_units:
                raise CannotCancel(f"only {open_units} units can still be cancelled")
            if wanted:
                plan.append((name, status, wanted))
        if not plan:
            raise CannotCancel("0 units can still be cancelled")
        for name, status, wanted in plan:
            ln = self._line(order_id, name)
            from_short = min(wanted, status.backordered)
            release = wanted - from_short
            ln[CANCELLED] += wanted
            ln[FIRM] -= max(0, release - (ln[ALLOCATED] - ln[FIRM]))
            ln[ALLOCATED] -= release
            self.allocated[name] = self.allocated.get(name, 0) - release
            if status.backordered and from_short == status.backordered:
                self.waiting_lines[name].remove((self.orders[order_id]["key"], order_id))
            self._fill(name)
        self._settle()
        return sum(wanted for _, _, wanted in plan)

    def ship(self, order_id: str, sku: str | None = None, quantity: int | None = None) -> int:
        if order_id not in self.orders:
            raise UnknownOrder(order_id)
        record = self.orders[order_id]
        if record["order"].ship_complete and any(
            self.line(order_id, name).backordered for name in record["lines"]
        ):
            raise NotReadyToShip("ship-complete")
        skus = list(record["lines"]) if sku is None else [sku]
        plan = []
        for name in skus:
            allocated = self.line(order_id, name).allocated
            wanted = allocated if quantity is None else quantity
            if wanted > allocated:
                raise NotReadyToShip(f"only {allocated} units can ship")
            if wanted:
                plan.append((name, wanted))
        if not plan:
            raise NotReadyToShip("0 units can ship")
        for name, wanted in plan:
            ln = self._line(order_id, name)
            ln[FIRM] -= min(ln[FIRM], wanted)  # firm units ship first
            ln[ALLOCATED] -= wanted
            ln[SHIPPED] += wanted
            self.allocated[name] -= wanted
            self.on_hand[name] -= wanted
        self._settle()
        return sum(wanted for _, wanted in plan)
