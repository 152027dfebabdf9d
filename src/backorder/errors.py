"""The one error hierarchy of `backorder`.

Every error the library raises on purpose is a `BackorderError`. Errors about a
bad value also subclass `ValueError`; errors about a value of the wrong type
also subclass `TypeError`; look-ups of something that does not exist also
subclass `LookupError`. So callers may catch the library's family or the
built-in one they are used to. Every message names the field and the value.
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "BackorderError",
    "BackorderLimitExceeded",
    "CannotCancel",
    "ConcurrencyConflict",
    "DuplicateHold",
    "DuplicateOrder",
    "DuplicateReceipt",
    "DuplicateReference",
    "EventHandlerError",
    "HoldExpired",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidOrder",
    "InvalidQuantity",
    "LedgerCorrupted",
    "NotABackorderDatabase",
    "NotReadyToShip",
    "OrderTypeError",
    "PolicyError",
    "QuantityTypeError",
    "RepositoryClosed",
    "StorageCorrupted",
    "StorageError",
    "UnknownHold",
    "UnknownOrder",
    "UnknownReference",
    "UnknownSku",
    "UnknownTier",
    "UnsupportedSchema",
]


class BackorderError(Exception):
    """Base class of every error raised by `backorder` on purpose."""


class InvalidArgument(BackorderError, ValueError):
    """An argument has a bad value (an empty SKU, a naive datetime, ...)."""


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


class DuplicateOrder(BackorderError, ValueError):
    """An order id already in the book was placed again with other content."""


class DuplicateReceipt(BackorderError, ValueError):
    """A `(sku, reference)` pair already received came again with another quantity."""


class UnknownOrder(BackorderError, LookupError):
    """No order with that id is in the book."""


class UnknownSku(BackorderError, LookupError):
    """The order has no line for that SKU."""


class UnknownTier(BackorderError, ValueError):
    """The order's tier is not one the policy knows."""


class InsufficientStock(BackorderError, ValueError):
    """The operation needs more units on hand than there are."""


class NotReadyToShip(BackorderError):
    """Nothing (or not enough) is allocated to ship, or a ship-complete order is short."""


class CannotCancel(BackorderError, ValueError):
    """More units were to be cancelled than are not yet shipped or cancelled."""


class ConcurrencyConflict(BackorderError):
    """Another writer changed the same state first; reload and try again."""


class StorageError(BackorderError):
    """Storage cannot be used as asked (base of the storage errors)."""


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


class PolicyError(BackorderError):
    """An allocation policy returned a value out of range or of the wrong type."""


class LedgerCorrupted(BackorderError):
    """Replaying the stock ledger does not give the balances it records."""


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


class BackorderLimitExceeded(BackorderError, ValueError):
    """The order would take a SKU's backordered units past its cap."""


class UnknownHold(BackorderError, LookupError):
    """No active checkout hold has that id."""


class HoldExpired(BackorderError):
    """The checkout hold's time ran out; its units went back to the line."""


class DuplicateHold(BackorderError, ValueError):
    """A hold with that id is already active."""


class DuplicateReference(BackorderError, ValueError):
    """An expected receipt with that reference is already in the book."""


class UnknownReference(BackorderError, LookupError):
    """No expected receipt has that reference."""
