"""Plain-text forms of the values a repository stores: orders, events, times.

Everything becomes JSON of plain types, so a database holds no pickles (a
file read back can never run code) and another program can read it.
Datetimes keep their UTC offset (`isoformat`), so an instant reads back equal.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from . import events as _events
from .domain import Order, OrderLine
from .errors import StorageCorrupted
from .eta import Eta

_EVENT_TYPES: dict[str, type[_events.Event]] = {
    name: getattr(_events, name) for name in _events.__all__ if name != "Event"
}


def time_text(value: datetime) -> str:
    """An aware datetime as ISO 8601 text with its offset."""
    return value.isoformat()


def text_time(text: str) -> datetime:
    """The datetime `time_text` wrote."""
    return datetime.fromisoformat(text)


def timedelta_micros(value: timedelta | None) -> int | None:
    """A timedelta as whole microseconds (exact), None as None."""
    if value is None:
        return None
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def micros_timedelta(value: int | None) -> timedelta | None:
    """The timedelta `timedelta_micros` wrote."""
    return None if value is None else timedelta(microseconds=value)


_SIMPLE = (str, int, bool, type(None))
_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    # A value of an event or order field as JSON of plain types.
    if type(value) in _SIMPLE:
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Order):
        return {"$order": order_plain(value)}
    if isinstance(value, Eta):
        return {"$eta": [_plain(getattr(value, f.name)) for f in attrs.fields(Eta)]}
    raise TypeError(f"cannot store a {type(value).__name__}: {value!r}")  # pragma: no cover


def _value(plain: Any) -> Any:
    if plain is None or isinstance(plain, (str, int)):
        return plain
    if isinstance(plain, dict) and len(plain) == 1:
        ((tag, inner),) = plain.items()
        if tag == "$dt":
            return datetime.fromisoformat(inner)
        if tag == "$date":
            return date.fromisoformat(inner)
        if tag == "$order":
            return plain_order(inner)
        if tag == "$eta":
            return Eta(*(_value(item) for item in inner))
    raise ValueError(f"unreadable stored value {plain!r}")


def order_plain(order: Order) -> dict[str, Any]:
    """An order as a dict of plain JSON types."""
    return {
        "id": order.id,
        "lines": [[line.sku, line.quantity] for line in order.lines],
        "tier": order.tier,
        "ship_complete": order.ship_complete,
        "placed_at": _plain(order.placed_at),
        "metadata": dict(order.metadata),
        "fill_by": _plain(order.fill_by),
    }


def plain_order(plain: dict[str, Any]) -> Order:
    """The order `order_plain` wrote (validated again, as any `Order`)."""
    return Order(
        plain["id"],
        [OrderLine(sku, quantity) for sku, quantity in plain["lines"]],
        plain["tier"],
        plain["ship_complete"],
        _value(plain["placed_at"]),
        plain["metadata"],
        _value(plain["fill_by"]),
    )


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def order_text(order: Order) -> str:
    """An order as JSON text."""
    return _dumps(order_plain(order))


def text_order(text: str) -> Order:
    """The order `order_text` wrote.

    Raises:
        StorageCorrupted: the text is not an order this library wrote.
    """
    try:
        return plain_order(json.loads(text))
    except Exception as exc:
        raise StorageCorrupted(f"stored order {text[:200]!r} cannot be read: {exc}") from exc


def event_text(event: _events.Event) -> str:
    """An event as JSON text: its class name and its fields."""
    cls = type(event)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in attrs.fields(cls))
    fields = {name: _plain(getattr(event, name)) for name in names}
    return _dumps({"type": cls.__name__, "fields": fields})


def text_event(text: str) -> _events.Event:
    """The event `event_text` wrote.

    Raises:
        StorageCorrupted: the text is not an event this library wrote.
    """
    try:
        plain = json.loads(text)
        cls = _EVENT_TYPES[plain["type"]]
        return cls(**{name: _value(value) for name, value in plain["fields"].items()})
    except Exception as exc:
        raise StorageCorrupted(f"stored event {text[:200]!r} cannot be read: {exc}") from exc
