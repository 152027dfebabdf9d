"""Plain tables of a book, for notebooks and reports: records and HTML."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .book import BackorderBook
    from .ledger import StockLedger


def book_records(book: BackorderBook) -> list[dict[str, Any]]:
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


def waiting_records(book: BackorderBook, sku: str | None) -> list[dict[str, Any]]:
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


def sku_records(book: BackorderBook) -> list[dict[str, Any]]:
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


def ledger_records(ledger: StockLedger) -> list[dict[str, Any]]:
    """One dict per ledger entry, in entry order."""
    return [
        {
            "seq": entry.seq,
            "kind": entry.kind,
            "sku": entry.sku,
            "on_hand_delta": entry.on_hand_delta,
            "allocated_delta": entry.allocated_delta,
            "order_id": entry.order_id,
            "reference": entry.reference,
            "at": entry.at,
            "on_hand": entry.on_hand,
            "allocated": entry.allocated,
            "available": entry.available,
        }
        for entry in ledger
    ]


def html_table(caption: str, records: list[dict[str, Any]], limit: int = 50) -> str:
    """A compact HTML table of records (the first `limit` rows), values escaped."""
    if not records:
        return f"<p>{escape(caption)}: empty</p>"
    columns = list(records[0])
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{'' if record[c] is None else escape(str(record[c]))}</td>" for c in columns
        )
        + "</tr>"
        for record in records[:limit]
    )
    more = f"<p>... and {len(records) - limit} more rows</p>" if len(records) > limit else ""
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{more}"
    )
