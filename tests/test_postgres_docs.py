"""The runnable example of docs/postgres.md, run against a real server (in a
schema of its own, dropped afterwards); skipped without one."""

from __future__ import annotations

import re
from pathlib import Path

from .pg import DSN, schema, schemas

__all__ = ["schema", "schemas"]  # the fixtures

PAGE = Path(__file__).resolve().parent.parent / "docs" / "postgres.md"


def _example() -> str:
    blocks: list[str] = re.findall(r"```py\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if 'DSN = "dbname=test"' in b]
    return block


def test_the_callers_transaction_example_runs(schema: str) -> None:
    code = _example().replace("shop_book", schema).replace('"dbname=test"', repr(DSN))
    namespace: dict[str, object] = {"__name__": "__example__"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    from backorder import BackorderBook
    from backorder.storage.postgres import PostgresRepository

    with BackorderBook(repository=PostgresRepository(DSN, schema=schema)) as book:
        assert list(book.order_ids()) == ["A-1"]
        assert book.pending_events() == ()  # published in the example's last commit
    assert [type(event).__name__ for event in namespace["sent"]][:1] == ["OrderPlaced"]  # type: ignore[attr-defined]
