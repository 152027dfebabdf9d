"""The command line's progress display and its `simulate` command (a part
of `backorder.cli`, kept in a module of its own)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._eventfile import (
    EventLine,
    FileError,
    _parse,
    count_lines,
    cut,
    printable,
    read_events,
)
from .book import BackorderBook
from .errors import BackorderError
from .policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO

#: The policies the command line knows by name.
POLICIES: dict[str, Callable[[], AllocationPolicy]] = {
    "partial": PartialFill,
    "strict": StrictFIFO,
    "tiers": PriorityTiers,
    "tiers-strict": lambda: PriorityTiers(fill=StrictFIFO()),
}

# --- progress ----------------------------------------------------------------

#: Files with at least this many lines (and simulations of at least this many
#: operations) show progress, on a terminal only.
PROGRESS_FROM = 10_000


def _on_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _progress_total(path: Path, err: TextIO) -> int:
    # The lines of `path` when progress can be shown on `err`, else 0;
    # OSError if the file cannot be read.
    if _on_terminal(err):
        return count_lines(path)
    with path.open("rb"):
        return 0


class _Progress:
    # One progress line on a terminal, redrawn in place with "\r" whenever the
    # share changes; messages are written above it. Off the terminal (a file,
    # a pipe) it writes only the messages.
    def __init__(self, err: TextIO, label: str, total: int, unit: str = "lines") -> None:
        self._err = err
        self._on = total >= PROGRESS_FROM and _on_terminal(err)
        self._label = label
        self._total = total
        self._unit = unit
        self._share = -1
        self._text = ""

    def update(self, done: int) -> None:
        if not self._on:
            return
        share = min(100, done * 100 // self._total)
        if share != self._share:
            self._share = share
            self._text = (
                f"{self._label}: {share}% ({min(done, self._total):,}/{self._total:,} {self._unit})"
            )
            self._err.write(f"\r{self._text}")
            self._err.flush()

    def say(self, message: str) -> None:
        if self._text:
            self._err.write("\r" + " " * len(self._text) + "\r")
        self._err.write(printable(message) + "\n")
        if self._text:
            self._err.write(self._text)

    def done(self) -> None:
        if self._text:
            self.update(self._total)  # blank lines at the end are not counted
            self._err.write("\n")
            self._err.flush()
            self._text = ""


# --- simulate ----------------------------------------------------------------


def _counted(events: list[EventLine], progress: _Progress) -> Iterator[EventLine]:
    # The events, each counting its runs (one per policy) on `progress`.
    done = 0

    def counting(apply: Callable[[BackorderBook], Any]) -> Callable[[BackorderBook], Any]:
        def run(book: BackorderBook) -> Any:
            nonlocal done
            done += 1
            progress.update(done)
            return apply(book)

        return run

    for event in events:
        if isinstance(event, EventLine):
            yield EventLine(event.where, event.kind, event.at, counting(event.apply), event.number)
        else:  # one of the simulator's own kinds: not counted
            yield event


def _with_refused(result: Any) -> str:
    # The measures table with a `refused` column: operations a book refused
    # under that policy (counted on the "all" row; "-" for a tier).
    text: str = result.table()
    rows = text.splitlines()
    measures = result.measures
    if "refused" in rows[0] or len(rows) != len(measures) + 2:
        return text
    cells = ["refused", "", *[str(m.refused) if m.tier == "all" else "-" for m in measures]]
    width = max(len(cell) for cell in cells)
    cells[1] = "-" * width
    return "\n".join(f"{row}  {cell.rjust(width)}" for row, cell in zip(rows, cells, strict=True))


def _synthetic_events(options: dict[str, Any], err: TextIO) -> list[Any] | None:
    from .simulate import synthetic

    try:
        return synthetic(**options)
    except BackorderError as exc:
        err.write(f"backorder: {cut(str(exc))}\n")
    except (OverflowError, ValueError) as exc:  # a duration beyond what datetime can hold
        err.write(f"backorder: cannot make synthetic demand with these settings: {exc}\n")
    return None


def _file_events(path: Path, skip_bad: bool, err: TextIO) -> list[EventLine] | None:
    events: list[EventLine] = []
    bad = 0
    try:
        for item in read_events(path):
            if isinstance(item, EventLine):
                events.append(item)
                continue
            bad += 1
            err.write(printable(f"skipped {item}" if skip_bad else str(item)) + "\n")
    except OSError as exc:
        err.write(f"backorder: cannot read {path}: {cut(str(exc))}\n")
        return None
    if bad and not skip_bad:
        err.write(f"backorder: {bad} bad line(s) in {path}; nothing simulated\n")
        return None
    return events


def run_simulation(
    path: Path | None,
    policy_names: Sequence[str],
    synthetic_options: dict[str, Any],
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    skip_bad: bool = False,
) -> int:
    """Run the what-if comparison on an event file (or synthetic demand when
    `path` is None, `synthetic_options` passed to `synthetic()`) and print
    the table; return the exit code.

    Every line of the file needs `at`. A bad line (unreadable, or a value
    the API refuses whatever the book holds) is reported as `FILE:LINE:
    reason` and nothing is simulated (exit 1), unless `skip_bad`, when it is
    listed and left out. Operations a book refuses in the run (a ship of
    units that policy did not allocate, a cancel of an unknown order) are
    counted in the `refused` column. The table goes to `out`, messages and
    progress (only when it is a terminal) to `err` (None: stdout, stderr).
    Cost: O(events x policies).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from .simulate import simulate

    names = list(dict.fromkeys(policy_names)) or ["strict", "partial", "tiers"]
    policies = {name: POLICIES[name]() for name in names}
    events: list[Any] | None
    if path is None:
        events = _synthetic_events(synthetic_options, err)
        given = ", ".join(f"{k}={v}" for k, v in synthetic_options.items())
        source = f"synthetic demand {given}" if given else "synthetic demand (default settings)"
    else:
        events = _file_events(path, skip_bad, err)
        source = str(path)
    if events is None:
        return 1
    progress = _Progress(err, "simulating " + ", ".join(names), len(events) * len(names), "steps")
    if _on_terminal(err):
        from .simulate import SIMULATED_ONLY

        lines: list[Any] = []
        for number, event in enumerate(events, start=1):
            if isinstance(event, EventLine) or event.get("type") in SIMULATED_ONLY:
                lines.append(event)  # (simulate() reads the simulator's own kinds)
                continue
            try:
                lines.append(_parse(dict(event), f"event {number}", "python", number))
            except FileError as exc:
                err.write(f"backorder: {exc}\n")
                return 1
        events = list(_counted(lines, progress))
    try:
        result = simulate(events, policies)
    except BackorderError as exc:
        progress.done()
        err.write(f"backorder: {cut(str(exc))}\n")
        return 1
    progress.done()
    out.write(f"{result.events:,} events from {source}\n{_with_refused(result)}\n")
    refused = {m.policy: m.refused for m in result.measures if m.tier == "all" and m.refused}
    if refused:
        err.write(
            "note: the book refused "
            + ", ".join(f"{count} operation(s) under {name}" for name, count in refused.items())
            + " (they changed nothing; see the refused column)\n"
        )
    return 0
