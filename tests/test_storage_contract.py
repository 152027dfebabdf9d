"""The repository contract suite, run on every repository this project ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from backorder import InMemoryRepository, SQLiteRepository
from backorder.testing import DictRepository
from backorder.testing.contract import OpenStore, RepositoryContract

pytestmark = pytest.mark.property


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        stores: dict[str, InMemoryRepository] = {}
        return lambda name: stores.setdefault(name, InMemoryRepository(outbox=True))


class TestDictRepository(RepositoryContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        stores: dict[str, DictRepository] = {}
        return lambda name: stores.setdefault(name, DictRepository()).reopen()


class TestSQLiteRepository(RepositoryContract):
    """SQLite as opened by default: SKUs loaded as operations need them."""

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        return lambda name: SQLiteRepository(tmp_path / f"{name}.db")


class TestSQLiteRepositoryLoadedWhole(RepositoryContract):
    """The same file, loaded whole at open instead of SKU by SKU."""

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        return lambda name: SQLiteRepository(tmp_path / f"{name}.db", lazy=False)
