"""The repository contract suite on PostgreSQL: loaded lazily and whole.

Each test works in schemas of its own, dropped afterwards; without a server
the tests skip (or fail, with BACKORDER_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import pytest

from backorder.testing.contract import OpenStore, RepositoryContract

from .pg import DSN, new_schema, schemas

__all__ = ["schemas"]  # the fixture, used by the classes below

pytestmark = pytest.mark.property


def _opener(made: list[str], lazy: bool) -> OpenStore:
    from backorder.storage.postgres import PostgresRepository

    base = new_schema("c")
    names: dict[str, str] = {}

    def open_store(name: str) -> PostgresRepository:
        schema = names.get(name)
        if schema is None:
            schema = names[name] = f"{base}_{len(names)}"
            made.append(schema)
        return PostgresRepository(DSN, schema=schema, lazy=lazy, timeout=10)

    return open_store


class TestPostgresRepository(RepositoryContract):
    """PostgreSQL as opened by default: SKUs loaded as operations need them."""

    # every step compares through a fresh handle: dozens of round trips, so the
    # random histories are fewer here than on the in-process stores
    machine_examples = 12

    @pytest.fixture
    def open_store(self, schemas: list[str]) -> OpenStore:
        return _opener(schemas, lazy=True)


class TestPostgresRepositoryLoadedWhole(RepositoryContract):
    """The same schema, loaded whole at open instead of SKU by SKU."""

    machine_examples = 12

    @pytest.fixture
    def open_store(self, schemas: list[str]) -> OpenStore:
        return _opener(schemas, lazy=False)
