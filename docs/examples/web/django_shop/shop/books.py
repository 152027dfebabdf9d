"""The process's book, opened on first use.

Not in `AppConfig.ready()`: that runs in the process that imports the
project, which may fork or re-exec (the autoreloader, a pre-forking server),
and a SQLite connection must not cross a fork. Opened on first use, the
book belongs to the process that serves with it; its threads share it.
"""

from __future__ import annotations

import os
import threading

from shop_common import DATABASE

from backorder import BackorderBook, PriorityTiers

_opening = threading.Lock()
_books: dict[int, BackorderBook] = {}


def shop() -> BackorderBook:
    """This process's book (one per process, shared by its threads)."""
    book = _books.get(os.getpid())
    if book is None:
        with _opening:
            book = _books.get(os.getpid())
            if book is None:
                book = _books[os.getpid()] = BackorderBook.open(DATABASE, policy=PriorityTiers())
    return book
