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


# The claims (id, payer, billed cents) of the grouped reports of the workbook and Excel 2003
# XML tests: each payer written once, merged down beside its claims, and an amount merged
# across two columns and down two rows.
MERGED_DOWN_CLAIMS = [
    ("K1", "Aetna", 10000),
    ("K2", "Aetna", 10000),
    ("K3", "Aetna", 5000),
    ("K4", "Cigna", 5000),
    ("K5", "Cigna", 1000),
]
