"""How an upload decides, in fixed memory, which claims it may have seen already, and when
it may probe stored claims by key; how it combines the lines of CSV claims that come in one
chunk, stages those that come in several, and combines the pieces at the end."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from services.ingest.claim_lines import combine
from services.ingest.claim_writes import probes_primary_key
from services.ingest.copy_lines import (
    CLAIM_COLUMNS,
    Encoder,
    PieceAssembly,
    SeenClaims,
    Staged,
    StagedClaim,
)
from services.ingest.denials import classify
from services.ingest.parsing import Batch
from services.ingest.records import Adjustment, ClaimRecord


def _digests(prefix: str, count: int) -> list[bytes]:
    return [hashlib.md5(f"PAYER|{prefix}{i}".encode()).digest() for i in range(count)]


def test_a_claim_added_before_is_always_called_seen() -> None:
    seen = SeenClaims()
    first = _digests("A", 50_000)
    assert not seen.check_and_add(first[:25_000]).any()
    # Added in pieces, and again mixed with new claims: every earlier one is found.
    again = seen.check_and_add(first[:25_000] + _digests("B", 1_000))
    assert again[:25_000].all()
    seen.check_and_add(first[25_000:])
    assert seen.check_and_add(first).all()


def test_new_claims_are_rarely_called_seen() -> None:
    seen = SeenClaims()
    for piece in range(20):
        seen.check_and_add(_digests(f"old{piece}-", 10_000))
    wrongly_seen = seen.check_and_add(_digests("new", 100_000)).mean()
    # 200,000 claims in 2**26 bits with 4 hashes: about 1e-7 expected.
    assert wrongly_seen < 1e-4


def test_texts_added_are_always_seen_and_new_ones_rarely() -> None:
    seen = SeenClaims()
    assert not seen.check_and_add_texts([]).size
    first = [f"CLM-{i}" for i in range(100_000)]
    assert not seen.check_and_add_texts(first).any()
    assert seen.check_and_add_texts(first[::7]).all()
    assert seen.check_and_add_texts([f"CLM-{i}" for i in range(100_000, 200_000)]).mean() < 1e-4


def _index_scan(index: str, condition: str, node: str = "Index Only Scan") -> dict:
    return {
        "Node Type": node,
        "Relation Name": "claims",
        "Index Name": index,
        "Index Cond": condition,
    }


def test_stored_claims_are_probed_only_through_the_primary_key_by_claim_uid() -> None:
    by_key = "((customer_id = 'c1'::text) AND (claim_uid = ANY ('{a,b}'::text[])))"
    assert probes_primary_key(_index_scan("claims_pkey", by_key))
    assert probes_primary_key(
        {
            "Node Type": "Bitmap Heap Scan",
            "Relation Name": "claims",
            "Plans": [_index_scan("claims_pkey", by_key, "Bitmap Index Scan")],
        }
    )
    # The planner believes the customer has one claim and reads all of them instead.
    assert not probes_primary_key(
        {
            "Node Type": "Bitmap Heap Scan",
            "Relation Name": "claims",
            "Filter": "(claim_uid = ANY ('{a,b}'::text[]))",
            "Plans": [
                _index_scan("claims_upload_idx", "(customer_id = 'c1'::text)", "Bitmap Index Scan")
            ],
        }
    )
    assert not probes_primary_key(_index_scan("claims_pkey", "(customer_id = 'c1'::text)"))
    assert not probes_primary_key({"Node Type": "Seq Scan", "Relation Name": "claims"})


# --- Lines of CSV claims -------------------------------------------------------------------

DAY = dt.date(2026, 3, 14)


def _line(
    number: int, claim_id: str = "C1", payer: str = "Aetna", paid: int = 80_00
) -> ClaimRecord:
    """One row of a line-level export without a status column, as the parser gives it."""
    record = ClaimRecord(
        source_line=number,
        claim_id=claim_id,
        payer_name=payer,
        status_stated=False,
        procedure_codes=(f"9921{number % 10}",),
        decision_date=DAY + dt.timedelta(days=number),
        billed_cents=100_00,
        allowed_cents=90_00,
        paid_cents=paid,
        adjustments=(Adjustment("CO", "97" if paid == 0 else "45", 10_00),),
    )
    classify(record)
    return record


def _encoder(canonical: dict[str, str]) -> Encoder:
    return Encoder(
        "c1", "u_1", count_fresh=True, count_every=1000, canonical=canonical, max_claim_lines=999
    )


def _encode(encoder: Encoder, canonical: dict[str, str], *lines: ClaimRecord) -> Staged:
    staged = encoder.encode(Batch(claims=list(lines)), claim_lines=True)
    # What the loader learns when it writes the payers.
    canonical.update({uid: name for uid, _, _, name in staged.new_payers})
    return staged


def _column(line: str, column: str) -> str:
    return line.rstrip("\n").split("\t")[CLAIM_COLUMNS.index(column)]


def _completed(claims: list[StagedClaim], canonical: dict[str, str]) -> list[str]:
    return [claim.complete(canonical) for claim in claims]


def _uid(payer: str, claim_id: str) -> str:
    return hashlib.md5(f"{payer.upper()}|{claim_id}".encode()).hexdigest()[:20]


def test_a_chunks_lines_of_one_claim_are_loaded_as_one_new_claim() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    staged = _encode(encoder, canonical, _line(2), _line(3, "C2"), _line(4, paid=0))
    assert (staged.pieces, staged.earlier_pieces) == ([], [])
    lines = {_column(line, "claim_id"): line for line in _completed(staged.fresh, canonical)}
    c1, c2 = lines["C1"], lines["C2"]
    assert (_column(c1, "claim_id"), _column(c1, "billed_cents")) == ("C1", "20000")
    assert (_column(c1, "paid_cents"), _column(c1, "status")) == ("8000", "PARTIAL")
    assert _column(c2, "claim_id") == "C2"
    assert encoder.claims == 2
    # Counted as the claim the lines make, once.
    sums = encoder.take_sums().cells()
    assert sum(cell.amounts[0] for cell in sums.values()) == 2
    # What the claim lines do not say: that the file stated no status, and C1's two lines.
    kept = {line.split("\t")[0]: line.split("\t")[1:] for line in staged.piece_lines.splitlines()}
    assert kept[_uid("Aetna", "C2")] == ["3", "f", "\\N"]
    first_line, stated, lines = kept[_uid("Aetna", "C1")]
    assert (first_line, stated) == ("2", "f")
    assert [line[0] for line in json.loads(lines)] == [2, 4]


def test_lines_in_later_chunks_are_pieces_that_name_the_pieces_before_them() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    first = _encode(encoder, canonical, _line(2), _line(3, "C2", "Cigna"))
    assert {claim.claim_uid for claim in first.fresh} == {_uid("Aetna", "C1"), _uid("Cigna", "C2")}
    later = _encode(encoder, canonical, _line(4))
    assert ([c.claim_uid for c in later.pieces], later.fresh) == ([_uid("Aetna", "C1")], [])
    assert later.earlier_pieces == [_uid("Aetna", "C1")]
    # Of the same claim id, another payer: the pieces of the claim id under other payers.
    other = _encode(encoder, canonical, _line(5, payer="Cigna"))
    assert [c.claim_uid for c in other.pieces] == [_uid("Cigna", "C1")]
    assert other.earlier_pieces == [_uid("Aetna", "C1")]
    assert encoder.claims == 4


def test_one_claim_id_of_two_payers_in_a_chunk_is_staged_as_pieces() -> None:
    canonical: dict[str, str] = {}
    staged = _encode(_encoder(canonical), canonical, _line(2), _line(3, payer="Cigna"))
    assert staged.fresh == []
    assert [c.claim_uid for c in staged.pieces] == [_uid("Aetna", "C1"), _uid("Cigna", "C1")]


def test_records_that_are_claims_are_not_combined_the_later_one_wins() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    staged = encoder.encode(Batch(claims=[_line(2), _line(3, paid=0)]), claim_lines=False)
    canonical.update({uid: name for uid, _, _, name in staged.new_payers})
    [claim] = staged.fresh
    assert _column(claim.complete(canonical), "source_line") == "3"


def _read_back(origin: str, piece: ClaimRecord) -> tuple:
    """A staged piece as the upload reads it back from PostgreSQL."""
    kept = bool(piece.lines) or not piece.status_stated
    lines = [
        [number, line.procedure_code, line.billed_cents, line.paid_cents, line.allowed_cents]
        for number, line in zip(piece.source_lines, piece.lines, strict=True)
    ]
    return (
        origin, _uid(piece.payer_name, piece.claim_id), piece.claim_id, piece.payer_name,
        piece.payer_id, piece.status.value, list(piece.procedure_codes), piece.service_date,
        piece.submitted_date, piece.decision_date, piece.billed_cents, piece.allowed_cents,
        piece.paid_cents, piece.patient_responsibility_cents,
        [
            {"group": a.group_code, "reason": a.reason_code, "cents": a.amount_cents,
             "line": a.line_number}
            for a in piece.adjustments
        ],
        piece.payer_claim_control_number, piece.source_line,
        piece.status_stated if kept else None, json.dumps(lines) if lines else None,
    )  # fmt: skip


def test_pieces_read_back_in_line_order_make_the_claim_their_lines_make() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    _encode(encoder, canonical, _line(2))
    lines = [_line(2), _line(3), _line(7, paid=0), _line(9)]
    first, second = combine(lines[0], lines[1]), combine(lines[2], lines[3])
    assembly = PieceAssembly(encoder, max_claim_lines=999)
    assembled = assembly.read([_read_back("written", first), _read_back("piece", second)])
    closed = assembly.close()
    whole = combine(combine(combine(lines[0], lines[1]), lines[2]), lines[3])
    assert (assembled.claims, closed.claims) == ([], [encoder.claim_line(whole)])
    assert _column(closed.claims[0], "status") == "PARTIAL"
    assert (closed.rejections, closed.refused_written) == ([], [])
    assert (assembly.pieces_combined, assembly.written_replaced) == (1, 1)


def test_pieces_of_one_claim_id_that_name_two_payers_are_refused_line_by_line() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    _encode(encoder, canonical, _line(2), _line(3, payer="Cigna"))
    aetna = combine(_line(2), _line(5))
    assembly = PieceAssembly(encoder, max_claim_lines=999)
    first = assembly.read(
        [_read_back("written", aetna), _read_back("piece", _line(4, payer="Cigna"))]
    )
    # The claim id's pieces are known whole when the next claim id begins.
    then = assembly.read([_read_back("piece", _line(6, "C2"))])
    closed = assembly.close()
    assert (first.rejections, first.refused_written) == ([], [])
    assert [(r.line_number, r.column, r.code, r.raw_value) for r in then.rejections] == [
        (2, "payer", "CONFLICTING_PAYER", "Aetna"),
        (4, "payer", "CONFLICTING_PAYER", "Cigna"),
        (5, "payer", "CONFLICTING_PAYER", "Aetna"),
    ]
    assert "'Aetna', 'Cigna'" in then.rejections[0].reason
    assert then.refused_written == [_uid("Aetna", "C1")]
    assert [claim_line.split("\t")[2] for claim_line in closed.claims] == ["C2"]
    assert (assembly.pieces_refused, assembly.pieces_combined) == (2, 0)


def test_a_claim_of_more_lines_than_the_limit_is_refused_as_its_pieces_come() -> None:
    canonical: dict[str, str] = {}
    encoder = _encoder(canonical)
    _encode(encoder, canonical, _line(2))
    assembly = PieceAssembly(encoder, max_claim_lines=3)
    early = assembly.read([_read_back("piece", combine(_line(2), _line(3)))])
    late = assembly.read([_read_back("piece", combine(_line(4), _line(5)))])
    more = assembly.read([_read_back("piece", _line(6))])
    closed = assembly.close()
    assert early.rejections == []
    assert [r.line_number for r in late.rejections] == [2, 3, 4, 5]
    assert [(r.line_number, r.code) for r in more.rejections] == [(6, "TOO_MANY_LINES")]
    assert (closed.claims, closed.rejections) == ([], [])
