"""`backorder replay` and `backorder status`: event files, errors, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from backorder import BackorderBook
from backorder.cli import main, replay, status

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
    path: Path, policy: str = "partial", db: Path | None = None, skip_bad: bool = False
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
        (4, "needs quantity"),
        (5, "quantity"),
        (6, "NO-SUCH"),
        (7, "not a whole number"),
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


def test_long_files_show_progress(tmp_path: Path) -> None:
    records = [
        {"type": "place", "order_id": f"O-{i}", "lines": [{"sku": f"S{i % 7}", "quantity": 1}]}
        for i in range(10_000)
    ]
    code, _, err = _run(_jsonl(tmp_path / "long.jsonl", records), "strict")
    assert code == 0
    assert "replaying long.jsonl: 100% (10,000/10,000)" in err


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
