"""Bad input at every public entry point: its own error, a clear message, nothing changed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from backorder import (
    MAX_QUANTITY,
    ArgumentTypeError,
    BackorderBook,
    BackorderError,
    CannotCancel,
    Changes,
    DuplicateOrder,
    DuplicateReceipt,
    InsufficientStock,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    NotReadyToShip,
    Order,
    OrderLine,
    OrderTypeError,
    PriorityTiers,
    QuantityTypeError,
    StrictFIFO,
    UnknownOrder,
    UnknownSku,
    UnknownTier,
)

from .helpers import TickingClock, snapshot


@pytest.fixture
def book() -> BackorderBook:
    """A book with something in every state: allocated, short, shipped, cancelled."""
    book = BackorderBook(PriorityTiers(), clock=TickingClock())
    book.receive("MUG", 3, reference="GRN-1")
    book.place(Order("ANN", [OrderLine("MUG", 2), OrderLine("TEE", 1)]))
    book.place(Order("BOB", [OrderLine("MUG", 4)], tier="vip", ship_complete=True))
    book.place(Order("CAT", [OrderLine("CAP", 1)]))
    book.receive("CAP", 1)
    book.ship("CAT")
    book.place(Order("DAN", [OrderLine("TEE", 2)]))
    book.cancel("DAN")
    return book


def refused(
    book: BackorderBook,
    error: type[BaseException],
    call: Callable[[], object],
    *words: str,
) -> str:
    """Assert `call` raises `error`, whose message holds `words`, and changes nothing."""
    before = snapshot(book)
    heard: list[object] = []
    book.subscribe(heard.append)
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, BackorderError)
    message = str(caught.value)
    for word in words:
        assert word in message, (word, message)
    assert snapshot(book) == before
    assert heard == []
    book.ledger.verify()
    book._check()
    return message


QUANTITY_CASES: list[tuple[Any, type[BaseException]]] = [
    (0, InvalidQuantity),
    (-1, InvalidQuantity),
    (MAX_QUANTITY + 1, InvalidQuantity),
    (True, QuantityTypeError),
    (1.0, QuantityTypeError),
    ("3", QuantityTypeError),
    (None, QuantityTypeError),
]


@pytest.mark.parametrize(("quantity", "error"), QUANTITY_CASES)
def test_receive_refuses_a_bad_quantity(
    book: BackorderBook, quantity: Any, error: type[BaseException]
) -> None:
    refused(book, error, lambda: book.receive("MUG", quantity), "quantity", repr(quantity))


def test_quantity_type_errors_are_type_errors_and_value_errors_are_value_errors() -> None:
    assert issubclass(QuantityTypeError, TypeError)
    assert issubclass(QuantityTypeError, InvalidQuantity)
    assert issubclass(InvalidQuantity, ValueError)
    assert issubclass(OrderTypeError, TypeError)
    assert issubclass(InvalidOrder, ValueError)
    assert issubclass(UnknownOrder, LookupError)


@pytest.mark.parametrize("sku", ["", "   ", 5, None, b"MUG"])
def test_receive_refuses_a_bad_sku(book: BackorderBook, sku: Any) -> None:
    refused(book, InvalidArgument, lambda: book.receive(sku, 1), "sku")


def test_receive_refuses_on_hand_beyond_64_bits(book: BackorderBook) -> None:
    refused(book, InvalidQuantity, lambda: book.receive("MUG", MAX_QUANTITY), "MUG")


def test_receive_refuses_a_reused_reference_with_another_quantity(book: BackorderBook) -> None:
    refused(book, DuplicateReceipt, lambda: book.receive("MUG", 4, "GRN-1"), "GRN-1", "3", "4")


@pytest.mark.parametrize("reference", ["", 7])
def test_receive_refuses_a_bad_reference(book: BackorderBook, reference: Any) -> None:
    refused(book, InvalidArgument, lambda: book.receive("MUG", 1, reference), "reference")


@pytest.mark.parametrize(
    ("delta", "error"),
    [
        (0, InvalidQuantity),
        (1.5, QuantityTypeError),
        (False, QuantityTypeError),
        (-MAX_QUANTITY - 1, InvalidQuantity),
    ],
)
def test_adjust_refuses_a_bad_delta(
    book: BackorderBook, delta: Any, error: type[Exception]
) -> None:
    refused(book, error, lambda: book.adjust("MUG", delta, "count"), "delta", repr(delta))


def test_adjust_refuses_to_remove_more_than_is_on_hand(book: BackorderBook) -> None:
    refused(book, InsufficientStock, lambda: book.adjust("MUG", -4, "count"), "-4", "3", "MUG")
    refused(book, InsufficientStock, lambda: book.adjust("NEW", -1, "count"), "NEW")


@pytest.mark.parametrize("reason", ["", None, 3])
def test_adjust_refuses_a_missing_reason(book: BackorderBook, reason: Any) -> None:
    refused(book, InvalidArgument, lambda: book.adjust("MUG", 1, reason), "reason")


def test_place_refuses_a_non_order(book: BackorderBook) -> None:
    refused(book, ArgumentTypeError, lambda: book.place({"id": "X"}), "order")  # type: ignore[arg-type]  # the wrong type is the point


def test_place_refuses_another_order_under_a_used_id(book: BackorderBook) -> None:
    other = Order("ANN", [OrderLine("MUG", 3)])
    refused(book, DuplicateOrder, lambda: book.place(other), "ANN")
    other_meta = Order("ANN", [OrderLine("MUG", 2), OrderLine("TEE", 1)], metadata={"a": "b"})
    refused(book, DuplicateOrder, lambda: book.place(other_meta), "ANN")
    stored = book.status("ANN").order
    assert stored.placed_at is not None
    other_time = Order("ANN", stored.lines, placed_at=stored.placed_at.replace(year=2020))
    refused(book, DuplicateOrder, lambda: book.place(other_time), "ANN")


def test_place_refuses_an_unknown_tier(book: BackorderBook) -> None:
    gold = Order("EVE", [OrderLine("MUG", 1)], tier="gold")
    refused(book, UnknownTier, lambda: book.place(gold), "gold", "EVE")
    assert "EVE" not in book


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda b: b.position("NOPE", "MUG"), UnknownOrder, ["NOPE"]),
        (lambda b: b.position("ANN", "CAP"), UnknownSku, ["ANN", "CAP"]),
        (lambda b: b.line("NOPE", "MUG"), UnknownOrder, ["NOPE"]),
        (lambda b: b.line("ANN", "CAP"), UnknownSku, ["CAP"]),
        (lambda b: b.status("NOPE"), UnknownOrder, ["NOPE"]),
        (lambda b: b.status(""), InvalidArgument, ["order_id"]),
        (lambda b: b.status(42), ArgumentTypeError, ["order_id", "42"]),
        (lambda b: b.waiting(""), InvalidArgument, ["sku"]),
        (lambda b: b.stock(None), ArgumentTypeError, ["sku"]),
        (lambda b: b.cancel("NOPE"), UnknownOrder, ["NOPE"]),
        (lambda b: b.cancel("ANN", "CAP"), UnknownSku, ["CAP"]),
        (lambda b: b.cancel("ANN", None, 1), InvalidArgument, ["quantity", "sku"]),
        (lambda b: b.cancel("ANN", "MUG", 0), InvalidQuantity, ["quantity", "0"]),
        (lambda b: b.cancel("ANN", "MUG", 2.0), QuantityTypeError, ["quantity"]),
        (lambda b: b.ship("NOPE"), UnknownOrder, ["NOPE"]),
        (lambda b: b.ship("ANN", "CAP"), UnknownSku, ["CAP"]),
        (lambda b: b.ship("ANN", None, 1), InvalidArgument, ["quantity"]),
        (lambda b: b.ship("ANN", "MUG", -2), InvalidQuantity, ["-2"]),
        (lambda b: b.subscribe("not callable"), ArgumentTypeError, ["handler"]),
        (lambda b: b.ledger.entries(""), InvalidArgument, ["sku"]),
    ],
)
def test_lookups_and_arguments(
    book: BackorderBook,
    call: Callable[[BackorderBook], object],
    error: type[BaseException],
    words: list[str],
) -> None:
    refused(book, error, lambda: call(book), *words)


def test_cancelling_more_than_is_left_names_what_can_be_cancelled(book: BackorderBook) -> None:
    # ANN: MUG 2 allocated, TEE 1 short
    message = refused(book, CannotCancel, lambda: book.cancel("ANN", "MUG", 3), "only 2")
    assert "ANN" in message


def test_cancelling_shipped_units_is_refused(book: BackorderBook) -> None:
    refused(book, CannotCancel, lambda: book.cancel("CAT"), "CAT", "0 units")
    refused(book, CannotCancel, lambda: book.cancel("CAT", "CAP", 1), "only 0")
    refused(book, CannotCancel, lambda: book.cancel("DAN", "TEE"), "0 units")


def test_shipping_more_than_is_allocated_names_what_can_ship(book: BackorderBook) -> None:
    refused(book, NotReadyToShip, lambda: book.ship("ANN", "MUG", 3), "only 2")
    refused(book, NotReadyToShip, lambda: book.ship("ANN", "TEE"), "0 units")


def test_shipping_an_incomplete_ship_complete_order_is_refused(book: BackorderBook) -> None:
    # BOB (vip, ship-complete, MUG 4) got the 1 unit ANN left: partly allocated
    status = book.status("BOB")
    assert status.lines[0].allocated > 0
    assert status.lines[0].backordered > 0
    refused(book, NotReadyToShip, lambda: book.ship("BOB"), "ship-complete", "BOB")
    refused(book, NotReadyToShip, lambda: book.ship("BOB", "MUG", 1), "ship-complete")


def test_the_book_refuses_bad_collaborators() -> None:
    with pytest.raises(ArgumentTypeError, match="policy"):
        BackorderBook(object())  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ArgumentTypeError, match="repository"):
        BackorderBook(repository=object())  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ArgumentTypeError, match="clock"):
        BackorderBook(clock=5)  # type: ignore[arg-type]  # the wrong type is the point


def test_a_naive_clock_is_refused_and_changes_nothing() -> None:
    book = BackorderBook(clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(InvalidArgument, match="clock"):
        book.receive("MUG", 1)
    assert book.stock("MUG").on_hand == 0
    assert len(book.ledger) == 0


@pytest.mark.parametrize("stage", ["write", "commit"])
def test_a_failing_repository_rolls_everything_back(stage: str) -> None:
    from backorder.testing import DictRepository

    class Flaky(DictRepository):
        fail = False

        def write(self, changes: Changes) -> None:
            if self.fail and stage == "write":
                raise OSError("disk full")
            super().write(changes)

        def commit(self) -> int:
            if self.fail and stage == "commit":
                self.rollback()
                raise OSError("disk full")
            return super().commit()

    repository = Flaky()
    book = BackorderBook(StrictFIFO(), repository, TickingClock())
    book.place(Order("ANN", [OrderLine("MUG", 2)]))
    book.receive("MUG", 1, "GRN-1")
    repository.fail = True
    calls: list[Callable[[], object]] = [
        lambda: book.receive("MUG", 1, "GRN-2"),
        lambda: book.place(Order("BOB", [OrderLine("MUG", 1), OrderLine("NEW", 1)])),
        lambda: book.adjust("MUG", -1, "count"),
        lambda: book.cancel("ANN", "MUG", 1),
    ]
    for call in calls:
        before = snapshot(book)
        with pytest.raises(OSError, match="disk full"):
            call()
        assert snapshot(book) == before
        assert "NEW" not in book.skus()
        book._check()
        assert snapshot(BackorderBook(StrictFIFO(), repository.reopen())) == before


# --- the in-memory and SQLite books accept and refuse exactly the same values ---


def _fill(book: BackorderBook) -> BackorderBook:
    book.receive("MUG", 3, reference="GRN-1")
    book.place(Order("ANN", [OrderLine("MUG", 2), OrderLine("TEE", 1)]))
    book.place(Order("BOB", [OrderLine("MUG", 4)], tier="vip"))
    return book


@pytest.fixture(params=["memory", "sqlite"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackorderBook]:
    """The same small book in memory and in a SQLite file."""
    if request.param == "memory":
        yield _fill(BackorderBook(PriorityTiers(), clock=TickingClock()))
        return
    book = BackorderBook.open(tmp_path / "shop.db", PriorityTiers(), TickingClock())
    try:
        yield _fill(book)
    finally:
        book.close()


BAD_TEXT = ["\ud800", "MUG\udfff", "A\x00B", "\x00"]
TEXT_CALLS: list[tuple[str, Callable[[BackorderBook, str], object]]] = [
    ("sku", lambda b, t: b.receive(t, 1)),
    ("reference", lambda b, t: b.receive("MUG", 1, reference=t)),
    ("sku", lambda b, t: b.adjust(t, 1, "count")),
    ("reason", lambda b, t: b.adjust("MUG", 1, t)),
    ("Order.id", lambda b, t: b.place(Order(t, [OrderLine("MUG", 1)]))),
    ("OrderLine.sku", lambda b, t: b.place(Order("CAT", [OrderLine(t, 1)]))),
    ("Order.tier", lambda b, t: b.place(Order("CAT", [OrderLine("MUG", 1)], tier=t))),
    ("Order.metadata", lambda b, t: b.place(Order("CAT", [OrderLine("MUG", 1)], metadata={t: t}))),
    ("reference", lambda b, t: b.expect("MUG", 5, date(2026, 3, 1), t)),
    ("hold_id", lambda b, t: b.hold("MUG", 1, timedelta(minutes=5), hold_id=t)),
    ("order_id", lambda b, t: b.cancel(t)),
    ("sku", lambda b, t: b.cancel("ANN", t)),
    ("tier", lambda b, t: b.change_tier("ANN", t)),
]


@pytest.mark.parametrize(
    "text", BAD_TEXT, ids=["surrogate", "trailing-surrogate", "nul", "only-nul"]
)
@pytest.mark.parametrize(("field", "call"), TEXT_CALLS, ids=[f for f, _ in TEXT_CALLS])
def test_text_no_store_can_hold_is_refused_by_every_book(
    either: BackorderBook, field: str, call: Callable[[BackorderBook, str], object], text: str
) -> None:
    refused(either, BackorderError, lambda: call(either, text), field)


class Units(IntEnum):
    TWO = 2


def test_an_int_enum_quantity_is_taken_as_its_int_by_every_book(either: BackorderBook) -> None:
    either.receive("MUG", Units.TWO, reference="GRN-2")
    either.adjust("MUG", Units.TWO, "found")
    either.place(Order("CAT", [OrderLine("CAP", Units.TWO)]))
    assert either.stock("MUG").on_hand == 7
    assert type(either.stock("MUG").on_hand) is int
    assert either.line("CAT", "CAP").ordered == 2
    either.ledger.verify()


def test_an_int_enum_quantity_is_stored_as_a_plain_int_in_memory() -> None:
    book = BackorderBook()
    events = book.receive("MUG", Units.TWO).events
    assert all(type(getattr(e, "quantity", 0)) is int for e in events)
    assert all(type(e.on_hand) is int for e in book.ledger.entries("MUG"))
    assert all(type(e.on_hand_delta) is int for e in book.ledger.entries("MUG"))


def test_a_ttl_no_date_can_hold_is_refused() -> None:
    book = BackorderBook(clock=TickingClock())
    book.receive("MUG", 2)
    refused(book, InvalidArgument, lambda: book.hold("MUG", 1, timedelta.max), "ttl")


def test_a_lead_time_no_date_can_hold_is_refused(book: BackorderBook) -> None:
    too_long = timedelta(days=3_000_000)
    refused(book, InvalidArgument, lambda: book.set_lead_time("TEE", too_long), "lead_time")


@pytest.mark.parametrize("timeout", [math.nan, math.inf])
def test_a_timeout_that_is_not_finite_is_refused(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(InvalidArgument, match="timeout"):
        BackorderBook.open(tmp_path / "shop.db", timeout=timeout)
    assert not (tmp_path / "shop.db").exists()
