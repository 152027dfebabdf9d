"""Plain records and HTML for notebooks: the book's, the ledger's."""

from __future__ import annotations

from backorder import BackorderBook

from .helpers import small_book


def _book() -> BackorderBook:
    return small_book("PO-<1>")


def test_records_are_plain_dicts_of_every_line() -> None:
    book = _book()
    records = book.to_records()
    assert [(r["order_id"], r["sku"]) for r in records] == [
        ("A-1", "MUG"),
        ("A-1", "CUP"),
        ("V-1", "MUG"),
    ]
    first = records[0]
    assert first["allocated"] == 1
    assert first["backordered"] == 1
    assert first["position"] == 1
    assert first["placed_at"] == book.status("A-1").order.placed_at
    assert records[2]["position"] is None  # V-1 is filled
    waiting = book.waiting_records()
    assert [(w["sku"], w["order_id"], w["position"]) for w in waiting] == [
        ("MUG", "A-1", 1),
        ("CUP", "A-1", 1),
    ]
    assert waiting[0]["eta_basis"] == "scheduled"
    assert waiting[1]["eta"] is None
    assert book.waiting_records("CUP") == waiting[1:]
    skus = {r["sku"]: r for r in book.sku_records()}
    assert skus["MUG"]["on_hand"] == 2
    assert skus["MUG"]["next_receipt_quantity"] == 5
    assert skus["CUP"]["next_receipt"] is None
    ledger = book.ledger.to_records()
    assert [r["kind"] for r in ledger] == ["receipt", "allocation", "allocation"]
    assert ledger[-1]["available"] == 0


def test_html_for_notebooks_is_a_compact_escaped_table() -> None:
    book = _book()
    html = book._repr_html_()
    assert html.startswith("<table><caption>&lt;BackorderBook 2 orders, 2 SKUs")
    assert html.count("<tr>") == 3  # header, MUG, CUP
    assert "<td>MUG</td>" in html
    ledger_html = book.ledger._repr_html_()
    assert "<td>MUG</td><td>3</td><td>2</td><td>2</td><td>0</td>" in ledger_html
    assert "empty" in BackorderBook()._repr_html_()
    assert repr(book) == (
        f"<BackorderBook 2 orders, 2 SKUs, 2 lines waiting, policy={book.policy!r}>"
    )
