"""The body of a webhook delivery: `{"type", "timestamp", "data"}` with the resource in its
proto3 JSON form, as compact JSON. Built once when a delivery is queued, so every attempt
sends (and signs) the same bytes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any


def webhook_body(event_type: str, timestamp: dt.datetime, data: Mapping[str, Any]) -> bytes:
    when = timestamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": when, "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
