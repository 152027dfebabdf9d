"""The shortcuts of the in-memory `place`: a result whose status is built on
first read, ETA upkeep that skips SKUs without dates, and the written-out
`Order`/`OrderLine` constructors. Each must be invisible to a user."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from backorder import (
    BackorderBook,
    EtaChanged,
    InvalidOrder,
    LineBackordered,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
    OrderTypeError,
    PartialFill,
    PlaceResult,
)

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _book() -> BackorderBook:
    return BackorderBook(clock=lambda: START)


def _line(order_id: str, sku: str, ordered: int, allocated: int) -> LineStatus:
    return LineStatus(order_id, sku, "standard", ordered, allocated, 0, 0, ordered - allocated)


def test_a_place_result_keeps_the_status_of_its_moment() -> None:
    book = _book()
    book.receive("MUG", 1)
    result = book.place(Order("A", [OrderLine("MUG", 3), OrderLine("CUP", 2)]))
    # the book moves on before the result is read
    book.receive("MUG", 5)
    book.receive("CUP", 2)
    book.ship("A")
    assert result.status.lines == (_line("A", "MUG", 3, 1), _line("A", "CUP", 2, 0))
    assert result.lines[0].backordered == 2
    assert result.order == book.status("A").order
    assert result.status is result.status  # built once
    assert not result.replayed


def test_an_unread_result_equals_hashes_and_pickles_as_a_built_one() -> None:
    book = _book()
    placed = [book.place(Order(f"O-{i}", [OrderLine("MUG", 2)])) for i in range(4)]
    status = OrderStatus(placed[0].events[0].order, (_line("O-0", "MUG", 2, 0),))  # type: ignore[attr-defined]
    built = PlaceResult(status, placed[0].events)
    # each result is used before anything reads its status
    assert pickle.loads(pickle.dumps(placed[1])) == PlaceResult(
        book.status("O-1"), placed[1].events
    )
    assert copy.deepcopy(placed[2]) == PlaceResult(book.status("O-2"), placed[2].events)
    assert attrs.asdict(placed[3]) == attrs.asdict(
        PlaceResult(book.status("O-3"), placed[3].events)
    )
    assert hash(placed[0]) == hash(built)
    assert placed[0] == built
    assert built == placed[0]
    assert repr(placed[0]) == repr(built)
    assert type(placed[0]) is PlaceResult
    assert attrs.evolve(placed[0], replayed=True) == PlaceResult(status, built.events, True)
    # a status given to the constructor is kept as it is
    assert PlaceResult(status, ()).status is status


def test_a_sku_gaining_its_first_date_after_lines_without_one_dates_them() -> None:
    book = BackorderBook(clock=lambda: START, policy=PartialFill())
    first = [book.place(Order(f"O-{i}", [OrderLine("MUG", 2)])) for i in range(3)]
    for result in first:
        backordered = result.events[-1]
        assert isinstance(backordered, LineBackordered)
        assert backordered.eta is not None
        assert backordered.eta.basis == "unknown"
    heard = book.set_lead_time("MUG", timedelta(days=5)).events
    lead_date = START + timedelta(days=5)
    assert sorted(e.order_id for e in heard if isinstance(e, EtaChanged)) == ["O-0", "O-1", "O-2"]
    for i in range(3):
        eta = book.eta(f"O-{i}", "MUG")
        assert eta is not None
        assert (eta.at, eta.basis) == (lead_date, "lead_time")
    later = book.place(Order("O-3", [OrderLine("MUG", 2)])).events[-1]
    assert isinstance(later, LineBackordered)
    assert later.eta == book.eta("O-3", "MUG")
    assert later.eta is not None
    assert later.eta.basis == "lead_time"
    # scheduled supply for the first two lines: they move to its date, the rest stay
    arriving = START + timedelta(days=2)
    moved = book.expect("MUG", 4, arriving, "PO-1").events
    assert sorted(e.order_id for e in moved if isinstance(e, EtaChanged)) == ["O-0", "O-1"]
    assert [book.eta(f"O-{i}", "MUG").basis for i in range(4)] == [  # type: ignore[union-attr]
        "scheduled",
        "scheduled",
        "lead_time",
        "lead_time",
    ]


def test_the_order_constructor_checks_in_the_same_order_as_before() -> None:
    # the converters run first, then the checks field by field
    with pytest.raises(OrderTypeError, match=r"Order.lines must be a sequence"):
        Order("", "MUG")  # type: ignore[arg-type]
    with pytest.raises(OrderTypeError, match=r"Order.metadata"):
        Order("", [], metadata=[1])  # type: ignore[arg-type]
    with pytest.raises(InvalidOrder, match=r"Order.id"):
        Order(" ", [])
    with pytest.raises(InvalidOrder, match="at least one line"):
        Order("A", [], tier="")
    with pytest.raises(InvalidOrder, match="twice"):
        Order("A", [OrderLine("M", 1), OrderLine("M", 1), "x"])  # type: ignore[list-item]
    with pytest.raises(OrderTypeError, match="OrderLine values"):
        Order("A", ["x"])  # type: ignore[list-item]
    with pytest.raises(InvalidOrder, match=r"Order.tier"):
        Order("A", [OrderLine("M", 1)], tier="", ship_complete=1)  # type: ignore[arg-type]
    with pytest.raises(OrderTypeError, match="ship_complete"):
        Order("A", [OrderLine("M", 1)], ship_complete=1, placed_at=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidOrder, match="placed_at"):
        Order("A", [OrderLine("M", 1)], placed_at=datetime(2026, 1, 1), fill_by=1)  # type: ignore[arg-type]
    with pytest.raises(OrderTypeError, match="fill_by"):
        Order("A", [OrderLine("M", 1)], fill_by=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidOrder, match=r"OrderLine.sku"):
        OrderLine("", 0)
    with pytest.raises(InvalidOrder, match=r"OrderLine.quantity"):
        OrderLine("M", 0)
    order = Order("A", [OrderLine("M", 1)], metadata={"k": "v"})
    assert attrs.evolve(order, tier="gold").tier == "gold"
    with pytest.raises(InvalidOrder, match=r"Order.tier"):
        attrs.evolve(order, tier="")
    assert [f.name for f in attrs.fields(Order)] == [
        "id",
        "lines",
        "tier",
        "ship_complete",
        "placed_at",
        "metadata",
        "fill_by",
    ]
