"""Time text, the public event codec, and the stored forms of orders and events.

Runs on every supported Python (3.10's `fromisoformat` refuses `Z`; the
library's own parser does not).
"""

from __future__ import annotations

import doctest
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backorder import (
    MAX_QUANTITY,
    ArgumentTypeError,
    BackorderBook,
    Eta,
    Event,
    InvalidArgument,
    InvalidEvent,
    LineAllocated,
    LineBackordered,
    Order,
    OrderLine,
    OrderPlaced,
    StockReceived,
    StorageCorrupted,
    codec,
    event_from_dict,
    event_to_dict,
    events,
)
from backorder._codec import parse_date, parse_time, zoned_text
from backorder._stored import (
    _PLAIN_WRITERS,
    EVENT_CODES,
    _event_text,
    event_text,
    order_text,
    text_event,
    text_order,
)
from backorder.eta import BASES

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

# --- parse_time: one parser, the same on every Python ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T09:00:00Z", AT),
        ("2026-01-05T09:00:00z", AT),
        ("2026-01-05T09:00:00.000Z", AT),  # JavaScript's toISOString()
        ("2026-01-05T09:00Z", AT),
        ("2026-01-05 09:00:00+00:00", AT),
        ("2026-01-05T10:00:00+01:00", AT),
        ("2026-01-05T10:00:00+0100", AT),
        ("2026-01-05T04:00:00-05:00", AT),
        ("2026-01-05T09:00:00.5Z", AT.replace(microsecond=500_000)),
        ("2026-01-05T09:00:00.123456789Z", AT.replace(microsecond=123_456)),
        ("2026-01-05T09:00:00,25+00:00", AT.replace(microsecond=250_000)),
        ("2026-01-05T14:30:07.000001+05:30:07", AT.replace(microsecond=1)),
    ],
)
def test_parse_time_reads_z_and_offsets(text: str, expected: datetime) -> None:
    moment = parse_time(text, "at")
    assert moment == expected
    assert moment.utcoffset() is not None


def test_z_is_utc_itself() -> None:
    assert parse_time("2026-01-05T09:00:00Z", "at").tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-01-05T09:00:00", ["at", "UTC offset"]),
        ("2026-01-05", ["at", "ISO 8601"]),
        ("", ["at"]),
        ("2026-02-30T09:00:00Z", ["at", "possible"]),
        ("2026-01-05T24:00:00Z", ["at", "possible"]),
        ("2026-01-05T09:00:00+24:00", ["at", "possible"]),
        ("٢٠٢٦-01-05T09:00:00Z", ["at"]),  # only ASCII digits are numbers
        ("2026-01-05T09:00:00Z ", ["at"]),
        ("2026-01-05T09:00:00+01:00[Mars/Olympus]", ["at", "zone"]),
        ("2026-01-05T09:00:00+05:00[Europe/Berlin]", ["at", "Europe/Berlin"]),
        ("2026-01-05T09:00:00+01:00[../../etc/passwd]", ["at"]),
    ],
)
def test_parse_time_refuses_what_is_not_an_aware_time(text: str, words: list[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_time(text, "at")
    for word in words:
        assert word in str(caught.value)


def test_parse_time_refuses_a_non_text() -> None:
    with pytest.raises(ArgumentTypeError, match="at"):
        parse_time(20260105, "at")


def test_parse_date() -> None:
    assert parse_date("2026-02-01", "fill_by") == date(2026, 2, 1)
    for bad in ("2026-2-1", "2026-02-30", "٢٠٢٦-02-01", "2026-02-01T00:00Z"):
        with pytest.raises(InvalidArgument, match="fill_by"):
            parse_date(bad, "fill_by")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN),  # first 02:30 of the fold (+02:00)
        datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1),  # the second (+01:00)
        datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN),  # in the spring gap
        datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN, fold=1),
        datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Australia/Lord_Howe")),
        datetime(2026, 1, 5, 9, 0, 0, 7, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    ],
    ids=["fold-first", "fold-second", "gap", "gap-fold", "lord-howe", "fixed"],
)
def test_a_zoned_time_reads_back_exactly(moment: datetime) -> None:
    text = zoned_text(moment)
    back = parse_time(text, "at")
    assert back == moment
    assert back.utcoffset() == moment.utcoffset()
    assert (back.year, back.hour, back.minute, back.microsecond) == (
        moment.year,
        moment.hour,
        moment.minute,
        moment.microsecond,
    )
    assert back.tzinfo == moment.tzinfo


def test_the_two_times_of_a_fold_are_written_apart() -> None:
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    second = first.replace(fold=1)
    assert zoned_text(first) == "2026-10-25T02:30:00+02:00[Europe/Berlin]"
    assert zoned_text(second) == "2026-10-25T02:30:00+01:00[Europe/Berlin]"


# --- the public event codec ---

_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1
).filter(lambda text: bool(text.strip()))
_ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
_ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-8)),
        timezone(timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999)),
        BERLIN,
        ZoneInfo("America/New_York"),
        ZoneInfo("Australia/Lord_Howe"),
        ZoneInfo("UTC"),
    ]
)


@st.composite
def _times(draw: st.DrawFn) -> datetime:
    moment = draw(
        st.datetimes(
            min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_ZONES
        )
    )
    return moment.replace(fold=draw(st.integers(0, 1)))


_QUANTITIES = st.integers(1, MAX_QUANTITY)


@st.composite
def _orders(draw: st.DrawFn) -> Order:
    skus = draw(st.lists(_TEXT, min_size=1, max_size=3, unique=True))
    return Order(
        draw(_TEXT),
        [OrderLine(sku, draw(_QUANTITIES)) for sku in skus],
        draw(_TEXT),
        draw(st.booleans()),
        draw(st.none() | _times()),
        draw(st.dictionaries(_ANY_TEXT, _ANY_TEXT, max_size=3)),
        draw(st.none() | _times() | st.dates(max_value=date(9999, 12, 30))),
    )


_BASES = st.sampled_from(BASES)
_ETAS = st.builds(Eta, st.none() | _times(), _BASES, st.none() | _times(), st.none() | _BASES)

_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": _TEXT,
    "str | None": st.none() | _TEXT,
    "bool": st.booleans(),
    "datetime": _times(),
    "Order": _orders(),
    "Eta": _ETAS,
    "Eta | None": st.none() | _ETAS,
}
_BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "quantity": _QUANTITIES,
    "position": _QUANTITIES,
    "delta": st.integers(-MAX_QUANTITY, MAX_QUANTITY).filter(bool),
}
EVENT_CLASSES = [getattr(events, name) for name in events.__all__ if name != "Event"]


def _events_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    fields = {
        field.name: _BY_NAME[field.name] if field.name in _BY_NAME else _BY_TYPE[str(field.type)]
        for field in attrs.fields(cls)
    }
    return st.builds(cls, **fields)


def _times_in(value: object) -> list[datetime]:
    # Every datetime inside an event, to compare offsets as well as instants.
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, (Event, Eta, Order)):
        found = []
        for field in attrs.fields(type(value)):
            found.extend(_times_in(getattr(value, field.name)))
        return found
    return []


def test_every_event_class_is_covered() -> None:
    assert {cls.__name__ for cls in EVENT_CLASSES} == set(events.__all__) - {"Event"}
    assert len(EVENT_CLASSES) >= 17


@pytest.mark.property
@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_every_event_round_trips_exactly_through_json(cls: type[Event]) -> None:
    @given(_events_of(cls))
    def round_trip(event: Event) -> None:
        data = event_to_dict(event)
        assert data["type"] == cls.__name__
        text = json.dumps(data)
        back = event_from_dict(json.loads(text))
        assert type(back) is cls
        assert back == event
        assert [(t.utcoffset(), t.tzinfo) for t in _times_in(back)] == [
            (t.utcoffset(), t.tzinfo) for t in _times_in(event)
        ]
        assert event_to_dict(back) == data
        assert text_event(json.dumps(data)) == event  # rows stored in the public form
        stored = event_text(event)  # the compact form the outbox stores now
        # (the writer made for the class, when it takes the values: as the field loop writes)
        assert stored == _event_text(event)
        plain = _PLAIN_WRITERS.get(cls)
        assert plain is None or plain(event) in (None, stored)
        # (but for an OrderPlaced of an order with another id: the public form)
        odd = isinstance(event, OrderPlaced) and event.order.id != event.order_id
        assert stored.startswith("{" if odd else "[")
        again = text_event(stored)
        assert type(again) is cls
        assert again == event
        assert event_to_dict(again) == data
        assert [(t.utcoffset(), t.tzinfo) for t in _times_in(again)] == [
            (t.utcoffset(), t.tzinfo) for t in _times_in(event)
        ]

    round_trip()


# Values as the book's own events hold them (an ASCII name, a UTC time, an
# ETA that says nothing: what the writer made for each class takes), and
# mixed with any other (what it leaves to the field loop).
_PLAIN_NAMES = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1).filter(
    lambda text: not text.isspace()
)
_PLAIN_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
_PLAIN_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": _PLAIN_NAMES,
    "bool": st.booleans(),
    "datetime": _PLAIN_TIMES,
    "Eta": st.just(Eta(None, "unknown")) | st.just(Eta(None, "unknown", None, "unknown")),
}
_OTHER_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": _TEXT,
    "bool": st.booleans(),
    "datetime": _times(),
    "Eta": _ETAS,
}


def _plain_events_of(cls: type[Event], mixed: bool) -> st.SearchStrategy[Event]:
    fields = {}
    for field in attrs.fields(cls):
        kind = str(field.type)
        base = kind.removesuffix(" | None")
        if field.name in _BY_NAME:
            value = _BY_NAME[field.name]
        else:
            value = _PLAIN_BY_TYPE[base] | _OTHER_BY_TYPE[base] if mixed else _PLAIN_BY_TYPE[base]
        fields[field.name] = st.none() | value if kind.endswith(" | None") else value
    return st.builds(cls, **fields)


def _is_plain(value: object) -> bool:
    # What the writer made for a class takes (see `_stored._PLAIN_KINDS`).
    if type(value) is str:
        return bool(value) and value.isascii() and not value.isspace() and "\x00" not in value
    if type(value) is datetime:
        return value.tzinfo is UTC
    if type(value) is Eta:
        return (value.at, value.first_unit_at, value.basis) == (None, None, "unknown") and (
            value.first_unit_basis in ("unknown", None)
        )
    return type(value) in (int, bool) or value is None


_WRITTEN = [cls for cls in EVENT_CLASSES if cls in _PLAIN_WRITERS]


@pytest.mark.property
@pytest.mark.parametrize("cls", _WRITTEN, ids=lambda cls: cls.__name__)
def test_the_writer_made_for_a_class_writes_every_plain_event(cls: type[Event]) -> None:
    write = _PLAIN_WRITERS[cls]

    @given(_plain_events_of(cls, mixed=False))
    def same(event: Event) -> None:
        text = write(event)
        assert text is not None
        assert text == _event_text(event) == event_text(event)
        assert text_event(text) == event

    same()


@pytest.mark.property
@pytest.mark.parametrize("cls", _WRITTEN, ids=lambda cls: cls.__name__)
def test_the_writer_made_for_a_class_leaves_other_values_to_the_field_loop(
    cls: type[Event],
) -> None:
    write = _PLAIN_WRITERS[cls]

    @given(_plain_events_of(cls, mixed=True))
    def same(event: Event) -> None:
        text = write(event)
        values = [getattr(event, field.name) for field in attrs.fields(cls)]
        assert (text is not None) == all(map(_is_plain, values))  # exactly the plain values
        assert text is None or text == _event_text(event)
        assert event_text(event) == _event_text(event)
        assert text_event(event_text(event)) == event

    same()


def test_every_event_class_has_its_own_stored_code_for_good() -> None:
    # Stored rows hold these numbers: none may change, none be given twice.
    assert EVENT_CODES == {
        **{"OrderPlaced": 1, "LineAllocated": 2, "LineBackordered": 3, "LineReleased": 4},
        **{"LineFirmed": 5, "LineCancelled": 6, "OrderCancelled": 7, "LineShipped": 8},
        **{"StockReceived": 9, "StockReturned": 10, "StockAdjusted": 11, "OrderExpired": 12},
        **{"StockHeld": 13, "HoldReleased": 14, "HoldConfirmed": 15, "TierChanged": 16},
        **{"PolicyChanged": 17, "SupplyExpected": 18, "SupplyCancelled": 19, "EtaChanged": 20},
    }
    assert set(EVENT_CODES) == {cls.__name__ for cls in EVENT_CLASSES}


def test_the_stored_form_is_compact() -> None:
    order = Order("A-1", [OrderLine("MUG", 2)], placed_at=AT)
    assert order_text(order) == f'[{int(AT.timestamp()) * 1_000_000},"MUG",2]'
    placed = event_text(OrderPlaced("A-1", order, AT))  # placed when it was placed
    assert placed == f'[-1,"A-1",{order_text(order)[1:]}'
    assert text_event(placed) == OrderPlaced("A-1", order, AT)
    later = AT + timedelta(seconds=1)
    placed = event_text(OrderPlaced("A-1", order, later))
    assert placed == f'[1,"A-1",{int(later.timestamp()) * 1_000_000},{order_text(order)[1:]}'
    assert text_event(placed) == OrderPlaced("A-1", order, later)
    # an order whose id is not the event's is stored in the public form
    other = OrderPlaced("B-1", order, AT)
    assert event_text(other).startswith("{")
    assert text_event(event_text(other)) == other
    assert (
        len(
            event_text(
                LineBackordered("A-1", "MUG", 2, 1, AT, Eta(None, "unknown", None, "unknown"))
            )
        )
        < 50
    )


def test_the_dict_is_plain_json() -> None:
    order = Order(
        "A-1",
        [OrderLine("MUG", 2)],
        placed_at=datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1),
        metadata={"channel": "web"},
        fill_by=date(2026, 11, 1),
    )
    assert event_to_dict(OrderPlaced("A-1", order, AT)) == {
        "type": "OrderPlaced",
        "order_id": "A-1",
        "order": {
            "id": "A-1",
            "lines": [{"sku": "MUG", "quantity": 2}],
            "tier": "standard",
            "ship_complete": False,
            "placed_at": "2026-10-25T02:30:00+01:00[Europe/Berlin]",
            "metadata": {"channel": "web"},
            "fill_by": "2026-11-01",
        },
        "at": "2026-01-05T09:00:00+00:00",
    }
    eta = Eta(AT, "scheduled", None, None)
    assert event_to_dict(LineBackordered("A-1", "MUG", 2, 1, AT, eta))["eta"] == {
        "at": "2026-01-05T09:00:00+00:00",
        "basis": "scheduled",
        "first_unit_at": None,
        "first_unit_basis": None,
    }


def test_times_ending_in_z_are_read_as_utc() -> None:
    event = event_from_dict(
        {
            "type": "StockReceived",
            "sku": "MUG",
            "quantity": 5,
            "reference": None,
            "at": "2026-01-05T09:00:00.000Z",
        }
    )
    assert event == StockReceived("MUG", 5, None, AT)


def test_a_field_with_a_default_may_be_left_out() -> None:
    data = {
        "type": "LineBackordered",
        "order_id": "A",
        "sku": "M",
        "quantity": 1,
        "position": 1,
        "at": "2026-01-05T09:00:00Z",
    }
    assert event_from_dict(data) == LineBackordered("A", "M", 1, 1, AT)


_GOOD: dict[str, Any] = {
    "type": "LineAllocated",
    "order_id": "A-1",
    "sku": "MUG",
    "quantity": 2,
    "at": "2026-01-05T09:00:00+00:00",
}
_ORDER: dict[str, Any] = {
    "type": "OrderPlaced",
    "order_id": "A-1",
    "order": {"id": "A-1", "lines": [{"sku": "MUG", "quantity": 2}]},
    "at": "2026-01-05T09:00:00+00:00",
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = dict(base)
    data.update(changes)
    return data


def _order_with(**changes: Any) -> dict[str, Any]:
    return _with(_ORDER, order={**_ORDER["order"], **changes})


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], ["event", "dict", "list"]),
        ("LineAllocated", ["event", "dict"]),
        ({}, ["type", "None"]),
        (_with(_GOOD, type="LineEaten"), ["type", "LineEaten", "LineAllocated"]),
        (_with(_GOOD, type=["LineAllocated"]), ["type"]),
        (_with(_GOOD, type="Event"), ["type", "Event"]),
        (_with(_GOOD, colour="red"), ["LineAllocated", "colour"]),
        ({k: v for k, v in _GOOD.items() if k != "sku"}, ["LineAllocated.sku", "missing"]),
        (_with(_GOOD, sku=5), ["LineAllocated.sku", "5"]),
        (_with(_GOOD, sku=""), ["LineAllocated.sku"]),
        (_with(_GOOD, sku="\ud800"), ["LineAllocated.sku", "surrogate"]),
        (_with(_GOOD, sku="M\x00G"), ["LineAllocated.sku", "NUL"]),
        (_with(_GOOD, quantity="2"), ["LineAllocated.quantity", "'2'"]),
        (_with(_GOOD, quantity=2.0), ["LineAllocated.quantity", "2.0"]),
        (_with(_GOOD, quantity=True), ["LineAllocated.quantity", "True"]),
        (_with(_GOOD, quantity=-1), ["LineAllocated.quantity", "-1"]),
        (_with(_GOOD, quantity=2**63), ["LineAllocated.quantity", str(2**63)]),
        (_with(_GOOD, at="2026-01-05T09:00:00"), ["LineAllocated.at", "UTC offset"]),
        (_with(_GOOD, at="yesterday"), ["LineAllocated.at", "yesterday"]),
        (_with(_GOOD, at=1767600000), ["LineAllocated.at", "1767600000"]),
        (_with(_GOOD, at="0001-01-01T00:00:00+05:00"), ["LineAllocated.at", "UTC"]),
        (_with(_ORDER, order="A-1"), ["OrderPlaced.order", "object"]),
        (_order_with(lines="MUG"), ["OrderPlaced.order.lines", "list"]),
        (_order_with(lines=[]), ["OrderPlaced.order", "at least one"]),
        (_order_with(lines=[["MUG", 2]]), ["OrderPlaced.order.lines[0]", "object"]),
        (_order_with(lines=[{"sku": "MUG"}]), ["OrderPlaced.order.lines[0].quantity", "missing"]),
        (_order_with(lines=[{"sku": "MUG", "quantity": 0}]), ["order.lines[0]", "quantity"]),
        (_order_with(colour="red"), ["OrderPlaced.order", "colour"]),
        (_order_with(metadata=[]), ["OrderPlaced.order.metadata", "object"]),
        (_order_with(metadata={"k": 1}), ["OrderPlaced.order", "metadata"]),
        (_order_with(placed_at="2026-01-05"), ["OrderPlaced.order.placed_at"]),
        (_order_with(fill_by="2026-02-30"), ["OrderPlaced.order.fill_by", "2026-02-30"]),
        (_order_with(fill_by="9999-12-31"), ["OrderPlaced.order", "fill_by", "9999-12-31"]),
        (_order_with(ship_complete="yes"), ["OrderPlaced.order", "ship_complete"]),
        (
            {
                "type": "EtaChanged",
                "order_id": "A",
                "sku": "M",
                "at": "2026-01-05T09:00:00Z",
                "old": {"at": None, "basis": "guess"},
                "new": {"at": None, "basis": "unknown"},
            },
            ["EtaChanged.old.basis", "guess"],
        ),
        (
            {
                "type": "EtaChanged",
                "order_id": "A",
                "sku": "M",
                "at": "2026-01-05T09:00:00Z",
                "old": {"basis": "unknown"},
                "new": {"at": None, "basis": "unknown"},
            },
            ["EtaChanged.old.at", "missing"],
        ),
    ],
)
def test_data_that_is_not_an_event_is_refused_naming_the_field(data: Any, words: list[str]) -> None:
    with pytest.raises(InvalidEvent) as caught:
        event_from_dict(data)
    assert caught.value.http_status == 400
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_only_events_of_the_library_are_encoded() -> None:
    with pytest.raises(ArgumentTypeError, match="event"):
        event_to_dict("OrderPlaced")  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(InvalidEvent, match=r"LineAllocated\.at"):
        event_to_dict(LineAllocated("A", "M", 1, datetime(2026, 1, 5)))
    with pytest.raises(InvalidEvent, match=r"LineAllocated\.quantity"):
        event_to_dict(LineAllocated("A", "M", 1.5, AT))  # type: ignore[arg-type]  # the point


def test_an_int_subclass_is_written_as_a_plain_int() -> None:
    from enum import IntEnum

    class Units(IntEnum):
        TWO = 2

    data = event_to_dict(LineAllocated("A", "M", Units.TWO, AT))
    assert type(data["quantity"]) is int
    assert json.dumps(data)


def test_the_module_examples_run() -> None:
    from backorder import _codec

    for module in (codec, _codec):
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert (failures, tried > 0) == (0, True)


# --- stored forms: rows an earlier version wrote are still read ---

OLD_EVENTS = [
    '{"type":"OrderPlaced","fields":{"order_id":"A-1","order":{"$order":{"id":"A-1","lines":'
    '[["MUG",2],["CUP",1]],"tier":"vip","ship_complete":true,"placed_at":{"$dt":'
    '"2026-01-05T10:00:00.250000+01:00"},"metadata":{"k":"v"},"fill_by":{"$date":"2026-02-01"}}},'
    '"at":{"$dt":"2026-01-05T09:00:00+00:00"}}}',
    '{"type":"LineBackordered","fields":{"order_id":"A-1","sku":"CUP","quantity":1,"position":3,'
    '"at":{"$dt":"2026-01-05T09:00:00+00:00"},"eta":{"$eta":[{"$dt":"2026-02-01T00:00:00+00:00"},'
    '"scheduled",{"$dt":"2026-01-05T09:00:00+00:00"},"lead_time"]}}}',
    '{"type":"EtaChanged","fields":{"order_id":"A-1","sku":"CUP","old":{"$eta":[null,"unknown",'
    'null,null]},"new":{"$eta":[{"$dt":"2026-01-05T09:00:00+00:00"},"lead_time",null,null]},'
    '"at":{"$dt":"2026-01-05T09:00:00+00:00"}}}',
    '{"type":"StockReceived","fields":{"sku":"MUG","quantity":5,"reference":null,'
    '"at":{"$dt":"2026-01-05T09:00:00+00:00"}}}',
    '{"type":"StockAdjusted","fields":{"sku":"MUG","delta":-2,"reason":"count",'
    '"at":{"$dt":"2026-01-05T09:00:00+00:00"}}}',
]
OLD_ORDERS = [
    '{"id":"A-1","lines":[["MUG",2],["CUP",1]],"tier":"vip","ship_complete":true,"placed_at":'
    '{"$dt":"2026-01-05T10:00:00.250000+01:00"},"metadata":{"k":"v"},"fill_by":'
    '{"$date":"2026-02-01"}}',
    '{"id":"B-1","lines":[["MUG",1]],"tier":"standard","ship_complete":false,"placed_at":null,'
    '"metadata":{},"fill_by":{"$dt":"2026-03-01T12:00:00+00:00"}}',
]


def test_events_stored_by_the_earlier_version_are_read() -> None:
    read = [text_event(text) for text in OLD_EVENTS]
    placed = read[0]
    assert isinstance(placed, OrderPlaced)
    assert placed.order.placed_at == datetime(2026, 1, 5, 9, 0, 0, 250_000, tzinfo=UTC)
    assert placed.order.fill_by == date(2026, 2, 1)
    assert placed.order.metadata == {"k": "v"}
    assert read[3] == StockReceived("MUG", 5, None, AT)
    for event in read:  # and each is written in the public form now
        assert text_event(json.dumps(event_to_dict(event))) == event


def test_orders_stored_by_the_earlier_version_are_read() -> None:
    first, second = (text_order(text, "") for text in OLD_ORDERS)  # their ids inside
    assert first.lines == (OrderLine("MUG", 2), OrderLine("CUP", 1))
    assert (first.tier, first.ship_complete) == ("vip", True)
    assert second.fill_by == datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"type":"LineAllocated"}',
        '{"type":"StockReceived","sku":"MUG","quantity":5,"reference":null,"at":"garbage"}',
        '{"type":"StockReceived","fields":{"sku":"MUG","quantity":5,"at":{"$dt":"x"}}}',
        "[]",
        '["9"]',
        "[99]",
        '[9,"MUG",5,null]',
        '[9,"MUG",5,null,1,2]',
        '[9,"MUG",true,null,1]',
        '[9,"","5",null,1]',
        '[9,"MUG",5,null,99999999999999999999]',
        '[9,"MUG",5,null,"2026-01-01T00:00:00"]',
        '[3,"A","MUG",1,1,1,[1,"soon",null,null]]',
        '[3,"A","MUG",1,1,1,5]',
        '[1,"A-1",1,1,"MUG"]',
        '[-1,"A-1",null,"MUG",1]',
        '[-1,"A-1",1,"MUG"]',
        '[1,"A-1",1,1,"MUG",0]',
        '[1,"",1,1,"MUG",1]',
        '[1,"A-1",1,1,"MUG",1,{"q":1}]',
    ],
)
def test_unreadable_stored_events_are_storage_corrupted(text: str) -> None:
    with pytest.raises(StorageCorrupted, match="stored event"):
        text_event(text)


# --- DST: a retry matches across restarts whatever the zone (issue 12, item 8) ---


class BerlinClock:
    """Ticks a second at a time from the first 02:59:50 of the October fold."""

    def __init__(self, fold: int) -> None:
        self.now = datetime(2026, 10, 25, 2, 59, 50, tzinfo=BERLIN, fold=fold)

    def __call__(self) -> datetime:
        self.now = (self.now.astimezone(UTC) + timedelta(seconds=1)).astimezone(BERLIN)
        return self.now


@pytest.mark.parametrize("fold", [0, 1])
def test_a_retry_in_a_dst_fold_matches_after_reopening(tmp_path: Path, fold: int) -> None:
    path = tmp_path / "shop.db"
    placed_at = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=fold)
    order = Order("A-1", [OrderLine("MUG", 2)], placed_at=placed_at, fill_by=placed_at)
    with BackorderBook.open(path, clock=BerlinClock(fold)) as book:
        first = book.place(order)
        stamped = book.place(Order("A-2", [OrderLine("MUG", 1)])).order
    with BackorderBook.open(path, clock=BerlinClock(fold)) as book:
        again = book.place(order)
        assert again.replayed
        assert again.order == first.order
        assert again.order.placed_at is not None
        assert again.order.placed_at.utcoffset() == placed_at.utcoffset()
        # a retry sent in another zone, or with the clock's stamp, matches too
        assert book.place(Order("A-1", [OrderLine("MUG", 2)], placed_at=placed_at.astimezone(UTC),
                                fill_by=placed_at)).replayed  # fmt: skip
        assert book.place(Order("A-2", [OrderLine("MUG", 1)], placed_at=stamped.placed_at)).replayed
        assert book.status("A-2").order.placed_at == stamped.placed_at


def test_the_other_side_of_the_fold_is_another_instant(tmp_path: Path) -> None:
    from backorder import DuplicateOrder

    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    with BackorderBook.open(tmp_path / "shop.db", clock=BerlinClock(0)) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)], placed_at=first))
        with pytest.raises(DuplicateOrder):
            book.place(Order("A-1", [OrderLine("MUG", 2)], placed_at=first.replace(fold=1)))


def test_the_outbox_gives_back_zoned_events_equal_to_those_emitted(tmp_path: Path) -> None:
    with BackorderBook.open(tmp_path / "shop.db", clock=BerlinClock(1)) as book:
        emitted = list(book.place(Order("A-1", [OrderLine("MUG", 2)])).events)
        emitted += book.receive("MUG", 2, reference="GRN-1").events
        stored = [pending.event for pending in book.pending_events()]
    assert stored == emitted
    assert [t.utcoffset() for e in stored for t in _times_in(e)] == [
        t.utcoffset() for e in emitted for t in _times_in(e)
    ]
