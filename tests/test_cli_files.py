"""Event files held to the API's rules: every bad line is `FILE:LINE: reason`,
exit 1, nothing applied; never a traceback."""

from __future__ import annotations

import gc
import json
import pickle
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backorder import BackorderBook, cli
from backorder._eventfile import EventLine, FileError, read_events

from .cli_run import jsonl, run_module, run_replay

RECEIVE: dict[str, Any] = {"type": "receive", "sku": "X", "quantity": 5, "reference": "GRN-1"}
PLACE: dict[str, Any] = {"type": "place", "order_id": "A-1", "lines": [{"sku": "X", "quantity": 1}]}


def _book_with_one_order(tmp_path: Path) -> tuple[Path, bytes]:
    db = tmp_path / "book.db"
    assert run_replay(jsonl(tmp_path / "first.jsonl", [PLACE]), db=db)[0] == 0
    return db, db.read_bytes()


def _assert_refused(path: Path, db: Path, before: bytes, number: int, reason: str) -> str:
    code, out, err = run_replay(path, db=db)
    assert code == 1, err
    assert out == ""
    said = [line for line in err.splitlines() if line.startswith(f"{path}:{number}: ")]
    assert len(said) == 1, err
    assert reason in said[0], said
    assert "nothing applied" in err
    assert db.read_bytes() == before
    assert run_replay(path)[0] == 1  # in memory too
    return said[0]


# --- issue 12, item 3: an empty or null reference is a bad line -------------


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("", "receive: reference must not be empty, got ''"),
        ("   ", "receive: reference must not be empty"),
        (None, "receive: reference is null (leave a field out to give no value)"),
    ],
)
def test_an_empty_or_null_reference_in_json_is_a_bad_line(
    tmp_path: Path, reference: str | None, reason: str
) -> None:
    db, before = _book_with_one_order(tmp_path)
    path = jsonl(tmp_path / "events.jsonl", [RECEIVE, {**RECEIVE, "reference": reference}])
    _assert_refused(path, db, before, 2, reason)


def test_null_is_a_bad_value_for_any_field_in_json(tmp_path: Path) -> None:
    db, before = _book_with_one_order(tmp_path)
    path = jsonl(tmp_path / "events.jsonl", [{"type": "cancel", "order_id": "A-1", "sku": None}])
    _assert_refused(path, db, before, 1, "cancel: sku is null")


def test_a_file_with_references_counts_a_receipt_once_however_often_it_is_replayed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "book.db"
    path = jsonl(tmp_path / "events.jsonl", [RECEIVE])
    for _ in range(2):
        assert run_replay(path, db=db)[0] == 0
    with BackorderBook.open(db) as book:
        assert book.stock("X").on_hand == 5


def test_csv_an_empty_reference_cell_is_a_bad_line_when_the_file_has_the_column(
    tmp_path: Path,
) -> None:
    db, before = _book_with_one_order(tmp_path)
    path = tmp_path / "events.csv"
    path.write_text("type,sku,quantity,reference\nreceive,X,5,GRN-1\nreceive,X,5,\n")
    _assert_refused(path, db, before, 3, "receive: reference is empty")
    # A place row leaves the column empty: that is "not given" for a place.
    path.write_text("type,order_id,lines,sku,quantity,reference\nplace,B-1,X:1,,,\n")
    assert run_replay(path, db=db)[0] == 0
    # Without the column, receipts carry no reference (the file says so).
    path.write_text("type,sku,quantity\nreceive,X,5\n")
    code, out, err = run_replay(path)
    assert code == 0, err
    assert "X: on hand 5" in out


# --- issue 12, item 7: hostile lines are bad lines, never a traceback --------

HOSTILE: list[tuple[str, bytes, str]] = [
    ("bad UTF-8", b'{"type": "receive", "sku": "X\xff", "quantity": 5}\n', "not UTF-8"),
    ("a Latin-1 file", '{"type": "receive", "sku": "Bär", "quantity": 5}\n'.encode("latin-1"),
     "not UTF-8: byte 0xe4"),
    ("nested too deeply", b"[" * 100_000 + b"\n", "nested too deeply"),
    ("a value nested deep", b'{"type": "receive", "sku": ' + b"[" * 50 + b"]" * 50
     + b', "quantity": 5}\n', "receive: sku is nested too deeply"),
    ("fill_by in year 9999", json.dumps({**PLACE, "order_id": "B", "fill_by": "9999-12-31"})
     .encode() + b"\n", "place: Order.fill_by must be a date before 9999-12-31"),
    ("an at beyond UTC", json.dumps({**RECEIVE, "at": "9999-12-31T23:30:00-01:00"}).encode()
     + b"\n", "receive: at is out of range in UTC"),
    ("a lone surrogate", b'{"type": "receive", "sku": "\\ud800", "quantity": 5}\n',
     "receive: sku is not valid Unicode (a lone surrogate): '\\ud800'"),
    ("a lone surrogate in metadata", b'{"type": "place", "order_id": "B", "lines": [{"sku": '
     b'"X", "quantity": 1}], "metadata": {"note": "\\udfff"}}\n', "place: metadata is not valid"),
    ("Arabic-Indic digits", b'{"type": "receive", "sku": "X", "quantity": "\xd9\xa3"}\n',
     "receive: quantity must be a whole number in ASCII digits, got '\u0663'"),
    ("an underscore", b'{"type": "receive", "sku": "X", "quantity": "1_000"}\n',
     "receive: quantity must be a whole number in ASCII digits, got '1_000'"),
    ("full-width digits in lines", '{"type": "place", "order_id": "B", "lines": "X:\uff13"}\n'
     .encode(), "place: lines: quantity of 'X' must be a whole number in ASCII digits"),
    ("a float", b'{"type": "receive", "sku": "X", "quantity": "3.5"}\n',
     "receive: quantity must be a whole number in ASCII digits, got '3.5'"),
    ("NaN", b'{"type": "receive", "sku": "X", "quantity": NaN}\n', "not JSON: NaN"),
    ("a field twice", b'{"type": "receive", "sku": "X", "quantity": 5, "quantity": 500}\n',
     "field 'quantity' is given twice"),
    ("a negative receipt", b'{"type": "receive", "sku": "X", "quantity": -1}\n',
     "receive: quantity must be from 1 to"),
    ("a zero delta", b'{"type": "adjust", "sku": "X", "delta": "0", "reason": "count"}\n',
     "adjust: delta must be a non-zero int"),
    ("a type that is a list", b'{"type": ["receive"], "sku": "X", "quantity": 5}\n',
     "type must be one of adjust, cancel, expect, place, receive, ship, got ['receive']"),
    ("a huge number", b'{"type": "receive", "sku": "X", "quantity": "' + b"9" * 5000 + b'"}\n',
     "receive: quantity is out of range"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "line", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_line_is_a_bad_line(tmp_path: Path, name: str, line: bytes, reason: str) -> None:
    db, before = _book_with_one_order(tmp_path)
    path = tmp_path / "events.jsonl"
    path.write_bytes(json.dumps(RECEIVE).encode() + b"\n" + line)
    _assert_refused(path, db, before, 2, reason)


def test_hostile_lines_never_give_a_traceback_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line for _, line, _ in HOSTILE))
    for args in (["replay", str(path)], ["replay", str(path), "--db", str(tmp_path / "b.db")]):
        done = run_module(args)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert f"{len(HOSTILE)} bad line(s)" in done.stderr
        for number in range(1, len(HOSTILE) + 1):
            assert f"{path}:{number}: " in done.stderr
    assert not (tmp_path / "b.db").exists()


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(b"\xef\xbb\xbftype,sku,quantity,reference\r\nreceive,X,5,GRN-1\r\n")
    code, out, err = run_replay(path)
    assert code == 0, err
    assert "X: on hand 5" in out
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(RECEIVE).encode() + b"\n")
    code, out, err = run_replay(path)
    assert code == 0, err
    assert "X: on hand 5" in out


def test_numbers_in_csv_are_ascii_digits_and_spaces_around_them_do_not_matter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "type,order_id,lines,sku,quantity,delta,reason\n"
        "receive,,,X, 3 ,,\n"
        "adjust,,,X,,-1,count\n"
        "place,B,X: 2,,,,\n"
    )
    code, out, err = run_replay(path)
    assert code == 0, err
    assert "X: on hand 2, allocated 2" in out
    path.write_text("type,sku,quantity\nreceive,X,\u0663\nreceive,Y,+3\nreceive,Z,0x10\n")
    code, _, err = run_replay(path)
    assert code == 1
    for number in (2, 3, 4):
        assert f"{path}:{number}: receive: quantity must be a whole number in ASCII" in err


def test_csv_lines_that_are_not_csv_are_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    huge = "X" * 200_000
    path.write_bytes(
        b"type,sku,quantity\nreceive,X,1\nreceive," + huge.encode() + b",1\n"
        b"receive,X\xff,1\nreceive,X,1,1\nreceive,Y,2\n"
    )
    code, _, err = run_replay(path)
    assert code == 1
    assert f"{path}:3: not CSV: field larger than field limit" in err
    assert f"{path}:4: not UTF-8" in err
    assert f"{path}:5: more cells than the header has columns" in err
    assert "3 bad line(s)" in err
    code, out, err = run_replay(path, skip_bad=True)
    assert code == 0, err
    assert "Y: on hand 2" in out


def test_every_bad_line_is_prefixed_with_its_type(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "events.jsonl",
        [
            {"type": "receive", "sku": "X", "quantity": "3.5"},
            {"type": "receive", "sku": "X"},
            {"type": "receive", "sku": "X", "quantity": 1, "colour": "red"},
            {"type": "place", "order_id": "B", "lines": "X"},
            {"type": "cancel", "order_id": "NO-SUCH"},
            {"type": "ship", "order_id": "NO-SUCH"},
            {"type": "expect", "sku": "X", "quantity": 1, "arriving": "soon", "reference": "P"},
        ],
    )
    code, _, err = run_replay(path)
    assert code == 1
    kinds = ["receive", "receive", "receive", "place", "cancel", "ship", "expect"]
    for number, kind in enumerate(kinds, start=1):
        assert f"{path}:{number}: {kind}: " in err, err


def test_long_values_are_cut_in_messages(tmp_path: Path) -> None:
    big = "A" * 1_000_000
    path = jsonl(
        tmp_path / "events.jsonl",
        [
            {"type": "cancel", "order_id": big},  # the book refuses it: an unknown order
            {"type": "receive", "sku": "X", "quantity": big},  # the file refuses it
            {"type": big, "sku": "X"},
            {"type": "place", "order_id": "B", "lines": big},
        ],
    )
    code, _, err = run_replay(path)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 5
    assert all(len(line) < 600 for line in lines), [len(line) for line in lines]
    assert "(1,000,000 characters)" in err


def test_file_errors_pickle() -> None:
    error = FileError("events.jsonl:3", "receive: quantity must be ...", 3)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.where, copy.reason, copy.number) == (
        FileError,
        str(error),
        error.where,
        error.reason,
        error.number,
    )


# --- issue 12, item 13: replay streams ---------------------------------------


def test_replay_holds_no_parsed_lines_and_drops_the_trial_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = _book_with_one_order(tmp_path)
    path = jsonl(
        tmp_path / "events.jsonl",
        [{**PLACE, "order_id": f"O-{i}"} for i in range(3_000)],
    )
    read = read_events
    alive: list[weakref.ref[EventLine]] = []
    most = 0

    def reading(file: Path) -> Iterator[EventLine | FileError]:
        nonlocal most
        for number, item in enumerate(read(file)):
            if isinstance(item, EventLine):
                alive.append(weakref.ref(item))
            if number % 500 == 0:
                gc.collect()
                most = max(most, sum(ref() is not None for ref in alive))
            yield item

    monkeypatch.setattr(cli, "read_events", reading)
    # The trial book holds its clock, and nothing else does once the trial
    # is over: the clock gone means the book is gone.
    scratches: list[weakref.ref[Any]] = []
    scratch = cli._scratch

    def tracked(*args: Any) -> BackorderBook:
        book = scratch(*args)
        scratches.append(weakref.ref(args[2]))
        return book

    monkeypatch.setattr(cli, "_scratch", tracked)
    batch = BackorderBook.batch
    trial_alive: list[bool] = []

    def checking_batch(self: BackorderBook, *, atomic: bool = False) -> Any:
        gc.collect()
        trial_alive.append(any(ref() is not None for ref in scratches))
        return batch(self, atomic=atomic)

    monkeypatch.setattr(BackorderBook, "batch", checking_batch)
    code, _, err = run_replay(path, db=db)
    assert code == 0, err
    assert most <= 2  # the line being applied (and the one before it)
    assert trial_alive == [False]
