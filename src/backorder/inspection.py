"""A read-only look at a book's internals, for test suites and stress runs."""

from __future__ import annotations

from typing import Any

from .engine.checks import check
from .engine.core import Engine
from .engine.state import unpack
from .unit_of_work import UnitOfWork

__all__ = ["BookInspector"]


class BookInspector:
    """What a test suite must see of a book beyond its public reads
    (`BackorderBook.inspect()`): the self-check, the private counters and
    indexes, what a lazily loaded book holds, how it caught up.

    Everything is a plain value; nothing here changes the book. Made per
    call: O(1).
    """

    __slots__ = ("_engine", "_work")

    def __init__(self, engine: Engine, work: UnitOfWork) -> None:
        self._engine = engine
        self._work = work

    def check(self) -> None:
        """Verify every internal invariant of what the book holds (queues,
        indexes, counters, holds, deadlines, the ledger, work conservation);
        raise AssertionError naming the first broken. O(orders + lines +
        ledger entries)."""
        with self._work.lock:
            check(self._engine.state, self._engine.policy)

    def loaded_skus(self) -> tuple[str, ...]:
        """The SKUs the book holds in memory (all of them unless lazily loaded). O(SKUs)."""
        with self._work.lock:
            return tuple(self._engine.state.skus)

    def loaded_orders(self) -> tuple[str, ...]:
        """The orders held in memory whose every line's SKU is loaded. O(lines)."""
        with self._work.lock:
            state = self._engine.state
            return tuple(
                order_id
                for order_id, record in state.orders.items()
                if all(line.sku in state.skus for line in record.lines)
            )

    def arrival(self, order_id: str, sku: str) -> tuple[int, int]:
        """The `(rank, arrival number)` a line is served by. Raises UnknownOrder
        / UnknownSku. O(lines of the order)."""
        with self._work.lock:
            rank, seq = unpack(self._engine.line(order_id, sku).key)
        return rank, seq

    @property
    def reloads(self) -> int:
        """How many times the book re-loaded its repository whole since it was
        made (catching up should read only what changed: 0). O(1)."""
        return int(getattr(self._work.store, "reloads", 0))

    @property
    def catch_ups(self) -> int:
        """How many times the book caught up with other writers. O(1)."""
        return int(getattr(self._work.store, "catch_ups", 0))

    def internals(self) -> dict[str, Any]:
        """The private counters and indexes as plain values: arrival counters,
        receipt and return references counted, each SKU's queue keys, allocated keys,
        backordered total, cap, lead time, slots, scheduled receipts and
        schedules, holds and their expiry, expired hold ids, deadlines,
        tiers and ranks. Two books agree exactly when these (and the public
        reads) do. O(orders + lines)."""
        with self._work.lock:
            return self._internals()

    def _internals(self) -> dict[str, Any]:
        state = self._engine.state
        skus = state.skus
        return {
            "seq": state.seq,
            "receipts": {name: dict(sku.receipts) for name, sku in skus.items()},
            "returns": {name: dict(sku.returns) for name, sku in skus.items()},
            "queues": {name: list(sku.queue) for name, sku in skus.items()},
            "held": {name: sorted(sku.allocated_keys) for name, sku in skus.items()},
            "short": {name: sku.backordered for name, sku in skus.items()},
            "limits": {name: sku.limit for name, sku in skus.items()},
            "lead_times": {name: sku.lead_time for name, sku in skus.items()},
            "slots": {
                name: (sku.slots, sorted((k, ln.slot) for k, ln in sku.lines.items()))
                for name, sku in skus.items()
            },
            "expected": sorted(
                (e.reference, e.sku, e.quantity, e.arriving, e.seq) for e in state.expected.values()
            ),
            "schedules": {name: list(sku.schedule) for name, sku in skus.items()},
            "expected_seq": state.expected_seq,
            "holds": sorted(
                (h.hold_id, h.sku, h.quantity, h.expires_at, h.seq) for h in state.holds.values()
            ),
            "sku_holds": {name: list(sku.holds) for name, sku in skus.items()},
            "hold_expiry": list(state.hold_expiry),
            "expired_holds": sorted(state.expired_holds),
            "hold_seq": state.hold_seq,
            "deadlines": list(state.deadlines),
            "tiers": {oid: (r.order.tier, r.rank) for oid, r in state.orders.items()},
        }
