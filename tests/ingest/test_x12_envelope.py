"""The X12 envelope checks alone: ISA > GS > ST .. SE < GE < IEA nesting (or GS and bare ST
files without the outer envelopes), trailer counts and control numbers, the transaction set
and version, and a file that ends inside an envelope."""

from __future__ import annotations

import pytest

from services.ingest.records import FileError, UploadWarning
from services.ingest.x12_envelope import Envelopes
from services.ingest.x12_segments import Segment

ISA = (
    "ISA*00*          *00*          *ZZ*S              *ZZ*R              "
    "*240401*1200*^*00501*000000007*0*P*:"
)
GS = "GS*HP*S*R*20240401*1200*12*X*005010X221A1"
# Segments 3..6 of the transaction are its content, which the checker never sees.
ONE_TRANSACTION = (ISA, GS, "ST*835*0001", "SE*6*0001", "GE*1*12", "IEA*1*000000007")
NUMBERS = (1, 2, 3, 8, 9, 10)


def segment(text: str, number: int) -> Segment:
    elements = text.split("*")
    return Segment(elements[0], elements, number)


def check(texts: tuple[str, ...], numbers: tuple[int, ...] | None = None) -> list[UploadWarning]:
    """The warnings of reading `texts` as envelope segments numbered `numbers` (else 1, 2, ..),
    then closing the file after the last."""
    warnings: list[UploadWarning] = []
    envelopes = Envelopes(warnings.append)
    numbers = numbers or tuple(range(1, len(texts) + 1))
    last = None
    for text, number in zip(texts, numbers, strict=True):
        last = segment(text, number)
        envelopes.read(last)
    envelopes.close(last)
    return warnings


def check_error(texts: tuple[str, ...]) -> FileError:
    with pytest.raises(FileError) as caught:
        check(texts)
    return caught.value


def test_well_formed_envelopes_pass_without_warnings() -> None:
    assert check(ONE_TRANSACTION, NUMBERS) == []
    two_groups = (
        ISA,
        GS,
        "ST*835*0001",
        "SE*2*0001",
        "ST*835*0002",
        "SE*0002*0002",  # counts and control numbers compare as numbers
        "GE*2*12",
        GS.replace("*12*", "*13*"),
        "ST*835*1",
        "SE*2*1",
        "GE*1*13",
        "IEA*2*7",
    )
    assert check(two_groups) == []


@pytest.mark.parametrize(
    ("trailer", "wrong", "code", "message"),
    [
        (
            "SE*6*0001",
            "SE*7*0001",
            "SEGMENT_COUNT_MISMATCH",
            "SE01 is '7' but the segment count is '6'",
        ),
        (
            "SE*6*0001",
            "SE*6*0002",
            "CONTROL_NUMBER_MISMATCH",
            "SE02 is '0002' but the ST02 is '0001'",
        ),
        ("GE*1*12", "GE*2*12", "TRANSACTION_COUNT_MISMATCH", "GE01 is '2' but the ST count is '1'"),
        ("GE*1*12", "GE*1*21", "CONTROL_NUMBER_MISMATCH", "GE02 is '21' but the GS06 is '12'"),
        (
            "IEA*1*000000007",
            "IEA*0*000000007",
            "GROUP_COUNT_MISMATCH",
            "IEA01 is '0' but the GS count is '1'",
        ),
        (
            "IEA*1*000000007",
            "IEA*1*X7",
            "CONTROL_NUMBER_MISMATCH",
            "IEA02 is 'X7' but the ISA13 is '000000007'",
        ),
    ],
)
def test_a_trailer_that_does_not_match_its_header_is_a_warning(
    trailer: str, wrong: str, code: str, message: str
) -> None:
    texts = tuple(wrong if text == trailer else text for text in ONE_TRANSACTION)
    number = NUMBERS[ONE_TRANSACTION.index(trailer)]
    assert check(texts, NUMBERS) == [UploadWarning(code, message, number)]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ((ISA, GS, GS), "segment 3: GS outside an interchange or inside a group"),
        ((ISA, "ST*835*1"), "segment 2: ST outside a functional group or inside a transaction"),
        (
            (ISA, GS, "ST*835*1", "ST*835*2"),
            "segment 4: ST outside a functional group or inside a transaction",
        ),
        ((ISA, GS, "SE*2*1"), "segment 3: SE without its ST"),
        ((ISA, GS, "ST*835*1", "GE*1*12"), "segment 4: GE without its GS or before the SE"),
        ((ISA, "GE*0*12"), "segment 2: GE without its GS or before the SE"),
        ((ISA, GS, "IEA*1*7"), "segment 3: IEA before the GE"),
        (("IEA*0*7",), "segment 1: IEA before the GE"),
        ((ISA, GS, ISA), "segment 3: ISA before the IEA of the previous interchange"),
    ],
)
def test_envelopes_out_of_order_are_refused(texts: tuple[str, ...], message: str) -> None:
    error = check_error(texts)
    assert (error.code, str(error), error.line_number) == (
        "BAD_ENVELOPE",
        message + "; the envelopes are broken",
        len(texts),
    )


def test_a_transaction_that_is_not_an_835_is_refused() -> None:
    error = check_error((ISA, GS, "ST*837*0001"))
    assert (error.code, str(error), error.line_number) == (
        "NOT_835",
        "segment 3: transaction set '837' is not an 835 remittance advice",
        3,
    )


def test_another_5010_guide_is_read_with_a_warning() -> None:
    texts = (
        ISA,
        GS.replace("005010X221A1", "005010X222A1"),
        "ST*835*0001*005010X222A1",
        *ONE_TRANSACTION[3:],
    )
    assert check(texts, NUMBERS) == [
        UploadWarning(
            "UNEXPECTED_VERSION", "GS08 is '005010X222A1'; the group is read as 005010X221A1", 2
        ),
        UploadWarning(
            "UNEXPECTED_VERSION",
            "ST03 is '005010X222A1'; the transaction is read as 005010X221A1",
            3,
        ),
    ]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (
            (ISA, GS.replace("005010X221A1", "004010X091A1")),
            "segment 2 (GS): GS08 is '004010X091A1', X12 version 4010",
        ),
        (
            (ISA, GS.replace("005010X221A1", "00401")),
            "segment 2 (GS): GS08 is '00401', X12 version 4010",
        ),
        (
            (ISA, GS.replace("005010X221A1", "003051")),
            "segment 2 (GS): GS08 is '003051', X12 version 3051",
        ),
        (
            (ISA, GS, "ST*835*0001*006020X322"),
            "segment 3 (ST): ST03 is '006020X322', X12 version 6020",
        ),
        (("ST*835*0001*004010X091A1",), "segment 1 (ST): ST03 is '004010X091A1', X12 version 4010"),
    ],
)
def test_another_x12_version_is_refused_by_name(texts: tuple[str, ...], message: str) -> None:
    error = check_error(texts)
    assert (error.code, str(error), error.line_number) == (
        "UNSUPPORTED_VERSION",
        message + "; only 835 files of version 005010X221A1 (5010) can be read, "
        "so ask the sender for a 5010 file",
        len(texts),
    )


def test_a_4010_transaction_without_st03_is_judged_by_its_group() -> None:
    texts = (ISA, GS, "ST*835*0001", *ONE_TRANSACTION[3:])
    assert check(texts, NUMBERS) == []


@pytest.mark.parametrize(
    ("open_envelopes", "message"),
    [
        (1, "the file ends after segment 1 (ISA) without the IEA that closes its interchange"),
        (
            2,
            "the file ends after segment 2 (GS) without the GE and IEA that close its group "
            "and interchange",
        ),
        (
            3,
            "the file ends after segment 3 (ST) without the SE, GE and IEA that close its "
            "transaction, group and interchange",
        ),
        (
            4,
            "the file ends after segment 8 (SE) without the GE and IEA that close its group "
            "and interchange",
        ),
        (5, "the file ends after segment 9 (GE) without the IEA that closes its interchange"),
    ],
)
def test_a_file_that_ends_inside_an_envelope_names_its_last_segment(
    open_envelopes: int, message: str
) -> None:
    texts = ONE_TRANSACTION[:open_envelopes]
    with pytest.raises(FileError) as caught:
        check(texts, NUMBERS[:open_envelopes])
    assert (caught.value.code, str(caught.value), caught.value.line_number) == (
        "TRUNCATED_FILE",
        message + "; it may be truncated",
        NUMBERS[open_envelopes - 1],
    )


def test_a_file_of_bare_transactions_holds_no_other_envelope() -> None:
    bare = ("ST*835*0001", "SE*4*0001", "ST*835*0002", "SE*3*0002")
    assert check(bare, (1, 4, 5, 7)) == []
    for envelope in (ISA, GS, "GE*1*1", "IEA*1*1"):
        error = check_error((*bare[:2], envelope))
        name = envelope.split("*")[0]
        assert (error.code, str(error)) == (
            "BAD_ENVELOPE",
            f"segment 3: {name} in a file that starts with ST; the envelopes are broken",
        )
    error = check_error(bare[:3])
    assert str(error) == (
        "the file ends after segment 3 (ST) without the SE that closes its transaction; "
        "it may be truncated"
    )


def test_a_file_of_groups_holds_no_interchange() -> None:
    groups = (GS, "ST*835*1", "SE*2*1", "GE*1*12", GS.replace("*12*", "*13*"), "GE*0*13")
    assert check(groups) == []
    for envelope in (ISA, "IEA*1*1"):
        error = check_error((*groups[:4], envelope))
        assert str(error).startswith("segment 5: ")
        assert str(error).endswith(" in a file that starts with GS; the envelopes are broken")
    assert check_error(groups[:3]).code == "TRUNCATED_FILE"


def test_interchanges_follow_one_another() -> None:
    second = (ISA.replace("000000007", "000000008"), GS, "ST*835*1", "SE*3*1", "GE*1*12")
    texts = (*ONE_TRANSACTION, *second, "IEA*1*000000008")
    assert check(texts, (*NUMBERS, 11, 12, 13, 15, 16, 17)) == []
    assert check((*texts[:-1], "IEA*1*000000007"), (*NUMBERS, 11, 12, 13, 15, 16, 17)) == [
        UploadWarning(
            "CONTROL_NUMBER_MISMATCH", "IEA02 is '000000007' but the ISA13 is '000000008'", 17
        )
    ]
