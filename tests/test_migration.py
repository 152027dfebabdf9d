"""A file written by the landed version 0.1.0 opens, migrates, and is the same book.

`tests/data/landed-0.1.0.db` was written by backorder 0.1.0 (commit ae30297);
`landed-0.1.0.json` holds what that version read back from it. Every schema
change must keep this test passing (a forward migration, never an edit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from backorder import BackorderBook, Order, OrderLine, PriorityTiers

DATA = Path(__file__).parent / "data"


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
