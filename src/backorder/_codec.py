"""Plain-text forms of the values a repository stores: orders, events, times.

Everything becomes JSON of plain types, so a database holds no pickles (a
file read back can never run code) and another program can read it. This
module holds the public forms (`backorder.codec.event_to_dict`, an order's
form inside `OrderPlaced`) and the time texts; `backorder._stored` the
compact forms a repository writes since SQLite schema 7 (and the older rows
it still reads).

Times are ISO 8601 with their UTC offset. In order and event JSON a time in
an IANA zone (`zoneinfo.ZoneInfo`) also keeps its zone, as RFC 9557 writes it
(`2026-10-25T02:30:00+01:00[Europe/Berlin]`), so it reads back equal, with
the same wall time and the same side of a DST fold. Every time text is read
by `parse_time`, the same on every supported Python: `Z` means UTC
(`datetime.fromisoformat` refuses it before 3.11) and only ASCII digits count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from . import events as _events
from .domain import MAX_QUANTITY, Order, OrderLine, check_aware, check_text
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
