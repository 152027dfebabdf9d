"""Event files for `backorder replay`: JSON Lines or CSV, one operation a line.

A line is an operation of the book with the book's own argument names::

    {"type": "place", "order_id": "A-1", "lines": [{"sku": "X", "quantity": 2}],
     "tier": "vip", "at": "2026-01-05T10:00:00+00:00"}
    {"type": "receive", "sku": "X", "quantity": 5, "reference": "GRN-7"}

and likewise `expect`, `cancel`, `ship`, `adjust`; `at` (when it happened)
is optional. A CSV file has the same fields as columns, `lines` written as
`sku:qty;sku:qty`. Parsing checks every field; each error names the file,
the line number and what was wrong.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs

from .book import BackorderBook
from .domain import Order, OrderLine
from .errors import BackorderError

__all__ = ["EventLine", "FileError", "read_events"]

# type -> (required fields, optional fields)
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "place": (("order_id", "lines"), ("tier", "ship_complete", "fill_by", "metadata")),
    "receive": (("sku", "quantity"), ("reference", "against")),
    "expect": (("sku", "quantity", "arriving", "reference"), ()),
    "cancel": (("order_id",), ("sku", "quantity")),
    "ship": (("order_id",), ("sku", "quantity")),
    "adjust": (("sku", "delta", "reason"), ()),
}
_INTEGERS = ("quantity", "delta")


class FileError(BackorderError, ValueError):
    """A line of an event file is wrong: `where` is `file:line`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@attrs.frozen(slots=True)
class EventLine:
    """One parsed line: where it is, and the operation to run on a book."""

    where: str
    kind: str
    at: datetime | None
    apply: Callable[[BackorderBook], Any] = attrs.field(eq=False, repr=False)


def _time(value: object, field: str, where: str) -> datetime:
    if not isinstance(value, str):
        raise FileError(where, f"{field} must be an ISO 8601 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FileError(where, f"{field} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise FileError(where, f"{field} must have a UTC offset, got {value!r}")
    return moment


def _when(value: object, field: str, where: str) -> datetime | date:
    # a date alone ("2026-02-01") or a time with its offset
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise FileError(where, f"{field} is not an ISO 8601 date: {value!r}") from None
    return _time(value, field, where)


def _lines(value: object, where: str) -> list[OrderLine]:
    # JSON: [{"sku": "X", "quantity": 2}, ...]; CSV: "X:2;Y:1"
    pairs: list[tuple[object, object]] = []
    if isinstance(value, str):
        for part in value.split(";"):
            sku, colon, quantity = part.strip().rpartition(":")
            if not colon or not sku:
                raise FileError(where, f"lines must be written sku:qty;sku:qty, got {value!r}")
            try:
                pairs.append((sku, int(quantity)))
            except ValueError:
                raise FileError(
                    where, f"lines: quantity {quantity!r} is not a whole number"
                ) from None
    elif isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, dict) or set(item) != {"sku", "quantity"}:
                raise FileError(where, f"each of lines must be {{sku, quantity}}, got {item!r}")
            pairs.append((item["sku"], item["quantity"]))
    else:
        raise FileError(where, f"lines must be a non-empty list or sku:qty;..., got {value!r}")
    try:
        return [OrderLine(sku, quantity) for sku, quantity in pairs]  # type: ignore[arg-type]
    except BackorderError as exc:
        raise FileError(where, f"lines: {exc}") from None


def _parse(record: dict[str, Any], where: str) -> EventLine:
    kind = record.get("type")
    if kind not in _FIELDS:
        raise FileError(where, f"type must be one of {', '.join(sorted(_FIELDS))}, got {kind!r}")
    required, optional = _FIELDS[kind]
    present = {k: v for k, v in record.items() if v is not None and v != ""}
    missing = [field for field in required if field not in present]
    if missing:
        raise FileError(where, f"a {kind} needs {', '.join(missing)}")
    unknown = sorted(set(present) - set(required) - set(optional) - {"type", "at"})
    if unknown:
        raise FileError(where, f"a {kind} has no field {', '.join(unknown)}")
    at = _time(present["at"], "at", where) if "at" in present else None
    args = {k: v for k, v in present.items() if k not in ("type", "at")}
    for field in _INTEGERS:
        if isinstance(args.get(field), str):
            try:
                args[field] = int(args[field])
            except ValueError:
                raise FileError(
                    where, f"{field} must be a whole number, got {args[field]!r}"
                ) from None
    if kind == "place":
        if isinstance(args.get("ship_complete"), str):
            flag = args["ship_complete"].strip().lower()
            if flag not in ("true", "false", "1", "0", "yes", "no"):
                raise FileError(where, f"ship_complete must be true or false, got {flag!r}")
            args["ship_complete"] = flag in ("true", "1", "yes")
        if "fill_by" in args:
            args["fill_by"] = _when(args["fill_by"], "fill_by", where)
        if isinstance(args.get("metadata"), str):
            try:
                args["metadata"] = json.loads(args["metadata"])
            except ValueError:
                raise FileError(where, "metadata must be a JSON object") from None
        lines = _lines(args.pop("lines"), where)
        order_id = args.pop("order_id")
        try:
            order = Order(order_id, lines, placed_at=at, **args)
        except (BackorderError, TypeError) as exc:
            raise FileError(where, str(exc)) from None
        return EventLine(where, kind, at, lambda book: book.place(order))
    if kind == "expect":
        args["arriving"] = _when(args["arriving"], "arriving", where)
    method = kind
    return EventLine(where, kind, at, lambda book: getattr(book, method)(**args))


def read_events(path: Path) -> Iterator[EventLine | FileError]:
    """Parse an event file line by line (`.csv` as CSV, anything else as JSON
    Lines); yield each parsed line, or the error of a line that is wrong.
    Blank lines are skipped.

    Raises:
        OSError: the file cannot be read.

    Cost: O(file).
    """
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            for record in reader:
                where = f"{path}:{reader.line_num}"
                if None in record:
                    yield FileError(where, "more cells than the header has columns")
                    continue
                try:
                    yield _parse(dict(record), where)
                except FileError as exc:
                    yield exc
            return
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except ValueError as exc:
                yield FileError(where, f"not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                yield FileError(where, f"each line must be a JSON object, got {record!r}")
                continue
            try:
                yield _parse(record, where)
            except FileError as exc:
                yield exc
