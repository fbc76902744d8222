"""An upload's bytes as they arrive: the encodings exports come in, telling CSV from X12 835,
the file's size limit and checksum, and denial flags on the claims that come out."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Mapping
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.decoding import StreamDecoder, detect_format
from services.ingest.parsing import Batch, UploadParser
from services.ingest.records import ClaimRecord, ClaimStatus, FileError, UploadWarning
from tests.fixtures import X12_835_FIXTURES

FIXTURES = X12_835_FIXTURES
MANAGED_CARE = (FIXTURES / "managed-care.835").read_bytes()
FAST = settings(max_examples=60, deadline=None)
CSV = (
    "Claim Number,Payer Name,Remit Date,Status,Billed,Paid,CARC\r\n"
    "C1,Société Générale Assurances,03/14/2026,Paid,120.00,100.00,CO-45\r\n"
    "C2,Société Générale Assurances,03/15/2026,Denied,80.00,0,CO-50\r\n"
)
WINDOWS_1252_WARNING = UploadWarning(
    "DECODED_AS_WINDOWS_1252", "the file is not UTF-8; it was read as Windows-1252 (Latin-1)"
)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]


def upload(
    data: bytes,
    cuts: list[int] | None = None,
    *,
    declared_format: str = "",
    column_map: Mapping[str, str] | None = None,
    max_bytes: int = 10_000_000,
) -> tuple[UploadParser, Batch]:
    parser = UploadParser(
        declared_format=declared_format, column_map=column_map, max_bytes=max_bytes
    )
    total = Batch()
    for batch in [*(parser.feed(piece) for piece in pieces(data, cuts or [])), parser.close()]:
        total.claims += batch.all_claims()
        total.rejections += batch.rejections
        total.warnings += batch.warnings
    return parser, total


def upload_error(data: bytes, cuts: list[int] | None = None, **kwargs: object) -> FileError:
    with pytest.raises(FileError) as raised:
        upload(data, cuts, **kwargs)  # type: ignore[arg-type]
    return raised.value


def decode(data: bytes, chunk_size: int) -> tuple[str, StreamDecoder]:
    decoder = StreamDecoder()
    text = "".join(
        decoder.decode(data[i : i + chunk_size]) for i in range(0, len(data), chunk_size)
    )
    return text + decoder.decode(b"", final=True), decoder


def payers(batch: Batch) -> list[str]:
    return [claim.payer_name for claim in batch.claims]


# --- Encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1 << 16])
def test_utf8_decodes_as_is_even_with_characters_split_across_chunks(chunk_size: int) -> None:
    text = "payer\nSociété Générale — 12 € 🏥\n"
    decoded, decoder = decode(text.encode(), chunk_size)
    assert (decoded, decoder.encoding, decoder.warnings) == (text, "utf-8", [])


def test_a_utf8_bom_is_not_part_of_the_first_header_name() -> None:
    _, batch = upload(codecs.BOM_UTF8 + CSV.encode(), [1, 2])
    assert [c.claim_id for c in batch.claims] == ["C1", "C2"]
    assert (batch.rejections, batch.warnings) == ([], [])
    decoded, _ = decode(codecs.BOM_UTF8 + b"claim_id", 1)
    assert decoded == "claim_id"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("cuts", [[], [1, 2, 3, 5, 101]])
def test_utf16_with_a_bom_reads_like_utf8(codec: str, cuts: list[int]) -> None:
    bom = codecs.BOM_UTF16_LE if codec == "utf-16-le" else codecs.BOM_UTF16_BE
    _, batch = upload(bom + CSV.encode(codec), cuts)
    _, expected = upload(CSV.encode())
    assert batch == expected
    assert payers(batch) == ["Société Générale Assurances"] * 2


def test_a_windows_1252_export_is_read_with_a_warning() -> None:
    parser, batch = upload(CSV.encode("cp1252"))
    assert payers(batch) == ["Société Générale Assurances"] * 2
    assert batch.warnings == [WINDOWS_1252_WARNING]
    assert parser.rows_read == 2


@FAST
@given(cuts=st.lists(st.integers(0, len(CSV)), max_size=12))
def test_windows_1252_reads_the_same_wherever_the_chunks_split(cuts: list[int]) -> None:
    # é is a UTF-8 lead byte in Windows-1252: a cut right after it leaves it pending.
    data = CSV.encode("cp1252") + "C3,Café,03/14/2026,Paid,1,1,\r\nC4,é".encode("cp1252")
    _, batch = upload(data, cuts)
    assert payers(batch) == ["Société Générale Assurances"] * 2 + ["Café"]
    assert batch.warnings == [WINDOWS_1252_WARNING]
    assert [r.line_number for r in batch.rejections] == [5]


def test_a_non_utf8_byte_split_from_its_chunk_falls_back_with_the_buffered_byte() -> None:
    data = "payer\nSociété Générale\n".encode("cp1252")
    split = data.index(b"\xe9") + 1
    decoder = StreamDecoder()
    text = decoder.decode(data[:split]) + decoder.decode(data[split:])
    assert text + decoder.decode(b"", final=True) == "payer\nSociété Générale\n"
    assert (decoder.encoding, decoder.warnings) == ("cp1252", [WINDOWS_1252_WARNING])


def test_a_utf8_bom_on_a_windows_1252_file_is_still_dropped() -> None:
    _, batch = upload(codecs.BOM_UTF8 + CSV.encode("cp1252"))
    assert payers(batch) == ["Société Générale Assurances"] * 2
    assert batch.warnings == [WINDOWS_1252_WARNING]


@pytest.mark.parametrize(
    "data",
    [
        b"claim_id,payer,status\nC1,Aet\x00na,paid\n",
        CSV.encode("utf-16-le"),  # UTF-16 without its BOM
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
)
def test_binary_data_is_refused(data: bytes) -> None:
    assert upload_error(data).code == "BINARY_FILE"


@pytest.mark.parametrize("data", [b"", b" ", b"\r\n\r\n\t "])
def test_an_empty_file_is_refused(data: bytes) -> None:
    assert upload_error(data).code == "EMPTY_FILE"


def test_utf16_cut_off_mid_character_is_refused() -> None:
    assert upload_error(codecs.BOM_UTF16_LE + CSV.encode("utf-16-le")[:-1]).code == "BAD_ENCODING"


# --- Formats -------------------------------------------------------------------------------


def test_a_csv_upload_is_recognised_and_parsed() -> None:
    parser, batch = upload(CSV.encode(), [5, 9])
    assert parser.format == "CSV"
    assert [(c.claim_id, c.source_line, c.status) for c in batch.claims] == [
        ("C1", 2, ClaimStatus.PAID),
        ("C2", 3, ClaimStatus.DENIED),
    ]
    assert parser.rows_read == 2


@pytest.mark.parametrize("declared", ["", "X12_835"])
@pytest.mark.parametrize("prefix", [b"", b"\r\n  \n"])
def test_an_835_upload_is_recognised_and_parsed(declared: str, prefix: bytes) -> None:
    parser, batch = upload(prefix + MANAGED_CARE, [3, 10], declared_format=declared)
    assert parser.format == "X12_835"
    assert [(c.claim_id, c.billed_cents, c.paid_cents) for c in batch.claims] == [
        ("5554555444", 80000, 45000),
        ("8765432112", 120000, 49500),
    ]
    # Paid, with only contractual and patient-share adjustments: no denial.
    assert [(c.denied, c.partially_denied) for c in batch.claims] == [(False, False)] * 2


@pytest.mark.parametrize(
    ("head", "detected"),
    [
        ("ISA*00*          *00*", "X12_835"),
        ("ISA|00||00||ZZ|SENDER", "X12_835"),  # not padded, `|` between elements
        ("isa*00*", "X12_835"),
        ("\ufeff\r\n  ISA*00*", "X12_835"),
        ("ST*835*0001~BPR*I", "X12_835"),  # a transaction without its envelope
        ("ST*835~", "X12_835"),
        ("GS*HP*SENDER*RECEIVER", "X12_835"),
        ("ISA Batch,claim_id,payer", "CSV"),
        ("ISA,claim_id,payer", "CSV"),
        ("ISAAC_ID;claim_id", "CSV"),
        ("ISA*AB*claim", "CSV"),
        ("ST,8350,claim_id", "CSV"),
        ("STATUS,claim_id,payer", "CSV"),
        ("GS,payer,claim_id", "CSV"),
    ],
)
def test_x12_is_told_from_a_csv_that_starts_like_it(head: str, detected: str) -> None:
    assert detect_format(head) == detected


def test_a_bare_835_transaction_is_recognised_and_read() -> None:
    managed_care = MANAGED_CARE.decode()
    start, end = managed_care.index("ST*835"), managed_care.index("GE*")
    parser, batch = upload(managed_care[start:end].encode(), [5, 9])
    assert parser.format == "X12_835"
    assert [(c.claim_id, c.billed_cents) for c in batch.claims] == [
        ("5554555444", 80000),
        ("8765432112", 120000),
    ]
    assert batch.warnings[0].code == "NO_ENVELOPE"


@pytest.mark.parametrize(
    ("data", "declared", "detected"),
    [(CSV.encode(), "X12_835", "CSV"), (MANAGED_CARE, "CSV", "X12_835")],
)
def test_a_declared_format_the_file_contradicts_is_refused(
    data: bytes, declared: str, detected: str
) -> None:
    error = upload_error(data, declared_format=declared)
    assert error.code == "FORMAT_MISMATCH"
    assert str(error) == f"the upload says {declared} but the file looks like {detected}"


def test_a_column_map_on_an_835_is_refused() -> None:
    assert upload_error(MANAGED_CARE, column_map={"payer": "Plan"}).code == "BAD_COLUMN_MAP"


def test_a_csv_shorter_than_the_sniffing_window_is_still_read() -> None:
    error = upload_error(b"claim_id,payer\n")
    assert error.code == "MISSING_COLUMN"
    assert "decision_date" in str(error)


# --- Size and checksum ---------------------------------------------------------------------


def test_a_file_of_exactly_max_bytes_is_taken_and_one_byte_more_is_refused() -> None:
    data = CSV.encode()
    parser, batch = upload(data, [10], max_bytes=len(data))
    assert (parser.size_bytes, len(batch.claims)) == (len(data), 2)
    parser = UploadParser(max_bytes=len(data) - 1)
    parser.feed(data[:-1])
    with pytest.raises(FileError) as raised:
        parser.feed(data[-1:])
    assert raised.value.code == "FILE_TOO_LARGE"
    assert f"{len(data) - 1:,} bytes" in str(raised.value)


@FAST
@given(cuts=st.lists(st.integers(0, len(MANAGED_CARE)), max_size=20))
def test_size_and_sha256_are_of_the_whole_file_whatever_the_chunking(cuts: list[int]) -> None:
    parser, batch = upload(MANAGED_CARE, cuts)
    assert parser.sha256 == hashlib.sha256(MANAGED_CARE).hexdigest()
    assert parser.size_bytes == len(MANAGED_CARE)
    assert batch == upload(MANAGED_CARE)[1]


# --- Denials -------------------------------------------------------------------------------


def test_claims_come_out_with_their_denial_flags_set() -> None:
    csv = (
        "claim_id,payer,decision_date,status,billed_amount,paid_amount,carc_codes\n"
        "D1,Aetna,2026-03-14,denied,100,0,\n"
        "D2,Aetna,2026-03-14,,100,0,CO-50\n"
        "P1,Aetna,2026-03-14,,100,0,PR-1;CO-45\n"
        "P2,Aetna,2026-03-14,paid,100,80,CO-45\n"
        "Q1,Aetna,2026-03-14,partial,100,40,CO-97\n"
        "N1,Aetna,,pending,100,0,CO-50\n"
    )
    _, batch = upload(csv.encode())
    assert [(c.claim_id, c.denied, c.partially_denied) for c in batch.claims] == [
        ("D1", True, False),
        ("D2", True, False),
        ("P1", False, False),
        ("P2", False, False),
        ("Q1", False, True),
        ("N1", False, False),
    ]


# --- Arbitrary bytes -----------------------------------------------------------------------

PREFIXES = st.sampled_from(
    [
        b"",
        codecs.BOM_UTF8,
        codecs.BOM_UTF16_LE,
        codecs.BOM_UTF16_BE,
        b"ISA*",
        MANAGED_CARE[:300],
        b"claim_id,payer,decision_date,billed_amount,paid_amount,carc_codes\n",
        CSV.encode("cp1252"),
    ]
)


@FAST
@given(prefix=PREFIXES, body=st.binary(max_size=400), cuts=st.lists(st.integers(0, 800)))
def test_arbitrary_bytes_are_read_or_refused_with_a_file_error(
    prefix: bytes, body: bytes, cuts: list[int]
) -> None:
    data = prefix + body
    try:
        parser, batch = upload(data, cuts, max_bytes=600)
    except FileError as error:
        assert error.code
        return
    assert parser.sha256 == hashlib.sha256(data).hexdigest()
    assert all(isinstance(claim, ClaimRecord) for claim in batch.claims)
