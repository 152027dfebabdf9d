"""The command line: `backorder demo` (and `python -m backorder demo`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TextIO

from .book import BackorderBook
from .domain import Order, OrderLine
from .policies import PriorityTiers

__all__ = ["demo", "main"]


def _table(book: BackorderBook, order_ids: Sequence[str], sku: str) -> str:
    header = ("order", "tier", "ordered", "allocated", "shipped", "cancelled", "waiting", "place")
    rows = [header]
    for order_id in order_ids:
        line = book.line(order_id, sku)
        place = book.position(order_id, sku)
        rows.append(
            (
                order_id,
                line.tier,
                str(line.ordered),
                str(line.allocated),
                str(line.shipped),
                str(line.cancelled),
                str(line.backordered),
                "-" if place is None else f"#{place}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    stock = book.stock(sku)
    out.append(
        f"{sku}: on hand {stock.on_hand}, allocated {stock.allocated}, available {stock.available}"
    )
    return "\n".join(out)


def demo(out: TextIO = sys.stdout) -> BackorderBook:
    """Print a short scripted story of one SKU's line, and return the book.

    Orders are placed against empty stock, a VIP order jumps the standard
    ones, stock arrives and the line is served in order, a cancellation frees
    stock for the next customer. Cost: a handful of operations.
    """
    ticks = iter(range(10_000))
    start = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def clock() -> datetime:
        return start + timedelta(minutes=next(ticks))

    book = BackorderBook(PriorityTiers(), clock=clock)
    sku = "LAMP-OAK"
    ids = ["ada", "ben", "cleo", "dev"]

    def say(title: str) -> None:
        out.write(f"\n== {title}\n{_table(book, ids, sku)}\n")

    out.write("backorder demo: one SKU, four customers, policy PriorityTiers(PartialFill)\n")
    book.place(Order("ada", [OrderLine(sku, 2)]))
    book.place(Order("ben", [OrderLine(sku, 1)]))
    book.place(Order("cleo", [OrderLine(sku, 3)]))
    book.place(Order("dev", [OrderLine(sku, 1)], tier="vip"))
    say("Out of stock: four orders wait in line (dev is VIP, so first)")
    book.receive(sku, 4, reference="GRN-1001")
    say("4 lamps arrive (GRN-1001): dev, then ada, then 1 for ben")
    book.receive(sku, 4, reference="GRN-1001")
    say("The warehouse resends GRN-1001: counted once, nothing changes")
    book.ship("dev")
    book.ship("ada")
    say("dev and ada ship")
    book.cancel("ben")
    say("ben cancels: his lamp goes to the next in line, cleo")
    book.receive(sku, 2, reference="GRN-1002")
    say("2 more arrive (GRN-1002): cleo is complete, nobody waits")
    out.write("\nledger:\n")
    for entry in book.ledger.entries(sku):
        who = entry.order_id or entry.reference or ""
        out.write(
            f"  {entry.seq:>2} {entry.kind:<10} {who:<9} on hand {entry.on_hand:>2}  "
            f"allocated {entry.allocated:>2}  available {entry.available:>2}\n"
        )
    book.ledger.verify()
    out.write("ledger verified.\n")
    return book


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="backorder", description="Back orders served in line order."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="print a short scripted story of a waiting line")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    return 0
