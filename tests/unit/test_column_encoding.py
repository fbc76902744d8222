"""Plain rows of a CSV export are parsed, classified, encoded and counted as columns, never as
one record each; what an upload stages from them (claim lines, pieces, payers, rejections,
statistics) is what reading and encoding every row as a record stages."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.synthetic import Scenario, write_csv
from services.ingest.copy_lines import Encoder, Staged
from services.ingest.parsing import UploadParser
from services.ingest.records import FileError, ParseLimits

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"


def _staged(
    data: bytes, cuts: list[int], *, as_columns: bool, count_fresh: bool, learn: bool
) -> tuple[Any, int]:
    """What an upload of `data` (cut at `cuts`) stages chunk by chunk, in an order-free form;
    with `learn`, each payer's canonical name is known from the chunk after it first came
    (as the loader learns them), else never. Also how many chunks came as columns."""
    parser = UploadParser(
        max_bytes=10_000_000, limits=ParseLimits(max_line_bytes=300), as_columns=as_columns
    )
    canonical: dict[str, str] = {}
    encoder = Encoder("acme", "up-1", count_fresh=count_fresh, count_every=25, canonical=canonical)
    chunks = [data[start:end] for start, end in pairwise([0, *cuts, len(data)])]
    result: list[Any] = []
    as_read = 0
    try:
        for chunk in [*chunks, None]:
            batch = parser.close() if chunk is None else parser.feed(chunk)
            as_read += batch.columns is not None
            staged = encoder.encode(batch, claim_lines=True)
            result.append(_order_free(staged, canonical))
            if learn:
                canonical.update((uid, f"Canonical {name}") for uid, *_, name in staged.new_payers)
    except FileError as error:
        return (error.code, error.line_number), as_read
    sums = encoder.take_sums()
    result.append((encoder.claims, encoder.decision_dates, sums.cells(), sums.pending()))
    return result, as_read


def _order_free(staged: Staged, canonical: dict[str, str]) -> Any:
    def lines(claims: list[Any]) -> list[tuple[str, Any]]:
        return sorted((claim.complete(canonical), claim.counted) for claim in claims)

    return (
        lines(staged.fresh),
        lines(staged.repeated),
        lines(staged.pieces),
        sorted(staged.earlier_pieces),
        sorted(staged.piece_lines.splitlines()),
        sorted(staged.new_payers),
        staged.rejections,
        staged.rejection_count,
        None if staged.sums is None else (staged.sums.cells(), staged.sums.pending()),
    )


def _same_either_way(data: bytes, cuts: list[int]) -> int:
    """Asserts the columns stage what records stage, for both ways of counting and of
    learning payers; returns how many chunks came as columns."""
    columns_read = 0
    for count_fresh in (True, False):
        for learn in (True, False):
            by_columns, as_read = _staged(
                data, cuts, as_columns=True, count_fresh=count_fresh, learn=learn
            )
            by_records, none_read = _staged(
                data, cuts, as_columns=False, count_fresh=count_fresh, learn=learn
            )
            assert none_read == 0
            assert by_columns == by_records
            columns_read = max(columns_read, as_read)
    return columns_read


_PAYERS = ["Aetna", "AETNA ", "Cigna", "Humana", "Blue Cross", "Société Générale", "Aetna\u00a0"]
# Each column's plain cells, then cells that are odd (read on their own, refused, or a
# reversal).
_CELLS = {
    "payer_id": (["", "60054", "62308"], []),
    "procedure_code": (["99213", "99214-25", "", "J1100"], ["9921", "=SUM(A1)"]),
    "service_date": (["2026-03-01", "03/02/2026", ""], ["2026-13-01"]),
    "submitted_date": (["2026-03-03", "", "2026-03-20"], ["03/32/2026"]),
    "decision_date": (["2026-03-14", "2026-03-15", "03/16/2026", "20260317"], ["", "soon"]),
    "status": (["PAID", "DENIED", "PARTIAL", "PENDING", "", "paid"], ["REVERSED", "LOST"]),
    "billed_amount": (["100.00", "0.00", "50.00", ""], ["$1,200.00", "(5.00)", "1.5.0"]),
    "allowed_amount": (["80.00", "", "0.00"], ["eighty"]),
    "paid_amount": (["70.00", "0.00", "0.00"], ["-5.00", " 7.00 "]),
    "patient_responsibility": (["10.00", "", "0.00"], ["1,5"]),
    "carc_codes": (["", "CO-45;PR-1", "CO-50", "PR-2", "OA-23;CO-97", "co45 pr2"], ["XX-1"]),
    "payer_claim_control_number": (["", "ICN1"], ["=ICN", "-ICN"]),
}


@st.composite
def _export(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """An export of some columns (with or without a status), rows mostly plain with claim
    ids from a pool (lines of one claim together or apart, and repeated), now and then an
    odd cell, and cuts anywhere."""
    delimiter = draw(st.sampled_from([",", ";"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    others = draw(st.sets(st.sampled_from(sorted(_CELLS))))
    columns = ["claim_id", "payer", "decision_date", *sorted(others - {"decision_date"})]
    lines = [delimiter.join(columns)]
    pool = draw(st.integers(3, 200))
    odd = draw(st.sampled_from([0, 0, 20, 200]))  # one cell in so many is odd (0: none)
    for _ in range(draw(st.integers(0, 80))):
        row = {}
        for column in columns[2:]:
            plain, odd_cells = _CELLS[column]
            odd_one = odd and odd_cells and draw(st.integers(0, odd)) == 0
            row[column] = draw(st.sampled_from(odd_cells if odd_one else plain))
        row["claim_id"] = draw(st.sampled_from(["C", "Ç"])) + str(draw(st.integers(1, pool)))
        row["payer"] = draw(st.sampled_from(_PAYERS))
        cells = [row[column] for column in columns]
        if delimiter == ",":
            cells = [cell.replace(",", ";") for cell in cells]
        lines.append(delimiter.join(cells))
    text = end.join(lines) + end
    data = text.encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


@settings(max_examples=120, deadline=None)
@given(export=_export())
def test_rows_encoded_as_columns_stage_what_rows_encoded_as_records_stage(
    export: tuple[bytes, list[int]],
) -> None:
    data, cuts = export
    _same_either_way(data, cuts)


def test_a_large_export_is_staged_alike_and_read_as_columns() -> None:
    """A year of synthetic claims (payers, pending and denied claims, CARC codes), sent in
    32 KiB chunks: nearly every chunk comes as columns, and stages what records stage."""
    out = io.StringIO()
    write_csv(Scenario(claims=6_000, payers=8, days=120, seed=11), out)
    data = out.getvalue().encode()
    cuts = list(range(32 * 1024, len(data), 32 * 1024))
    assert _same_either_way(data, cuts) >= len(cuts) - 1


def test_a_line_level_export_with_adjustment_columns_is_staged_alike() -> None:
    data = (FIXTURES / "line-level-export.csv").read_bytes()
    _same_either_way(data, list(range(0, len(data), 97)))
    _same_either_way(data, [])
