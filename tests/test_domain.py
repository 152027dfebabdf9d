"""Order and OrderLine validation at construction."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backorder import (
    MAX_QUANTITY,
    ArgumentTypeError,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    Order,
    OrderLine,
    OrderTypeError,
    QuantityTypeError,
)
from backorder.domain import (
    MAX_DURATION,
    MAX_TIMEOUT,
    add_duration,
    check_delta,
    check_duration,
    check_quantity,
    check_text,
    check_timeout,
    same_instant,
)


def test_a_good_line_and_order() -> None:
    line = OrderLine("MUG", MAX_QUANTITY)
    order = Order("A-1", [line], tier="vip", ship_complete=True, metadata={"k": "v"})
    assert order.lines == (line,)
    assert order.metadata == {"k": "v"}
    assert order.placed_at is None
    assert hash(order) == hash(Order("A-1", (line,), "vip", True, metadata={"k": "v"}))


@pytest.mark.parametrize(
    ("sku", "quantity", "error", "words"),
    [
        ("", 1, InvalidOrder, ["OrderLine.sku", "''"]),
        ("  ", 1, InvalidOrder, ["OrderLine.sku"]),
        (3, 1, OrderTypeError, ["OrderLine.sku", "3"]),
        ("MUG", 0, InvalidOrder, ["OrderLine.quantity", "0"]),
        ("MUG", -5, InvalidOrder, ["-5"]),
        ("MUG", MAX_QUANTITY + 1, InvalidOrder, [str(MAX_QUANTITY + 1)]),
        ("MUG", True, OrderTypeError, ["bool", "True"]),
        ("MUG", 2.0, OrderTypeError, ["float", "2.0"]),
        ("MUG", "2", OrderTypeError, ["str"]),
    ],
)
def test_a_bad_line_is_refused(
    sku: Any, quantity: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        OrderLine(sku, quantity)
    for word in words:
        assert word in str(caught.value)


def test_order_type_errors_are_type_errors() -> None:
    with pytest.raises(TypeError):
        OrderLine("MUG", 1.5)  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ValueError, match="quantity"):
        OrderLine("MUG", 0)


LINE = OrderLine("MUG", 1)


@pytest.mark.parametrize(
    ("fields", "error", "words"),
    [
        ({"id": "", "lines": [LINE]}, InvalidOrder, ["Order.id"]),
        ({"id": None, "lines": [LINE]}, OrderTypeError, ["Order.id", "None"]),
        ({"id": "A", "lines": []}, InvalidOrder, ["Order.lines", "at least one"]),
        ({"id": "A", "lines": [LINE, OrderLine("MUG", 2)]}, InvalidOrder, ["MUG", "twice"]),
        ({"id": "A", "lines": ["MUG"]}, OrderTypeError, ["OrderLine", "'MUG'"]),
        ({"id": "A", "lines": LINE}, OrderTypeError, ["Order.lines"]),
        ({"id": "A", "lines": "MUG"}, OrderTypeError, ["Order.lines"]),
        ({"id": "A", "lines": [LINE], "tier": ""}, InvalidOrder, ["Order.tier"]),
        ({"id": "A", "lines": [LINE], "ship_complete": 1}, OrderTypeError, ["ship_complete", "1"]),
        (
            {"id": "A", "lines": [LINE], "placed_at": datetime(2026, 1, 1)},
            InvalidOrder,
            ["placed_at", "timezone-aware"],
        ),
        ({"id": "A", "lines": [LINE], "placed_at": "2026-01-01"}, OrderTypeError, ["placed_at"]),
        ({"id": "A", "lines": [LINE], "metadata": {"k": 1}}, OrderTypeError, ["metadata", "'k'"]),
        ({"id": "A", "lines": [LINE], "metadata": ["k"]}, OrderTypeError, ["metadata"]),
    ],
)
def test_a_bad_order_is_refused(
    fields: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        Order(**fields)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_an_order_is_immutable_and_its_metadata_is_copied() -> None:
    metadata = {"email": "a@example.com"}
    order = Order("A", [LINE], metadata=metadata)
    metadata["email"] = "changed"
    assert order.metadata["email"] == "a@example.com"
    with pytest.raises(TypeError):
        order.metadata["email"] = "x"  # type: ignore[index]  # read-only is the point
    with pytest.raises(AttributeError):
        order.id = "B"  # type: ignore[misc]  # frozen is the point


def test_same_request_matches_a_retry_without_placed_at() -> None:
    at = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    stored = Order("A", [LINE], placed_at=at)
    assert stored.same_request(Order("A", [LINE]))
    assert stored.same_request(Order("A", [LINE], placed_at=at.astimezone(timezone.utc)))
    assert not stored.same_request(Order("A", [LINE], placed_at=at + timedelta(seconds=1)))
    assert not stored.same_request(Order("A", [LINE], tier="vip"))
    assert not stored.same_request(Order("A", [LINE], metadata={"a": "b"}))


def test_orders_pickle_and_copy() -> None:
    import copy
    import pickle

    order = Order("A", [LINE], tier="vip", metadata={"k": "v"}, fill_by=datetime(2027, 1, 1).date())
    assert pickle.loads(pickle.dumps(order)) == order
    assert copy.deepcopy(order) == order
    assert copy.deepcopy(order).metadata["k"] == "v"


UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


class Units(IntEnum):
    THREE = 3


class Liar(int):
    """An int that says it is never out of range and adds up to anything."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __radd__(self, other: object) -> int:
        return 1


def test_an_int_subclass_quantity_is_stored_as_its_plain_int() -> None:
    line = OrderLine("MUG", Units.THREE)
    assert type(line.quantity) is int
    assert line == OrderLine("MUG", 3)
    assert type(check_quantity(Units.THREE, "quantity")) is int
    assert type(check_delta(Units.THREE, "delta")) is int


@pytest.mark.parametrize("check", [check_quantity, check_delta])
def test_an_int_subclass_cannot_lie_its_way_past_the_range(check: Any) -> None:
    with pytest.raises(InvalidQuantity, match="quantity"):
        check(Liar(0), "quantity")
    with pytest.raises(InvalidQuantity):
        check(Liar(2**64), "quantity")
    with pytest.raises(InvalidOrder):
        OrderLine("MUG", Liar(0))


def test_bool_is_still_not_a_quantity() -> None:
    with pytest.raises(QuantityTypeError):
        check_quantity(True, "quantity")
    with pytest.raises(QuantityTypeError):
        check_delta(False, "delta")


BAD_TEXT = [
    ("\ud800", "surrogate"),
    ("MUG\x00", "NUL"),
    ("\x00", "NUL"),
    ("a\udfff b", "surrogate"),
]


@pytest.mark.parametrize(("text", "word"), BAD_TEXT)
@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda text: Order(text, [LINE]), "Order.id"),
        (lambda text: OrderLine(text, 1), "OrderLine.sku"),
        (lambda text: Order("A", [LINE], tier=text), "Order.tier"),
        (lambda text: Order("A", [LINE], metadata={text: "v"}), "Order.metadata key"),
        (lambda text: Order("A", [LINE], metadata={"k": text}), "Order.metadata['k']"),
    ],
    ids=["id", "sku", "tier", "metadata-key", "metadata-value"],
)
def test_text_no_store_can_hold_is_refused_everywhere(
    build: Any, field: str, text: str, word: str
) -> None:
    with pytest.raises(InvalidOrder) as caught:
        build(text)
    assert field in str(caught.value)
    assert word in str(caught.value)


@pytest.mark.parametrize(("text", "word"), BAD_TEXT)
def test_check_text_refuses_nul_and_lone_surrogates(text: str, word: str) -> None:
    with pytest.raises(InvalidArgument, match=word):
        check_text(text, "reference")
    with pytest.raises(InvalidArgument, match=word):
        check_text(text, "reason", allow_empty=True)


def test_good_text_is_kept_and_a_str_subclass_becomes_a_str() -> None:
    class Tag(str):
        pass

    assert check_text("Bücher 📚", "sku") == "Bücher 📚"
    assert type(check_text(Tag("MUG"), "sku")) is str
    assert check_text("", "reason", allow_empty=True) == ""
    order = Order(Tag("A"), [OrderLine(Tag("MUG"), 1)], tier=Tag("vip"), metadata={"": ""})
    assert type(order.id) is str
    assert type(order.lines[0].sku) is str
    assert type(order.tier) is str
    assert order.metadata == {"": ""}


def test_the_last_date_is_refused_as_a_fill_by() -> None:
    with pytest.raises(InvalidOrder) as caught:
        Order("A", [LINE], fill_by=date(9999, 12, 31))
    assert "Order.fill_by" in str(caught.value)
    assert "9999" in str(caught.value)
    order = Order("A", [LINE], fill_by=date(9999, 12, 30))
    assert order.deadline == datetime(9999, 12, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    ],
)
@pytest.mark.parametrize("field", ["placed_at", "fill_by"])
def test_a_time_with_no_utc_form_is_refused(moment: datetime, field: str) -> None:
    fields: dict[str, Any] = {field: moment}
    with pytest.raises(InvalidOrder, match=f"Order.{field}"):
        Order("A", [LINE], **fields)


@pytest.mark.parametrize("value", [0, 0.0, 1, 2.5, MAX_TIMEOUT, int(MAX_TIMEOUT)])
def test_check_timeout_accepts_finite_seconds(value: float) -> None:
    assert check_timeout(value, "timeout") == value
    assert type(check_timeout(value, "timeout")) is float


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, InvalidArgument),
        (math.inf, InvalidArgument),
        (-math.inf, InvalidArgument),
        (-0.5, InvalidArgument),
        (MAX_TIMEOUT + 1, InvalidArgument),
        (10**400, InvalidArgument),
        (True, ArgumentTypeError),
        ("30", ArgumentTypeError),
        (None, ArgumentTypeError),
        (timedelta(seconds=3), ArgumentTypeError),
    ],
)
def test_check_timeout_refuses_what_is_not_a_finite_number_of_seconds(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="timeout"):
        check_timeout(value, "timeout")


def test_check_duration() -> None:
    assert check_duration(timedelta(minutes=15), "ttl") == timedelta(minutes=15)
    assert check_duration(MAX_DURATION, "ttl") == MAX_DURATION
    assert timedelta(days=36_525) == MAX_DURATION

    class Span(timedelta):
        pass

    assert type(check_duration(Span(days=1), "ttl")) is timedelta
    for bad in (timedelta(0), -timedelta(seconds=1), timedelta.max, MAX_DURATION + timedelta(1)):
        with pytest.raises(InvalidArgument, match="ttl"):
            check_duration(bad, "ttl")
    with pytest.raises(ArgumentTypeError, match="ttl"):
        check_duration(900, "ttl")


def test_every_accepted_duration_can_be_added_to_a_clock_before_9899() -> None:
    late = datetime(9898, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-23)))
    assert add_duration(late, MAX_DURATION, "lead_time") > late


def test_add_duration_adds_elapsed_time_across_dst() -> None:
    # 02:50, the first time round in the October fold: 15 real minutes later
    # is 02:05 the second time round.
    start = datetime(2026, 10, 25, 2, 50, tzinfo=BERLIN)
    end = add_duration(start, timedelta(minutes=15), "ttl")
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=15)
    assert (end.hour, end.minute, end.fold, end.tzinfo) == (2, 5, 1, BERLIN)
    spring = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    next_day = add_duration(spring, timedelta(days=1), "lead_time")
    assert next_day.astimezone(UTC) - spring.astimezone(UTC) == timedelta(hours=24)
    assert next_day.hour == 13  # the clocks went forward


def test_add_duration_past_the_last_datetime_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="lead_time"):
        add_duration(datetime(9999, 12, 31, tzinfo=UTC), timedelta(days=1), "lead_time")


def test_same_instant_compares_utc_times_whatever_the_zone() -> None:
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    second = first.replace(fold=1)
    assert first == second  # Python compares wall times within one zone...
    assert not same_instant(first, second)  # ...but they are an hour apart
    assert same_instant(second, second.astimezone(UTC))
    assert second != second.astimezone(UTC)  # Python calls a fold time unequal across zones
    assert same_instant(None, None)
    assert not same_instant(first, None)


def test_orders_compare_their_times_as_instants() -> None:
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)
    second = first.replace(fold=1)
    in_utc = Order("A", [LINE], placed_at=second.astimezone(UTC), fill_by=second)
    zoned = Order("A", [LINE], placed_at=second, fill_by=second.astimezone(UTC))
    assert zoned == in_utc
    assert hash(zoned) == hash(in_utc)
    assert zoned != Order("A", [LINE], placed_at=first, fill_by=second)
    assert Order("A", [LINE], fill_by=date(2026, 1, 1)) != Order(
        "A", [LINE], fill_by=datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert zoned.same_request(in_utc)
    assert in_utc.same_request(zoned)
    assert not zoned.same_request(Order("A", [LINE], placed_at=first))
