"""Turning parsed rows into what PostgreSQL loads: COPY text lines, claim keys, partial sums.

This is the CPU side of an upload, run in a worker thread while the file streams in (one
chunk at a time): each claim becomes one line in the column order of `ingest.claims`, split
around its canonical payer (known only once the payer row exists), with its key and what it
adds to the statistics. Whether a claim may repeat one seen earlier in the same upload is
decided here too, in fixed memory (`SeenClaims`), so the loader can copy claims that are
certainly new straight into `ingest.claims`.

The rows of a CSV export are lines of claims (`claim_lines`): a chunk's lines of one claim
are combined here, and a claim whose lines also came in other chunks is staged as a piece,
with the keys of its earlier pieces, to be combined with them at the end (`PieceAssembly`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import operator
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from services.ingest.claim_lines import ClaimAssembly, combine, payer_of
from services.ingest.claim_statistics import Counted, claim_code_group, counted
from services.ingest.copy_text import copy_text
from services.ingest.daily_statistics import PartialSums
from services.ingest.denials import denial_reason_codes
from services.ingest.parsing import Batch
from services.ingest.records import (
    Adjustment,
    ClaimColumns,
    ClaimRecord,
    ClaimStatus,
    ParseLimits,
    Rejection,
    ServiceLine,
    name_key,
)

# The columns of a claim line, in `ingest.claims` and in the upload's staging table alike.
CLAIM_COLUMNS = (
    "customer_id", "claim_uid", "claim_id", "payer_key", "payer_uid", "payer", "payer_raw_name",
    "payer_raw_id", "status", "denied", "partially_denied", "procedure_codes", "code_group",
    "service_date", "submitted_date", "decision_date", "decision_days", "billed_cents",
    "allowed_cents", "paid_cents", "patient_responsibility_cents", "adjustments",
    "denial_codes", "payer_claim_control_number", "upload_id", "source_line",
)  # fmt: skip
REJECTION_COLUMNS = (
    "customer_id", "upload_id", "seq", "line_number", "segment_number", "column_name",
    "raw_value", "reason", "code",
)  # fmt: skip

# What an upload keeps of a claim's pieces besides their claim lines (`upload_lines`): whether
# the file stated the status, and the lines of a piece of several rows (as JSON: source
# line, procedure code, billed, paid and allowed cents).
PIECE_LINE_COLUMNS = ("claim_uid", "source_line", "status_stated", "lines")

_SPACES = re.compile(r"\s+")
_NULL = "\\N"
_REVERSED, _PENDING = ClaimStatus.REVERSED, ClaimStatus.PENDING
_CLAIM_UID = operator.itemgetter(0)  # of a StagedClaim
# A denied claim's codes, once per distinct set of adjustments (`counted` makes them per claim).
_reason_codes = functools.lru_cache(maxsize=4096)(denial_reason_codes)


@functools.lru_cache(maxsize=4096)
def display_name(raw_name: str) -> str:
    return _SPACES.sub(" ", raw_name.strip())


@functools.lru_cache(maxsize=4096)
def payer_uid(key: str, raw_id: str) -> str:
    """A payer as seen in files: its name key and raw id, digested (as in resource names)."""
    return hashlib.md5(f"{key}|{raw_id}".encode()).hexdigest()[:16]


# A claim line is put together from segments, the repetitive ones made once per distinct
# input (a file has a few payers, statuses, procedure codes and CARC combinations).
@functools.lru_cache(maxsize=4096)
def _payer_segment(raw_name: str, raw_id: str) -> str:
    """`payer_raw_name`, `payer_raw_id` and the tabs around them."""
    return f"\t{copy_text(display_name(raw_name))}\t{copy_text(raw_id)}\t"


@functools.lru_cache(maxsize=4096)
def _array(values: tuple[str, ...]) -> str:
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return copy_text("{" + ",".join(f'"{v}"' for v in quoted) + "}")


@functools.lru_cache(maxsize=4096)
def _outcome_segment(
    status: ClaimStatus, denied: bool, partially_denied: bool, codes: tuple[str, ...]
) -> str:
    """`status` to `code_group` (and a tab)."""
    return (
        f"{status.value}\t{'t' if denied else 'f'}\t{'t' if partially_denied else 'f'}\t"
        f"{_array(codes)}\t{claim_code_group(codes)}\t"
    )


@functools.lru_cache(maxsize=4096)
def _reasons_segment(
    adjustments: tuple[Adjustment, ...], denial_codes: tuple[str, ...], compact: bool
) -> str:
    """`adjustments` and `denial_codes` (and a tab)."""
    return f"{_adjustments_json(adjustments, compact)}\t{_array(denial_codes)}\t"


def _adjustments_json(adjustments: tuple[Adjustment, ...], compact: bool) -> str:
    """The adjustments as stored: a JSON object each, its `cents` and `line` left out where
    0 when `compact` (a CSV's codes carry neither: about a sixth of a claim's row)."""
    # Group and reason codes are validated alphanumerics, so they need no JSON escaping.
    return copy_text(
        "["
        + ",".join(
            f'{{"group":"{a.group_code}","reason":"{a.reason_code}"'
            + ("" if compact and not a.amount_cents else f',"cents":{a.amount_cents}')
            + ("" if compact and not a.line_number else f',"line":{a.line_number}')
            + "}"
            for a in adjustments
        )
        + "]"
    )


@functools.lru_cache(maxsize=8192)
def _day(value: dt.date | None) -> str:
    return _NULL if value is None else value.isoformat()


@functools.lru_cache(maxsize=4096)
def _name_key_text(raw_name: str) -> tuple[str, str]:
    """A payer name's key, and the key as COPY text."""
    key = name_key(raw_name)
    return key, copy_text(key)


class StagedClaim(NamedTuple):
    """One claim as a COPY line of CLAIM_COLUMNS. The line lacks its canonical payer when
    the payer was not known yet (`cut` >= 0: it goes at that position); `counted` is what the
    claim adds to the statistics when it is written as a new claim (a reversal never is)."""

    claim_uid: str
    payer_uid: str
    line: str
    cut: int
    counted: Counted

    def complete(self, canonical: Mapping[str, str]) -> str:
        """The line, with its canonical payer from `canonical` (payer uid -> name) if need be;
        a payer that has none (that of a reversal) is left empty."""
        if self.cut < 0:
            return self.line
        cut = self.cut
        return self.line[:cut] + canonical.get(self.payer_uid, "") + self.line[cut:]


@dataclass
class Staged:
    """What one chunk of the file yielded, ready to load."""

    # The partial sums of the new claims of this and earlier chunks, when the encoder
    # counts them (see `Encoder`) and it is time to write them.
    sums: PartialSums | None = None

    # Claims not seen earlier in the upload (each once: of two 835 claims with one key the
    # later wins; a chunk's CSV lines of one claim are combined).
    fresh: list[StagedClaim] = field(default_factory=list)
    # Claims that may repeat one seen earlier in the upload (835), and reversals.
    repeated: list[StagedClaim] = field(default_factory=list)
    # CSV: pieces of claims whose id came in earlier chunks too (or twice in this one, with
    # another payer), combined with their other pieces at the end; the uids of the earlier
    # pieces, which were loaded as `fresh` or `repeated` claims; and COPY lines of
    # PIECE_LINE_COLUMNS for the pieces their claim line does not describe whole.
    pieces: list[StagedClaim] = field(default_factory=list)
    earlier_pieces: list[str] = field(default_factory=list)
    piece_lines: str = ""
    # Payers first seen in this chunk: (payer uid, name key, raw id, display name).
    new_payers: list[tuple[str, str, str, str]] = field(default_factory=list)
    # COPY lines of REJECTION_COLUMNS.
    rejections: str = ""
    rejection_count: int = 0


class SeenClaims:
    """The claims an upload has staged so far, as a Bloom filter of fixed size: `seen` is
    never wrong about a claim that was staged, and wrong about a new one with a small
    probability (about 0.5 % after 5 million claims, 5 % after 10 million), so memory stays
    the same however large the file. A claim it calls seen is merged by key at the end."""

    BITS = 1 << 26  # 8 MiB
    HASHES = 4

    def __init__(self) -> None:
        self._bits = np.zeros(self.BITS // 8, dtype=np.uint8)

    def check_and_add(self, digests: list[bytes]) -> np.ndarray:
        """Whether each claim (by the md5 digest of its key) may have been added before;
        adds them."""
        if not digests:
            return np.zeros(0, dtype=bool)
        return self._check_and_add(*self._hashes(digests))

    def check_and_add_texts(self, texts: Collection[str]) -> np.ndarray:
        """As `check_and_add`, for texts by Python's hash of them: cheaper than an md5 each,
        and salted per process, which a filter that lives for one upload does not mind."""
        first = np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts)).view(np.uint64)
        # The second hash mixed from the first (the multiplier of splitmix64).
        step = (first * np.uint64(0x9E3779B97F4A7C15)) ^ (first >> np.uint64(31))
        return self._check_and_add(first, step | np.uint64(1))

    def contains(self, digests: list[bytes]) -> np.ndarray:
        """Whether each claim may have been added."""
        if not digests:
            return np.zeros(0, dtype=bool)
        cells, masks = self._positions(*self._hashes(digests))
        return np.all(self._bits[cells] & masks, axis=0)

    def _check_and_add(self, first: np.ndarray, step: np.ndarray) -> np.ndarray:
        cells, masks = self._positions(first, step)
        seen = np.all(self._bits[cells] & masks, axis=0)
        np.bitwise_or.at(self._bits, cells.ravel(), masks.ravel())
        return seen

    @staticmethod
    def _hashes(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """The two hashes of double hashing, from the halves of each digest."""
        halves = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2)
        return halves[:, 0], halves[:, 1] | np.uint64(1)

    def _positions(self, first: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each claim's bytes in the filter and the bit in each, one row per hash."""
        positions = np.stack(
            [(first + np.uint64(i) * step) & np.uint64(self.BITS - 1) for i in range(self.HASHES)]
        )
        masks = np.left_shift(1, positions & np.uint64(7)).astype(np.uint8)
        return positions >> np.uint64(3), masks


class Encoder:
    """Encodes chunks of one upload (one chunk at a time, in order).

    With `count_fresh` (the customer had no claims when the upload began, so a claim not
    seen earlier in the file is certainly new), the encoder also counts fresh claims into
    partial sums, handed over with the chunk after every `count_every` claims and by
    `take_sums` at the end; else the loader counts what it finds new."""

    def __init__(
        self,
        customer: str,
        upload_id: str,
        *,
        count_fresh: bool,
        count_every: int,
        canonical: Mapping[str, str],
        max_claim_lines: int = ParseLimits().max_claim_lines,
        compact_adjustments: bool = True,
    ) -> None:
        # Canonical payers as the loader learns them (read here, written there).
        self._canonical = canonical
        self._compact = compact_adjustments
        self._customer = copy_text(customer)
        self._upload_id = copy_text(upload_id)
        self._count_fresh = count_fresh
        self._count_every = count_every
        self._max_claim_lines = max_claim_lines
        self._counted = 0
        self._sums = PartialSums()
        # Claim keys (payer and claim id) staged; for CSV lines, claim ids too, whatever the
        # payer, so that lines of one claim id that name another payer are found.
        self._seen = SeenClaims()
        self._seen_ids = SeenClaims()
        self._payers: set[str] = set()
        self._name_keys: dict[str, None] = {}
        self._rejection_seq = 0
        # CSV: claims staged (reversals aside), each piece of one counted once.
        self.claims = 0
        # The earliest and latest decision dates of the claims encoded (of CSV lines, once
        # the chunk's lines are combined).
        self.decision_dates: tuple[dt.date, dt.date] | None = None

    def take_sums(self) -> PartialSums:
        sums, self._sums, self._counted = self._sums, PartialSums(), 0
        return sums

    def encode(self, batch: Batch, *, claim_lines: bool = False) -> Staged:
        """The chunk's claims as COPY lines; with `claim_lines` (CSV), its records are lines
        of claims, combined by claim."""
        staged = Staged()
        if claim_lines:
            self._encode_lines(batch, staged)
        else:
            self._encode_claims(batch.all_claims(), staged)
        # In the primary key's order: PostgreSQL's COPY then inserts each chunk's claims into
        # its B-tree page after page, not all over it (uids are digests): a quarter faster.
        staged.fresh.sort(key=_CLAIM_UID)
        if self._count_fresh:
            self._sums.add_all([encoded.counted for encoded in staged.fresh])
            self._counted += len(staged.fresh)
            if self._counted >= self._count_every:
                staged.sums = self.take_sums()
        if batch.rejections:
            staged.rejections = self.rejection_lines(batch.rejections)
            staged.rejection_count = len(batch.rejections)
        return staged

    def _saw_decisions(self, claims: Iterable[ClaimRecord]) -> None:
        self._saw_days([claim.decision_date for claim in claims])

    def _saw_days(self, decided: Iterable[dt.date | None]) -> None:
        days = [day for day in decided if day is not None]
        if not days:
            return
        first, last = min(days), max(days)
        if self.decision_dates is not None:
            first, last = min(first, self.decision_dates[0]), max(last, self.decision_dates[1])
        self.decision_dates = (first, last)

    def _encode_claims(self, claims: list[ClaimRecord], staged: Staged) -> None:
        self._saw_decisions(claims)
        distinct: dict[str, tuple[StagedClaim, bytes]] = {}
        for claim in claims:
            encoded, digest = self._encoded(claim, staged)
            if claim.status is ClaimStatus.REVERSED:
                staged.repeated.append(encoded)
                continue
            # A claim twice in a chunk: the later row wins.
            distinct.pop(encoded.claim_uid, None)
            distinct[encoded.claim_uid] = (encoded, digest)
        seen = self._seen.check_and_add([digest for _, digest in distinct.values()])
        fresh, repeated = staged.fresh, staged.repeated
        for (encoded, _), maybe_seen in zip(distinct.values(), seen.tolist(), strict=True):
            (repeated if maybe_seen else fresh).append(encoded)

    def _encode_lines(self, batch: Batch, staged: Staged) -> None:
        claims, columns = batch.claims, batch.columns
        if columns is not None and not _apart(columns, claims):
            claims, columns = batch.all_claims(), None
        # Each claim id's lines combined; those of another payer than its first line's, or
        # past a claim's line limit, apart (no list per claim id: chunks hold many). The
        # claims of `columns` are each the one line of its claim id in the chunk.
        first: dict[str, ClaimRecord] = {}
        apart: dict[str, list[ClaimRecord]] = {}
        reversals = []
        for claim in claims:
            if claim.status is ClaimStatus.REVERSED:
                staged.repeated.append(self._encoded(claim, staged)[0])
                reversals.append(claim)
                continue
            piece = first.get(claim.claim_id)
            if piece is None:
                first[claim.claim_id] = claim
            elif self._same_claim(piece, claim):
                first[claim.claim_id] = combine(piece, claim)
            else:
                pieces = apart.setdefault(claim.claim_id, [])
                at = next((i for i, p in enumerate(pieces) if self._same_claim(p, claim)), -1)
                if at < 0:
                    pieces.append(claim)
                else:
                    pieces[at] = combine(pieces[at], claim)
        column_ids = columns.claim_id if columns is not None else []
        ids_seen = self._seen_ids.check_and_add_texts([*first, *column_ids]).tolist()
        records = list(first.values())
        for pieces in apart.values():
            records += pieces
        self._saw_decisions(records + reversals)
        encoded = [self._encoded(record, staged) for record in records]
        digests = [digest for _, digest in encoded]
        if columns is not None:
            self._saw_days(columns.decision_date)
            column_lines, column_digests = self._column_lines(columns, staged)
            digests += column_digests
        keys_seen = self._seen.check_and_add(digests).tolist()
        self.claims += len(records) + len(column_ids)
        id_was_seen = dict(zip(first, ids_seen[: len(first)], strict=True))
        piece_lines = []
        for record, (line, _), key_seen in zip(
            records, encoded, keys_seen[: len(records)], strict=True
        ):
            id_seen = id_was_seen[record.claim_id]
            # The first lines of a claim id: certainly new to the upload.
            if not id_seen and record.claim_id not in apart:
                staged.fresh.append(line)
            else:
                staged.pieces.append(line)
                if key_seen:
                    staged.earlier_pieces.append(line.claim_uid)
                elif id_seen:
                    staged.earlier_pieces += self._other_payers_pieces(
                        record.payer_name, record.claim_id
                    )
            if record.lines or not record.status_stated:
                piece_lines.append(_piece_line(line.claim_uid, record))
        staged.piece_lines = "".join(piece_lines)
        if columns is None:
            return
        self._place_columns(
            columns, column_lines, ids_seen[len(first) :], keys_seen[len(records) :], staged
        )
        if not all(columns.status_stated):
            staged.piece_lines += "".join(
                [
                    _piece_text(line.claim_uid, number, False, _NULL)
                    for line, number, stated in zip(
                        column_lines, columns.source_line, columns.status_stated, strict=True
                    )
                    if not stated
                ]
            )

    def _place_columns(
        self,
        columns: ClaimColumns,
        lines: list[StagedClaim],
        ids_seen: list[bool],
        keys_seen: list[bool],
        staged: Staged,
    ) -> None:
        """The claims of `columns` (encoded as `lines`) staged as claims certainly new to
        the upload, or as pieces of claims whose id came earlier."""
        if not any(ids_seen):
            staged.fresh += lines
            return
        for row, (line, id_seen, key_seen) in enumerate(
            zip(lines, ids_seen, keys_seen, strict=True)
        ):
            if not id_seen:
                staged.fresh.append(line)
                continue
            staged.pieces.append(line)
            if key_seen:
                staged.earlier_pieces.append(line.claim_uid)
            else:
                staged.earlier_pieces += self._other_payers_pieces(
                    columns.payer_name[row], columns.claim_id[row]
                )

    def _same_claim(self, piece: ClaimRecord, line: ClaimRecord) -> bool:
        """Whether `line` is combined into `piece`: of one payer, within the line limit."""
        return payer_of(piece) == payer_of(line) and piece.rows + line.rows <= self._max_claim_lines

    def _other_payers_pieces(self, payer_name: str, claim_id: str) -> list[str]:
        """The uids of pieces the upload may have staged of a piece's claim id with other
        payers than its own."""
        own = name_key(payer_name)
        digests = [
            hashlib.md5(f"{key}|{claim_id}".encode()).digest()
            for key in self._name_keys
            if key != own
        ]
        found = self._seen.contains(digests).tolist()
        return [digest.hex()[:20] for digest, hit in zip(digests, found, strict=True) if hit]

    def _encoded(self, claim: ClaimRecord, staged: Staged) -> tuple[StagedClaim, bytes]:
        """The claim's line and the md5 digest of its key; its payer noted if new (that of a
        reversal is not: a reversal names a claim, whose payer is known)."""
        key, key_text, payer = self._payer(
            claim.payer_name, claim.payer_id, staged, noted=claim.status is not _REVERSED
        )
        # A claim's uid: the md5 of (payer name key, claim id), its first 20 hex digits.
        digest = hashlib.md5(f"{key}|{claim.claim_id}".encode()).digest()
        return self._claim(claim, key_text, payer, digest), digest

    def _payer(
        self, raw_name: str, raw_id: str, staged: Staged, *, noted: bool = True
    ) -> tuple[str, str, str]:
        """A payer's name key, the key as COPY text, and its uid; `noted` in `staged` when
        it is new to the upload."""
        key, key_text = _name_key_text(raw_name)
        uid = payer_uid(key, raw_id)
        if noted and uid not in self._payers:
            self._payers.add(uid)
            self._name_keys[key] = None
            staged.new_payers.append((uid, key, raw_id, display_name(raw_name)))
        return key, key_text, uid

    def _column_lines(
        self, columns: ClaimColumns, staged: Staged
    ) -> tuple[list[StagedClaim], list[bytes]]:
        """`_encoded` of each claim of `columns` (none a reversal), column by column: each
        distinct payer, date, outcome and set of reasons made once."""
        canonical = self._canonical
        payers: dict[tuple[str, str], tuple[str, str, str, str, str | None]] = {}
        named_as = list(zip(columns.payer_name, columns.payer_id, strict=True))
        for raw_name, raw_id in dict.fromkeys(named_as):
            key, key_text, uid = self._payer(raw_name, raw_id, staged)
            payers[raw_name, raw_id] = (
                key, uid, f"\t{key_text}\t{uid}\t", _payer_segment(raw_name, raw_id),
                canonical.get(uid),
            )  # fmt: skip
        rows = list(map(payers.__getitem__, named_as))
        md5 = hashlib.md5
        digests = [
            md5(f"{payer[0]}|{claim_id}".encode()).digest()
            for payer, claim_id in zip(rows, columns.claim_id, strict=True)
        ]
        uids = [digest.hex()[:20] for digest in digests]
        payer_uids = [payer[1] for payer in rows]
        service, submitted = columns.service_date, columns.submitted_date
        decided, status = columns.decision_date, columns.status
        started = [day or other for day, other in zip(submitted, service, strict=True)]
        days = [
            None if end is None or start is None or end < start else (end - start).days
            for start, end in zip(started, decided, strict=True)
        ]
        denied, partially = columns.denied, columns.partially_denied
        assert denied is not None and partially is not None  # classified
        codes = [
            _reason_codes(adjustments) if is_denied or is_partial else ()
            for adjustments, is_denied, is_partial in zip(
                columns.adjustments, denied, partially, strict=True
            )
        ]
        groups = list(map(claim_code_group, columns.procedure_codes))
        billed, allowed = columns.billed_cents, columns.allowed_cents
        paid, patient = columns.paid_cents, columns.patient_responsibility_cents
        customer, upload, compact = self._customer, self._upload_id, self._compact
        tails = [
            f"{payer[3]}{_outcome_segment(state, is_denied, is_partial, procedures)}"
            f"{_day(service_day)}\t{_day(submitted_day)}\t{_day(decision_day)}\t"
            f"{_NULL if span is None else span}\t{billed_cents}\t"
            f"{_NULL if allowed_cents is None else allowed_cents}\t{paid_cents}\t"
            f"{patient_cents}\t{_reasons_segment(adjustments, denial, compact)}"
            f"{control}\t{upload}\t{line}\n"
            for (
                payer, state, is_denied, is_partial, procedures, service_day, submitted_day,
                decision_day, span, billed_cents, allowed_cents, paid_cents, patient_cents,
                adjustments, denial, control, line,
            ) in zip(
                rows, status, denied, partially, columns.procedure_codes, service, submitted,
                decided, days, billed, allowed, paid, patient, columns.adjustments, codes,
                _copy_texts(columns.payer_claim_control_number), columns.source_line,
                strict=True,
            )
        ]  # fmt: skip
        heads = [
            f"{customer}\t{uid}\t{claim_id}{payer[2]}"
            for uid, claim_id, payer in zip(uids, _copy_texts(columns.claim_id), rows, strict=True)
        ]
        # The canonical payer goes between the head and the tail, once known (`StagedClaim`).
        named = [payer[4] for payer in rows]
        lines = [
            head + tail if name is None else head + name + tail
            for head, name, tail in zip(heads, named, tails, strict=True)
        ]
        cuts = [len(head) if name is None else -1 for head, name in zip(heads, named, strict=True)]
        counts = zip(
            payer_uids, groups, decided, days, denied, partially, billed,
            [
                paid_cents + patient_cents if allowed_cents is None else allowed_cents
                for allowed_cents, paid_cents, patient_cents in zip(
                    allowed, paid, patient, strict=True
                )
            ],
            paid, codes, patient,
            [
                start if state is _PENDING else None
                for start, state in zip(started, status, strict=True)
            ],
            strict=True,
        )  # fmt: skip
        return list(map(StagedClaim, uids, payer_uids, lines, cuts, counts)), digests

    def claim_line(self, claim: ClaimRecord) -> str:
        """A claim of a payer already staged, as a COPY line of CLAIM_COLUMNS."""
        return self._encoded(claim, Staged())[0].complete(self._canonical)

    def rejection_lines(self, rejections: Iterable[Rejection]) -> str:
        """Rejections as COPY lines of REJECTION_COLUMNS, numbered on from the last."""
        lines = []
        for rejection in rejections:
            self._rejection_seq += 1
            lines.append(self._rejection_line(rejection, self._rejection_seq))
        return "".join(lines)

    def _claim(self, claim: ClaimRecord, key_text: str, payer: str, digest: bytes) -> StagedClaim:
        uid = digest.hex()[:20]
        # The stored claim keeps its days to decision and denial codes as it is counted.
        counts = counted(claim, payer)
        days, codes = counts[3], counts[9]
        allowed = claim.allowed_cents
        outcome = _outcome_segment(
            claim.status, claim.denied, claim.partially_denied, claim.procedure_codes
        )
        head = f"{self._customer}\t{uid}\t{copy_text(claim.claim_id)}\t{key_text}\t{payer}\t"
        tail = (
            f"{_payer_segment(claim.payer_name, claim.payer_id)}{outcome}"
            f"{_day(claim.service_date)}\t{_day(claim.submitted_date)}\t"
            f"{_day(claim.decision_date)}\t"
            f"{_NULL if days is None else days}\t{claim.billed_cents}\t"
            f"{_NULL if allowed is None else allowed}\t{claim.paid_cents}\t"
            f"{claim.patient_responsibility_cents}\t"
            f"{_reasons_segment(claim.adjustments, codes, self._compact)}"
            f"{copy_text(claim.payer_claim_control_number)}\t{self._upload_id}\t"
            f"{claim.source_line}\n"
        )
        canonical = self._canonical.get(payer)
        if canonical is None:
            return StagedClaim(uid, payer, head + tail, len(head), counts)
        return StagedClaim(uid, payer, head + canonical + tail, -1, counts)

    def _rejection_line(self, rejection: Rejection, seq: int) -> str:
        return "\t".join(
            (
                self._customer, self._upload_id, str(seq), str(rejection.line_number),
                str(rejection.segment_number), copy_text(rejection.column),
                copy_text(rejection.raw_value), copy_text(rejection.reason),
                copy_text(rejection.code),
            )
        ) + "\n"  # fmt: skip


def _apart(columns: ClaimColumns, claims: list[ClaimRecord]) -> bool:
    """Whether each claim of `columns` is the only line of its claim id among `claims` and
    the columns, and none is a reversal: each is then a claim of its own in the chunk."""
    ids = set(columns.claim_id)
    return (
        len(ids) == len(columns)
        and _REVERSED not in columns.status
        and ids.isdisjoint([claim.claim_id for claim in claims])
    )


def _copy_texts(values: list[str]) -> list[str]:
    """`copy_text` of each value (the same list when none needs escaping)."""
    joined = "".join(values)
    if "\\" not in joined and joined.isprintable():
        return values
    return list(map(copy_text, values))


def _piece_line(claim_uid: str, piece: ClaimRecord) -> str:
    """A piece's COPY line of PIECE_LINE_COLUMNS."""
    lines = _NULL
    if piece.lines:
        lines = copy_text(
            json.dumps(
                [
                    [number, line.procedure_code, line.billed_cents, line.paid_cents,
                     line.allowed_cents]
                    for number, line in zip(piece.source_lines, piece.lines, strict=True)
                ],
                separators=(",", ":"),
            )
        )  # fmt: skip
    return _piece_text(claim_uid, piece.source_line, piece.status_stated, lines)


def _piece_text(claim_uid: str, source_line: int, status_stated: bool, lines: str) -> str:
    """A COPY line of PIECE_LINE_COLUMNS (`lines` as COPY text)."""
    return f"{claim_uid}\t{source_line}\t{'t' if status_stated else 'f'}\t{lines}\n"


# The columns of a staged piece read back to combine it (`PieceAssembly`): where it is (a
# claim the upload `written` to `ingest.claims`, one staged in the `rest`, or a `piece`),
# these of CLAIM_COLUMNS, then PIECE_LINE_COLUMNS' `status_stated` and `lines`.
PIECE_COLUMNS = (
    "claim_uid", "claim_id", "payer_raw_name", "payer_raw_id", "status", "procedure_codes",
    "service_date", "submitted_date", "decision_date", "billed_cents", "allowed_cents",
    "paid_cents", "patient_responsibility_cents", "adjustments", "payer_claim_control_number",
    "source_line",
)  # fmt: skip


@dataclass
class Assembled:
    """What a run of read-back pieces made: COPY lines of the claims they combine into, the
    rejections of claims refused, and the uids of the refused claims' pieces the upload
    wrote to `ingest.claims`."""

    claims: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    refused_written: list[str] = field(default_factory=list)


class PieceAssembly:
    """The pieces of CSV claims an upload staged, read back in claim id and line order (rows
    of `origin` and PIECE_COLUMNS): each claim id's pieces combined into its claim, or refused
    (`claim_lines.ClaimAssembly`). Holds one claim id's pieces at a time."""

    def __init__(self, encoder: Encoder, max_claim_lines: int) -> None:
        self._encoder = encoder
        self._max_claim_lines = max_claim_lines
        self._claim_id: str | None = None
        self._assembly = ClaimAssembly(max_claim_lines)
        self._written: list[str] = []
        # Pieces that joined an earlier piece's claim, and pieces refused.
        self.pieces_combined = 0
        self.pieces_refused = 0
        # Combined claims that replace a piece the upload wrote to `ingest.claims`.
        self.written_replaced = 0

    def read(self, rows: Iterable[Sequence[Any]]) -> Assembled:
        assembled = Assembled()
        for row in rows:
            piece = _stored_piece(row)
            if piece.claim_id != self._claim_id:
                self._finish(assembled)
                self._claim_id = piece.claim_id
            if row[0] == "written":
                self._written.append(row[1])
            assembled.rejections += self._assembly.add(piece)
        return assembled

    def close(self) -> Assembled:
        assembled = Assembled()
        self._finish(assembled)
        return assembled

    def _finish(self, assembled: Assembled) -> None:
        assembly = self._assembly
        if not assembly.pieces:
            return
        claim, rejections = assembly.finish()
        if claim is None:
            assembled.rejections += rejections
            assembled.refused_written += self._written
            self.pieces_refused += assembly.pieces
        else:
            assembled.claims.append(self._encoder.claim_line(claim))
            self.pieces_combined += assembly.pieces - 1
            self.written_replaced += bool(self._written)
        self._assembly = ClaimAssembly(self._max_claim_lines)
        self._written = []


def _stored_piece(row: Sequence[Any]) -> ClaimRecord:
    """A piece as it was staged (a row of `origin`, PIECE_COLUMNS, `status_stated`, `lines`)."""
    (
        _, _, claim_id, payer_name, payer_id, status, codes, service_date, submitted_date,
        decision_date, billed, allowed, paid, patient, adjustments, control_number,
        source_line, stated, lines,
    ) = row  # fmt: skip
    listed = json.loads(lines) if lines else []
    return ClaimRecord(
        source_line=source_line,
        claim_id=claim_id,
        payer_name=payer_name,
        payer_id=payer_id,
        status=ClaimStatus(status),
        # A piece kept without its lines is one row that stated its status.
        status_stated=True if stated is None else stated,
        procedure_codes=tuple(codes),
        service_date=service_date,
        submitted_date=submitted_date,
        decision_date=decision_date,
        billed_cents=billed,
        allowed_cents=allowed,
        paid_cents=paid,
        patient_responsibility_cents=patient,
        adjustments=tuple(
            Adjustment(a["group"], a["reason"], a.get("cents", 0), a.get("line", 0))
            for a in adjustments
        ),
        lines=tuple(ServiceLine(*line[1:]) for line in listed),
        payer_claim_control_number=control_number,
        source_lines=tuple(line[0] for line in listed),
    )
