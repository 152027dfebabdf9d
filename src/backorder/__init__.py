"""backorder: take orders for products that are out of stock, and serve the line in order.

The public API. Everything else lives in private modules.
"""

from typing import TYPE_CHECKING, Any

from .async_book import AsyncBackorderBook
from .book import BackorderBook, Clock
from .codec import event_from_dict, event_to_dict
from .domain import MAX_QUANTITY, LineStatus, Order, OrderLine, OrderStatus, StockLevel
from .errors import (
    ArgumentTypeError,
    BackorderError,
    BackorderLimitExceeded,
    CannotCancel,
    CannotFirm,
    CannotReturn,
    CommitOutcomeUnknown,
    ConcurrencyConflict,
    ConnectionLost,
    DuplicateHold,
    DuplicateOrder,
    DuplicateReceipt,
    DuplicateReference,
    DuplicateReturn,
    EventHandlerError,
    HoldExpired,
    InsufficientStock,
    InvalidArgument,
    InvalidEvent,
    InvalidOrder,
    InvalidQuantity,
    InvalidScenario,
    LedgerCorrupted,
    NotABackorderDatabase,
    NotReadyToShip,
    OrderTypeError,
    PolicyError,
    PolicyMismatch,
    QuantityTypeError,
    RepositoryClosed,
    ScenarioTypeError,
    StorageCorrupted,
    StorageError,
    UnknownHold,
    UnknownOrder,
    UnknownReference,
    UnknownSku,
    UnknownTier,
    UnsupportedSchema,
)
from .eta import Eta
from .events import (
    EtaChanged,
    Event,
    HoldConfirmed,
    HoldReleased,
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineFirmed,
    LineReleased,
    LineShipped,
    OrderCancelled,
    OrderExpired,
    OrderPlaced,
    PolicyChanged,
    StockAdjusted,
    StockHeld,
    StockReceived,
    StockReturned,
    SupplyCancelled,
    SupplyExpected,
    TierChanged,
)
from .ledger import LedgerEntry, StockLedger
from .policies import (
    AllocationPolicy,
    PartialFill,
    PriorityTiers,
    StrictFIFO,
    policy_from_identity,
    policy_identity,
)
from .results import (
    AdjustResult,
    CancelResult,
    ExpectResult,
    ExpireResult,
    FirmResult,
    HoldResult,
    OrderEta,
    OutboxEvent,
    PlaceResult,
    RebalanceResult,
    ReceiveResult,
    ReturnResult,
    SettingResult,
    ShipResult,
    TierResult,
)
from .storage import Changes, InMemoryRepository, Repository, Snapshot
from .storage.sqlite import SQLiteRepository

if TYPE_CHECKING:
    from .storage.postgres import PostgresRepository

__version__ = "0.1.0"

__all__ = [
    "MAX_QUANTITY",
    "AdjustResult",
    "AllocationPolicy",
    "ArgumentTypeError",
    "AsyncBackorderBook",
    "BackorderBook",
    "BackorderError",
    "BackorderLimitExceeded",
    "CancelResult",
    "CannotCancel",
    "CannotFirm",
    "CannotReturn",
    "Changes",
    "Clock",
    "CommitOutcomeUnknown",
    "ConcurrencyConflict",
    "ConnectionLost",
    "DuplicateHold",
    "DuplicateOrder",
    "DuplicateReceipt",
    "DuplicateReference",
    "DuplicateReturn",
    "Eta",
    "EtaChanged",
    "Event",
    "EventHandlerError",
    "ExpectResult",
    "ExpireResult",
    "FirmResult",
    "HoldConfirmed",
    "HoldExpired",
    "HoldReleased",
    "HoldResult",
    "InMemoryRepository",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidEvent",
    "InvalidOrder",
    "InvalidQuantity",
    "InvalidScenario",
    "LedgerCorrupted",
    "LedgerEntry",
    "LineAllocated",
    "LineBackordered",
    "LineCancelled",
    "LineFirmed",
    "LineReleased",
    "LineShipped",
    "LineStatus",
    "NotABackorderDatabase",
    "NotReadyToShip",
    "Order",
    "OrderCancelled",
    "OrderEta",
    "OrderExpired",
    "OrderLine",
    "OrderPlaced",
    "OrderStatus",
    "OrderTypeError",
    "OutboxEvent",
    "PartialFill",
    "PlaceResult",
    "PolicyChanged",
    "PolicyError",
    "PolicyMismatch",
    "PostgresRepository",
    "PriorityTiers",
    "QuantityTypeError",
    "RebalanceResult",
    "ReceiveResult",
    "Repository",
    "RepositoryClosed",
    "ReturnResult",
    "SQLiteRepository",
    "ScenarioTypeError",
    "SettingResult",
    "ShipResult",
    "Snapshot",
    "StockAdjusted",
    "StockHeld",
    "StockLedger",
    "StockLevel",
    "StockReceived",
    "StockReturned",
    "StorageCorrupted",
    "StorageError",
    "StrictFIFO",
    "SupplyCancelled",
    "SupplyExpected",
    "TierChanged",
    "TierResult",
    "UnknownHold",
    "UnknownOrder",
    "UnknownReference",
    "UnknownSku",
    "UnknownTier",
    "UnsupportedSchema",
    "event_from_dict",
    "event_to_dict",
    "policy_from_identity",
    "policy_identity",
]


def __getattr__(name: str) -> Any:
    # `PostgresRepository` is imported on first use: it needs the optional
    # psycopg (the `backorder[postgres]` extra).
    if name == "PostgresRepository":
        try:
            from .storage.postgres import PostgresRepository
        except ImportError as exc:  # psycopg is missing: say so where it is used
            return _needs_psycopg(str(exc))
        return PostgresRepository
    raise AttributeError(f"module 'backorder' has no attribute {name!r}")


def _needs_psycopg(message: str) -> Any:
    # A stand-in for `PostgresRepository` without psycopg, so that
    # `from backorder import *` works: making one raises the ImportError.
    class PostgresRepository:
        """Needs psycopg 3: `pip install 'backorder[postgres]'`."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise ImportError(message)

    return PostgresRepository
