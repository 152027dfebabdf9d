"""JSON-ready forms of events, for an outbox sender, a queue or a web hook.

`event_to_dict(event)` gives a dict that `json.dumps` takes as it is (times
are ISO 8601 text with their UTC offset); `event_from_dict(data)` turns it,
or JSON of it read back, into an equal event, for every event class. Data
that is not an event raises `InvalidEvent` (HTTP 400) naming the field.

>>> import json
>>> from datetime import datetime, timezone
>>> from backorder import LineShipped
>>> event = LineShipped("A-1", "MUG", 2, datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc))
>>> text = json.dumps(event_to_dict(event), indent=1)
>>> print(text)
{
 "type": "LineShipped",
 "order_id": "A-1",
 "sku": "MUG",
 "quantity": 2,
 "at": "2026-01-05T09:00:00+00:00"
}
>>> event_from_dict(json.loads(text)) == event
True

The outbox stores each event in this same form.
"""

from __future__ import annotations

from ._codec import event_from_dict, event_to_dict

__all__ = ["event_from_dict", "event_to_dict"]
