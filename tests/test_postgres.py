"""PostgreSQL: opening, schemas refused untouched, the caller's transaction,
lost connections, writers in several processes.

Each test works in schemas of its own, dropped afterwards; without a server
the tests skip (or fail, with BACKORDER_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backorder import (
    BackorderBook,
    ConcurrencyConflict,
    ConnectionLost,
    InsufficientStock,
    InvalidArgument,
    NotABackorderDatabase,
    Order,
    OrderLine,
    OrderPlaced,
    PriorityTiers,
    UnknownOrder,
    UnsupportedSchema,
    event_to_dict,
)
from backorder.errors import ArgumentTypeError

from .pg import DSN, need_server, new_schema, schema, schemas
from .pg_workers import call, event_json, hold_batch, place_until_killed, random_ops, recorded_ops

__all__ = ["schema", "schemas"]  # the fixtures


def _pg() -> Any:
    import psycopg

    return psycopg


def _repo(schema: str, **kwargs: Any) -> Any:
    from backorder.storage.postgres import PostgresRepository

    if "connection" in kwargs:
        return PostgresRepository(schema=schema, **kwargs)
    return PostgresRepository(DSN, schema=schema, **kwargs)


def _sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    with _pg().connect(DSN, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _dump(schema: str) -> str:
    # Everything in the schema, as pg_dump writes it (tables, rows, comments).
    args = ["pg_dump", "--no-owner", "-n", schema, "-d", DSN]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    skipped = ("--", "\\restrict", "\\unrestrict")  # comments, the dump's random token
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith(skipped))


# -- opening -----------------------------------------------------------------


def test_bad_arguments_are_refused_by_name(schema: str) -> None:
    from backorder.storage.postgres import PostgresRepository

    with pytest.raises(InvalidArgument, match="schema"):
        PostgresRepository(DSN, schema="a; DROP TABLE x")
    with pytest.raises(InvalidArgument, match="schema"):
        PostgresRepository(DSN, schema="pg_catalog")
    with pytest.raises(ArgumentTypeError, match="schema"):
        PostgresRepository(DSN, schema=3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="connection"):
        PostgresRepository(connection="dbname=test")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="timeout"):
        PostgresRepository(DSN, schema=schema, timeout=float("inf"))
    with pytest.raises(ArgumentTypeError, match="lazy"):
        PostgresRepository(DSN, schema=schema, lazy=1)  # type: ignore[arg-type]
    with _pg().connect(DSN) as conn, pytest.raises(InvalidArgument, match="not both"):
        PostgresRepository(DSN, connection=conn, schema=schema)
    assert _sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", schema) == []


def test_an_unreachable_server_is_a_connection_error() -> None:
    need_server()
    from backorder.storage.postgres import PostgresRepository

    with pytest.raises(ConnectionLost, match="cannot connect"):
        PostgresRepository("host=127.0.0.1 port=1 dbname=test", timeout=1)


def test_open_takes_a_postgresql_url(schemas: list[str]) -> None:
    from backorder.storage.postgres import PostgresRepository

    if _sql("SELECT 1 FROM pg_namespace WHERE nspname = 'backorder'"):
        pytest.skip("schema 'backorder' exists in the test database: not touching it")
    schemas.append("backorder")
    dbname = _pg().conninfo.conninfo_to_dict(DSN).get("dbname", "test")
    for scheme in ("postgresql", "postgres"):
        with BackorderBook.open(f"{scheme}:///{dbname}") as book:
            assert isinstance(book.repository, PostgresRepository)
            assert book.repository.schema == "backorder"
            book.place(Order(f"A-{scheme}", [OrderLine("MUG", 1)]))
    with BackorderBook.open(f"postgresql:///{dbname}") as book:
        assert tuple(book.order_ids()) == ("A-postgresql", "A-postgres")


def test_a_schema_of_something_else_is_refused_untouched(schemas: list[str]) -> None:
    foreign = new_schema("shop")
    schemas.append(foreign)
    with _pg().connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{foreign}"')
        conn.execute(f'CREATE TABLE "{foreign}".orders (id TEXT PRIMARY KEY, total INT)')
        conn.execute(f"INSERT INTO \"{foreign}\".orders VALUES ('o-1', 10)")
    before = _dump(foreign)
    with pytest.raises(NotABackorderDatabase, match="something other"):
        _repo(foreign)
    assert _dump(foreign) == before
    # a table named schema_version is not enough to pass for a book
    with _pg().connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{foreign}".schema_version (version INT)')
    before = _dump(foreign)
    with pytest.raises(NotABackorderDatabase):
        _repo(foreign)
    assert _dump(foreign) == before


def test_a_newer_schema_version_is_refused_untouched(schema: str) -> None:
    with BackorderBook(None, _repo(schema)) as book:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
    _sql(f'INSERT INTO "{schema}".schema_version (version) VALUES (99)')
    before = _dump(schema)
    with pytest.raises(UnsupportedSchema, match="99"):
        _repo(schema)
    assert _dump(schema) == before


def test_an_empty_schema_of_the_users_is_used(schema: str) -> None:
    _sql(f'CREATE SCHEMA "{schema}"')
    with BackorderBook(None, _repo(schema)) as book:
        book.receive("MUG", 2)
    with BackorderBook(None, _repo(schema)) as book:
        assert book.stock("MUG").on_hand == 2


def test_the_outbox_notifies_listeners(schema: str) -> None:
    repo = _repo(schema)
    with _pg().connect(DSN, autocommit=True) as listener:
        listener.execute(f'LISTEN "{repo.channel}"')
        with BackorderBook(None, repo) as book:
            book.receive("MUG", 2)
        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [note.channel for note in received] == [repo.channel]


# -- the caller's transaction ----------------------------------------------------


def _shop(schema: str) -> str:
    # the shop's own table, in a schema of its own (dropped with the test's)
    shop = f"{schema}_shop"
    _sql(f'CREATE SCHEMA "{shop}"')
    _sql(f'CREATE TABLE "{shop}".orders (id TEXT PRIMARY KEY)')
    return shop


def test_inside_the_callers_transaction_commit(schemas: list[str], schema: str) -> None:
    shop = _shop(schema)
    schemas.append(shop)
    _repo(schema).close()  # made beforehand (else other writers wait for the caller's commit)
    with _pg().connect(DSN) as conn:
        book = BackorderBook(None, _repo(schema, connection=conn))
        with pytest.raises(InvalidArgument, match="caller's transaction"):
            book.subscribe(print)
        conn.execute(f'INSERT INTO "{shop}".orders (id) VALUES (%s)', ("A-1",))
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        book.receive("MUG", 1, reference="GRN-1")
        # not committed yet: another process sees neither the shop's row nor the book's
        with BackorderBook(None, _repo(schema)) as other:
            assert tuple(other.order_ids()) == ()
            assert other.pending_events() == ()
        assert _sql(f'SELECT id FROM "{shop}".orders') == []
        conn.commit()
        with BackorderBook(None, _repo(schema)) as other:
            assert other.line("A-1", "MUG").allocated == 1
            assert len(other.pending_events()) == len(book.pending_events()) > 0
            other.ledger.verify()
        assert _sql(f'SELECT id FROM "{shop}".orders') == [("A-1",)]
        book.close()
        assert not conn.closed  # the caller's connection stays the caller's


def test_inside_the_callers_transaction_rollback(schemas: list[str], schema: str) -> None:
    shop = _shop(schema)
    schemas.append(shop)
    with BackorderBook(None, _repo(schema)) as first:
        first.place(Order("A-0", [OrderLine("MUG", 1)]))
    with _pg().connect(DSN) as conn:
        book = BackorderBook(None, _repo(schema, connection=conn))
        conn.execute(f'INSERT INTO "{shop}".orders (id) VALUES (%s)', ("A-1",))
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        assert book.status("A-1").lines[0].backordered == 2
        conn.rollback()
        # the book's next operation sees the database as it is
        with pytest.raises(UnknownOrder):
            book.status("A-1")
        assert tuple(book.order_ids()) == ("A-0",)
        # a failed operation rolls back only its own part of the caller's transaction
        conn.execute(f'INSERT INTO "{shop}".orders (id) VALUES (%s)', ("A-2",))
        with pytest.raises(UnknownOrder):
            book.cancel("NO-SUCH-ORDER")
        book.place(Order("A-2", [OrderLine("MUG", 1)]))
        # a savepoint of the caller's, rolled back, takes the book's work with it
        with pytest.raises(RuntimeError), conn.transaction():  # noqa: PT012
            book.place(Order("A-3", [OrderLine("CUP", 1)]))
            raise RuntimeError("the shop changed its mind")
        assert tuple(book.order_ids()) == ("A-0", "A-2")
        conn.commit()
        book.close()
    assert _sql(f'SELECT id FROM "{shop}".orders') == [("A-2",)]
    with BackorderBook(None, _repo(schema)) as again:
        assert tuple(again.order_ids()) == ("A-0", "A-2")
        placed = [
            p.event.order_id for p in again.pending_events() if isinstance(p.event, OrderPlaced)
        ]
        assert placed == ["A-0", "A-2"]  # no event of work that did not commit
        again.inspect().check()
        again.ledger.verify()


def test_two_books_on_the_callers_connection_see_each_others_work(schema: str) -> None:
    # A read inside the caller's transaction runs again while something it
    # did not see committed meanwhile; the transaction's own writes (by
    # another book on the connection) are not that: it used to read 20
    # times and raise ConcurrencyConflict. And a book that had written in
    # the transaction took another book's writes in it for its own, and
    # went on without them (both found by test_postgres_caller.py)
    _repo(schema).close()
    with _pg().connect(DSN) as conn:
        first = BackorderBook(None, _repo(schema, connection=conn))
        first.place(Order("A-1", [OrderLine("MUG", 2)]))
        with BackorderBook(None, _repo(schema, connection=conn)) as second:
            assert second.status("A-1").lines[0].backordered == 2
            first.receive("MUG", 1)
            assert second.stock("MUG").allocated == 1
            # both write: each sees the other's work (the rows of one
            # transaction do not say which book wrote them: it loads again)
            second.receive("MUG", 1)
            assert first.stock("MUG").allocated == 2
            first.place(Order("A-2", [OrderLine("MUG", 1)]))
            assert [line.order_id for line in second.waiting("MUG")] == ["A-2"]
            conn.commit()
        with BackorderBook(None, _repo(schema)) as outside:
            assert outside.stock("MUG").on_hand == 2
            assert [line.order_id for line in outside.waiting("MUG")] == ["A-2"]
        first.close()
        conn.rollback()


def test_no_sender_claims_events_the_callers_transaction_may_still_roll_back(
    schema: str,
) -> None:
    # Claiming on the caller's connection after a book wrote in its
    # transaction would hand out events of work that may still be rolled
    # back: refused, changing nothing; after the commit they are claimed
    _repo(schema).close()
    with _pg().connect(DSN) as conn:
        book = BackorderBook(None, _repo(schema, connection=conn))
        assert book.claim_events() == ()  # (nothing written yet: allowed)
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        with pytest.raises(InvalidArgument, match="may still be rolled back"):
            book.claim_events()
        conn.rollback()
        assert book.claim_events() == ()  # (the rollback took the events)
        book.place(Order("A-2", [OrderLine("MUG", 1)]))
        with pytest.raises(InvalidArgument):
            book.claim_events()
        conn.commit()
        claimed = book.claim_events()
        assert [type(e.event).__name__ for e in claimed][:1] == ["OrderPlaced"]
        assert claimed[0].event.order_id == "A-2"  # type: ignore[attr-defined]
        assert book.mark_published(claimed) == len(claimed)
        conn.commit()
        book.close()
    with BackorderBook(None, _repo(schema)) as again:
        assert again.pending_events() == ()


@pytest.mark.parametrize("lazy", [True, False])
def test_after_a_savepoint_and_a_reload_the_callers_rollback_is_seen(
    schema: str, lazy: bool
) -> None:
    # A savepoint of the caller's rolled back the book's last commit: the
    # book loaded again (its copy then held the caller's uncommitted work, as
    # any load inside the transaction does). When the caller then rolled
    # the whole transaction back, the book went on with the work that never
    # committed (found by test_postgres_caller.py)
    _repo(schema).close()
    with _pg().connect(DSN) as conn:
        book = BackorderBook(PriorityTiers(), _repo(schema, connection=conn, lazy=lazy))
        book.place(Order("A-1", [OrderLine("CUP", 1), OrderLine("MUG", 1)], tier="vip"))
        with pytest.raises(RuntimeError), conn.transaction():  # noqa: PT012
            book.receive("TEE", 3)
            raise RuntimeError("the shop changed its mind")
        with pytest.raises(InsufficientStock):  # (loads again first: its last commit went)
            book.hold("MUG", 1, timedelta(hours=1))
        assert book.position("A-1", "CUP") == 1
        conn.rollback()
        with pytest.raises(UnknownOrder):
            book.status("A-1")
        assert book.waiting("CUP") == ()
        assert book.stock("TEE").on_hand == 0
        book.place(Order("A-2", [OrderLine("CUP", 1)]))
        conn.commit()
        book.close()
    with BackorderBook(None, _repo(schema)) as again:
        assert tuple(again.order_ids()) == ("A-2",)
        assert [
            p.event.order_id for p in again.pending_events() if isinstance(p.event, OrderPlaced)
        ] == ["A-2"]


def test_an_autocommit_connection_outside_a_transaction_is_refused(schema: str) -> None:
    with _pg().connect(DSN, autocommit=True) as conn:
        with pytest.raises(InvalidArgument, match="autocommit"):
            _repo(schema, connection=conn)
        with conn.transaction(), BackorderBook(None, _repo(schema, connection=conn)) as book:
            book.receive("MUG", 1)
    with BackorderBook(None, _repo(schema)) as book:
        assert book.stock("MUG").on_hand == 1


# -- lost connections ------------------------------------------------------------


def _terminate(repo: Any) -> None:
    pid = repo._conn.info.backend_pid
    _sql("SELECT pg_terminate_backend(%s)", pid)
    for _ in range(100):
        if not _sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
            return
        time.sleep(0.01)


def test_a_terminated_connection_is_made_again(schema: str) -> None:
    book = BackorderBook(None, _repo(schema))
    book.place(Order("A-1", [OrderLine("MUG", 2)]))
    _terminate(book.repository)
    book.place(Order("A-2", [OrderLine("MUG", 1)]))  # connects again, nothing lost
    _terminate(book.repository)
    assert book.position("A-2", "MUG") == 2
    book.close()
    with BackorderBook(None, _repo(schema)) as again:
        assert tuple(again.order_ids()) == ("A-1", "A-2")


def test_a_connection_lost_mid_batch_commits_nothing(schema: str) -> None:
    book = BackorderBook(None, _repo(schema))
    book.place(Order("A-1", [OrderLine("MUG", 2)]))
    with pytest.raises(ConnectionLost), book.batch():  # noqa: PT012
        book.place(Order("A-2", [OrderLine("MUG", 1)]))
        _terminate(book.repository)
        book.place(Order("A-3", [OrderLine("MUG", 1)]))
    # the book goes on, on a new connection, with what the database holds
    assert tuple(book.order_ids()) == ("A-1",)
    book.receive("MUG", 2)
    book.close()
    with BackorderBook(None, _repo(schema)) as again:
        assert tuple(again.order_ids()) == ("A-1",)
        assert again.line("A-1", "MUG").allocated == 2
        again.ledger.verify()


def _parts_book(schema: str) -> tuple[list[str], dict[str, Any]]:
    # Orders of one and two lines on two SKUs, some allocated; what the book holds.
    with BackorderBook(None, _repo(schema)) as book:
        for n in range(7):
            lines = [OrderLine("MUG", 1 + n % 2)] + ([OrderLine("CUP", 1)] if n % 3 == 0 else [])
            book.place(Order(f"P-{n}", lines))
        book.receive("MUG", 3, reference="GRN-1")
        return list(book.order_ids()), {sku: book.waiting(sku) for sku in book.skus()}


def test_a_connection_lost_in_a_whole_load_in_parts_loads_again(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backorder.storage.postgres import PostgresRepository

    ids, waiting = _parts_book(schema)
    in_parts = PostgresRepository.load_parts
    cut: list[int] = []

    def load_parts(self: Any, size: int = 1) -> Iterator[Any]:
        # parts of one order; the first load's connection ends after its third part
        for n, part in enumerate(in_parts(self, 1)):
            yield part
            if not cut and n == 2:
                cut.append(self._conn.info.backend_pid)
                _terminate(self)

    monkeypatch.setattr(PostgresRepository, "load_parts", load_parts)
    repo = _repo(schema)
    with BackorderBook(None, repo) as book:
        assert list(book.order_ids()) == ids  # (a whole-book read: loaded in parts, twice)
        assert {sku: book.waiting(sku) for sku in book.skus()} == waiting
        assert cut
        assert repo._conn.info.backend_pid != cut[0]  # (on a new connection)
        book.inspect().check()


def test_a_whole_load_in_parts_in_the_callers_transaction_is_its_view(schema: str) -> None:
    ids, _ = _parts_book(schema)
    with _pg().connect(DSN) as conn:
        repo = _repo(schema, connection=conn)
        book = BackorderBook(None, repo)
        book.place(Order("MINE", [OrderLine("MUG", 1)]))  # not committed: the caller's
        parts = list(repo.load_parts())
        whole = repo.load()
        assert [row.order_id for part in parts for row in part.orders] == [*ids, "MINE"]
        assert [row.order_id for row in whole.orders] == [*ids, "MINE"]
        assert parts[0].skus == whole.skus
        assert not parts[0].orders
        assert sorted(line for part in parts for line in part.lines) == sorted(whole.lines)
        assert parts[-1].ledger == whole.ledger
        assert not parts[-1].orders
        assert list(book.order_ids()) == [*ids, "MINE"]
        conn.rollback()
        book.close()
    with BackorderBook(None, _repo(schema)) as again:
        assert list(again.order_ids()) == ids


# -- several processes -------------------------------------------------------------


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _holding_x(schema: str) -> Iterator[Any]:
    """Process A holds a batch open on SKU X (its lock held) until the event
    yielded is set, or the block ends; then A commits and ends."""
    with BackorderBook(None, _repo(schema)) as book:  # the schema exists before A starts
        book.receive("Y", 1)
    ctx = _spawn()
    ready, release = ctx.Event(), ctx.Event()
    process = ctx.Process(target=hold_batch, args=(DSN, schema, "X", ready, release))
    process.start()
    try:
        assert ready.wait(30), "process A did not open its batch"
        yield release
    finally:
        release.set()
        process.join(30)
    assert process.exitcode == 0


@pytest.fixture
def held_x(schema: str) -> Iterator[Any]:
    """Process A holds a batch open on SKU X (its lock held) until released."""
    with _holding_x(schema) as release:
        yield release


def test_a_writer_on_the_same_sku_waits_for_the_batch(schema: str, held_x: Any) -> None:
    with BackorderBook(None, _repo(schema, timeout=0.5)) as book:
        started = time.monotonic()
        with pytest.raises(ConcurrencyConflict, match="past the timeout"):
            book.place(Order("B-1", [OrderLine("X", 1)]))
        assert time.monotonic() - started >= 0.4
    # told to wait longer, B's operation on X waits until A commits, then goes after it
    with BackorderBook(None, _repo(schema, timeout=30)) as book:
        done = threading.Event()
        failed: list[BaseException] = []

        def place() -> None:
            try:
                book.place(Order("B-1", [OrderLine("X", 1)]))
            except BaseException as exc:  # (reported below, in the test's thread)
                failed.append(exc)
            done.set()

        waiter = threading.Thread(target=place)
        waiter.start()
        assert not done.wait(1.0), "B's operation on X did not wait for A's batch"
        held_x.set()  # A commits
        assert done.wait(30), "B's operation on X did not go through after A committed"
        waiter.join()
        assert failed == []
        assert book.position("HELD-1", "X") == 1
        assert book.position("B-1", "X") == 2


def test_a_writer_on_another_sku_does_not_wait(schema: str, held_x: Any) -> None:
    # A holds a batch open on X (its order drew arrival number 1 from A's copy)
    with BackorderBook(None, _repo(schema, timeout=1)) as book:
        started = time.monotonic()
        book.receive("Y", 1)
        book.place(Order("B-1", [OrderLine("Y", 2)]))  # the same arrival number as A's
        book.receive("Y", 1)
        assert time.monotonic() - started < 1
        assert book.status("B-1").lines[0].allocated == 2
    held_x.set()  # A commits after B
    # (the fixture waits for A to end; a new process reads what both wrote)


def test_writers_on_different_skus_at_once_leave_one_whole_book(schema: str) -> None:
    with (
        _holding_x(schema),  # (A commits when the block ends)
        BackorderBook(None, _repo(schema, timeout=1)) as book,
    ):
        book.place(Order("B-1", [OrderLine("Y", 2)]))
        book.receive("Y", 1)
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.inspect().check()
        book.ledger.verify()
        # each SKU's entries rise; A's and B's copies numbered theirs at once
        for sku in ("X", "Y"):
            numbers = [entry.seq for entry in book.ledger.entries(sku)]
            assert numbers == sorted(set(numbers))
        # an order on both SKUs arrives after everything on either
        book.place(Order("C-1", [OrderLine("X", 1), OrderLine("Y", 1)]))
        assert [line.order_id for line in book.waiting("X")] == ["HELD-1", "C-1"]
        assert [line.order_id for line in book.waiting("Y")] == ["C-1"]
        book.receive("X", 2)
        assert book.status("HELD-1").lines[0].allocated == 1
        assert book.status("C-1").lines[0].allocated == 1
        book.ledger.verify()
    with BackorderBook(None, _repo(schema)) as lazy:  # a lazy copy agrees
        assert lazy.position("C-1", "Y") == 1
        assert lazy.status("C-1").lines[1].allocated == 0
        lazy.ledger.verify()


def test_one_order_id_placed_at_once_on_two_skus_is_placed_once(schema: str) -> None:
    # A places O-1 on X inside its own open transaction; B places O-1 on Y
    # meanwhile (another SKU: no lock to wait for) and waits on the order's
    # unique key instead. Once A commits, B runs again and finds O-1 placed.
    from backorder import DuplicateOrder

    _repo(schema).close()
    outcome: list[object] = []
    with _pg().connect(DSN) as conn:
        first = BackorderBook(None, _repo(schema, connection=conn))
        first.place(Order("O-1", [OrderLine("X", 1)]))
        with BackorderBook(None, _repo(schema)) as other:

            def place_too() -> None:
                try:
                    outcome.append(other.place(Order("O-1", [OrderLine("Y", 1)])))
                except DuplicateOrder as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=place_too)
            thread.start()
            thread.join(1.0)
            assert thread.is_alive(), "B did not wait for A's order"
            conn.commit()
            thread.join(30)
            assert len(outcome) == 1
            assert isinstance(outcome[0], DuplicateOrder)
            assert [line.sku for line in other.status("O-1").lines] == ["X"]
            other.place(Order("O-2", [OrderLine("Y", 1)]))
            assert other.position("O-2", "Y") == 1
            other.inspect().check()
        first.close()
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        assert sorted(book.order_ids()) == ["O-1", "O-2"]
        placed = [p.event for p in book.pending_events() if isinstance(p.event, OrderPlaced)]
        assert [event.order_id for event in placed] == ["O-1", "O-2"]
        book.inspect().check()
        book.ledger.verify()


def test_processes_writing_at_once_keep_every_invariant(schema: str) -> None:
    skus = ["MUG", "CUP", "TEE"]
    with BackorderBook(None, _repo(schema)) as book:
        book.receive("MUG", 1)
        told = [event_json(p.event) for p in book.pending_events()]
    with _spawn().Pool(4) as pool:
        results = pool.starmap(random_ops, [(DSN, schema, seed, 100, skus) for seed in range(4)])
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.inspect().check()
        book.ledger.verify()
        outbox = [event_json(p.event) for p in book.pending_events()]
        everything = told + [event for result in results for event in result]
        assert Counter(outbox) == Counter(everything)
        for result in results:  # each process's events, in its order, in the outbox
            at = iter(outbox)
            assert all(event in at for event in result)
        for sku in skus:
            level = book.stock(sku)
            assert 0 <= level.allocated <= level.on_hand


def test_a_stored_book_keeps_its_policy_on_postgresql(schema: str) -> None:
    from backorder import PartialFill, PolicyMismatch, PriorityTiers, StrictFIFO
    from backorder.storage.postgres import PostgresRepository

    def repository() -> PostgresRepository:
        return PostgresRepository(DSN, schema=schema)

    with BackorderBook(PriorityTiers(), repository()) as book:
        book.place(Order("S-1", [OrderLine("LAMP", 1)]))
        book.place(Order("V-1", [OrderLine("LAMP", 1)], tier="vip"))
    refused = repository()
    with pytest.raises(PolicyMismatch):
        BackorderBook(PartialFill(), refused)
    refused.close()  # (a repository given to a book that refused it stays the caller's)
    with BackorderBook(None, repository()) as book:
        assert book.policy == PriorityTiers()
        other = BackorderBook(None, repository())
        book.change_policy(StrictFIFO())
        other.place(Order("S-2", [OrderLine("LAMP", 1)]))  # follows the switch
        assert other.policy == StrictFIFO()
        assert [line.order_id for line in other.waiting("LAMP")] == ["S-1", "V-1", "S-2"]
        other.close()


def _same_book(stored: BackorderBook, replayed: BackorderBook, skus: list[str]) -> None:
    # Everything a user can read of the two books agrees (ledger entry numbers
    # aside: each SKU's entries are compared in order).
    assert sorted(stored.order_ids()) == sorted(replayed.order_ids())
    for order_id in stored.order_ids():
        assert stored.status(order_id) == replayed.status(order_id), order_id
    for sku in skus:
        assert stored.stock(sku) == replayed.stock(sku), sku
        assert stored.waiting(sku) == replayed.waiting(sku), sku
        for kept, again in zip(
            stored.ledger.entries(sku), replayed.ledger.entries(sku), strict=True
        ):
            assert attrs_without_seq(kept) == attrs_without_seq(again), sku


def attrs_without_seq(entry: Any) -> dict[str, Any]:
    """A ledger entry's fields but its number."""
    import attrs

    fields = attrs.asdict(entry, recurse=False)
    fields.pop("seq")
    return fields


def test_eight_processes_replay_in_commit_order_to_the_stored_book(schema: str) -> None:
    skus = ["MUG", "CUP", "TEE", "CAP"]
    _repo(schema).close()  # the schema exists before the writers start
    with _spawn().Pool(8) as pool:
        results = pool.starmap(recorded_ops, [(DSN, schema, seed, 50, skus) for seed in range(8)])
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.inspect().check()
        book.ledger.verify()
        outbox = [event_json(p.event) for p in book.pending_events()]
        # the outbox is exactly what the processes were told, each process's in its order
        assert len(set(outbox)) == len(outbox)  # (every event names its time and order)
        told = [event for result in results for _, _, events in result for event in events]
        assert Counter(outbox) == Counter(told)
        place = {event: i for i, event in enumerate(outbox)}
        for result in results:
            firsts = [place[events[0]] for _, _, events in result]
            assert firsts == sorted(firsts)
        # every operation, in the order its events reached the outbox (commit
        # order), through one in-memory book at the time it ran
        done = sorted((op for result in results for op in result), key=lambda op: place[op[2][0]])
        assert sum(len(events) for _, _, events in done) == len(outbox)
        now: list[datetime] = []
        replay = BackorderBook(clock=lambda: now[-1])
        for kind, args, events in done:
            now.append(datetime.fromisoformat(json.loads(events[0])["at"]))
            again = call(replay, kind, args)
            assert [event_json(event) for event in again.events] == events, (kind, args)
        _same_book(book, replay, skus)


def _acknowledged(path: Path) -> list[str]:
    # the names a killed worker wrote in full (a last line cut by the kill is not one)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return text.split("\n")[:-1]


def test_sigkill_mid_operation_leaves_whole_operations(schema: str, tmp_path: Path) -> None:
    with BackorderBook(None, _repo(schema)) as book:
        book.receive("MUG", 3, "R-start")
    rng = random.Random(15)
    ctx = _spawn()
    acknowledged: list[str] = []
    for round_ in range(6):
        path = tmp_path / f"round-{round_}.txt"
        process = ctx.Process(target=place_until_killed, args=(DSN, schema, round_, str(path)))
        process.start()
        deadline = time.monotonic() + 30
        while len(_acknowledged(path)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker connected and commits
        time.sleep(rng.random() * 0.2)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        assert process.exitcode == -signal.SIGKILL
        acknowledged += _acknowledged(path)
        with BackorderBook(None, _repo(schema, lazy=False)) as book:
            book.inspect().check()
            book.ledger.verify()
            stored = set(book.order_ids())
            placed = {
                p.event.order_id for p in book.pending_events() if isinstance(p.event, OrderPlaced)
            }
            assert stored == placed  # each operation's rows and events, together
            for order_id in stored:  # every order whole: both lines
                assert [line.sku for line in book.status(order_id).lines] == ["MUG", "CUP"]
            references = {
                entry.reference for sku in ("MUG", "CUP") for entry in book.ledger.entries(sku)
            }
            for name in acknowledged:  # nothing acknowledged is lost
                assert name in (stored if name.startswith("K") else references), name
            # at most the one operation under way when killed went through unacknowledged
            made = {n for n in stored | references if n and n[0] in "KR" and n != "R-start"}
            assert len(made - set(acknowledged)) <= round_ + 1
    assert len(acknowledged) >= 18


def test_terminated_backends_during_operations(schema: str) -> None:
    from psycopg.conninfo import make_conninfo

    from backorder import CommitOutcomeUnknown
    from backorder.storage.postgres import PostgresRepository

    two_lines = (OrderLine("MUG", 1), OrderLine("CUP", 1))
    name = f"victim_{schema}"[:60]
    repo = PostgresRepository(make_conninfo(DSN, application_name=name), schema=schema)
    stop = threading.Event()
    killed: list[int] = []

    def terminate() -> None:  # every few milliseconds, the book's backend is terminated
        rng = random.Random(3)
        while not stop.wait(rng.random() * 0.03):
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            rows = _sql(query + " WHERE application_name = %s", name)
            killed.extend(1 for (done,) in rows if done)

    acknowledged: list[str] = []  # operations the book said committed
    lost: list[str] = []  # ... said did not commit (ConnectionLost)
    unknown: list[str] = []  # ... said it cannot know (CommitOutcomeUnknown)
    killer = threading.Thread(target=terminate)
    with BackorderBook(None, repo) as book:
        killer.start()
        try:
            for i in range(150):
                for what, operation in (
                    (f"T-{i}", lambda i=i: book.place(Order(f"T-{i}", [*two_lines]))),
                    (f"G-{i}", lambda i=i: book.receive("MUG", 1, f"G-{i}")),
                ):
                    try:
                        operation()
                    except CommitOutcomeUnknown:
                        unknown.append(what)
                    except ConnectionLost:
                        lost.append(what)
                    else:
                        acknowledged.append(what)
        finally:
            stop.set()
            killer.join()
        assert killed, "no backend was terminated during the operations"
        assert acknowledged, "no operation went through"
        assert lost or unknown, "no backend was terminated while an operation ran"
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.inspect().check()
        book.ledger.verify()
        references = {entry.reference for entry in book.ledger.entries("MUG")}
        stored = set(book.order_ids()) | (references - {None})
        assert set(acknowledged) <= stored  # nothing acknowledged is lost
        assert not set(lost) & stored  # nothing said not to have committed is there
        placed = {
            p.event.order_id for p in book.pending_events() if isinstance(p.event, OrderPlaced)
        }
        assert placed == set(book.order_ids())
        for order_id in book.order_ids():
            assert [line.sku for line in book.status(order_id).lines] == ["MUG", "CUP"]


def test_a_batch_finds_orders_stored_before_it_without_writing_its_rows_first(
    schema: str,
) -> None:
    from backorder import DuplicateOrder

    with BackorderBook(None, _repo(schema)) as book:
        book.place(Order("OLD", [OrderLine("ZED", 1)]))
    with BackorderBook(None, _repo(schema)) as book:  # lazy: holds no SKU yet
        with book.batch():
            book.place(Order("NEW-1", [OrderLine("MUG", 1)]))
            book.place(Order("NEW-2", [OrderLine("MUG", 2)]))
            # the stored order is found though the batch's rows are not yet written
            with pytest.raises(DuplicateOrder):
                book.place(Order("OLD", [OrderLine("MUG", 1)]))
            again = book.place(Order("OLD", [OrderLine("ZED", 1)]))
            assert again.replayed
            book.place(Order("NEW-3", [OrderLine("ZED", 1)]))
        assert book.position("NEW-3", "ZED") == 2
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        assert sorted(book.order_ids()) == ["NEW-1", "NEW-2", "NEW-3", "OLD"]
        assert book.line("OLD", "ZED").ordered == 1
        book.inspect().check()
        book.ledger.verify()


def test_a_hold_and_a_scheduled_receipt_gone_within_a_batch_stay_counted(schema: str) -> None:
    # PostgreSQL reads its counters back from the rows: a hold (or scheduled
    # receipt) made and gone in one unit of work is still written, as gone,
    # so its number is never handed out again
    from datetime import timedelta

    from backorder.testing import snapshot

    with BackorderBook(None, _repo(schema)) as book:
        book.receive("MUG", 5)
        with book.batch():
            held = book.hold("MUG", 1, timedelta(minutes=10))
            book.release_hold(held.hold_id)
            book.expect("CUP", 2, datetime(2027, 1, 4, tzinfo=ZoneInfo("UTC")), "PO-1")
            book.receive("CUP", 2, against="PO-1")
        kept = snapshot(book)
    assert (kept["hold_seq"], kept["expected_seq"]) == (1, 1)
    for lazy in (True, False):
        with BackorderBook(None, _repo(schema, lazy=lazy)) as again:
            stored = snapshot(again)
            assert (stored["hold_seq"], stored["expected_seq"]) == (1, 1)
            assert stored == kept
    assert _sql(f"SELECT hold_id, gone FROM {schema}.holds") == [(held.hold_id, 1)]
    with BackorderBook(None, _repo(schema)) as again:
        assert again.hold("MUG", 1, timedelta(minutes=10)).hold_id != held.hold_id


def _as_version_6(schema: str) -> None:
    # Put a version-7 book back into the shape version 6 wrote: every line
    # indexed by SKU, no index of the open lines.
    s = f'"{schema}"'
    _sql(f"DROP INDEX {s}.lines_open")
    _sql(f"CREATE INDEX lines_by_sku ON {s}.lines (sku, rank, seq)")
    _sql(f"DELETE FROM {s}.schema_version WHERE version = 7")


def _indexes(schema: str, table: str) -> list[str]:
    return sorted(
        name
        for (name,) in _sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            schema,
            table,
        )
    )


def test_migration_7_from_a_version_6_schema(schema: str) -> None:
    # Version 7 indexes the open lines (a SKU load reads them, not the
    # SKU's history) instead of every line by SKU; no row is rewritten.
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        for n in range(6):
            book.place(Order(f"H-{n}", [OrderLine("MUG", 1)]))
        book.receive("MUG", 3, "GRN-1")
        for n in range(3):
            book.ship(f"H-{n}")
        book.cancel("H-3")
        book.place(Order("MIX", [OrderLine("MUG", 1), OrderLine("CUP", 2)]))
        before = book.inspect().internals()
    _as_version_6(schema)
    assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(6,)]
    assert "lines_by_sku" in _indexes(schema, "lines")
    with (
        BackorderBook(None, _repo(schema, lazy=False)) as book,
        BackorderBook(None, _repo(schema)) as other,
    ):
        assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(7,)]
        indexes = _indexes(schema, "lines")
        assert "lines_open" in indexes
        assert "lines_by_sku" not in indexes
        assert book.inspect().internals() == before
        assert [line.order_id for line in other.waiting("MUG")] == ["H-4", "H-5", "MIX"]
        # (MIX is held too, but listed once its CUP is loaded as well)
        assert sorted(other.inspect().loaded_orders()) == ["H-4", "H-5"]
        assert other.status("H-0").lines[0].shipped == 1  # history, read by id
        other.place(Order("NEW", [OrderLine("MUG", 1)]))
        assert book.position("NEW", "MUG") == 4
        for handle in (book, other):
            handle.inspect().check()
            handle.ledger.verify()


def _as_version_5(schema: str) -> None:
    # Put a version-6 (or 7) book back into the shape version 5 wrote: orders
    # and events in their public form (JSON objects), not the compact one.
    from backorder._stored import event_text, order_plain, text_event, text_order

    s = f'"{schema}"'
    if _sql(f"SELECT max(version) FROM {s}.schema_version") == [(7,)]:
        _as_version_6(schema)
    for order_id, body in _sql(f"SELECT order_id, body FROM {s}.orders"):
        public = json.dumps(order_plain(text_order(body, order_id)))
        _sql(f"UPDATE {s}.orders SET body = %s WHERE order_id = %s", public, order_id)
    for event_id, text in _sql(f"SELECT id, event FROM {s}.outbox"):
        public = json.dumps(event_to_dict(text_event(text)))
        assert public != event_text(text_event(text))
        _sql(f"UPDATE {s}.outbox SET event = %s WHERE id = %s", public, event_id)
    _sql(f"ALTER TABLE {s}.change_log RENAME TO commits")
    _sql(f"DELETE FROM {s}.schema_version WHERE version = 6")


def test_migration_6_from_a_version_5_schema(schema: str) -> None:
    # Version 5 stored orders and events in their public form; version 6
    # writes them compactly and reads both (the migration rewrites no row).
    at = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    rich = Order(
        "R-1",
        [OrderLine("MUG", 1), OrderLine("CUP", 2)],
        ship_complete=True,
        placed_at=at,
        metadata={"note": "é"},
        fill_by=date(2027, 1, 2),
    )
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        book.place(rich)
        book.receive("MUG", 1, "GRN-1")
        before = book.inspect().internals()
        events = [event_to_dict(e.event) for e in book.pending_events()]
    _as_version_5(schema)
    assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(5,)]
    assert all(body.startswith("{") for (body,) in _sql(f'SELECT body FROM "{schema}".orders'))
    with (
        BackorderBook(None, _repo(schema, lazy=False)) as book,
        BackorderBook(None, _repo(schema)) as other,
    ):
        assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(7,)]
        assert book.inspect().internals() == before
        assert repr(other.status("R-1").order) == repr(rich)
        assert [event_to_dict(e.event) for e in other.pending_events()] == events
        other.place(Order("A-2", [OrderLine("MUG", 1)], tier="standard"))
        assert book.position("A-2", "MUG") == 3  # after
        (body,) = _sql(f"SELECT body FROM \"{schema}\".orders WHERE order_id = 'A-2'")[0]
        assert body.startswith("[")
        assert type(book.pending_events()[-1].event).__name__ == "LineBackordered"
        for handle in (book, other):
            handle.inspect().check()
            handle.ledger.verify()


def _as_version_4(schema: str) -> None:
    # Put a version-5 book back into the shape version 4 wrote: arrival
    # numbers unique across the book, the ledger keyed by its number alone,
    # the counters kept in `meta` by every commit.
    s = f'"{schema}"'
    for index in ("orders_by_seq", "holds_by_seq", "expected_by_seq", "ledger_by_seq"):
        _sql(f"DROP INDEX {s}.{index}")
    _sql(f"ALTER TABLE {s}.orders ADD CONSTRAINT orders_seq_key UNIQUE (seq)")
    _sql(f"ALTER TABLE {s}.ledger DROP CONSTRAINT ledger_pkey")
    _sql(f"ALTER TABLE {s}.ledger ADD PRIMARY KEY (seq)")
    _sql(f"CREATE INDEX ledger_by_sku ON {s}.ledger (sku, seq)")
    _sql(f"ALTER TABLE {s}.commits DROP COLUMN tables")
    for name, table in (("seq", "orders"), ("hold_seq", "holds"), ("expected_seq", "expected")):
        _sql(
            f"UPDATE {s}.meta SET value = (SELECT coalesce(max(seq), 0) FROM {s}.{table}) "
            f"WHERE name = '{name}'"
        )
    _sql(f"DELETE FROM {s}.schema_version WHERE version = 5")


def _as_version_3(schema: str) -> None:
    # Put a version-4 book back into the shape version 3 wrote: no commit
    # transaction ids, `changed` holding commit numbers, the meta version row
    # kept by every commit.
    from backorder.storage.postgres_schema import MIGRATIONS

    s = f'"{schema}"'
    _sql(f"DROP INDEX {s}.commits_xid")
    _sql(f"ALTER TABLE {s}.commits DROP COLUMN xid")
    for statement in MIGRATIONS[4][2:]:  # every table's `changed`
        table = statement.split("}.")[1].split()[0]
        _sql(f"UPDATE {s}.{table} SET changed = 1")
    _sql(f"UPDATE {s}.meta SET value = 1 WHERE name = 'version'")
    _sql(f"DELETE FROM {s}.schema_version WHERE version = 4")


def test_migration_4_from_a_version_3_schema(schema: str) -> None:
    from backorder.storage.postgres import SCHEMA_VERSION

    assert SCHEMA_VERSION == 7
    with BackorderBook(None, _repo(schema)) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        book.place(Order("A-2", [OrderLine("MUG", 1), OrderLine("CUP", 1)]))
        book.receive("MUG", 1, "GRN-1")
    _as_version_5(schema)
    _as_version_4(schema)
    _as_version_3(schema)
    assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(3,)]
    with (
        BackorderBook(None, _repo(schema, lazy=False)) as book,
        BackorderBook(None, _repo(schema)) as other,
    ):
        assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(7,)]
        assert book.line("A-1", "MUG").allocated == 1
        assert book.position("A-2", "MUG") == 2
        # both handles go on, each catching up with the other's commits
        other.receive("MUG", 2, "GRN-2")
        assert book.line("A-2", "MUG").allocated == 1
        book.cancel("A-1")
        assert other.stock("MUG").allocated == 1
        stores = [book._work.store, other._work.store]
        assert [getattr(store, "reloads", None) for store in stores] == [0, 0]
        book.inspect().check()
        book.ledger.verify()


def test_migration_5_from_a_version_4_schema(schema: str) -> None:
    with BackorderBook(None, _repo(schema, lazy=False)) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        book.place(Order("A-2", [OrderLine("MUG", 1), OrderLine("CUP", 1)]))
        book.receive("MUG", 1, "GRN-1")
        book.receive("CUP", 3, "GRN-2")
        before = book.inspect().internals()
    _as_version_5(schema)
    _as_version_4(schema)
    assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(4,)]
    with (
        BackorderBook(None, _repo(schema, lazy=False)) as book,
        BackorderBook(None, _repo(schema)) as other,
    ):
        assert _sql(f'SELECT max(version) FROM "{schema}".schema_version') == [(7,)]
        assert book.inspect().internals() == before
        keys = _sql(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indrelid = '\"{schema}\".ledger'::regclass AND i.indisprimary "
            "ORDER BY a.attname"
        )
        assert keys == [("seq",), ("sku",)]
        # numbers go on from the rows' highest, on both handles
        other.place(Order("A-3", [OrderLine("MUG", 1)]))
        assert book.position("A-3", "MUG") == 3
        book.place(Order("A-4", [OrderLine("CUP", 1)]))
        other.receive("MUG", 3, "GRN-3")
        assert book.line("A-3", "MUG").allocated == 1
        for handle in (book, other):
            handle.inspect().check()
            handle.ledger.verify()
        assert len(book.ledger) == len(other.ledger)


def test_a_commit_seen_after_a_later_one_is_caught_up(schema: str) -> None:
    # Commits need not become visible in the order of their numbers: T1 takes
    # its transaction id first, another writer commits after it, a reader
    # catches up past that commit, then T1 commits. The reader still finds
    # T1's rows (here: a switch of the policy, which the reader follows).
    from backorder import PartialFill, StrictFIFO

    s = f'"{schema}"'
    writer = BackorderBook(None, _repo(schema))
    reader = BackorderBook(None, _repo(schema))
    writer.place(Order("A-1", [OrderLine("MUG", 2)]))
    with _pg().connect(DSN) as t1:
        (xid,) = t1.execute("SELECT pg_current_xact_id()::text::bigint").fetchone() or (0,)
        writer.place(Order("A-2", [OrderLine("MUG", 1)]))  # commits after T1 began
        assert reader.position("A-2", "MUG") == 2  # caught up past it
        reader.receive("CUP", 1, "GRN-R")  # and wrote (its own commit is not news to it)
        assert repr(reader.policy) == repr(PartialFill())
        t1.execute(
            f"UPDATE {s}.settings SET value = %s, changed = %s WHERE name = 'policy'",
            (repr(StrictFIFO()), xid),
        )
        t1.execute(
            f"INSERT INTO {s}.change_log (version, xid) VALUES (nextval('{s}.versions'), %s)",
            (xid,),
        )
        t1.commit()
    assert reader.position("A-1", "MUG") == 1
    assert repr(reader.policy) == repr(StrictFIFO())
    writer.close()
    reader.close()
