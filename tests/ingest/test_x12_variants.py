"""835 files as senders really write them (tests/fixtures/x12-835-variants): each file is
read with the claims and warnings its README states, or refused with the message it states,
as an upload meets it (bytes in: decoding and format detection too), however it is chunked;
and no mutation of a readable one makes the reader fail other than by a clear refusal."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.parsing import Batch, UploadParser
from services.ingest.records import ClaimRecord, FileError, UploadWarning
from tests.fixtures import X12_835_VARIANTS

# Files of the folder that are no variant.
NOT_VARIANTS = {"README.md", ".gitattributes"}
NORTHWIND = "NORTHWIND HEALTH PLAN"


@dataclass(frozen=True)
class Read:
    """The file is read: its claims as (claim id, payer, billed cents, paid cents), and its
    warnings in order."""

    claims: tuple[tuple[str, str, int, int], ...]
    warnings: tuple[UploadWarning, ...] = ()
    format: str = "X12_835"


@dataclass(frozen=True)
class Refused:
    """The file is refused as a whole."""

    code: str
    message: str


BOTH_CLAIMS = (("CLM1001", NORTHWIND, 25000, 18000), ("CLM1002", NORTHWIND, 12000, 0))
ONLY_5010 = (
    "only 835 files of version 005010X221A1 (5010) can be read, so ask the sender for a 5010 file"
)


def no_envelope(first_id: str, terminator: str) -> UploadWarning:
    return UploadWarning(
        "NO_ENVELOPE",
        f"the file has no ISA header: it starts with {first_id}; it is read as 005010X221A1 "
        f"with the delimiters its {first_id} segment shows: '*' between elements, components "
        f"as each composite shows them, {terminator!r} after each segment",
        1,
    )


OUTCOMES: dict[str, Read | Refused] = {
    "standard-5010.835": Read(BOTH_CLAIMS),
    "isa-not-padded.835": Read(
        BOTH_CLAIMS,
        (
            UploadWarning(
                "ISA_NOT_FIXED_WIDTH",
                "the ISA header's elements are not padded to their fixed widths (106 "
                "characters in all); its delimiters were read from its elements: '*' between "
                "elements, ':' between components, '~' after each segment",
                1,
            ),
        ),
    ),
    "bare-st-se.835": Read(BOTH_CLAIMS, (no_envelope("ST", "~"),)),
    "bare-st-se-one-segment-a-line.835": Read(BOTH_CLAIMS, (no_envelope("ST", "\n"),)),
    "bare-st-se-two-transactions.835": Read(BOTH_CLAIMS, (no_envelope("ST", "~"),)),
    "gs-without-isa.835": Read(BOTH_CLAIMS, (no_envelope("GS", "~"),)),
    "crlf-after-terminators.835": Read(BOTH_CLAIMS),
    "newline-terminator.835": Read(BOTH_CLAIMS),
    "no-final-terminator.835": Read(
        BOTH_CLAIMS,
        (
            UploadWarning(
                "MISSING_SEGMENT_TERMINATOR", "the last segment (IEA) has no terminator", 25
            ),
        ),
    ),
    "utf8-bom.835": Read(BOTH_CLAIMS),
    "leading-blank-lines.835": Read(BOTH_CLAIMS),
    "pipe-caret-delimiters.835": Read(BOTH_CLAIMS),
    "exclamation-elements-caret-components.835": Read(BOTH_CLAIMS),
    "tilde-elements-star-terminator.835": Read(BOTH_CLAIMS),
    "control-character-delimiters.835": Read(BOTH_CLAIMS),
    "two-transactions-one-group.835": Read(BOTH_CLAIMS),
    "two-groups-one-interchange.835": Read(BOTH_CLAIMS),
    "two-interchanges-different-delimiters.835": Read(BOTH_CLAIMS),
    "se-count-wrong.835": Read(
        BOTH_CLAIMS,
        (
            UploadWarning(
                "SEGMENT_COUNT_MISMATCH", "SE01 is '20' but the segment count is '21'", 23
            ),
        ),
    ),
    "ge-iea-counts-and-control-numbers-wrong.835": Read(
        BOTH_CLAIMS,
        (
            UploadWarning("TRANSACTION_COUNT_MISMATCH", "GE01 is '2' but the ST count is '1'", 24),
            UploadWarning("CONTROL_NUMBER_MISMATCH", "GE02 is '110' but the GS06 is '101'", 24),
            UploadWarning("GROUP_COUNT_MISMATCH", "IEA01 is '3' but the GS count is '1'", 25),
            UploadWarning(
                "CONTROL_NUMBER_MISMATCH", "IEA02 is '000000999' but the ISA13 is '000000101'", 25
            ),
        ),
    ),
    "csv-starting-with-isa.csv": Read(
        (("CLM2001", "Northwind Health Plan", 9000, 7200),),
        (UploadWarning("IGNORED_COLUMNS", "columns not used: ISA Batch", 1),),
        format="CSV",
    ),
    "version-4010.835": Refused(
        "UNSUPPORTED_VERSION",
        f"segment 2 (GS): GS08 is '004010X091A1', X12 version 4010; {ONLY_5010}",
    ),
    "version-3051.835": Refused(
        "UNSUPPORTED_VERSION", f"segment 2 (GS): GS08 is '003051', X12 version 3051; {ONLY_5010}"
    ),
    "truncated-after-a-segment.835": Refused(
        "TRUNCATED_FILE",
        "the file ends after segment 16 (DTM) without the SE, GE and IEA that close its "
        "transaction, group and interchange; it may be truncated",
    ),
    "truncated-in-a-segment.835": Refused(
        "TRUNCATED_FILE",
        "the file ends in the middle of segment 19, after segment 18 (AMT); it may be truncated",
    ),
    "missing-iea.835": Refused(
        "TRUNCATED_FILE",
        "the file ends after segment 24 (GE) without the IEA that closes its interchange; "
        "it may be truncated",
    ),
    "missing-ge-and-iea.835": Refused(
        "TRUNCATED_FILE",
        "the file ends after segment 23 (SE) without the GE and IEA that close its group and "
        "interchange; it may be truncated",
    ),
    "text-after-iea.835": Refused(
        "BAD_ENVELOPE",
        "segment 26: the file goes on after the IEA of segment 25 with text that is not an ISA "
        "header; only another interchange may follow an IEA",
    ),
    "repetition-separator-same-as-component.835": Refused(
        "BAD_ISA",
        "segment 1 (ISA): the delimiters '*', ':', ':', '~' must be distinct and not letters, "
        "digits or spaces",
    ),
    "bare-st-unclear-terminator.835": Refused(
        "UNKNOWN_DELIMITERS",
        "segment 1 (ST): the file has no ISA header to declare its delimiters, and its first "
        "segment cannot be told from the next: '-', where it seems to end, is not followed by "
        "a segment id",
    ),
    "empty.835": Refused("EMPTY_FILE", "the file is empty"),
}
READABLE = sorted(name for name, outcome in OUTCOMES.items() if isinstance(outcome, Read))


def variant(name: str) -> bytes:
    return (X12_835_VARIANTS / name).read_bytes()


def upload(
    data: bytes, chunk_bytes: int, parser: UploadParser | None = None
) -> tuple[UploadParser, Batch]:
    """What `parser` yields for `data` fed in chunks of `chunk_bytes`, then closed."""
    parser = parser or UploadParser(max_bytes=1_000_000)
    total = Batch()
    chunks = [data[at : at + chunk_bytes] for at in range(0, len(data), chunk_bytes)]
    for batch in [*(parser.feed(chunk) for chunk in chunks), parser.close()]:
        total.claims += batch.all_claims()
        total.rejections += batch.rejections
        total.warnings += batch.warnings
    return parser, total


def test_every_variant_has_a_stated_outcome() -> None:
    files = sorted(path.name for path in X12_835_VARIANTS.iterdir())
    assert [name for name in files if name not in NOT_VARIANTS] == sorted(OUTCOMES)


def test_the_readme_states_every_outcome() -> None:
    readme = (X12_835_VARIANTS / "README.md").read_text()
    assert [name for name in OUTCOMES if f"`{name}`" not in readme] == []
    refused = [outcome for outcome in OUTCOMES.values() if isinstance(outcome, Refused)]
    # Long messages are cut short with "…" in the README; the start is always there.
    assert [r.message for r in refused if r.message[:100] not in readme] == []


@pytest.mark.parametrize("chunk_bytes", [1 << 16, 7, 1])
@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_each_variant_is_read_or_refused_as_stated(name: str, chunk_bytes: int) -> None:
    expected = OUTCOMES[name]
    if isinstance(expected, Refused):
        with pytest.raises(FileError) as refused:
            upload(variant(name), chunk_bytes)
        assert (refused.value.code, str(refused.value)) == (expected.code, expected.message)
        return
    parser, batch = upload(variant(name), chunk_bytes)
    assert parser.format == expected.format
    assert [(c.claim_id, c.payer_name, c.billed_cents, c.paid_cents) for c in batch.claims] == (
        list(expected.claims)
    )
    assert batch.warnings == list(expected.warnings)
    assert batch.rejections == []


def test_every_readable_835_variant_reads_the_claims_of_the_standard_file() -> None:
    def as_stored(claim: ClaimRecord) -> ClaimRecord:
        # Files differ in their envelopes, so their claims are read at other segments.
        return dataclasses.replace(claim, source_line=0)

    _, standard = upload(variant("standard-5010.835"), 1 << 16)
    for name in READABLE:
        if name.endswith(".835"):
            _, batch = upload(variant(name), 1 << 16)
            # Statuses, dates, procedure codes and adjustments too, not only the amounts.
            assert [as_stored(c) for c in batch.claims] == [
                as_stored(c) for c in standard.claims
            ], name


MUTATION_BYTES = st.sampled_from(list(b"*:~^>|!\n\r \x00\x1c\x1d-.0123456789AZaz")) | st.integers(
    0, 255
)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(READABLE),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1), st.sampled_from(["insert", "replace", "delete", "cut"]), MUTATION_BYTES
        ),
        min_size=1,
        max_size=6,
    ),
    chunk_bytes=st.integers(1, 300),
)
def test_mutated_variants_are_read_or_refused_clearly(
    name: str, edits: list[tuple[float, str, int]], chunk_bytes: int
) -> None:
    data = variant(name)
    for where, edit, byte in edits:
        at = int(where * max(len(data) - 1, 0))
        if edit == "cut":
            data = data[:at]
            continue
        replacement = bytes([byte]) if edit != "delete" else b""
        data = data[:at] + replacement + data[at + (edit != "insert") :]
    parser = UploadParser(max_bytes=1_000_000)
    try:
        _, batch = upload(data, chunk_bytes, parser)
    except FileError as error:
        assert error.code.isupper() and str(error)
        # An 835 refused at a segment says which.
        if parser.format == "X12_835" and error.line_number:
            assert f"segment {error.line_number}" in str(error)
        return
    for claim in batch.claims:
        assert claim.claim_id and (claim.payer_name or claim.payer_id)
        assert claim.procedure_codes == tuple(line.procedure_code for line in claim.lines)
    for rejection in batch.rejections:
        assert rejection.reason and rejection.code.isupper()
    for warning in batch.warnings:
        assert warning.message and warning.code.isupper()
