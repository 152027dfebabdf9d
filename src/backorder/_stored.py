"""The text a repository stores: an order's body and an event in the outbox.

Built on the public forms of `backorder._codec` (the same checks, the same
time texts): a stored text is either that public form (rows written before
SQLite schema 7 and PostgreSQL schema 6) or the compact form below, and
`stored_order` / `stored_orders` read rows the library wrote itself without
validating them twice. Everything is JSON of plain types: no pickles.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import attrs

from . import events as _events
from ._codec import (
    _EVENT_TYPES,
    _ORDER_FIELDS,
    _UTC,
    _basis,
    _build,
    _Decode,
    _Encode,
    _Field,
    _fill_by_in,
    _flag,
    _int,
    _int_out,
    _optional,
    _order_in,
    _order_out,
    _refuse,
    _text,
    _time_in,
    _time_out,
    event_from_dict,
    event_to_dict,
    parse_date,
    parse_time,
)
from .domain import _NO_METADATA, MAX_QUANTITY, Order, OrderLine, check_aware
from .errors import BackorderError, InvalidEvent, StorageCorrupted, shown
from .eta import Eta

# --- stored text ---
#
# What a repository stores. Since SQLite schema 7 and PostgreSQL schema 6 an
# order's row and an event in the outbox are written in a compact form: a
# JSON array, fields by position, defaults left out, a time in UTC as whole
# microseconds since 1970-01-01 (a time in any other zone as its zoned text,
# so it reads back with its own offset and zone). Rows written before, in the
# public form (a JSON object), are still read: a stored text's first
# character tells the two apart.
#
#   order:  [placed_at, sku, quantity, sku, quantity, ..., {extras}?]
#           extras only when not the default: "t" tier, "c" ship_complete
#           (true), "m" metadata, "f" fill_by (a time, or a YYYY-MM-DD date);
#           the order's id is the row's key, not repeated in the text
#   event:  [code, field, field, ...] in the event class's field order, the
#           trailing fields whose default is None left out when None (an `Eta`
#           that says nothing, the common one, as 0; else its four fields)
#           OrderPlaced: [1, order_id, at, <the order's compact fields>], or
#           [-1, order_id, <the order's compact fields>] when `at` is the
#           order's placed_at (as the book stamps it), the time written once

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_quote = json.encoder.encode_basestring_ascii  # how `_dumps` writes a str
_loads = json.loads


def _json(value: object) -> str:
    # `_dumps(value)`, without building an encoder for the plain values
    # (a str, an int, None) a stored form is mostly made of.
    if isinstance(value, str) and type(value) is str:
        return _quote(value)
    if isinstance(value, int) and type(value) is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return _dumps(value)


def _json_list(values: list[Any]) -> str:
    # `_dumps(values)` for a list (see `_json`).
    return "[" + ",".join(map(_json, values)) + "]"


_new = object.__new__
_set = object.__setattr__
_from_iso = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND = timedelta(microseconds=1)


def order_plain(order: Order) -> dict[str, Any]:
    """An order as a dict of plain JSON types (its form inside `OrderPlaced`)."""
    return _order_out(order, "order")


def plain_order(plain: dict[str, Any]) -> Order:
    """The order `order_plain` (or an earlier version's `order_plain`) wrote,
    validated again, as any `Order`.

    Raises:
        InvalidEvent: `plain` is not such an order (named field).
    """
    lines = plain.get("lines") if isinstance(plain, dict) else None
    if isinstance(lines, list) and lines and isinstance(lines[0], list):
        return _legacy_order(plain)
    return _order_in(plain, "order")


def _when_out(value: object, path: str) -> int | str:
    # A stored time: UTC as whole microseconds, any other zone as zoned text.
    if type(value) is datetime and value.tzinfo is _UTC:
        return (value - _EPOCH) // _MICROSECOND
    return _time_out(value, path)


def _when_in(value: object, path: str) -> datetime:
    # The time `_when_out` wrote (or a time text, as the public form has it).
    if type(value) is int:
        try:
            return _EPOCH + timedelta(microseconds=value)
        except OverflowError:
            raise InvalidEvent(f"{path} is not a possible time, got {shown(value)}") from None
    return _time_in(value, path)


_ORDER_EXTRAS = frozenset({"t", "c", "m", "f"})


def _order_fields(order: object, path: str) -> list[Any]:
    # An order's compact fields (its id left out: the row's key, or the event's).
    if not isinstance(order, Order):
        raise _refuse(path, "an Order", order)
    placed = order.placed_at
    fields: list[Any] = [None if placed is None else _when_out(placed, f"{path}.placed_at")]
    for line in order.lines:
        fields.append(line.sku)
        fields.append(line.quantity)
    extras: dict[str, Any] = {}
    if order.tier != "standard":
        extras["t"] = order.tier
    if order.ship_complete:
        extras["c"] = True
    if order.metadata:
        extras["m"] = dict(order.metadata)
    fill_by = order.fill_by
    if fill_by is not None:
        extras["f"] = (
            _when_out(fill_by, f"{path}.fill_by")
            if isinstance(fill_by, datetime)
            else fill_by.isoformat()
        )
    if extras:
        fields.append(extras)
    return fields


def _fields_order(order_id: object, fields: object, path: str) -> Order:
    # The order `_order_fields` wrote, every value checked as `Order` checks it.
    if type(fields) is not list or len(fields) < 3:
        raise _refuse(path, "a stored order's fields", fields)
    has_extras = type(fields[-1]) is dict
    extras: dict[str, Any] = fields[-1] if has_extras else {}
    pairs = fields[1:-1] if has_extras else fields[1:]
    if not pairs or len(pairs) % 2:
        raise _refuse(path, "a stored order's fields", fields)
    for name in extras:
        if name not in _ORDER_EXTRAS:
            raise InvalidEvent(f"{path} has no field {shown(name)}")
    lines = [
        _build(f"{path}.lines[{index // 2}]", OrderLine, pairs[index], pairs[index + 1])
        for index in range(0, len(pairs), 2)
    ]
    placed = fields[0]
    fill_by = _fill_by_in(extras.get("f"), f"{path}.fill_by", _time_compact_in)
    metadata = extras.get("m", {})
    if not isinstance(metadata, Mapping):
        raise _refuse(f"{path}.metadata", "an object", metadata)
    return _build(  # type: ignore[no-any-return]
        path,
        Order,
        order_id,
        lines,
        extras.get("t", "standard"),
        _flag(extras.get("c", False), f"{path}.ship_complete"),
        None
        if placed is None
        else _aware(_when_in(placed, f"{path}.placed_at"), f"{path}.placed_at"),
        metadata,
        fill_by,
    )


def _aware(value: datetime, path: str) -> datetime:
    # `value` if it has a UTC form (see `check_aware`), else InvalidEvent.
    try:
        return check_aware(value, path)
    except BackorderError as exc:
        raise InvalidEvent(str(exc)) from None


# The last order written as text, with its text (one tuple, replaced whole:
# safe across threads): storing an operation that placed an order writes it
# twice (its row, and inside `OrderPlaced`), and an `Order` is immutable, so
# the second time is the first's text.
_last_order: list[tuple[Order | None, str]] = [(None, "")]


def order_text(order: Order) -> str:
    """An order's stored text: its compact fields as a JSON array, without its id.

    Raises:
        InvalidEvent: `order` is not an `Order` (or holds what none can).

    Cost: O(size of the order).
    """
    last = _last_order[0]
    if last[0] is order:
        return last[1]
    placed = order.placed_at if isinstance(order, Order) else None
    if (
        type(placed) is datetime
        and placed.tzinfo is _UTC
        and len(order.lines) == 1
        and order.tier == _STANDARD
        and not order.ship_complete
        and not order.metadata
        and order.fill_by is None
    ):  # the common order, written out (as `_order_fields` writes it)
        line = order.lines[0]
        micros = (placed - _EPOCH) // _MICROSECOND
        text = f"[{micros},{_quote(line.sku)},{int.__repr__(line.quantity)}]"
        _last_order[0] = (order, text)
        return text
    text = _json_list(_order_fields(order, "order"))
    _last_order[0] = (order, text)
    return text


def text_order(text: str, order_id: str) -> Order:
    """The order `order_text` wrote for `order_id` (or an earlier version's
    public form, which carries its own id), every value checked again.

    Raises:
        StorageCorrupted: the text is not an order this library wrote.

    Cost: O(len(text)).
    """
    try:
        plain = json.loads(text)
        if type(plain) is list:
            return _fields_order(order_id, plain, "order")
        return plain_order(plain)
    except Exception as exc:
        raise StorageCorrupted(f"stored order {shown(text, 200)} cannot be read: {exc}") from exc


def _plain_name(value: object) -> TypeGuard[str]:
    # A text the fast checks of `Order` and `OrderLine` accept as it is.
    return (
        type(value) is str
        and bool(value)
        and not value.isspace()
        and value.isascii()
        and "\x00" not in value
    )


# One order of one line as `order_text` writes it: placed in UTC, a SKU of
# printable ASCII other than quote and backslash (nothing escaped), no extras.
_NAME = r"([ !#-\[\]-~]+)"
_ONE_LINE = re.compile(r'\[([0-9]{1,17}),"' + _NAME + r'",([1-9][0-9]{0,18})\]', re.ASCII)
# The same in the public form earlier versions wrote.
_PUBLIC_ONE_LINE = re.compile(
    r'\{"id":"' + _NAME + r'","lines":\[\{"sku":"' + _NAME + r'","quantity":([1-9][0-9]{0,18})\}\],'
    r'"tier":"' + _NAME + r'","ship_complete":(true|false),'
    r'"placed_at":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?'
    r'[+-][0-9]{2}:[0-9]{2})","metadata":\{\},"fill_by":null\}',
    re.ASCII,
)
_STANDARD = "standard"


def _made(
    order_id: str, lines: tuple[OrderLine, ...], tier: str, complete: bool, placed: datetime
) -> Order:
    # An order of values already checked, built slot by slot (no validation).
    order = _new(Order)
    _set(order, "id", order_id)
    _set(order, "lines", lines)
    _set(order, "tier", tier)
    _set(order, "ship_complete", complete)
    _set(order, "placed_at", placed)
    _set(order, "metadata", _NO_METADATA)
    _set(order, "fill_by", None)
    return order


def _line(sku: str, quantity: int) -> OrderLine:
    order_line = _new(OrderLine)
    _set(order_line, "sku", sku)
    _set(order_line, "quantity", quantity)
    return order_line


def stored_order(order_id: str, text: str, names: dict[str, str]) -> Order:
    """The order `order_text` wrote for `order_id`, decoded for a load: the
    trusted decoder.

    An order as this library writes it (ASCII names, no metadata, no
    `fill_by`) is checked field by field for what `Order` would refuse
    (types, empty or unusual names, quantities out of range, a SKU twice, a
    time without offset) and built slot by slot, without running `Order`'s
    validation again; any other text takes `text_order`'s full path. SKU and
    tier names are shared through `names` (one string per name in a load, not
    one per order). Equal to `text_order(text, order_id)`. Reads the public
    form earlier versions wrote too (which carries its own id).

    Raises:
        StorageCorrupted: the text is not an order this library wrote.

    Cost: O(len(text)).
    """
    if text[:1] == "{":
        return _stored_public_order(text, names)
    one = _ONE_LINE.fullmatch(text)
    if one is not None:  # the common order: one line, read without a JSON decoder
        micros, sku, count = one.groups()
        quantity = int(count)
        if not _plain_name(order_id) or sku.isspace() or quantity > MAX_QUANTITY:
            return text_order(text, order_id)
        try:
            moment = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            return text_order(text, order_id)
        return _made(
            order_id, (_line(names.setdefault(sku, sku), quantity),), _STANDARD, False, moment
        )
    try:
        fields = _loads(text)
    except Exception as exc:
        raise StorageCorrupted(f"stored order {shown(text, 200)} cannot be read: {exc}") from exc
    if type(fields) is not list or len(fields) < 3 or not _plain_name(order_id):
        return text_order(text, order_id)
    extras = fields[-1]
    tier, complete = _STANDARD, False
    if type(extras) is dict:
        fields = fields[:-1]
        tier, complete = extras.get("t", _STANDARD), extras.get("c", False)
        if (
            not extras
            or not extras.keys() <= {"t", "c"}
            or ("c" in extras and complete is not True)
            or not _plain_name(tier)
        ):
            return text_order(text, order_id)
    placed = fields[0]
    if type(placed) is not int or len(fields) % 2 == 0:
        return text_order(text, order_id)
    made = []
    for index in range(1, len(fields), 2):
        name, units = fields[index], fields[index + 1]
        if type(units) is not int or not 0 < units <= MAX_QUANTITY or not _plain_name(name):
            return text_order(text, order_id)
        made.append(_line(names.setdefault(name, name), units))
    if len(made) > 1 and len({line.sku for line in made}) != len(made):
        return text_order(text, order_id)
    try:
        moment = _EPOCH + timedelta(microseconds=placed)
    except OverflowError:
        return text_order(text, order_id)
    return _made(order_id, tuple(made), names.setdefault(tier, tier), complete, moment)


# The slots of `Order` and `OrderLine`, set by their descriptors (faster
# than `object.__setattr__` by name; no validation: see `stored_orders`).
_SET_ID, _SET_LINES, _SET_TIER, _SET_COMPLETE, _SET_PLACED, _SET_METADATA, _SET_FILL_BY = (
    Order.__dict__[name].__set__
    for name in ("id", "lines", "tier", "ship_complete", "placed_at", "metadata", "fill_by")
)
_SET_SKU, _SET_QUANTITY = (OrderLine.__dict__[name].__set__ for name in ("sku", "quantity"))


def stored_orders(ids: Sequence[str], texts: Sequence[str], names: dict[str, str]) -> list[Order]:
    """`stored_order` of each (id, text) pair, in order: the trusted decoder
    for a load's rows, with the common order (one line, as `order_text`
    writes it) decoded in one loop. Orders of one line with the same SKU
    and quantity share one `(OrderLine,)` tuple (both are immutable values;
    a load makes one per SKU and quantity, not one per order).

    Each order is equal to `stored_order(id, text, names)`; the same checks
    (a text the one-line pattern does not match, an id or SKU `Order` would
    refuse, a quantity out of range, a time out of range: `stored_order`'s
    own path).

    Raises:
        StorageCorrupted: a text is not an order this library wrote.

    Cost: O(total length of the texts).
    """
    match = _ONE_LINE.fullmatch
    new, epoch, delta = _new, _EPOCH, timedelta
    set_id, set_lines, set_tier, set_complete = _SET_ID, _SET_LINES, _SET_TIER, _SET_COMPLETE
    set_placed, set_metadata, set_fill_by = _SET_PLACED, _SET_METADATA, _SET_FILL_BY
    no_metadata, standard, most = _NO_METADATA, _STANDARD, MAX_QUANTITY
    shared: dict[str, tuple[OrderLine, ...]] = {}  # `,"SKU",quantity]` -> its lines
    out: list[Order] = []
    append = out.append
    for order_id, text in zip(ids, texts, strict=True):
        one = match(text)
        if (
            one is None
            or type(order_id) is not str
            or not order_id
            or order_id.isspace()
            or not order_id.isascii()
            or "\x00" in order_id
        ):
            append(stored_order(order_id, text, names))
            continue
        end = one.end(1)
        lines = shared.get(text[end:])
        if lines is None:
            sku, count = one.group(2, 3)
            quantity = int(count)
            if sku.isspace() or quantity > most:
                append(stored_order(order_id, text, names))
                continue
            line = new(OrderLine)
            _SET_SKU(line, names.setdefault(sku, sku))
            _SET_QUANTITY(line, quantity)
            lines = shared[text[end:]] = (line,)
        try:
            moment = epoch + delta(0, 0, int(text[1:end]))
        except OverflowError:
            append(stored_order(order_id, text, names))
            continue
        order = new(Order)
        set_id(order, order_id)
        set_lines(order, lines)
        set_tier(order, standard)
        set_complete(order, False)
        set_placed(order, moment)
        set_metadata(order, no_metadata)
        set_fill_by(order, None)
        append(order)
    return out


def _stored_public_order(text: str, names: dict[str, str]) -> Order:
    # The trusted decoder of the public form earlier versions stored.
    one = _PUBLIC_ONE_LINE.fullmatch(text)
    if one is not None:
        order_id, sku, count, tier, complete, placed_at = one.groups()
        quantity = int(count)
        if order_id.isspace() or sku.isspace() or tier.isspace() or quantity > MAX_QUANTITY:
            return text_order(text, order_id)
        try:
            moment = _from_iso(placed_at)
        except ValueError:
            return text_order(text, order_id)
        line = _line(names.setdefault(sku, sku), quantity)
        return _made(order_id, (line,), names.setdefault(tier, tier), complete == "true", moment)
    try:
        plain = _loads(text)
    except Exception as exc:
        raise StorageCorrupted(f"stored order {shown(text, 200)} cannot be read: {exc}") from exc
    if type(plain) is not dict or tuple(plain) != _ORDER_FIELDS:
        return text_order(text, "")
    order_id, lines, tier = plain["id"], plain["lines"], plain["tier"]
    ship_complete, placed_at = plain["ship_complete"], plain["placed_at"]
    if (
        plain["metadata"] != {}
        or plain["fill_by"] is not None
        or type(ship_complete) is not bool
        or type(placed_at) is not str
        or type(lines) is not list
        or not lines
        or not _plain_name(order_id)
        or not _plain_name(tier)
    ):
        return text_order(text, "")
    made = []
    for line in lines:
        if type(line) is not dict or len(line) != 2:
            return text_order(text, "")
        name, units = line.get("sku"), line.get("quantity")
        if type(units) is not int or not 0 < units <= MAX_QUANTITY or not _plain_name(name):
            return text_order(text, "")
        made.append(_line(names.setdefault(name, name), units))
    if len(made) > 1 and len({line.sku for line in made}) != len(made):
        return text_order(text, "")
    try:
        moment = parse_time(placed_at, "order.placed_at")
    except BackorderError:
        return text_order(text, "")
    if moment.utcoffset() is None:
        return text_order(text, "")
    return _made(order_id, tuple(made), names.setdefault(tier, tier), ship_complete, moment)


def _eta_compact_out(value: object, path: str) -> Any:
    if not isinstance(value, Eta):
        raise _refuse(path, "an Eta", value)
    at, first_at = value.at, value.first_unit_at
    if at is None and first_at is None and value.basis == value.first_unit_basis == "unknown":
        return 0
    return [
        None if at is None else _when_out(at, f"{path}.at"),
        value.basis,
        None if first_at is None else _when_out(first_at, f"{path}.first_unit_at"),
        value.first_unit_basis,
    ]


_NO_ETA = Eta(None, "unknown", None, "unknown")


def _eta_compact_in(value: object, path: str) -> Eta:
    if value == 0 and type(value) is int:
        return _NO_ETA
    if type(value) is not list or len(value) != 4:
        raise _refuse(path, "a stored Eta", value)
    at, basis, first_at, first_basis = value
    return Eta(
        None if at is None else _aware(_when_in(at, f"{path}.at"), f"{path}.at"),
        _basis(basis, f"{path}.basis"),
        None
        if first_at is None
        else _aware(_when_in(first_at, f"{path}.first_unit_at"), f"{path}.first_unit_at"),
        None if first_basis is None else _basis(first_basis, f"{path}.first_unit_basis"),
    )


def _time_compact_in(value: object, path: str) -> datetime:
    return _aware(_when_in(value, path), path)


_COMPACT_KINDS: dict[str, tuple[_Encode, _Decode]] = {
    "str": (_text, _text),
    "int": (_int_out, _int),
    "bool": (_flag, _flag),
    "datetime": (_when_out, _time_compact_in),
    "Eta": (_eta_compact_out, _eta_compact_in),
}
_COMPACT_KINDS.update(
    {f"{name} | None": _optional(kind) for name, kind in list(_COMPACT_KINDS.items())}
)

#: Each event class's number in the compact stored form. Stored rows hold
#: these: a number is never changed or given to another class.
EVENT_CODES: dict[str, int] = {
    "OrderPlaced": 1,
    "LineAllocated": 2,
    "LineBackordered": 3,
    "LineReleased": 4,
    "LineFirmed": 5,
    "LineCancelled": 6,
    "OrderCancelled": 7,
    "LineShipped": 8,
    "StockReceived": 9,
    "StockReturned": 10,
    "StockAdjusted": 11,
    "OrderExpired": 12,
    "StockHeld": 13,
    "HoldReleased": 14,
    "HoldConfirmed": 15,
    "TierChanged": 16,
    "PolicyChanged": 17,
    "SupplyExpected": 18,
    "SupplyCancelled": 19,
    "EtaChanged": 20,
}


def _compact_spec(cls: type[_events.Event]) -> tuple[_Field, ...] | None:
    # The compact (encode, decode) of each field, or None for a class with a
    # field of another kind (stored in the public form).
    fields = []
    for field in attrs.fields(cls):
        kind = _COMPACT_KINDS.get(str(field.type))
        if kind is None:
            return None
        fields.append(_Field(field.name, *kind, field.default is attrs.NOTHING))
    return tuple(fields)


_COMPACT: dict[type[_events.Event], tuple[int, tuple[_Field, ...]]] = {}
for _name, _code in EVENT_CODES.items():
    _spec = _compact_spec(_EVENT_TYPES[_name])
    if _spec is not None:
        _COMPACT[_EVENT_TYPES[_name]] = (_code, _spec)
_BY_CODE = {code: (cls, spec) for cls, (code, spec) in _COMPACT.items()}
_CODE_TEXT = {code: str(code) for code in _BY_CODE}
# every field's value at once (one call)
# (every event has two fields or more: `attrgetter` of several names gives a tuple)
_VALUES: dict[type[_events.Event], Callable[[_events.Event], tuple[Any, ...]]] = {
    cls: operator.attrgetter(*(field.name for field in spec)) for cls, (_, spec) in _COMPACT.items()
}
assert all(len(spec) > 1 for _, spec in _COMPACT.values())
# how many parts a stored event keeps at least: its code and every field up to
# the last one without a default of None (those after it are left out when None)
_KEPT = {
    cls: 1
    + max(
        (index + 1 for index, field in enumerate(attrs.fields(cls)) if field.default is not None),
        default=0,
    )
    for cls in _COMPACT
}
# the least int each field takes (see `_int`): a count is never negative
_LOWS = {
    cls: tuple(0 if field.name in ("quantity", "position") else -MAX_QUANTITY for field in spec)
    for cls, (_, spec) in _COMPACT.items()
}
_ORDER_PLACED = EVENT_CODES["OrderPlaced"]
# OrderPlaced whose `at` is its order's `placed_at` (the same stored time):
# `[-1, order_id, <the order's fields>]`, the time written once
_PLACED_AS_STAMPED = -1


# Each class's text when every field holds the plain value of its kind (a
# str the fast name checks take, an int in range, a UTC time, an ETA that
# says nothing (either form), a bool, or None where the field may be None): the text the
# loop of `_event_text` writes for it, made by a function written for the
# class once here (no loop over the fields, one test per field); None when a
# value is of another kind (then the loop writes it). A test holds the two
# equal for every event class.
_PLAIN_KINDS = {
    "str": (
        "(type({v}) is str and {v} != '' and {v}.isascii() and not {v}.isspace()"
        " and '\\x00' not in {v})",
        "quote({v})",
    ),
    "int": ("(type({v}) is int and {low} <= {v} <= MAX_QUANTITY)", "int_repr({v})"),
    "bool": ("(type({v}) is bool)", "('true' if {v} else 'false')"),
    "datetime": ("(type({v}) is datetime and {v}.tzinfo is UTC)", "int_repr(({v} - EPOCH) // US)"),
    # (an ETA that says nothing: 0 with the first unit's basis "unknown" as
    # a partial-fill book has it; a list of four with it None)
    "Eta": (
        "(type({v}) is Eta and {v}.at is None and {v}.first_unit_at is None"
        " and {v}.basis == 'unknown'"
        " and ({v}.first_unit_basis == 'unknown' or {v}.first_unit_basis is None))",
        "('0' if {v}.first_unit_basis == 'unknown' else UNKNOWN_WHOLE)",
    ),
}


def _plain_writer(cls: type[_events.Event]) -> Callable[[_events.Event], str | None]:
    code, spec = _COMPACT[cls]
    types = {field.name: str(field.type) for field in attrs.fields(cls)}
    body, tests, texts = [], [], []
    optional = False
    for index, (field, low) in enumerate(zip(spec, _LOWS[cls], strict=True)):
        value = f"v{index}"
        kind = types[field.name]
        may_be_none = kind.endswith(" | None")
        test, text = _PLAIN_KINDS[kind.removesuffix(" | None")]
        test, text = test.format(v=value, low=low), text.format(v=value)
        if may_be_none:
            optional = True
            test, text = f"({value} is None or {test})", f"('null' if {value} is None else {text})"
        body.append(f"    {value} = event.{field.name}")
        tests.append(test)
        texts.append(text)
    body.append("    if not (" + " and ".join(tests) + "):")
    body.append("        return None")
    if optional:  # (trailing fields left at None are left out, as `_KEPT` says)
        body.append(f"    parts = [{', '.join([repr(str(code)), *texts])}]")
        body.append(f"    while len(parts) > {_KEPT[cls]} and parts[-1] == 'null':")
        body.append("        parts.pop()")
        body.append("    return '[' + ','.join(parts) + ']'")
    else:
        fields = ",".join("{" + text + "}" for text in texts)
        body.append(f'    return f"[{code},{fields}]"')
    namespace: dict[str, Any] = {
        "quote": _quote,
        "int_repr": int.__repr__,
        "MAX_QUANTITY": MAX_QUANTITY,
        "datetime": datetime,
        "UTC": _UTC,
        "EPOCH": _EPOCH,
        "US": _MICROSECOND,
        "Eta": Eta,
        "UNKNOWN_WHOLE": _json([None, "unknown", None, None]),
    }
    exec("def write(event):\n" + "\n".join(body), namespace)
    writer: Callable[[_events.Event], str | None] = namespace["write"]
    return writer


_PLAIN_WRITERS = {cls: _plain_writer(cls) for cls in _COMPACT if cls is not _events.OrderPlaced}


def event_text(event: _events.Event) -> str:
    """An event's stored text: the compact form (`[code, field, ...]`), or
    `event_to_dict` as JSON for a value the compact form does not take.

    Raises:
        ArgumentTypeError: `event` is not one of the library's event classes.
        InvalidEvent: a field holds a value no event can hold (named).

    Cost: O(size of the event).
    """
    write = _PLAIN_WRITERS.get(type(event))
    if write is not None:
        text = write(event)
        if text is not None:
            return text
    return _event_text(event)


def _event_text(event: _events.Event) -> str:
    # `event_text`, field by field: any value the compact form takes.
    cls = type(event)
    if isinstance(event, _events.OrderPlaced) and cls is _events.OrderPlaced:
        order = event.order
        if isinstance(order, Order) and order.id == event.order_id:
            # the order's own stored text spliced in (its fields after the event's);
            # placed when it was placed (as the book stamps it), the time once
            at = _json(_when_out(event.at, "OrderPlaced.at"))
            fields = order_text(order)
            if fields.startswith(at, 1) and fields[len(at) + 1] == ",":
                return f"[{_PLACED_AS_STAMPED},{_quote(order.id)},{fields[1:]}"
            return f"[{_ORDER_PLACED},{_quote(order.id)},{at},{fields[1:]}"
        return _dumps(event_to_dict(event))
    compact = _COMPACT.get(cls)
    if compact is None:
        return _dumps(event_to_dict(event))
    code, spec = compact
    parts = [_CODE_TEXT[code]]
    for field, low, value in zip(spec, _LOWS[cls], _VALUES[cls](event), strict=True):
        kind = type(value)
        # the plain values the book's events hold, checked as the field's
        # encoder checks them; anything else by that encoder (which names it)
        if kind is int and low <= value <= MAX_QUANTITY:
            parts.append(int.__repr__(value))
        elif kind is str and _plain_name(value):
            parts.append(_quote(value))
        elif value is None and field.encode is not _text:
            parts.append("null")
        elif kind is datetime and value.tzinfo is _UTC:
            parts.append(int.__repr__((value - _EPOCH) // _MICROSECOND))
        else:
            parts.append(_json(field.encode(value, f"{cls.__name__}.{field.name}")))
    keep = _KEPT[cls]  # trailing fields left at their default (None) are left out
    while len(parts) > keep and parts[-1] == "null":
        parts.pop()
    return "[" + ",".join(parts) + "]"


def _compact_event(plain: list[Any]) -> _events.Event:
    # The event `event_text` wrote in the compact form, every value checked.
    code = plain[0] if plain else None
    if type(code) is not int:
        raise _refuse("event", "a stored event's code", code)
    if code in (_ORDER_PLACED, _PLACED_AS_STAMPED):
        first = 3 if code == _ORDER_PLACED else 2
        if len(plain) < first + 3 or plain[2] is None:  # `at` is plain[2] either way
            raise _refuse("OrderPlaced", "a stored event's fields", plain)
        order_id = _text(plain[1], "OrderPlaced.order_id")
        at = _time_compact_in(plain[2], "OrderPlaced.at")
        return _events.OrderPlaced(
            order_id, _fields_order(order_id, plain[first:], "OrderPlaced.order"), at
        )
    known = _BY_CODE.get(code)
    if known is None:
        raise InvalidEvent(f"no event has the stored code {shown(code)}")
    cls, spec = known
    name = cls.__name__
    if len(plain) - 1 > len(spec):
        raise InvalidEvent(f"{name} has {len(spec)} fields, got {len(plain) - 1}")
    values = []
    for index, field in enumerate(spec, 1):
        if index < len(plain):
            values.append(field.decode(plain[index], f"{name}.{field.name}"))
        elif field.required:
            raise InvalidEvent(f"{name}.{field.name} is missing")
    return cls(*values)


def text_event(text: str) -> _events.Event:
    """The event `event_text` (or an earlier version's) wrote.

    Raises:
        StorageCorrupted: the text is not an event this library wrote.

    Cost: O(len(text)).
    """
    try:
        plain = json.loads(text)
        if type(plain) is list:
            return _compact_event(plain)
        if isinstance(plain, dict) and set(plain) == {"type", "fields"}:
            return _legacy_event(plain)
        return event_from_dict(plain)
    except Exception as exc:
        raise StorageCorrupted(f"stored event {shown(text, 200)} cannot be read: {exc}") from exc


# --- rows written before events were stored in their public form ---


def _legacy_value(plain: Any) -> Any:
    # A value tagged by an earlier version: {"$dt": ...}, {"$order": ...}, ...
    if plain is None or isinstance(plain, (str, int)):
        return plain
    if isinstance(plain, dict) and len(plain) == 1:
        ((tag, inner),) = plain.items()
        if tag == "$dt":
            return parse_time(inner, "stored time")
        if tag == "$date":
            return parse_date(inner, "stored date")
        if tag == "$order":
            return _legacy_order(inner)
        if tag == "$eta":
            return Eta(*(_legacy_value(item) for item in inner))
    raise ValueError(f"unreadable stored value {shown(plain)}")


def _legacy_order(plain: dict[str, Any]) -> Order:
    return Order(
        plain["id"],
        [OrderLine(sku, quantity) for sku, quantity in plain["lines"]],
        plain["tier"],
        plain["ship_complete"],
        _legacy_value(plain["placed_at"]),
        plain["metadata"],
        _legacy_value(plain["fill_by"]),
    )


def _legacy_event(plain: dict[str, Any]) -> _events.Event:
    cls = _EVENT_TYPES[plain["type"]]
    return cls(**{name: _legacy_value(value) for name, value in plain["fields"].items()})
