"""Everything that writes `ingest.claims`: an upload (COPY while the file streams, then one
set-based merge), the deletion of an upload's claims, and the move of claims to a remapped
payer. Each runs under the customer's lock and keeps the statistics in step
(`daily_statistics`).

An upload is loaded in one transaction, all of it or nothing. A claim that is certainly new
(the customer's stored claims do not have its key, and it did not occur earlier in the file)
is copied straight into `ingest.claims`, its statistics summed in Python; anything else (a
claim that may already be stored or repeat an earlier row, and reversals) is copied into a
staging table and merged by key at the end, where a newer adjudication updates a known claim
and never duplicates it. Rejected rows are copied into `ingest.upload_rejections`. At the end
the statistics of exactly the touched cells are adjusted, and the upload row and its outbox
event written. A crash at any point leaves nothing behind.

The rows of a CSV upload are lines of claims. Lines of one claim that came in one chunk are
combined before they are loaded; a claim whose lines came in several chunks has its first
piece loaded like any claim and the later ones staged, and at the end the pieces of each
such claim are read back in line order, combined into the claim, and merged in its place
(or, naming different payers, refused and taken out).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncCopy
from sqlalchemy.ext.asyncio import AsyncConnection as SaConnection

from runtime.telemetry import trace_carrier
from runtime.words import counted
from services.ingest.copy_lines import (
    CLAIM_COLUMNS,
    PIECE_COLUMNS,
    PIECE_LINE_COLUMNS,
    REJECTION_COLUMNS,
    Assembled,
    Encoder,
    PieceAssembly,
    Staged,
    StagedClaim,
)
from services.ingest.daily_statistics import (
    COUNT_TABLES,
    MonthColumns,
    MonthKey,
    PackedMonthRow,
    PartialSums,
    apply_counts,
    count_in,
    discard_counts,
    pack_months,
    recording_changes,
    without_nested_loops,
)
from services.ingest.parsing import Batch
from services.ingest.payer_directory import directory_payer
from services.ingest.records import ParseLimits, Rejection, UploadWarning

MAX_STORED_WARNINGS = 100
# An upload of more claims packs the months it touches from the stored days: the month
# columns of a 1M-row upload's sums, kept to the end, held 60 MB more at its peak.
PACKED_MONTHS_MAX_CLAIMS = 200_000

_CLAIM_COLUMN_LIST = ", ".join(CLAIM_COLUMNS)
# An upsert's update of every column but the key: `(claim_id, ...) = (excluded.claim_id, ...)`.
_UPDATED_COLUMNS = CLAIM_COLUMNS[2:]
_CLAIM_UPDATES = (
    f"({', '.join(_UPDATED_COLUMNS)}) = "
    f"({', '.join('excluded.' + column for column in _UPDATED_COLUMNS)})"
)
# The temporary tables of one upload: claims to merge at the end (`upload_rest`, in the
# columns of `ingest.claims`), the payers seen, the counting of statistics and payer counts,
# and for CSV uploads the pieces of claims to combine at the end (`upload_pieces`), the uids
# of their earlier pieces (`upload_lookups`), what their claim lines do not say of them
# (`upload_lines`), and the claims they combine into (`upload_combined`).
_CREATE_UPLOAD_TABLES = (
    "CREATE TEMPORARY TABLE upload_rest (LIKE ingest.claims INCLUDING DEFAULTS) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE upload_payers (payer_uid text PRIMARY KEY) ON COMMIT DROP",
    *COUNT_TABLES,
    "CREATE TEMPORARY TABLE upload_pieces (LIKE ingest.claims INCLUDING DEFAULTS) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE upload_lookups (claim_uid text) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE upload_lines (claim_uid text, source_line bigint, "
    "status_stated boolean, lines text) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE upload_combined (LIKE ingest.claims INCLUDING DEFAULTS) ON COMMIT DROP",
)
_COPY_CLAIMS = f"COPY ingest.claims ({_CLAIM_COLUMN_LIST}) FROM STDIN"
_COPY_REST = f"COPY upload_rest ({_CLAIM_COLUMN_LIST}) FROM STDIN"
_COPY_REJECTIONS = f"COPY ingest.upload_rejections ({', '.join(REJECTION_COLUMNS)}) FROM STDIN"
_COPY_PIECES = f"COPY upload_pieces ({_CLAIM_COLUMN_LIST}) FROM STDIN"
_COPY_LOOKUPS = "COPY upload_lookups (claim_uid) FROM STDIN"
_COPY_PIECE_LINES = f"COPY upload_lines ({', '.join(PIECE_LINE_COLUMNS)}) FROM STDIN"
_COPY_COMBINED = f"COPY upload_combined ({_CLAIM_COLUMN_LIST}) FROM STDIN"
# Every piece of the claim ids with pieces staged, in claim id and line order: the first
# pieces, written to ingest.claims by this upload or staged in the rest, and the staged
# pieces; with what `upload_lines` keeps of each. Run with nested loops off: the planner,
# not knowing the claims this transaction wrote, would probe the upload's claims through
# another index than the key, scanning them once per piece.
_PIECE_LIST = ", ".join(f"x.{column}" for column in PIECE_COLUMNS)
_PIECES_IN_ORDER = (
    f"SELECT x.origin, {_PIECE_LIST}, l.status_stated, l.lines FROM ("
    "SELECT 'written' AS origin, c.* FROM ingest.claims c WHERE c.customer_id = %(customer)s "
    "AND c.upload_id = %(upload)s AND c.claim_uid IN (SELECT claim_uid FROM upload_lookups) "
    "UNION ALL SELECT 'rest', r.* FROM upload_rest r WHERE r.status <> 'REVERSED' "
    "AND r.claim_uid IN (SELECT claim_uid FROM upload_lookups) "
    "UNION ALL SELECT 'piece', p.* FROM upload_pieces p) x "
    "LEFT JOIN upload_lines l ON l.claim_uid = x.claim_uid AND l.source_line = x.source_line "
    "ORDER BY x.claim_id, x.source_line"
)
# Pieces read back at a time: one claim id's pieces are held at most, whatever the file.
_PIECES_PER_FETCH = 5000
# Which of a customer's claims are stored, by key, a few hundred keys per branch of one
# statement. Run only when its plan probes the primary key (`probes_primary_key`): the
# planner prefers scanning all of a customer's claims through another index when it expects
# fewer of them than keys (with statistics that do not know the customer, it expects ~0.5 %
# of the table; a few hundred keys keep the probe the cheaper plan).
_PROBE_KEYS = 200
_PROBE = "SELECT claim_uid FROM ingest.claims WHERE customer_id = %s AND claim_uid = ANY(%s)"
# `store.DECISION_DAY` in SQL: a claim's decision date, a pending claim's the lowest date.
DECISION_DAY_SQL = "coalesce(decision_date, '0001-01-01'::date)"


def _kept(written: str, rest: str = "") -> str:
    """The claims an upload keeps (decision date, payer uid, status): those of `written`
    (claims the upload wrote to ingest.claims, as `c`) that no combined claim replaces, and
    the staged rest (`rest`: a condition on it)."""
    return (
        f"SELECT c.decision_date, c.payer_uid, c.status FROM {written} AND NOT EXISTS "
        "(SELECT FROM upload_combined u WHERE u.claim_uid = c.claim_uid) "
        f"UNION ALL SELECT decision_date, payer_uid, status FROM upload_rest {rest}"
    )


_KEPT = _kept("ingest.claims c WHERE c.customer_id = %(customer)s AND c.upload_id = %(upload)s")
_KEPT_OF_DAYS = _kept(
    "on_days c WHERE c.upload_id = %(upload)s",
    "WHERE decision_date IN (%(first)s::date, %(last)s::date)",
)
# Whether the claims an upload keeps include one decided on `first`, and one on `last`: the
# customer's claims of those days read first (by the decision order's index; materialized,
# so that the planner cannot walk every claim of the upload instead).
_KEPT_ON_DAYS = f"""
WITH on_days AS MATERIALIZED (
    SELECT claim_uid, upload_id, decision_date, payer_uid, status FROM ingest.claims
    WHERE customer_id = %(customer)s AND {DECISION_DAY_SQL} IN (%(first)s::date, %(last)s::date)
), kept AS ({_KEPT_OF_DAYS})
SELECT EXISTS (SELECT FROM kept WHERE decision_date = %(first)s::date),
       EXISTS (SELECT FROM kept WHERE decision_date = %(last)s::date)
"""


@dataclass(frozen=True)
class UploadFacts:
    """What the caller said about the upload and what reading it established."""

    customer: str
    upload_id: str
    request_id: str | None
    file_name: str
    format: str
    mode: str
    creator: str
    size_bytes: int
    sha256: str
    rows_read: int
    warnings: list[UploadWarning]
    trace_context: dict[str, str]
    # The caller's names of the file's columns (`Upload.column_map`).
    column_map: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """How the merge ended: the upload's id (an earlier one for a repeat), and whether it
    is a repeat of an earlier upload."""

    upload_id: str
    repeated: bool
    failed: bool
    first_problems: list[Rejection]


class UploadWriter:
    """Loads an upload's rows while the file streams, and finishes it in the same commit.

    `encode` (CPU work, in a worker thread, one chunk at a time) turns parsed rows into COPY
    lines; `load` (on the event loop) writes them. One COPY into `ingest.claims` stays open
    while chunks of new claims come, so PostgreSQL takes in rows while the next chunk is
    parsed; staged claims, rejections and partial sums are written every `merge_every`
    claims. All of it happens after a savepoint, so a file that fails half-way, or turns out
    to repeat an earlier upload, leaves nothing behind; an upload that fails at the end (no
    valid row, or a rejected row in ALL_OR_NOTHING) takes its new claims back out and keeps
    only its rejections.
    """

    def __init__(
        self,
        raw: AsyncConnection[Any],
        customer: str,
        upload_id: str,
        *,
        merge_every: int,
        stored_before: bool,
        narrow: bool,
        compact: bool = True,
    ) -> None:
        self._raw = raw
        self._customer = customer
        self._upload_id = upload_id
        self._merge_every = merge_every
        # Whether the customer had claims when the upload began: then a claim not seen
        # earlier in the file may still be stored, and is probed by key (when its plan
        # probes the primary key: `_probe_ok`, None until checked).
        self._stored_before = stored_before
        # Whether the months it packs keep narrow entries.
        self._narrow = narrow
        self._probe_ok: bool | None = None
        self._canonical: dict[str, str] = {}
        self._encoder = Encoder(
            customer,
            upload_id,
            count_fresh=not stored_before,
            count_every=merge_every,
            canonical=self._canonical,
            compact_adjustments=compact,
        )
        # What is written every `merge_every` claims: the partial sums of new claims (from
        # the encoder, or counted here), claims to merge at the end, rejections.
        self._sums: list[PartialSums] = []
        self._counted_here = PartialSums()
        # Each partial sums written, made into month columns in a worker thread, and the
        # upload's months packed from them all (`apply_counts`); None past
        # PACKED_MONTHS_MAX_CLAIMS claims.
        self._month_columns: list[asyncio.Future[MonthColumns]] | None = []
        self._columns_claims = 0
        self._packed_months: asyncio.Future[dict[MonthKey, PackedMonthRow]] | None = None
        self._rest: list[str] = []
        self._rejections: list[str] = []
        self._pieces: list[str] = []
        self._lookups: list[str] = []
        self._piece_lines: list[str] = []
        self._pieces_staged = 0
        self._unwritten = 0
        # One COPY into ingest.claims stays open while the file streams.
        self._copy: AsyncCopy | None = None
        self._copying = contextlib.AsyncExitStack()
        # Rows accepted, and whether they are lines of claims (CSV) or claims (835).
        self.accepted = 0
        self.claim_lines = False
        # Of CSV lines: the claims staged less those combined into others or refused at
        # the end, and the claims of their reversals.
        self._claims_left = 0
        self._reversal_claims = 0
        self._claims_refused = False
        self.decision_dates: tuple[dt.date, dt.date] | None = None
        self.rejected_lines: set[int] = set()
        self.first_rejections: list[Rejection] = []
        self.payers: list[str] = []

    @classmethod
    async def open(
        cls,
        connection: SaConnection,
        *,
        customer: str,
        upload_id: str,
        merge_every: int,
        narrow: bool,
        compact: bool = True,
    ) -> UploadWriter:
        """`merge_every`: how many claims are loaded before the staged rest is written;
        `narrow`: whether the months it packs keep narrow entries; `compact`: whether claims'
        adjustments are stored without their zero fields. Waits for the customer's lock: one
        upload at a time per customer."""
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.cursor() as cursor:
            for statement in _CREATE_UPLOAD_TABLES:
                await cursor.execute(statement)
            await lock_customer(cursor, customer)
            await cursor.execute(
                "SELECT EXISTS (SELECT FROM ingest.claims WHERE customer_id = %s)", (customer,)
            )
            stored_before = bool((await cursor.fetchone())[0])
            await cursor.execute("SAVEPOINT upload_start")
        return cls(
            raw,
            customer,
            upload_id,
            merge_every=merge_every,
            stored_before=stored_before,
            narrow=narrow,
            compact=compact,
        )

    def encode(self, batch: Batch, *, claim_lines: bool = False) -> Staged:
        """The batch's rows as COPY lines: CPU work, which may run in a worker thread (one
        batch at a time). With `claim_lines` (CSV) its records are lines of claims."""
        for claim in batch.claims:
            self.accepted += claim.rows
        if batch.columns is not None:
            self.accepted += len(batch.columns)
        self._note_rejections(batch.rejections)
        self.claim_lines = claim_lines
        return self._encoder.encode(batch, claim_lines=claim_lines)

    def _note_rejections(self, rejections: list[Rejection]) -> None:
        for rejection in rejections:
            self.rejected_lines.add(rejection.line_number)
            if len(self.first_rejections) < 10:
                self.first_rejections.append(rejection)

    async def load(self, staged: Staged) -> None:
        """Write what `encode` made: new claims into `ingest.claims`, the rest staged."""
        if staged.sums is not None:
            self._sums.append(staged.sums)
        if staged.new_payers:
            await self._add_payers(staged.new_payers)
        fresh, rest = staged.fresh, staged.repeated
        if fresh and self._stored_before:
            stored = await self._stored(fresh)
            if stored:
                rest = rest + [c for c in fresh if c.claim_uid in stored]
                fresh = [c for c in fresh if c.claim_uid not in stored]
            self._counted_here.add_all([claim.counted for claim in fresh])
        canonical = self._canonical
        if fresh:
            await self._send("".join([c.complete(canonical) for c in fresh]).encode())
        if rest:
            self._rest.append("".join([c.complete(canonical) for c in rest]))
        if staged.rejections:
            self._rejections.append(staged.rejections)
        if staged.pieces:
            self._pieces.append("".join([c.complete(canonical) for c in staged.pieces]))
            self._pieces_staged += len(staged.pieces)
        if staged.earlier_pieces:
            self._lookups.append("".join(uid + "\n" for uid in staged.earlier_pieces))
        if staged.piece_lines:
            self._piece_lines.append(staged.piece_lines)
        self._unwritten += len(fresh) + len(rest) + len(staged.pieces) + staged.rejection_count
        if self._unwritten >= self._merge_every:
            await self._write_staged()

    async def _send(self, data: bytes) -> None:
        if self._copy is None:
            cursor = await self._copying.enter_async_context(self._raw.cursor())
            self._copy = await self._copying.enter_async_context(cursor.copy(_COPY_CLAIMS))
        await self._copy.write(data)

    async def end_copy(self, error: BaseException | None = None) -> None:
        """Finish the COPY (or abort it, with `error`) so the connection takes statements."""
        if self._copy is None:
            return
        self._copy = None
        if error is None:
            await self._copying.aclose()
        else:
            await self._copying.__aexit__(type(error), error, error.__traceback__)

    async def _statements(self) -> Any:
        """A cursor for statements, the COPY ended first."""
        await self.end_copy()
        return self._raw.cursor()

    async def _add_payers(self, payers: list[tuple[str, str, str, str]]) -> None:
        """Keep the payers first seen in a chunk, and learn their canonical names."""
        async with await self._statements() as cursor:
            uids, keys, raw_ids, names = (list(column) for column in zip(*payers, strict=True))
            await cursor.execute(
                "WITH seen AS (INSERT INTO upload_payers SELECT unnest(%(uid)s::text[]) "
                "ON CONFLICT DO NOTHING), "
                "u AS (SELECT * FROM unnest(%(uid)s::text[], %(key)s::text[], %(raw_id)s::text[], "
                "%(name)s::text[], %(directory)s::text[]) "
                "AS u(payer_uid, name_key, payer_raw_id, payer_raw_name, directory_payer)) "
                "INSERT INTO ingest.payers AS p (customer_id, payer_uid, name_key, raw_name, "
                "raw_id, canonical_payer, mapping_id, directory_payer) "
                "SELECT %(customer)s, u.payer_uid, u.name_key, u.payer_raw_name, "
                "u.payer_raw_id, coalesce(m.canonical_payer, u.directory_payer, u.payer_raw_name), "
                "m.mapping_id, u.directory_payer "
                "FROM u LEFT JOIN LATERAL ("
                + MAPPING_FOR_PAYER.replace("%s", "%(customer)s").format(
                    name="u.name_key", raw_id="u.payer_raw_id"
                )
                + ") m ON true "
                "ON CONFLICT (customer_id, payer_uid) DO UPDATE SET last_seen_time = now() "
                "RETURNING p.payer_uid, p.canonical_payer",
                {
                    "customer": self._customer,
                    "uid": uids,
                    "key": keys,
                    "raw_id": raw_ids,
                    "name": names,
                    "directory": list(map(directory_payer, names)),
                },
            )
            self._canonical.update(await cursor.fetchall())

    async def _stored(self, claims: list[StagedClaim]) -> set[str]:
        """The uids of the claims the customer may have stored: those it has, or all of them
        when they cannot be probed by key (then every claim is merged by key at the end)."""
        uids = [c.claim_uid for c in claims]
        pieces = [uids[at : at + _PROBE_KEYS] for at in range(0, len(uids), _PROBE_KEYS)]
        probe = " UNION ALL ".join([_PROBE] * len(pieces))
        parameters = [value for piece in pieces for value in (self._customer, piece)]
        async with await self._statements() as cursor:
            if self._probe_ok is None:
                await cursor.execute("EXPLAIN (FORMAT JSON) " + probe, parameters, prepare=False)
                self._probe_ok = probes_primary_key((await cursor.fetchone())[0][0]["Plan"])
            if not self._probe_ok:
                return set(uids)
            await cursor.execute(probe, parameters, prepare=False)
            return {uid for (uid,) in await cursor.fetchall()}

    async def _end_copy_preparing_sums(self) -> None:
        """End the COPY of claims while the partial sums' COPY text is made in worker threads:
        PostgreSQL takes in the rows still on their way meanwhile, instead of idling while
        Python makes the text (~0.1 s for a hundred thousand claims' sums)."""
        canonical = dict(self._canonical)
        await asyncio.gather(
            *(
                asyncio.to_thread(sums.prepare, canonical)
                for sums in (*self._sums, self._counted_here)
                if sums and not sums.prepared
            ),
            self.end_copy(),
        )

    async def _write_staged(self) -> None:
        """Write the staged claims, rejections and partial sums gathered so far."""
        await self._end_copy_preparing_sums()
        async with self._raw.cursor() as cursor:
            staged = (
                (_COPY_REST, self._rest),
                (_COPY_REJECTIONS, self._rejections),
                (_COPY_PIECES, self._pieces),
                (_COPY_LOOKUPS, self._lookups),
                (_COPY_PIECE_LINES, self._piece_lines),
            )
            for statement, parts in staged:
                if parts:
                    async with cursor.copy(statement) as copy:
                        for part in parts:
                            await copy.write(part.encode())
                    parts.clear()
            for sums in (*self._sums, self._counted_here):
                if sums:
                    self._keep_month_columns(sums)
                    await sums.write(cursor, self._canonical)
            self._sums.clear()
        self._unwritten = 0

    async def _undo(self, cursor: Any) -> None:
        """Back to the savepoint: no claim, rejection or statistic of this upload stays."""
        await cursor.execute("ROLLBACK TO SAVEPOINT upload_start")
        self._sums.clear()
        self._counted_here.clear()
        self._month_columns, self._columns_claims = [], 0
        self._rest.clear()
        self._rejections.clear()
        self._pieces.clear()
        self._lookups.clear()
        self._piece_lines.clear()

    def _keep_month_columns(self, sums: PartialSums) -> None:
        """Make `sums` into month columns in a worker thread, unless the upload's claims
        outnumber PACKED_MONTHS_MAX_CLAIMS (then its months are packed from the stored days)."""
        if self._month_columns is None:
            return
        self._columns_claims += sums.claims
        if self._columns_claims > PACKED_MONTHS_MAX_CLAIMS:
            self._month_columns = None
            return
        columns = sums.month_columns(self._canonical)
        self._month_columns.append(asyncio.ensure_future(asyncio.to_thread(columns)))

    async def _pack_months(
        self, columns: list[asyncio.Future[MonthColumns]]
    ) -> dict[MonthKey, PackedMonthRow]:
        return await asyncio.to_thread(
            functools.partial(pack_months, narrow=self._narrow), await asyncio.gather(*columns)
        )

    async def finish(self, facts: UploadFacts, *, all_or_nothing: bool) -> Outcome:
        """Merge what is left and write the upload; the caller commits."""
        self._sums.append(self._encoder.take_sums())
        await self._end_copy_preparing_sums()
        async with self._raw.cursor() as cursor:
            await cursor.execute(
                "SELECT upload_id FROM ingest.uploads WHERE customer_id = %s "
                "AND ((request_id IS NOT NULL AND request_id = %s) "
                "OR (sha256 = %s AND state <> 'FAILED')) ORDER BY create_time LIMIT 1",
                (facts.customer, facts.request_id, facts.sha256),
            )
            earlier = await cursor.fetchone()
            if earlier is not None:
                await self._undo(cursor)
                return Outcome(earlier[0], repeated=True, failed=False, first_problems=[])
            await self._write_staged()
            # The months are packed while PostgreSQL adds the sums to the statistics.
            if self._month_columns is not None:
                self._packed_months = asyncio.ensure_future(self._pack_months(self._month_columns))
            self._claims_left = self._encoder.claims
            written_replaced = await self._assemble_pieces(cursor)
            failed = self.accepted == 0 or (all_or_nothing and bool(self.rejected_lines))
            if failed:
                await self._take_back_new_claims(cursor)
                await self._insert_upload(
                    cursor, facts, "FAILED", updated=0, warnings=facts.warnings
                )
                return Outcome(facts.upload_id, False, True, self.first_rejections)
            warnings = list(facts.warnings)
            await self._note_what_is_kept(cursor)
            updated, unmatched = await self._merge_rest(cursor)
            # A combined claim replacing its first piece updates nothing stored before.
            updated -= written_replaced
            if unmatched:
                warnings.append(
                    UploadWarning(
                        "UNMATCHED_REVERSAL",
                        f"{counted(unmatched, 'reversal')} "
                        f"{'names' if unmatched == 1 else 'name'} a payer claim number no "
                        "stored claim has",
                    )
                )
            if self.claims_accepted < self.accepted:
                warnings.append(
                    UploadWarning(
                        "LINES_COMBINED",
                        f"{self.accepted:,} lines were combined into "
                        f"{counted(self.claims_accepted, 'claim')}",
                    )
                )
            warnings.extend(await self._others_left_behind(cursor))
            await self._insert_upload(
                cursor, facts, "SUCCEEDED", updated=updated, warnings=warnings
            )
            await record_event(
                cursor,
                facts.customer,
                UPLOAD_COMPLETED,
                {"customer": facts.customer, "upload_id": facts.upload_id},
                facts.trace_context,
            )
        return Outcome(facts.upload_id, False, False, [])

    async def _others_left_behind(self, cursor: Any) -> list[UploadWarning]:
        """A warning when the upload brings the customer's latest decision well past every
        claim of some of its other payers: detection runs as of that day, so their current
        windows hold none of their claims until later ones come."""
        if self.decision_dates is None:
            return []
        last = self.decision_dates[1]
        cutoff = last - dt.timedelta(days=BEHIND_DAYS)
        parameters = {"customer": self._customer, "cutoff": cutoff, "mine": self.payers}
        await cursor.execute(_PAYERS_BEHIND, parameters)
        rows = await cursor.fetchall()
        if not rows or rows[0][0] is None or rows[0][0] >= last:
            return []
        # Those the upload left behind: the customer's latest decision before it was not yet
        # past them (a payer behind already was warned of by the upload that left it so).
        was = rows[0][0] - dt.timedelta(days=BEHIND_DAYS)
        behind = [
            (payer, month)
            for _, payer, month in rows
            if payer is not None and (month.year, month.month) >= (was.year, was.month)
        ]
        if not behind:
            return []
        named = ", ".join(f"{payer} (last in {month:%b %Y})" for payer, month in behind[:5])
        more = f" and {len(behind) - 5} more" if len(behind) > 5 else ""
        return [
            UploadWarning(
                "OTHER_PAYERS_BEHIND",
                f"Its claims were decided up to {last}, the customer's latest decision, but "
                f"{len(behind)} other {'payer has' if len(behind) == 1 else 'payers have'} "
                f"none decided in {cutoff:%B %Y} or since: "
                "detection compares the weeks up to the latest decision, so it cannot test "
                f"them until their later claims are uploaded: {named}{more}",
            )
        ]

    @property
    def claims_accepted(self) -> int:
        """The distinct claims the accepted rows make (an 835 claim is one row)."""
        if not self.claim_lines:
            return self.accepted
        return self._claims_left + self._reversal_claims

    async def _assemble_pieces(self, cursor: Any) -> int:
        """Combine each staged CSV claim piece with the other pieces of its claim id into the
        claim, staged in the rest in their place; refuse the claim id's lines if they name
        more than one payer (or are too many), taking its written pieces back out. Returns
        how many combined claims replace a piece written to ingest.claims."""
        if not self._pieces_staged:
            return 0
        for table in ("upload_pieces", "upload_lookups", "upload_lines"):
            await cursor.execute(f"ANALYZE {table}")
        assembly = PieceAssembly(self._encoder, ParseLimits().max_claim_lines)
        parameters = {"customer": self._customer, "upload": self._upload_id}
        async with self._raw.cursor(name="upload_pieces_in_order") as pieces:
            # The plan is made when the cursor is declared.
            await cursor.execute("SET LOCAL enable_nestloop = off")
            await pieces.execute(_PIECES_IN_ORDER, parameters)
            await cursor.execute("SET LOCAL enable_nestloop = on")
            while rows := await pieces.fetchmany(_PIECES_PER_FETCH):
                await self._write_assembled(cursor, await asyncio.to_thread(assembly.read, rows))
        await self._write_assembled(cursor, assembly.close())
        # The first pieces in the rest were read; the claims they are part of replace them.
        await cursor.execute(
            "DELETE FROM upload_rest WHERE status <> 'REVERSED' "
            "AND claim_uid IN (SELECT claim_uid FROM upload_lookups)"
        )
        await cursor.execute("INSERT INTO upload_rest SELECT * FROM upload_combined")
        self._claims_left -= assembly.pieces_combined + assembly.pieces_refused
        self._claims_refused = assembly.pieces_refused > 0
        return assembly.written_replaced

    async def _note_what_is_kept(self, cursor: Any) -> None:
        """The decision dates and payers of the claims the upload keeps. Claims whose lines lay
        apart were combined at the end (a claim's decision date is its latest line's), some
        maybe refused: their dates and payers are read back from what the upload holds
        before it is merged (its new claims but the pieces replaced, and the rest staged)."""
        self.decision_dates = self._encoder.decision_dates
        if not self._pieces_staged:
            return
        # A first piece written to ingest.claims is replaced by its claim, staged in the rest.
        parameters = {"customer": self._customer, "upload": self._upload_id}
        await cursor.execute("ANALYZE upload_combined")
        self.decision_dates = await self._kept_decision_dates(cursor, parameters)
        if self._claims_refused:
            # A payer named only by refused lines is none of the upload's, nor, when the
            # upload first saw it, one of the customer's.
            await cursor.execute(
                f"WITH kept AS ({_KEPT}), gone AS (DELETE FROM upload_payers u WHERE NOT EXISTS "
                "(SELECT FROM kept WHERE kept.payer_uid = u.payer_uid "
                "AND kept.status <> 'REVERSED') RETURNING u.payer_uid) "
                "DELETE FROM ingest.payers p USING gone WHERE p.customer_id = %(customer)s "
                "AND p.payer_uid = gone.payer_uid AND p.first_seen_time = now()",
                parameters,
            )

    async def _kept_decision_dates(
        self, cursor: Any, parameters: dict[str, Any]
    ) -> tuple[dt.date, dt.date] | None:
        """The first and last decision dates of the claims kept (`_kept`). Every kept claim is
        decided within the dates of the lines the file held (the encoder's): when kept claims
        are still decided on both, those are the answer, found among the claims of those two
        days instead of every claim the upload wrote."""
        seen = self._encoder.decision_dates
        if seen is None:
            return None
        await cursor.execute(_KEPT_ON_DAYS, {**parameters, "first": seen[0], "last": seen[1]})
        if all(await cursor.fetchone()):
            return seen
        await cursor.execute(f"SELECT min(decision_date), max(decision_date) FROM ({_KEPT}) k",
                             parameters)  # fmt: skip
        first, last = await cursor.fetchone()
        return None if first is None else (first, last)

    async def _write_assembled(self, cursor: Any, assembled: Assembled) -> None:
        if assembled.claims:
            async with cursor.copy(_COPY_COMBINED) as copy:
                await copy.write("".join(assembled.claims).encode())
        if assembled.rejections:
            self._note_rejections(assembled.rejections)
            self.accepted -= len(assembled.rejections)
            async with cursor.copy(_COPY_REJECTIONS) as copy:
                await copy.write(self._encoder.rejection_lines(assembled.rejections).encode())
        if assembled.refused_written:
            await cursor.execute(
                recording_changes(
                    "DELETE FROM ingest.claims WHERE customer_id = %s AND upload_id = %s "
                    "AND claim_uid = ANY(%s)",
                    ("old",),
                ),
                (self._customer, self._upload_id, assembled.refused_written),
            )

    async def record_failure(self, facts: UploadFacts, problem: str) -> Outcome:
        """A file that could not be read at all: recorded as FAILED with why, nothing else
        kept (unless the same request id already made an upload)."""
        await self.end_copy()
        async with self._raw.cursor() as cursor:
            await self._undo(cursor)
            if facts.request_id:
                await cursor.execute(
                    "SELECT upload_id FROM ingest.uploads WHERE customer_id = %s "
                    "AND request_id = %s",
                    (facts.customer, facts.request_id),
                )
                earlier = await cursor.fetchone()
                if earlier is not None:
                    return Outcome(earlier[0], repeated=True, failed=False, first_problems=[])
            self.accepted = 0
            self.rejected_lines.clear()
            await self._insert_upload(
                cursor, facts, "FAILED", updated=0, warnings=facts.warnings, error=problem
            )
        return Outcome(facts.upload_id, False, True, [])

    async def _take_back_new_claims(self, cursor: Any) -> None:
        """Remove what the batches wrote of a failed upload: its new claims (stored claims
        and statistics are only changed at the end), and payers first seen in it."""
        await cursor.execute(
            "DELETE FROM ingest.claims WHERE customer_id = %s AND upload_id = %s",
            (self._customer, self._upload_id),
        )
        await cursor.execute(
            "DELETE FROM ingest.payers p USING upload_payers u WHERE p.customer_id = %s "
            "AND p.payer_uid = u.payer_uid AND p.first_seen_time = now()",
            (self._customer,),
        )
        await discard_counts(cursor)

    async def _merge_rest(self, cursor: Any) -> tuple[int, int]:
        """Reversals, claims that were already stored, payer list, statistics and payer
        counts; returns (claims updated, reversals that matched nothing)."""
        customer = self._customer
        await cursor.execute("ANALYZE upload_rest")
        # Reversals cancel the claim with the payer's claim control number they name; not
        # a claim this upload itself wrote.
        reversed_count = (
            await without_nested_loops(
                cursor,
                recording_changes(
                    "UPDATE ingest.claims c SET status = 'REVERSED', denied = false, "
                    "partially_denied = false, upload_id = %(upload)s, update_time = now() "
                    "FROM upload_rest s WHERE s.status = 'REVERSED' "
                    "AND c.customer_id = %(customer)s AND c.payer_key = s.payer_key "
                    "AND c.payer_claim_control_number = s.payer_claim_control_number "
                    "AND s.payer_claim_control_number <> '' AND c.status <> 'REVERSED' "
                    "AND c.upload_id <> %(upload)s"
                ),
                {"customer": customer, "upload": self._upload_id},
            )
            // 2
        )
        # The reversals' claims (the lines of one are staged apart when they lie apart), the
        # payer claim numbers they name (one claim each), and those that name none.
        await cursor.execute(
            "SELECT count(DISTINCT claim_uid), count(DISTINCT (payer_key, "
            "payer_claim_control_number)) FILTER (WHERE payer_claim_control_number <> ''), "
            "count(DISTINCT claim_uid) FILTER (WHERE payer_claim_control_number = '') "
            "FROM upload_rest WHERE status = 'REVERSED'"
        )
        self._reversal_claims, named, unnamed = await cursor.fetchone()
        unmatched = max(named - reversed_count, 0) + unnamed
        replaced_before = await _replaced_versions(cursor)
        # Claims that may be stored: a newer adjudication replaces an older one, an older
        # file changes nothing; a claim this upload wrote is replaced by its later row in
        # the file, or by the claim its lines combine into (which starts on its line); a
        # claim not stored after all goes in. Each is found by its key, as a conflict,
        # whatever the planner believes.
        await cursor.execute(
            recording_changes(
                f"INSERT INTO ingest.claims AS c ({_CLAIM_COLUMN_LIST}) "
                f"SELECT {_CLAIM_COLUMN_LIST} FROM (SELECT DISTINCT ON (claim_uid) * "
                "FROM upload_rest WHERE status <> 'REVERSED' "
                "ORDER BY claim_uid, source_line DESC) u "
                f"ON CONFLICT (customer_id, claim_uid) DO UPDATE SET {_CLAIM_UPDATES}, "
                "update_time = now() "
                "WHERE CASE WHEN c.upload_id = %(upload)s "
                "THEN excluded.source_line >= c.source_line "
                "ELSE c.decision_date IS NULL OR c.status = 'REVERSED' "
                "OR excluded.decision_date >= c.decision_date END"
            ),
            {"upload": self._upload_id},
        )
        updated = await _replaced_versions(cursor) - replaced_before
        await cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT p.canonical_payer ORDER BY p.canonical_payer), "
            "'{}') FROM ingest.payers p JOIN upload_payers u "
            "ON p.customer_id = %s AND p.payer_uid = u.payer_uid",
            (customer,),
        )
        self.payers = list((await cursor.fetchone())[0])
        await count_in(cursor)
        await apply_counts(cursor, customer, self._packed_months, narrow=self._narrow)
        return updated + reversed_count, unmatched

    async def _insert_upload(
        self,
        cursor: Any,
        facts: UploadFacts,
        state: str,
        *,
        updated: int,
        warnings: list[UploadWarning],
        error: str = "",
    ) -> None:
        stored_warnings = [
            {"code": w.code, "message": w.message, "lineNumber": w.line_number}
            for w in warnings[:MAX_STORED_WARNINGS]
        ]
        if len(warnings) > MAX_STORED_WARNINGS:
            stored_warnings.append(
                {
                    "code": "MORE_WARNINGS",
                    "message": f"{len(warnings) - MAX_STORED_WARNINGS} more warnings",
                }
            )
        status = None
        if state == "FAILED":
            message = error or failure_message(self.accepted, self.first_rejections)
            status = {"code": 3, "message": message}
        await cursor.execute(
            "INSERT INTO ingest.uploads (customer_id, upload_id, state, format, mode, file_name, "
            "size_bytes, sha256, request_id, creator, rows_read, rows_accepted, claims_accepted, "
            "rows_rejected, rows_updated, first_decision_date, last_decision_date, payers, "
            "warnings, error, column_map, finish_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
            (
                facts.customer, facts.upload_id, state, facts.format, facts.mode, facts.file_name,
                facts.size_bytes, facts.sha256 if state != "FAILED" else None, facts.request_id,
                facts.creator, facts.rows_read, self.accepted if state != "FAILED" else 0,
                self.claims_accepted if state != "FAILED" else 0,
                len(self.rejected_lines), updated, *(self.decision_dates or (None, None)),
                self.payers if state != "FAILED" else [],
                json.dumps(stored_warnings), json.dumps(status) if status else None,
                json.dumps(facts.column_map) if facts.column_map else None,
            ),
        )  # fmt: skip


# An upload that brings the customer's latest decision this far past every claim of some
# other payer warns of it (`OTHER_PAYERS_BEHIND`): detection's current window (30 days by
# default) to the latest decision holds none of theirs.
BEHIND_DAYS = 30
# The latest decision of the customer's uploads before this one, and each payer not in this
# upload (`mine`) none of whose claims (as its statistics' months hold them, this upload's
# counted) were decided in the month of `cutoff` or after, with its last month, earliest
# first; one row of NULL payer when no payer is.
_PAYERS_BEHIND = """
WITH before AS (
    SELECT max(last_decision_date) AS day FROM ingest.uploads
    WHERE customer_id = %(customer)s AND state = 'SUCCEEDED'
), others AS (
    SELECT payer, max(month) AS month FROM ingest.daily_stat_months
    WHERE customer_id = %(customer)s AND NOT payer = ANY(%(mine)s::text[])
    GROUP BY payer
)
SELECT before.day, others.payer, others.month
FROM before LEFT JOIN others ON others.month < date_trunc('month', %(cutoff)s::date)::date
ORDER BY others.month, others.payer
"""

# A customer's claims, uploads or data state changed (payload: the customer); see
# runtime.notified_cache.
CHANGES_CHANNEL = "ingest_changes"


async def lock_customer(cursor: Any, customer: str) -> None:
    """One writer of a customer's claims at a time (uploads, deletions, payer remaps,
    retention), until the transaction ends: statistics and duplicate checks stay exact, and
    nobody else adds the claims an upload found missing. The customer's data version moves
    on with the transaction (`ingest.data_versions`, read by `GetDataState`), and every
    process keeping reads of the customer's data is told when it commits
    (`CHANGES_CHANNEL`)."""
    await cursor.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ingest.upload'), hashtext(%s)), pg_notify(%s, %s)",
        (customer, CHANGES_CHANNEL, customer),
    )
    await cursor.execute(
        "INSERT INTO ingest.data_versions (customer_id, version, update_time) "
        "VALUES (%s, 1, now()) ON CONFLICT (customer_id) DO UPDATE "
        "SET version = ingest.data_versions.version + 1, update_time = now()",
        (customer,),
    )


async def delete_upload_claims(cursor: Any, customer: str, upload_id: str, *, narrow: bool) -> int:
    """Remove the claims an upload last set and its rejections, and take those claims out of
    the statistics and payer counts; returns how many claims went."""
    for statement in COUNT_TABLES:
        await cursor.execute(statement)
    await cursor.execute(
        recording_changes(
            "DELETE FROM ingest.claims WHERE customer_id = %s AND upload_id = %s", ("old",)
        ),
        (customer, upload_id),
    )
    removed = int(cursor.rowcount)
    await count_in(cursor)
    await apply_counts(cursor, customer, narrow=narrow)
    await cursor.execute(
        "DELETE FROM ingest.upload_rejections WHERE customer_id = %s AND upload_id = %s",
        (customer, upload_id),
    )
    return removed


async def purge_claims(
    cursor: Any, customer: str, before: dt.date, limit: int, *, narrow: bool
) -> int:
    """Remove up to `limit` of the customer's claims decided before `before` (undecided ones
    by their submission, else service date; a claim said decided on the lowest date, 1 January
    of year 1, with them) and take them out of the statistics and payer counts, oldest first;
    returns how many went."""
    for statement in COUNT_TABLES:
        await cursor.execute(statement)
    await cursor.execute(
        recording_changes(
            # Both halves read the decision order's index (`store.DECISION_DAY`): the decided
            # claims from its lowest decision date up, the pending ones where they sort, as
            # the lowest date.
            "DELETE FROM ingest.claims WHERE customer_id = %(customer)s AND claim_uid IN ("
            "SELECT claim_uid FROM ("
            f"(SELECT claim_uid FROM ingest.claims WHERE customer_id = %(customer)s"
            f" AND {DECISION_DAY_SQL} > '0001-01-01' AND {DECISION_DAY_SQL} < %(before)s"
            f" ORDER BY {DECISION_DAY_SQL} LIMIT %(limit)s)"
            " UNION ALL "
            "(SELECT claim_uid FROM ingest.claims WHERE customer_id = %(customer)s"
            f" AND {DECISION_DAY_SQL} = '0001-01-01'"
            " AND coalesce(submitted_date, service_date, decision_date) < %(before)s"
            " LIMIT %(limit)s)"
            ") oldest LIMIT %(limit)s)",
            ("old",),
        ),
        {"customer": customer, "before": before, "limit": limit},
    )
    removed = int(cursor.rowcount)
    await count_in(cursor)
    await apply_counts(cursor, customer, narrow=narrow)
    return removed


# What ingest's outbox tells drift: an upload completed, or the customer's claims changed
# otherwise (each asks for a detection run).
UPLOAD_COMPLETED = "UploadCompleted"
DATA_CHANGED = "DataChanged"


async def record_event(
    cursor: Any,
    customer: str,
    event_type: str,
    payload: dict[str, Any],
    trace_context: dict[str, str],
) -> None:
    """An event in ingest's outbox, committed with the change it tells of."""
    await cursor.execute(
        "INSERT INTO ingest.outbox (customer_id, event_id, event_type, payload, trace_context) "
        "VALUES (%s, %s, %s, %s, %s)",
        (customer, uuid.uuid4(), event_type, json.dumps(payload), json.dumps(trace_context)),
    )


async def data_changed(cursor: Any, customer: str, change: str) -> None:
    """Ask for a detection run after the customer's claims changed otherwise than by an
    upload: the findings of the data as it was must not stand. `change` (`upload-deleted:u_1`)
    begins the run's request id, which a suffix makes the run's own."""
    request_id = f"{change}:{uuid.uuid4().hex[:12]}"
    await record_event(
        cursor,
        customer,
        DATA_CHANGED,
        {"customer": customer, "request_id": request_id},
        trace_carrier(),
    )


async def remap_payers(cursor: Any, customer: str, *, narrow: bool) -> bool:
    """Re-resolve every payer of the customer against the mappings; move the claims and
    statistics of those whose canonical payer changed. Whether any payer's did."""
    await cursor.execute(
        "CREATE TEMPORARY TABLE remapped ON COMMIT DROP AS "
        "SELECT p.payer_uid, p.canonical_payer AS old_payer, "
        "coalesce(m.canonical_payer, p.directory_payer, p.raw_name) AS new_payer, "
        "m.mapping_id "
        "FROM ingest.payers p LEFT JOIN LATERAL ("
        + MAPPING_FOR_PAYER.format(name="p.name_key", raw_id="p.raw_id")
        + ") m ON true WHERE p.customer_id = %s",
        (customer, customer),
    )
    await cursor.execute(
        "UPDATE ingest.payers p SET canonical_payer = r.new_payer, mapping_id = r.mapping_id "
        "FROM remapped r WHERE p.customer_id = %s AND p.payer_uid = r.payer_uid "
        "AND (p.canonical_payer <> r.new_payer OR p.mapping_id IS DISTINCT FROM r.mapping_id)",
        (customer,),
    )
    for statement in COUNT_TABLES:
        await cursor.execute(statement)
    await cursor.execute(
        recording_changes(
            "UPDATE ingest.claims c SET payer = r.new_payer FROM remapped r "
            "WHERE c.customer_id = %s AND c.payer_uid = r.payer_uid "
            "AND r.old_payer <> r.new_payer"
        ),
        (customer,),
    )
    await count_in(cursor)
    await apply_counts(cursor, customer, narrow=narrow)
    await cursor.execute("SELECT EXISTS (SELECT FROM remapped WHERE old_payer <> new_payer)")
    moved = await cursor.fetchone()
    return bool(moved and moved[0])


def probes_primary_key(plan: dict[str, Any]) -> bool:
    """Whether a plan (EXPLAIN's JSON) finds claims through the primary key by claim uid, and
    reads nothing else of the table."""
    nodes, by_key = [plan], False
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", ()))
        if node["Node Type"] == "Seq Scan":
            return False
        if "Index Name" in node:
            if node["Index Name"] != "claims_pkey":
                return False
            by_key = by_key or "claim_uid" in node.get("Index Cond", "")
    return by_key


async def _replaced_versions(cursor: Any) -> int:
    """How many claim versions the transaction's writes have replaced or removed so far."""
    await cursor.execute("SELECT count(*) FROM claim_changes WHERE sign = -1")
    return int((await cursor.fetchone())[0])


# The mapping that applies to a raw payer: one naming both its name and id wins over one
# naming only the id, which wins over one naming only the name.
MAPPING_FOR_PAYER = (
    "SELECT m.canonical_payer, m.mapping_id FROM ingest.payer_mappings m "
    "WHERE m.customer_id = %s AND (m.name_key = '' OR m.name_key = {name}) "
    "AND (m.raw_payer_id = '' OR m.raw_payer_id = {raw_id}) "
    "ORDER BY (m.raw_payer_id <> '') DESC, (m.name_key <> '') DESC LIMIT 1"
)


def failure_message(accepted: int, problems: list[Rejection]) -> str:
    """Why an upload failed, with its first problems, as a person would want to read it."""
    first = "; ".join(
        f"line {p.line_number}" + (f" ({p.column})" if p.column else "") + f": {p.reason}"
        for p in problems[:5]
    )
    if accepted == 0:
        return (
            f"no valid claim in the file. First problems: {first}"
            if first
            else "no claim in the file"
        )
    return f"rejected rows in an ALL_OR_NOTHING upload. First problems: {first}"
