"""Helpers shared by the tests: a deterministic clock and a whole-book snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from backorder import BackorderBook

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class TickingClock:
    """A clock that moves one second every time it is read."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def snapshot(book: BackorderBook) -> dict[str, Any]:
    """Everything observable about a book, and its private counters, as plain values.

    Two snapshots are equal exactly when nothing changed: every order's status,
    every SKU's stock, queue and positions, the ledger, the arrival counter and
    the receipt references already counted.
    """
    state = book._state
    skus = book.skus()
    return {
        "orders": [book.status(order_id) for order_id in book.order_ids()],
        "stock": [book.stock(sku) for sku in skus],
        "waiting": [book.waiting(sku) for sku in skus],
        "positions": {
            (line.order_id, line.sku): book.position(line.order_id, line.sku)
            for sku in skus
            for line in book.waiting(sku)
        },
        "ledger": list(book.ledger),
        "ledger_len": len(book.ledger),
        "seq": state.seq,
        "receipts": {name: dict(sku.receipts) for name, sku in state.skus.items()},
        "queues": {name: list(sku.queue) for name, sku in state.skus.items()},
        "held": {name: sorted(sku.held) for name, sku in state.skus.items()},
        "short": {name: sku.short for name, sku in state.skus.items()},
        "limits": {name: sku.limit for name, sku in state.skus.items()},
        "holds": sorted(
            (h.hold_id, h.sku, h.quantity, h.expires_at, h.seq) for h in state.holds.values()
        ),
        "sku_holds": {name: sorted(sku.holds) for name, sku in state.skus.items()},
        "hold_expiry": list(state.hold_expiry),
        "expired_holds": sorted(state.expired_holds),
        "hold_seq": state.hold_seq,
        "deadlines": list(state.deadlines),
        "tiers": {oid: (r.order.tier, r.rank) for oid, r in state.orders.items()},
    }
