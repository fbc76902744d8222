"""Rate limits per tenant and per client address: token buckets, one per key, in each
gateway replica's memory (so a tenant's real limit is the configured rate times the
replicas).

A bucket holds up to `burst` requests and refills at `rate` a second. Each API request takes
one token from its client address's bucket (before the token is checked, so floods without
credentials are held too) and one from its tenant's. Without a token left: 429 with
`Retry-After`. Every API answer says where the caller stands, in the IETF draft's headers:
`RateLimit-Limit` (the burst), `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the
bucket is full again) — of whichever bucket is emptier.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc

from runtime import errors

# Buckets kept, least recently used dropped first: a full bucket is the same as none.
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Standing:
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: float | None  # set when the request was refused

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The header fields, as an ASGI answer's head holds them."""
        return [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_seconds),
        ]


class TokenBuckets:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0 and self._burst > 0

    def take(self, key: str, now: float | None = None) -> Standing:
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.pop(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - updated) * self._rate)
        retry_after = None
        if tokens >= 1:
            tokens -= 1
        else:
            retry_after = (1 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        return Standing(
            self._burst,
            int(tokens),
            math.ceil((self._burst - tokens) / self._rate),
            retry_after,
        )


class RateLimits:
    """The client and tenant buckets of one gateway."""

    def __init__(
        self, tenant_rate: float, tenant_burst: int, client_rate: float, client_burst: int
    ) -> None:
        self._tenants = TokenBuckets(tenant_rate, tenant_burst)
        self._clients = TokenBuckets(client_rate, client_burst)

    def client(self, address: str) -> Standing | None:
        return self._check(self._clients, address, "client address")

    def tenant(self, customer: str) -> Standing | None:
        return self._check(self._tenants, customer, "customer")

    @staticmethod
    def _check(buckets: TokenBuckets, key: str, what: str) -> Standing | None:
        if not buckets.enabled:
            return None
        standing = buckets.take(key)
        if standing.retry_after_seconds is not None:
            raise RateLimitedError(what, standing)
        return standing


class RateLimitedError(Exception):
    def __init__(self, what: str, standing: Standing) -> None:
        super().__init__(what)
        self.standing = standing
        retry = standing.retry_after_seconds or 1.0
        self.error = errors.ApiError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many requests from this {what}; retry after {math.ceil(retry)} s",
            reason="RATE_LIMITED",
            retry_after_seconds=retry,
        )


def emptier(*standings: Standing | None) -> Standing | None:
    known = [s for s in standings if s is not None]
    return min(known, key=lambda s: s.remaining) if known else None
