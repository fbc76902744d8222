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


UNPADDED_ISA = "ISA*00**00**ZZ*SUBMITTER*ZZ*RECEIVER*20240401*1200*^*00501*1*0*P*:~"


def test_an_isa_whose_elements_are_not_padded_is_read_with_a_warning() -> None:
    events = read([UNPADDED_ISA + "GS*HP*S*R~GE*0*1~IEA*1*1~"])
    assert events[:2] == [
        UploadWarning(
            "ISA_NOT_FIXED_WIDTH",
            "the ISA header's elements are not padded to their fixed widths (106 characters "
            "in all); its delimiters were read from its elements: '*' between elements, ':' "
            "between components, '~' after each segment",
            1,
        ),
        Segment(
            "ISA",
            UNPADDED_ISA.removesuffix("~").split("*"),
            1,
        ),
    ]
    assert [e.id for e in events if isinstance(e, Segment)] == ["ISA", "GS", "GE", "IEA"]


@pytest.mark.parametrize(
    ("text", "element", "terminator", "line_breaks"),
    [
        ("ST*835*0001~BPR*I~SE*3*0001~", "*", "~", ("\r", "\n")),
        ("ST*835*0001*005010X221A1~\r\nBPR*I~\r\nSE*3*0001~\r\n", "*", "~", ("\r", "\n")),
        # One segment a line: LF ends each, and a CR before it is dropped.
        ("ST|835|0001\r\nBPR|I\r\nSE|3|0001\r\n", "|", "\n", ("\r",)),
        ("ST!835!0001\nBPR!I\nSE!3!0001", "!", "\n", ("\r",)),
        ("st^835^1'BPR^I'SE^3^1'", "^", "'", ("\r", "\n")),
    ],
)
def test_a_bare_transaction_shows_its_delimiters(
    text: str, element: str, terminator: str, line_breaks: tuple[str, ...]
) -> None:
    events: list[Event] = []
    reader = SegmentReader(LIMIT, events.append)
    events.extend(reader.feed(text))
    events.extend(reader.close())
    assert reader.delimiters is not None
    assert (
        reader.delimiters.element,
        reader.delimiters.component,
        reader.delimiters.terminator,
        reader.delimiters.line_breaks,
        reader.outermost,
    ) == (element, "", terminator, line_breaks, "ST")
    assert [(e.id, e.number) for e in events if isinstance(e, Segment)] == [
        ("ST", 1),
        ("BPR", 2),
        ("SE", 3),
    ]
    assert events[0] == UploadWarning(
        "NO_ENVELOPE",
        "the file has no ISA header: it starts with ST; it is read as 005010X221A1 with the "
        f"delimiters its ST segment shows: {element!r} between elements, components as each "
        f"composite shows them, {terminator!r} after each segment",
        1,
    )
    # However the text arrives.
    assert read(list(text)) == events


def test_a_bare_transaction_may_lack_only_its_last_se_terminator() -> None:
    events = read(["ST*835*0001~BPR*I~SE*3*0001"])
    assert events[-2:] == [
        Segment("SE", ["SE", "3", "0001"], 3),
        UploadWarning("MISSING_SEGMENT_TERMINATOR", "the last segment (SE) has no terminator", 3),
    ]


def test_a_file_that_starts_with_a_group_shows_its_delimiters_after_gs08() -> None:
    # GS02 holds a `-`: the terminator is looked for after GS08, not in the first elements.
    text = "GS*HP*ACME-PAYER*R*20240401*1200*1*X*005010X221A1~ST*835*1~SE*2*1~GE*1*1~"
    events = read([text])
    assert [e.elements[:3] for e in events if isinstance(e, Segment)] == [
        ["GS", "HP", "ACME-PAYER"],
        ["ST", "835", "1"],
        ["SE", "2", "1"],
        ["GE", "1", "1"],
    ]
    assert [e.code for e in events if isinstance(e, UploadWarning)] == ["NO_ENVELOPE"]


@pytest.mark.parametrize("before", ["\ufeff", "\r\n\r\n", "  \t\n", "\ufeff\n "])
def test_a_byte_order_mark_and_blank_lines_before_the_isa_are_skipped(before: str) -> None:
    text = ISA + "GS*HP~GE*0*1~IEA*1*000000001~"
    assert read([before + text]) == read([text])
    assert read(list(before + text)) == read([text])


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
    assert str(error) == (
        "the file ends in the middle of segment 3, after segment 2 (GS); it may be truncated"
    )


@pytest.mark.parametrize(
    ("text", "code", "message", "line_number"),
    [
        (" \r\n", "EMPTY_FILE", "the file is empty", 0),
        (
            ISA[:50],
            "TRUNCATED_FILE",
            "the file ends inside the ISA header of segment 1; it may be truncated",
            1,
        ),
        (
            ISA + "IEA*1*1~" + ISA[:50],
            "TRUNCATED_FILE",
            "the file ends inside the ISA header of segment 3, after segment 2 (IEA); "
            "it may be truncated",
            3,
        ),
        (
            "claim_id,payer\n",
            "NOT_X12",
            "the file does not start with an X12 ISA header (nor with ST*835, an 835 "
            "transaction sent without its envelope)",
            0,
        ),
        (
            "ISAAC,payer\n",
            "NOT_X12",
            "the file does not start with an X12 ISA header (nor with ST*835, an 835 "
            "transaction sent without its envelope)",
            0,
        ),
        (
            ISA + "IEA*1*1~GS*HP~",
            "BAD_ENVELOPE",
            "segment 3: the file goes on after the IEA of segment 2 with text that is not an "
            "ISA header; only another interchange may follow an IEA",
            3,
        ),
        (
            ISA.replace(":~", "~~"),
            "BAD_ISA",
            "segment 1 (ISA): the delimiters '*', '^', '~', '~' must be distinct and not "
            "letters, digits or spaces",
            1,
        ),
        (
            ISA.replace("SUBMITTER ", "SUBMITTER~"),
            "BAD_ISA",
            "segment 1 (ISA): the segment terminator '~' (the character after ISA16) also "
            "occurs inside the header, so where the header ends cannot be told",
            1,
        ),
        (
            "ISA*00*" + " " * 600,
            "BAD_ISA",
            "segment 1 (ISA): the ISA header does not hold its 16 elements and delimiters "
            "within 512 characters",
            1,
        ),
        (
            ISA + "GS*HP~ST*835\x00~",
            "BINARY_FILE",
            "segment 3 holds control characters; the file is binary or corrupt",
            3,
        ),
        (
            "ST*835*12-34~BPR*I~",
            "UNKNOWN_DELIMITERS",
            "segment 1 (ST): the file has no ISA header to declare its delimiters, and its "
            "first segment cannot be told from the next: '-', where it seems to end, is not "
            "followed by a segment id",
            1,
        ),
        (
            "ST*835*" + "1" * 600,
            "UNKNOWN_DELIMITERS",
            "segment 1 (ST): the file has no ISA header to declare its delimiters, and its "
            "first segment shows no end within 512 characters",
            1,
        ),
        (
            "ST*835*0001",
            "TRUNCATED_FILE",
            "the file ends inside segment 1 (ST); it may be truncated",
            1,
        ),
        (
            "ST*835*0001~BPR*I*1~CLP*C1",
            "TRUNCATED_FILE",
            "the file ends in the middle of segment 3, after segment 2 (BPR); it may be truncated",
            3,
        ),
        (
            "ST*835*0001~IEA*1*1",
            "TRUNCATED_FILE",
            "the file ends in the middle of segment 2, after segment 1 (ST); it may be truncated",
            2,
        ),
    ],
)
def test_text_that_cannot_be_cut_into_segments(
    text: str, code: str, message: str, line_number: int
) -> None:
    error = read_error([text])
    assert (error.code, str(error), error.line_number) == (code, message, line_number)
    # However the text arrives.
    one_by_one = read_error(list(text))
    assert (one_by_one.code, str(one_by_one), one_by_one.line_number) == (
        code,
        message,
        line_number,
    )


def test_a_segment_over_the_limit_is_refused_across_chunks() -> None:
    # The ISA header (105 characters before its terminator) counts as a segment too.
    error = read_error([ISA + "GS*HP~ST*", "8" * 120, "5*0001~"], max_segment_bytes=120)
    assert (error.code, error.line_number) == ("SEGMENT_TOO_LONG", 3)
    assert str(error) == "segment 3 is longer than 120 bytes"
    just_fits = read([ISA + "GS*HP~ST*", "8" * 108, "5*0001~"], max_segment_bytes=120)
    assert just_fits[-1] == Segment("ST", ["ST", "8" * 108 + "5", "0001"], 3)
