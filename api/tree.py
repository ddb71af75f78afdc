"""A trace's spans in tree order (each parent before its children) and its summary."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from common.otlp import STATUS_CODES

ERROR = STATUS_CODES.index("error")


def tree_order(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(depth, row) depth-first, siblings by start time. Spans whose parent is not stored
    (not arrived yet, or sampled away) are roots, so no span is left out."""
    ids = {bytes(r["span_id"]) for r in rows}
    children: dict[bytes | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:  # rows come sorted by start time, so each child list is too
        parent = bytes(row["parent_span_id"]) if row["parent_span_id"] else None
        children[parent if parent in ids else None].append(row)
    ordered: list[tuple[int, dict[str, Any]]] = []
    placed: set[int] = set()
    expanded: set[bytes] = set()
    stack = [(0, row) for row in reversed(children[None])]
    while stack:  # iterative: a deep trace must not hit the recursion limit
        depth, row = stack.pop()
        ordered.append((depth, row))
        placed.add(id(row))
        span_id = bytes(row["span_id"])
        if span_id not in expanded:  # a span id stored twice (two start times) has one set of children
            expanded.add(span_id)
            stack.extend((depth + 1, child) for child in reversed(children[span_id]))
    # Spans in a parent cycle have no root to reach them from; keep them, flat, at the end.
    ordered.extend((0, row) for row in rows if id(row) not in placed)
    return ordered


def summary(ordered: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    rows = [row for _, row in ordered]
    root = ordered[0][1]
    start = min(r["start_time_unix_nano"] for r in rows)
    end = max(r["end_time_unix_nano"] for r in rows)
    return {
        "root": {"span_id": bytes(root["span_id"]).hex(), "name": root["name"], "service_name": root["service_name"]},
        "start_ns": start,
        "end_ns": end,
        "span_count": len(rows),
        "error_count": sum(1 for r in rows if r["status_code"] == ERROR),
        "services": sorted({r["service_name"] for r in rows}),
        "input_tokens": sum(r["input_tokens"] or 0 for r in rows),
        "output_tokens": sum(r["output_tokens"] or 0 for r in rows),
        "cost_usd": float(sum((r["cost_total_usd"] or Decimal(0) for r in rows), Decimal(0))),
    }
