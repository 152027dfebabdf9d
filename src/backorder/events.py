"""Events: one frozen value per kind of thing that happened in a book.

Every operation returns the events it caused, and the book hands them, in
order, to every handler registered with `BackorderBook.subscribe`, after the
operation has succeeded. Each event carries `at`, the time from the book's
clock at which the operation ran.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from .domain import Order
from .eta import Eta

__all__ = [
    "EtaChanged",
    "Event",
    "HoldConfirmed",
    "HoldReleased",
    "LineAllocated",
    "LineBackordered",
    "LineCancelled",
    "LineFirmed",
    "LineReleased",
    "LineShipped",
    "OrderCancelled",
    "OrderExpired",
    "OrderPlaced",
    "PolicyChanged",
    "StockAdjusted",
    "StockHeld",
    "StockReceived",
    "StockReturned",
    "SupplyCancelled",
    "SupplyExpected",
    "TierChanged",
]


@attrs.frozen(slots=True)
class Event:
    """Base class of every event (has no fields of its own)."""


@attrs.frozen(slots=True)
class OrderPlaced(Event):
    """A new order entered the book (a retried identical order emits nothing)."""

    order_id: str
    order: Order
    at: datetime


@attrs.frozen(slots=True)
class LineAllocated(Event):
    """`quantity` units of stock on hand were allocated to a line."""

    order_id: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class LineBackordered(Event):
    """A line is short by `quantity` units and waits at `position` (1-based).

    `eta` is its first promised date (basis `"unknown"` while the SKU has no
    scheduled supply or lead time).
    """

    order_id: str
    sku: str
    quantity: int
    position: int
    at: datetime
    eta: Eta | None = None


@attrs.frozen(slots=True)
class LineReleased(Event):
    """`quantity` allocated units were taken back from a line.

    `reason` is `"cancel"` (the units were cancelled and went back to stock),
    `"adjustment"` (a count correction took them; the line is backordered
    again) or `"rebalance"` (`rebalance`, or a preempting policy, gave them to
    a line earlier in line; this one is backordered again at its own place).
    """

    order_id: str
    sku: str
    quantity: int
    reason: str
    at: datetime


@attrs.frozen(slots=True)
class LineFirmed(Event):
    """`quantity` allocated units of a line were marked firm (being picked):
    `rebalance` never takes them back."""

    order_id: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class LineCancelled(Event):
    """`quantity` units of a line were cancelled."""

    order_id: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class OrderCancelled(Event):
    """A whole order was cancelled: `quantity` units over all its lines."""

    order_id: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class LineShipped(Event):
    """`quantity` allocated units of a line left the warehouse."""

    order_id: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class StockReceived(Event):
    """`quantity` units of `sku` arrived (a goods receipt)."""

    sku: str
    quantity: int
    reference: str | None
    at: datetime


@attrs.frozen(slots=True)
class StockReturned(Event):
    """`quantity` shipped units of a line came back (a customer return).

    `restocked` is True when they went back on hand (a `"return"` ledger
    entry; the line is then served from them), False when they were
    written off (counted on the line only).
    """

    order_id: str
    sku: str
    quantity: int
    reference: str | None
    restocked: bool
    at: datetime


@attrs.frozen(slots=True)
class StockAdjusted(Event):
    """A count correction of `delta` units on hand (negative: units removed)."""

    sku: str
    delta: int
    reason: str
    at: datetime


@attrs.frozen(slots=True)
class OrderExpired(Event):
    """An order's fill-by deadline passed: `quantity` units were cancelled."""

    order_id: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class StockHeld(Event):
    """`quantity` available units of `sku` were held for a checkout until `expires_at`."""

    hold_id: str
    sku: str
    quantity: int
    expires_at: datetime
    at: datetime


@attrs.frozen(slots=True)
class HoldReleased(Event):
    """A hold gave `quantity` units back to the line.

    `reason` is `"released"`, `"expired"`, `"confirmed"` (what the order did
    not need) or `"adjustment"` (a count correction took them).
    """

    hold_id: str
    sku: str
    quantity: int
    reason: str
    at: datetime


@attrs.frozen(slots=True)
class HoldConfirmed(Event):
    """A hold became order `order_id`; `quantity` held units went to its line."""

    hold_id: str
    order_id: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class TierChanged(Event):
    """An order moved from tier `old` to tier `new`, keeping its arrival number."""

    order_id: str
    old: str
    new: str
    at: datetime


@attrs.frozen(slots=True)
class PolicyChanged(Event):
    """The book switched from policy `old` to policy `new` (their identities);
    every line kept its arrival number and was ranked again."""

    old: str
    new: str
    at: datetime


@attrs.frozen(slots=True)
class SupplyExpected(Event):
    """A scheduled receipt was recorded or changed: `quantity` due at `arriving`."""

    reference: str
    sku: str
    quantity: int
    arriving: datetime
    at: datetime


@attrs.frozen(slots=True)
class SupplyCancelled(Event):
    """A scheduled receipt of `quantity` units was dropped."""

    reference: str
    sku: str
    quantity: int
    at: datetime


@attrs.frozen(slots=True)
class EtaChanged(Event):
    """The promised date of a waiting line moved (its `at` or its basis)."""

    order_id: str
    sku: str
    old: Eta
    new: Eta
    at: datetime
