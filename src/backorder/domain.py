"""Domain values: order lines, orders, and the read views the book hands out.

These are immutable attrs values, validated when they are built, so a bad value
is refused at the boundary and never reaches the book's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import attrs

from .errors import (
    ArgumentTypeError,
    InvalidArgument,
    InvalidOrder,
    InvalidQuantity,
    OrderTypeError,
    QuantityTypeError,
    UnknownSku,
)

__all__ = [
    "MAX_QUANTITY",
    "LineStatus",
    "Order",
    "OrderLine",
    "OrderStatus",
    "StockLevel",
]

#: The largest quantity the library accepts: what a signed 64-bit column holds.
MAX_QUANTITY = 2**63 - 1


def check_quantity(value: object, field: str) -> int:
    """Return `value` if it is an int from 1 to `MAX_QUANTITY`, else raise.

    Raises:
        QuantityTypeError: `value` is not an `int` (or is a `bool`).
        InvalidQuantity: `value` is below 1 or above `MAX_QUANTITY`.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuantityTypeError(f"{field} must be an int, got {type(value).__name__} {value!r}")
    if value < 1 or value > MAX_QUANTITY:
        raise InvalidQuantity(f"{field} must be from 1 to {MAX_QUANTITY}, got {value!r}")
    return value


def check_delta(value: object, field: str) -> int:
    """Return `value` if it is a non-zero int within +-`MAX_QUANTITY`, else raise.

    Raises:
        QuantityTypeError: `value` is not an `int` (or is a `bool`).
        InvalidQuantity: `value` is 0 or beyond +-`MAX_QUANTITY`.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuantityTypeError(f"{field} must be an int, got {type(value).__name__} {value!r}")
    if value == 0 or not -MAX_QUANTITY <= value <= MAX_QUANTITY:
        raise InvalidQuantity(
            f"{field} must be a non-zero int from {-MAX_QUANTITY} to {MAX_QUANTITY}, got {value!r}"
        )
    return value


def check_text(value: object, field: str) -> str:
    """Return `value` if it is a non-empty `str`, else raise.

    Raises:
        ArgumentTypeError: `value` is not a `str`.
        InvalidArgument: `value` is empty or only whitespace.
    """
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{field} must be a str, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise InvalidArgument(f"{field} must not be empty, got {value!r}")
    return value


def check_aware(value: object, field: str) -> datetime:
    """Return `value` if it is a timezone-aware `datetime`, else raise.

    Raises:
        ArgumentTypeError: `value` is not a `datetime`.
        InvalidArgument: `value` is naive (has no UTC offset).
    """
    if not isinstance(value, datetime):
        raise ArgumentTypeError(f"{field} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{field} must be timezone-aware, got {value!r}")
    return value


def deadline(value: object, field: str) -> datetime:
    """The instant a deadline passes: an aware `datetime` as it is, a `date` at
    the start of the next day in UTC (so the whole day counts).

    Raises:
        ArgumentTypeError: `value` is neither a `date` nor a `datetime`.
        InvalidArgument: `value` is a naive `datetime`.
    """
    if isinstance(value, datetime):
        return check_aware(value, field)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc) + timedelta(days=1)
    raise ArgumentTypeError(
        f"{field} must be a date or an aware datetime, got {type(value).__name__} {value!r}"
    )


def _order_check(check: Any, value: object, field: str) -> Any:
    # Re-raise a value check as the order family, keeping its TypeError side.
    try:
        return check(value, field)
    except TypeError as exc:
        raise OrderTypeError(str(exc)) from None
    except ValueError as exc:
        raise InvalidOrder(str(exc)) from None


@attrs.frozen(slots=True)
class OrderLine:
    """One line of an order: `quantity` units of one SKU.

    Attributes:
        sku: the product's stock-keeping unit, a non-empty `str`.
        quantity: an `int` from 1 to 2**63 - 1 (not a `bool` or `float`).

    Raises:
        OrderTypeError: a field has the wrong type.
        InvalidOrder: a field has a bad value (empty SKU, quantity out of range).

    Cost: O(1).

    >>> OrderLine("MUG-RED", 2)
    OrderLine(sku='MUG-RED', quantity=2)
    """

    sku: str
    quantity: int

    def __attrs_post_init__(self) -> None:
        # Fast path for the common good values; the checks explain the bad ones.
        sku, quantity = self.sku, self.quantity
        if type(sku) is not str or not sku or sku.isspace():
            _order_check(check_text, sku, "OrderLine.sku")
        if type(quantity) is not int or not 0 < quantity <= MAX_QUANTITY:
            _order_check(check_quantity, quantity, "OrderLine.quantity")


def _to_lines(value: Iterable[OrderLine]) -> tuple[OrderLine, ...]:
    if type(value) is tuple:
        return value
    if isinstance(value, (str, bytes, OrderLine)) or not isinstance(value, Iterable):
        raise OrderTypeError(
            f"Order.lines must be a sequence of OrderLine, got {type(value).__name__} {value!r}"
        )
    return tuple(value)


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


def _to_metadata(value: Mapping[str, str]) -> Mapping[str, str]:
    if value is _NO_METADATA:
        return value
    if not isinstance(value, Mapping):
        raise OrderTypeError(
            f"Order.metadata must be a mapping of str to str, got {type(value).__name__} {value!r}"
        )
    copied = dict(value)
    for key, item in copied.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise OrderTypeError(f"Order.metadata must map str to str, got {key!r}: {item!r}")
    return MappingProxyType(copied)


@attrs.frozen(slots=True)
class Order:
    """A customer's order: one or more lines, each for a different SKU.

    Attributes:
        id: the order's id, unique in the book, a non-empty `str`.
        lines: at least one `OrderLine`, no SKU twice.
        tier: the customer's tier (`PriorityTiers` ranks by it).
        ship_complete: ship only when no line has anything backordered.
        placed_at: a timezone-aware `datetime`; when `None` the book stamps it
            from its clock.
        metadata: free-form `str` to `str` pairs kept with the order (copied
            into a read-only mapping).
        fill_by: the customer's "cancel if not filled by": an aware
            `datetime`, or a `date` meaning the end of that day in UTC (the
            deadline passes at the start of the next day). `book.expire()`
            cancels what is still short once it has passed.

    Raises:
        OrderTypeError: a field has the wrong type.
        InvalidOrder: a field has a bad value: empty id, no lines, a SKU twice,
            a naive `placed_at` or `fill_by`, an empty tier.

    Cost: O(lines).

    >>> order = Order("A-1", [OrderLine("MUG-RED", 2)])
    >>> order.lines
    (OrderLine(sku='MUG-RED', quantity=2),)
    """

    id: str
    lines: tuple[OrderLine, ...] = attrs.field(converter=_to_lines)
    tier: str = "standard"
    ship_complete: bool = False
    placed_at: datetime | None = None
    metadata: Mapping[str, str] = attrs.field(
        default=_NO_METADATA, converter=_to_metadata, hash=False
    )
    fill_by: datetime | date | None = None

    def __attrs_post_init__(self) -> None:
        # Fast paths for the common good values; the checks explain the bad ones.
        order_id, tier = self.id, self.tier
        if type(order_id) is not str or not order_id or order_id.isspace():
            _order_check(check_text, order_id, "Order.id")
        if not self.lines:
            raise InvalidOrder(f"Order.lines must hold at least one line, got {self.lines!r}")
        seen: set[str] = set()
        for line in self.lines:
            if type(line) is not OrderLine and not isinstance(line, OrderLine):
                raise OrderTypeError(
                    f"Order.lines must hold OrderLine values, got {type(line).__name__} {line!r}"
                )
            if line.sku in seen:
                raise InvalidOrder(f"Order.lines has SKU {line.sku!r} twice")
            seen.add(line.sku)
        if type(tier) is not str or not tier or tier.isspace():
            _order_check(check_text, tier, "Order.tier")
        if type(self.ship_complete) is not bool:
            raise OrderTypeError(
                f"Order.ship_complete must be a bool, got "
                f"{type(self.ship_complete).__name__} {self.ship_complete!r}"
            )
        if self.placed_at is not None:
            _order_check(check_aware, self.placed_at, "Order.placed_at")
        if self.fill_by is not None:
            _order_check(deadline, self.fill_by, "Order.fill_by")

    @property
    def deadline(self) -> datetime | None:
        """The instant `fill_by` passes (aware), or None. Cost: O(1)."""
        return None if self.fill_by is None else deadline(self.fill_by, "Order.fill_by")

    def _stamped(self, at: datetime) -> Order:
        # A copy with `placed_at` set, for the book: every other field is already
        # validated, so it is copied slot by slot (attrs.evolve re-validates).
        new = object.__new__(Order)
        for name in ("id", "lines", "tier", "ship_complete", "metadata", "fill_by"):
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "placed_at", at)
        return new

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The read-only metadata mapping cannot be pickled as it is; rebuild
        # from a plain dict (for pickle, copy and multiprocessing).
        return (
            Order,
            (
                self.id,
                self.lines,
                self.tier,
                self.ship_complete,
                self.placed_at,
                dict(self.metadata),
                self.fill_by,
            ),
        )

    def _with_tier(self, tier: str) -> Order:
        # A copy in another tier, for the book's change_tier.
        new = self._stamped(self.placed_at) if self.placed_at is not None else attrs.evolve(self)
        object.__setattr__(new, "tier", tier)
        return new

    def same_request(self, other: Order) -> bool:
        """Tell whether `other` is a retry of this order.

        True when id, lines, tier, `ship_complete` and metadata are equal and
        `other.placed_at` is `None` or equal to this one's. Cost: O(lines).
        """
        return (
            self.id == other.id
            and self.lines == other.lines
            and self.tier == other.tier
            and self.ship_complete == other.ship_complete
            and dict(self.metadata) == dict(other.metadata)
            and self.fill_by == other.fill_by
            and (other.placed_at is None or other.placed_at == self.placed_at)
        )


@attrs.frozen(slots=True)
class LineStatus:
    """Where one order line stands.

    `backordered = ordered - allocated - shipped - cancelled` always holds.
    """

    order_id: str
    sku: str
    tier: str
    ordered: int
    allocated: int
    shipped: int
    cancelled: int
    backordered: int


@attrs.frozen(slots=True)
class OrderStatus:
    """An order and the status of each of its lines, in the order's line order."""

    order: Order
    lines: tuple[LineStatus, ...]

    @property
    def order_id(self) -> str:
        """The order's id."""
        return self.order.id

    @property
    def backordered(self) -> int:
        """Units still waiting for stock, over all lines."""
        return sum(line.backordered for line in self.lines)

    @property
    def allocated(self) -> int:
        """Units allocated and not yet shipped, over all lines."""
        return sum(line.allocated for line in self.lines)

    def line(self, sku: str) -> LineStatus:
        """The status of the line for `sku`.

        Raises:
            UnknownSku: the order has no line for `sku`.

        Cost: O(lines).
        """
        for line in self.lines:
            if line.sku == sku:
                return line
        raise UnknownSku(f"order {self.order.id!r} has no line for sku {sku!r}")


@attrs.frozen(slots=True)
class StockLevel:
    """The stock of one SKU: `available = on_hand - allocated`."""

    sku: str
    on_hand: int
    allocated: int
    available: int
