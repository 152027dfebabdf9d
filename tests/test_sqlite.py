"""SQLite storage: bad files, schema versions, locks, commit races, the outbox API."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from backorder import (
    ArgumentTypeError,
    BackorderBook,
    Changes,
    ConcurrencyConflict,
    InvalidQuantity,
    NotABackorderDatabase,
    Order,
    OrderLine,
    RepositoryClosed,
    SQLiteRepository,
    StorageCorrupted,
    UnsupportedSchema,
)
from backorder.storage import sqlite as sqlite_module
from backorder.testing import DictRepository, snapshot

from .helpers import TickingClock


def _book_file(path: Path) -> None:
    with BackorderBook.open(path, clock=TickingClock()) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        book.receive("MUG", 1, reference="GRN-1")


def _refused(path: Path, error: type[Exception], match: str) -> None:
    before = path.read_bytes()
    listing = sorted(os.listdir(path.parent))
    with pytest.raises(error, match=match):
        BackorderBook.open(path)
    with pytest.raises(error):
        SQLiteRepository(path)
    assert path.read_bytes() == before  # byte for byte
    assert sorted(os.listdir(path.parent)) == listing


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("remember the milk\n" * 100)
    _refused(text, NotABackorderDatabase, "not a SQLite database")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(8192))
    _refused(noise, NotABackorderDatabase, "not a SQLite database")


@pytest.mark.parametrize("wal", [False, True])
def test_a_database_of_another_program_is_refused_untouched(tmp_path: Path, wal: bool) -> None:
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ann')")
    conn.commit()
    conn.close()
    _refused(path, NotABackorderDatabase, "another program")


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.commit()
    conn.close()
    _refused(path, UnsupportedSchema, "schema version 99")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotABackorderDatabase):
        BackorderBook.open(tmp_path)


def test_wrong_argument_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match="path"):
        SQLiteRepository(42)  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ArgumentTypeError, match="timeout"):
        SQLiteRepository(tmp_path / "x.db", timeout=-1)


def test_an_empty_file_becomes_a_book(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with BackorderBook.open(path) as book:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
    with BackorderBook.open(str(path)) as book:
        assert book.position("A-1", "MUG") == 1


def test_an_in_memory_database_works() -> None:
    with BackorderBook.open(":memory:", clock=TickingClock()) as book:
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
        book.receive("MUG", 1)
        assert book.line("A-1", "MUG").allocated == 1
        book.ledger.verify()


def test_the_file_is_marked_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == sqlite_module.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == (
        sqlite_module.SCHEMA_VERSION
    )
    conn.close()


def test_an_older_schema_is_migrated_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    with BackorderBook.open(path) as book:
        before = snapshot(book)
    newer = dict(sqlite_module.MIGRATIONS)
    following = sqlite_module.SCHEMA_VERSION + 1  # a migration after every one we have
    newer[following] = ("ALTER TABLE orders ADD COLUMN note TEXT",)
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", newer)
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", following)
    with BackorderBook.open(path) as book:
        assert snapshot(book) == before
    conn = sqlite3.connect(path)
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, following + 1))
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(orders)")]
    conn.close()


def test_rows_this_library_never_writes_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE orders SET body = 'not json' WHERE order_id = 'A-1'")
    conn.commit()
    conn.close()
    whole = SQLiteRepository(path, lazy=False)
    with pytest.raises(StorageCorrupted, match="not json"):
        BackorderBook(repository=whole)
    whole.close()
    # lazily loaded: found when the order is read
    with BackorderBook.open(path) as book, pytest.raises(StorageCorrupted, match="not json"):
        book.status("A-1")


def test_a_writer_that_waits_too_long_gets_a_conflict_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    with BackorderBook.open(path, timeout=0.05) as book:
        before = snapshot(book)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process is writing
        try:
            with pytest.raises(ConcurrencyConflict, match="locked"):
                book.receive("MUG", 5, reference="GRN-2")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert snapshot(book) == before
        book.receive("MUG", 5, reference="GRN-2")  # and works once the lock is free
        assert book.stock("MUG").on_hand == 6


class _Racing(DictRepository):
    """Another writer commits between this handle's begin() and commit()."""

    races = 1

    def commit(self) -> int:
        if self.races:
            self.races -= 1
            rival = BackorderBook(repository=self.reopen(), clock=TickingClock())
            rival.place(Order(f"RIVAL-{self.races}", [OrderLine("MUG", 1)]))
        return super().commit()


def test_a_lost_commit_race_reruns_the_operation_on_fresh_state() -> None:
    repository = _Racing()
    book = BackorderBook(repository=repository, clock=TickingClock())
    book.place(Order("A-1", [OrderLine("MUG", 1)]))  # the rival placed first
    assert list(book.order_ids()) == ["RIVAL-0", "A-1"]
    assert book.position("A-1", "MUG") == 2
    result = book.receive("MUG", 1, reference="GRN-1")
    assert book.line("RIVAL-0", "MUG").allocated == 1
    assert [e.order_id for e in result.events if hasattr(e, "order_id")] == ["RIVAL-0"]
    book._check()


def test_a_race_lost_every_time_gives_up_and_changes_nothing() -> None:
    repository = _Racing()
    book = BackorderBook(repository=repository, clock=TickingClock())
    book.place(Order("A-1", [OrderLine("MUG", 1)]))
    repository.races = 100
    with pytest.raises(ConcurrencyConflict):
        book.receive("MUG", 1, reference="GRN-1")
    assert book.stock("MUG").on_hand == 0
    assert repository.races == 100 - 5  # tried RETRIES times
    assert len(book) == 1 + 1 + 5  # the rivals' orders are there, nothing of ours
    book._check()


def test_outbox_arguments_are_checked(tmp_path: Path) -> None:
    with BackorderBook.open(tmp_path / "book.db") as book:
        with pytest.raises(InvalidQuantity, match="limit"):
            book.pending_events(limit=0)
        with pytest.raises(ArgumentTypeError, match="mark_published"):
            book.mark_published(["1"])  # type: ignore[list-item]  # the wrong type is the point
    with pytest.raises(RepositoryClosed):
        book.pending_events()


def test_a_batch_ended_by_an_error_keeps_what_returned(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    heard: list[object] = []
    with BackorderBook.open(path, clock=TickingClock()) as book:
        book.subscribe(heard.append)

        def stopped_import() -> None:
            with book.batch():
                book.place(Order("A-1", [OrderLine("MUG", 1)]))
                assert heard == []
                raise RuntimeError("the import stopped")

        with pytest.raises(RuntimeError, match="import stopped"):
            stopped_import()
        assert len(heard) == 2  # OrderPlaced, LineBackordered: after the commit
        before = snapshot(book)
    with BackorderBook.open(path, clock=TickingClock()) as book:
        assert snapshot(book) == before


def test_a_write_that_fails_inside_a_batch_undoes_only_that_operation() -> None:
    class Picky(DictRepository):
        def write(self, changes: Changes) -> None:
            if any(row.order_id == "BAD" for row in changes.orders):
                raise OSError("disk full")
            super().write(changes)

    repository = Picky()
    book = BackorderBook(repository=repository, clock=TickingClock())
    with book.batch():
        book.place(Order("A-1", [OrderLine("MUG", 1)]))
        with pytest.raises(OSError, match="disk full"):
            book.place(Order("BAD", [OrderLine("MUG", 1)]))
        book.place(Order("A-2", [OrderLine("MUG", 1)]))
    assert list(book.order_ids()) == ["A-1", "A-2"]
    again = BackorderBook(repository=repository.reopen(), clock=TickingClock())
    assert snapshot(again) == snapshot(book)


def test_an_expired_hold_id_used_again_comes_back_if_the_hold_fails() -> None:
    class Failing(DictRepository):
        fail = False

        def commit(self) -> int:
            if self.fail:
                self.rollback()
                raise OSError("disk full")
            return super().commit()

    repository = Failing()
    clock = TickingClock()
    book = BackorderBook(repository=repository, clock=clock)
    book.receive("MUG", 5)
    book.hold("MUG", 1, timedelta(seconds=5), "H-1")
    clock.now += timedelta(minutes=1)
    book.expire()
    assert book._state.expired_holds == {"H-1"}
    repository.fail = True
    with pytest.raises(OSError, match="disk full"):
        book.hold("MUG", 1, timedelta(minutes=5), "H-1")
    assert book._state.expired_holds == {"H-1"}  # restored with everything else
    repository.fail = False
    book.hold("MUG", 1, timedelta(minutes=5), "H-1")  # an expired id may be used again
    again = BackorderBook(repository=repository.reopen(), clock=clock)
    assert again._state.expired_holds == set()
    assert snapshot(again) == snapshot(book)


def test_storage_arguments_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    from backorder import InMemoryRepository, InvalidArgument

    with pytest.raises(ArgumentTypeError, match="outbox"):
        InMemoryRepository(outbox=1)  # type: ignore[arg-type]  # the wrong type is the point
    with pytest.raises(ArgumentTypeError, match="lazy"):
        SQLiteRepository(tmp_path / "x.db", lazy="yes")  # type: ignore[arg-type]  # ditto
    with BackorderBook.open(tmp_path / "y.db") as book:
        with pytest.raises(ArgumentTypeError, match="mark_published"):
            book.mark_published(5.0)  # type: ignore[arg-type]  # ditto
        book.receive("MUG", 1)
        book.receive("CUP", 1)
        first, second = book.pending_events()
        assert book.mark_published(first) == 1  # one event, or its id
        assert book.mark_published(second.id) == 1
        assert book.pending_events() == ()
        with book.batch(), pytest.raises(InvalidArgument, match="batch"):
            book.close()
        book.place(Order("A-1", [OrderLine("MUG", 1)]))  # still open
    with pytest.raises(ArgumentTypeError, match="repository"):
        BackorderBook(repository=object())  # type: ignore[arg-type]  # ditto


def test_a_lazily_loaded_book_holds_only_what_it_touched(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    with BackorderBook.open(path, clock=TickingClock()) as book, book.batch():
        for i in range(30):
            book.place(Order(f"A-{i}", [OrderLine(f"SKU-{i % 10}", 1)]))
    with BackorderBook.open(path, clock=TickingClock()) as book:
        assert book._state.skus == {}  # opening loads no SKU
        assert book.position("A-3", "SKU-3") == 1
        assert set(book._state.skus) == {"SKU-3"}
        book.receive("SKU-4", 1)
        assert set(book._state.skus) == {"SKU-3", "SKU-4"}
        assert len(book._state.orders) == 6
        assert len(book) == 30  # a whole-book read loads everything
        assert len(book._state.skus) == 10


def test_a_file_whose_writer_died_before_a_checkpoint_opens(tmp_path: Path) -> None:
    # committed pages still in the -wal (as after a SIGKILL): the inspection must
    # read through the WAL, not the main file alone (the crash test meets the
    # case where the main file alone is mid-checkpoint and reads as malformed)
    path = tmp_path / "book.db"
    _book_file(path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM orders").fetchone()  # holds the WAL open
    with BackorderBook.open(path, clock=TickingClock()) as book:
        for i in range(50):
            book.place(Order(f"W-{i}", [OrderLine("MUG", 1)]))
    assert os.path.getsize(str(path) + "-wal") > 0  # not checkpointed past the reader
    with BackorderBook.open(path) as book:
        assert book.position("W-49", "MUG") == 51
    reader.execute("COMMIT")
    reader.close()


# --- schema 5 (issue 13): what the write side relies on -----------------------


def _plan(path: Path, query: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + query))
    finally:
        conn.close()


def test_a_skus_open_and_closed_lines_are_read_by_their_partial_indexes(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    open_lines = (
        "SELECT l.order_id FROM lines l WHERE l.sku IN ('MUG', 'CUP')"
        " AND l.shipped + l.cancelled < l.ordered ORDER BY l.sku, l.rank, l.seq"
    )
    assert "USING INDEX lines_open" in _plan(path, open_lines)
    assert "TEMP B-TREE" not in _plan(path, open_lines.replace("'CUP'", "'MUG'"))
    closed = "SELECT order_id FROM lines WHERE sku = 'MUG' AND shipped + cancelled >= ordered"
    assert "USING INDEX lines_closed" in _plan(path, closed)
    # (schema 6) catching up reads the keys the change log names, by the key
    catching_up = "SELECT ordered FROM lines WHERE order_id IN ('A-1', 'B') AND sku IN ('MUG', 'C')"
    assert "SEARCH lines USING PRIMARY KEY" in _plan(path, catching_up)
    receipts = "SELECT quantity FROM receipts WHERE sku IN ('MUG', 'C') AND reference IN ('G', 'H')"
    assert "SEARCH receipts USING PRIMARY KEY" in _plan(path, receipts)
    orders = "SELECT body FROM orders WHERE order_id IN ('A-1')"
    # (schema 7) orders are keyed by their id, WITHOUT ROWID: one b-tree
    assert "SEARCH orders USING PRIMARY KEY (order_id=?)" in _plan(path, orders)


def test_event_ids_are_never_handed_out_again(tmp_path: Path) -> None:
    # (no AUTOINCREMENT since schema 5: the ids come from a counter)
    path = tmp_path / "book.db"
    with BackorderBook.open(path, clock=TickingClock()) as book:
        book.place(Order("A-1", [OrderLine("MUG", 2)]))
        last = max(event.id for event in book.pending_events())
        assert book.mark_published(book.pending_events()) > 0
        book.place(Order("A-2", [OrderLine("MUG", 2)]))
    with BackorderBook.open(path, clock=TickingClock()) as again:
        again.place(Order("A-3", [OrderLine("MUG", 1)]))
        ids = [event.id for event in again.pending_events()]
    assert min(ids) > last
    assert ids == sorted(set(ids))


def test_the_landed_file_migrates_and_its_event_ids_go_on(tmp_path: Path) -> None:
    path = tmp_path / "landed.db"
    path.write_bytes((Path(__file__).parent / "data" / "landed-0.1.0.db").read_bytes())
    conn = sqlite3.connect(path)
    (handed_out,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    conn.close()
    with BackorderBook.open(path) as book:
        old = {event.id for event in book.pending_events()}
        book.receive("LAMP", 1, reference="GRN-schema-5")
        new = {event.id for event in book.pending_events()} - old
    assert new
    assert min(new) > handed_out
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (7,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"lines_open", "lines_closed"} <= names
    assert not {"lines_by_order", "ledger_changed", "orders_changed"} & names
    # (schema 6) a change log instead of a `changed` index on every table
    assert "change_log" in names
    assert {name for name in names if name.endswith("_changed")} == {"settings_changed"}


def test_a_long_batch_writes_lines_again_after_an_earlier_flush(tmp_path: Path) -> None:
    # A batch is written every 2,000 operations: a line written by one flush
    # and changed after it (allocated only; then shipped, cancelled, moved in
    # line) is stored as it ends, and another book catches up with it all.
    path = tmp_path / "book.db"
    twin = BackorderBook(clock=TickingClock())
    book = BackorderBook.open(path, clock=TickingClock())
    other = BackorderBook.open(path, clock=TickingClock())
    other.stock("MUG")  # loaded before the batch: it catches up afterwards
    for target in (twin, book):
        with target.batch():
            for i in range(2_100):
                target.place(Order(f"B-{i}", [OrderLine("MUG", 2), OrderLine("CUP", 1)]))
            target.receive("MUG", 7, reference="GRN-1")  # allocates to B-0 .. B-3
            target.ship("B-0", "MUG")
            target.cancel("B-1")
            target.change_tier("B-5", "vip")
            target.receive("CUP", 2, reference="GRN-2")
    assert snapshot(book) == snapshot(twin)
    assert snapshot(other) == snapshot(twin)
    assert other.inspect().reloads == 0
    book.close()
    other.close()
    with BackorderBook.open(path, clock=TickingClock()) as again:
        assert snapshot(again) == snapshot(twin)


# --- schema 6: the change log --------------------------------------------------


def _seen(book: BackorderBook) -> dict[str, object]:
    # what a reader sees of the book: every order's lines, stock, the lines
    return {
        "orders": {i: book.status(i).lines for i in book.order_ids()},
        "stock": {s: (book.stock(s).on_hand, book.stock(s).allocated) for s in book.skus()},
        "waiting": {s: [ln.order_id for ln in book.waiting(s)] for s in book.skus()},
        "ledger": [(e.seq, e.sku, e.on_hand, e.allocated) for e in book.ledger],
    }


@pytest.mark.parametrize("lazy", [True, False])
def test_a_commit_of_more_keys_than_the_log_lists_is_read_by_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lazy: bool
) -> None:
    monkeypatch.setattr(sqlite_module, "KEYS_LISTED", 3)
    path = tmp_path / "book.db"
    with (
        BackorderBook.open(path, clock=TickingClock()) as writer,
        BackorderBook(repository=SQLiteRepository(path, lazy=lazy), clock=TickingClock()) as reader,
    ):
        writer.place(Order("A-0", [OrderLine("MUG", 1), OrderLine("CUP", 1)]))
        assert reader.position("A-0", "MUG") == 1  # the reader holds MUG and CUP
        with writer.batch():  # five orders, five lines: more than the log lists
            for i in range(1, 6):
                writer.place(Order(f"A-{i}", [OrderLine("MUG", 1)]))
        writer.receive("MUG", 4, reference="GRN-1")  # four lines allocated: listed too
        writer.cancel("A-5")
        conn = sqlite3.connect(path)
        logged = [keys for (keys,) in conn.execute("SELECT keys FROM change_log ORDER BY version")]
        conn.close()
        assert any('"lines":"*"' in keys for keys in logged)
        assert any('"lines":[' in keys for keys in logged)
        assert _seen(reader) == _seen(writer)
        reader.place(Order("B-1", [OrderLine("MUG", 1)]))
        assert writer.position("B-1", "MUG") == 2  # behind A-4 (A-0 to A-3 allocated)
        assert _seen(writer) == _seen(reader)


def test_a_reader_behind_the_kept_log_loads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "COMMITS_KEPT", 4)
    monkeypatch.setattr(sqlite_module, "_PRUNE_EVERY", 2)
    behind: list[Exception] = []
    written = sqlite_module.SQLiteRepository._written

    def spied(conn: sqlite3.Connection, since: int, version: int) -> dict[str, object]:
        try:
            return written(conn, since, version)
        except Exception as exc:
            behind.append(exc)
            raise

    monkeypatch.setattr(sqlite_module.SQLiteRepository, "_written", staticmethod(spied))
    path = tmp_path / "book.db"
    with (
        BackorderBook.open(path, clock=TickingClock()) as writer,
        BackorderBook.open(path, clock=TickingClock()) as reader,
    ):
        writer.place(Order("A-0", [OrderLine("MUG", 3)]))
        assert reader.position("A-0", "MUG") == 1
        near = _seen(reader)
        writer.place(Order("A-1", [OrderLine("MUG", 1)]))
        assert _seen(reader) != near  # caught up from the log
        for i in range(2, 12):
            writer.place(Order(f"A-{i}", [OrderLine("MUG", 1)]))
            writer.receive("MUG", 1, reference=f"GRN-{i}")
        conn = sqlite3.connect(path)
        first, last = conn.execute("SELECT min(version), max(version) FROM change_log").fetchone()
        conn.close()
        assert last - first < 6  # pruned: the reader's version is gone from it
        assert _seen(reader) == _seen(writer)  # loaded again
        assert [type(exc).__name__ for exc in behind] == ["StaleCopy"]
        reader.cancel("A-3")
        assert _seen(writer) == _seen(reader)
        writer.ledger.verify()
