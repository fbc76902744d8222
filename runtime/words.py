"""Numbers in messages people read: "1 claim", "2 claims", "1,200 claims"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str = "") -> str:
    """`count` and `noun`, made plural (`plural`, else with an s) unless `count` is 1."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
