"""Plain-text forms of the values a repository stores: orders, events, times.

Everything becomes JSON of plain types, so a database holds no pickles (a
file read back can never run code) and another program can read it. An
event's stored form is its public one (`backorder.codec.event_to_dict`), and
an order's is the one inside `OrderPlaced`; rows an earlier version wrote
(values tagged `{"$dt": ...}`) are still read.

Times are ISO 8601 with their UTC offset. In order and event JSON a time in
an IANA zone (`zoneinfo.ZoneInfo`) also keeps its zone, as RFC 9557 writes it
(`2026-10-25T02:30:00+01:00[Europe/Berlin]`), so it reads back equal, with
the same wall time and the same side of a DST fold. Every time text is read
by `parse_time`, the same on every supported Python: `Z` means UTC
(`datetime.fromisoformat` refuses it before 3.11) and only ASCII digits count.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

import attrs

from . import events as _events
from .domain import _NO_METADATA, MAX_QUANTITY, Order, OrderLine, check_aware, check_text
from .errors import (
    ArgumentTypeError,
    BackorderError,
    InvalidArgument,
    InvalidEvent,
    StorageCorrupted,
    shown,
)
from .eta import BASES, Eta

_TIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[T ]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2})"
    r"(?::?(?P<os>[0-9]{2})(?:\.(?P<of>[0-9]{6}))?)?)?"
    r"(?:\[(?P<zone>[A-Za-z0-9_+\-/]{1,255})\])?",
    re.ASCII,
)
# What isoformat() writes, which fromisoformat reads alike on every Python (fast).
_CANONICAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?"
    r"[+-][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{6})?)?"
    r"(?:\[(?P<zone>[A-Za-z0-9_+\-/]{1,255})\])?",
    re.ASCII,
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_UTC = timezone.utc


def parse_time(text: object, field: str) -> datetime:
    """The aware datetime an ISO 8601 text names (what `time_text`/`zoned_text` write).

    Accepted: `YYYY-MM-DDTHH:MM[:SS[.f...]]` (`T` or a space; 1 to 9 digits
    of fraction, cut to microseconds) and an offset: `Z`/`z` (UTC),
    `+HH:MM`, `+HHMM` or `+HH:MM:SS[.ffffff]`; optionally followed by an
    IANA zone in brackets (`[Europe/Berlin]`), which must agree with the
    offset; the result is then in that zone, on the side of a DST fold the
    offset names. The same on every Python version; only ASCII digits.

    Raises:
        ArgumentTypeError: `text` is not a `str`.
        InvalidArgument: `text` is not such a time, has no offset, names an
            impossible date or time, an unknown zone, or an offset the zone
            does not have then (the message names `field` and `text`).

    Cost: O(len(text)).
    """
    if not isinstance(text, str):
        raise ArgumentTypeError(
            f"{field} must be an ISO 8601 time text, got {type(text).__name__} {shown(text)}"
        )
    canonical = _CANONICAL.fullmatch(text)
    if canonical is not None:
        key = canonical.group("zone")
        try:
            moment = datetime.fromisoformat(
                text if key is None else text[: canonical.start("zone") - 1]
            )
        except ValueError as exc:
            raise InvalidArgument(
                f"{field} is not a possible time ({exc}), got {shown(text)}"
            ) from None
        return moment if key is None else _in_zone(moment, key, field, text)
    match = _TIME.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            f"{field} must be an ISO 8601 time like 2026-01-05T09:00:00+00:00 "
            f"(or ...Z), got {shown(text)}"
        )
    part = match.group
    if part("z") is None and part("sign") is None:
        raise InvalidArgument(
            f"{field} must have a UTC offset (+01:00, or Z for UTC), got {shown(text)}"
        )
    try:
        if part("z") is not None:
            zone: tzinfo = _UTC
        else:
            offset = timedelta(
                hours=int(part("oh")),
                minutes=int(part("om")),
                seconds=int(part("os") or 0),
                microseconds=int(part("of") or 0),
            )
            zone = timezone(-offset if part("sign") == "-" else offset)
        fraction = (part("f") or "")[:6].ljust(6, "0")
        moment = datetime(
            int(part("y")),
            int(part("mo")),
            int(part("d")),
            int(part("h")),
            int(part("mi")),
            int(part("s") or 0),
            int(fraction),
            tzinfo=zone,
        )
    except ValueError as exc:
        raise InvalidArgument(
            f"{field} is not a possible time ({exc}), got {shown(text)}"
        ) from None
    key = part("zone")
    return moment if key is None else _in_zone(moment, key, field, text)


def _in_zone(moment: datetime, key: str, field: str, text: str) -> datetime:
    # The same wall time in the named zone, on the side of a fold (or gap) whose
    # offset the text states.
    try:
        zone = ZoneInfo(key)
    except (KeyError, ValueError, OSError):
        raise InvalidArgument(f"{field} names an unknown time zone, got {shown(text)}") from None
    offset = moment.utcoffset()
    for fold in (0, 1):
        candidate = moment.replace(tzinfo=zone, fold=fold)
        if candidate.utcoffset() == offset:
            return candidate
    raise InvalidArgument(
        f"{field}: the zone {key} has no offset {moment.isoformat()[19:]} at that time, "
        f"got {shown(text)}"
    )


def parse_date(text: object, field: str) -> date:
    """The date an ISO 8601 `YYYY-MM-DD` text names (ASCII digits only).

    Raises:
        ArgumentTypeError: `text` is not a `str`.
        InvalidArgument: `text` is not such a date, or an impossible one.

    Cost: O(len(text)).
    """
    if not isinstance(text, str):
        raise ArgumentTypeError(
            f"{field} must be an ISO 8601 date text, got {type(text).__name__} {shown(text)}"
        )
    match = _DATE.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"{field} must be a date like 2026-01-31, got {shown(text)}")
    try:
        return date(*(int(digits) for digits in match.groups()))
    except ValueError as exc:
        raise InvalidArgument(
            f"{field} is not a possible date ({exc}), got {shown(text)}"
        ) from None


def time_text(value: datetime) -> str:
    """An aware datetime as ISO 8601 text with its offset (the form of stored columns)."""
    return value.isoformat()


def zoned_text(value: datetime) -> str:
    """An aware datetime as ISO 8601 text with its offset, and its IANA zone in
    brackets when it has one (`...+01:00[Europe/Berlin]`), so it reads back
    equal whatever the zone. Cost: O(1)."""
    text = value.isoformat()
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return f"{text}[{zone.key}]"
    return text


def text_time(text: str) -> datetime:
    """The datetime `time_text` or `zoned_text` wrote.

    Raises:
        StorageCorrupted: the text is not such a time.
    """
    try:
        return parse_time(text, "stored time")
    except BackorderError as exc:
        raise StorageCorrupted(str(exc)) from None


def timedelta_micros(value: timedelta | None) -> int | None:
    """A timedelta as whole microseconds (exact), None as None."""
    if value is None:
        return None
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def micros_timedelta(value: int | None) -> timedelta | None:
    """The timedelta `timedelta_micros` wrote."""
    return None if value is None else timedelta(microseconds=value)


# --- the JSON forms of values inside events: (encode, decode) by field type ---

_Encode = Callable[[Any, str], Any]
_Decode = Callable[[Any, str], Any]


def _refuse(path: str, what: str, value: object) -> InvalidEvent:
    return InvalidEvent(f"{path} must be {what}, got {type(value).__name__} {shown(value)}")


def _text(value: object, path: str) -> str:
    try:
        return check_text(value, path)
    except BackorderError as exc:
        raise InvalidEvent(str(exc)) from None


def _int_out(value: object, path: str) -> int:
    # An int subclass (an IntEnum member) is written as its plain int.
    if type(value) is not int and isinstance(value, int) and not isinstance(value, bool):
        value = int.__int__(value)
    return _int(value, path)


def _int(value: object, path: str) -> int:
    if type(value) is not int:
        raise _refuse(path, "an int", value)
    low = 0 if path.endswith((".quantity", ".position")) else -MAX_QUANTITY
    if not low <= value <= MAX_QUANTITY:
        raise InvalidEvent(f"{path} must be from {low} to {MAX_QUANTITY}, got {shown(value)}")
    return value


def _flag(value: object, path: str) -> bool:
    if type(value) is not bool:
        raise _refuse(path, "true or false", value)
    return value


def _time_out(value: object, path: str) -> str:
    try:
        return zoned_text(check_aware(value, path))
    except BackorderError as exc:
        raise InvalidEvent(str(exc)) from None


def _time_in(value: object, path: str) -> datetime:
    try:
        return check_aware(parse_time(value, path), path)
    except BackorderError as exc:
        raise InvalidEvent(str(exc)) from None


def _object(value: object, path: str, required: tuple[str, ...], known: tuple[str, ...]) -> Any:
    # A JSON object with every required key and no key it should not have.
    if not isinstance(value, Mapping):
        raise _refuse(path, "an object", value)
    for name in required:
        if name not in value:
            raise InvalidEvent(f"{path}.{name} is missing")
    for name in value:
        if name not in known:
            raise InvalidEvent(f"{path} has no field {shown(name)}")
    return value


def _order_out(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Order):
        raise _refuse(path, "an Order", value)
    fill_by = value.fill_by
    return {
        "id": value.id,
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in value.lines],
        "tier": value.tier,
        "ship_complete": value.ship_complete,
        "placed_at": None if value.placed_at is None else zoned_text(value.placed_at),
        "metadata": dict(value.metadata),
        "fill_by": (
            None
            if fill_by is None
            else zoned_text(fill_by)
            if isinstance(fill_by, datetime)
            else fill_by.isoformat()
        ),
    }


_ORDER_FIELDS = ("id", "lines", "tier", "ship_complete", "placed_at", "metadata", "fill_by")


def _order_in(value: object, path: str) -> Order:
    plain = _object(value, path, ("id", "lines"), _ORDER_FIELDS)
    lines = plain["lines"]
    if not isinstance(lines, list):
        raise _refuse(f"{path}.lines", "a list", lines)
    order_lines = []
    for index, line in enumerate(lines):
        where = f"{path}.lines[{index}]"
        item = _object(line, where, ("sku", "quantity"), ("sku", "quantity"))
        order_lines.append(_build(where, OrderLine, item["sku"], item["quantity"]))
    placed_at = plain.get("placed_at")
    fill_by = _fill_by_in(plain.get("fill_by"), f"{path}.fill_by", _time_in)
    metadata = plain.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise _refuse(f"{path}.metadata", "an object", metadata)
    return _build(  # type: ignore[no-any-return]
        path,
        Order,
        plain["id"],
        order_lines,
        plain.get("tier", "standard"),
        plain.get("ship_complete", False),
        None if placed_at is None else _time_in(placed_at, f"{path}.placed_at"),
        metadata,
        fill_by,
    )


def _fill_by_in(value: object, path: str, time_in: _Decode) -> date | datetime | None:
    # A stored fill-by: None, a YYYY-MM-DD date, or a time as `time_in` reads it.
    if value is None:
        return None
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return parse_date(value, path)
        except BackorderError as exc:
            raise InvalidEvent(str(exc)) from None
    return time_in(value, path)  # type: ignore[no-any-return]


def _build(path: str, cls: Callable[..., Any], *args: Any) -> Any:
    try:
        return cls(*args)
    except BackorderError as exc:
        raise InvalidEvent(f"{path}: {exc}") from None


def _basis(value: object, path: str) -> str:
    if type(value) is not str or value not in BASES:
        raise _refuse(path, f"one of {', '.join(BASES)}", value)
    return value


def _eta_out(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Eta):
        raise _refuse(path, "an Eta", value)
    return {
        "at": None if value.at is None else _time_out(value.at, f"{path}.at"),
        "basis": value.basis,
        "first_unit_at": (
            None
            if value.first_unit_at is None
            else _time_out(value.first_unit_at, f"{path}.first_unit_at")
        ),
        "first_unit_basis": value.first_unit_basis,
    }


_ETA_FIELDS = ("at", "basis", "first_unit_at", "first_unit_basis")


def _eta_in(value: object, path: str) -> Eta:
    plain = _object(value, path, ("at", "basis"), _ETA_FIELDS)
    at, first_at = plain["at"], plain.get("first_unit_at")
    first_basis = plain.get("first_unit_basis")
    return Eta(
        None if at is None else _time_in(at, f"{path}.at"),
        _basis(plain["basis"], f"{path}.basis"),
        None if first_at is None else _time_in(first_at, f"{path}.first_unit_at"),
        None if first_basis is None else _basis(first_basis, f"{path}.first_unit_basis"),
    )


def _optional(kind: tuple[_Encode, _Decode]) -> tuple[_Encode, _Decode]:
    encode, decode = kind

    def encode_optional(value: object, path: str) -> Any:
        return None if value is None else encode(value, path)

    def decode_optional(value: object, path: str) -> Any:
        return None if value is None else decode(value, path)

    return encode_optional, decode_optional


_KINDS: dict[str, tuple[_Encode, _Decode]] = {
    "str": (_text, _text),
    "int": (_int_out, _int),
    "bool": (_flag, _flag),
    "datetime": (_time_out, _time_in),
    "Order": (_order_out, _order_in),
    "Eta": (_eta_out, _eta_in),
}
_KINDS.update({f"{name} | None": _optional(kind) for name, kind in list(_KINDS.items())})

_EVENT_TYPES: dict[str, type[_events.Event]] = {
    name: getattr(_events, name) for name in _events.__all__ if name != "Event"
}


@attrs.frozen
class _Field:
    name: str
    encode: _Encode
    decode: _Decode
    required: bool


def _fields_of(cls: type[_events.Event]) -> tuple[_Field, ...]:
    fields = []
    for field in attrs.fields(cls):
        kind = _KINDS.get(str(field.type))
        if kind is None:  # pragma: no cover - a new event field type needs a kind here
            raise TypeError(f"{cls.__name__}.{field.name}: no JSON form for {field.type}")
        fields.append(_Field(field.name, *kind, field.default is attrs.NOTHING))
    return tuple(fields)


_SPECS: dict[type[_events.Event], tuple[_Field, ...]] = {
    cls: _fields_of(cls) for cls in _EVENT_TYPES.values()
}
_NAMES: dict[type[_events.Event], frozenset[str]] = {
    cls: frozenset(field.name for field in spec) for cls, spec in _SPECS.items()
}


def event_to_dict(event: _events.Event) -> dict[str, Any]:
    """An event as a JSON-ready dict: `{"type": "OrderPlaced", <field>: <value>, ...}`.

    Every field of the event is there, by its attribute name. Times are ISO
    8601 text with the UTC offset (`"2026-01-05T09:00:00+00:00"`), and the
    IANA zone in brackets when the time has one
    (`"2026-10-25T02:30:00+01:00[Europe/Berlin]"`); an `Order` is a dict
    (`id`, `lines` as `[{"sku", "quantity"}]`, `tier`, `ship_complete`,
    `placed_at`, `metadata`, `fill_by` as a time or a `YYYY-MM-DD` date); an
    `Eta` is a dict of its four fields. `json.dumps` takes the result as it
    is, and `event_from_dict` turns it back into an equal event.

    Raises:
        ArgumentTypeError: `event` is not one of the library's event classes.
        InvalidEvent: a field of `event` has a value no event can hold (a
            naive time, a quantity that is not an int, ...), named.

    Cost: O(size of the event).

    >>> from datetime import datetime, timezone
    >>> from backorder import StockReceived
    >>> at = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> event_to_dict(StockReceived("MUG", 5, "GRN-1", at))  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'StockReceived', 'sku': 'MUG', 'quantity': 5, 'reference': 'GRN-1',
     'at': '2026-01-05T00:00:00+00:00'}
    """
    cls = type(event)
    spec = _SPECS.get(cls)
    if spec is None:
        raise ArgumentTypeError(
            f"event must be one of backorder's events, got {cls.__name__} {shown(event)}"
        )
    name = cls.__name__
    data: dict[str, Any] = {"type": name}
    for field in spec:
        data[field.name] = field.encode(getattr(event, field.name), f"{name}.{field.name}")
    return data


def event_from_dict(data: Mapping[str, Any]) -> _events.Event:
    """The event `event_to_dict` gave (or JSON of it read back): an exact round trip.

    Times may also end in `Z` for UTC (as JavaScript's `toISOString` writes
    them) on every supported Python. A field with a default (such as
    `LineBackordered.eta`) may be left out.

    Raises:
        InvalidEvent: `data` is not a mapping, its `type` is not an event
            class, or a field is missing, unknown, or of the wrong type or
            value; the message names the field (`OrderPlaced.order.lines[0].quantity`).

    Cost: O(size of the data).

    >>> event_from_dict({"type": "OrderCancelled", "order_id": "A-1", "quantity": 2,
    ...                  "at": "2026-01-05T09:00:00Z"})
    ... # doctest: +NORMALIZE_WHITESPACE
    OrderCancelled(order_id='A-1', quantity=2,
                   at=datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.timezone.utc))
    """
    if not isinstance(data, Mapping):
        raise _refuse("event", "a dict", data)
    kind = data.get("type")
    cls = _EVENT_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise InvalidEvent(
            f"type must be one of {', '.join(sorted(_EVENT_TYPES))}, got {shown(kind)}"
        )
    names = _NAMES[cls]
    for key in data:
        if key != "type" and key not in names:
            raise InvalidEvent(f"{kind} has no field {shown(key)}")
    values: dict[str, Any] = {}
    for field in _SPECS[cls]:
        if field.name in data:
            values[field.name] = field.decode(data[field.name], f"{kind}.{field.name}")
        elif field.required:
            raise InvalidEvent(f"{kind}.{field.name} is missing")
    return cls(**values)


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


def event_text(event: _events.Event) -> str:
    """An event's stored text: the compact form (`[code, field, ...]`), or
    `event_to_dict` as JSON for a value the compact form does not take.

    Raises:
        ArgumentTypeError: `event` is not one of the library's event classes.
        InvalidEvent: a field holds a value no event can hold (named).

    Cost: O(size of the event).
    """
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
