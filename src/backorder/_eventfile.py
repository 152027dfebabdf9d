"""Event files for `backorder replay` and `simulate`: JSON Lines or CSV, one operation a line.

A line is an operation of the book with the book's own argument names::

    {"type": "place", "order_id": "A-1", "lines": [{"sku": "X", "quantity": 2}],
     "tier": "vip", "at": "2026-01-05T10:00:00+00:00"}
    {"type": "receive", "sku": "X", "quantity": 5, "reference": "GRN-7"}

and likewise `expect`, `cancel`, `ship`, `adjust`; `at` (when it happened)
is optional. A CSV file has the same fields as columns, `lines` written as
`sku:qty;sku:qty`. The file is read as UTF-8 (a leading byte order mark is
skipped), one line at a time, so a file of any length is read in memory
bounded by its longest line.

Every line is held to the rules of the API: a value the API would refuse
whatever the book holds (an empty reference, a quantity of 0, a number
written with other than ASCII digits, a time that cannot be converted to
UTC) is a bad line, reported as `FILE:LINE: TYPE: reason`, and values
shown in a reason are cut to a readable length.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import reprlib
from collections.abc import Callable, Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from ._codec import parse_date, parse_time
from .book import BackorderBook
from .domain import Order, OrderLine, check_delta, check_quantity, check_text
from .errors import BackorderError, InvalidArgument

__all__ = ["EventLine", "FileError", "count_lines", "cut", "printable", "read_events", "shown"]

# type -> (required fields, optional fields)
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "place": (("order_id", "lines"), ("tier", "ship_complete", "fill_by", "metadata")),
    "receive": (("sku", "quantity"), ("reference", "against")),
    "expect": (("sku", "quantity", "arriving", "reference"), ()),
    "cancel": (("order_id",), ("sku", "quantity")),
    "ship": (("order_id",), ("sku", "quantity")),
    "adjust": (("sku", "delta", "reason"), ()),
}
_ALLOWED = {
    kind: frozenset((*required, *optional, "type", "at"))
    for kind, (required, optional) in _FIELDS.items()
}
_TEXTS = ("order_id", "sku", "reference", "against", "reason", "tier")
_QUANTITIES = ("quantity",)
# A number in a file: ASCII digits only (not "٣", not "1_000"), spaces or
# tabs around it allowed (they cannot change what the number says).
_WHOLE = re.compile(r"[ \t]*(-?[0-9]+)[ \t]*")
_MAX_DIGITS = 40  # far beyond any quantity; int() of more is only slow
# No event needs more than record -> lines -> line -> value; anything deeper
# is refused before it reaches code (or a repr) that recurses.
_MAX_DEPTH = 8
#: A message shows at most this many characters of a value, or of a reason
#: that came from the book.
SHOWN_CHARACTERS = 60
REASON_CHARACTERS = 300


class _Shortened(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxstring = SHOWN_CHARACTERS
        self.maxother = SHOWN_CHARACTERS
        self.maxlong = SHOWN_CHARACTERS
        self.maxlevel = 3

    def repr_str(self, x: str, level: int) -> str:
        text = super().repr_str(x, level)
        return text if len(x) <= self.maxstring else f"{text} ({len(x):,} characters)"


_SHORT = _Shortened()


def shown(value: object) -> str:
    """`repr(value)` cut to a readable length (long strings keep their ends
    and say how long they were; nesting is cut after three levels)."""
    try:
        return _SHORT.repr(value)
    except (RecursionError, ValueError):  # ValueError: an int of too many digits
        return f"<{type(value).__name__}>"


def cut(text: str, limit: int = REASON_CHARACTERS) -> str:
    """`text` cut to `limit` characters (saying how long it was), with any
    lone surrogate escaped so it can be written to any stream."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return printable(text)


def printable(text: str) -> str:
    """`text` with any lone surrogate escaped (`\\ud800`), so that any UTF-8
    stream can take it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class FileError(BackorderError, ValueError):
    """A line of an event file is wrong: `where` is `file:line`, `reason` what."""

    def __init__(self, where: str, reason: str, number: int = 0) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
        self.number = number


class _Bad(Exception):
    # a reason, before the parser knows where it is
    pass


@attrs.frozen(slots=True)
class EventLine:
    """One parsed line: where it is, and the operation to run on a book.

    `apply(book)` runs the operation and returns its result; it raises what
    the book raises (a `BackorderError`), and a date the operation cannot
    compute as a `FileError`.
    """

    where: str
    kind: str
    at: datetime | None
    apply: Callable[[BackorderBook], Any] = attrs.field(eq=False, repr=False)
    number: int = 0


def _time(value: object, field: str) -> datetime:
    # one parser for every time the library reads (`Z` is UTC on every Python)
    if not isinstance(value, str):
        raise _Bad(f"{field} must be an ISO 8601 time, got {shown(value)}")
    try:
        moment = parse_time(value, field)
        moment.astimezone(timezone.utc)
    except BackorderError as exc:
        raise _Bad(str(exc)) from None
    except OverflowError:
        raise _Bad(f"{field} is out of range in UTC: {shown(value)}") from None
    return moment


def _when(value: object, field: str) -> datetime | date:
    # a date alone ("2026-02-01") or a time with its offset
    if isinstance(value, str) and len(value) == 10:
        try:
            return parse_date(value, field)
        except BackorderError:
            raise _Bad(f"{field} is not an ISO 8601 date: {shown(value)}") from None
    return _time(value, field)


def read_time(value: object, field: str, where: str, *, dated: bool = False) -> datetime | date:
    """A time (or, with `dated`, a date or a time) of an event record, as the
    event files read it; `InvalidArgument` prefixed with `where` otherwise."""
    try:
        return _when(value, field) if dated else _time(value, field)
    except _Bad as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def _whole(value: object, field: str) -> object:
    # A number written as text (every CSV cell; a JSON string) becomes an int;
    # anything else is left for the API's own checks.
    if not isinstance(value, str):
        return value
    match = _WHOLE.fullmatch(value)
    if match is None:
        raise _Bad(f"{field} must be a whole number in ASCII digits, got {shown(value)}")
    digits = match.group(1)
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise _Bad(f"{field} is out of range, got {shown(value)}")
    return int(digits)


def _checked(check: Callable[[object, str], object], value: object, field: str) -> Any:
    try:
        return check(value, field)
    except BackorderError as exc:
        raise _Bad(cut(str(exc))) from None


def _lines(value: object) -> list[OrderLine]:
    # JSON: [{"sku": "X", "quantity": 2}, ...]; CSV: "X:2;Y:1"
    pairs: list[tuple[object, object]] = []
    if isinstance(value, str):
        for part in value.split(";"):
            sku, colon, quantity = part.strip().rpartition(":")
            if not colon or not sku:
                raise _Bad(f"lines must be written sku:qty;sku:qty, got {shown(value)}")
            pairs.append((sku, _whole(quantity, f"lines: quantity of {shown(sku)}")))
    elif isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, dict) or set(item) != {"sku", "quantity"}:
                raise _Bad(f"each of lines must be {{sku, quantity}}, got {shown(item)}")
            pairs.append((item["sku"], _whole(item["quantity"], "lines: quantity")))
    else:
        raise _Bad(f"lines must be a non-empty list or sku:qty;..., got {shown(value)}")
    try:
        return [OrderLine(sku, quantity) for sku, quantity in pairs]  # type: ignore[arg-type]
    except BackorderError as exc:
        raise _Bad(f"lines: {cut(str(exc))}") from None


def _flag(value: object) -> object:
    if not isinstance(value, str):
        return value
    flag = value.strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise _Bad(f"ship_complete must be true or false, got {shown(value)}")
    return flag in ("true", "1", "yes")


def _valid_unicode(value: object, field: str) -> None:
    # JSON can spell a lone surrogate ("\ud800"), which no UTF-8 file or
    # database can hold; nesting beyond any event's shape is refused too.
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Bad(f"{field} is nested too deeply (more than {_MAX_DEPTH} levels)")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Bad(
                    f"{field} is not valid Unicode (a lone surrogate): {shown(item)}"
                ) from None
        elif isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((part, depth + 1) for part in item)


def _guarded(
    where: str, kind: str, number: int, run: Callable[[BackorderBook], Any]
) -> Callable[[BackorderBook], Any]:
    def apply(book: BackorderBook) -> Any:
        try:
            return run(book)
        except OverflowError as exc:  # a date beyond what datetime can hold
            raise FileError(where, f"{kind}: a date is out of range ({exc})", number) from None

    return apply


Style = Literal["python", "json", "csv"]


def _parse(
    record: dict[str, Any],
    where: str,
    style: Style = "python",
    number: int = 0,
    *,
    walk: bool = False,
) -> EventLine:
    """One record as an event line, or `FileError` naming what is wrong.

    `style` says what an absent value looks like: `"python"` (a dict given
    to `simulate`): None; `"json"`: the field is left out (null is refused,
    "" is a value the API checks); `"csv"`: an empty cell, except the
    `reference` of a `receive` when the file has that column (a receipt
    without a reference is not idempotent, so it must be meant: leave the
    column out). `walk`: look into every value for lone surrogates and
    nesting deeper than any event has (JSON text that may hold either).
    """
    kind = record.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise FileError(
            where, f"type must be one of {', '.join(sorted(_FIELDS))}, got {shown(kind)}", number
        )
    try:
        return _event(kind, record, where, style, number, walk)
    except _Bad as exc:
        raise FileError(where, f"{kind}: {exc}", number) from None


def _event(
    kind: str, record: dict[str, Any], where: str, style: Style, number: int, walk: bool
) -> EventLine:
    if style == "json" and None in record.values():
        nulls = sorted(field for field, value in record.items() if value is None)
        raise _Bad(f"{', '.join(nulls)} is null (leave a field out to give no value)")
    if style == "csv" and kind == "receive" and record.get("reference") == "":
        raise _Bad(
            "reference is empty (a receipt without one counts again if the file is "
            "replayed again; give one, or leave the reference column out of the file)"
        )
    if style == "csv":
        present = {k: v for k, v in record.items() if v != ""}
    else:
        present = {k: v for k, v in record.items() if v is not None}
    missing = [field for field in _FIELDS[kind][0] if field not in present]
    if missing:
        raise _Bad(f"needs {', '.join(missing)}")
    unknown = present.keys() - _ALLOWED[kind]
    if unknown:
        raise _Bad(f"has no field {', '.join(shown(name) for name in sorted(unknown))}")
    if walk:
        for field, value in present.items():
            _valid_unicode(value, field)
    at = _time(present["at"], "at") if "at" in present else None
    args = {k: v for k, v in present.items() if k not in ("type", "at")}
    for field in _TEXTS:
        if field in args:
            _checked(check_text, args[field], field)
    for field in _QUANTITIES:
        if field in args:
            args[field] = _checked(check_quantity, _whole(args[field], field), field)
    if "delta" in args:
        args["delta"] = _checked(check_delta, _whole(args["delta"], "delta"), "delta")
    if kind == "place":
        return _place(args, at, where, number)
    if kind == "expect":
        args["arriving"] = _when(args["arriving"], "arriving")
    method = kind
    run = _guarded(where, kind, number, lambda book: getattr(book, method)(**args))
    return EventLine(where, kind, at, run, number)


def _place(args: dict[str, Any], at: datetime | None, where: str, number: int) -> EventLine:
    if "ship_complete" in args:
        args["ship_complete"] = _flag(args["ship_complete"])
    fill_by = args.get("fill_by")
    if fill_by is not None:
        args["fill_by"] = _when(fill_by, "fill_by")
    if isinstance(args.get("metadata"), str):
        try:
            args["metadata"] = json.loads(args["metadata"])
        except (ValueError, RecursionError):
            raise _Bad(f"metadata must be a JSON object, got {shown(args['metadata'])}") from None
        _valid_unicode(args["metadata"], "metadata")
    lines = _lines(args.pop("lines"))
    order_id = args.pop("order_id")
    try:
        order = Order(order_id, lines, placed_at=at, **args)
    except (BackorderError, TypeError) as exc:
        raise _Bad(cut(str(exc))) from None
    except OverflowError:  # a fill_by whose deadline is past year 9999
        raise _Bad(f"fill_by is out of range, got {shown(fill_by)}") from None
    run = _guarded(where, "place", number, lambda book: book.place(order))
    return EventLine(where, "place", at, run, number)


class _Duplicate(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return record


def _constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def _decoded(raw: bytes, number: int) -> str:
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Bad(f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}") from None


def _json_lines(handle: IO[bytes], path: Path) -> Iterator[EventLine | FileError]:
    for number, raw in enumerate(handle, start=1):
        where = f"{path}:{number}"
        try:
            text = _decoded(raw, number)
            if not text.strip():
                continue
            record = _DECODER.decode(text)
        except _Bad as exc:
            yield FileError(where, str(exc), number)
            continue
        except _Duplicate as exc:
            yield FileError(where, f"field {shown(str(exc))} is given twice", number)
            continue
        except RecursionError:
            yield FileError(where, "not JSON that can be read: nested too deeply", number)
            continue
        except ValueError as exc:
            yield FileError(where, f"not JSON: {cut(str(exc))}", number)
            continue
        if not isinstance(record, dict):
            yield FileError(where, f"each line must be a JSON object, got {shown(record)}", number)
            continue
        # Only an escape can spell a lone surrogate, only brackets nest.
        walk = "\\u" in text or text.count("[") + text.count("{") > _MAX_DEPTH
        try:
            yield _parse(record, where, "json", number, walk=walk)
        except FileError as exc:
            yield exc


def _csv_rows(handle: IO[bytes], path: Path) -> Iterator[EventLine | FileError]:
    undecodable: dict[int, str] = {}

    def text_lines() -> Iterator[str]:
        for number, raw in enumerate(handle, start=1):
            try:
                yield _decoded(raw, number)
            except _Bad as exc:
                undecodable[number] = str(exc)
                yield raw.decode("utf-8", "replace")

    reader = csv.reader(text_lines())
    header: list[str] | None = None
    last = 0  # the physical line the previous record ended on
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            first, last = last + 1, reader.line_num
            yield FileError(f"{path}:{first}", f"not CSV: {cut(str(exc))}", first)
            continue
        first, last = last + 1, reader.line_num
        where = f"{path}:{first}"
        bad = [undecodable.pop(n) for n in range(first, last + 1) if n in undecodable]
        if bad:
            yield FileError(where, bad[0], first)
            if header is None:
                return  # no header, no file
            continue
        if not row:
            continue
        if header is None:
            header = [name.strip() for name in row]
            twice = sorted({name for name in header if header.count(name) > 1})
            if twice:
                yield FileError(where, f"the header repeats {', '.join(map(shown, twice))}", first)
                return
            continue
        if len(row) > len(header):
            yield FileError(where, "more cells than the header has columns", first)
            continue
        record = dict(zip(header, [*row, *[""] * (len(header) - len(row))], strict=True))
        try:
            yield _parse(record, where, "csv", first)
        except FileError as exc:
            yield exc


def read_events(path: Path) -> Iterator[EventLine | FileError]:
    """Parse an event file line by line (`.csv` as CSV, anything else as JSON
    Lines); yield each parsed line, or the error of a line that is wrong.
    Blank lines are skipped.

    Raises:
        OSError: the file cannot be read.

    Cost: O(file) time; memory O(longest line), nothing is kept.
    """
    with path.open("rb") as handle:
        if path.suffix.lower() == ".csv":
            yield from _csv_rows(handle, path)
        else:
            yield from _json_lines(handle, path)


def count_lines(path: Path) -> int:
    """The number of lines in the file at `path` (for progress). Cost: one read."""
    count, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")
