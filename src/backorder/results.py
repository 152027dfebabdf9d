"""What each operation of the book returns: the state it left and its events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from .domain import LineStatus, Order, OrderStatus, StockLevel
from .eta import Eta
from .events import Event

__all__ = [
    "AdjustResult",
    "CancelResult",
    "ExpectResult",
    "ExpireResult",
    "FirmResult",
    "HoldResult",
    "OrderEta",
    "OutboxEvent",
    "PlaceResult",
    "RebalanceResult",
    "ReceiveResult",
    "ReturnResult",
    "SettingResult",
    "ShipResult",
    "TierResult",
]


@attrs.frozen(slots=True)
class PlaceResult:
    """What `place` did.

    Attributes:
        status: the order's status right after the operation.
        events: the events it caused, in order (empty for a retry).
        replayed: True when the order was already in the book and nothing changed.
    """

    status: OrderStatus
    events: tuple[Event, ...]
    replayed: bool = False

    @property
    def order(self) -> Order:
        """The order as stored (with `placed_at` stamped)."""
        return self.status.order

    @property
    def lines(self) -> tuple[LineStatus, ...]:
        """The status of each line, in the order's line order."""
        return self.status.lines


# -- a place's status, built when first read ------------------------------
#
# Most callers of `place` never read the status it returns, so the book hands
# back a `PlaceResult` whose `status` slot holds a snapshot of plain values
# (the order and each line's counters, taken when the result is made) and
# builds the `OrderStatus` from it on first read. `status` is read through
# `_StatusOnRead`, so equality, hashing, repr, pickling, copying and
# `attrs.asdict`/`evolve` see the built status: a user cannot tell.

# marks a snapshot in the slot (a status value is never this tuple)
_SNAPSHOT = object()

# (sku, ordered, allocated, shipped, cancelled, firm, returned) of one line
LineCounts = tuple[str, int, int, int, int, int, int]


def _status_from(snapshot: tuple[Any, ...]) -> OrderStatus:
    _, order, counts = snapshot
    order_id, tier = order.id, order.tier
    return OrderStatus(
        order,
        tuple(
            LineStatus(
                order_id,
                sku,
                tier,
                ordered,
                allocated,
                shipped,
                cancelled,
                ordered - allocated - shipped - cancelled,
                firm,
                returned,
            )
            for sku, ordered, allocated, shipped, cancelled, firm, returned in counts
        ),
    )


class _StatusOnRead:
    # The `status` attribute of PlaceResult: the slot, built from its
    # snapshot (once) when it holds one.

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, result: object, owner: type | None = None) -> Any:
        if result is None:
            return self.slot
        value = self.slot.__get__(result, owner)
        if type(value) is tuple and len(value) == 3 and value[0] is _SNAPSHOT:
            value = _status_from(value)
            self.slot.__set__(result, value)
        return value

    def __set__(self, result: object, value: object) -> None:
        self.slot.__set__(result, value)

    def __delete__(self, result: object) -> None:
        self.slot.__delete__(result)


_status_slot: Any = PlaceResult.__dict__["status"]
setattr(PlaceResult, "status", _StatusOnRead(_status_slot))  # noqa: B010
_set_status = _status_slot.__set__
_set_events: Any = PlaceResult.__dict__["events"].__set__
_set_replayed: Any = PlaceResult.__dict__["replayed"].__set__
_new = object.__new__


def placed(order: Order, counts: tuple[LineCounts, ...], events: tuple[Event, ...]) -> PlaceResult:
    """The `PlaceResult` of an order just placed (`replayed` False), from the
    order as stored and each line's counters now; its `status` is built from
    them when first read. For the engine. O(1); O(lines) on first read."""
    result: PlaceResult = _new(PlaceResult)
    _set_status(result, (_SNAPSHOT, order, counts))
    _set_events(result, events)
    _set_replayed(result, False)
    return result


@attrs.frozen(slots=True)
class ReceiveResult:
    """What `receive` did: the SKU's stock after it, and the events.

    `replayed` is True when the `(sku, reference)` pair was already counted
    and nothing changed.
    """

    stock: StockLevel
    events: tuple[Event, ...]
    replayed: bool = False


@attrs.frozen(slots=True)
class AdjustResult:
    """What `adjust` did: the SKU's stock after it, units taken back, events."""

    stock: StockLevel
    reclaimed: int
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class CancelResult:
    """What `cancel` did: the order's status after it, units cancelled, events."""

    status: OrderStatus
    cancelled: int
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class ShipResult:
    """What `ship` did: the order's status after it, units shipped, events."""

    status: OrderStatus
    shipped: int
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class FirmResult:
    """What `firm` did: the order's status after it, units marked firm, events."""

    status: OrderStatus
    firmed: int
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class RebalanceResult:
    """What `rebalance` did.

    Attributes:
        moved: units taken back from lines later in line (each a release of
            reason `"rebalance"`) and given to earlier ones.
        allocated: units allocated to the lines served, those moved included
            (the rest came from available stock).
        events: the events, in order.
    """

    moved: int
    allocated: int
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class ReturnResult:
    """What `receive_return` did: the line's order after it, the SKU's stock,
    the events; `replayed` is True when the `(order_id, sku, reference)`
    return was already counted and nothing changed."""

    status: OrderStatus
    stock: StockLevel
    events: tuple[Event, ...]
    replayed: bool = False


@attrs.frozen(slots=True)
class ExpireResult:
    """What `expire` did: the orders expired, the holds released, the events."""

    expired: tuple[str, ...]
    released_holds: tuple[str, ...]
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class HoldResult:
    """What `hold` or `release_hold` did: the hold, the SKU's stock after, events."""

    hold_id: str
    sku: str
    quantity: int
    expires_at: datetime
    stock: StockLevel
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class TierResult:
    """What `change_tier` did: the order's status after it, and the events."""

    status: OrderStatus
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class ExpectResult:
    """A scheduled receipt as it stands after the operation, and the events."""

    reference: str
    sku: str
    quantity: int
    arriving: datetime
    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class OrderEta:
    """An order's promised dates.

    Attributes:
        eta: the order's date: the latest of its lines' (None when nothing is
            backordered); for a ship-complete order, when it can ship.
        lines: `(sku, Eta or None)` per line, in the order's line order.
    """

    order_id: str
    ship_complete: bool
    eta: Eta | None
    lines: tuple[tuple[str, Eta | None], ...]


@attrs.frozen(slots=True)
class SettingResult:
    """What changing a setting (a lead time, a backorder limit) caused: its events."""

    events: tuple[Event, ...]


@attrs.frozen(slots=True)
class OutboxEvent:
    """An event waiting in the outbox (`BackorderBook.pending_events`).

    Attributes:
        id: its number in the outbox (increasing; pass it to `mark_published`).
        event: the event itself.
    """

    id: int
    event: Event
