"""The shop's routes."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("health", views.health),
    path("orders", views.place),
    path("orders/<str:order_id>", views.status),
    path("orders/<str:order_id>/eta/<str:sku>", views.eta),
    path("orders/<str:order_id>/cancel", views.cancel),
    path("orders/<str:order_id>/ship", views.ship),
    path("receipts", views.receive),
    path("outbox/send", views.send),
]
