"""A file read as an upload reads it, for the tests of what its bytes may be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from services.ingest.compression import file_bytes
from services.ingest.parsing import UploadParser


class Read(NamedTuple):
    text: bytes  # what the parser was fed: the file's text, or what was made of it
    claims: list[Any]
    rejections: list[Any]
    warnings: list[Any]
    sha256: str


def read_upload(data: bytes, size: int = 4096, max_bytes: int = 1 << 20) -> Read:
    """`data` sent in chunks of `size` bytes and read as an upload is."""
    parser = UploadParser(max_bytes=max_bytes)

    async def text() -> bytes:
        async def chunks() -> AsyncIterator[bytes]:
            for at in range(0, len(data), size):
                yield data[at : at + size]

        return b"".join([piece async for piece in file_bytes(chunks(), parser)])

    fed = asyncio.run(text())
    batches = [parser.feed(fed), parser.close()]
    return Read(
        fed,
        [claim for batch in batches for claim in batch.all_claims()],
        [rejection for batch in batches for rejection in batch.rejections],
        [warning for batch in batches for warning in batch.warnings],
        parser.sha256,
    )
