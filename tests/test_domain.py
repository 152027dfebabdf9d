"""Order and OrderLine validation at construction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from backorder import MAX_QUANTITY, InvalidOrder, Order, OrderLine, OrderTypeError


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
