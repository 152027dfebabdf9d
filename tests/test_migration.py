"""A file written by the landed version 0.1.0 opens, migrates, and is the same book.

`tests/data/landed-0.1.0.db` was written by backorder 0.1.0 (commit ae30297);
`landed-0.1.0.json` holds what that version read back from it. Every schema
change must keep this test passing (a forward migration, never an edit).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from backorder import BackorderBook, Order, OrderLine, OrderPlaced, PriorityTiers, event_to_dict

DATA = Path(__file__).parent / "data"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def reads(book: BackorderBook) -> dict[str, Any]:
    """What the landed version read back, in the same shape."""
    skus = book.skus()
    return {
        "orders": [
            [
                oid,
                [
                    [
                        ln.sku,
                        ln.tier,
                        ln.ordered,
                        ln.allocated,
                        ln.shipped,
                        ln.cancelled,
                        ln.backordered,
                    ]
                    for ln in book.status(oid).lines
                ],
            ]
            for oid in book.order_ids()
        ],
        "stock": [[s, book.stock(s).on_hand, book.stock(s).allocated] for s in skus],
        "waiting": {s: [ln.order_id for ln in book.waiting(s)] for s in skus},
        "ledger": [
            [
                *(e.seq, e.kind, e.sku, e.on_hand_delta, e.allocated_delta),
                *(e.order_id, e.reference, e.at.isoformat(), e.on_hand, e.allocated),
            ]
            for e in book.ledger
        ],
        "pending": [[e.id, type(e.event).__name__] for e in book.pending_events()],
        "expected": {
            s: [[x.reference, x.quantity, x.arriving.isoformat()] for x in book.expected(s)]
            for s in skus
        },
        "lead_times": {s: str(book.lead_time(s)) for s in skus},
        "limits": {s: book.backorder_limit(s) for s in skus},
    }


def test_a_book_written_by_the_landed_version_opens_as_the_same_book(tmp_path: Path) -> None:
    path = tmp_path / "landed.db"
    shutil.copy(DATA / "landed-0.1.0.db", path)
    expected = json.loads((DATA / "landed-0.1.0.json").read_text())
    with BackorderBook.open(path, PriorityTiers()) as book:
        assert reads(book) == expected
        book.inspect().check()
        book.ledger.verify()
        # and it goes on working: a new order joins behind the others
        book.receive("LAMP", 1, reference="GRN-9")
    with BackorderBook.open(path, PriorityTiers()) as again:
        assert again.stock("LAMP").on_hand == expected_on_hand(expected, "LAMP") + 1


def expected_on_hand(reads_before: dict[str, Any], sku: str) -> int:
    return next(int(row[1]) for row in reads_before["stock"] if row[0] == sku)


def test_a_book_written_by_schema_5_opens_as_the_same_book(tmp_path: Path) -> None:
    # `landed-5.db`: written by the landed schema-5 code (commit c0ddabc, by
    # `tests/data/make_landed_5.py`); `landed-5.json`: what that code read back
    path = tmp_path / "landed-5.db"
    shutil.copy(DATA / "landed-5.db", path)
    expected = json.loads((DATA / "landed-5.json").read_text())
    with (
        BackorderBook.open(path, PriorityTiers()) as book,
        BackorderBook.open(path, PriorityTiers()) as other,
    ):
        assert reads(book) == expected
        assert reads(other) == expected
        book.inspect().check()
        book.ledger.verify()
        # it goes on working, and another handle catches up with what it writes
        placed = book.place(Order("N-1", [OrderLine("CUP", 1)]))
        last = expected["waiting"]["CUP"][-1]
        assert [ln.order_id for ln in other.waiting("CUP")][-2:] == [last, "N-1"]
        assert other.position("N-1", "CUP") == len(expected["waiting"]["CUP"]) + 1
        assert placed.status.lines[0].backordered == 1
        other.receive("MUG", 2, reference="GRN-new")
        assert book.stock("MUG").on_hand == expected_on_hand(expected, "MUG") + 2
        ids = [e.id for e in book.pending_events()]
        assert ids == sorted(set(ids))
        assert ids[: len(expected["pending"])] == [e[0] for e in expected["pending"]]
    with BackorderBook.open(path, PriorityTiers()) as again:
        assert again.status("N-1").lines[0].backordered == 1
        again.inspect().check()
        again.ledger.verify()


def test_a_book_written_by_schema_6_opens_as_the_same_book(tmp_path: Path) -> None:
    # `landed-6.db`: written by the landed schema-6 code (commit 40c2556, by
    # `tests/data/make_landed_6.py`), orders and events in the public form;
    # `landed-6.json`: what that code read back, with every order's and every
    # pending event's public form. Schema 7 stores both compactly and still
    # reads the rows written before (no row is rewritten by the migration).
    path = tmp_path / "landed-6.db"
    shutil.copy(DATA / "landed-6.db", path)
    expected = json.loads((DATA / "landed-6.json").read_text())
    bodies, events = expected.pop("bodies"), expected.pop("events")

    def read_all(book: BackorderBook) -> dict[str, Any]:
        data = reads(book)
        data["bodies"] = {
            oid: event_to_dict(OrderPlaced(oid, book.status(oid).order, AT))["order"]
            for oid in book.order_ids()
        }
        data["events"] = [[e.id, event_to_dict(e.event)] for e in book.pending_events()]
        return data

    with (
        BackorderBook.open(path, PriorityTiers()) as book,
        BackorderBook.open(path, PriorityTiers()) as other,
    ):
        assert read_all(book) == {**expected, "bodies": bodies, "events": events}
        assert read_all(other)["bodies"] == bodies
        book.inspect().check()
        book.ledger.verify()
        # new rows are compact; old and new are read side by side
        zoned = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))
        new = Order(
            "N-1",
            [OrderLine("CUP", 1), OrderLine("TASSE-É", 2)],
            tier="vip",
            placed_at=zoned,
            metadata={"k": "v"},
        )
        book.place(new)
        other.receive("MUG", 2, reference="GRN-new")
        assert other.status("N-1").order == new
        assert repr(other.status("N-1").order) == repr(new)
        pending = [e.event for e in other.pending_events()]
        assert [event_to_dict(e) for e in pending[: len(events)]] == [e[1] for e in events]
        assert OrderPlaced("N-1", new, pending[len(events)].at) in pending  # type: ignore[attr-defined]
        with contextlib.closing(sqlite3.connect(path)) as conn:  # (a sqlite3 `with` only commits)
            (body,) = conn.execute("SELECT body FROM orders WHERE order_id = 'N-1'").fetchone()
            (old,) = conn.execute("SELECT body FROM orders WHERE order_id = 'A-0'").fetchone()
            (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        assert body.startswith("[")
        assert old.startswith("{")
        assert version == 7
    with BackorderBook.open(path, PriorityTiers()) as again:
        assert again.status("N-1").order == new
        assert read_all(again)["bodies"]["C-1"] == bodies["C-1"]
        again.inspect().check()
        again.ledger.verify()
