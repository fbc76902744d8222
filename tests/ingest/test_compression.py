"""An upload's bytes before they are text: gzip files read as they stream, and files that are
never claims (archives, workbooks, documents) refused by name."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import AsyncIterator, Sequence

import pytest

from services.ingest.compression import PIECE_BYTES, file_bytes
from services.ingest.parsing import UploadParser
from services.ingest.records import FileError

CSV = b"".join(
    f"C{i},Payer {i % 7},99213,2026-03-01,2026-03-02,2026-03-14,PAID,150,100,80,0,\n".encode()
    for i in range(5_000)
)


async def _chunks(data: bytes, sizes: Sequence[int]) -> AsyncIterator[bytes]:
    at, i = 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        yield data[at : at + size]
        at, i = at + size, i + 1


def _read(data: bytes, sizes: Sequence[int] = (65_536,)) -> list[bytes]:
    async def pieces() -> list[bytes]:
        reader = UploadParser(max_bytes=1 << 30)
        return [piece async for piece in file_bytes(_chunks(data, sizes), reader)]

    return asyncio.run(pieces())


def _error(data: bytes, sizes: Sequence[int] = (65_536,)) -> FileError:
    with pytest.raises(FileError) as raised:
        _read(data, sizes)
    return raised.value


def test_a_plain_file_passes_as_it_came() -> None:
    assert _read(CSV, (1000,)) == [CSV[i : i + 1000] for i in range(0, len(CSV), 1000)]


@pytest.mark.parametrize("sizes", [(1,), (2, 7, 3), (4096,), (1 << 20,)])
def test_a_gzip_file_is_read_decompressed_however_its_bytes_are_cut(sizes: tuple[int]) -> None:
    body = CSV[:4000] if sizes == (1,) else CSV  # a byte at a time: a shorter file
    packed = gzip.compress(body)
    assert b"".join(_read(packed, sizes)) == body


def test_members_one_after_another_are_one_file() -> None:
    # As `cat march.csv.gz april.csv.gz` makes them; the second member's magic cut in two.
    first = gzip.compress(CSV[:100_000])
    second = gzip.compress(CSV[100_000:])
    joined = first + second
    cut = len(first) + 1
    assert b"".join(_read(joined, (cut, 1, 1 << 20))) == CSV
    assert b"".join(_read(joined + b"\x00" * 512)) == CSV  # padding after the last member


def test_a_gzip_file_inside_a_gzip_body_is_read_too() -> None:
    assert b"".join(_read(gzip.compress(gzip.compress(CSV)))) == CSV


def test_a_small_body_that_decompresses_to_a_great_deal_comes_in_pieces() -> None:
    bomb = gzip.compress(b"x" * (64 * PIECE_BYTES))
    assert len(bomb) < 100_000
    pieces = _read(bomb, (len(bomb),))
    assert max(len(piece) for piece in pieces) <= PIECE_BYTES
    assert sum(len(piece) for piece in pieces) == 64 * PIECE_BYTES


def test_a_cut_short_gzip_file_says_so() -> None:
    packed = gzip.compress(CSV)
    error = _error(packed[: len(packed) // 2])
    assert error.code == "BAD_COMPRESSION"
    assert "ends early" in str(error)


def test_damaged_gzip_data_says_where() -> None:
    packed = bytearray(gzip.compress(CSV))
    random.Random(7).shuffle(middle := packed[2000:2100])
    packed[2000:2100] = middle
    error = _error(bytes(packed), (1000,))
    assert error.code == "BAD_COMPRESSION"
    assert "damaged" in str(error)
    assert "within its first" in str(error)


def test_bytes_after_the_gzip_data_are_refused() -> None:
    error = _error(gzip.compress(CSV) + b"claim_id,payer\n")
    assert (error.code, str(error)) == (
        "BAD_COMPRESSION",
        "the file goes on after the end of its gzip data",
    )


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
        (b"BZh91AY&SY" + bytes(100), "compressed with bzip2"),
        (b"\xfd7zXZ\x00\x00\x04" + bytes(100), "compressed with xz"),
        (b"\x28\xb5\x2f\xfd" + bytes(100), "compressed with zstd"),
        (gzip.compress(b"%PDF-1.4\n", mtime=0), "a PDF document"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "an image"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "an image"),
        (b'<?xml version="1.0"?>\n<Workbook>', "an XML document"),
        (b'[{"claim_id": "C1"}]', "JSON"),
        (b"{\\rtf1\\ansi claims}", "a Rich Text document"),
    ],
    ids=[
        *("pdf", "bzip2", "xz", "zstd", "gzip-pdf", "png", "jpeg"),
        *("xml", "json", "rtf"),
    ],
)
def test_files_that_are_never_claims_are_named(data: bytes, named: str) -> None:
    error = _error(data, (3,))
    assert error.code == "NOT_CLAIMS_FILE"
    assert str(error).startswith(f"the file is {named}")


def test_text_that_begins_like_those_formats_is_read() -> None:
    text = b"PK_ID,payer\n1,Aetna\n"  # "PK" without a ZIP header's next bytes
    assert b"".join(_read(text, (1,))) == text
    # A header whose first name is in braces or begins like markup is still a header.
    for text in (b"{claim},payer\n1,Aetna\n", b"<claim id>,payer\n1,Aetna\n"):
        assert b"".join(_read(text, (1,))) == text
    assert _read(b"") == []
