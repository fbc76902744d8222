"""Loading one upload into PostgreSQL: all of it in one transaction, or nothing.

Rows stream into a temporary staging table with COPY as the file is parsed. At the end, under
a per-customer lock, the staged rows are merged set-wise: rejections recorded, reversals
applied, claims upserted (a newer adjudication updates a known claim, never duplicates it),
payers kept, the daily statistics of exactly the touched (payer, day) cells recomputed, and
the upload row and its outbox event written. A crash at any point leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncConnection as SaConnection

from services.ingest.code_groups import code_group
from services.ingest.denials import denial_codes
from services.ingest.parsing import Batch
from services.ingest.records import ClaimRecord, Rejection, UploadWarning

MAX_STORED_WARNINGS = 100

_STAGING_COLUMNS = (
    "kind", "seq", "source_line", "segment_number",
    "claim_id", "name_key", "payer_raw_name", "payer_raw_id", "status", "denied",
    "partially_denied", "procedure_codes", "code_group", "service_date", "submitted_date",
    "decision_date", "decision_days", "billed_cents", "allowed_cents", "paid_cents",
    "patient_responsibility_cents", "adjustments", "denial_codes", "control_number",
    "column_name", "raw_value", "reason", "code",
)  # fmt: skip

_CREATE_STAGING = """
CREATE TEMPORARY TABLE upload_staging (
    kind "char" NOT NULL, seq bigint NOT NULL, source_line bigint, segment_number bigint,
    claim_id text, name_key text, payer_raw_name text, payer_raw_id text, status text,
    denied boolean, partially_denied boolean, procedure_codes text[], code_group text,
    service_date date, submitted_date date, decision_date date, decision_days bigint,
    billed_cents bigint, allowed_cents bigint, paid_cents bigint,
    patient_responsibility_cents bigint, adjustments jsonb, denial_codes text[],
    control_number text, column_name text, raw_value text, reason text, code text
) ON COMMIT DROP
"""
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def name_key(raw_name: str) -> str:
    """How payer names are compared: case and spacing do not matter."""
    return _SPACES.sub(" ", raw_name.strip()).upper()


@functools.lru_cache(maxsize=4096)
def display_name(raw_name: str) -> str:
    return _SPACES.sub(" ", raw_name.strip())


# COPY text format, written directly: this runs once per row of files with millions of rows.
def _text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def _optional(value: object) -> str:
    return "\\N" if value is None else str(value)


def _array(values: list[str] | tuple[str, ...]) -> str:
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return _text("{" + ",".join(f'"{v}"' for v in quoted) + "}")


def _adjustments_json(claim: ClaimRecord) -> str:
    # Group and reason codes are validated alphanumerics, so they need no JSON escaping.
    return (
        "["
        + ",".join(
            f'{{"group":"{a.group_code}","reason":"{a.reason_code}",'
            f'"cents":{a.amount_cents},"line":{a.line_number}}}'
            for a in claim.adjustments
        )
        + "]"
    )


def _claim_line(claim: ClaimRecord, seq: int) -> str:
    started = claim.submitted_date or claim.service_date
    days = (
        (claim.decision_date - started).days
        if claim.decision_date is not None and started is not None
        else None
    )
    primary = claim.procedure_codes[0] if claim.procedure_codes else ""
    return "\t".join(
        (
            "C", str(seq), str(claim.source_line), "0",
            _text(claim.claim_id), _text(name_key(claim.payer_name)),
            _text(display_name(claim.payer_name)), _text(claim.payer_id), claim.status.value,
            "t" if claim.denied else "f", "t" if claim.partially_denied else "f",
            _array(claim.procedure_codes), code_group(primary) if primary else "",
            _optional(claim.service_date), _optional(claim.submitted_date),
            _optional(claim.decision_date), _optional(days if days is None or days >= 0 else None),
            str(claim.billed_cents), _optional(claim.allowed_cents), str(claim.paid_cents),
            str(claim.patient_responsibility_cents), _text(_adjustments_json(claim)),
            _array(denial_codes(claim)), _text(claim.payer_claim_control_number),
            "\\N", "\\N", "\\N", "\\N",
        )
    )  # fmt: skip


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
class Outcome:
    """How the merge ended: the upload's id (an earlier one for a repeat), and whether it
    is a repeat of an earlier upload."""

    upload_id: str
    repeated: bool
    failed: bool
    first_problems: list[Rejection]


class UploadWriter:
    """Stages an upload's rows while the file streams, then merges them in one commit."""

    def __init__(self, connection: SaConnection, raw: AsyncConnection[Any]) -> None:
        self._connection = connection
        self._raw = raw
        self._seq = 0
        self.accepted = 0
        self.rejected_lines: set[int] = set()
        self.first_rejections: list[Rejection] = []
        self.payers: list[str] = []

    @classmethod
    async def open(cls, connection: SaConnection) -> UploadWriter:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.cursor() as cursor:
            await cursor.execute(_CREATE_STAGING)
        return cls(connection, raw)

    async def write(self, batch: Batch) -> None:
        rows: list[str] = []
        for claim in batch.claims:
            self._seq += 1
            rows.append(_claim_line(claim, self._seq))
        for rejection in batch.rejections:
            self._seq += 1
            rows.append(_rejection_line(rejection, self._seq))
            self.rejected_lines.add(rejection.line_number)
            if len(self.first_rejections) < 10:
                self.first_rejections.append(rejection)
        self.accepted += len(batch.claims)
        if not rows:
            return
        async with self._raw.cursor() as cursor:
            columns = ", ".join(_STAGING_COLUMNS)
            async with cursor.copy(f"COPY upload_staging ({columns}) FROM STDIN") as copy:
                await copy.write(("\n".join(rows) + "\n").encode())

    async def finish(self, facts: UploadFacts, *, all_or_nothing: bool) -> Outcome:
        """Merge the staged rows and write the upload; the caller commits."""
        async with self._raw.cursor() as cursor:
            # One merge at a time per customer: statistics and duplicate checks stay exact.
            await cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ingest.upload'), hashtext(%s))",
                (facts.customer,),
            )
            await cursor.execute(
                "SELECT upload_id FROM ingest.uploads WHERE customer_id = %s "
                "AND ((request_id IS NOT NULL AND request_id = %s) "
                "OR (sha256 = %s AND state <> 'FAILED')) ORDER BY create_time LIMIT 1",
                (facts.customer, facts.request_id, facts.sha256),
            )
            earlier = await cursor.fetchone()
            if earlier is not None:
                return Outcome(earlier[0], repeated=True, failed=False, first_problems=[])
            await cursor.execute(
                "INSERT INTO ingest.upload_rejections (customer_id, upload_id, seq, line_number, "
                "segment_number, column_name, raw_value, reason, code) "
                "SELECT %s, %s, seq, source_line, segment_number, column_name, raw_value, "
                "reason, code FROM upload_staging WHERE kind = 'R'",
                (facts.customer, facts.upload_id),
            )
            failed = self.accepted == 0 or (all_or_nothing and bool(self.rejected_lines))
            if failed:
                await self._insert_upload(
                    cursor, facts, "FAILED", updated=0, warnings=facts.warnings
                )
                return Outcome(facts.upload_id, False, True, self.first_rejections)
            warnings = list(facts.warnings)
            updated, unmatched = await self._merge(cursor, facts)
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
        async with self._raw.cursor() as cursor:
            await cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ingest.upload'), hashtext(%s))",
                (facts.customer,),
            )
            if facts.request_id:
                await cursor.execute(
                    "SELECT upload_id FROM ingest.uploads WHERE customer_id = %s "
                    "AND request_id = %s",
                    (facts.customer, facts.request_id),
                )
                earlier = await cursor.fetchone()
                if earlier is not None:
                    return Outcome(earlier[0], repeated=True, failed=False, first_problems=[])
            await cursor.execute("TRUNCATE upload_staging")
            self.accepted = 0
            self.rejected_lines.clear()
            await self._insert_upload(
                cursor, facts, "FAILED", updated=0, warnings=facts.warnings, error=problem
            )
        return Outcome(facts.upload_id, False, True, [])

    async def _merge(self, cursor: Any, facts: UploadFacts) -> tuple[int, int]:
        """Payers, reversals, claims and statistics; returns (claims updated, reversals
        that matched nothing)."""
        customer = facts.customer
        # The last row of a claim in the file wins; reversals are applied, not stored.
        await cursor.execute(
            "CREATE TEMPORARY TABLE upload_claims ON COMMIT DROP AS "
            "SELECT DISTINCT ON (name_key, claim_id) *, "
            "substr(md5(name_key || '|' || claim_id), 1, 20) AS claim_uid, "
            "substr(md5(name_key || '|' || payer_raw_id), 1, 16) AS payer_uid "
            "FROM upload_staging WHERE kind = 'C' AND status <> 'REVERSED' "
            "ORDER BY name_key, claim_id, seq DESC"
        )
        await cursor.execute(
            "CREATE TEMPORARY TABLE touched (payer text, decision_date date) ON COMMIT DROP"
        )
        await self._upsert_payers(cursor, customer)
        # Reversals cancel the claim with the payer's claim control number they name.
        await cursor.execute(
            "WITH reversed AS (UPDATE ingest.claims c SET status = 'REVERSED', denied = false, "
            "partially_denied = false, upload_id = %s, update_time = now() "
            "FROM upload_staging s WHERE s.kind = 'C' AND s.status = 'REVERSED' "
            "AND c.customer_id = %s AND c.payer_key = s.name_key "
            "AND c.payer_claim_control_number = s.control_number AND s.control_number <> '' "
            "AND c.status <> 'REVERSED' RETURNING c.payer, c.decision_date), "
            "noted AS (INSERT INTO touched SELECT payer, decision_date FROM reversed) "
            "SELECT count(*) FROM reversed",
            (facts.upload_id, customer),
        )
        reversed_count = int((await cursor.fetchone())[0])
        await cursor.execute(
            "SELECT count(*) FROM upload_staging WHERE kind = 'C' AND status = 'REVERSED'"
        )
        reversals = (await cursor.fetchone())[0]
        # Cells the updated claims leave must be recomputed too.
        await cursor.execute(
            "INSERT INTO touched SELECT c.payer, c.decision_date FROM ingest.claims c "
            "JOIN upload_claims u ON c.customer_id = %s AND c.claim_uid = u.claim_uid "
            "WHERE c.decision_date IS NOT NULL",
            (customer,),
        )
        await cursor.execute(
            "WITH written AS ("
            "INSERT INTO ingest.claims AS c (customer_id, claim_uid, claim_id, payer_key, "
            "payer_uid, "
            "payer, payer_raw_name, payer_raw_id, status, denied, partially_denied, "
            "procedure_codes, code_group, service_date, submitted_date, decision_date, "
            "decision_days, billed_cents, allowed_cents, paid_cents, patient_responsibility_cents, "
            "adjustments, denial_codes, payer_claim_control_number, upload_id, source_line) "
            "SELECT %s, u.claim_uid, u.claim_id, u.name_key, u.payer_uid, p.canonical_payer, "
            "u.payer_raw_name, u.payer_raw_id, u.status, u.denied, u.partially_denied, "
            "u.procedure_codes, u.code_group, u.service_date, u.submitted_date, u.decision_date, "
            "u.decision_days, u.billed_cents, u.allowed_cents, u.paid_cents, "
            "u.patient_responsibility_cents, u.adjustments, u.denial_codes, u.control_number, "
            "%s, u.source_line FROM upload_claims u "
            "JOIN ingest.payers p ON p.customer_id = %s AND p.payer_uid = u.payer_uid "
            "ON CONFLICT (customer_id, claim_uid) DO UPDATE SET "
            "payer_uid = excluded.payer_uid, payer = excluded.payer, "
            "payer_raw_name = excluded.payer_raw_name, payer_raw_id = excluded.payer_raw_id, "
            "status = excluded.status, denied = excluded.denied, "
            "partially_denied = excluded.partially_denied, "
            "procedure_codes = excluded.procedure_codes, "
            "code_group = excluded.code_group, service_date = excluded.service_date, "
            "submitted_date = excluded.submitted_date, decision_date = excluded.decision_date, "
            "decision_days = excluded.decision_days, billed_cents = excluded.billed_cents, "
            "allowed_cents = excluded.allowed_cents, paid_cents = excluded.paid_cents, "
            "patient_responsibility_cents = excluded.patient_responsibility_cents, "
            "adjustments = excluded.adjustments, denial_codes = excluded.denial_codes, "
            "payer_claim_control_number = excluded.payer_claim_control_number, "
            "upload_id = excluded.upload_id, source_line = excluded.source_line, "
            "update_time = now() "
            # A newer adjudication replaces an older one; an older file changes nothing.
            "WHERE c.decision_date IS NULL OR c.status = 'REVERSED' "
            "OR excluded.decision_date >= c.decision_date "
            "RETURNING (xmax = 0) AS inserted, payer, decision_date), "
            "noted AS (INSERT INTO touched SELECT payer, decision_date FROM written "
            "WHERE decision_date IS NOT NULL) "
            "SELECT count(*) FILTER (WHERE NOT inserted) FROM written",
            (customer, facts.upload_id, customer),
        )
        updated = int((await cursor.fetchone())[0])
        await cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT p.canonical_payer ORDER BY p.canonical_payer), "
            "'{}') FROM ingest.payers p WHERE p.customer_id = %s "
            "AND p.payer_uid IN (SELECT payer_uid FROM upload_claims)",
            (customer,),
        )
        self.payers = list((await cursor.fetchone())[0])
        await self._refresh_payer_counts(cursor, customer)
        await refresh_daily_stats(cursor, customer)
        return updated + reversed_count, reversals - reversed_count

    async def _upsert_payers(self, cursor: Any, customer: str) -> None:
        await cursor.execute(
            "INSERT INTO ingest.payers AS p (customer_id, payer_uid, name_key, raw_name, raw_id, "
            "canonical_payer, mapping_id) "
            "SELECT DISTINCT ON (u.payer_uid) %s, u.payer_uid, u.name_key, u.payer_raw_name, "
            "u.payer_raw_id, coalesce(m.canonical_payer, u.payer_raw_name), m.mapping_id "
            "FROM upload_claims u LEFT JOIN LATERAL ("
            + MAPPING_FOR_PAYER.format(name="u.name_key", raw_id="u.payer_raw_id")
            + ") m ON true ORDER BY u.payer_uid "
            "ON CONFLICT (customer_id, payer_uid) DO UPDATE SET last_seen_time = now()",
            (customer, customer),
        )

    async def _refresh_payer_counts(self, cursor: Any, customer: str) -> None:
        await cursor.execute(
            "UPDATE ingest.payers p SET claim_count = (SELECT count(*) FROM ingest.claims c "
            "WHERE c.customer_id = p.customer_id AND c.payer_uid = p.payer_uid) "
            "WHERE p.customer_id = %s "
            "AND p.payer_uid IN (SELECT DISTINCT payer_uid FROM upload_claims)",
            (customer,),
        )

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
            "finish_time) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "(SELECT min(decision_date) FROM upload_staging WHERE kind = 'C'), "
            "(SELECT max(decision_date) FROM upload_staging WHERE kind = 'C'), "
            "%s, %s, %s, now()",
            (
                facts.customer, facts.upload_id, state, facts.format, facts.mode, facts.file_name,
                facts.size_bytes, facts.sha256 if state != "FAILED" else None, facts.request_id,
                facts.creator, facts.rows_read, self.accepted if state != "FAILED" else 0,
                len(self.rejected_lines), updated, self.payers if state != "FAILED" else [],
                json.dumps(stored_warnings), json.dumps(status) if status else None,
            ),
        )  # fmt: skip


# The mapping that applies to a raw payer: one naming both its name and id wins over one
# naming only the id, which wins over one naming only the name.
MAPPING_FOR_PAYER = (
    "SELECT m.canonical_payer, m.mapping_id FROM ingest.payer_mappings m "
    "WHERE m.customer_id = %s AND (m.name_key = '' OR m.name_key = {name}) "
    "AND (m.raw_payer_id = '' OR m.raw_payer_id = {raw_id}) "
    "ORDER BY (m.raw_payer_id <> '') DESC, (m.name_key <> '') DESC LIMIT 1"
)


async def refresh_daily_stats(cursor: Any, customer: str) -> None:
    """Recompute the statistics of every (payer, day) in the `touched` temp table from the
    stored claims: exact, whatever the mix of inserts, updates and reversals."""
    # For a new customer the planner's statistics predict one row and pick nested loops
    # over the three aggregates, which turns quadratic on a large first upload.
    await cursor.execute("SET LOCAL enable_nestloop = off")
    await cursor.execute(
        "DELETE FROM ingest.daily_stats d "
        "USING (SELECT DISTINCT payer, decision_date FROM touched) t "
        "WHERE d.customer_id = %s AND d.payer = t.payer AND d.decision_date = t.decision_date",
        (customer,),
    )
    await cursor.execute(
        """
        WITH cells AS (SELECT DISTINCT payer, decision_date FROM touched),
        scope AS (
            SELECT c.payer, c.code_group, c.decision_date, c.denied, c.partially_denied,
                   c.decision_days, c.billed_cents, c.paid_cents, c.denial_codes,
                   coalesce(c.allowed_cents, c.paid_cents + c.patient_responsibility_cents)
                       AS allowed_cents
            FROM ingest.claims c JOIN cells t
              ON c.customer_id = %(customer)s AND c.payer = t.payer
             AND c.decision_date = t.decision_date
            WHERE c.status <> 'REVERSED'
        ),
        base AS (
            SELECT payer, code_group, decision_date, count(*) AS decided,
                   count(*) FILTER (WHERE denied) AS denied,
                   count(*) FILTER (WHERE partially_denied) AS partially_denied,
                   sum(billed_cents) AS billed, sum(allowed_cents) AS allowed,
                   sum(paid_cents) AS paid,
                   coalesce(sum(billed_cents) FILTER (WHERE denied), 0) AS denied_billed
            FROM scope GROUP BY payer, code_group, decision_date
        ),
        days AS (
            SELECT payer, code_group, decision_date,
                   jsonb_object_agg(decision_days::text, n) AS histogram
            FROM (SELECT payer, code_group, decision_date, decision_days, count(*) AS n
                  FROM scope WHERE decision_days IS NOT NULL
                  GROUP BY payer, code_group, decision_date, decision_days) d
            GROUP BY payer, code_group, decision_date
        ),
        carcs AS (
            SELECT payer, code_group, decision_date, jsonb_object_agg(code, n) AS counts
            FROM (SELECT payer, code_group, decision_date, code, count(*) AS n
                  FROM scope, unnest(denial_codes) AS code
                  GROUP BY payer, code_group, decision_date, code) c
            GROUP BY payer, code_group, decision_date
        )
        INSERT INTO ingest.daily_stats (customer_id, payer, code_group, decision_date,
            decided_claims, denied_claims, partially_denied_claims, decision_days,
            billed_cents, allowed_cents, paid_cents, denied_billed_cents, carc_counts)
        SELECT %(customer)s, b.payer, b.code_group, b.decision_date, b.decided, b.denied,
               b.partially_denied, coalesce(d.histogram, '{}'), b.billed, b.allowed, b.paid,
               b.denied_billed, coalesce(c.counts, '{}')
        FROM base b
        LEFT JOIN days d USING (payer, code_group, decision_date)
        LEFT JOIN carcs c USING (payer, code_group, decision_date)
        """,
        {"customer": customer},
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
