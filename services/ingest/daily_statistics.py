"""Keeping the daily statistics, the pending claims' counts and the payers' claim counts exact
by what changes.

Every write to `ingest.claims` yields signed claim versions: +1 for a version that comes (a
new claim, the new side of an update), -1 for one that goes (the old side, a deleted claim).
Their partial sums are gathered in temporary tables while the writes happen (`counting_in`,
in the same statement as the write, or `count_in` from `claim_changes`), and `apply_counts`
adds them to `ingest.daily_stats`, `ingest.pending_stats` and `ingest.payers` once, before the
commit. Nothing is recounted from the stored claims, so writing a million new claims costs no
read of them.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from services.ingest.copy_text import copy_text

if TYPE_CHECKING:
    from services.ingest.claim_statistics import Counted

# What the statistics and payer counts need of a claim version.
CHANGE_FIELDS = (
    "payer_uid", "payer", "code_group", "decision_date", "status", "denied", "partially_denied",
    "decision_days", "billed_cents", "allowed_cents", "paid_cents", "denial_codes",
    "patient_responsibility_cents", "pending_started",
)  # fmt: skip

# The tables of one transaction's counting: claim versions recorded by updates and deletes,
# and the partial sums of every signed version.
COUNT_TABLES = (
    "CREATE TEMPORARY TABLE claim_changes (sign int, payer_uid text, payer text, "
    "code_group text, decision_date date, status text, denied boolean, partially_denied boolean, "
    "decision_days bigint, billed_cents bigint, allowed_cents bigint, paid_cents bigint, "
    "denial_codes text[], patient_responsibility_cents bigint, pending_started date) "
    "ON COMMIT DROP",
    # A cell's sums, with its claims by days to decision and by denial code as count maps
    # (`{"12": 3}`, `{"CO-50": 1}`, no zero counts); a cell may have several rows.
    "CREATE TEMPORARY TABLE stat_cells (payer text, code_group text, decision_date date, "
    "decided bigint, denied bigint, partially_denied bigint, billed bigint, allowed bigint, "
    "paid bigint, denied_billed bigint, patient bigint, histogram jsonb, codes jsonb) "
    "ON COMMIT DROP",
    "CREATE TEMPORARY TABLE stat_pending (payer text, code_group text, start_date date, "
    "n bigint) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE payer_sums (payer_uid text, n bigint) ON COMMIT DROP",
)


def version(which: str, prefix: str = "") -> str:
    """The `old` or `new` claim version for RETURNING, its columns named `prefix` + field.
    A claim without an allowed amount counts what was paid plus the patient's share
    (`claim_statistics.counted_allowed_cents`); a pending claim started on its submission,
    else its service date (`claim_statistics.pending_started`)."""
    computed = {
        "allowed_cents": f"coalesce({which}.allowed_cents, {which}.paid_cents + "
        f"{which}.patient_responsibility_cents)",
        "pending_started": f"CASE WHEN {which}.status = 'PENDING' "
        f"THEN coalesce({which}.submitted_date, {which}.service_date) END",
    }
    return ", ".join(
        f"{computed.get(field, f'{which}.{field}')} AS {prefix}{field}" for field in CHANGE_FIELDS
    )


def recording_changes(statement: str, versions: tuple[str, ...] = ("old", "new")) -> str:
    """An `UPDATE`, upsert (or, with only the old version, `DELETE`) of `ingest.claims` that
    also records in `claim_changes` each claim's old version (sign -1) and new one (+1)."""
    rows = ", ".join(
        f"({-1 if which == 'old' else 1}, "
        + ", ".join(f"{which}_{field}" for field in CHANGE_FIELDS)
        + ")"
        for which in versions
    )
    returning = ", ".join(version(which, f"{which}_") for which in versions)
    # A version a statement did not have (the old one of an inserted claim) is all NULL.
    return (
        f"WITH changed AS ({statement} RETURNING {returning}) "
        f"INSERT INTO claim_changes SELECT v.* FROM changed, LATERAL (VALUES {rows}) AS v "
        "WHERE v.column2 IS NOT NULL"
    )


def counting_in(source: str) -> str:
    """The end of a `WITH` list: statements adding the partial sums of the signed claim
    versions in `source` (a table, or an earlier CTE, with `sign` and CHANGE_FIELDS). A claim
    counts on its decision date unless it was reversed (`claim_statistics.counted_day`); a
    pending one on the day it started."""
    decided = f"FROM {source} WHERE status <> 'REVERSED' AND decision_date IS NOT NULL"
    cell = "payer, code_group, decision_date"
    return (
        f"day_counts AS (SELECT {cell}, decision_days, sum(sign) AS n "
        f"{decided} AND decision_days IS NOT NULL GROUP BY {cell}, decision_days), "
        f"day_maps AS (SELECT {cell}, jsonb_object_agg(decision_days::text, n) AS histogram "
        f"FROM day_counts WHERE n <> 0 GROUP BY {cell}), "
        f"code_counts AS (SELECT {cell}, code, sum(sign) AS n "
        + decided.replace(f"FROM {source}", f"FROM {source}, unnest(denial_codes) AS code")
        + f" GROUP BY {cell}, code), "
        f"code_maps AS (SELECT {cell}, jsonb_object_agg(code, n) AS codes "
        f"FROM code_counts WHERE n <> 0 GROUP BY {cell}), "
        f"cell_sums AS (INSERT INTO stat_cells SELECT {cell}, s.decided, s.denied, "
        "s.partially_denied, s.billed, s.allowed, s.paid, s.denied_billed, s.patient, "
        "coalesce(d.histogram, '{}'), coalesce(k.codes, '{}') FROM ("
        f"SELECT {cell}, sum(sign) AS decided, "
        "coalesce(sum(sign) FILTER (WHERE denied), 0) AS denied, "
        "coalesce(sum(sign) FILTER (WHERE partially_denied), 0) AS partially_denied, "
        "sum(sign * billed_cents) AS billed, sum(sign * allowed_cents) AS allowed, "
        "sum(sign * paid_cents) AS paid, "
        "coalesce(sum(sign * billed_cents) FILTER (WHERE denied), 0) AS denied_billed, "
        f"sum(sign * patient_responsibility_cents) AS patient {decided} GROUP BY {cell}) s "
        f"LEFT JOIN day_maps d USING ({cell}) LEFT JOIN code_maps k USING ({cell})), "
        "pending_sums AS (INSERT INTO stat_pending SELECT payer, code_group, pending_started, "
        f"sum(sign) FROM {source} WHERE pending_started IS NOT NULL "
        "GROUP BY payer, code_group, pending_started) "
        f"INSERT INTO payer_sums SELECT payer_uid, sum(sign) FROM {source} GROUP BY payer_uid"
    )


async def count_in(cursor: Any, source: str = "claim_changes") -> None:
    """Add the partial sums of the signed claim versions in the table `source`."""
    await cursor.execute(f"WITH {counting_in(source)}")


# The sum of an array of count maps (`{"CO-50": 3}`), keys whose total is zero left out.
_SUM_OF_MAPS = (
    "(SELECT coalesce(jsonb_object_agg(key, total) FILTER (WHERE total <> 0), '{{}}') "
    "FROM (SELECT key, sum(value::bigint) AS total FROM unnest({maps}) AS m, "
    "jsonb_each_text(m) GROUP BY key) t)"
)

# Cells gathered more than once (partial sums written in turns, or counted changes beside
# them) are summed first; a cell of one row (every cell of new claims) keeps its maps as
# they are.
_SUMMED_CELLS = """
SELECT payer, code_group, decision_date, decided, denied, partially_denied, billed, allowed,
       paid, denied_billed, patient,
       CASE WHEN cardinality(histograms) = 1 THEN histograms[1] ELSE {sum_days} END
           AS histogram,
       CASE WHEN cardinality(codes) = 1 THEN codes[1] ELSE {sum_codes} END AS codes
FROM (
    SELECT payer, code_group, decision_date, sum(decided) AS decided, sum(denied) AS denied,
           sum(partially_denied) AS partially_denied, sum(billed) AS billed,
           sum(allowed) AS allowed, sum(paid) AS paid, sum(denied_billed) AS denied_billed,
           sum(patient) AS patient, array_agg(histogram) AS histograms,
           array_agg(codes) AS codes
    FROM stat_cells GROUP BY payer, code_group, decision_date
) g
""".format(
    sum_days=_SUM_OF_MAPS.format(maps="histograms"),
    sum_codes=_SUM_OF_MAPS.format(maps="codes"),
)
_INSERT_DAILY_STATS = """
INSERT INTO ingest.daily_stats AS s (customer_id, payer, code_group, decision_date,
    decided_claims, denied_claims, partially_denied_claims, decision_days,
    billed_cents, allowed_cents, paid_cents, denied_billed_cents, carc_counts,
    patient_responsibility_cents)
SELECT %(customer)s, payer, code_group, decision_date, decided, denied, partially_denied,
       histogram, billed, allowed, paid, denied_billed, codes, patient
FROM ({cells}) c
"""
_ADD_TO_STORED_CELLS = """
ON CONFLICT (customer_id, payer, code_group, decision_date) DO UPDATE SET
    decided_claims = s.decided_claims + excluded.decided_claims,
    denied_claims = s.denied_claims + excluded.denied_claims,
    partially_denied_claims = s.partially_denied_claims + excluded.partially_denied_claims,
    decision_days = {add_days},
    billed_cents = s.billed_cents + excluded.billed_cents,
    allowed_cents = s.allowed_cents + excluded.allowed_cents,
    paid_cents = s.paid_cents + excluded.paid_cents,
    denied_billed_cents = s.denied_billed_cents + excluded.denied_billed_cents,
    carc_counts = {add_codes},
    patient_responsibility_cents = s.patient_responsibility_cents
        + excluded.patient_responsibility_cents
""".format(
    add_days=_SUM_OF_MAPS.format(maps="ARRAY[s.decision_days, excluded.decision_days]"),
    add_codes=_SUM_OF_MAPS.format(maps="ARRAY[s.carc_counts, excluded.carc_counts]"),
)
# Whether some cell was gathered more than once, and whether the customer has statistics.
_HOW_CELLS_APPLY = (
    "SELECT EXISTS (SELECT FROM stat_cells GROUP BY payer, code_group, decision_date "
    "HAVING count(*) > 1), EXISTS (SELECT FROM ingest.daily_stats WHERE customer_id = %s)"
)


def apply_to_daily_stats(*, summed: bool, stored: bool) -> str:
    """The statement adding `stat_cells` to the customer's daily statistics: the cells
    `summed` first if some was gathered more than once; added to the `stored` cells if the
    customer has any (else, each cell being new, inserted without looking for one)."""
    cells = _SUMMED_CELLS if summed else "SELECT * FROM stat_cells"
    return _INSERT_DAILY_STATS.format(cells=cells) + (_ADD_TO_STORED_CELLS if stored else "")


# What drift reads: per customer × payer × code group × month, the month's daily statistics
# packed (big-endian, as PostgreSQL's int4send/int8send write them), so a year of a cell is
# read as twelve rows without unfolding any count map. `days`: int4 day numbers since
# 1970-01-01, ascending; `amounts`: int8 × PACKED_DAY_AMOUNTS per day;
# `patient_responsibility`: int8 per day; `histogram`: int4 triplets (day index in the month,
# days to decision, claims); `carc`: int4 triplets (day index, index into `carc_codes`,
# claims); `carc_codes` in byte order; triplets by day, then days to decision or code (months
# packed before 2026-12 may hold a day's CARC triplets in any order: readers do not rely on
# it). Written narrow (`NARROW_MONTH_ENTRIES`, on unless a release that reads triplets only
# may still run), the entries that fit (NARROW_FITS) go to `narrow_histogram` and
# `narrow_carc` instead, 6 bytes each (NARROW_ENTRY), in the same order; the triplets keep
# the rest. Rebuilt from `ingest.daily_stats` for the months `{touched}` (a query of
# customer_id, payer, code_group, month) names, `%(narrow)s` saying whether to write narrow
# entries; a new month of new claims is packed in Python the same way (`pack_months`).
DAY_AMOUNTS = (
    "decided_claims", "denied_claims", "partially_denied_claims", "billed_cents",
    "allowed_cents", "paid_cents", "denied_billed_cents", "patient_responsibility_cents",
)  # fmt: skip
# The amounts packed together, in the packed months and in `PackedDailyStatSeries.day_amounts`.
# The patients' share, counted since, is packed on its own: readers of the seven read on.
PACKED_DAY_AMOUNTS = DAY_AMOUNTS[:7]
# Packed days count from this one.
EPOCH = dt.date(1970, 1, 1)
_KEY = "customer_id, payer, code_group, month"
# A narrow entry: the day's index in its month (the top byte) and the value (days to decision,
# or the code's index; the low three bytes) in a u32, then the claims in an i16; big-endian.
# Every value fits (days to decision are under 2^24, as dates end in the year 9999, and a
# month has far fewer codes); an entry whose claims do not (NARROW_FITS) stays a triplet.
NARROW_ENTRY = np.dtype([("day_value", ">u4"), ("claims", ">i2")])
NARROW_VALUES = 1 << 24
NARROW_FITS = "%(narrow)s AND n BETWEEN -32768 AND 32767"


def narrow_bytes(entries: np.ndarray) -> bytes:
    """Rows of (day index, value, claims) that fit (NARROW_FITS) as narrow entries."""
    packed = np.empty(len(entries), dtype=NARROW_ENTRY)
    packed["day_value"] = entries[:, 0] << 24 | entries[:, 1]
    packed["claims"] = entries[:, 2]
    return packed.tobytes()


def narrow_columns(packed: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Narrow entries as their day indexes, values and claims."""
    entries = np.frombuffer(packed, dtype=NARROW_ENTRY)
    day_value = entries["day_value"].astype(np.int64)
    return day_value >> 24, day_value & (NARROW_VALUES - 1), entries["claims"]


def _entries(*, narrow: bool) -> str:
    """The aggregate packing a month's entries (rows of `i` day index, `v` value, `n` claims):
    those that fit as narrow entries if `%(narrow)s`, or the others as int4 triplets. A CASE
    rather than a FILTER: string_agg passes over NULLs, and aggregates of one ORDER BY and no
    FILTER share one sort of their rows."""
    if narrow:
        entry = f"CASE WHEN {NARROW_FITS} THEN int4send(i << 24 | v) || int2send(n::int2) END"
    else:
        entry = f"CASE WHEN NOT ({NARROW_FITS}) THEN int4send(i) || int4send(v) || int4send(n) END"
    return f"string_agg({entry}, ''::bytea ORDER BY i, v)"


MONTHS_FROM_DAILY_STATS = f"""
WITH touched AS ({{touched}}),
days AS (
    -- The touched months' days, found by a scan of the customer's days from the first of
    -- them (a join by month ranges lets the planner rescan whole months per touched cell).
    -- Run without nested loops: the planner may not know the customer's days yet.
    SELECT s.customer_id, s.payer, s.code_group, m.month, s.decision_date,
           {", ".join("s." + a for a in DAY_AMOUNTS)}, s.decision_days, s.carc_counts,
           (row_number() OVER (PARTITION BY s.customer_id, s.payer, s.code_group, m.month
                               ORDER BY s.decision_date) - 1)::int AS i
    FROM ingest.daily_stats s,
         LATERAL (SELECT date_trunc('month', s.decision_date)::date AS month) m
    WHERE s.customer_id = %(customer)s
      AND s.decision_date >= (SELECT min(month) FROM touched)
      AND ({_KEY}) IN (SELECT {_KEY} FROM touched)
), cells AS (
    SELECT {_KEY},
           string_agg(int4send(decision_date - DATE '1970-01-01'), ''::bytea ORDER BY i) AS days,
           string_agg({" || ".join(f"int8send({a})" for a in PACKED_DAY_AMOUNTS)}, ''::bytea
                      ORDER BY i) AS amounts,
           string_agg(int8send(patient_responsibility_cents), ''::bytea
                      ORDER BY i) AS patient_responsibility
    FROM days GROUP BY {_KEY}
), histograms AS (
    SELECT {_KEY}, {_entries(narrow=False)} AS histogram,
           {_entries(narrow=True)} AS narrow_histogram
    -- Each entry's numbers read once (OFFSET 0: a subquery not merged into the query, where
    -- each use of them would read them again).
    FROM days, LATERAL (SELECT key::int AS v, value::int AS n
                        FROM jsonb_each_text(decision_days) OFFSET 0) e
    GROUP BY {_KEY}
), codes AS (
    SELECT {_KEY}, i, e.key COLLATE "C" AS code, e.value::int AS n,
           (dense_rank() OVER (PARTITION BY {_KEY} ORDER BY e.key COLLATE "C") - 1)::int AS v
    FROM days, jsonb_each_text(carc_counts) AS e
), carcs AS (
    SELECT {_KEY}, array_agg(DISTINCT code ORDER BY code) AS codes,
           {_entries(narrow=False)} AS carc, {_entries(narrow=True)} AS narrow_carc
    FROM codes GROUP BY {_KEY}
)
INSERT INTO ingest.daily_stat_months ({_KEY}, days, amounts, patient_responsibility, histogram,
                                      carc_codes, carc, narrow_histogram, narrow_carc)
SELECT {_KEY}, c.days, c.amounts, c.patient_responsibility, coalesce(h.histogram, ''::bytea),
       coalesce(k.codes, '{{{{}}}}'), coalesce(k.carc, ''::bytea),
       coalesce(h.narrow_histogram, ''::bytea), coalesce(k.narrow_carc, ''::bytea)
FROM cells c LEFT JOIN histograms h USING ({_KEY}) LEFT JOIN carcs k USING ({_KEY})
"""
# The months the gathered partial sums touch.
_TOUCHED_MONTHS = (
    "SELECT DISTINCT %(customer)s::text AS customer_id, payer, code_group, "
    "date_trunc('month', decision_date)::date AS month FROM stat_cells"
)
# Those of them without a packed month (the months packed in Python are written first).
_TOUCHED_UNPACKED_MONTHS = (
    f"SELECT * FROM ({_TOUCHED_MONTHS}) t WHERE NOT EXISTS (SELECT FROM "
    "ingest.daily_stat_months m WHERE m.customer_id = t.customer_id AND m.payer = t.payer "
    "AND m.code_group = t.code_group AND m.month = t.month)"
)
# The months the changes counted from `claim_changes` touch (each claim version's decision
# month, whether or not it counts).
_CHANGED_MONTHS = (
    "SELECT DISTINCT payer, code_group, date_trunc('month', decision_date)::date "
    "FROM claim_changes WHERE decision_date IS NOT NULL"
)

# A packed month's key (canonical payer, code group, first day of the month) and its row of
# `ingest.daily_stat_months` after the key: days, amounts, patient_responsibility,
# histogram, carc_codes, carc, narrow_histogram, narrow_carc.
MonthKey = tuple[str, str, dt.date]
PackedMonthRow = tuple[bytes, bytes, bytes, bytes, list[str], bytes, bytes, bytes]
_COPY_MONTHS = (
    "COPY ingest.daily_stat_months (customer_id, payer, code_group, month, days, amounts, "
    "patient_responsibility, histogram, carc_codes, carc, narrow_histogram, narrow_carc) "
    "FROM STDIN"
)


class MonthColumns(NamedTuple):
    """Partial sums as arrays, to pack into months (`pack_months`): each (canonical payer,
    code group) and denial code numbered, each cell a row."""

    pairs: list[tuple[str, str]]  # (payer, code group) by number
    codes: list[str]  # denial codes by number
    cell_pair: np.ndarray  # each cell's pair
    cell_day: np.ndarray  # each cell's day, in days since EPOCH
    amounts: np.ndarray  # each cell's DAY_AMOUNTS
    histogram: np.ndarray  # rows of cell, days to decision, claims
    carc: np.ndarray  # rows of cell, code, claims


def _month_columns(
    cells: Mapping[tuple[str, str, dt.date], list[int]],
    day_counts: Mapping[tuple[str, str, dt.date, int], int],
    code_counts: Mapping[tuple[str, str, dt.date, str], int],
    canonical: Mapping[str, str],
) -> MonthColumns:
    """`PartialSums.month_columns`, of its maps."""
    keys = list(cells)
    cell_index = {key: i for i, key in enumerate(keys)}
    named: dict[tuple[str, str], int] = {}
    codes = sorted({code for *_, code in code_counts})
    code_index = {code: i for i, code in enumerate(codes)}

    def rows(
        counts: Mapping[tuple[str, str, dt.date, Any], int], values: Iterable[int]
    ) -> np.ndarray:
        cell = np.fromiter(
            (cell_index[uid, group, day] for uid, group, day, _ in counts), np.int64, len(counts)
        )
        value = np.fromiter(values, np.int64, len(counts))
        return np.column_stack((cell, value, np.fromiter(counts.values(), np.int64, len(counts))))

    cell_pair = np.fromiter(
        (named.setdefault((canonical[uid], group), len(named)) for uid, group, _ in keys),
        np.int64,
        len(keys),
    )
    return MonthColumns(
        pairs=list(named),
        codes=codes,
        cell_pair=cell_pair,
        cell_day=np.fromiter(((day - EPOCH).days for _, _, day in keys), np.int64, len(keys)),
        amounts=np.fromiter(
            itertools.chain.from_iterable(cells.values()), np.int64, len(keys) * len(DAY_AMOUNTS)
        ).reshape(-1, len(DAY_AMOUNTS)),
        histogram=rows(day_counts, (value for *_, value in day_counts)),
        carc=rows(code_counts, (code_index[code] for *_, code in code_counts)),
    )


def pack_months(pieces: Sequence[MonthColumns], *, narrow: bool) -> dict[MonthKey, PackedMonthRow]:
    """The months of the partial sums of `pieces` added up, each packed as if its days were
    all here, as `MONTHS_FROM_DAILY_STATS` packs them from the days' statistics (counts of
    zero are none; codes in the order of their UTF-8 bytes, which is Python's order of str;
    with `narrow`, the entries that fit as narrow entries).
    Every day and entry gets a slot of (payer, code group, day), in order, so that the
    pieces' sums of one add up (and payer uids of one canonical payer): the months are runs
    of slots, their arrays cut out of arrays made for all of them at once."""
    pieces = [piece for piece in pieces if piece.cell_pair.size]
    if not pieces:
        return {}
    named: dict[tuple[str, str], int] = {}
    codes = sorted({code for piece in pieces for code in piece.codes})
    code_index = {code: i for i, code in enumerate(codes)}
    cell_pair, cell_day, histogram_rows, carc_rows = [], [], [], []
    cells_before = 0
    for piece in pieces:
        pair_number = np.array([named.setdefault(pair, len(named)) for pair in piece.pairs])
        code_number = np.array([code_index[code] for code in piece.codes], dtype=np.int64)
        cell_pair.append(pair_number[piece.cell_pair])
        cell_day.append(piece.cell_day)
        to_cell = np.array([cells_before, 0, 0])
        histogram_rows.append(piece.histogram + to_cell)
        carc = piece.carc + to_cell
        carc[:, 1] = code_number[piece.carc[:, 1]]
        carc_rows.append(carc)
        cells_before += piece.cell_pair.size
    pair_of_cell, day_of_cell = np.concatenate(cell_pair), np.concatenate(cell_day)
    first_day = int(day_of_cell.min())
    day_span = int(day_of_cell.max()) - first_day + 1
    slots, slot_of_cell = np.unique(
        pair_of_cell * day_span + day_of_cell - first_day, return_inverse=True
    )
    amounts = np.zeros((slots.size, len(DAY_AMOUNTS)), dtype=np.int64)
    np.add.at(amounts, slot_of_cell, np.concatenate([piece.amounts for piece in pieces]))
    pair, day = slots // day_span, slots % day_span + first_day
    # Months since 1970-01: each month's slots are a run.
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    begins = np.flatnonzero(np.r_[True, (pair[1:] != pair[:-1]) | (month[1:] != month[:-1])])
    stops = np.r_[begins[1:], slots.size]
    month_of_slot = np.repeat(np.arange(begins.size), stops - begins)
    index_in_month = np.arange(slots.size) - begins[month_of_slot]

    def entries(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows (cell, value, claims) of one (slot, value) summed, in slot then value
        order, those that sum to zero left out: (index in month, value, claims) and months."""
        slot, value = slot_of_cell[rows[:, 0]], rows[:, 1]
        width = int(value.max()) + 1 if value.size else 1
        keys, at = np.unique(slot * width + value, return_inverse=True)
        claims = np.bincount(at, weights=rows[:, 2], minlength=keys.size).astype(np.int64)
        keys, claims = keys[claims != 0], claims[claims != 0]
        entry_slot = keys // width
        summed = np.column_stack((index_in_month[entry_slot], keys % width, claims))
        return summed, month_of_slot[entry_slot]

    histogram, histogram_month = entries(np.concatenate(histogram_rows))
    carc, carc_month = entries(np.concatenate(carc_rows))
    # Each month numbers the codes it uses, in order.
    code_width = max(len(codes), 1)
    month_code = carc_month * code_width + carc[:, 1].astype(np.int64)
    month_codes = np.unique(month_code)
    month_code_cuts = np.searchsorted(month_codes, np.arange(begins.size + 1) * code_width)
    carc[:, 1] = np.searchsorted(month_codes, month_code) - month_code_cuts[carc_month]
    histogram_parts = _SplitEntries(histogram, histogram_month, begins.size, narrow)
    carc_parts = _SplitEntries(carc, carc_month, begins.size, narrow)
    days = day.astype(">i4").tobytes()
    packed = amounts[:, : len(PACKED_DAY_AMOUNTS)].astype(">i8").tobytes()
    patient = amounts[:, len(PACKED_DAY_AMOUNTS)].astype(">i8").tobytes()
    pairs_named = list(named)
    row_bytes = len(PACKED_DAY_AMOUNTS) * 8
    months: dict[MonthKey, PackedMonthRow] = {}
    for m, (first, stop) in enumerate(zip(begins.tolist(), stops.tolist(), strict=True)):
        payer, group = pairs_named[int(pair[first])]
        year, month_index = divmod(int(month[first]), 12)
        months[payer, group, dt.date(1970 + year, month_index + 1, 1)] = (
            days[first * 4 : stop * 4],
            packed[first * row_bytes : stop * row_bytes],
            patient[first * 8 : stop * 8],
            histogram_parts.wide(m),
            [
                codes[c % code_width]
                for c in month_codes[month_code_cuts[m] : month_code_cuts[m + 1]].tolist()
            ],
            carc_parts.wide(m),
            histogram_parts.narrow(m),
            carc_parts.narrow(m),
        )
    return months


class _SplitEntries:
    """Months' entries (rows of day index, value, claims; each row's month) packed: those
    that fit as narrow entries if asked, the rest as int4 triplets, a month's a slice of
    each."""

    def __init__(self, entries: np.ndarray, month: np.ndarray, months: int, narrow: bool) -> None:
        fits = np.zeros(len(entries), dtype=np.bool_)
        if narrow:  # as NARROW_FITS
            fits = (entries[:, 2] >= -(1 << 15)) & (entries[:, 2] < 1 << 15)
        wide, slim = entries[~fits], entries[fits]
        self._wide = wide.astype(">i4").tobytes()
        self._narrow = narrow_bytes(slim)
        bounds = np.arange(months + 1)
        self._wide_cuts = np.searchsorted(month[~fits], bounds).tolist()
        self._narrow_cuts = np.searchsorted(month[fits], bounds).tolist()

    def wide(self, m: int) -> bytes:
        return self._wide[self._wide_cuts[m] * 12 : self._wide_cuts[m + 1] * 12]

    def narrow(self, m: int) -> bytes:
        size = NARROW_ENTRY.itemsize
        return self._narrow[self._narrow_cuts[m] * size : self._narrow_cuts[m + 1] * size]


_APPLY_TO_PENDING_STATS = """
INSERT INTO ingest.pending_stats AS s (customer_id, payer, code_group, start_date,
    pending_claims)
SELECT %(customer)s, payer, code_group, start_date, sum(n) FROM stat_pending
GROUP BY payer, code_group, start_date HAVING sum(n) <> 0
ON CONFLICT (customer_id, payer, code_group, start_date) DO UPDATE SET
    pending_claims = s.pending_claims + excluded.pending_claims
"""


async def without_nested_loops(cursor: Any, statement: str, parameters: Any) -> int:
    """Run a statement that joins a customer's stored claims or statistics with nested loops
    off; returns its row count. The planner's statistics may not know the customer's rows yet
    (a new customer, or rows written earlier in this transaction): it would then expect one
    row and rescan them all for every row of the other side."""
    await cursor.execute("SET LOCAL enable_nestloop = off")
    await cursor.execute(statement, parameters)
    count = int(cursor.rowcount)
    await cursor.execute("SET LOCAL enable_nestloop = on")
    return count


async def apply_counts(
    cursor: Any,
    customer: str,
    packed: Awaitable[Mapping[MonthKey, PackedMonthRow]] | None = None,
    *,
    narrow: bool,
) -> None:
    """Add the gathered partial sums to the customer's daily statistics, pending claims and
    payer counts. `packed`: the months packed in Python (`pack_months`, in a worker thread
    while the statistics are added up) of all the partial sums gathered but the changes
    counted from `claim_changes`; a month of them that had no statistics and no counted
    change is written as it is, the other touched months are packed again from the stored
    days; with narrow entries if `narrow`."""
    await cursor.execute(_HOW_CELLS_APPLY, (customer,))
    summed, stored = await cursor.fetchone()
    await cursor.execute(apply_to_daily_stats(summed=summed, stored=stored), {"customer": customer})
    # A cell whose last claim left has no statistics.
    await cursor.execute(
        "DELETE FROM ingest.daily_stats s USING (SELECT DISTINCT payer, code_group, "
        "decision_date FROM stat_cells) t WHERE s.customer_id = %s AND s.payer = t.payer "
        "AND s.code_group = t.code_group AND s.decision_date = t.decision_date "
        "AND s.decided_claims = 0",
        (customer,),
    )
    await cursor.execute(
        "DELETE FROM ingest.daily_stat_months m USING (" + _TOUCHED_MONTHS + ") t "
        "WHERE m.customer_id = %(customer)s AND m.payer = t.payer "
        "AND m.code_group = t.code_group AND m.month = t.month "
        "RETURNING m.payer, m.code_group, m.month",
        {"customer": customer},
    )
    touched: str | None = _TOUCHED_MONTHS
    if packed is not None:
        # A month stored before, or touched by a counted change, has days the partial sums
        # do not hold: only those are packed from the stored days.
        stored_months = set(await cursor.fetchall())
        await cursor.execute(_CHANGED_MONTHS)
        changed_months = set(await cursor.fetchall())
        months = await packed
        async with cursor.copy(_COPY_MONTHS) as copy:
            for key, row in months.items():
                if key not in stored_months and key not in changed_months:
                    await copy.write_row((customer, *key, *row))
        touched = _TOUCHED_UNPACKED_MONTHS if stored_months or changed_months else None
    if touched is not None:
        await without_nested_loops(
            cursor,
            MONTHS_FROM_DAILY_STATS.format(touched=touched),
            {"customer": customer, "narrow": narrow},
        )
    await cursor.execute(_APPLY_TO_PENDING_STATS, {"customer": customer})
    # A start day whose last pending claim was decided has no count.
    await cursor.execute(
        "DELETE FROM ingest.pending_stats s USING (SELECT DISTINCT payer, code_group, "
        "start_date FROM stat_pending) t WHERE s.customer_id = %s AND s.payer = t.payer "
        "AND s.code_group = t.code_group AND s.start_date = t.start_date "
        "AND s.pending_claims = 0",
        (customer,),
    )
    await cursor.execute(
        "UPDATE ingest.payers p SET claim_count = p.claim_count + d.n "
        "FROM (SELECT payer_uid, sum(n) AS n FROM payer_sums GROUP BY payer_uid) d "
        "WHERE p.customer_id = %s AND p.payer_uid = d.payer_uid AND d.n <> 0",
        (customer,),
    )


class CellSums(NamedTuple):
    """The partial sums of one payer × code group × day."""

    amounts: tuple[int, ...]  # DAY_AMOUNTS, in order
    decision_days: dict[int, int]  # claims by days to decision
    carc_counts: dict[str, int]  # claims by denial code


class PartialSums:
    """Partial sums of new claims gathered in Python: claims that are written with COPY (no
    statement returns their versions) are counted here, by payer uid, and `write` hands the
    sums to the same tables `counting_in` fills, naming each payer by its canonical name."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        # New maps each time: those handed to `month_columns` stay as they were.
        # (payer uid, code group, day) -> DAY_AMOUNTS
        self._cells: dict[tuple[str, str, dt.date], list[int]] = {}
        # claims by (cell, days to decision) and by (cell, denial code)
        self._days: dict[tuple[str, str, dt.date, int], int] = {}
        self._codes: dict[tuple[str, str, dt.date, str], int] = {}
        # (payer uid, code group, day started) -> pending claims
        self._pending: dict[tuple[str, str, dt.date], int] = {}
        # payer uid -> claims
        self._payers: dict[str, int] = {}
        # The COPY texts `prepare` made of these sums.
        self._prepared: list[tuple[str, str]] | None = None

    def __bool__(self) -> bool:
        return bool(self._payers)

    @property
    def claims(self) -> int:
        """How many claims were counted in."""
        return sum(self._payers.values())

    def add_all(self, counted: Iterable[Counted]) -> None:
        """Count claims in, each as `claim_statistics.Counted` says (run for every new claim of
        files with millions of rows: one loop, plain dict reads)."""
        cells, day_counts, code_counts = self._cells, self._days, self._codes
        pending, payers = self._pending, self._payers
        for (
            payer_uid, code_group, decision_date, decision_days, denied, partially_denied,
            billed_cents, allowed_cents, paid_cents, denial_codes, patient_cents, started,
        ) in counted:  # fmt: skip
            payers[payer_uid] = payers.get(payer_uid, 0) + 1
            if started is not None:
                start = (payer_uid, code_group, started)
                pending[start] = pending.get(start, 0) + 1
            if decision_date is None:
                continue
            cell = (payer_uid, code_group, decision_date)
            sums = cells.get(cell)
            if sums is None:
                sums = cells[cell] = [0, 0, 0, 0, 0, 0, 0, 0]
            sums[0] += 1
            if denied:
                sums[1] += 1
                sums[6] += billed_cents
            if partially_denied:
                sums[2] += 1
            sums[3] += billed_cents
            sums[4] += allowed_cents
            sums[5] += paid_cents
            sums[7] += patient_cents
            if decision_days is not None:
                day = (payer_uid, code_group, decision_date, decision_days)
                day_counts[day] = day_counts.get(day, 0) + 1
            for code in denial_codes:
                coded = (payer_uid, code_group, decision_date, code)
                code_counts[coded] = code_counts.get(coded, 0) + 1

    def cells(self) -> dict[tuple[str, str, dt.date], CellSums]:
        """The sums so far by (payer uid, code group, day)."""
        cells = {cell: CellSums(tuple(sums), {}, {}) for cell, sums in self._cells.items()}
        for (uid, group, day, days), n in self._days.items():
            cells[uid, group, day].decision_days[days] = n
        for (uid, group, day, code), n in self._codes.items():
            cells[uid, group, day].carc_counts[code] = n
        return cells

    def month_columns(self, canonical: Mapping[str, str]) -> Callable[[], MonthColumns]:
        """A function making these sums as they are now into month columns (`pack_months`;
        payers named by their canonical name), to run in a worker thread while they are
        written (`clear` leaves what it reads alone)."""
        return functools.partial(
            _month_columns, self._cells, self._days, self._codes, dict(canonical)
        )

    def pending(self) -> dict[tuple[str, str, dt.date], int]:
        """The pending claims so far by (payer uid, code group, day they started)."""
        return {start: n for start, n in self._pending.items() if n}

    @property
    def prepared(self) -> bool:
        """Whether `prepare` made the COPY text of these sums."""
        return self._prepared is not None

    def prepare(self, canonical: Mapping[str, str]) -> None:
        """Make the COPY text `write` sends ahead, in a worker thread perhaps, while nothing
        else changes the sums or `canonical`."""
        self._prepared = self._copy_texts(canonical)

    async def write(self, cursor: Any, canonical: Mapping[str, str]) -> None:
        """Add the sums to the counting tables (`canonical`: payer uid -> canonical payer)
        and start again from zero."""
        texts = self._prepared if self._prepared is not None else self._copy_texts(canonical)
        for table, text in texts:
            if text:
                async with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                    await copy.write(text.encode())
        self.clear()

    def _copy_texts(self, canonical: Mapping[str, str]) -> list[tuple[str, str]]:
        """Each counting table's COPY text of the sums."""
        # COPY text made here: psycopg's row-by-row formatting costs more than the counting.
        cells = {uid: copy_text(name) for uid, name in canonical.items()}
        # Each cell's count maps as JSON: days to decision are numbers; a denial code may be
        # any text a file gave (each made JSON once).
        histograms: dict[tuple[str, str, dt.date], list[str]] = {}
        for (uid, group, day, days), n in self._days.items():
            if n:
                cell = (uid, group, day)
                entry = f'"{days}":{n}'
                if (listed := histograms.get(cell)) is None:
                    histograms[cell] = [entry]
                else:
                    listed.append(entry)
        as_json: dict[str, str] = {}
        codes: dict[tuple[str, str, dt.date], list[str]] = {}
        for (uid, group, day, code), n in self._codes.items():
            if n:
                if (text := as_json.get(code)) is None:
                    text = as_json[code] = json.dumps(code)
                codes.setdefault((uid, group, day), []).append(f"{text}:{n}")
        day_text: dict[dt.date, str] = {}
        cell_lines = []
        for cell, sums in self._cells.items():
            uid, group, day = cell
            if (when := day_text.get(day)) is None:
                when = day_text[day] = day.isoformat()
            coded = codes.get(cell)
            cell_lines.append(
                f"{cells[uid]}\t{group}\t{when}\t{sums[0]}\t{sums[1]}\t{sums[2]}\t{sums[3]}\t"
                f"{sums[4]}\t{sums[5]}\t{sums[6]}\t{sums[7]}\t"
                f"{{{','.join(histograms.get(cell, ()))}}}\t"
                + (copy_text("{" + ",".join(coded) + "}") if coded else "{}")
                + "\n"
            )
        tables = (
            ("stat_cells", cell_lines),
            (
                "stat_pending",
                (
                    f"{cells[uid]}\t{group}\t{day}\t{n}\n"
                    for (uid, group, day), n in self._pending.items()
                ),
            ),
            ("payer_sums", (f"{uid}\t{n}\n" for uid, n in self._payers.items())),
        )
        return [(table, "".join(lines)) for table, lines in tables]


async def discard_counts(cursor: Any) -> None:
    """Forget what was gathered (the writes it came from were taken back)."""
    await cursor.execute("TRUNCATE claim_changes, stat_cells, stat_pending, payer_sums")
