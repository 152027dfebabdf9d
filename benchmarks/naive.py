"""The naive peer: the back-order book a typical application would write.

A Python list of waiting lines per SKU kept sorted with `bisect.insort`,
`list.pop(0)` to serve the head, `list.remove` to cancel, `list.index` for a
position; plain dicts for orders and stock. It follows the same semantics as
`backorder.BackorderBook` for the operations it supports (place, receive,
adjust, cancel, ship, position, line, stock, waiting) and the test suite runs
it side by side with the real book, so the comparison is honest. No ledger,
no events, no atomicity, almost no validation.
"""

from __future__ import annotations

import bisect
from typing import Any

from backorder import (
    AllocationPolicy,
    CannotCancel,
    InsufficientStock,
    LineStatus,
    NotReadyToShip,
    Order,
    PartialFill,
    StockLevel,
    UnknownOrder,
    UnknownSku,
)

# ordered, allocated, shipped, cancelled
ORDERED, ALLOCATED, SHIPPED, CANCELLED = range(4)


class NaiveBook:
    """A list-based back-order book, O(n) per cancel, position and fill step."""

    def __init__(self, policy: AllocationPolicy | None = None) -> None:
        self.policy = policy if policy is not None else PartialFill()
        self.orders: dict[str, dict[str, Any]] = {}
        self.waiting_lines: dict[str, list[tuple[tuple[int, int], str]]] = {}
        self.on_hand: dict[str, int] = {}
        self.allocated: dict[str, int] = {}
        self.references: set[tuple[str, str]] = set()
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
            order_id, sku, order.tier, ln[ORDERED], ln[ALLOCATED], ln[SHIPPED], ln[CANCELLED], short
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

    # -- operations ----------------------------------------------------------------

    def place(self, order: Order) -> None:
        if order.id in self.orders:
            return
        self.seq += 1
        key = (self.policy.rank(order), self.seq)
        self.orders[order.id] = {
            "order": order,
            "key": key,
            "lines": {ol.sku: [ol.quantity, 0, 0, 0] for ol in order.lines},
        }
        for ol in order.lines:
            bisect.insort(self.waiting_lines.setdefault(ol.sku, []), (key, order.id))
            self._fill(ol.sku)

    def receive(self, sku: str, quantity: int, reference: str | None = None) -> None:
        if reference is not None:
            if (sku, reference) in self.references:
                return
            self.references.add((sku, reference))
        self.on_hand[sku] = self.on_hand.get(sku, 0) + quantity
        self._fill(sku)

    def adjust(self, sku: str, delta: int, reason: str) -> None:
        on_hand = self.on_hand.get(sku, 0) + delta
        if on_hand < 0:
            raise InsufficientStock(f"delta {delta} for {sku!r}")
        excess = self.allocated.get(sku, 0) - on_hand
        if excess > 0:
            holders = sorted(
                (
                    (record["key"], oid)
                    for oid, record in self.orders.items()
                    if sku in record["lines"] and record["lines"][sku][ALLOCATED]
                ),
                reverse=True,
            )
            queue = self.waiting_lines.setdefault(sku, [])
            for key, oid in holders:
                if excess == 0:
                    break
                ln = self.orders[oid]["lines"][sku]
                take = min(ln[ALLOCATED], excess)
                if (key, oid) not in queue:
                    bisect.insort(queue, (key, oid))
                ln[ALLOCATED] -= take
                self.allocated[sku] -= take
                excess -= take
        self.on_hand[sku] = on_hand
        self._fill(sku)

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
            ln[ALLOCATED] -= release
            self.allocated[name] = self.allocated.get(name, 0) - release
            if status.backordered and from_short == status.backordered:
                self.waiting_lines[name].remove((self.orders[order_id]["key"], order_id))
            self._fill(name)
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
            ln[ALLOCATED] -= wanted
            ln[SHIPPED] += wanted
            self.allocated[name] -= wanted
            self.on_hand[name] -= wanted
        return sum(wanted for _, wanted in plan)
