"""The ETA engine: a SKU's promised dates as step functions of the queue key.

A line's date is when cumulative scheduled supply covers the units it needs
beyond what is available (the backordered units of every line ahead of it,
plus its own). That need never falls along the line, so the lines sharing a
date are a key range: `EtaSteps` holds, for each scheduled receipt (and the
tail beyond all of them), the key of the first line whose date it is. An
operation compares the steps before and after and visits only the ranges
whose date changed, to emit `EtaChanged` for exactly the lines that moved.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta
from itertools import pairwise

from ..domain import add_duration
from ..eta import LEAD_TIME, SCHEDULED, UNKNOWN, Eta
from ..events import EtaChanged
from .changes import OrderReranked, UndoLog
from .state import LineState, SkuState, State, pack, unpack

__all__ = ["EtaRules", "EtaSteps", "has_dates"]

FIRST_KEY = float("-inf")  # before every key
NO_KEY = float("inf")  # after every key: no line


class EtaSteps:
    """A SKU's ETAs as step functions of the queue key (see the module text)."""

    __slots__ = ("complete", "dates", "first", "lead")

    def __init__(
        self,
        complete: list[float],
        first: list[float],
        dates: list[datetime],
        lead: timedelta | None,
    ) -> None:
        self.complete = complete  # first key of each date's range, for `at`
        self.first = first  # the same for `first_unit_at`
        self.dates = dates  # range i is dates[i]; the last range is the tail
        self.lead = lead

    def _value(self, i: int, now: datetime) -> tuple[datetime | None, str]:
        if i < 0:
            return None, UNKNOWN
        if i < len(self.dates):
            return self.dates[i], SCHEDULED
        if self.lead is not None:
            return add_duration(now, self.lead, "lead_time"), LEAD_TIME
        return None, UNKNOWN

    def complete_at(self, key: float, now: datetime) -> tuple[datetime | None, str]:
        """The date (and basis) of the line at `key` being complete."""
        return self._value(bisect_right(self.complete, key) - 1, now)

    def first_at(self, key: float, now: datetime) -> tuple[datetime | None, str]:
        """The date (and basis) of the next unit of the line at `key`."""
        return self._value(bisect_right(self.first, key) - 1, now)


def has_dates(sku: SkuState) -> bool:
    """Whether a SKU's lines have dates: only once it has scheduled supply or a lead time."""
    # (the receipts by reference: a dict's truth is cheaper than a SortedList's)
    return bool(sku.expected) or sku.lead_time is not None


class EtaRules:
    """How one book turns supply into dates (`partial`: partial fill, so a
    line's first unit has a date of its own)."""

    __slots__ = ("partial", "unknown")

    def __init__(self, partial: bool) -> None:
        self.partial = partial
        # what every ETA is while a SKU has no scheduled supply or lead time
        self.unknown = Eta(None, UNKNOWN, None, UNKNOWN) if partial else Eta(None, UNKNOWN)

    def snapshot(self, log: UndoLog, sku: SkuState) -> None:
        """Keep the SKU's ETAs before the operation (the `UndoLog.eta_hook`):
        what the last operation left (cached with the SKU's version), else
        computed now."""
        if not sku.expected and sku.lead_time is None:  # (`has_dates`, inlined: per touch)
            log.eta_before[sku] = None  # every line's ETA is unknown
            return
        cached = sku.eta_cache
        if cached is not None and cached[0] == sku.version:
            log.eta_before[sku] = cached[1]
        else:
            log.eta_before[sku] = self.steps(sku)
        log.eta_tail[sku] = (
            sku.on_hand - sku.allocated,
            sku.queue[-1] if sku.queue else FIRST_KEY,
            sku.supply,
            sku.lead_time,
        )

    def steps(self, sku: SkuState) -> EtaSteps | None:
        """The SKU's `EtaSteps`. O((r + 1) * (ranks + log n)) for r scheduled receipts."""
        if not has_dates(sku):
            return None
        dates, totals = sku.supply_curve()
        thresholds = [1] + [total + 1 for total in totals]
        available = sku.on_hand - sku.allocated
        demand = sku.demand_index()
        queue = sku.queue
        complete: list[float] = []
        first: list[float] = []
        for t in thresholds:
            key = demand.first_reaching(t + available)
            complete.append(NO_KEY if key is None else key)
            target = t + available - 1  # the units ahead of a line's next unit
            if target <= 0:
                first.append(FIRST_KEY)
                continue
            key = demand.first_reaching(target)
            if key is None:
                first.append(NO_KEY)
            else:
                after = queue.bisect_right(key)
                first.append(queue[after] if after < len(queue) else NO_KEY)
        return EtaSteps(complete, first, dates, sku.lead_time)

    def _extend(self, sku: SkuState, before: EtaSteps) -> EtaSteps:
        # `before` with the ranges no line reached then recomputed: the
        # lines that joined at the back may reach them now.
        if NO_KEY not in before.complete and NO_KEY not in before.first:
            return before
        fresh = self.steps(sku)
        assert fresh is not None
        return fresh

    def _old_eta(self, before: EtaSteps | None, key: int, now: datetime) -> Eta:
        if before is None:
            return self.unknown
        at, basis = before.complete_at(key, now)
        if not self.partial:
            return Eta(at, basis)
        first, first_basis = before.first_at(key, now)
        return Eta(at, basis, first, first_basis)

    def changed(self, state: State, log: UndoLog) -> None:
        """Append `EtaChanged` for exactly the lines waiting before and after
        the operation whose (at, basis) moved. O((r + 1) * (ranks + log n) +
        changed * log n) per touched SKU."""
        eta_before = log.eta_before
        for sku, before in eta_before.items():
            if before is not None or sku.expected or sku.lead_time is not None:
                break
        else:
            return  # (the usual case for SKUs without dates: one pass, no list)
        work = [
            (sku, before)
            for sku, before in eta_before.items()
            if before is not None or has_dates(sku)
        ]
        new_orders = log.new_orders()
        moved: dict[LineState, int] = {}
        for change in log.changes:
            if isinstance(change, OrderReranked):
                for line in change.record.lines:
                    moved[line] = pack(change.old_rank, unpack(line.key)[1])
        now = log.at
        changed_lines = {line.sku: line for line in log.lines if line.order.id not in new_orders}
        for sku, before in work:
            available, last_key, supply, lead = log.eta_tail.get(sku, (0, NO_KEY, None, None))
            if (
                before is not None
                and not moved
                and sku.sku not in changed_lines
                and available == sku.on_hand - sku.allocated
                and supply is not None
                and supply is sku.supply
                and lead == sku.lead_time
                and _appended_only(state, sku, last_key, new_orders)
            ):
                # Only new lines joined, behind everyone (the usual place):
                # nobody's date moved; only unreached ranges may start now.
                sku.eta_cache = (sku.version, self._extend(sku, before))
                continue
            after = self.steps(sku)
            sku.eta_cache = (sku.version, after)
            if before is None and after is None:
                continue
            cuts = sorted(
                set(before.complete if before else ()) | set(after.complete if after else ())
            )
            bounds = [FIRST_KEY, *cuts, NO_KEY]
            for low, high in pairwise(bounds):
                if low >= high:
                    continue
                old = before.complete_at(low, now) if before else (None, UNKNOWN)
                new = after.complete_at(low, now) if after else (None, UNKNOWN)
                if old == new:
                    continue
                keys = sku.queue.irange(
                    None if low == FIRST_KEY else int(low),
                    None if high == NO_KEY else int(high),
                    inclusive=(True, False),
                )
                for key in keys:
                    line = sku.lines[key]
                    if line not in moved:
                        self._event(log, sku, line, before, key, new_orders)
            for line, old_key in moved.items():
                if line.sku == sku.sku and line.backordered > 0:
                    self._event(log, sku, line, before, old_key, new_orders)

    def _event(
        self,
        log: UndoLog,
        sku: SkuState,
        line: LineState,
        before: EtaSteps | None,
        old_key: int,
        new_orders: set[str],
    ) -> None:
        if line.order.id in new_orders:
            return  # joined during the operation: its ETA travels with LineBackordered
        snapshot = log.lines.get(line)
        if snapshot is not None and line.ordered - sum(snapshot[:3]) <= 0:
            return  # was not waiting before the operation
        old = self._old_eta(before, old_key, log.at)
        new = self.line_eta(sku, line, log.at) if has_dates(sku) else self.unknown
        if not new.same_date(old):
            log.events.append(EtaChanged(line.order.id, line.sku, old, new, log.at))

    @staticmethod
    def supply_date(sku: SkuState, need: int, now: datetime) -> tuple[datetime | None, str]:
        """When cumulative scheduled supply first covers `need` units. O(log r)."""
        dates, totals = sku.supply_curve()
        if need > 0:
            k = bisect_left(totals, need)
            if k < len(totals):
                return dates[k], SCHEDULED
            if sku.lead_time is not None:
                return add_duration(now, sku.lead_time, "lead_time"), LEAD_TIME
        return None, UNKNOWN

    def eta_from(
        self, sku: SkuState, ahead: int, short: int, now: datetime, available: int | None = None
    ) -> Eta:
        """The ETA of a line with `ahead` units waiting before it and `short` of its own."""
        if available is None:
            available = sku.on_hand - sku.allocated
        at, basis = self.supply_date(sku, ahead + short - available, now)
        if not self.partial:
            return Eta(at, basis)
        # the line's next unit: when supply passes what the lines ahead need
        first, first_basis = self.supply_date(sku, ahead - available + 1, now)
        return Eta(at, basis, first, first_basis)

    def line_eta(self, sku: SkuState, line: LineState, now: datetime) -> Eta:
        """The ETA of a waiting line. O(ranks + log n + log r)."""
        return self.eta_from(sku, sku.demand_index().ahead(line), line.backordered, now)


def _appended_only(state: State, sku: SkuState, last_key: float, new_orders: set[str]) -> bool:
    # Every line of the new orders on this SKU sits behind every line
    # that waited before (so nobody's need moved).
    for order_id in new_orders:
        for line in state.orders[order_id].lines:
            if line.sku == sku.sku and line.key <= last_key:
                return False
    return True
