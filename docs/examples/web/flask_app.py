"""The shop's API with Flask, for gunicorn with threads.

Run: gunicorn -w 2 --threads 4 flask_app:app

gunicorn forks its workers from one master: the book is opened in each
worker, on its first request (never at import in the master: a SQLite
connection must not cross a fork), and shared by that worker's threads.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flask import Flask, request
from shop_common import DATABASE, error_body, order_from, send_outbox, status_body

from backorder import BackorderBook, BackorderError, PriorityTiers

app = Flask(__name__)
_opening = threading.Lock()
_books: dict[int, BackorderBook] = {}


def shop() -> BackorderBook:
    """This process's book, opened on first use (one per worker process)."""
    book = _books.get(os.getpid())
    if book is None:
        with _opening:
            book = _books.get(os.getpid())
            if book is None:
                book = _books[os.getpid()] = BackorderBook.open(DATABASE, policy=PriorityTiers())
    return book


@app.errorhandler(BackorderError)
def refused(exc: BackorderError) -> tuple[dict[str, str], int]:
    status, body = error_body(exc)
    return body, status


@app.errorhandler(KeyError)
@app.errorhandler(TypeError)
def malformed(exc: Exception) -> tuple[dict[str, str], int]:
    return {"error": "BadRequest", "detail": "malformed order"}, 400


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders")
def place() -> tuple[dict[str, Any], int]:
    result = shop().place(order_from(request.get_json()))
    return {"replayed": result.replayed, **status_body(result.status)}, 201


@app.get("/orders/<order_id>")
def status(order_id: str) -> dict[str, Any]:
    return status_body(shop().status(order_id))


@app.get("/orders/<order_id>/eta/<sku>")
def eta(order_id: str, sku: str) -> dict[str, Any]:
    book = shop()
    promised = book.eta(order_id, sku)
    when = None if promised is None or promised.at is None else promised.at.isoformat()
    return {"position": book.position(order_id, sku), "eta": when}


@app.post("/orders/<order_id>/cancel")
def cancel(order_id: str) -> dict[str, Any]:
    return {"cancelled": shop().cancel(order_id).cancelled}


@app.post("/orders/<order_id>/ship")
def ship(order_id: str) -> dict[str, Any]:
    return {"shipped": shop().ship(order_id).shipped}


@app.post("/receipts")
def receive() -> dict[str, Any]:
    data = request.get_json()
    result = shop().receive(data["sku"], data["quantity"], data["reference"])
    return {"replayed": result.replayed, "on_hand": result.stock.on_hand}


@app.post("/outbox/send")
def send() -> dict[str, int]:
    return {"sent": send_outbox(shop())}
