"""Subscribers: who hears a book's events, and how they are told."""

from __future__ import annotations

from collections.abc import Callable

from .errors import ArgumentTypeError, EventHandlerError
from .events import Event

__all__ = ["Handler", "Subscribers"]

Handler = Callable[[Event], object]


class Subscribers:
    """The handlers of one book, called in order with every event."""

    __slots__ = ("handlers",)

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def add(self, handler: Handler) -> Callable[[], None]:
        """Add a handler; return a callable that removes it. O(1)."""
        if not callable(handler):
            raise ArgumentTypeError(f"handler must be callable, got {handler!r}")
        self.handlers.append(handler)
        handlers = self.handlers

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, events: tuple[Event, ...], result: object) -> None:
        """Call every handler with every event. If any raise, the others still
        get every event, then `EventHandlerError` carries `result` and the errors."""
        if not events or not self.handlers:
            return
        errors: list[Exception] = []
        for event in events:
            for handler in list(self.handlers):
                try:
                    handler(event)
                except Exception as exc:  # every handler still gets every event
                    errors.append(exc)
        if errors:
            raise EventHandlerError(
                f"the operation succeeded, but {len(errors)} handler call(s) raised; "
                f"first: {errors[0]!r}",
                result,
                errors,
            ) from errors[0]
