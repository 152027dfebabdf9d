"""The book's reads: positions, statuses, stock, ETAs and tables.

A part of `BackorderBook` (its base class), kept in a module of its own so
each file holds one job; every method here is a method of the book.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from ._tables import data_frame, html_table
from .domain import LineStatus, OrderStatus, StockLevel, check_text
from .engine import supply
from .engine.core import Engine, line_status, order_status
from .engine.state import State
from .engine.stock import stock_level
from .eta import Eta
from .ledger import StockLedger
from .reports import book_records, sku_records, waiting_records
from .results import ExpectResult, OrderEta
from .storage.loaded import collector_paused
from .unit_of_work import UnitOfWork, locked, reads

# A line this long is read with the cyclic collector paused (see `waiting`).
_LONG = 1_000

__all__ = ["BookReads"]


class BookReads:
    """What a `BackorderBook` answers without changing anything (see there)."""

    __slots__ = ()
    _engine: Engine
    _work: UnitOfWork

    @property
    def _state(self) -> State:
        return self._engine.state

    @property
    def ledger(self) -> StockLedger:
        """The book's `StockLedger`: every stock movement, append-only. Cost:
        O(1) (a lazily loaded book loads everything first: O(rows)).

        It is the book's live ledger: while other threads write to the book,
        read it through the book (`book.ledger.verify()` sees a consistent
        prefix of the movements) or under `book.batch()`."""
        work = self._work
        with work.lock:
            work.catch_up()
            work.load_everything()
            return self._engine.state.ledger

    @reads
    def __len__(self) -> int:
        """The number of orders in the book. Cost: O(1) (a lazily loaded book
        loads everything first: O(rows))."""
        self._work.load_everything()
        return len(self._engine.state.orders)

    @reads
    def __contains__(self, order_id: object) -> bool:
        """Whether an order with this id is in the book. Cost: O(1)."""
        return isinstance(order_id, str) and order_id in self._engine.state.orders

    @reads
    def order_ids(self) -> Iterator[str]:
        """Every order id, in the order they were placed. Cost: O(1) per id (a
        lazily loaded book loads everything first: O(rows))."""
        self._work.load_everything()
        return iter(list(self._engine.state.orders))

    @reads
    def skus(self) -> tuple[str, ...]:
        """Every SKU the book has seen (ordered, received or adjusted). Cost:
        O(SKUs) (a lazily loaded book loads everything first: O(rows))."""
        self._work.load_everything()
        return tuple(self._engine.state.skus)

    @reads
    def position(self, order_id: str, sku: str) -> int | None:
        """The line's 1-based place among the lines still short on `sku`.

        Returns None when the line is not short (fully allocated, shipped or
        cancelled).

        Raises:
            UnknownOrder: no order `order_id`.
            UnknownSku: the order has no line for `sku`.
            ArgumentTypeError, InvalidArgument: an id that is not a non-empty str.

        Cost: O(log n).

        >>> from backorder import BackorderBook, Order, OrderLine
        >>> book = BackorderBook()
        >>> _ = book.place(Order("A-1", [OrderLine("MUG", 1)]))
        >>> _ = book.place(Order("A-2", [OrderLine("MUG", 1)]))
        >>> book.position("A-2", "MUG")
        2
        """
        line = self._engine.line(order_id, sku)
        if line.backordered <= 0:
            return None
        return int(self._engine.state.skus[line.sku].queue.index(line.key)) + 1

    @reads
    def line(self, order_id: str, sku: str) -> LineStatus:
        """The `LineStatus` of the order's line for `sku`.

        Raises:
            UnknownOrder, UnknownSku, ArgumentTypeError, InvalidArgument: as `position`.

        Cost: O(lines of the order).
        """
        return line_status(self._engine.line(order_id, sku))

    @reads
    def status(self, order_id: str) -> OrderStatus:
        """The `OrderStatus` of an order: the order and each line's status.

        Raises:
            UnknownOrder: no order `order_id`.
            ArgumentTypeError, InvalidArgument: `order_id` is not a non-empty str.

        Cost: O(lines of the order).
        """
        return order_status(self._engine.record(order_id))

    @reads
    def waiting(self, sku: str) -> tuple[LineStatus, ...]:
        """The status of every line short on `sku`, in serving order (head first).

        Empty for a SKU never seen.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(n). (A long line is read with Python's cyclic collector
        paused: its new records hold no cycle, and each collection pass
        would walk every object of the book.)
        """
        check_text(sku, "sku")
        state = self._engine.state.skus.get(sku)
        if state is None:
            return ()
        lines, queue = state.lines, state.queue
        if len(queue) < _LONG:
            return tuple(line_status(lines[key]) for key in queue)
        with collector_paused():
            return tuple(line_status(lines[key]) for key in queue)

    @reads
    def stock(self, sku: str) -> StockLevel:
        """The `StockLevel` of `sku` (all zero for a SKU never seen).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        return stock_level(self._engine.state, sku)

    @reads
    def eta(self, order_id: str, sku: str) -> Eta | None:
        """When the order's line for `sku` will be completely allocated.

        If every scheduled receipt arrives as planned and nothing else
        changes, under the book's policy: for a line with cumulative demand D
        (the backordered units of every line ahead of it, plus its own), the
        arrival of the first scheduled receipt at which available stock plus
        the receipts until then reach D (basis `"scheduled"`); beyond all
        scheduled supply, now plus the SKU's lead time (`"lead_time"`), or no
        date (`"unknown"`). Under partial fill, `first_unit_at` says when its
        first unit is allocated. None when nothing of the line is backordered.

        Raises:
            UnknownOrder, UnknownSku, ArgumentTypeError, InvalidArgument: as `line`.

        Cost: O(log n + log r) for r scheduled receipts of the SKU (the first
        call on a SKU builds its demand index, O(n log n)).
        """
        return supply.eta(self._engine, order_id, sku)

    @reads
    def eta_for_order(self, order_id: str) -> OrderEta:
        """The order's promised date: the latest of its lines' (the one that
        matters for a ship-complete order), and each line's ETA.

        `OrderEta.eta` is None when nothing is backordered; its basis is the
        weakest of the lines' (`"unknown"` over `"lead_time"` over
        `"scheduled"`).

        Raises:
            UnknownOrder, ArgumentTypeError, InvalidArgument: as `status`.

        Cost: O(lines of the order * (log n + log r)).
        """
        return supply.eta_for_order(self._engine, order_id)

    @reads
    def promise(self, sku: str, quantity: int, tier: str = "standard") -> Eta | None:
        """What `eta` would say for a line of `quantity` units of `sku`, in
        `tier`, placed now — without placing anything. None when stock on hand
        would fill it at once.

        Raises:
            ArgumentTypeError, InvalidArgument: bad `sku` or `tier`.
            QuantityTypeError, InvalidQuantity: bad `quantity`.
            UnknownTier: (from `PriorityTiers`) the tier is unknown.
            PolicyError: the policy's rank is not an int.

        Cost: O(ranks + log r).
        """
        return supply.promise(self._engine, sku, quantity, tier)

    @reads
    def expected(self, sku: str) -> tuple[ExpectResult, ...]:
        """Every scheduled receipt of `sku`, in date order (events empty).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(r).
        """
        return supply.expected_of(self._engine.state, sku)

    @reads
    def lead_time(self, sku: str) -> timedelta | None:
        """The supplier lead time of `sku`, or None. Cost: O(1).

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.
        """
        check_text(sku, "sku")
        target = self._engine.state.skus.get(sku)
        return None if target is None else target.lead_time

    @reads
    def backorder_limit(self, sku: str) -> int | None:
        """The backorder cap of `sku`, or None when it has none.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        current = self._engine.state.skus.get(sku)
        return None if current is None else current.limit

    @reads
    def backordered(self, sku: str) -> int:
        """The units waiting backordered on `sku`, over all lines.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not a non-empty str.

        Cost: O(1).
        """
        check_text(sku, "sku")
        current = self._engine.state.skus.get(sku)
        return 0 if current is None else current.backordered

    # -- tables for notebooks and reports -----------------------------------

    @locked
    def to_records(self) -> list[dict[str, Any]]:
        """Every order line as a plain dict (`order_id`, `sku`, `tier`,
        `placed_at`, `ship_complete`, `ordered`, `allocated`, `shipped`,
        `cancelled`, `backordered`, `position`), orders in placement order;
        for notebooks (`pandas.DataFrame(book.to_records())`) and reports.

        Cost: O(lines log n) (a lazily loaded book loads everything).
        """
        return book_records(self)

    @locked
    def waiting_records(self, sku: str | None = None) -> list[dict[str, Any]]:
        """Every waiting line (of `sku`, or of every SKU) as a plain dict
        (`sku`, `position`, `order_id`, `tier`, `backordered`, `allocated`,
        `eta`, `eta_basis`), in serving order.

        Raises:
            ArgumentTypeError, InvalidArgument: `sku` is not None or a non-empty str.

        Cost: O(waiting lines x ETA cost).
        """
        return waiting_records(self, sku)

    @locked
    def sku_records(self) -> list[dict[str, Any]]:
        """Every SKU as a plain dict (`sku`, `on_hand`, `allocated`,
        `available`, `waiting_lines`, `backordered`, `next_receipt`,
        `next_receipt_quantity`). Cost: O(SKUs + waiting lines)."""
        return sku_records(self)

    def to_pandas(self) -> Any:
        """`to_records()` as a pandas DataFrame with proper dtypes (counts
        int64, `position` nullable Int64, `placed_at` UTC datetimes, ids and
        tiers `string`).

        Raises:
            ImportError: pandas is not installed (`pip install 'backorder[pandas]'`).

        Cost: as `to_records()`.
        """
        columns = [
            "order_id", "sku", "tier", "placed_at", "ship_complete", "ordered",
            "allocated", "shipped", "cancelled", "backordered", "position",
        ]  # fmt: skip
        return data_frame(self.to_records(), columns)

    @locked
    def _repr_html_(self) -> str:
        """A compact HTML summary for notebooks: one row per SKU (see `sku_records`)."""
        return html_table(repr(self), self.sku_records())
