"""The stock ledger: an append-only record of every stock movement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs

from ._tables import data_frame, html_table, ledger_records
from .domain import StockLevel, check_text
from .errors import LedgerCorrupted

__all__ = ["KINDS", "LedgerEntry", "StockLedger"]

RECEIPT = "receipt"
ADJUSTMENT = "adjustment"
ALLOCATION = "allocation"
RELEASE = "release"
SHIPMENT = "shipment"
HOLD = "hold"
RETURN = "return"

#: The kinds of entry the ledger records.
KINDS = (RECEIPT, ADJUSTMENT, ALLOCATION, RELEASE, SHIPMENT, HOLD, RETURN)

# One entry, stored lean; `LedgerEntry` values are built only when read.
# (seq, kind, sku, on_hand_delta, allocated_delta, order_id, reference, at,
#  on_hand, allocated)
_Row = tuple[int, str, str, int, int, "str | None", "str | None", datetime, int, int]


@attrs.frozen(slots=True)
class LedgerEntry:
    """One stock movement and the balances right after it.

    Attributes:
        seq: the entry's number: from 1, gap-free and unique in the whole
            ledger, except over PostgreSQL, where writers on different SKUs
            work at once: there numbers rise per SKU in commit order and two
            SKUs' entries may share a number (`(sku, seq)` names an entry).
        kind: `"receipt"`, `"adjustment"`, `"allocation"`, `"release"`,
            `"shipment"`, `"hold"` (units reserved for a checkout) or
            `"return"` (shipped units that came back and went on hand).
        sku: the SKU that moved.
        on_hand_delta: change of units on hand.
        allocated_delta: change of units allocated.
        order_id: the order concerned (allocation, release, shipment,
            return), else None.
        reference: the receipt reference, adjustment reason, release reason
            (`"cancel"`, `"adjustment"`, `"rebalance"`), `"rebalance"` for an
            allocation a rebalance made, hold id (a hold, and the release of
            a hold), or the return's reference.
        at: when it happened (the book's clock).
        on_hand, allocated, available: the SKU's balances after the entry.
    """

    seq: int
    kind: str
    sku: str
    on_hand_delta: int
    allocated_delta: int
    order_id: str | None
    reference: str | None
    at: datetime
    on_hand: int
    allocated: int
    available: int


def _entry(row: _Row) -> LedgerEntry:
    return LedgerEntry(*row, available=row[8] - row[9])


# Which deltas each kind may carry: (on_hand sign, allocated sign); 0 = must be 0.
_SIGNS: dict[str, tuple[int, int]] = {
    RECEIPT: (1, 0),
    ADJUSTMENT: (2, 0),  # 2: either sign, never zero
    ALLOCATION: (0, 1),
    RELEASE: (0, -1),
    SHIPMENT: (-1, -1),
    HOLD: (0, 1),
    RETURN: (1, 0),
}


def _sign_ok(want: int, delta: int) -> bool:
    if want == 0:
        return delta == 0
    if want == 2:
        return delta != 0
    return delta * want > 0


class StockLedger:
    """Append-only record of every stock movement, per SKU, in order.

    The book writes it; users read it. `verify()` replays every entry and
    checks the balances each records.
    """

    __slots__ = ("_complete", "_count", "_journal", "_last", "_rows", "_seq", "_start", "_unique")

    def __init__(self) -> None:
        """Make an empty ledger. Cost: O(1)."""
        self._rows: dict[str, list[_Row]] = {}
        self._last: dict[str, tuple[int, int]] = {}
        self._seq = 0  # the highest entry number held (or known)
        self._count = 0  # the entries held
        # False when entry numbers are drawn per SKU (PostgreSQL, writers on
        # different SKUs at once): unique and rising per SKU only
        self._unique = True
        self._journal: list[str] = []
        # False while a lazily loaded book holds the entries of some SKUs only
        self._complete = True
        # (lazily loaded) SKUs whose entries start later than the first: the
        # number of the first entry held, replayed from the balance before it
        self._start: dict[str, int] = {}

    def __len__(self) -> int:
        """The number of entries over all SKUs. Cost: O(1)."""
        return self._count

    def __repr__(self) -> str:
        return f"<StockLedger {self._count} entries over {len(self._rows)} SKUs>"

    def skus(self) -> tuple[str, ...]:
        """Every SKU with at least one entry, in order of first entry. Cost: O(SKUs)."""
        return tuple(self._rows)

    def entries(self, sku: str) -> tuple[LedgerEntry, ...]:
        """Every entry of `sku`, oldest first; empty for a SKU never seen.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty `str`.

        Cost: O(entries of `sku`).
        """
        check_text(sku, "sku")
        return tuple(_entry(row) for row in self._rows.get(sku, ()))

    def __iter__(self) -> Iterator[LedgerEntry]:
        """Every entry of every SKU, in the order they were written. Cost: O(n log n)."""
        rows = [row for sku_rows in self._rows.values() for row in sku_rows]
        rows.sort(key=lambda row: row[0])
        return (_entry(row) for row in rows)

    def to_records(self) -> list[dict[str, Any]]:
        """Every entry as a plain dict (the fields of `LedgerEntry`), in entry
        order; for notebooks (`pandas.DataFrame(ledger.to_records())`).
        Cost: O(n log n)."""
        return ledger_records(self)

    def to_pandas(self) -> Any:
        """`to_records()` as a pandas DataFrame with proper dtypes (counts
        int64, `at` UTC datetimes, kinds and names `string`).

        Raises:
            ImportError: pandas is not installed (`pip install 'backorder[pandas]'`).

        Cost: O(n log n).
        """
        columns = [
            "seq", "kind", "sku", "on_hand_delta", "allocated_delta", "order_id",
            "reference", "at", "on_hand", "allocated", "available",
        ]  # fmt: skip
        return data_frame(self.to_records(), columns)

    def _repr_html_(self) -> str:
        """A compact HTML summary for notebooks: the balance of every SKU."""
        rows = [
            {
                "sku": sku,
                "entries": len(rows),
                "on_hand": rows[-1][8],
                "allocated": rows[-1][9],
                "available": rows[-1][8] - rows[-1][9],
            }
            for sku, rows in self._rows.items()
        ]
        return html_table(repr(self), rows)

    def balance(self, sku: str) -> StockLevel:
        """The balances after the last entry of `sku` (all zero if none).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty `str`.

        Cost: O(1).
        """
        check_text(sku, "sku")
        on_hand, allocated = self._last.get(sku, (0, 0))
        return StockLevel(sku, on_hand, allocated, on_hand - allocated)

    def verify(self) -> None:
        """Replay every entry from zero and check what each one records.

        Checks, per SKU: entry numbers increase (and, but over PostgreSQL,
        are unique and gap-free over the whole ledger); each kind moves only what it
        may (a receipt adds on hand, an allocation adds allocated, ...); the
        balances recorded equal the running sums; `0 <= allocated <= on_hand`
        after every entry. Returns `None` when all agree.

        Raises:
            LedgerCorrupted: naming the SKU, entry number and what disagrees.

        Cost: O(entries).
        """
        seen: set[int] = set()
        for sku, rows in self._rows.items():
            on_hand = allocated = 0
            previous = 0
            if self._start.get(sku) == rows[0][0]:  # a lazy copy's later entries
                on_hand, allocated = rows[0][8] - rows[0][3], rows[0][9] - rows[0][4]
            for row in rows:
                seq, kind, row_sku, d_on, d_al = row[:5]
                where = f"sku {sku!r} entry {seq}"
                if row_sku != sku:
                    raise LedgerCorrupted(f"{where}: filed under the wrong SKU {row_sku!r}")
                if seq <= previous or (self._unique and seq in seen):
                    raise LedgerCorrupted(f"{where}: entry number out of order")
                previous = seq
                seen.add(seq)
                signs = _SIGNS.get(kind)
                if signs is None:
                    raise LedgerCorrupted(f"{where}: unknown kind {kind!r}")
                if not (_sign_ok(signs[0], d_on) and _sign_ok(signs[1], d_al)):
                    raise LedgerCorrupted(
                        f"{where}: a {kind} cannot move on hand by {d_on} and allocated by {d_al}"
                    )
                if kind == SHIPMENT and d_on != d_al:
                    raise LedgerCorrupted(f"{where}: a shipment must move both by the same")
                on_hand += d_on
                allocated += d_al
                if (row[8], row[9]) != (on_hand, allocated):
                    raise LedgerCorrupted(
                        f"{where}: records on_hand={row[8]} allocated={row[9]} "
                        f"but replay gives on_hand={on_hand} allocated={allocated}"
                    )
                if not 0 <= allocated <= on_hand:
                    raise LedgerCorrupted(
                        f"{where}: allocated={allocated} on_hand={on_hand} oversold"
                    )
            if self._last.get(sku, (0, 0)) != (on_hand, allocated):
                raise LedgerCorrupted(f"sku {sku!r}: current balance disagrees with replay")
        held = sum(len(rows) for rows in self._rows.values())
        if held != self._count:
            raise LedgerCorrupted(f"ledger holds {held} entries but counted {self._count}")
        if self._complete and self._unique and len(seen) != self._seq:
            raise LedgerCorrupted(f"ledger holds {len(seen)} entries but numbered {self._seq}")


class LedgerWriter:
    """The one way the engine writes a `StockLedger` (package-private: not
    part of the public API). A ledger read by users is append-only; the
    writer also drops the entries of an operation that failed.
    """

    __slots__ = ("ledger",)

    def __init__(self, ledger: StockLedger) -> None:
        self.ledger = ledger

    @property
    def seq(self) -> int:
        """The number of the last entry. Cost: O(1)."""
        return self.ledger._seq

    @seq.setter
    def seq(self, value: int) -> None:
        self.ledger._seq = value

    def set_complete(self, complete: bool) -> None:
        """Say whether the ledger holds every SKU's entries (False while a
        lazily loaded book holds some SKUs only; `verify` then does not count
        the entries it lacks). Cost: O(1)."""
        self.ledger._complete = complete

    def set_unique(self, unique: bool) -> None:
        """Say whether entry numbers are unique and gap-free book-wide (True)
        or unique and rising per SKU only (False: PostgreSQL, where writers
        on different SKUs number their entries at once). Cost: O(1)."""
        self.ledger._unique = unique

    def record(
        self,
        kind: str,
        sku: str,
        on_hand_delta: int,
        allocated_delta: int,
        order_id: str | None,
        reference: str | None,
        at: datetime,
    ) -> None:
        ledger = self.ledger
        on_hand, allocated = ledger._last.get(sku, (0, 0))
        on_hand += on_hand_delta
        allocated += allocated_delta
        ledger._seq += 1
        ledger._count += 1
        row: _Row = (
            ledger._seq,
            kind,
            sku,
            on_hand_delta,
            allocated_delta,
            order_id,
            reference,
            at,
            on_hand,
            allocated,
        )
        rows = ledger._rows.get(sku)
        if rows is None:
            ledger._rows[sku] = [row]
        else:
            rows.append(row)
        ledger._last[sku] = (on_hand, allocated)
        ledger._journal.append(sku)

    def mark(self) -> int:
        ledger = self.ledger
        # Start of an operation: remember where it began and which SKUs it writes.
        ledger._journal.clear()
        return ledger._seq

    def wrote_since(self, mark: int) -> bool:
        # Whether any entry was written since `mark`. O(1).
        return self.ledger._seq != mark

    def since(self, mark: int) -> list[_Row]:
        ledger = self.ledger
        # The entries written since `mark` (this operation's), in order.
        counts: dict[str, int] = {}
        for sku in ledger._journal[len(ledger._journal) - (ledger._seq - mark) :]:
            counts[sku] = counts.get(sku, 0) + 1
        rows = [row for sku, n in counts.items() for row in ledger._rows[sku][-n:]]
        rows.sort(key=lambda row: row[0])
        return rows

    def extend(self, rows: list[_Row], start: bool = False) -> None:
        ledger = self.ledger
        # Append stored entries in entry order; one this ledger has is skipped.
        # `start`: the first entry of a SKU new to the ledger may be a later
        # one (a lazy SKU load reads the last only); it is replayed from the
        # balance it records before its own move.
        for row in rows:
            sku = row[2]
            sku_rows = ledger._rows.get(sku)
            if sku_rows is None:
                ledger._rows[sku] = [row]
                if start:
                    ledger._start[sku] = row[0]
            elif row[0] > sku_rows[-1][0]:
                sku_rows.append(row)
            else:
                continue
            ledger._count += 1
            ledger._last[sku] = (row[8], row[9])
        if rows:
            ledger._seq = max(ledger._seq, rows[-1][0])

    def truncate(self, mark: int) -> None:
        ledger = self.ledger
        # Drop every entry written since `mark` (the operation failed).
        while ledger._seq > mark:
            sku = ledger._journal.pop()
            rows = ledger._rows[sku]
            rows.pop()
            ledger._count -= 1
            if rows:
                ledger._last[sku] = (rows[-1][8], rows[-1][9])
            else:
                del ledger._rows[sku]
                del ledger._last[sku]
                ledger._start.pop(sku, None)
            ledger._seq -= 1

    def drop_since(self, mark: int) -> None:
        """Drop every entry after `mark`, whichever operations wrote them (an
        abandoned batch). O(SKUs + entries dropped)."""
        ledger = self.ledger
        for sku in list(ledger._rows):
            rows = ledger._rows[sku]
            while rows and rows[-1][0] > mark:
                rows.pop()
                ledger._count -= 1
            if rows:
                ledger._last[sku] = (rows[-1][8], rows[-1][9])
            else:
                del ledger._rows[sku]
                del ledger._last[sku]
                ledger._start.pop(sku, None)
        ledger._seq = min(ledger._seq, mark)
        ledger._journal.clear()
