"""Plain tables for notebooks: records of ledger entries, HTML, pandas frames."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from html import escape
from typing import Any


def ledger_records(ledger: Iterable[Any]) -> list[dict[str, Any]]:
    """One dict per ledger entry, in entry order."""
    return [
        {
            "seq": entry.seq,
            "kind": entry.kind,
            "sku": entry.sku,
            "on_hand_delta": entry.on_hand_delta,
            "allocated_delta": entry.allocated_delta,
            "order_id": entry.order_id,
            "reference": entry.reference,
            "at": entry.at,
            "on_hand": entry.on_hand,
            "allocated": entry.allocated,
            "available": entry.available,
        }
        for entry in ledger
    ]


def html_table(caption: str, records: list[dict[str, Any]], limit: int = 50) -> str:
    """A compact HTML table of records (the first `limit` rows), values escaped."""
    if not records:
        return f"<p>{escape(caption)}: empty</p>"
    columns = list(records[0])
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{'' if record[c] is None else escape(str(record[c]))}</td>" for c in columns
        )
        + "</tr>"
        for record in records[:limit]
    )
    more = f"<p>... and {len(records) - limit} more rows</p>" if len(records) > limit else ""
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{more}"
    )


def optional(module: str, extra: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed: pip install 'backorder[{extra}]' (or {module})"
        ) from exc


# column -> pandas dtype ("time": aware datetimes in UTC)
_DTYPES = {
    "seq": "int64",
    "ordered": "int64",
    "allocated": "int64",
    "shipped": "int64",
    "cancelled": "int64",
    "backordered": "int64",
    "on_hand_delta": "int64",
    "allocated_delta": "int64",
    "on_hand": "int64",
    "available": "int64",
    "orders": "int64",
    "units": "int64",
    "filled": "int64",
    "units_waiting": "int64",
    "promised": "int64",
    "refused": "int64",
    "position": "Int64",
    "ship_complete": "bool",
    "placed_at": "time",
    "at": "time",
    "fill_rate": "float64",
    "backordered_share": "float64",
    "wait_mean_days": "Float64",
    "wait_median_days": "Float64",
    "wait_p95_days": "Float64",
    "eta_error_days": "Float64",
    "on_time_share": "Float64",
}


def data_frame(records: list[dict[str, Any]], columns: list[str]) -> Any:
    """A pandas DataFrame of records with proper dtypes: counts int64 (Int64
    where a value may be missing), times aware UTC datetimes, names and
    kinds `string`, shares float. Raises ImportError without pandas."""
    pandas = optional("pandas", "pandas")
    frame = pandas.DataFrame.from_records(records, columns=columns)
    for column in columns:
        dtype = _DTYPES.get(column, "string")
        if dtype == "time":
            frame[column] = pandas.to_datetime(frame[column], utc=True)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame
