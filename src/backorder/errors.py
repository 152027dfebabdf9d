"""The one error hierarchy of `backorder`.

Every error the library raises on purpose is a `BackorderError`. Errors about a
bad value also subclass `ValueError`; errors about a value of the wrong type
also subclass `TypeError`; look-ups of something that does not exist also
subclass `LookupError`. So callers may catch the library's family or the
built-in one they are used to. Every message names the field and the value
(values are cut to a readable length, see `shown`).

Every class has `http_status`, the HTTP status a web layer should answer with:

- 400, a bad value or type: `InvalidArgument` and its family
  (`InvalidQuantity`, `InvalidOrder`, `InvalidEvent`, the `...TypeError`
  classes), `UnknownTier`.
- 404, something named does not exist: `UnknownOrder`, `UnknownSku`,
  `UnknownHold`, `UnknownReference`.
- 409, a conflict with the state: `DuplicateOrder`, `DuplicateReceipt`,
  `DuplicateHold`, `DuplicateReference`, `DuplicateReturn`, `NotReadyToShip`,
  `CannotCancel`, `CannotFirm`, `CannotReturn`,
  `InsufficientStock`, `BackorderLimitExceeded`, `HoldExpired`, `PolicyMismatch`.
- 503: `ConcurrencyConflict` (another writer held the store past the
  timeout: try again), `ConnectionLost` and `CommitOutcomeUnknown` (the
  database connection broke: try again once it is back).
- 500, the server's side: `StorageError` and its family, `LedgerCorrupted`,
  `PolicyError` (a policy broke its contract), `EventHandlerError` (the
  operation succeeded, a subscriber failed).

A subclass defined elsewhere that sets no `http_status` of its own and
derives directly from `BackorderError` gets 404 when it is a `LookupError`,
400 when it is a `ValueError` or `TypeError`, 500 otherwise.

Every error pickles (for `multiprocessing` and `concurrent.futures`): it is
rebuilt from its `args` and attributes without calling `__init__` again.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ArgumentTypeError",
    "BackorderError",
    "BackorderLimitExceeded",
    "CannotCancel",
    "CannotFirm",
    "CannotReturn",
    "CommitOutcomeUnknown",
    "ConcurrencyConflict",
    "ConnectionLost",
    "DuplicateHold",
    "DuplicateOrder",
    "DuplicateReceipt",
    "DuplicateReference",
    "DuplicateReturn",
    "EventHandlerError",
    "HoldExpired",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidEvent",
    "InvalidOrder",
    "InvalidQuantity",
    "InvalidScenario",
    "LedgerCorrupted",
    "NotABackorderDatabase",
    "NotReadyToShip",
    "OrderTypeError",
    "PolicyError",
    "PolicyMismatch",
    "QuantityTypeError",
    "RepositoryClosed",
    "ScenarioTypeError",
    "StorageCorrupted",
    "StorageError",
    "UnknownHold",
    "UnknownOrder",
    "UnknownReference",
    "UnknownSku",
    "UnknownTier",
    "UnsupportedSchema",
    "shown",
]

#: How many characters of a value's `repr` a message shows (see `shown`).
SHOWN_CHARS = 80


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """The `repr` of `value` for an error message, cut to `limit` characters.

    A longer repr is cut and says how long it was:
    `'aaaa…(1000002 chars)'`; an int too large to print shows its size in
    bits; a value whose `repr` raises shows its type. So a 1 MB id gives a
    short message, never a 1 MB one.

    >>> shown("MUG")
    "'MUG'"
    >>> shown("x" * 1000, limit=10)
    "'xxxxxxxx…(1002 chars)"

    Cost: O(len(repr(value))) (O(1) for a huge int).
    """
    if type(value) is int and value.bit_length() > 4 * limit:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__} (its repr raised)"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}…({len(text)} chars)"


def _rebuild(cls: type[BackorderError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    # Unpickle without calling __init__ (whose signature may differ from args).
    error = cls.__new__(cls, *args)
    error.args = args
    error.__setstate__(state)
    return error


class BackorderError(Exception):
    """Base class of every error raised by `backorder` on purpose.

    Attributes:
        http_status: the HTTP status a web layer should answer with (a class
            attribute; see the table in this module's docs).
    """

    http_status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "http_status" not in cls.__dict__:
            owner = next(klass for klass in cls.__mro__ if "http_status" in klass.__dict__)
            if owner is BackorderError:
                if issubclass(cls, LookupError):
                    cls.http_status = 404
                elif issubclass(cls, (ValueError, TypeError)):
                    cls.http_status = 400

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class InvalidArgument(BackorderError, ValueError):
    """An argument has a bad value (an empty SKU, a naive datetime, ...)."""

    http_status = 400


class ArgumentTypeError(InvalidArgument, TypeError):
    """An argument has the wrong type (a SKU that is not a `str`, ...)."""


class InvalidQuantity(InvalidArgument):
    """A quantity or delta is zero, negative, or beyond 2**63 - 1."""


class QuantityTypeError(InvalidQuantity, TypeError):
    """A quantity is not an `int` (a `bool` or `float` is refused too)."""


class InvalidOrder(InvalidArgument):
    """An `Order` or `OrderLine` was built from bad values."""


class OrderTypeError(InvalidOrder, TypeError):
    """An `Order` or `OrderLine` field has the wrong type."""


class InvalidEvent(InvalidArgument):
    """Data given to `event_from_dict` is not an event (unknown type, a field
    missing, unknown, or of the wrong type or value)."""


class DuplicateOrder(BackorderError, ValueError):
    """An order id already in the book was placed again with other content."""

    http_status = 409


class DuplicateReceipt(BackorderError, ValueError):
    """A `(sku, reference)` pair already received came again with another quantity."""

    http_status = 409


class UnknownOrder(BackorderError, LookupError):
    """No order with that id is in the book."""

    http_status = 404


class UnknownSku(BackorderError, LookupError):
    """The order has no line for that SKU."""

    http_status = 404


class UnknownTier(BackorderError, ValueError):
    """The order's tier is not one the policy knows."""

    http_status = 400


class InsufficientStock(BackorderError, ValueError):
    """The operation needs more units on hand than there are."""

    http_status = 409


class NotReadyToShip(BackorderError):
    """Nothing (or not enough) is allocated to ship, or a ship-complete order is short."""

    http_status = 409


class CannotCancel(BackorderError, ValueError):
    """More units were to be cancelled than are not yet shipped or cancelled."""

    http_status = 409


class CannotFirm(BackorderError, ValueError):
    """More units were to be marked firm than are allocated and not yet firm."""

    http_status = 409


class CannotReturn(BackorderError, ValueError):
    """More units were to come back than were shipped and not yet returned."""

    http_status = 409


class DuplicateReturn(DuplicateReceipt):
    """An `(order_id, sku, reference)` return already received came again
    with another quantity."""

    http_status = 409


class ConcurrencyConflict(BackorderError):
    """Another writer changed the same state first; reload and try again."""

    http_status = 503


class StorageError(BackorderError):
    """Storage cannot be used as asked (base of the storage errors)."""

    http_status = 500


class NotABackorderDatabase(StorageError):
    """The file is not a database, or is a database of another program.

    Raised before anything is written: the file is left byte for byte as it was.
    """


class UnsupportedSchema(StorageError):
    """The database was written by a newer `backorder` (its schema version is
    higher than this one knows); the file is left untouched."""


class StorageCorrupted(StorageError):
    """Stored state cannot be read back (a row or value this library never writes)."""


class RepositoryClosed(StorageError):
    """The book or repository was closed; open it again to go on."""


class ConnectionLost(StorageError):
    """The database connection broke before the operation committed: nothing
    of it was written. A repository that can connect again does so on the
    next operation."""

    http_status = 503


class CommitOutcomeUnknown(ConnectionLost):
    """The database connection broke while the operation was committing: it
    may or may not have committed. Read the state back (the next operation
    catches up with whatever the database holds) before doing it again."""


class PolicyError(BackorderError):
    """An allocation policy returned a value out of range or of the wrong type."""

    http_status = 500


class PolicyMismatch(BackorderError, ValueError):
    """A stored book was opened with a policy of another identity than the one
    it records; nothing was changed. Use the stored policy, or switch with
    `book.change_policy`.

    Attributes:
        stored: the identity the book records.
        given: the identity of the policy it was opened with.
    """

    http_status = 409

    def __init__(self, stored: str, given: str) -> None:
        super().__init__(
            f"the book was stored with policy {shown(stored, 300)} but opened with "
            f"policy {shown(given, 300)}; open it with the stored policy, or switch "
            "with book.change_policy(policy)"
        )
        self.stored = stored
        self.given = given


class LedgerCorrupted(BackorderError):
    """Replaying the stock ledger does not give the balances it records."""

    http_status = 500


class EventHandlerError(BackorderError):
    """A subscribed handler raised while events were handed out.

    The operation itself succeeded and is stored; every handler was still
    given every event. `result` is what the operation returned, `errors` the
    exceptions the handlers raised (the first is also `__cause__`).
    """

    def __init__(self, message: str, result: object, errors: list[Exception]) -> None:
        super().__init__(message)
        self.result = result
        self.errors = errors

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        # Unpickled: the first handler error is the cause again.
        super().__setstate__(state)
        if self.errors:
            self.__cause__ = self.errors[0]


class BackorderLimitExceeded(BackorderError, ValueError):
    """The order would take a SKU's backordered units past its cap."""

    http_status = 409


class UnknownHold(BackorderError, LookupError):
    """No active checkout hold has that id."""

    http_status = 404


class HoldExpired(BackorderError):
    """The checkout hold's time ran out; its units went back to the line."""

    http_status = 409


class DuplicateHold(BackorderError, ValueError):
    """A hold with that id is already active."""

    http_status = 409


class DuplicateReference(BackorderError, ValueError):
    """An expected receipt with that reference is already in the book."""

    http_status = 409


class UnknownReference(BackorderError, LookupError):
    """No expected receipt has that reference."""

    http_status = 404


class InvalidScenario(InvalidArgument):
    """A parameter of `synthetic()` is out of range, not finite, or unknown.

    Attributes:
        field: the parameter's name (`"orders_per_day"`, `"shortages[0]"`).
        value: the value given.
    """

    def __init__(self, message: str, field: str = "", value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class ScenarioTypeError(InvalidScenario, TypeError):
    """A parameter of `synthetic()` has the wrong type (a `str` for a number, ...)."""
