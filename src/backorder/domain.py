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
    shown,
)

__all__ = [
    "MAX_DURATION",
    "MAX_QUANTITY",
    "MAX_TIMEOUT",
    "LineStatus",
    "Order",
    "OrderLine",
    "OrderStatus",
    "StockLevel",
]

#: The largest quantity the library accepts: what a signed 64-bit column holds.
MAX_QUANTITY = 2**63 - 1

#: The longest duration (a hold's ttl, a lead time, a lease) the library
#: accepts: 100 years (36,525 days), so that "now plus it" can be computed for
#: any clock before the year 9899.
MAX_DURATION = timedelta(days=36_525)

#: The longest timeout in seconds (about 23 days): SQLite counts its busy
#: timeout in milliseconds in a 32-bit int.
MAX_TIMEOUT = 2_000_000.0

_UTC = timezone.utc

# sets a field of a frozen value in its own __init__ (attrs' generated one does the same)
_set = object.__setattr__


def check_quantity(value: object, field: str) -> int:
    """Return `value` as an exact `int` if it is an int from 1 to `MAX_QUANTITY`, else raise.

    An `int` subclass (an `IntEnum` member, ...) is accepted and its plain
    `int` value returned (its own arithmetic and comparisons are never used),
    so callers must use the returned value.

    Raises:
        QuantityTypeError: `value` is not an `int` (or is a `bool`).
        InvalidQuantity: `value` is below 1 or above `MAX_QUANTITY`.

    Cost: O(1).
    """
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise QuantityTypeError(
                f"{field} must be an int, got {type(value).__name__} {shown(value)}"
            )
        value = int.__int__(value)
    if value < 1 or value > MAX_QUANTITY:
        raise InvalidQuantity(f"{field} must be from 1 to {MAX_QUANTITY}, got {shown(value)}")
    return value


def check_delta(value: object, field: str) -> int:
    """Return `value` as an exact `int` if it is a non-zero int within +-`MAX_QUANTITY`, else raise.

    An `int` subclass is accepted and its plain `int` value returned (use it).

    Raises:
        QuantityTypeError: `value` is not an `int` (or is a `bool`).
        InvalidQuantity: `value` is 0 or beyond +-`MAX_QUANTITY`.

    Cost: O(1).
    """
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise QuantityTypeError(
                f"{field} must be an int, got {type(value).__name__} {shown(value)}"
            )
        value = int.__int__(value)
    if value == 0 or not -MAX_QUANTITY <= value <= MAX_QUANTITY:
        raise InvalidQuantity(
            f"{field} must be a non-zero int from {-MAX_QUANTITY} to {MAX_QUANTITY}, "
            f"got {shown(value)}"
        )
    return value


def check_text(value: object, field: str, *, allow_empty: bool = False) -> str:
    """Return `value` as an exact `str` if it is usable text, else raise.

    Usable: a `str` (a subclass is returned as a plain `str`; use the returned
    value) that is not empty or only whitespace (unless `allow_empty`), holds
    no NUL character and no lone surrogate (`"\\ud800"`, which no UTF-8
    store can hold). So every repository accepts exactly the same text.

    Raises:
        ArgumentTypeError: `value` is not a `str`.
        InvalidArgument: `value` is empty or only whitespace, or holds a NUL
            or a lone surrogate.

    Cost: O(len(value)).
    """
    if type(value) is not str:
        if not isinstance(value, str):
            raise ArgumentTypeError(
                f"{field} must be a str, got {type(value).__name__} {shown(value)}"
            )
        value = str.__str__(value)
    if not allow_empty and not value.strip():
        raise InvalidArgument(f"{field} must not be empty, got {shown(value)}")
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not hold a NUL character, got {shown(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"{field} must be valid Unicode text (no lone surrogate), got {shown(value)}"
            ) from None
    return value


def check_aware(value: object, field: str) -> datetime:
    """Return `value` if it is a timezone-aware `datetime` that has a UTC form, else raise.

    Raises:
        ArgumentTypeError: `value` is not a `datetime`.
        InvalidArgument: `value` is naive (has no UTC offset), or lies so
            close to `datetime.min`/`datetime.max` that its UTC time is out of
            range (year 1 or 9999 with an offset pushing it past the end).

    Cost: O(1).
    """
    if not isinstance(value, datetime):
        raise ArgumentTypeError(
            f"{field} must be a datetime, got {type(value).__name__} {shown(value)}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{field} must be timezone-aware, got {shown(value)}")
    if value.year in (1, 9999):
        try:
            value.astimezone(_UTC)
        except OverflowError:
            raise InvalidArgument(
                f"{field} has no UTC time in the range of datetime, got {shown(value)}"
            ) from None
    return value


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    """Whether two aware datetimes are the same instant, whatever their zones.

    Unlike `==`, which compares wall times when both share one `tzinfo` and
    calls any time in a DST fold unequal to every time in another zone, this
    compares UTC times: `02:30+02:00[Europe/Berlin]` in the October fold is
    the same instant as `00:30+00:00`, and not the same as the other
    `02:30` an hour later. Two `None` are the same; `None` and a time are not.

    Cost: O(1).
    """
    if a is None or b is None:
        return a is b
    return a.astimezone(_UTC) == b.astimezone(_UTC)


def _when_key(value: datetime | date | None) -> object:
    # How Order compares and hashes a time field: datetimes by their UTC instant
    # (see same_instant); a date as itself (never equal to a datetime).
    if isinstance(value, datetime):
        return (datetime, value.astimezone(_UTC))
    return value


def check_timeout(value: object, field: str) -> float:
    """Return `value` as a `float` if it is a finite number of seconds from 0 to `MAX_TIMEOUT`.

    Raises:
        ArgumentTypeError: `value` is not an `int` or `float` (a `bool` is refused).
        InvalidArgument: `value` is negative, NaN, infinite, or above `MAX_TIMEOUT`.

    Cost: O(1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"{field} must be a number of seconds, got {type(value).__name__} {shown(value)}"
        )
    if not 0 <= value <= MAX_TIMEOUT:  # NaN fails every comparison
        raise InvalidArgument(
            f"{field} must be a finite number of seconds from 0 to {MAX_TIMEOUT:g}, "
            f"got {shown(value)}"
        )
    return float(value)


def check_duration(value: object, field: str) -> timedelta:
    """Return `value` if it is a positive `timedelta` of at most `MAX_DURATION` (100 years).

    The bound keeps "now plus the duration" computable for every clock before
    the year 9899, so a duration accepted today never makes a later operation
    overflow. A `timedelta` subclass is returned as a plain `timedelta`.

    Raises:
        ArgumentTypeError: `value` is not a `timedelta`.
        InvalidArgument: `value` is zero, negative, or longer than 100 years.

    Cost: O(1).
    """
    if not isinstance(value, timedelta):
        raise ArgumentTypeError(
            f"{field} must be a timedelta, got {type(value).__name__} {shown(value)}"
        )
    if type(value) is not timedelta:
        value = timedelta(value.days, value.seconds, value.microseconds)
    if value <= timedelta(0) or value > MAX_DURATION:
        raise InvalidArgument(
            f"{field} must be a positive timedelta of at most {MAX_DURATION.days} days, "
            f"got {shown(value)}"
        )
    return value


def add_duration(at: datetime, duration: timedelta, field: str) -> datetime:
    """`at` plus `duration` of elapsed time (added in UTC), in `at`'s zone.

    Added in UTC, so a 15-minute hold taken in a repeated DST hour lasts 15
    real minutes, and a 1-day lead time across a DST change is 24 hours.

    Raises:
        InvalidArgument: the result is beyond the range of `datetime`
            (the message names `field`, `at` and `duration`).

    Cost: O(1).
    """
    try:
        return (at.astimezone(_UTC) + duration).astimezone(at.tzinfo)
    except OverflowError:
        raise InvalidArgument(
            f"{field}: {shown(at)} plus {shown(duration)} is beyond the last datetime "
            f"({datetime.max.date()})"
        ) from None


def deadline(value: object, field: str) -> datetime:
    """The instant a deadline passes: an aware `datetime` as it is, a `date` at
    the start of the next day in UTC (so the whole day counts).

    Raises:
        ArgumentTypeError: `value` is neither a `date` nor a `datetime`.
        InvalidArgument: `value` is a naive `datetime`, or the last date
            (9999-12-31, whose next day does not exist).

    Cost: O(1).
    """
    if isinstance(value, datetime):
        return check_aware(value, field)
    if isinstance(value, date):
        if value >= date.max:
            raise InvalidArgument(
                f"{field} must be a date before {date.max} (the deadline is the start of "
                f"the next day), got {shown(value)}"
            )
        return datetime(value.year, value.month, value.day, tzinfo=_UTC) + timedelta(days=1)
    raise ArgumentTypeError(
        f"{field} must be a date or an aware datetime, got {type(value).__name__} {shown(value)}"
    )


def _unusual(text: object) -> bool:
    # False for the common plain ASCII id: no need for check_text's full look.
    # (OrderLine and Order inline this test: they are built on the hot path.)
    return (
        type(text) is not str or not text or text.isspace() or not text.isascii() or "\x00" in text
    )


def _order_check(check: Any, value: object, field: str) -> Any:
    # Re-raise a value check as the order family, keeping its TypeError side.
    try:
        return check(value, field)
    except TypeError as exc:
        raise OrderTypeError(str(exc)) from None
    except ValueError as exc:
        raise InvalidOrder(str(exc)) from None


@attrs.frozen(slots=True, init=False)
class OrderLine:
    """One line of an order: `quantity` units of one SKU.

    Attributes:
        sku: the product's stock-keeping unit, a non-empty `str` with no NUL
            and no lone surrogate.
        quantity: an `int` from 1 to 2**63 - 1 (not a `bool` or `float`; an
            `IntEnum` or other `int` subclass is stored as its plain `int`).

    Raises:
        OrderTypeError: a field has the wrong type.
        InvalidOrder: a field has a bad value (empty SKU, a NUL or lone
            surrogate in it, quantity out of range).

    Cost: O(1).

    >>> OrderLine("MUG-RED", 2)
    OrderLine(sku='MUG-RED', quantity=2)
    """

    sku: str
    quantity: int

    def __init__(self, sku: str, quantity: int) -> None:
        # (written out, not generated: the same checks, fewer calls; fast
        # path for the common good values, the checks explain the bad ones)
        if type(sku) is not str or not sku or sku.isspace() or not sku.isascii() or "\x00" in sku:
            sku = _order_check(check_text, sku, "OrderLine.sku")
        if type(quantity) is not int or not 0 < quantity <= MAX_QUANTITY:
            quantity = _order_check(check_quantity, quantity, "OrderLine.quantity")
        _set(self, "sku", sku)
        _set(self, "quantity", quantity)


def _to_lines(value: Iterable[OrderLine]) -> tuple[OrderLine, ...]:
    if type(value) is tuple:
        return value
    if isinstance(value, (str, bytes, OrderLine)) or not isinstance(value, Iterable):
        raise OrderTypeError(
            "Order.lines must be a sequence of OrderLine, "
            f"got {type(value).__name__} {shown(value)}"
        )
    return tuple(value)


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


def _to_metadata(value: Mapping[str, str]) -> Mapping[str, str]:
    if value is _NO_METADATA:
        return value
    if not isinstance(value, Mapping):
        raise OrderTypeError(
            "Order.metadata must be a mapping of str to str, "
            f"got {type(value).__name__} {shown(value)}"
        )
    copied: dict[str, str] = {}
    for key, item in dict(value).items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise OrderTypeError(
                f"Order.metadata must map str to str, got {shown(key)}: {shown(item)}"
            )
        if _unusual(key) or _unusual(item):
            name = _metadata_text(key, "Order.metadata key")
            copied[name] = _metadata_text(item, f"Order.metadata[{shown(name)}]")
        else:
            copied[key] = item
    return MappingProxyType(copied)


def _metadata_text(text: str, field: str) -> str:
    # Metadata text may be empty, but holds no NUL and no lone surrogate.
    try:
        return check_text(text, field, allow_empty=True)
    except ValueError as exc:
        raise InvalidOrder(str(exc)) from None


@attrs.frozen(slots=True, init=False)
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
            cancels what is still short once it has passed. The last date,
            9999-12-31, is refused (its next day does not exist).

    Orders compare (and hash) `placed_at` and a `fill_by` time as instants,
    so the same order read back from storage, or sent by another process,
    equals the one placed, whatever the zone (DST folds and gaps included).
    A str subclass or `int` subclass in a field is stored as a plain `str` or
    `int`.

    Raises:
        OrderTypeError: a field has the wrong type.
        InvalidOrder: a field has a bad value: empty id, no lines, a SKU twice,
            a naive `placed_at` or `fill_by`, an empty tier, a NUL or lone
            surrogate in any text (metadata included).

    Cost: O(lines).

    >>> order = Order("A-1", [OrderLine("MUG-RED", 2)])
    >>> order.lines
    (OrderLine(sku='MUG-RED', quantity=2),)
    """

    id: str
    lines: tuple[OrderLine, ...] = attrs.field(converter=_to_lines)
    tier: str = "standard"
    ship_complete: bool = False
    placed_at: datetime | None = attrs.field(default=None, eq=_when_key)
    metadata: Mapping[str, str] = attrs.field(
        default=_NO_METADATA, converter=_to_metadata, hash=False
    )
    fill_by: datetime | date | None = attrs.field(default=None, eq=_when_key)

    def __init__(
        self,
        id: str,
        lines: Iterable[OrderLine],
        tier: str = "standard",
        ship_complete: bool = False,
        placed_at: datetime | None = None,
        metadata: Mapping[str, str] = _NO_METADATA,
        fill_by: datetime | date | None = None,
    ) -> None:
        # (written out, not generated: the converters and checks of the
        # fields, in the same order, with fewer calls; fast paths for the
        # common good values, the checks explain the bad ones)
        order_lines = lines if type(lines) is tuple else _to_lines(lines)
        if metadata is not _NO_METADATA:
            metadata = _to_metadata(metadata)
        if type(id) is not str or not id or id.isspace() or not id.isascii() or "\x00" in id:
            id = _order_check(check_text, id, "Order.id")
        if not order_lines:
            raise InvalidOrder(f"Order.lines must hold at least one line, got {order_lines!r}")
        if len(order_lines) == 1:
            line = order_lines[0]
            if type(line) is not OrderLine and not isinstance(line, OrderLine):
                raise OrderTypeError(
                    "Order.lines must hold OrderLine values, "
                    f"got {type(line).__name__} {shown(line)}"
                )
        else:
            seen: set[str] = set()
            for line in order_lines:
                if type(line) is not OrderLine and not isinstance(line, OrderLine):
                    raise OrderTypeError(
                        "Order.lines must hold OrderLine values, "
                        f"got {type(line).__name__} {shown(line)}"
                    )
                if line.sku in seen:
                    raise InvalidOrder(f"Order.lines has SKU {shown(line.sku)} twice")
                seen.add(line.sku)
        if (
            type(tier) is not str
            or not tier
            or tier.isspace()
            or not tier.isascii()
            or "\x00" in tier
        ):
            tier = _order_check(check_text, tier, "Order.tier")
        if type(ship_complete) is not bool:
            raise OrderTypeError(
                f"Order.ship_complete must be a bool, got "
                f"{type(ship_complete).__name__} {shown(ship_complete)}"
            )
        if placed_at is not None:
            _order_check(check_aware, placed_at, "Order.placed_at")
        if fill_by is not None:
            _order_check(deadline, fill_by, "Order.fill_by")
        _set(self, "id", id)
        _set(self, "lines", order_lines)
        _set(self, "tier", tier)
        _set(self, "ship_complete", ship_complete)
        _set(self, "placed_at", placed_at)
        _set(self, "metadata", metadata)
        _set(self, "fill_by", fill_by)

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

        True when id, lines, tier, `ship_complete`, metadata and `fill_by` are
        equal and `other.placed_at` is `None` or the same instant as this
        one's. Times are compared as instants (`same_instant`), so a retry
        matches whatever zone its times are in, DST folds and gaps included,
        in another process or after a restart. Cost: O(lines).
        """
        return (
            self.id == other.id
            and self.lines == other.lines
            and self.tier == other.tier
            and self.ship_complete == other.ship_complete
            and dict(self.metadata) == dict(other.metadata)
            and _when_key(self.fill_by) == _when_key(other.fill_by)
            and (other.placed_at is None or same_instant(other.placed_at, self.placed_at))
        )


@attrs.frozen(slots=True)
class LineStatus:
    """Where one order line stands.

    `backordered = ordered - allocated - shipped - cancelled` always holds.

    Attributes:
        firm: of the `allocated` units, those marked firm (being picked or
            packed, see `BackorderBook.firm`): `0 <= firm <= allocated`;
            `rebalance` never takes them.
        returned: of the `shipped` units, those that came back
            (`BackorderBook.receive_return`): `0 <= returned <= shipped`.
    """

    order_id: str
    sku: str
    tier: str
    ordered: int
    allocated: int
    shipped: int
    cancelled: int
    backordered: int
    firm: int = 0
    returned: int = 0


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
        raise UnknownSku(f"order {shown(self.order.id)} has no line for sku {shown(sku)}")


@attrs.frozen(slots=True)
class StockLevel:
    """The stock of one SKU: `available = on_hand - allocated`."""

    sku: str
    on_hand: int
    allocated: int
    available: int
