"""The command line: `backorder demo | replay | status | simulate` (or `python -m backorder`).

Exit codes: 0 done, 1 bad input (a bad event file, a file that is not a
book, an unknown order), 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import math
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._eventfile import (
    EventLine,
    FileError,
    cut,
    read_events,
    shown,
)
from .book import BackorderBook
from .domain import LineStatus, Order, OrderLine
from .errors import BackorderError
from .eta import Eta
from .policies import AllocationPolicy, PriorityTiers
from .storage.sqlite import SQLiteRepository

__all__ = ["POLICIES", "demo", "main", "print_waiting", "replay", "run_simulation", "status"]


from ._cli_tools import (
    POLICIES,
    _Progress,
    _progress_total,
    run_simulation,
)


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


def demo(out: TextIO | None = None) -> BackorderBook:
    """Print a short scripted story of one SKU's line on `out` (stdout when
    None), and return the book.

    Orders are placed against empty stock, a VIP order jumps the standard
    ones, stock arrives and the line is served in order, a cancellation frees
    stock for the next customer. Cost: a handful of operations.
    """
    out = sys.stdout if out is None else out
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


# --- the stored policy -------------------------------------------------------


def _policy_for(name: str | None, db: Path | None) -> AllocationPolicy | None:
    # --policy NAME, else the stored book's policy, else None (the default).
    # (the book itself uses the policy a stored book records when given None)
    if name is not None:
        return POLICIES[name]()
    return None


# --- replay ------------------------------------------------------------------


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


def _refusal(event: EventLine, exc: BackorderError) -> FileError:
    # What the book said about a line, prefixed like every other bad line.
    if isinstance(exc, FileError):
        return exc
    return FileError(event.where, f"{event.kind}: {cut(str(exc))}", event.number)


def _try_lines(
    events: Iterable[EventLine | FileError],
    book: BackorderBook,
    clock: _Clock,
    progress: _Progress,
    prefix: str,
) -> tuple[int, set[int]]:
    # Apply every good line to `book`, report each bad one as it comes;
    # return (lines applied, numbers of the bad lines).
    applied = 0
    bad: set[int] = set()
    for item in events:
        progress.update(item.number)
        if isinstance(item, FileError):
            error = item
        else:
            clock.now = item.at or clock.now
            try:
                item.apply(book)
            except BackorderError as exc:
                error = _refusal(item, exc)
            else:
                applied += 1
                continue
        bad.add(error.number)
        progress.say(f"{prefix}{error}")
    progress.done()
    return applied, bad


def _scratch(db: Path, policy: AllocationPolicy | None, clock: _Clock, tmp: str) -> BackorderBook:
    # A copy of the target to try the file on first (nothing is applied to
    # the target from a file with an error).
    if not db.exists() or db.stat().st_size == 0:
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


def _trial(
    path: Path,
    db: Path,
    policy: AllocationPolicy | None,
    start: datetime,
    total: int,
    skip_bad: bool,
    err: TextIO,
) -> set[int]:
    # The first pass, on a copy of `db`: the numbers of the bad lines (each
    # reported on `err`). The copy is closed and gone when this returns.
    with tempfile.TemporaryDirectory(prefix="backorder-replay-") as tmp:
        clock = _Clock(start)
        progress = _Progress(err, f"trying {path.name}", total)
        with _scratch(db, policy, clock, tmp) as scratch:
            _, bad = _try_lines(
                read_events(path), scratch, clock, progress, "skipped " if skip_bad else ""
            )
    return bad


class _Stop(Exception):
    # Raised out of `book.batch()` to abandon the whole real pass.
    def __init__(self, error: FileError) -> None:
        super().__init__(str(error))
        self.error = error


def _apply_lines(
    events: Iterable[EventLine | FileError],
    book: BackorderBook,
    clock: _Clock,
    progress: _Progress,
    skip: set[int],
) -> int:
    # The real pass: every line but the bad ones found by the trial; the
    # first line that fails now (another writer changed the book, or the
    # file changed) raises _Stop.
    applied = 0
    for item in events:
        progress.update(item.number)
        if item.number in skip:
            continue
        if isinstance(item, FileError):
            raise _Stop(item)
        clock.now = item.at or clock.now
        try:
            item.apply(book)
        except BackorderError as exc:
            raise _Stop(_refusal(item, exc)) from None
        applied += 1
    progress.done()
    return applied


def replay(
    path: Path,
    policy_name: str | None = None,
    db: Path | None = None,
    skip_bad: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Apply an event file to a book (in memory, or the SQLite file `db`) and
    print the waiting lines and their ETAs; return the exit code.

    With `db`, the file is first tried on a copy: if any line is wrong
    (unreadable, or an operation the book refuses), every such line is
    reported as `FILE:LINE: reason`, and nothing is applied (exit 1) —
    unless `skip_bad`, when the bad lines are listed and the others applied.
    The real pass is one `batch()`: if a line fails there too (another
    writer changed the book meanwhile), the whole pass is abandoned.
    `policy_name` None means the stored book's policy (`partial` for a new
    book or in memory). The waiting lines go to `out`, messages and
    progress (only when it is a terminal) to `err` (None: stdout, stderr).

    Cost: O(file) time (two passes with `db`, one without); memory that of
    the book, not of the file (lines are read one at a time).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    start = datetime.now(timezone.utc)
    try:
        total = _progress_total(path, err)
    except OSError as exc:
        err.write(f"backorder: cannot read {path}: {cut(str(exc))}\n")
        return 1
    try:
        policy = _policy_for(policy_name, db)
        if db is None:
            return _replay_in_memory(path, policy, start, total, skip_bad, out, err)
        bad = _trial(path, db, policy, start, total, skip_bad, err)
        if bad and not skip_bad:
            err.write(f"backorder: {len(bad)} bad line(s) in {path}; nothing applied\n")
            return 1
        clock = _Clock(start)
        with BackorderBook.open(db, policy, clock) as book:
            progress = _Progress(err, f"replaying {path.name}", total)
            try:
                with book.batch(atomic=True):  # all or nothing
                    applied = _apply_lines(read_events(path), book, clock, progress, bad)
            except _Stop as stop:
                progress.say(str(stop.error))
                progress.done()
                err.write(
                    f"backorder: {path} no longer applies as it did when tried (did another "
                    "writer change the book, or the file change?); stopped, nothing applied\n"
                )
                return 1
            out.write(f"applied {applied} event(s) from {path} to {db}\n")
            print_waiting(book, out)
    except OSError as exc:  # the file went away meanwhile, or the scratch copy failed
        err.write(f"backorder: {cut(str(exc))}\n")
        return 1
    except BackorderError as exc:
        err.write(f"backorder: {cut(str(exc))}\n")
        return 1
    return 0


def _replay_in_memory(
    path: Path,
    policy: AllocationPolicy | None,
    start: datetime,
    total: int,
    skip_bad: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    # In memory there is nothing to keep unchanged: one pass, and the book
    # is shown only when every line applied (or the bad ones are skipped).
    clock = _Clock(start)
    book = BackorderBook(policy, clock=clock)
    progress = _Progress(err, f"replaying {path.name}", total)
    applied, bad = _try_lines(
        read_events(path), book, clock, progress, "skipped " if skip_bad else ""
    )
    if bad and not skip_bad:
        err.write(f"backorder: {len(bad)} bad line(s) in {path}; nothing applied\n")
        return 1
    out.write(f"applied {applied} event(s) from {path}\n")
    print_waiting(book, out)
    return 0


# --- status ------------------------------------------------------------------


def _waits_for(book: BackorderBook, order: Order, line: LineStatus, short: Sequence[str]) -> str:
    # What the line waits for: its ETA while units are short; nothing when
    # all of it is allocated ("ready to ship"), unless a ship-complete order
    # waits for its other lines; "-" when nothing is left to ship.
    if line.backordered:
        return _eta_text(book.eta(order.id, line.sku))
    if not line.allocated:
        return "-"
    if order.ship_complete and short:
        return "ships with " + ", ".join(shown(sku) for sku in short) + " (ship complete)"
    return "ready to ship"


def status(
    db: Path, order_id: str | None, policy_name: str | None, out: TextIO, err: TextIO
) -> int:
    """Print a stored book's SKUs (or one order's lines, each with its ETA
    or "ready to ship") and return the exit code (1: no such file or order,
    or not a book). `policy_name` None means the stored book's policy.
    Cost: O(SKUs), or O(lines of the order)."""
    if not db.exists():
        err.write(f"backorder: no such file: {db}\n")
        return 1
    try:
        book = BackorderBook.open(db, _policy_for(policy_name, db))
    except BackorderError as exc:
        err.write(f"backorder: {cut(str(exc))}\n")
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
            err.write(f"backorder: {cut(str(exc))}\n")
            return 1
        short = [line.sku for line in order.lines if line.backordered]
        lines: list[tuple[str, ...]] = [
            ("sku", "ordered", "allocated", "shipped", "cancelled", "waiting", "place", "eta")
        ]
        for line in order.lines:
            cells = _line_cells(book, order_id, line.sku)
            lines.append((line.sku, *cells, _waits_for(book, order.order, line, short)))
        out.write(f"order {order_id} ({order.order.tier}):\n{_rows(lines)}\n")
    return 0


# --- the parser --------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("backorder")
    except importlib.metadata.PackageNotFoundError:
        from . import __version__

        return __version__


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    # Defaults shown for every option that has one; "no value" defaults
    # (None, False, []) are said in the help text instead of "(default: None)".
    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action) or ""


_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DIGITS = 40  # characters of a number on the command line, at most


def _plain(number: float) -> str:
    return f"{int(number):,}" if number == int(number) else f"{number:,}"


def _number_type(
    low: float, high: float, *, low_inclusive: bool, whole: bool = False
) -> Callable[[str], float]:
    # An argparse type: a finite number (ASCII digits) within bounds.
    above = f"at least {_plain(low)}" if low_inclusive else f"above {_plain(low)}"
    kind = "a whole number" if whole else "a finite number"
    wanted = f"{kind} {above} and at most {_plain(high)}"

    def parse(text: str) -> float:
        pattern = _INTEGER if whole else _DECIMAL
        if len(text) > _DIGITS or not pattern.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {shown(text)}")
        value = int(text) if whole else float(text)
        if (
            not math.isfinite(value)
            or value > high
            or value < low
            or (value == low and not low_inclusive)
        ):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {shown(text)}")
        return value

    parse.__name__ = kind
    return parse


def _seed(text: str) -> int:
    if len(text) > _DIGITS or not _INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {shown(text)}")
    return int(text)


#: synthetic() settings on the command line: option -> (type, metavar, help).
_SYNTHETIC: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "days": (
        _number_type(1, 36_500, low_inclusive=True, whole=True),
        "N",
        "days of synthetic demand, 1 to 36,500",
    ),
    "orders_per_day": (
        _number_type(0, 1_000_000, low_inclusive=False),
        "R",
        "orders a day over all SKUs, above 0 and at most 1,000,000",
    ),
    "fill_ratio": (
        _number_type(0, 1_000, low_inclusive=False),
        "F",
        "supply as a share of expected demand, above 0 and at most 1,000",
    ),
    "lateness_days": (
        _number_type(0, 3_650, low_inclusive=True),
        "L",
        "receipts arrive up to this many days late, 0 to 3,650",
    ),
    "seed": (_seed, "S", "random seed: the same seed, the same demand"),
}


def _default_of(parameters: Mapping[str, inspect.Parameter], name: str) -> object:
    # what synthetic() uses when the option is not given: the default preset's value
    from .simulate import preset_parameters

    steady = preset_parameters("steady")
    if name in steady:
        return steady[name]
    parameter = parameters.get(name)
    if parameter is None or parameter.default in (inspect.Parameter.empty, None):
        return "synthetic()'s"
    return parameter.default


def _parser() -> argparse.ArgumentParser:
    from . import simulate as simulate_module

    parser = argparse.ArgumentParser(
        prog="backorder",
        description="Back orders served in line order: try an event file, look at a stored "
        "book, compare allocation policies.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do (COMMAND --help: its options)",
    )
    commands.add_parser(
        "demo",
        help="print a short scripted story of a waiting line",
        description="Print a short scripted story of one product's waiting line.",
        formatter_class=_Formatter,
    )
    policy_help = (
        "allocation policy; the stored book's when not given (partial for a new book or in memory)"
    )
    play = commands.add_parser(
        "replay",
        help="apply an event file (JSON Lines or CSV) and print the waiting lines",
        description="Apply an event file to a book (in memory, or a SQLite book) and print "
        "every SKU's waiting lines with their ETAs. A file with a bad line changes nothing.",
        formatter_class=_Formatter,
    )
    play.add_argument("events", type=Path, help="the event file: EVENTS.jsonl or EVENTS.csv")
    play.add_argument("--policy", choices=sorted(POLICIES), default=None, help=policy_help)
    play.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="FILE",
        help="a SQLite book to apply it to, created if missing (else in memory)",
    )
    play.add_argument(
        "--skip-bad", action="store_true", help="apply the good lines and list the bad ones"
    )
    show = commands.add_parser(
        "status",
        help="show a stored book, or one order in it",
        description="Show every SKU of a stored book, or the lines of one order with what "
        "each waits for.",
        formatter_class=_Formatter,
    )
    show.add_argument("--db", type=Path, required=True, metavar="FILE", help="the SQLite book")
    show.add_argument("order_id", nargs="?", default=None, help="an order id (else every SKU)")
    show.add_argument("--policy", choices=sorted(POLICIES), default=None, help=policy_help)
    sim = commands.add_parser(
        "simulate",
        help="compare policies on an event file or on synthetic demand",
        description="Run the same events through each policy and print service measures per "
        "policy and tier.",
        formatter_class=_Formatter,
    )
    sim.add_argument(
        "events",
        type=Path,
        nargs="?",
        default=None,
        help="EVENTS.jsonl or EVENTS.csv, every line with `at` (else synthetic demand)",
    )
    sim.add_argument(
        "--policy",
        action="append",
        choices=sorted(POLICIES),
        default=[],
        dest="policies",
        help="a policy to compare (repeat for more; strict, partial and tiers when none)",
    )
    sim.add_argument(
        "--skip-bad", action="store_true", help="simulate the good lines and list the bad ones"
    )
    sim.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="a named synthetic scenario; the options below override its settings",
    )
    defaults = inspect.signature(simulate_module.synthetic).parameters
    for name, (kind, metavar, text) in _SYNTHETIC.items():
        sim.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            dest=name,
            metavar=metavar,
            help=f"{text} (default: {_default_of(defaults, name)}, or the preset's)",
        )
    sim.set_defaults(usage_error=sim.error)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 bad input, 2 usage).

    Raises:
        SystemExit: a usage error (code 2), or `--help` / `--version` (code 0).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return _simulate_command(args)
    if args.command == "replay":
        return replay(args.events, args.policy, args.db, args.skip_bad)
    if args.command == "status":
        return status(args.db, args.order_id, args.policy, sys.stdout, sys.stderr)
    demo()
    return 0


def _simulate_command(args: argparse.Namespace) -> int:
    from . import simulate as simulate_module

    usage_error: Callable[[str], NoReturn] = args.usage_error
    options = {name: getattr(args, name) for name in _SYNTHETIC if getattr(args, name) is not None}
    if args.preset is not None:
        if "preset" not in inspect.signature(simulate_module.synthetic).parameters:
            usage_error("--preset: this version of backorder.simulate.synthetic has no presets")
        presets = getattr(simulate_module, "PRESETS", None)
        if presets is not None and args.preset not in presets:
            usage_error(
                f"--preset: choose from {', '.join(sorted(presets))}, got {shown(args.preset)}"
            )
        options = {"preset": args.preset, **options}
    if args.events is not None and options:
        given = ", ".join("--" + name.replace("_", "-") for name in options)
        usage_error(f"{given}: synthetic demand settings, not for an event file")
    return run_simulation(
        args.events, args.policies, options, sys.stdout, sys.stderr, skip_bad=args.skip_bad
    )
