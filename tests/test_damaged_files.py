"""Damaged and foreign files (issue 12 item 10): refused with our errors, no side effects."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from backorder import (
    BackorderBook,
    NotABackorderDatabase,
    Order,
    OrderLine,
    StorageCorrupted,
    StorageError,
    UnsupportedSchema,
)
from backorder.storage import SQLiteRepository
from backorder.testing import snapshot
from tests.helpers import TickingClock

TRIALS = int(os.environ.get("BACKORDER_DAMAGE_TRIALS", "120"))


def _book_file(path: Path) -> None:
    with BackorderBook.open(path, clock=TickingClock()) as book:
        book.receive("MUG", 5, reference="GRN-1")
        for i in range(40):
            book.place(Order(f"A-{i}", [OrderLine("MUG", 1 + i % 3), OrderLine("LAMP", 1)]))
        book.ship("A-0")
        book.cancel("A-5")
        if book.stock("MUG").available:
            book.hold("MUG", 1, timedelta(days=1))
        book.adjust("LAMP", 2, "found")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _read_everything(path: Path) -> None:
    with BackorderBook.open(path, clock=TickingClock()) as book:
        snapshot(book)  # loads every row
        book.pending_events()
        book.inspect().check()
        book.ledger.verify()


@pytest.mark.property
def test_flipped_bytes_give_a_working_book_or_a_storage_error(tmp_path: Path) -> None:
    original = tmp_path / "original.db"
    _book_file(original)
    size = original.stat().st_size
    rng = random.Random(int(os.environ.get("BACKORDER_DAMAGE_SEED", "20261202")))
    outcomes = {"works": 0, "refused": 0}
    for trial in range(TRIALS):
        path = tmp_path / f"trial-{trial}.db"
        shutil.copy(original, path)
        data = bytearray(path.read_bytes())
        for _ in range(rng.choice((1, 1, 3))):
            at = rng.randrange(size)
            data[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            _read_everything(path)
        except (StorageCorrupted, NotABackorderDatabase, UnsupportedSchema):
            outcomes["refused"] += 1
        else:
            outcomes["works"] += 1
        for leftover in tmp_path.glob(f"trial-{trial}.db*"):
            leftover.unlink()
    assert outcomes["works"] + outcomes["refused"] == TRIALS
    assert outcomes["refused"] > 0  # the flips do reach stored values
    print(f"flipped-byte trials: {outcomes}")


def test_an_empty_database_of_another_program_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 42")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotABackorderDatabase, match="another program"):
        BackorderBook.open(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_wal_database_of_another_program_gets_no_side_files(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 7")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE things (x)")
    conn.execute("INSERT INTO things VALUES (1)")
    conn.commit()
    # leave a -wal with content, as a running program does
    listing = sorted(p.name for p in tmp_path.iterdir())
    before = {name: (tmp_path / name).read_bytes() for name in listing}
    with pytest.raises(NotABackorderDatabase):
        BackorderBook.open(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert {name: (tmp_path / name).read_bytes() for name in listing} == before
    conn.close()


def test_a_fake_book_is_refused_before_anything_is_switched(tmp_path: Path) -> None:
    path = tmp_path / "fake.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1114328946")  # ours, but not our tables
    conn.execute("CREATE TABLE schema_version (version INTEGER)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotABackorderDatabase):
        BackorderBook.open(path)
    assert path.read_bytes() == before  # still in rollback-journal mode, not WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.db"]


def test_a_full_disk_is_a_storage_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    _book_file(path)
    with BackorderBook.open(path, clock=TickingClock()) as book:
        before = snapshot(book)
        repository = book.repository
        assert isinstance(repository, SQLiteRepository)
        (pages,) = repository._conn.execute("PRAGMA page_count").fetchone()  # type: ignore[union-attr]
        repository._conn.execute(f"PRAGMA max_page_count = {pages}")  # type: ignore[union-attr]  # as a full disk

        def big_import() -> None:
            with book.batch(atomic=True):
                for i in range(3_000):
                    book.place(Order(f"B-{i}", [OrderLine("MUG", 1)], metadata={"x": "y" * 200}))

        with pytest.raises(StorageError, match="cannot be written"):
            big_import()
        assert snapshot(book) == before
    with BackorderBook.open(path, clock=TickingClock()) as again:
        assert snapshot(again) == before
