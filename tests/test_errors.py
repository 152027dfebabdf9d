"""The error hierarchy: an HTTP status for every class, pickling, short messages."""

from __future__ import annotations

import doctest
import importlib
import pickle
import pkgutil
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import backorder
from backorder import (
    BackorderBook,
    BackorderError,
    EventHandlerError,
    InvalidOrder,
    Order,
    OrderLine,
    PolicyMismatch,
    QuantityTypeError,
    errors,
)
from backorder._eventfile import FileError
from backorder.errors import shown

from .helpers import TickingClock

# The status a web layer answers with, per class (DESIGN.md, "Many threads...").
STATUS = {
    "BackorderError": 500,
    "InvalidArgument": 400,
    "ArgumentTypeError": 400,
    "InvalidQuantity": 400,
    "QuantityTypeError": 400,
    "InvalidOrder": 400,
    "OrderTypeError": 400,
    "InvalidEvent": 400,
    "UnknownTier": 400,
    "FileError": 400,
    "UnknownOrder": 404,
    "UnknownSku": 404,
    "UnknownHold": 404,
    "UnknownReference": 404,
    "DuplicateOrder": 409,
    "DuplicateReceipt": 409,
    "DuplicateHold": 409,
    "DuplicateReference": 409,
    "NotReadyToShip": 409,
    "CannotCancel": 409,
    "CannotFirm": 409,
    "CannotReturn": 409,
    "DuplicateReturn": 409,
    "InsufficientStock": 409,
    "BackorderLimitExceeded": 409,
    "HoldExpired": 409,
    "PolicyMismatch": 409,
    "ConcurrencyConflict": 503,
    "CommitRace": 503,  # the internal "run it again" signal, a ConcurrencyConflict
    "StaleCopy": 503,  # internal: a repository's "your copy holds work that did not commit"
    "ConnectionLost": 503,
    "CommitOutcomeUnknown": 503,
    "InvalidScenario": 400,
    "ScenarioTypeError": 400,
    "StorageError": 500,
    "NotABackorderDatabase": 500,
    "UnsupportedSchema": 500,
    "StorageCorrupted": 500,
    "RepositoryClosed": 500,
    "LedgerCorrupted": 500,
    "PolicyError": 500,
    "EventHandlerError": 500,
}


def _every_error_class() -> list[type[BackorderError]]:
    # Import every module of the package, then walk the hierarchy.
    for module in pkgutil.walk_packages(backorder.__path__, "backorder."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[BackorderError]] = []
    todo: list[type[BackorderError]] = [BackorderError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("backorder") and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


ERRORS = _every_error_class()


def test_every_error_class_is_in_the_table() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert names == set(STATUS), (names - set(STATUS), set(STATUS) - names)
    public = {name for name in backorder.__all__ if name in STATUS}
    assert public == {name for name in STATUS if name in errors.__all__}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_class_has_its_http_status(cls: type[BackorderError]) -> None:
    assert cls.http_status == STATUS[cls.__name__]


def test_a_subclass_defined_elsewhere_gets_a_status_by_its_family() -> None:
    class Missing(BackorderError, LookupError):
        pass

    class Wrong(BackorderError, TypeError):
        pass

    class Broken(BackorderError):
        pass

    class Unknowable(errors.UnknownOrder):
        pass

    assert (Missing.http_status, Wrong.http_status, Broken.http_status) == (404, 400, 500)
    assert Unknowable.http_status == 404


def _example(cls: type[BackorderError]) -> BackorderError:
    """An instance of `cls` with its constructor's arguments and an extra attribute."""
    error: BackorderError
    if cls is EventHandlerError:
        error = EventHandlerError("handlers failed", {"order": "A-1"}, [ValueError("boom")])
    elif cls is FileError:
        error = FileError("orders.jsonl:3", "quantity must be an int, got '٣'")
    elif cls is PolicyMismatch:
        error = PolicyMismatch("PriorityTiers(...)", "PartialFill()")
    else:
        error = cls(f"{cls.__name__}: order_id 'A-1' is bad")
    error.detail = {"field": "order_id", "value": "A-1"}  # type: ignore[attr-defined]
    return error


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert a.args == b.args
    plain = {k: v for k, v in vars(a).items() if k != "errors"}
    assert plain == {k: v for k, v in vars(b).items() if k != "errors"}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_pickles_round_trip(cls: type[BackorderError]) -> None:
    error = _example(cls)
    back = pickle.loads(pickle.dumps(error))
    _same(error, back)
    assert back.http_status == error.http_status


def test_a_real_event_handler_error_pickles_with_its_result_and_cause() -> None:
    book = BackorderBook(clock=TickingClock())

    def failing(event: object) -> None:
        raise KeyError("mailer down")

    book.subscribe(failing)
    with pytest.raises(EventHandlerError) as caught:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
    back = pickle.loads(pickle.dumps(caught.value))
    _same(caught.value, back)
    assert back.result == caught.value.result
    assert [(type(e), e.args) for e in back.errors] == [
        (type(e), e.args) for e in caught.value.errors
    ]
    assert isinstance(back.__cause__, KeyError)
    assert back.__cause__.args == ("mailer down",)


def test_file_error_and_policy_mismatch_keep_their_attributes() -> None:
    back = pickle.loads(pickle.dumps(FileError("f.csv:2", "bad")))
    assert (str(back), back.where) == ("f.csv:2: bad", "f.csv:2")
    mismatch = pickle.loads(pickle.dumps(PolicyMismatch("StrictFIFO()", "PartialFill()")))
    assert (mismatch.stored, mismatch.given) == ("StrictFIFO()", "PartialFill()")
    assert "StrictFIFO()" in str(mismatch)
    assert "PartialFill()" in str(mismatch)
    assert isinstance(mismatch, ValueError)


def _raise_in_worker(kind: str) -> None:
    if kind == "handler":
        raise EventHandlerError("handler failed", None, [RuntimeError("x")])
    raise FileError("orders.csv:7", "bad line")


@pytest.mark.parametrize(("kind", "error"), [("handler", EventHandlerError), ("file", FileError)])
def test_errors_cross_a_process_pool(kind: str, error: type[BackorderError]) -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_raise_in_worker, kind)
        with pytest.raises(error):
            future.result(timeout=60)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MUG", "'MUG'"),
        (42, "42"),
        (None, "None"),
        ("x" * 78, "'" + "x" * 78 + "'"),
        ("x" * 79, "'" + "x" * 78 + "…(81 chars)"),
        (10**5000, "an int of 16610 bits"),
    ],
    ids=["text", "int", "none", "fits", "cut", "huge-int"],
)
def test_shown_cuts_long_values(value: object, expected: str) -> None:
    assert shown(value) == expected


def test_shown_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert shown(Broken()) == "a Broken (its repr raised)"


@pytest.mark.parametrize(
    "call",
    [
        lambda: OrderLine("\x00" + "x" * 1_000_000, 1),
        lambda: OrderLine("MUG", 10**100_000),
        lambda: OrderLine("MUG", "9" * 1_000_000),  # type: ignore[arg-type]  # the point
        lambda: Order("A", [OrderLine("MUG", 1)], metadata={"k": "\ud800" * 1_000_000}),
        lambda: Order("x" * 1_000_000, [OrderLine("MUG", 1)], ship_complete="y" * 10**6),  # type: ignore[arg-type]  # the point
    ],
)
def test_a_huge_value_gives_a_short_message(call: Any) -> None:
    with pytest.raises(InvalidOrder) as caught:
        call()
    assert len(str(caught.value)) < 300


def test_a_huge_quantity_gives_a_short_message() -> None:
    book = BackorderBook()
    with pytest.raises(QuantityTypeError) as caught:
        book.receive("MUG", "1" * 1_000_000)  # type: ignore[arg-type]  # the wrong type is the point
    assert len(str(caught.value)) < 300


def test_the_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(errors, optionflags=doctest.ELLIPSIS)
    assert (failures, tried > 0) == (0, True)
