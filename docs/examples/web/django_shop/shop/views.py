"""The shop's views: JSON in, JSON out, refusals mapped by `exc.http_status`."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from shop_common import error_body, order_from, send_outbox, status_body

from backorder import BackorderError

from .books import shop

View = Callable[..., JsonResponse]


def answers(view: Callable[..., Any]) -> View:
    """Turn a view's dict into JSON, and a refusal into its HTTP status."""

    @wraps(view)
    def run(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            body, status = view(request, *args, **kwargs)
        except BackorderError as exc:
            status, error = error_body(exc)
            return JsonResponse(error, status=status)
        except (KeyError, TypeError, ValueError):
            return JsonResponse({"error": "BadRequest", "detail": "malformed order"}, status=400)
        return JsonResponse(body, status=status)

    return csrf_exempt(run)


@answers
@require_GET
def health(request: HttpRequest) -> tuple[dict[str, Any], int]:
    return {"status": "ok"}, 200


@answers
@require_POST
def place(request: HttpRequest) -> tuple[dict[str, Any], int]:
    result = shop().place(order_from(json.loads(request.body)))
    return {"replayed": result.replayed, **status_body(result.status)}, 201


@answers
@require_GET
def status(request: HttpRequest, order_id: str) -> tuple[dict[str, Any], int]:
    return status_body(shop().status(order_id)), 200


@answers
@require_GET
def eta(request: HttpRequest, order_id: str, sku: str) -> tuple[dict[str, Any], int]:
    book = shop()
    promised = book.eta(order_id, sku)
    when = None if promised is None or promised.at is None else promised.at.isoformat()
    return {"position": book.position(order_id, sku), "eta": when}, 200


@answers
@require_POST
def cancel(request: HttpRequest, order_id: str) -> tuple[dict[str, Any], int]:
    return {"cancelled": shop().cancel(order_id).cancelled}, 200


@answers
@require_POST
def ship(request: HttpRequest, order_id: str) -> tuple[dict[str, Any], int]:
    return {"shipped": shop().ship(order_id).shipped}, 200


@answers
@require_POST
def receive(request: HttpRequest) -> tuple[dict[str, Any], int]:
    data = json.loads(request.body)
    result = shop().receive(data["sku"], data["quantity"], data["reference"])
    return {"replayed": result.replayed, "on_hand": result.stock.on_hand}, 200


@answers
@require_POST
def send(request: HttpRequest) -> tuple[dict[str, Any], int]:
    return {"sent": send_outbox(shop())}, 200
