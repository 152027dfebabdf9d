"""`backorder replay` and `backorder status`: event files, errors, exit codes."""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from backorder import (
    AllocationPolicy,
    BackorderBook,
    PartialFill,
    PriorityTiers,
    StrictFIFO,
    cli,
    policy_from_identity,
)
from backorder.cli import main, replay, status

from .cli_run import on_terminal, run_module

PLACE_A: dict[str, Any] = {
    "type": "place",
    "order_id": "A-1",
    "lines": [{"sku": "X", "quantity": 2}],
    "tier": "vip",
    "at": "2026-01-05T10:00:00+00:00",
}
EVENTS: list[dict[str, Any]] = [
    PLACE_A,
    {"type": "place", "order_id": "A-2", "lines": [{"sku": "X", "quantity": 3}]},
    {"type": "receive", "sku": "X", "quantity": 1, "reference": "GRN-7"},
    {"type": "expect", "sku": "X", "quantity": 10, "arriving": "2026-02-01", "reference": "PO-1"},
    {"type": "place", "order_id": "A-3", "lines": [{"sku": "Y", "quantity": 1}]},
    {"type": "cancel", "order_id": "A-3"},
    {"type": "adjust", "sku": "Y", "delta": 4, "reason": "found"},
]


def _jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _run(
    path: Path, policy: str | None = "partial", db: Path | None = None, skip_bad: bool = False
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = replay(path, policy, db, skip_bad, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_replay_applies_a_jsonl_file_and_prints_the_line_with_etas(tmp_path: Path) -> None:
    code, out, err = _run(_jsonl(tmp_path / "events.jsonl", EVENTS), "partial")
    assert code == 0, err
    assert "applied 7 event(s)" in out
    assert "X: on hand 1, allocated 1, available 0, 2 line(s) waiting" in out
    assert "2026-02-01T00:00:00+00:00 (scheduled)" in out  # the ETA from PO-1
    assert "Y: on hand 4" in out


def test_replay_into_a_database_then_status(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    code, _, err = _run(_jsonl(tmp_path / "events.jsonl", EVENTS), "tiers", db)
    assert code == 0, err
    with BackorderBook.open(db) as book:
        order = book.status("A-1")
        # `at` is when the order was placed
        assert order.order.placed_at == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
        assert order.lines[0].allocated == 1
        assert book.line("A-3", "Y").cancelled == 1
    out, err_text = io.StringIO(), io.StringIO()
    assert status(db, None, "tiers", out, err_text) == 0
    assert "3 order(s)" in out.getvalue()
    assert "10 on 2026-02-01" in out.getvalue()  # the next receipt
    out = io.StringIO()
    assert status(db, "A-2", "tiers", out, err_text) == 0
    assert "#2" in out.getvalue()  # A-2 waits behind the VIP
    assert status(db, "NOPE", "tiers", io.StringIO(), err_text) == 1
    assert "NOPE" in err_text.getvalue()
    assert status(tmp_path / "missing.db", None, "partial", io.StringIO(), err_text) == 1


def test_replay_reads_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "type,order_id,lines,sku,quantity,reference,tier,at\n"
        "place,C-1,X:2;Y:1,,,,vip,2026-01-05T10:00:00+00:00\n"
        "receive,,,X,5,GRN-1,,\n"
        "ship,C-1,,X,2,,,\n"
    )
    code, out, err = _run(path, "partial")
    assert code == 0, err
    assert "X: on hand 3, allocated 0" in out
    assert "Y: on hand 0, allocated 0, available 0, 1 line(s) waiting" in out


def test_a_bad_file_is_reported_line_by_line_and_nothing_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    assert _run(_jsonl(tmp_path / "first.jsonl", EVENTS[:2]), "partial", db)[0] == 0
    before = db.read_bytes()
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"type": "receive", "sku": "X", "quantity": 5}) + "\n"
        "this is not json\n"
        + json.dumps({"type": "teleport", "sku": "X"})
        + "\n"
        + json.dumps({"type": "receive", "sku": "X"})
        + "\n"
        + json.dumps({"type": "receive", "sku": "X", "quantity": -1})
        + "\n"
        + json.dumps({"type": "cancel", "order_id": "NO-SUCH"})
        + "\n"
        + json.dumps({"type": "place", "order_id": "Z", "lines": "X:two"})
        + "\n"
    )
    code, out, err = _run(path, "partial", db)
    assert code == 1
    assert out == ""
    for number, reason in (
        (2, "not JSON"),
        (3, "type must be one of"),
        (4, "receive: needs quantity"),
        (5, "receive: quantity must be from 1"),
        (6, "cancel: order_id 'NO-SUCH' is not in the book"),
        (7, "place: lines: quantity of 'X' must be a whole number"),
    ):
        said = [line for line in err.splitlines() if line.startswith(f"{path}:{number}: ")]
        assert len(said) == 1, (number, err)
        assert reason in said[0], (number, said)
    assert f"{path}:1:" not in err
    assert "6 bad line(s)" in err
    assert "nothing applied" in err
    assert db.read_bytes() == before  # not one line applied
    # --skip-bad applies the good line and lists the others
    code, out, err = _run(path, "partial", db, True)
    assert code == 0
    assert err.count("skipped ") == 6
    with BackorderBook.open(db) as book:
        assert book.stock("X").on_hand == 5


def test_the_command_line_exit_codes(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "events.jsonl", EVENTS)
    assert main(["replay", str(path), "--policy", "strict"]) == 0
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 1
    not_a_book = tmp_path / "notes.txt"
    not_a_book.write_text("hello\n" * 50)
    assert main(["replay", str(path), "--db", str(not_a_book)]) == 1
    with pytest.raises(SystemExit) as caught:
        main(["replay"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["replay", str(path), "--policy", "random"])
    assert caught.value.code == 2
    done = subprocess.run(
        [sys.executable, "-m", "backorder", "replay", str(path), "--db", str(tmp_path / "b.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "backorder", "status", "--db", str(tmp_path / "b.db"), "A-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "order A-1" in done.stdout


# --- progress: during both passes, on a terminal only ------------------------


def _long_file(tmp_path: Path) -> Path:
    records: list[dict[str, Any]] = [
        {"type": "place", "order_id": f"O-{i}", "lines": [{"sku": f"S{i % 7}", "quantity": 1}]}
        for i in range(10_000)
    ]
    records.append({"type": "receive", "sku": "S0", "quantity": 10_000, "reference": "GRN-1"})
    return _jsonl(tmp_path / "long.jsonl", records)


def test_replay_shows_progress_of_both_passes_on_a_terminal(tmp_path: Path) -> None:
    path = _long_file(tmp_path)
    code, out, terminal = on_terminal(
        ["replay", str(path), "--db", str(tmp_path / "b.db")], tmp_path
    )
    assert code == 0, terminal
    assert "applied 10001 event(s)" in out
    assert "\rtrying long.jsonl: 0% (" in terminal
    assert "\rtrying long.jsonl: 100% (10,001/10,001 lines)" in terminal
    assert "\rreplaying long.jsonl: 100% (10,001/10,001 lines)" in terminal
    assert terminal.index("trying") < terminal.index("replaying")
    # in memory: one pass
    code, out, terminal = on_terminal(["replay", str(path)], tmp_path)
    assert code == 0, terminal
    assert "\rreplaying long.jsonl: 100% (10,001/10,001 lines)" in terminal
    assert "trying" not in terminal


def test_replay_writes_no_progress_to_a_file_or_pipe(tmp_path: Path) -> None:
    path = _long_file(tmp_path)
    done = run_module(["replay", str(path), "--db", str(tmp_path / "b.db")])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    code, _, err = _run(path, "strict")  # a StringIO is not a terminal either
    assert (code, err) == (0, "")


def test_bad_lines_are_written_above_the_progress_line(tmp_path: Path) -> None:
    path = _long_file(tmp_path)
    with path.open("a") as handle:
        handle.write(json.dumps({"type": "cancel", "order_id": "NO-SUCH"}) + "\n")
    code, _, terminal = on_terminal(["replay", str(path)], tmp_path)
    assert code == 1
    # the progress line is wiped before the message, so the message starts a line
    assert f"\r{' ' * 20}" in terminal
    message = f"{path}:10002: cancel: order_id 'NO-SUCH' is not in the book"
    assert f"\r{message}\r\n" in terminal or f"\r{message}\n" in terminal


# --- issue 12, item 2: replay --db is all or nothing -------------------------


def _another_writer_between_the_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, tuple[int, str, str]]:
    db = tmp_path / "book.db"
    assert _run(_jsonl(tmp_path / "first.jsonl", [PLACE_A]), "partial", db)[0] == 0
    path = _jsonl(
        tmp_path / "events.jsonl",
        [
            {"type": "receive", "sku": "X", "quantity": 5},  # no reference: counts each time
            {"type": "cancel", "order_id": "A-1"},
        ],
    )
    trial = cli._trial

    def trial_then_another_writer(*args: Any, **kwargs: Any) -> set[int]:
        bad = trial(*args, **kwargs)
        with BackorderBook.open(db) as other:
            other.cancel("A-1")  # now the file's cancel fails
        return bad

    monkeypatch.setattr(cli, "_trial", trial_then_another_writer)
    return db, _run(path, "partial", db)


def test_a_line_that_fails_in_the_real_pass_stops_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, (code, out, err) = _another_writer_between_the_passes(tmp_path, monkeypatch)
    assert code == 1
    assert out == ""
    assert "events.jsonl:2: cancel: " in err
    assert "no longer applies as it did when tried" in err
    assert "nothing applied" in err


def test_a_replay_is_all_or_nothing_whatever_else_writes_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, (code, _, _) = _another_writer_between_the_passes(tmp_path, monkeypatch)
    assert code == 1
    with BackorderBook.open(db) as book:
        assert book.line("A-1", "X").cancelled == 2  # the other writer's cancel
        assert book.stock("X").on_hand == 0  # and nothing of the file


# --- issue 12, item 1: the stored policy unless told otherwise ---------------


@pytest.mark.parametrize(
    "policy",
    [
        StrictFIFO(),
        PartialFill(),
        PriorityTiers(),
        PriorityTiers(fill=StrictFIFO()),
        PriorityTiers(tiers=("gold",)),
        PriorityTiers(tiers=("it's", 'say "hi"', "Bär", "a\\b", "\u00e9\t")),
    ],
    ids=repr,
)
def test_a_built_in_policy_is_read_back_from_its_identity(policy: AllocationPolicy) -> None:
    assert policy_from_identity(repr(policy)) == policy


def test_the_identity_the_book_records_is_read_back() -> None:
    identity = (
        "PriorityTiers(tiers=('contract', 'vip', 'standard'), fill=PartialFill(), preempt=False)"
    )
    assert policy_from_identity(identity) == PriorityTiers()
    assert policy_from_identity(f"  {identity}\n") == PriorityTiers()
    preempting = identity.replace("preempt=False", "preempt=True")
    if "preempt" in inspect.signature(PriorityTiers).parameters:
        assert policy_from_identity(preempting) == PriorityTiers(preempt=True)
    else:
        assert policy_from_identity(preempting) is None


@pytest.mark.parametrize(
    "identity",
    [
        "",
        "StrictFIFO",
        "StrictFIFO(1)",
        "PartialFill(x=1)",
        "strictfifo()",
        "__import__('os').system('echo owned')",
        "PriorityTiers(tiers=('a', 'a'))",
        "PriorityTiers(tiers=())",
        "PriorityTiers(tiers='ab')",
        "PriorityTiers(tiers=('a',) + ('b',))",
        "PriorityTiers(tiers=(f'{1}',))",
        "PriorityTiers(tiers=('a', 1))",
        "PriorityTiers(('a',))",
        "PriorityTiers(fill=PriorityTiers())",
        "PriorityTiers(fill=Evil())",
        "PriorityTiers(tiers=('a',), preempt=1)",
        "PriorityTiers(colour='red')",
        "PriorityTiers(**{'tiers': ('a',)})",
        "shop.policies.Seasonal",
        "StrictFIFO(); PartialFill()",
        "PartialFill()" * 2_000,
        "(" * 100_000,
        "PriorityTiers(tiers=(" + "(" * 500 + "'a'" + ")" * 500 + ",))",
    ],
)
def test_anything_else_is_not_a_built_in_policy(identity: str) -> None:
    assert policy_from_identity(identity) is None


def test_replay_and_status_use_the_stored_policy_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PriorityTiers book with a VIP waiting; opened with the old default
    # (partial), a new standard order would rank 0 and be served first.
    db = tmp_path / "book.db"
    vip = {"type": "place", "order_id": "V-1", "lines": [{"sku": "X", "quantity": 1}]}
    vip["tier"] = "vip"
    assert _run(_jsonl(tmp_path / "first.jsonl", [vip]), "tiers", db)[0] == 0
    standard = {"type": "place", "order_id": "S-1", "lines": [{"sku": "X", "quantity": 1}]}
    path = _jsonl(
        tmp_path / "more.jsonl", [standard, {"type": "receive", "sku": "X", "quantity": 1}]
    )
    code, _, err = _run(path, None, db)
    assert code == 0, err
    with BackorderBook.open(db, PriorityTiers()) as book:
        assert book.line("V-1", "X").allocated == 1  # the VIP first, as the stored policy says
        assert book.line("S-1", "X").allocated == 0
    text = io.StringIO()
    assert status(db, "S-1", None, text, io.StringIO()) == 0
    assert "#1" in text.getvalue()
    # --policy says otherwise: another policy than the stored one is refused
    again = _jsonl(tmp_path / "again.jsonl", [{**standard, "order_id": "S-2"}])
    assert _run(again, "tiers", db)[0] == 0
    assert status(db, "S-2", "tiers", io.StringIO(), io.StringIO()) == 0
    code, _, err = _run(again, "partial", db)
    assert code == 1
    assert "PolicyMismatch" in err or "stored with policy" in err


def test_a_new_book_or_one_in_memory_does_not_ask_for_a_stored_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _jsonl(tmp_path / "events.jsonl", EVENTS)
    assert _run(path, None)[0] == 0
    assert _run(path, None, tmp_path / "new.db")[0] == 0


# --- status: what a line waits for --------------------------------------------


def test_status_says_a_fully_allocated_line_is_ready_to_ship(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    events: list[dict[str, Any]] = [
        {"type": "receive", "sku": "X", "quantity": 3, "reference": "GRN-1"},
        {"type": "place", "order_id": "A", "lines": [{"sku": "X", "quantity": 1}]},
        {
            "type": "place",
            "order_id": "B",
            "lines": [{"sku": "X", "quantity": 1}, {"sku": "Y", "quantity": 1}],
            "ship_complete": True,
        },
        {"type": "place", "order_id": "C", "lines": [{"sku": "X", "quantity": 1}]},
        {"type": "ship", "order_id": "C"},
    ]
    assert _run(_jsonl(tmp_path / "events.jsonl", events), "partial", db)[0] == 0

    def eta_of(order_id: str, sku: str) -> str:
        out = io.StringIO()
        assert status(db, order_id, None, out, io.StringIO()) == 0
        row = next(line for line in out.getvalue().splitlines() if line.startswith(sku + " "))
        return row.split(maxsplit=7)[7]

    assert eta_of("A", "X") == "ready to ship"
    assert eta_of("B", "X") == "ships with 'Y' (ship complete)"
    assert eta_of("B", "Y") == "unknown"
    assert eta_of("C", "X") == "-"
