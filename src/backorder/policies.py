"""Allocation policies: who is served first, and how much the head of a line gets.

The book keeps each SKU's short lines in order of `(policy.rank(order), seq)`,
where `seq` is the book's own arrival counter, and offers stock only to the
head of that line. So a policy chooses *how much* the head takes (`allot`) and
*which class* of customer goes first (`rank`), but can never serve a later
line of the same rank before an earlier one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import attrs

from .domain import LineStatus, Order
from .errors import ArgumentTypeError, InvalidArgument, UnknownTier

__all__ = [
    "AllocationPolicy",
    "PartialFill",
    "PriorityTiers",
    "StrictFIFO",
    "policy_from_identity",
    "policy_identity",
]


@runtime_checkable
class AllocationPolicy(Protocol):
    """What the book needs from an allocation policy.

    Implement both methods; neither may change the book. The book checks
    every value returned and raises `PolicyError` (changing nothing) when one
    is out of range.

    Optionally, a policy may have a `preempts` attribute: when it is true the
    book runs `rebalance` on every SKU an operation touches (`allot` is then
    also offered the units it could take from lines after the head).
    """

    def rank(self, order: Order) -> int:
        """The order's class in every SKU's line: lower is served first.

        Called once per order, at `place`. Must be an `int`. May raise a
        `BackorderError` (such as `UnknownTier`) to refuse the order.
        """
        ...

    def allot(self, line: LineStatus, available: int) -> int:
        """How many of `available` units the head of the line takes now.

        `0` means the head waits, and so does everyone behind it. Otherwise
        the value must be from 1 to `min(available, line.backordered)`.
        """
        ...


@attrs.frozen(slots=True)
class StrictFIFO:
    """Everyone in one class; the head's whole shortfall at once, or it waits.

    A big order at the head blocks the smaller ones behind it until enough
    stock has arrived for all of it (head-of-line blocking): strict
    first come, first served. Cost: O(1) per call.
    """

    def rank(self, order: Order) -> int:
        """Always 0: arrival order alone decides. Cost: O(1)."""
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        """The head's whole shortfall if it is available, else 0. Cost: O(1)."""
        return line.backordered if line.backordered <= available else 0


@attrs.frozen(slots=True)
class PartialFill:
    """Everyone in one class; the head takes whatever is available.

    Stock never sits idle while someone waits. Cost: O(1) per call.
    """

    def rank(self, order: Order) -> int:
        """Always 0: arrival order alone decides. Cost: O(1)."""
        return 0

    def allot(self, line: LineStatus, available: int) -> int:
        """`min(available, line.backordered)`. Cost: O(1)."""
        return min(available, line.backordered)


def _to_tiers(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ArgumentTypeError(
            f"tiers must be a sequence of str, got {type(value).__name__} {value!r}"
        )
    return tuple(value)


@attrs.frozen(slots=True)
class PriorityTiers:
    """Tiers served in the order given; arrival order within a tier.

    Attributes:
        tiers: tier names, first served first (at least one, no repeats).
        fill: decides how much the head takes (`PartialFill()` by default;
            `StrictFIFO()` for head-of-line blocking).
        preempt: when True the policy `preempts`: the book rebalances every
            SKU an operation touches, so a contract order placed after
            standard orders took the stock is served at once from the last
            standard lines' units that are not firm (see `BackorderBook.rebalance`).
            When False (the default) a tier orders the queue only, and
            stock moves between orders only at `rebalance()`.

    Raises:
        ArgumentTypeError, InvalidArgument: `tiers` is empty, repeats a name or
            holds something other than a non-empty `str`; `fill` has no
            `allot`; `preempt` is not a bool.

    A VIP order placed later is served before standard orders placed earlier;
    two VIP orders are served in the order they were placed.
    Cost: O(1) per call.
    """

    tiers: tuple[str, ...] = attrs.field(
        default=("contract", "vip", "standard"), converter=_to_tiers
    )
    fill: AllocationPolicy = attrs.field(factory=PartialFill)
    preempt: bool = False
    _index: dict[str, int] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        if not self.tiers:
            raise InvalidArgument(f"tiers must name at least one tier, got {self.tiers!r}")
        for tier in self.tiers:
            if not isinstance(tier, str):
                raise ArgumentTypeError(f"tiers must hold str, got {type(tier).__name__} {tier!r}")
            if not tier.strip():
                raise InvalidArgument(f"tiers must not hold an empty name, got {tier!r}")
        if len(set(self.tiers)) != len(self.tiers):
            raise InvalidArgument(f"tiers must not repeat a name, got {self.tiers!r}")
        if type(self.preempt) is not bool:
            raise ArgumentTypeError(
                f"preempt must be a bool, got {type(self.preempt).__name__} {self.preempt!r}"
            )
        if not callable(getattr(self.fill, "allot", None)):
            raise ArgumentTypeError(f"fill must have an allot method, got {self.fill!r}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tiers)})

    @property
    def preempts(self) -> bool:
        """`preempt`: whether the book rebalances every SKU an operation touches. Cost: O(1)."""
        return self.preempt

    def rank(self, order: Order) -> int:
        """The index of `order.tier` in `tiers`.

        Raises:
            UnknownTier: `order.tier` is not one of `tiers`.

        Cost: O(1).
        """
        try:
            return self._index[order.tier]
        except KeyError:
            raise UnknownTier(
                f"tier {order.tier!r} of order {order.id!r} is not one of {self.tiers!r}"
            ) from None

    def allot(self, line: LineStatus, available: int) -> int:
        """What `fill` allots. Cost: that of `fill.allot`."""
        return self.fill.allot(line, available)


_BUILT_IN = (StrictFIFO, PartialFill, PriorityTiers)


def policy_identity(policy: object) -> str:
    """A policy's stable text identity (what a stored book records).

    For the built-in policies their `repr`, e.g.
    `PriorityTiers(tiers=('contract', 'vip', 'standard'), fill=PartialFill())`;
    for a custom policy its `policy_id` attribute when it is a non-empty
    `str`, else its class's module-qualified name.

    Raises:
        ArgumentTypeError: `policy_id` is set but not a non-empty str.

    Cost: O(1) (O(tiers) for `PriorityTiers`).
    """
    if type(policy) in _BUILT_IN:
        return repr(policy)
    given = getattr(policy, "policy_id", None)
    if given is not None:
        if not isinstance(given, str) or not given.strip():
            raise ArgumentTypeError(
                f"policy_id must be a non-empty str, got {type(given).__name__} {given!r}"
            )
        return given
    kind = type(policy)
    return f"{kind.__module__}.{kind.__qualname__}"


def policy_from_identity(identity: str) -> AllocationPolicy | None:
    """The built-in policy whose identity is `identity`, or None when it is
    not one (a custom policy: only its own code can make it again).

    Reads the text as a syntax tree, never evaluating it: only the built-in
    names with their keyword arguments (tuples of tier names, `fill` of
    `StrictFIFO()` or `PartialFill()`, literal values) are understood;
    surrounding whitespace is ignored; texts over 10,000 characters are none.

    Cost: O(len(identity)).
    """
    if not isinstance(identity, str) or len(identity) > 10_000:
        return None
    identity = identity.strip()
    try:
        tree = ast.parse(identity, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    policy = _policy_of(tree)
    if policy is None or policy_identity(policy) != identity:
        return None
    return policy


def _policy_of(node: ast.expr) -> AllocationPolicy | None:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        return None
    kinds: dict[str, Any] = {kind.__name__: kind for kind in _BUILT_IN}
    kind = kinds.get(node.func.id)
    if kind is None:
        return None
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg == "fill":
            fill = _policy_of(keyword.value)
            if type(fill) not in (StrictFIFO, PartialFill):
                return None
            arguments["fill"] = fill
        elif keyword.arg is not None:
            try:
                arguments[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                return None
    try:
        made: AllocationPolicy = kind(**arguments)
    except (TypeError, ValueError, RecursionError):
        return None
    return made
