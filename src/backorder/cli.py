"""The command line: `backorder demo | replay | status | simulate` (or `python -m backorder`).

Exit codes: 0 done, 1 bad input (a bad event file, a file that is not a
book, an unknown order), 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from ._eventfile import EventLine, FileError, read_events
from .book import BackorderBook
from .domain import Order, OrderLine
from .errors import BackorderError
from .eta import Eta
from .policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from .storage.sqlite import SQLiteRepository

__all__ = ["POLICIES", "demo", "main", "print_waiting", "replay", "run_simulation", "status"]


def _line_cells(book: BackorderBook, order_id: str, sku: str) -> tuple[str, ...]:
    # ordered, allocated, shipped, cancelled, waiting, place in line
    line = book.line(order_id, sku)
    place = book.position(order_id, sku)
    return (
        str(line.ordered),
        str(line.allocated),
        str(line.shipped),
        str(line.cancelled),
        str(line.backordered),
        "-" if place is None else f"#{place}",
    )


def _table(book: BackorderBook, order_ids: Sequence[str], sku: str) -> str:
    rows: list[tuple[str, ...]] = [
        ("order", "tier", "ordered", "allocated", "shipped", "cancelled", "waiting", "place")
    ]
    for order_id in order_ids:
        rows.append((order_id, book.line(order_id, sku).tier, *_line_cells(book, order_id, sku)))
    stock = book.stock(sku)
    return (
        f"{_rows(rows)}\n{sku}: on hand {stock.on_hand}, allocated {stock.allocated}, "
        f"available {stock.available}"
    )


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


POLICIES: dict[str, Callable[[], AllocationPolicy]] = {
    "partial": PartialFill,
    "strict": StrictFIFO,
    "tiers": PriorityTiers,
    "tiers-strict": lambda: PriorityTiers(fill=StrictFIFO()),
}


class _Clock:
    # The replay's clock: each event's `at`, else the last one seen (or the
    # time the replay started), so both passes see the same times.
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _eta_text(eta: Eta | None) -> str:
    if eta is None or eta.at is None:
        return "unknown"
    return f"{eta.at.isoformat()} ({eta.basis})"


def _rows(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def print_waiting(book: BackorderBook, out: TextIO) -> None:
    """Print every SKU's stock and its waiting lines with their ETAs. Cost: O(lines)."""
    for sku in book.skus():
        stock = book.stock(sku)
        waiting = book.waiting(sku)
        out.write(
            f"\n{sku}: on hand {stock.on_hand}, allocated {stock.allocated}, "
            f"available {stock.available}, {len(waiting)} line(s) waiting\n"
        )
        if waiting:
            rows: list[tuple[str, ...]] = [("#", "order", "tier", "waiting", "eta")]
            for place, line in enumerate(waiting, start=1):
                eta = book.eta(line.order_id, sku)
                rows.append(
                    (str(place), line.order_id, line.tier, str(line.backordered), _eta_text(eta))
                )
            out.write(_rows(rows) + "\n")


def _scratch(db: Path | None, policy: AllocationPolicy, clock: _Clock, tmp: str) -> BackorderBook:
    # A copy of the target to try the file on first (nothing is applied to
    # the target from a file with an error).
    if db is None or not db.exists() or db.stat().st_size == 0:
        return BackorderBook(policy, clock=clock)
    SQLiteRepository(db).close()  # refuses a file that is not a book, untouched
    copy = os.path.join(tmp, "scratch.db")
    source, target = sqlite3.connect(db), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return BackorderBook.open(copy, policy, clock)


def _read(path: Path, err: TextIO) -> tuple[list[EventLine], list[FileError]] | None:
    # An event file's good lines and bad ones; None (said on err) if unreadable.
    try:
        parsed = list(read_events(path))
    except OSError as exc:
        err.write(f"backorder: cannot read {path}: {exc}\n")
        return None
    return (
        [item for item in parsed if isinstance(item, EventLine)],
        [item for item in parsed if isinstance(item, FileError)],
    )


def replay(
    path: Path,
    policy_name: str = "partial",
    db: Path | None = None,
    skip_bad: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Apply an event file to a book (in memory, or the SQLite file `db`) and
    print the waiting lines and their ETAs; return the exit code.

    The file is first tried on a copy: if any line is wrong (unreadable, or
    an operation the book refuses), every such line is reported with file,
    line number and reason, and nothing is applied (exit 1) — unless
    `skip_bad`, when the bad lines are listed and the others applied.
    Long files show progress on `err`. Cost: two passes over the file.
    """
    policy = POLICIES[policy_name]()
    read = _read(path, err)
    if read is None:
        return 1
    events, errors = read
    start = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="backorder-replay-") as tmp:
        clock = _Clock(start)
        try:
            scratch = _scratch(db, policy, clock, tmp)
        except BackorderError as exc:
            err.write(f"backorder: {exc}\n")
            return 1
        with scratch:
            for event in events:
                clock.now = event.at or clock.now
                try:
                    event.apply(scratch)
                except BackorderError as exc:
                    errors.append(FileError(event.where, f"{event.kind}: {exc}"))
    errors.sort(key=lambda error: int(error.where.rpartition(":")[2]))
    if errors and not skip_bad:
        for error in errors:
            err.write(f"{error}\n")
        err.write(f"backorder: {len(errors)} bad line(s) in {path}; nothing applied\n")
        return 1
    for error in errors:
        err.write(f"skipped {error}\n")
    bad = {error.where for error in errors}
    todo = [event for event in events if event.where not in bad]
    clock = _Clock(start)
    try:
        book = (
            BackorderBook(policy, clock=clock)
            if db is None
            else BackorderBook.open(db, policy, clock)
        )
    except BackorderError as exc:
        err.write(f"backorder: {exc}\n")
        return 1
    with book:
        step = max(1, len(todo) // 100) if len(todo) >= PROGRESS_FROM else 0
        with book.batch():
            for done, event in enumerate(todo, start=1):
                clock.now = event.at or clock.now
                try:
                    event.apply(book)
                except BackorderError as exc:  # the file changed, or another writer
                    err.write(
                        f"{event.where}: {event.kind}: {exc} (stopped; lines before it applied)\n"
                    )
                    return 1
                if step and (done % step == 0 or done == len(todo)):
                    share = done * 100 // len(todo)
                    err.write(f"\rreplaying {path.name}: {share}% ({done:,}/{len(todo):,})")
            if step:
                err.write("\n")
        out.write(f"applied {len(todo)} event(s) from {path}" + (f" to {db}" if db else "") + "\n")
        print_waiting(book, out)
    return 0


#: Files with at least this many events show progress.
PROGRESS_FROM = 10_000


def status(db: Path, order_id: str | None, policy_name: str, out: TextIO, err: TextIO) -> int:
    """Print a stored book's SKUs (or one order's lines) with ETAs; return the exit code."""
    if not db.exists():
        err.write(f"backorder: no such file: {db}\n")
        return 1
    try:
        book = BackorderBook.open(db, POLICIES[policy_name]())
    except BackorderError as exc:
        err.write(f"backorder: {exc}\n")
        return 1
    with book:
        if order_id is None:
            rows = [
                (
                    "sku",
                    "on hand",
                    "allocated",
                    "available",
                    "waiting",
                    "backordered",
                    "next receipt",
                )
            ]
            for sku in book.skus():
                stock = book.stock(sku)
                expected = book.expected(sku)
                upcoming = (
                    f"{expected[0].quantity} on {expected[0].arriving.isoformat()}"
                    if expected
                    else "-"
                )
                rows.append(
                    (
                        sku,
                        str(stock.on_hand),
                        str(stock.allocated),
                        str(stock.available),
                        str(len(book.waiting(sku))),
                        str(book.backordered(sku)),
                        upcoming,
                    )
                )
            out.write(f"{db}: {len(book)} order(s)\n{_rows(rows)}\n")
            return 0
        try:
            order = book.status(order_id)
        except BackorderError as exc:
            err.write(f"backorder: {exc}\n")
            return 1
        lines: list[tuple[str, ...]] = [
            ("sku", "ordered", "allocated", "shipped", "cancelled", "waiting", "place", "eta")
        ]
        for line in order.lines:
            cells = _line_cells(book, order_id, line.sku)
            lines.append((line.sku, *cells, _eta_text(book.eta(order_id, line.sku))))
        out.write(f"order {order_id} ({order.order.tier}):\n{_rows(lines)}\n")
    return 0


def run_simulation(
    path: Path | None,
    policy_names: Sequence[str],
    synthetic_options: dict[str, Any],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the what-if comparison on an event file (or synthetic demand when
    `path` is None) and print the table; return the exit code. Every line of
    the file needs `at`. Cost: O(events x policies)."""
    from .simulate import simulate, synthetic

    names = list(dict.fromkeys(policy_names)) or ["strict", "partial", "tiers"]
    policies = {name: POLICIES[name]() for name in names}
    events: list[Any]
    if path is None:
        try:
            events = synthetic(**synthetic_options)
        except BackorderError as exc:
            err.write(f"backorder: {exc}\n")
            return 1
        source = "synthetic demand " + ", ".join(f"{k}={v}" for k, v in synthetic_options.items())
    else:
        read = _read(path, err)
        if read is None:
            return 1
        events, errors = read
        for error in errors:
            err.write(f"{error}\n")
        if errors:
            err.write(f"backorder: {len(errors)} bad line(s) in {path}; nothing simulated\n")
            return 1
        source = str(path)
    try:
        result = simulate(events, policies)
    except BackorderError as exc:
        err.write(f"backorder: {exc}\n")
        return 1
    out.write(f"{result.events:,} events from {source}\n{result.table()}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 bad input, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="backorder", description="Back orders served in line order."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="print a short scripted story of a waiting line")
    play = commands.add_parser(
        "replay", help="apply an event file (JSON Lines or CSV) and print the waiting lines"
    )
    play.add_argument("events", type=Path, help="EVENTS.jsonl or EVENTS.csv")
    play.add_argument("--policy", choices=sorted(POLICIES), default="partial")
    play.add_argument("--db", type=Path, help="a SQLite book to apply it to (else in memory)")
    play.add_argument(
        "--skip-bad", action="store_true", help="apply the good lines, list the bad ones"
    )
    show = commands.add_parser("status", help="show a stored book, or one order in it")
    show.add_argument("--db", type=Path, required=True, help="the SQLite book")
    show.add_argument("order_id", nargs="?", help="an order id (else every SKU)")
    show.add_argument("--policy", choices=sorted(POLICIES), default="partial")
    sim = commands.add_parser(
        "simulate", help="compare policies on an event file or on synthetic demand"
    )
    sim.add_argument("events", type=Path, nargs="?", help="EVENTS.jsonl|csv (else synthetic)")
    sim.add_argument(
        "--policy", action="append", choices=sorted(POLICIES), default=[], dest="policies"
    )
    sim.add_argument("--days", type=int, default=90)
    sim.add_argument("--orders-per-day", type=float, default=40.0)
    sim.add_argument("--fill-ratio", type=float, default=0.95)
    sim.add_argument("--lateness-days", type=float, default=0.0)
    sim.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "simulate":
        options = {
            "days": args.days,
            "orders_per_day": args.orders_per_day,
            "fill_ratio": args.fill_ratio,
            "lateness_days": args.lateness_days,
            "seed": args.seed,
        }
        return run_simulation(args.events, args.policies, options)
    if args.command == "replay":
        return replay(args.events, args.policy, args.db, args.skip_bad)
    if args.command == "status":
        return status(args.db, args.order_id, args.policy, sys.stdout, sys.stderr)
    demo()
    return 0
