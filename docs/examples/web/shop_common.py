"""What every example web app shares: JSON in and out, errors, the outbox sender."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from typing import Any

from backorder import BackorderBook, BackorderError, Order, OrderLine, OrderStatus, event_to_dict

#: The book's file (one file shared by every worker process).
DATABASE = os.environ.get("BACKORDER_DB", "shop.db")
#: Where the example "sends" events (a JSON line each; a real shop e-mails).
SENT = os.environ.get("BACKORDER_SENT", "sent.jsonl")


def order_from(data: dict[str, Any]) -> Order:
    """An `Order` from a request's JSON: {"id", "lines": [{"sku", "quantity"}], "tier"?}.

    Missing keys raise KeyError/TypeError; the app answers 400 for those too."""
    lines = [OrderLine(line["sku"], line["quantity"]) for line in data["lines"]]
    return Order(data["id"], lines, tier=data.get("tier", "standard"))


def status_body(status: OrderStatus) -> dict[str, Any]:
    """An `OrderStatus` as JSON."""
    return {
        "id": status.order.id,
        "lines": [
            {
                "sku": line.sku,
                "ordered": line.ordered,
                "allocated": line.allocated,
                "shipped": line.shipped,
                "cancelled": line.cancelled,
                "backordered": line.backordered,
            }
            for line in status.lines
        ],
    }


def error_body(exc: BackorderError) -> tuple[int, dict[str, str]]:
    """The status and JSON body for a refused call: `exc.http_status` decides.

    The message names the bad value, so 4xx answers carry it; a 5xx answer
    (storage damage, a file locked past the timeout) says only what kind of
    error it was: its message may name the server's file paths."""
    status = exc.http_status
    if status >= 500:
        return status, {"error": type(exc).__name__, "detail": "the shop's storage failed"}
    return status, {"error": type(exc).__name__, "detail": str(exc)}


_sending = threading.Lock()


def send_outbox(book: BackorderBook, limit: int = 50) -> int:
    """One sender's turn: claim events, send each, mark them published.

    Any number of senders (threads, worker processes, a cron job) may run
    this at once: a claim leases its events, so none is sent twice while
    its lease runs, and events of a sender that died are claimed again once
    their lease has run out. Returns how many were sent."""
    sent = 0
    while batch := book.claim_events(limit=limit, lease=timedelta(seconds=60)):
        lines = [json.dumps({"id": e.id, "event": event_to_dict(e.event)}) + "\n" for e in batch]
        with _sending, open(SENT, "a", encoding="utf-8") as out:  # "send" them
            out.write("".join(lines))
        book.mark_published(batch)
        sent += len(batch)
    return sent
