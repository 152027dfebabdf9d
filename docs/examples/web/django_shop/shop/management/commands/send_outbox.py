"""`python manage.py send_outbox`: send every event waiting in the outbox.

Run it from cron, a systemd timer or a worker loop; several at once are
fine (each claims its own events, see `shop_common.send_outbox`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from shop_common import send_outbox

from shop.books import shop


class Command(BaseCommand):
    help = "Send the events waiting in the book's outbox."

    def handle(self, *args: Any, **options: Any) -> None:
        sent = send_outbox(shop())
        self.stdout.write(f"sent {sent} events")
