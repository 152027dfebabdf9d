"""Reports: a book as plain records, for notebooks and tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .domain import LineStatus, OrderStatus, StockLevel
from .eta import Eta
from .results import ExpectResult

__all__ = ["book_records", "sku_records", "waiting_records"]


class _Readable(Protocol):
    """The reads of a book that reports need."""

    def order_ids(self) -> Iterator[str]: ...
    def skus(self) -> tuple[str, ...]: ...
    def status(self, order_id: str) -> OrderStatus: ...
    def position(self, order_id: str, sku: str) -> int | None: ...
    def waiting(self, sku: str) -> tuple[LineStatus, ...]: ...
    def eta(self, order_id: str, sku: str) -> Eta | None: ...
    def stock(self, sku: str) -> StockLevel: ...
    def expected(self, sku: str) -> tuple[ExpectResult, ...]: ...
    def backordered(self, sku: str) -> int: ...


def book_records(book: _Readable) -> list[dict[str, Any]]:
    """One dict per order line, orders in placement order, lines in order."""
    records: list[dict[str, Any]] = []
    for order_id in book.order_ids():
        status = book.status(order_id)
        order = status.order
        for line in status.lines:
            records.append(
                {
                    "order_id": order_id,
                    "sku": line.sku,
                    "tier": line.tier,
                    "placed_at": order.placed_at,
                    "ship_complete": order.ship_complete,
                    "ordered": line.ordered,
                    "allocated": line.allocated,
                    "shipped": line.shipped,
                    "cancelled": line.cancelled,
                    "backordered": line.backordered,
                    "position": book.position(order_id, line.sku),
                }
            )
    return records


def waiting_records(book: _Readable, sku: str | None) -> list[dict[str, Any]]:
    """One dict per waiting line (of `sku`, or of every SKU), in serving order."""
    records: list[dict[str, Any]] = []
    for name in book.skus() if sku is None else (sku,):
        for position, line in enumerate(book.waiting(name), start=1):
            eta = book.eta(line.order_id, name)
            records.append(
                {
                    "sku": name,
                    "position": position,
                    "order_id": line.order_id,
                    "tier": line.tier,
                    "backordered": line.backordered,
                    "allocated": line.allocated,
                    "eta": None if eta is None else eta.at,
                    "eta_basis": None if eta is None else eta.basis,
                }
            )
    return records


def sku_records(book: _Readable) -> list[dict[str, Any]]:
    """One dict per SKU: stock, waiting lines, units backordered, next receipt."""
    records: list[dict[str, Any]] = []
    for sku in book.skus():
        stock = book.stock(sku)
        expected = book.expected(sku)
        records.append(
            {
                "sku": sku,
                "on_hand": stock.on_hand,
                "allocated": stock.allocated,
                "available": stock.available,
                "waiting_lines": len(book.waiting(sku)),
                "backordered": book.backordered(sku),
                "next_receipt": expected[0].arriving if expected else None,
                "next_receipt_quantity": expected[0].quantity if expected else None,
            }
        )
    return records
