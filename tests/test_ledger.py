"""The stock ledger: what it records, and that verify() catches every kind of damage."""

from __future__ import annotations

from typing import Any

import pytest

from backorder import BackorderBook, LedgerCorrupted, Order, OrderLine

from .helpers import TickingClock


def busy_book() -> BackorderBook:
    book = BackorderBook(clock=TickingClock())
    book.place(Order("ANN", [OrderLine("MUG", 3)]))
    book.receive("MUG", 5, reference="GRN-1")
    book.adjust("MUG", -3, "broken")
    book.ship("ANN")
    book.receive("TEE", 1)
    return book


def test_entries_record_deltas_balances_and_references() -> None:
    book = busy_book()
    entries = book.ledger.entries("MUG")
    assert [e.kind for e in entries] == [
        "receipt",
        "allocation",
        "release",
        "adjustment",
        "shipment",
    ]
    receipt, allocation, release, adjustment, shipment = entries
    assert (receipt.on_hand_delta, receipt.reference, receipt.on_hand) == (5, "GRN-1", 5)
    assert (allocation.order_id, allocation.allocated_delta, allocation.available) == ("ANN", 3, 2)
    assert (release.order_id, release.allocated_delta) == ("ANN", -1)
    assert (adjustment.on_hand_delta, adjustment.reference, adjustment.available) == (
        -3,
        "broken",
        0,
    )
    assert (shipment.on_hand_delta, shipment.allocated_delta, shipment.on_hand) == (-2, -2, 0)
    assert [e.seq for e in book.ledger] == list(range(1, len(book.ledger) + 1))
    assert book.ledger.skus() == ("MUG", "TEE")
    assert book.ledger.balance("MUG") == book.stock("MUG")
    book.ledger.verify()  # returns None when every balance agrees


@pytest.mark.parametrize(
    ("index", "field", "value", "words"),
    [
        (0, 8, 6, "replay"),  # a recorded on-hand balance that disagrees
        (1, 9, 9, "replay"),  # a recorded allocated balance that disagrees
        (0, 1, "gift", "unknown kind"),
        (0, 4, 1, "cannot move"),  # a receipt that allocates
        (4, 3, -1, "move both"),  # a shipment moving on hand and allocated differently
        (2, 0, 1, "out of order"),
        (0, 2, "TEE", "wrong SKU"),
    ],
)
def test_verify_catches_a_damaged_entry(index: int, field: int, value: object, words: str) -> None:
    book = busy_book()
    rows = book.ledger._rows["MUG"]
    row: list[Any] = list(rows[index])
    row[field] = value
    rows[index] = tuple(row)  # damaging it is the point
    with pytest.raises(LedgerCorrupted, match=words):
        book.ledger.verify()


def test_verify_catches_a_lost_entry() -> None:
    book = busy_book()
    del book.ledger._rows["MUG"][1]
    with pytest.raises(LedgerCorrupted):
        book.ledger.verify()


def test_verify_catches_an_oversold_history() -> None:
    book = busy_book()
    rows = book.ledger._rows["TEE"]
    seq, _, sku, _, _, _, ref, at, _, _ = rows[0]
    rows.append((seq + 100, "allocation", sku, 0, 2, "X", ref, at, 1, 2))
    book.ledger._last["TEE"] = (1, 2)
    with pytest.raises(LedgerCorrupted, match=r"oversold|out of order|entries"):
        book.ledger.verify()
