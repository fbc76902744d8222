"""Turning parsed rows into what PostgreSQL loads: COPY text lines, claim keys, partial sums.

This is the CPU side of an upload, run in a worker thread while the file streams in (one
chunk at a time): each claim becomes one line in the column order of `ingest.claims`, split
around its canonical payer (known only once the payer row exists), with its key and what it
adds to the statistics. Whether a claim may repeat one seen earlier in the same upload is
decided here too, in fixed memory (`SeenClaims`), so the loader can copy claims that are
certainly new straight into `ingest.claims`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from services.ingest.claim_statistics import Counted, claim_code_group, counted
from services.ingest.copy_text import copy_text
from services.ingest.daily_statistics import PartialSums
from services.ingest.parsing import Batch
from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus, Rejection

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

_SPACES = re.compile(r"\s+")
_NULL = "\\N"


@functools.lru_cache(maxsize=4096)
def name_key(raw_name: str) -> str:
    """How payer names are compared: case and spacing do not matter."""
    return _SPACES.sub(" ", raw_name.strip()).upper()


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
def _reasons_segment(adjustments: tuple[Adjustment, ...], denial_codes: tuple[str, ...]) -> str:
    """`adjustments` and `denial_codes` (and a tab)."""
    return f"{_adjustments_json(adjustments)}\t{_array(denial_codes)}\t"


@functools.lru_cache(maxsize=4096)
def _adjustments_json(adjustments: tuple[Adjustment, ...]) -> str:
    # Group and reason codes are validated alphanumerics, so they need no JSON escaping.
    return copy_text(
        "["
        + ",".join(
            f'{{"group":"{a.group_code}","reason":"{a.reason_code}",'
            f'"cents":{a.amount_cents},"line":{a.line_number}}}'
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

    reversals: int = 0
    # The partial sums of the new claims of this and earlier chunks, when the encoder
    # counts them (see `Encoder`) and it is time to write them.
    sums: PartialSums | None = None

    # Claims not seen earlier in the upload (each once: a later row of the chunk wins).
    fresh: list[StagedClaim] = field(default_factory=list)
    # Claims that may repeat one seen earlier in the upload, and reversals.
    repeated: list[StagedClaim] = field(default_factory=list)
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
        halves = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2)
        first, step = halves[:, 0], halves[:, 1] | np.uint64(1)
        positions = np.stack(
            [(first + np.uint64(i) * step) & np.uint64(self.BITS - 1) for i in range(self.HASHES)]
        )
        cells, masks = positions >> np.uint64(3), np.left_shift(1, positions & np.uint64(7))
        masks = masks.astype(np.uint8)
        seen = np.all(self._bits[cells] & masks, axis=0)
        np.bitwise_or.at(self._bits, cells.ravel(), masks.ravel())
        return seen


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
    ) -> None:
        # Canonical payers as the loader learns them (read here, written there).
        self._canonical = canonical
        self._customer = copy_text(customer)
        self._upload_id = copy_text(upload_id)
        self._count_fresh = count_fresh
        self._count_every = count_every
        self._counted = 0
        self._sums = PartialSums()
        self._seen = SeenClaims()
        self._payers: set[str] = set()
        self._rejection_seq = 0

    def take_sums(self) -> PartialSums:
        sums, self._sums, self._counted = self._sums, PartialSums(), 0
        return sums

    def encode(self, batch: Batch) -> Staged:
        staged = Staged()
        distinct: dict[str, tuple[StagedClaim, bytes]] = {}
        payers = self._payers
        for claim in batch.claims:
            key, key_text = _name_key_text(claim.payer_name)
            # A claim's uid: the md5 of (payer name key, claim id), its first 20 hex digits.
            digest = hashlib.md5(f"{key}|{claim.claim_id}".encode()).digest()
            encoded = self._claim(claim, key_text, payer_uid(key, claim.payer_id), digest)
            if claim.status is ClaimStatus.REVERSED:
                staged.repeated.append(encoded)
                staged.reversals += 1
                continue
            if encoded.payer_uid not in payers:
                payers.add(encoded.payer_uid)
                staged.new_payers.append(
                    (encoded.payer_uid, key, claim.payer_id, display_name(claim.payer_name))
                )
            # A claim twice in a chunk: the later row wins.
            distinct.pop(encoded.claim_uid, None)
            distinct[encoded.claim_uid] = (encoded, digest)
        seen = self._seen.check_and_add([digest for _, digest in distinct.values()])
        fresh, repeated = staged.fresh, staged.repeated
        for (encoded, _), maybe_seen in zip(distinct.values(), seen.tolist(), strict=True):
            (repeated if maybe_seen else fresh).append(encoded)
        if self._count_fresh:
            add = self._sums.add
            for encoded in fresh:
                add(*encoded.counted)
            self._counted += len(fresh)
            if self._counted >= self._count_every:
                staged.sums = self.take_sums()
        if batch.rejections:
            lines = []
            for rejection in batch.rejections:
                self._rejection_seq += 1
                lines.append(self._rejection_line(rejection, self._rejection_seq))
            staged.rejections = "".join(lines)
            staged.rejection_count = len(lines)
        return staged

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
            f"{claim.patient_responsibility_cents}\t{_reasons_segment(claim.adjustments, codes)}"
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
