"""`InMemoryRepository`: a book's live state kept in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from ..engine.changes import UndoLog
from ..engine.state import State
from ..errors import ArgumentTypeError
from ..events import Event

__all__ = ["InMemoryRepository", "LiveStore", "MemoryOutbox"]


class MemoryOutbox:
    """Events kept until marked published, by id (ids increase from 1).

    Cost: O(1) per event added or published.
    """

    __slots__ = ("events", "last_id", "leases")

    def __init__(self) -> None:
        self.events: dict[int, Event] = {}
        self.last_id = 0
        # id -> leased until (microseconds since the epoch), of claimed events
        self.leases: dict[int, int] = {}

    def add(self, event: Event) -> None:
        """Keep one event under the next id. O(1)."""
        self.last_id += 1
        self.events[self.last_id] = event

    def pending(self, limit: int | None) -> list[tuple[int, Event]]:
        """`(id, event)` of the events kept, oldest first, at most `limit`. O(returned)."""
        items = list(self.events.items()) if limit is None else []
        if limit is not None:
            for item in self.events.items():
                if len(items) >= limit:
                    break
                items.append(item)
        return items

    def claim(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, Event]]:
        """Lease the oldest events no running lease holds (see
        `Repository.claim_events`). O(returned + skipped as leased)."""
        leases = self.leases
        until = now_us + lease_us
        claimed: list[tuple[int, Event]] = []
        for event_id, event in self.events.items():
            if len(claimed) >= limit:
                break
            if leases.get(event_id, now_us) <= now_us:
                leases[event_id] = until
                claimed.append((event_id, event))
        return claimed

    def publish(self, ids: Iterable[int]) -> int:
        """Drop these events; return how many were kept. O(ids)."""
        events = self.events
        leases = self.leases
        count = 0
        for event_id in ids:
            if events.pop(event_id, None) is not None:
                count += 1
            leases.pop(event_id, None)
        return count

    def drop_after(self, mark: int) -> None:
        """Drop the events kept after id `mark` (an abandoned batch's); their
        ids are not handed out again. O(dropped)."""
        events, leases = self.events, self.leases
        while events:
            last = next(reversed(events))
            if last <= mark:
                break
            del events[last]
            leases.pop(last, None)

    def __len__(self) -> int:
        return len(self.events)


class InMemoryRepository:
    """Keeps a book's state in memory, for as long as this object lives.

    Not a row store: the book works on the live state held here directly, so
    it costs nothing per operation. Two books over the same
    `InMemoryRepository` share one state: what one book does the other sees,
    which is how a test reopens a book.

    Args:
        outbox: keep every event until `book.mark_published` takes it out
            (`book.pending_events()`). Off by default: a process that never
            marks events published would otherwise hold every event forever.

    Raises:
        ArgumentTypeError: `outbox` is not a bool.

    Cost: O(1) per operation; memory O(orders + ledger entries), plus the
    events waiting in the outbox when `outbox=True`.
    """

    __slots__ = ("_keep", "events", "lock", "state")

    def __init__(self, outbox: bool = False) -> None:
        """Make an empty repository. Cost: O(1)."""
        if type(outbox) is not bool:
            raise ArgumentTypeError(
                f"outbox must be a bool, got {type(outbox).__name__} {outbox!r}"
            )
        #: the book's working state (opaque: read it through the book)
        self.state = State()
        #: the events kept until marked published (empty unless `outbox`)
        self.events = MemoryOutbox()
        self._keep = outbox
        #: the lock of every book over this repository (they share the state)
        self.lock = threading.RLock()

    @property
    def outbox(self) -> bool:
        """Whether events are kept until marked published. Cost: O(1)."""
        return self._keep

    def __repr__(self) -> str:
        return (
            f"<InMemoryRepository {len(self.state.orders)} orders, "
            f"{len(self.state.skus)} SKUs, {len(self.events)} events pending>"
        )


class LiveStore:
    """The book's side of an `InMemoryRepository`: the state lives there."""

    __slots__ = ("keep", "mark", "repo", "state")
    live = True
    lazy = False
    scoped = False  # (no locks to take: the book's lock is the repository's)

    def __init__(self, repo: InMemoryRepository) -> None:
        self.repo = repo
        self.state = repo.state
        self.keep = repo.outbox  # (fixed for the repository's life)
        self.mark = 0

    def begin(self) -> None:
        self.mark = self.repo.events.last_id  # (what a batch abandoned drops back to)

    def refresh(self) -> None:
        pass

    def ensure(
        self,
        skus: Iterable[object],
        orders: Iterable[object],
        refs: Iterable[object],
        receipts: Iterable[tuple[object, object]] = (),
    ) -> None:
        pass

    def ready(self) -> None:
        pass

    def ensure_due(self, when: datetime) -> None:
        pass

    def everything(self) -> None:
        pass

    def save(self, log: UndoLog, batching: bool) -> None:
        if self.keep:
            add = self.repo.events.add
            for event in log.events:
                add(event)

    def end(self) -> None:
        pass

    def finish_batch(self) -> None:
        pass

    def abandon_batch(self) -> None:
        self.repo.events.drop_after(self.mark)  # (the undo logs restored the state)

    def pending(self, limit: int | None) -> list[tuple[int, Event]]:
        return self.repo.events.pending(limit)

    def claim(self, limit: int, lease_us: int, now_us: int) -> list[tuple[int, Event]]:
        return self.repo.events.claim(limit, lease_us, now_us)

    def published(self, ids: list[int]) -> int:
        return self.repo.events.publish(ids)

    def close(self) -> None:
        pass
