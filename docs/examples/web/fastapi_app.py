"""The shop's API with FastAPI: async endpoints on AsyncBackorderBook, and
plain `def` endpoints (FastAPI runs those in its thread pool) on the same book.

Run: uvicorn fastapi_app:app --workers 2
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from shop_common import DATABASE, error_body, order_from, send_outbox, status_body

from backorder import AsyncBackorderBook, BackorderError, PriorityTiers

books: dict[str, AsyncBackorderBook] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Once per worker process, after the server started (or forked) it.
    async with AsyncBackorderBook.open(DATABASE, policy=PriorityTiers()) as book:
        books["shop"] = book
        yield


app = FastAPI(lifespan=lifespan)


@app.exception_handler(BackorderError)
async def refused(request: Request, exc: BackorderError) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)


@app.exception_handler(KeyError)
@app.exception_handler(TypeError)
async def malformed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "BadRequest", "detail": "malformed order"}, status_code=400)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders", status_code=201)
async def place(data: dict[str, Any]) -> dict[str, Any]:
    book = books["shop"]
    result = await book.place(order_from(data))
    return {"replayed": result.replayed, **status_body(result.status)}


@app.get("/orders/{order_id}")
async def status(order_id: str) -> dict[str, Any]:
    return status_body(await books["shop"].status(order_id))


@app.get("/orders/{order_id}/eta/{sku}")
async def eta(order_id: str, sku: str) -> dict[str, Any]:
    book = books["shop"]
    promised = await book.eta(order_id, sku)
    when = None if promised is None or promised.at is None else promised.at.isoformat()
    return {"position": await book.position(order_id, sku), "eta": when}


@app.post("/orders/{order_id}/cancel")
async def cancel(order_id: str) -> dict[str, Any]:
    return {"cancelled": (await books["shop"].cancel(order_id)).cancelled}


@app.post("/orders/{order_id}/ship")
async def ship(order_id: str) -> dict[str, Any]:
    return {"shipped": (await books["shop"].ship(order_id)).shipped}


@app.post("/receipts")
async def receive(data: dict[str, Any]) -> dict[str, Any]:
    result = await books["shop"].receive(data["sku"], data["quantity"], data["reference"])
    return {"replayed": result.replayed, "on_hand": result.stock.on_hand}


# Plain `def` endpoints run in FastAPI's thread pool: use the sync book
# underneath (any thread may call it; its calls run one at a time).


@app.post("/sync/orders", status_code=201)
def place_sync(data: dict[str, Any]) -> dict[str, Any]:
    result = books["shop"].sync.place(order_from(data))
    return {"replayed": result.replayed, **status_body(result.status)}


@app.get("/sync/orders/{order_id}")
def status_sync(order_id: str) -> dict[str, Any]:
    return status_body(books["shop"].sync.status(order_id))


@app.post("/outbox/send")
async def send() -> dict[str, int]:
    return {"sent": await books["shop"].run(send_outbox)}
