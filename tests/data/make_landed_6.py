"""Write `landed-6.db` and `landed-6.json` with the code of this checkout.

Run once, by the version whose schema the files keep (schema 6, commit
40c2556): `python tests/data/make_landed_6.py`. The book holds a bit of
everything a schema stores (orders open and closed, allocations, firm units,
receipts by reference, returns, holds active and expired, scheduled supply,
a fill-by deadline, lead times, limits, the policy, unpublished events), and
the JSON is what that version read back from it (`test_migration.reads`),
with every order's and every pending event's public form (`event_to_dict`).
Beside the orders of `make_landed_5.py` it stores orders with metadata, a
`ship_complete` flag, a `fill_by` time, times in other zones and names
outside ASCII: the forms the stored text must keep.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE.parent.parent))

from tests.test_migration import reads  # noqa: E402

from backorder import (  # noqa: E402
    BackorderBook,
    Order,
    OrderLine,
    OrderPlaced,
    PriorityTiers,
    event_to_dict,
)

AT = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def main() -> None:
    path = HERE / "landed-6.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with BackorderBook.open(path, PriorityTiers()) as book:
        for i in range(12):
            lines = [OrderLine("MUG", 1 + i % 3)]
            if i % 2:
                lines.append(OrderLine("LAMP", 1))
            tier = ("standard", "vip", "contract")[i % 3]
            fill_by = date(2027, 1, 15) if i == 5 else None
            book.place(Order(f"A-{i}", lines, tier=tier, placed_at=AT, fill_by=fill_by))
        book.receive("MUG", 6, reference="GRN-1")
        book.receive("LAMP", 2, reference="GRN-2")
        ready = [i for i in book.order_ids() if all(ln.allocated for ln in book.status(i).lines)]
        book.ship(ready[0])
        book.firm(ready[1])
        book.cancel("A-11")
        book.receive_return(ready[0], book.status(ready[0]).lines[0].sku, 1, reference="RMA-1")
        book.expect("LAMP", 5, date(2027, 2, 1), reference="PO-7")
        book.expect("MUG", 3, date(2027, 3, 1), reference="PO-8")
        book.set_lead_time("MUG", timedelta(days=10))
        book.set_backorder_limit("LAMP", 40)
        book.receive("CUP", 5, reference="GRN-3")
        book.hold("CUP", 2, timedelta(days=3650), hold_id="H-live")
        book.hold("CUP", 1, timedelta(days=3650), hold_id="H-done")
        book.release_hold("H-done")
        with book.batch():
            for i in range(12, 40):
                book.place(Order(f"B-{i}", [OrderLine("CUP", 1)], placed_at=AT))
        book.ship("B-12")
        berlin = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
        book.place(
            Order(
                "C-1",
                [OrderLine("MUG", 2), OrderLine("CUP", 1)],
                tier="vip",
                ship_complete=True,
                placed_at=berlin,
                metadata={"channel": "web", "note": 'a "quoted" note'},
                fill_by=datetime(2027, 1, 20, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
            )
        )
        book.place(Order("C-2", [OrderLine("TASSE-É", 3)], placed_at=AT + timedelta(hours=1)))
        book.place(Order("C-3 ü", [OrderLine("LAMP", 1)], tier="contract"))
        book.cancel("C-2")
        data = reads(book)
        data["bodies"] = {
            oid: event_to_dict(OrderPlaced(oid, book.status(oid).order, AT))["order"]
            for oid in book.order_ids()
        }
        data["events"] = [[e.id, event_to_dict(e.event)] for e in book.pending_events()]
        (HERE / "landed-6.json").write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
