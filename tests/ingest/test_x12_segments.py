"""The X12 segment reader alone: text in chunks to segments and their numbers, whatever the
chunking, the delimiters and the line breaks; it knows no transaction's meaning."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.records import FileError, UploadWarning
from services.ingest.x12_segments import Segment, SegmentReader
from tests.fixtures import X12_835_FIXTURES
from tests.fixtures import X12_835_NAMES as FIXTURE_NAMES

ISA = (
    "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       "
    "*240401*1200*^*00501*000000001*0*P*:~"
)
ISA_ELEMENTS = [
    "ISA", "00", "          ", "00", "          ", "ZZ", "SUBMITTER      ", "ZZ",
    "RECEIVER       ", "240401", "1200", "^", "00501", "000000001", "0", "P", ":",
]  # fmt: skip
LIMIT = 64 * 1024

Event = Segment | UploadWarning


def read(chunks: list[str], max_segment_bytes: int = LIMIT) -> list[Event]:
    """The segments and warnings of `chunks`, in the order the reader gives them."""
    events: list[Event] = []
    reader = SegmentReader(max_segment_bytes, events.append)
    for chunk in chunks:
        events.extend(reader.feed(chunk))
    events.extend(reader.close())
    return events


def read_error(chunks: list[str], max_segment_bytes: int = LIMIT) -> FileError:
    with pytest.raises(FileError) as caught:
        read(chunks, max_segment_bytes)
    return caught.value


def fixture(name: str) -> str:
    return (X12_835_FIXTURES / name).read_text()


def test_segments_with_their_elements_numbers_and_warnings() -> None:
    # Not an 835 and no valid envelope: the reader judges syntax only.
    text = (
        ISA
        + "\r\nGS*HP*S*R*20240401*1200*1*X*005010X221A1~\r\n"
        + "ST*837*0001~\n"
        + "SVC*HC:99213* 100.00 **~\n"
        + "1X*JANE*DOE~"
        + "se*3*0001~GE*1*1~IEA*1*000000001~"
    )
    assert read([text]) == [
        Segment("ISA", ISA_ELEMENTS, 1),
        Segment("GS", ["GS", "HP", "S", "R", "20240401", "1200", "1", "X", "005010X221A1"], 2),
        Segment("ST", ["ST", "837", "0001"], 3),
        UploadWarning(
            "TRAILING_SEPARATOR",
            "SVC ends with empty elements (extra separators); they were ignored",
            4,
        ),
        Segment("SVC", ["SVC", "HC:99213", " 100.00 "], 4),
        UploadWarning("MALFORMED_SEGMENT", "the segment has no readable segment id; skipped", 5),
        UploadWarning("LOWERCASE_SEGMENT_ID", "segment id 'se' is not upper case", 6),
        Segment("SE", ["SE", "3", "0001"], 6),
        Segment("GE", ["GE", "1", "1"], 7),
        Segment("IEA", ["IEA", "1", "000000001"], 8),
    ]


def test_an_element_is_read_without_blanks_and_is_empty_past_the_end() -> None:
    svc = Segment("SVC", ["SVC", "HC:99213", " 100.00 "], 4)
    assert (svc.element(2), svc.element(3)) == ("100.00", "")


def test_each_interchange_declares_its_own_delimiters() -> None:
    first = ISA + "GS*HP*S*R~IEA*1*000000001~"
    # `|` between elements, `>` between components, a line break ends each segment.
    second = ISA.replace("*", "|").replace(":~", ">\n") + "GS|HP>1|S\r\nIEA|1|000000001\n"
    events: list[Event] = []
    reader = SegmentReader(LIMIT, events.append)
    events.extend(reader.feed(first + "\n" + second))
    assert reader.delimiters is None  # the last IEA closed the interchange
    events.extend(reader.close())
    assert [(e.id, e.elements[1:3], e.number) for e in events if isinstance(e, Segment)] == [
        ("ISA", ["00", "          "], 1),
        ("GS", ["HP", "S"], 2),
        ("IEA", ["1", "000000001"], 3),
        ("ISA", ["00", "          "], 4),
        ("GS", ["HP>1", "S"], 5),
        ("IEA", ["1", "000000001"], 6),
    ]
    assert [e for e in events if isinstance(e, UploadWarning)] == []


def test_the_delimiters_of_the_open_interchange() -> None:
    warnings: list[UploadWarning] = []
    reader = SegmentReader(LIMIT, warnings.append)
    list(reader.feed(ISA.replace("*", "|").replace(":~", ">\n") + "GS|HP"))
    assert reader.delimiters is not None
    assert (
        reader.delimiters.element,
        reader.delimiters.component,
        reader.delimiters.terminator,
        reader.delimiters.line_breaks,
    ) == ("|", ">", "\n", ("\r",))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_two_chunks_cut_at_every_position_give_the_same_segments(name: str) -> None:
    text = fixture(name).replace("~\n", "~\r\n")
    whole = read([text])
    assert len([e for e in whole if isinstance(e, Segment)]) == text.count("~")
    for cut in range(len(text) + 1):
        assert read([text[:cut], text[cut:]]) == whole, cut


@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(FIXTURE_NAMES),
    line_break=st.sampled_from(["", "\n", "\r\n", "\n\n"]),
    cuts=st.lists(st.floats(0, 1), max_size=30),
)
def test_any_chunking_gives_the_same_segments(
    name: str, line_break: str, cuts: list[float]
) -> None:
    text = fixture(name).replace("~\n", "~" + line_break)
    bounds = sorted({0, len(text), *(int(cut * len(text)) for cut in cuts)})
    chunks = [text[start:end] for start, end in pairwise(bounds)]
    assert read(chunks) == read([text])


def test_segments_are_read_lazily_so_a_consumer_stops_before_later_faults() -> None:
    warnings: list[UploadWarning] = []
    segments = SegmentReader(LIMIT, warnings.append).feed(ISA + "GS*HP~ST*835~\x00\x01~")
    assert [next(segments).id for _ in range(3)] == ["ISA", "GS", "ST"]
    with pytest.raises(FileError) as caught:
        next(segments)
    assert (caught.value.code, caught.value.line_number) == ("BINARY_FILE", 4)


def test_only_a_last_iea_may_lack_its_terminator() -> None:
    events = read([ISA + "GS*HP~GE*1*1~IEA*1*000000001\r\n"])
    assert events[-2:] == [
        Segment("IEA", ["IEA", "1", "000000001"], 4),
        UploadWarning("MISSING_SEGMENT_TERMINATOR", "the last segment (IEA) has no terminator", 4),
    ]
    error = read_error([ISA + "GS*HP~GE*1"])
    assert (error.code, error.line_number) == ("TRUNCATED_FILE", 3)
    assert str(error) == "the file ends in the middle of a segment; it may be truncated"


@pytest.mark.parametrize(
    ("text", "code", "message", "line_number"),
    [
        (" \r\n", "EMPTY_FILE", "the file is empty", 0),
        (ISA[:50], "BAD_ISA", "the file is too short to hold an ISA header (106 characters)", 0),
        (
            ISA + "IEA*1*1~" + ISA[:50],
            "TRUNCATED_FILE",
            "the file ends inside an envelope (no closing SE, GE or IEA); it may be truncated",
            2,
        ),
        ("claim_id,payer\n", "NOT_X12", "the file does not start with an X12 ISA header", 0),
        (
            ISA + "IEA*1*1~GS*HP~",
            "BAD_ENVELOPE",
            "only an ISA header may follow an IEA",
            3,
        ),
        (
            ISA.replace("000000001", "00000001") + "GS*HP~",
            "BAD_ISA",
            "the ISA header is not 106 characters of fixed-width elements, "
            "so its delimiters cannot be read",
            1,
        ),
        (
            ISA.replace(":~", "~~"),
            "BAD_ISA",
            "the ISA header's delimiters must be distinct and not letters, digits or spaces",
            1,
        ),
        (
            ISA + "GS*HP~ST*835\x00~",
            "BINARY_FILE",
            "segment 3 holds control characters; the file is binary or corrupt",
            3,
        ),
    ],
)
def test_text_that_cannot_be_cut_into_segments(
    text: str, code: str, message: str, line_number: int
) -> None:
    error = read_error([text])
    assert (error.code, str(error), error.line_number) == (code, message, line_number)


def test_a_segment_over_the_limit_is_refused_across_chunks() -> None:
    error = read_error([ISA + "GS*HP~ST*", "8" * 30, "5*0001~"], max_segment_bytes=32)
    assert (error.code, error.line_number) == ("SEGMENT_TOO_LONG", 3)
    assert str(error) == "segment 3 is longer than 32 bytes"
    just_fits = read([ISA + "GS*HP~ST*", "8" * 20, "5*0001~"], max_segment_bytes=32)
    assert just_fits[-1] == Segment("ST", ["ST", "8" * 20 + "5", "0001"], 3)
