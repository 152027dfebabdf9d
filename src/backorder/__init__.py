"""backorder: take orders for products that are out of stock, and serve the line in order.

The public API. Everything else lives in private modules.
"""

from .book import BackorderBook, Clock
from .domain import MAX_QUANTITY, LineStatus, Order, OrderLine, OrderStatus, StockLevel
from .errors import (
    ArgumentTypeError,
    BackorderError,
    CannotCancel,
    ConcurrencyConflict,
    DuplicateOrder,
    DuplicateReceipt,
    EventHandlerError,
    InsufficientStock,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    LedgerCorrupted,
    NotReadyToShip,
    OrderTypeError,
    PolicyError,
    QuantityTypeError,
    UnknownOrder,
    UnknownSku,
    UnknownTier,
)
from .events import (
    Event,
    LineAllocated,
    LineBackordered,
    LineCancelled,
    LineReleased,
    LineShipped,
    OrderCancelled,
    OrderPlaced,
    StockAdjusted,
    StockReceived,
)
from .ledger import LedgerEntry, StockLedger
from .policies import AllocationPolicy, PartialFill, PriorityTiers, StrictFIFO
from .results import AdjustResult, CancelResult, PlaceResult, ReceiveResult, ShipResult
from .storage import InMemoryRepository, Repository

__version__ = "0.1.0"

__all__ = [
    "MAX_QUANTITY",
    "AdjustResult",
    "AllocationPolicy",
    "ArgumentTypeError",
    "BackorderBook",
    "BackorderError",
    "CancelResult",
    "CannotCancel",
    "Clock",
    "ConcurrencyConflict",
    "DuplicateOrder",
    "DuplicateReceipt",
    "Event",
    "EventHandlerError",
    "InMemoryRepository",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidOrder",
    "InvalidQuantity",
    "LedgerCorrupted",
    "LedgerEntry",
    "LineAllocated",
    "LineBackordered",
    "LineCancelled",
    "LineReleased",
    "LineShipped",
    "LineStatus",
    "NotReadyToShip",
    "Order",
    "OrderCancelled",
    "OrderLine",
    "OrderPlaced",
    "OrderStatus",
    "OrderTypeError",
    "PartialFill",
    "PlaceResult",
    "PolicyError",
    "PriorityTiers",
    "QuantityTypeError",
    "ReceiveResult",
    "Repository",
    "ShipResult",
    "StockAdjusted",
    "StockLedger",
    "StockLevel",
    "StockReceived",
    "StrictFIFO",
    "UnknownOrder",
    "UnknownSku",
    "UnknownTier",
]
