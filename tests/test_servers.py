"""Real web servers running the example apps of docs/howto-web.md (issue 14).

Each test starts a server on 127.0.0.1 with a free port (uvicorn with two
workers, gunicorn with two workers of four threads, Django's threaded
runserver), drives it with bounded concurrent requests, stops it, and then
checks the book file: every acknowledged order is there, nothing doubled,
every invariant and the ledger hold, no answer was a 500, and every event
was sent at most once (and the rest is still in the outbox).

The frameworks are the `servers` extra; without them these tests skip,
unless `BACKORDER_REQUIRE_SERVERS=1` (CI), where they fail instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from backorder import BackorderBook, PriorityTiers, event_to_dict

from .pg import DSN, need_server, new_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples" / "web"
SKUS = ("MUG", "CUP", "LAMP")
CONCURRENCY = 8


def _need(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f"needs {', '.join(missing)} (pip install 'backorder[servers]')"
    if os.environ.get("BACKORDER_REQUIRE_SERVERS") == "1":
        pytest.fail(f"BACKORDER_REQUIRE_SERVERS=1 but the server tests cannot run: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the shop's book lives: a SQLite file, or a PostgreSQL database
    of its own (made for the test and dropped after it; `open` takes its URL)."""
    if request.param == "sqlite":
        yield str(tmp_path / "shop.db")
        return
    need_server()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = new_schema("shop")
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    # (the URL of that database, reached as the tests' DSN reaches its own)
    params = {k: str(v) for k, v in conninfo_to_dict(DSN).items() if k != "dbname"}
    try:
        yield f"postgresql:///{name}" + (f"?{urlencode(params)}" if params else "")
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _server(
    command: list[str], cwd: Path, tmp_path: Path, port: int, stop: signal.Signals, db: str
) -> Iterator[tuple[str, str]]:
    import httpx

    BackorderBook.open(db, policy=PriorityTiers()).close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES), str(cwd)]),
        "BACKORDER_DB": str(db),
        "BACKORDER_SENT": str(tmp_path / "sent.jsonl"),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield base, db
        finally:
            server.send_signal(stop)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def _drive(base: str, place_paths: tuple[str, ...] = ("/orders",)) -> dict[str, Any]:
    # Bounded concurrent requests in two waves; what the server acknowledged.
    import httpx

    rng = random.Random(14)
    statuses: list[int] = []
    placed: dict[str, list[tuple[str, int]]] = {}
    received: dict[tuple[str, str], int] = {}

    with httpx.Client(base_url=base, timeout=60) as client:

        def call(method: str, path: str, body: Any = None) -> httpx.Response:
            response = client.request(method, path, json=body)
            statuses.append(response.status_code)
            return response

        def place(n: int) -> None:
            order_id = f"W-{n}"
            lines = [(rng.choice(SKUS), rng.randint(1, 3))]
            body = {
                "id": order_id,
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
                "tier": rng.choice(("standard", "vip")),
            }
            for path in rng.sample(place_paths, len(place_paths)):  # a retry too
                if call("POST", path, body).status_code == 201:
                    placed[order_id] = lines

        def receive(n: int) -> None:
            sku, reference = SKUS[n % len(SKUS)], f"GRN-{n}"
            body = {"sku": sku, "quantity": 2, "reference": reference}
            for _ in range(2):  # a redelivered receipt counts once
                if call("POST", "/receipts", body).status_code == 200:
                    received[sku, reference] = 2

        wave: list[Callable[[], Any]] = [partial(place, n) for n in range(60)]
        wave += [partial(receive, n) for n in range(30)]
        wave += [partial(call, "POST", "/outbox/send") for _ in range(6)]
        wave += [partial(call, "POST", "/orders", {"id": "", "lines": []})]  # refused: 400
        rng.shuffle(wave)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda job: job(), wave))

        ids = sorted(placed)
        second: list[Callable[[], Any]] = []
        for order_id in ids:
            sku = placed[order_id][0][0]
            second.append(partial(call, "GET", f"/orders/{order_id}"))
            second.append(partial(call, "GET", f"/orders/{order_id}/eta/{sku}"))
        second += [partial(call, "POST", f"/orders/{o}/ship") for o in ids[::3]]
        second += [partial(call, "POST", f"/orders/{o}/cancel") for o in ids[1::4]]
        second += [partial(call, "POST", "/outbox/send") for _ in range(6)]
        second += [partial(call, "GET", "/orders/NOPE")]  # 404
        rng.shuffle(second)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda job: job(), second))
    return {"statuses": statuses, "placed": placed, "received": received}


def _check(db: str, tmp_path: Path, driven: dict[str, Any]) -> None:
    statuses = driven["statuses"]
    assert 500 not in statuses, statuses
    assert all(status < 500 for status in statuses), sorted(set(statuses))
    assert 400 in statuses
    assert 404 in statuses
    placed: dict[str, list[tuple[str, int]]] = driven["placed"]
    assert len(placed) == 60
    with BackorderBook.open(db, policy=PriorityTiers()) as book:
        assert sorted(book.order_ids()) == sorted(placed)  # every one, nothing more
        for order_id, lines in placed.items():
            assert [(line.sku, line.ordered) for line in book.status(order_id).lines] == lines
        book.inspect().check()
        book.ledger.verify()
        for sku in SKUS:
            receipts = [e for e in book.ledger.entries(sku) if e.kind == "receipt"]
            mine = {ref: q for (s, ref), q in driven["received"].items() if s == sku}
            assert sorted(str(e.reference) for e in receipts) == sorted(mine)  # none doubled
            assert sum(e.on_hand_delta for e in receipts) == sum(mine.values())
        sent_path = tmp_path / "sent.jsonl"
        records: list[dict[str, Any]] = [
            json.loads(line) for line in sent_path.read_text().splitlines()
        ]
        sent = [record["id"] for record in records]
        assert sent, "the outbox sender sent nothing"
        assert len(sent) == len(set(sent)), "an event was sent twice"
        pending = {e.id for e in book.pending_events()}
        assert not pending & set(sent)
        if not db.startswith("postgresql:"):  # (PostgreSQL's ids may skip a number
            # taken by a unit of work it ran again; the events below are checked there)
            assert pending | set(sent) == set(range(1, max(pending | set(sent)) + 1))
        # every acknowledged order and receipt told once, sent or still pending
        told = [record["event"] for record in records]
        told += [event_to_dict(e.event) for e in book.pending_events()]
        placed_told = sorted(e["order_id"] for e in told if e["type"] == "OrderPlaced")
        assert placed_told == sorted(placed)
        received_told = sorted(e["reference"] for e in told if e["type"] == "StockReceived")
        assert received_told == sorted(ref for _, ref in driven["received"])


def test_uvicorn_two_workers_async_and_sync_endpoints(tmp_path: Path, database: str) -> None:
    _need("fastapi", "uvicorn", "httpx")
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--log-level", "warning"]
    with _server(command, EXAMPLES, tmp_path, port, signal.SIGTERM, database) as (base, db):
        driven = _drive(base, place_paths=("/orders", "/sync/orders"))
        import httpx

        assert httpx.get(base + "/sync/orders/W-1").status_code == 200
    _check(db, tmp_path, driven)


def test_gunicorn_two_workers_four_threads_flask(tmp_path: Path, database: str) -> None:
    _need("flask", "gunicorn", "httpx")
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4"]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "flask_app:app"]
    with _server(command, EXAMPLES, tmp_path, port, signal.SIGTERM, database) as (base, db):
        driven = _drive(base)
    _check(db, tmp_path, driven)


def test_django_threaded_runserver_and_the_outbox_command(tmp_path: Path, database: str) -> None:
    _need("django", "httpx")
    port = _free_port()
    project = EXAMPLES / "django_shop"
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with _server(command, project, tmp_path, port, signal.SIGINT, database) as (base, db):
        driven = _drive(base)
    _check(db, tmp_path, driven)
    # the management command sends what is left, once
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES), str(project)]),
        "BACKORDER_DB": str(db),
        "BACKORDER_SENT": str(tmp_path / "sent.jsonl"),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "send_outbox"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("sent ")
    with BackorderBook.open(db, policy=PriorityTiers()) as book:
        assert book.pending_events() == ()
    sent = [json.loads(line)["id"] for line in (tmp_path / "sent.jsonl").read_text().splitlines()]
    assert len(sent) == len(set(sent))
    assert set(sent) == set(range(1, max(sent) + 1))  # every event, each once
