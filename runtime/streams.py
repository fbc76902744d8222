"""Byte streams read in pieces (uploads through the gateway and into ingest)."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def prepended(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`head` (bytes already read from a stream, to see what it is), then the rest of it."""
    if head:
        yield head
    async for chunk in rest:
        yield chunk
