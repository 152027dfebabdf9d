"""PostgreSQL for the tests: the server's address, skipping (or failing) without
one, and a fresh schema per test, dropped afterwards.

The tests use `BACKORDER_PG_DSN` (default `dbname=test`). Where no server
answers they skip with the reason, unless `BACKORDER_REQUIRE_POSTGRES=1`
(what `.ci/run` sets when the local server is up): then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

DSN = os.environ.get("BACKORDER_PG_DSN", "dbname=test")
_reason: list[str | None] = []


def unreachable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can (asked once)."""
    if not _reason:
        try:
            import psycopg
        except ImportError:
            _reason.append("psycopg is not installed (pip install 'backorder[postgres]')")
        else:
            try:
                psycopg.connect(DSN, connect_timeout=2).close()
            except psycopg.Error as exc:
                _reason.append(f"no PostgreSQL server answers at {DSN!r}: {exc}".strip())
            else:
                _reason.append(None)
    return _reason[0]


def need_server() -> None:
    """Skip the test without a server (fail instead when CI requires one)."""
    reason = unreachable()
    if reason is not None:
        if os.environ.get("BACKORDER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"BACKORDER_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)


def new_schema(label: str = "t") -> str:
    """A schema name no other test (or test run) uses."""
    return f"bo_{label}_{uuid.uuid4().hex[:12]}"


def drop_schemas(names: list[str]) -> None:
    """Drop these schemas and everything in them."""
    import psycopg
    from psycopg import sql

    if not names:
        return
    with psycopg.connect(DSN, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    """A list to put schema names in; every one is dropped after the test."""
    need_server()
    made: list[str] = []
    yield made
    drop_schemas(made)


@pytest.fixture
def schema(schemas: list[str]) -> str:
    """One fresh schema name for the test (dropped afterwards)."""
    name = new_schema()
    schemas.append(name)
    return name
