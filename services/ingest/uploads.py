"""Loading one upload into PostgreSQL: all of it in one transaction, or nothing.

Rows stream into a temporary staging table with COPY as the file is parsed. At the end, under
a per-customer lock, the staged rows are merged set-wise: rejections recorded, reversals
applied, claims upserted (a newer adjudication updates a known claim, never duplicates it),
payers kept, the daily statistics of exactly the touched (payer, day) cells recomputed, and
the upload row and its outbox event written. A crash at any point leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncCopy
from sqlalchemy.ext.asyncio import AsyncConnection as SaConnection

from services.ingest.code_groups import code_group
from services.ingest.counting import (
    COUNT_TABLES,
    apply_counts,
    count_in,
    counting_in,
    discard_counts,
    recording_changes,
    version,
)
from services.ingest.denials import denial_codes
from services.ingest.parsing import Batch
from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    Rejection,
    UploadWarning,
)

MAX_STORED_WARNINGS = 100

_STAGING_COLUMNS = (
    "kind", "seq", "source_line", "segment_number",
    "claim_id", "name_key", "payer_raw_name", "payer_raw_id", "status", "denied",
    "partially_denied", "procedure_codes", "code_group", "service_date", "submitted_date",
    "decision_date", "decision_days", "billed_cents", "allowed_cents", "paid_cents",
    "patient_responsibility_cents", "adjustments", "denial_codes", "control_number",
    "column_name", "raw_value", "reason", "code",
)  # fmt: skip

_CREATE_BATCH = """
CREATE TEMPORARY TABLE upload_batch (
    kind "char" NOT NULL, seq bigint NOT NULL, source_line bigint, segment_number bigint,
    claim_id text, name_key text, payer_raw_name text, payer_raw_id text, status text,
    denied boolean, partially_denied boolean, procedure_codes text[], code_group text,
    service_date date, submitted_date date, decision_date date, decision_days bigint,
    billed_cents bigint, allowed_cents bigint, paid_cents bigint,
    patient_responsibility_cents bigint, adjustments jsonb, denial_codes text[],
    control_number text, column_name text, raw_value text, reason text, code text,
    -- Computed by PostgreSQL while the rows stream in, not in the merge after them.
    claim_uid text GENERATED ALWAYS AS (substr(md5(name_key || '|' || claim_id), 1, 20)) STORED,
    payer_uid text GENERATED ALWAYS AS (substr(md5(name_key || '|' || payer_raw_id), 1, 16))
        STORED
) ON COMMIT DROP
"""
_COPY_BATCH = f"COPY upload_batch ({', '.join(_STAGING_COLUMNS)}) FROM STDIN"
_CLAIM_COLUMNS = (
    "customer_id, claim_uid, claim_id, payer_key, payer_uid, payer, payer_raw_name, "
    "payer_raw_id, status, denied, partially_denied, procedure_codes, code_group, service_date, "
    "submitted_date, decision_date, decision_days, billed_cents, allowed_cents, paid_cents, "
    "patient_responsibility_cents, adjustments, denial_codes, payer_claim_control_number, "
    "upload_id, source_line"
)
# An upsert's update of every column but the key: `(claim_id, ...) = (excluded.claim_id, ...)`.
_UPDATED_COLUMNS = [column.strip() for column in _CLAIM_COLUMNS.split(",")[2:]]
_CLAIM_UPDATES = (
    f"({', '.join(_UPDATED_COLUMNS)}) = "
    f"({', '.join('excluded.' + column for column in _UPDATED_COLUMNS)})"
)
# A staged claim `u` of payer `p` as the values of _CLAIM_COLUMNS after the first two.
_CLAIM_VALUES = (
    "u.claim_id, u.name_key, u.payer_uid, p.canonical_payer, u.payer_raw_name, "
    "u.payer_raw_id, u.status, u.denied, u.partially_denied, u.procedure_codes, "
    "u.code_group, u.service_date, u.submitted_date, u.decision_date, u.decision_days, "
    "u.billed_cents, u.allowed_cents, u.paid_cents, u.patient_responsibility_cents, "
    "u.adjustments, u.denial_codes, u.control_number, %(upload)s, u.source_line"
)
# The temporary tables of one upload: the batch being staged, what the end must see to
# (`upload_rest`), the payers seen, and the counting of statistics and payer counts.
_CREATE_UPLOAD_TABLES = (
    _CREATE_BATCH,
    "CREATE TEMPORARY TABLE upload_rest (LIKE upload_batch) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE upload_payers (payer_uid text PRIMARY KEY, name_key text, "
    "payer_raw_id text, payer_raw_name text) ON COMMIT DROP",
    *COUNT_TABLES,
)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPACES = re.compile(r"\s+")
_NULL = "\\N"


@functools.lru_cache(maxsize=4096)
def name_key(raw_name: str) -> str:
    """How payer names are compared: case and spacing do not matter."""
    return _SPACES.sub(" ", raw_name.strip()).upper()


@functools.lru_cache(maxsize=4096)
def display_name(raw_name: str) -> str:
    return _SPACES.sub(" ", raw_name.strip())


# COPY text format, written directly: this runs once per row of files with millions of rows.
def _text(value: str) -> str:
    if "\\" not in value and value.isprintable():
        return value  # nothing to escape: the common case, checked without copying
    return value.translate(_COPY_ESCAPES)


@functools.lru_cache(maxsize=4096)
def _payer_columns(raw_name: str) -> str:
    """The staged `name_key` and `payer_raw_name` of a payer name."""
    return _text(name_key(raw_name)) + "\t" + _text(display_name(raw_name))


@functools.lru_cache(maxsize=4096)
def _array(values: tuple[str, ...]) -> str:
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return _text("{" + ",".join(f'"{v}"' for v in quoted) + "}")


@functools.lru_cache(maxsize=4096)
def _procedure_columns(codes: tuple[str, ...]) -> str:
    """The staged `procedure_codes` and `code_group` of a claim's codes."""
    return _array(codes) + "\t" + (code_group(codes[0]) if codes else "")


@functools.lru_cache(maxsize=4096)
def _adjustments_json(adjustments: tuple[Adjustment, ...]) -> str:
    # Group and reason codes are validated alphanumerics, so they need no JSON escaping.
    return (
        "["
        + ",".join(
            f'{{"group":"{a.group_code}","reason":"{a.reason_code}",'
            f'"cents":{a.amount_cents},"line":{a.line_number}}}'
            for a in adjustments
        )
        + "]"
    )


def _claim_line(claim: ClaimRecord, seq: int) -> str:
    decided = claim.decision_date
    started = claim.submitted_date or claim.service_date
    days = _NULL
    if decided is not None and started is not None and decided >= started:
        days = str((decided - started).days)
    allowed = claim.allowed_cents
    return (
        f"C\t{seq}\t{claim.source_line}\t0\t{_text(claim.claim_id)}\t"
        f"{_payer_columns(claim.payer_name)}\t{_text(claim.payer_id)}\t{claim.status.value}\t"
        f"{'t' if claim.denied else 'f'}\t{'t' if claim.partially_denied else 'f'}\t"
        f"{_procedure_columns(claim.procedure_codes)}\t{_day(claim.service_date)}\t"
        f"{_day(claim.submitted_date)}\t{_day(decided)}\t{days}\t{claim.billed_cents}\t"
        f"{_NULL if allowed is None else allowed}\t{claim.paid_cents}\t"
        f"{claim.patient_responsibility_cents}\t{_text(_adjustments_json(claim.adjustments))}\t"
        f"{_array(tuple(denial_codes(claim)))}\t{_text(claim.payer_claim_control_number)}\t"
        "\\N\t\\N\t\\N\t\\N"
    )


def _day(value: dt.date | None) -> str:
    return _NULL if value is None else value.isoformat()


def _rejection_line(rejection: Rejection, seq: int) -> str:
    return "\t".join(
        (
            "R", str(seq), str(rejection.line_number), str(rejection.segment_number),
            *(["\\N"] * 20),
            _text(rejection.column), _text(rejection.raw_value), _text(rejection.reason),
            _text(rejection.code),
        )
    )  # fmt: skip


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


@dataclass(frozen=True)
class Staged:
    """Encoded rows of one chunk, and, when the batch they end is to be merged, the
    positions of its claims that a later row of the batch replaces."""

    data: bytes
    merge_superseded: list[int] | None


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

    Rows are staged with COPY into `upload_batch`. Every `merge_every` staged claims (and at
    the end) the batch is merged under the customer's lock: its new claims inserted, the
    rest (claims already stored, reversals) kept in `upload_rest` for the end. So PostgreSQL
    writes claims while the next part of the file is parsed. All of it happens after a
    savepoint, so a file that fails half-way, or turns out to repeat an earlier upload,
    leaves nothing behind; an upload that fails at the end (no valid row, or a rejected row
    in ALL_OR_NOTHING) takes its new claims back out and keeps only its rejections.
    """

    def __init__(
        self, raw: AsyncConnection[Any], customer: str, upload_id: str, merge_every: int
    ) -> None:
        self._raw = raw
        self._customer = customer
        self._upload_id = upload_id
        self._merge_every = merge_every
        self._seq = 0
        # The batch being staged: its claims' positions, and those a later row replaces.
        self._batch_claims: dict[tuple[str, str], int] = {}
        self._superseded: list[int] = []
        self._locked = False
        # One COPY stays open while the file streams, so PostgreSQL takes in rows while the
        # next chunk is parsed.
        self._copy: AsyncCopy | None = None
        self._copying = contextlib.AsyncExitStack()
        self.accepted = 0
        self.reversals = 0
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
    ) -> UploadWriter:
        """`merge_every`: how many claims are staged before they are merged."""
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.cursor() as cursor:
            for statement in _CREATE_UPLOAD_TABLES:
                await cursor.execute(statement)
            await cursor.execute("SAVEPOINT upload_start")
        return cls(raw, customer, upload_id, merge_every)

    def encode(self, batch: Batch) -> Staged:
        """The batch's rows as COPY text, and whether the staged batch is to be merged after
        them: CPU work, which may run in a worker thread (one batch at a time)."""
        rows: list[str] = []
        seen = self._batch_claims
        for claim in batch.claims:
            self._seq += 1
            rows.append(_claim_line(claim, self._seq))
            if claim.status is ClaimStatus.REVERSED:
                self.reversals += 1
            else:
                # A claim twice in a batch: the later row wins.
                key = (name_key(claim.payer_name), claim.claim_id)
                earlier = seen.get(key)
                if earlier is not None:
                    self._superseded.append(earlier)
                seen[key] = self._seq
            if claim.decision_date is not None:
                self._saw_decision(claim.decision_date)
        for rejection in batch.rejections:
            self._seq += 1
            rows.append(_rejection_line(rejection, self._seq))
            self.rejected_lines.add(rejection.line_number)
            if len(self.first_rejections) < 10:
                self.first_rejections.append(rejection)
        self.accepted += len(batch.claims)
        data = ("\n".join(rows) + "\n").encode() if rows else b""
        if len(seen) + len(self._superseded) < self._merge_every:
            return Staged(data, None)
        superseded, self._superseded, self._batch_claims = self._superseded, [], {}
        return Staged(data, superseded)

    def _saw_decision(self, day: dt.date) -> None:
        if self.decision_dates is None:
            self.decision_dates = (day, day)
        elif not self.decision_dates[0] <= day <= self.decision_dates[1]:
            self.decision_dates = (
                min(day, self.decision_dates[0]),
                max(day, self.decision_dates[1]),
            )

    async def send(self, data: bytes) -> None:
        """Stage encoded rows."""
        if not data:
            return
        if self._copy is None:
            cursor = await self._copying.enter_async_context(self._raw.cursor())
            self._copy = await self._copying.enter_async_context(cursor.copy(_COPY_BATCH))
        await self._copy.write(data)

    async def load(self, staged: Staged) -> None:
        """Stage what `encode` made, and merge the batch when `encode` says so."""
        await self.send(staged.data)
        if staged.merge_superseded is not None:
            await self.end_copy()
            async with self._raw.cursor() as cursor:
                await self._merge_batch(cursor, staged.merge_superseded)

    async def end_copy(self, error: BaseException | None = None) -> None:
        """Finish the COPY (or abort it, with `error`) so the connection takes statements."""
        self._copy = None
        if error is None:
            await self._copying.aclose()
        else:
            await self._copying.__aexit__(type(error), error, error.__traceback__)

    async def _lock(self, cursor: Any) -> None:
        # One upload at a time per customer: statistics and duplicate checks stay exact, and
        # nobody else adds the claims this upload found missing.
        if not self._locked:
            await cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ingest.upload'), hashtext(%s))",
                (self._customer,),
            )
            self._locked = True

    async def _undo(self, cursor: Any) -> None:
        """Back to the savepoint: no claim, rejection or statistic of this upload stays."""
        await cursor.execute("ROLLBACK TO SAVEPOINT upload_start")
        self._locked = False  # the lock may have been taken after the savepoint
        await self._lock(cursor)

    async def finish(self, facts: UploadFacts, *, all_or_nothing: bool) -> Outcome:
        """Merge what is left and write the upload; the caller commits."""
        await self.end_copy()
        async with self._raw.cursor() as cursor:
            await self._lock(cursor)
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
            await self._merge_batch(cursor, self._superseded)
            failed = self.accepted == 0 or (all_or_nothing and bool(self.rejected_lines))
            if failed:
                await self._take_back_new_claims(cursor)
                await self._insert_upload(
                    cursor, facts, "FAILED", updated=0, warnings=facts.warnings
                )
                return Outcome(facts.upload_id, False, True, self.first_rejections)
            warnings = list(facts.warnings)
            updated, unmatched = await self._merge_rest(cursor)
            if unmatched:
                warnings.append(
                    UploadWarning(
                        "UNMATCHED_REVERSAL",
                        f"{unmatched} reversal(s) name a payer claim number no stored claim has",
                    )
                )
            await self._insert_upload(
                cursor, facts, "SUCCEEDED", updated=updated, warnings=warnings
            )
            await cursor.execute(
                "INSERT INTO ingest.outbox (customer_id, event_id, event_type, payload, "
                "trace_context) VALUES (%s, %s, 'UploadCompleted', %s, %s)",
                (
                    facts.customer,
                    uuid.uuid4(),
                    json.dumps({"customer": facts.customer, "upload_id": facts.upload_id}),
                    json.dumps(facts.trace_context),
                ),
            )
        return Outcome(facts.upload_id, False, False, [])

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
            self.decision_dates = None
            self.rejected_lines.clear()
            await self._insert_upload(
                cursor, facts, "FAILED", updated=0, warnings=facts.warnings, error=problem
            )
        return Outcome(facts.upload_id, False, True, [])

    async def _keep_rejections(self, cursor: Any) -> None:
        await cursor.execute(
            "INSERT INTO ingest.upload_rejections (customer_id, upload_id, seq, line_number, "
            "segment_number, column_name, raw_value, reason, code) "
            "SELECT %s, %s, seq, source_line, segment_number, column_name, raw_value, "
            "reason, code FROM upload_batch WHERE kind = 'R'",
            (self._customer, self._upload_id),
        )

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

    async def _merge_batch(self, cursor: Any, superseded: list[int]) -> None:
        """Insert the batch's new claims (but those a later row of the batch replaces),
        counting them in; keep claims already stored, and reversals, in `upload_rest` for
        the end; empty the batch.

        Shaped so that any plan is linear in the batch: the planner has no statistics of a
        temporary table (gathering them for every batch costs more than the merge), and a
        customer's stored claims are probed by key, never scanned."""
        await self._lock(cursor)
        await self._keep_rejections(cursor)
        parameters = {
            "customer": self._customer,
            "upload": self._upload_id,
            "superseded": superseded,
        }
        claims = (
            "FROM upload_batch u WHERE u.kind = 'C' AND u.status <> 'REVERSED' "
            "AND u.seq NOT IN (SELECT unnest(%(superseded)s::bigint[]))"
        )
        await cursor.execute(
            "WITH seen AS (INSERT INTO upload_payers "
            "SELECT DISTINCT ON (payer_uid) payer_uid, name_key, payer_raw_id, payer_raw_name "
            f"{claims} ORDER BY payer_uid, payer_raw_name "
            "ON CONFLICT (payer_uid) DO NOTHING RETURNING *) "
            "INSERT INTO ingest.payers AS p (customer_id, payer_uid, name_key, raw_name, raw_id, "
            "canonical_payer, mapping_id) "
            "SELECT %(customer)s, u.payer_uid, u.name_key, u.payer_raw_name, "
            "u.payer_raw_id, coalesce(m.canonical_payer, u.payer_raw_name), m.mapping_id "
            "FROM seen u LEFT JOIN LATERAL ("
            + MAPPING_FOR_PAYER.replace("%s", "%(customer)s").format(
                name="u.name_key", raw_id="u.payer_raw_id"
            )
            + ") m ON true "
            "ON CONFLICT (customer_id, payer_uid) DO UPDATE SET last_seen_time = now()",
            parameters,
        )
        # New claims go in, counted in by the same statement; a claim already stored is
        # found by the insert itself (its key conflicts), and kept for the end.
        await _without_nested_loops(
            cursor,
            f"WITH batch AS MATERIALIZED (SELECT * {claims}), "
            f"written AS (INSERT INTO ingest.claims ({_CLAIM_COLUMNS}) "
            f"SELECT %(customer)s, u.claim_uid, {_CLAIM_VALUES} FROM batch u "
            "JOIN ingest.payers p ON p.customer_id = %(customer)s AND p.payer_uid = u.payer_uid "
            "ON CONFLICT (customer_id, claim_uid) DO NOTHING "
            f"RETURNING new.claim_uid, 1 AS sign, {version('new')}), "
            "kept AS (INSERT INTO upload_rest SELECT * FROM upload_batch u "
            "WHERE u.kind = 'C' AND u.status = 'REVERSED' UNION ALL SELECT * FROM batch b "
            "WHERE NOT EXISTS (SELECT FROM written w WHERE w.claim_uid = b.claim_uid)), "
            + counting_in("written"),
            parameters,
        )
        await cursor.execute("TRUNCATE upload_batch")

    async def _merge_rest(self, cursor: Any) -> tuple[int, int]:
        """Reversals, claims that were already stored, payer list, statistics and payer
        counts; returns (claims updated, reversals that matched nothing)."""
        customer = self._customer
        await cursor.execute("ANALYZE upload_rest")
        # Reversals cancel the claim with the payer's claim control number they name; not
        # a claim this upload itself wrote.
        reversed_count = (
            await _without_nested_loops(
                cursor,
                recording_changes(
                    "UPDATE ingest.claims c SET status = 'REVERSED', denied = false, "
                    "partially_denied = false, upload_id = %(upload)s, update_time = now() "
                    "FROM upload_rest s WHERE s.status = 'REVERSED' "
                    "AND c.customer_id = %(customer)s AND c.payer_key = s.name_key "
                    "AND c.payer_claim_control_number = s.control_number "
                    "AND s.control_number <> '' AND c.status <> 'REVERSED' "
                    "AND c.upload_id <> %(upload)s"
                ),
                {"customer": customer, "upload": self._upload_id},
            )
            // 2
        )
        # Stored claims: a newer adjudication replaces an older one, an older file changes
        # nothing; a claim this upload wrote is replaced by its later row in the file. Each
        # is found by its key, as a conflict, whatever the planner believes.
        await cursor.execute(
            recording_changes(
                f"INSERT INTO ingest.claims AS c ({_CLAIM_COLUMNS}) "
                f"SELECT %(customer)s, u.claim_uid, {_CLAIM_VALUES} "
                "FROM (SELECT DISTINCT ON (claim_uid) * FROM upload_rest "
                "WHERE status <> 'REVERSED' ORDER BY claim_uid, seq DESC) u "
                "JOIN ingest.payers p "
                "ON p.customer_id = %(customer)s AND p.payer_uid = u.payer_uid "
                f"ON CONFLICT (customer_id, claim_uid) DO UPDATE SET {_CLAIM_UPDATES}, "
                "update_time = now() "
                "WHERE CASE WHEN c.upload_id = %(upload)s "
                "THEN excluded.source_line > c.source_line "
                "ELSE c.decision_date IS NULL OR c.status = 'REVERSED' "
                "OR excluded.decision_date >= c.decision_date END"
            ),
            {"customer": customer, "upload": self._upload_id},
        )
        updated = cursor.rowcount // 2
        await cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT p.canonical_payer ORDER BY p.canonical_payer), "
            "'{}') FROM ingest.payers p JOIN upload_payers u "
            "ON p.customer_id = %s AND p.payer_uid = u.payer_uid",
            (customer,),
        )
        self.payers = list((await cursor.fetchone())[0])
        await count_in(cursor)
        await apply_counts(cursor, customer)
        return updated + reversed_count, self.reversals - reversed_count

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
            "size_bytes, sha256, request_id, creator, rows_read, rows_accepted, rows_rejected, "
            "rows_updated, first_decision_date, last_decision_date, payers, warnings, error, "
            "finish_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, now())",
            (
                facts.customer, facts.upload_id, state, facts.format, facts.mode, facts.file_name,
                facts.size_bytes, facts.sha256 if state != "FAILED" else None, facts.request_id,
                facts.creator, facts.rows_read, self.accepted if state != "FAILED" else 0,
                len(self.rejected_lines), updated, *(self.decision_dates or (None, None)),
                self.payers if state != "FAILED" else [],
                json.dumps(stored_warnings), json.dumps(status) if status else None,
            ),
        )  # fmt: skip


async def _without_nested_loops(cursor: Any, statement: str, parameters: Any) -> int:
    """Run a statement that joins a customer's stored claims with nested loops off; returns
    its row count. The planner's statistics may not know the customer's claims yet (a new
    customer, or claims written earlier in this transaction): it would then expect one row
    and rescan them all for every row of the other side."""
    await cursor.execute("SET LOCAL enable_nestloop = off")
    await cursor.execute(statement, parameters)
    count = int(cursor.rowcount)
    await cursor.execute("SET LOCAL enable_nestloop = on")
    return count


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
