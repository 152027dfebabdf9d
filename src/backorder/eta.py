"""Promised dates: the `Eta` value and how supply turns into dates."""

from __future__ import annotations

from datetime import date, datetime, timezone

import attrs

from .domain import check_aware
from .errors import ArgumentTypeError

__all__ = ["BASES", "Eta"]

SCHEDULED = "scheduled"
LEAD_TIME = "lead_time"
UNKNOWN = "unknown"

#: What an ETA rests on.
BASES = (SCHEDULED, LEAD_TIME, UNKNOWN)


@attrs.frozen(slots=True)
class Eta:
    """When a waiting line will be completely allocated.

    Attributes:
        at: the aware datetime, or None when nothing tells (basis "unknown").
        basis: `"scheduled"` (exact: the arrival of a scheduled receipt, if
            every receipt arrives as planned and nothing else changes),
            `"lead_time"` (an estimate: now plus the SKU's supplier lead
            time, for demand beyond all scheduled supply) or `"unknown"`.
        first_unit_at: under partial fill, when the line's first unit is
            allocated (same bases); None under strict fill.
        first_unit_basis: the basis of `first_unit_at`.
    """

    at: datetime | None
    basis: str
    first_unit_at: datetime | None = None
    first_unit_basis: str | None = None

    def same_date(self, other: Eta | None) -> bool:
        """Whether `other` promises the same (`at`, `basis`). Cost: O(1)."""
        return other is not None and self.at == other.at and self.basis == other.basis


def arrival(value: object, field: str) -> datetime:
    """An arrival time: an aware datetime as it is, a `date` at the start of that day (UTC).

    Raises:
        ArgumentTypeError: neither a `date` nor a `datetime`.
        InvalidArgument: a naive `datetime`.
    """
    if isinstance(value, datetime):
        return check_aware(value, field)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise ArgumentTypeError(
        f"{field} must be a date or an aware datetime, got {type(value).__name__} {value!r}"
    )
