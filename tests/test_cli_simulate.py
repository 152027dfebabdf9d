"""`backorder simulate`: bad lines, --skip-bad, the refused column, numbers
out of range, --preset, progress on a terminal only."""

from __future__ import annotations

import functools
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from backorder import simulate as simulate_module
from backorder.cli import main, run_simulation

from .cli_run import jsonl, on_terminal, run_module

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


# A receipt of 2, an order of 3 (partial fill allocates 2, strict none), a
# cancel of an unknown order (refused by every book), a negative receipt (a
# bad line: the API refuses it whatever the book holds), a ship of A
# (refused under strict: nothing allocated).
EVENTS: list[dict[str, Any]] = [
    {"type": "receive", "sku": "X", "quantity": 2, "at": _at(0)},
    {"type": "place", "order_id": "A", "lines": [{"sku": "X", "quantity": 3}], "at": _at(1)},
    {"type": "cancel", "order_id": "NO-SUCH", "at": _at(2)},
    {"type": "receive", "sku": "X", "quantity": -2, "at": _at(3)},
    {"type": "ship", "order_id": "A", "sku": "X", "quantity": 2, "at": _at(4)},
]


def _simulate(path: Path | None, skip_bad: bool, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_simulation(path, ["strict", "partial"], options, out, err, skip_bad=skip_bad)
    return code, out.getvalue(), err.getvalue()


def _refused(table: str) -> dict[str, str]:
    rows = [line.split() for line in table.splitlines()]
    header = next(row for row in rows if row[:2] == ["policy", "tier"])
    assert header[-1] == "refused"
    return {row[0]: row[-1] for row in rows if len(row) > 2 and row[1] == "all"}


def test_a_bad_line_stops_the_simulation_unless_skip_bad(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "events.jsonl", EVENTS)
    code, out, err = _simulate(path, skip_bad=False)
    assert code == 1
    assert out == ""
    assert f"{path}:4: receive: quantity must be from 1" in err
    assert "1 bad line(s)" in err
    assert "nothing simulated" in err
    code, out, err = _simulate(path, skip_bad=True)
    assert code == 0, err
    assert f"skipped {path}:4: receive: quantity must be from 1" in err
    assert "4 events from" in out
    # strict refused the cancel and the ship; partial only the cancel
    assert _refused(out) == {"strict": "2", "partial": "1"}
    assert "the book refused 2 operation(s) under strict, 1 operation(s) under partial" in err


def test_the_refused_column_on_the_command_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "events.jsonl", [e for e in EVENTS if e["type"] != "receive"][:1])
    done = run_module(["simulate", str(path), "--policy", "partial"])
    assert done.returncode == 0, done.stderr
    assert "refused" in done.stdout.splitlines()[1]
    done = run_module(["simulate", str(jsonl(tmp_path / "all.jsonl", EVENTS)), "--skip-bad"])
    assert done.returncode == 0, done.stderr
    assert _refused(done.stdout) == {"strict": "2", "partial": "1", "tiers": "1"}
    done = run_module(["simulate", str(tmp_path / "all.jsonl")])
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--orders-per-day", "nan", "must be a finite number above 0"),
        ("--orders-per-day", "inf", "must be a finite number above 0"),
        ("--orders-per-day=", "-inf", "must be a finite number above 0"),
        ("--orders-per-day", "0", "must be a finite number above 0"),
        ("--orders-per-day", "1e300", "must be a finite number above 0 and at most 1,000,000"),
        ("--fill-ratio", "nan", "must be a finite number above 0"),
        ("--fill-ratio", "0", "must be a finite number above 0"),
        ("--lateness-days", "nan", "must be a finite number at least 0"),
        ("--lateness-days", "-1", "must be a finite number at least 0"),
        ("--lateness-days", "1e300", "must be a finite number at least 0 and at most 3,650"),
        ("--days", "0", "must be a whole number at least 1"),
        ("--days", "1.5", "must be a whole number"),
        ("--days", "\u0663", "must be a whole number"),
        ("--days", "9" * 5000, "must be a whole number"),
        ("--seed", "1_0", "must be a whole number"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    given = [option + value] if option.endswith("=") else [option, value]
    with pytest.raises(SystemExit) as caught:
        main(["simulate", *given])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option.rstrip('=')}: {says}" in err
    assert "Traceback" not in err
    assert len(err) < 1_000


def test_nan_on_the_command_line_exits_2_without_a_traceback() -> None:
    for option in ("--orders-per-day", "--fill-ratio", "--lateness-days"):
        done = run_module(["simulate", option, "nan"])
        assert done.returncode == 2
        assert "must be a finite number" in done.stderr
        assert "Traceback" not in done.stderr


def test_synthetic_settings_beside_an_event_file_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "events.jsonl", EVENTS[:2])
    with pytest.raises(SystemExit) as caught:
        main(["simulate", str(path), "--days", "3"])
    assert caught.value.code == 2
    assert "--days: synthetic demand settings, not for an event file" in capsys.readouterr().err


def test_only_the_settings_given_are_passed_to_synthetic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, Any]] = []
    synthetic = simulate_module.synthetic

    @functools.wraps(synthetic)
    def recording(**options: Any) -> list[dict[str, Any]]:
        seen.append(options)
        return synthetic(**{"days": 3, **options})

    monkeypatch.setattr(simulate_module, "synthetic", recording)
    assert main(["simulate", "--policy", "strict", "--orders-per-day", "5", "--seed", "2"]) == 0
    assert seen == [{"orders_per_day": 5.0, "seed": 2}]
    assert "synthetic demand orders_per_day=5.0, seed=2" in capsys.readouterr().out


def test_simulate_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    args = ["simulate", "--days", "15", "--orders-per-day", "400", "--policy", "strict"]
    args += ["--policy", "partial"]
    code, out, terminal = on_terminal(args, tmp_path)
    assert code == 0, terminal
    assert "\rsimulating strict, partial: 0% (" in terminal
    assert "\rsimulating strict, partial: 100% (" in terminal
    assert " steps)" in terminal
    assert " all " in out
    done = run_module(args)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "%" not in done.stderr
