"""Caller identity: JWT verification, roles, and the tenant rule.

A token carries `sub`, `customer` (the tenant) and `role`. Production verifies people's
tokens against an issuer's JWKS, and the services' calls to each other (`service_token`)
with the HS256 secret they share (`JWT_SECRET`), which signs nothing else there: an HS256
token that names no service is refused. Local runs sign and verify every token with that
secret. `alg: none` and any algorithm other than the configured ones are refused by pyjwt
because the accepted list is explicit.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property

import jwt

from runtime import errors
from runtime.settings import Settings

HS_ALGORITHMS = ["HS256"]
# The subject of a service's own token: `service:ingest`.
SERVICE_SUBJECT = "service:"
JWKS_ALGORITHMS = ["RS256", "ES256"]
SERVICE_TOKEN_TTL_SECONDS = 300


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"
    SUPERUSER = "superuser"


@dataclass(frozen=True)
class Identity:
    subject: str
    customer: str
    role: Role

    def can_read(self, customer: str) -> bool:
        return self.role is Role.SUPERUSER or customer == self.customer

    @property
    def can_write(self) -> bool:
        return self.role in (Role.ADMIN, Role.SUPERUSER)


current_identity: ContextVar[Identity | None] = ContextVar("current_identity", default=None)


def require_identity() -> Identity:
    """The identity of the call being served; the identity interceptor always sets it."""
    identity = current_identity.get()
    if identity is None:
        raise errors.unauthenticated("no identity on this call")
    return identity


# Verified tokens remembered, at most this many, each at most this long (and never past its
# own expiry): a client's every call carries the same token, whose signature and claims need
# checking once. A key taken out of the JWKS stops tokens signed with it within the minute.
VERIFIED_TOKENS = 10_000
VERIFIED_SECONDS = 60.0


class TokenVerifier:
    """Verifies bearer tokens with the settings' HS256 secret or JWKS URL."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def verify(self, token: str) -> Identity:
        now = time.time()
        known = self._verified.get(token)
        if known is not None and now < known[1]:
            self._verified.move_to_end(token)
            return known[0]
        identity, expires = self._verify(token)
        self._verified[token] = (identity, min(expires, now + VERIFIED_SECONDS))
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return identity

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(self._settings.jwt_jwks_url, cache_keys=True)

    def _verify(self, token: str) -> tuple[Identity, float]:
        """The token's identity and when it expires, its signature and claims checked."""
        settings = self._settings
        services_only = False
        try:
            if settings.jwt_jwks_url and not (
                settings.jwt_secret and jwt.get_unverified_header(token).get("alg") == "HS256"
            ):
                key = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = JWKS_ALGORITHMS
            else:
                key = settings.jwt_secret
                algorithms = HS_ALGORITHMS
                services_only = bool(settings.jwt_jwks_url)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                options={"require": ["exp", "iss", "aud", "sub", "customer", "role"]},
            )
        except jwt.PyJWTError as exc:
            raise errors.unauthenticated(f"invalid token: {exc}") from exc
        if services_only and not str(claims["sub"]).startswith(SERVICE_SUBJECT):
            raise errors.unauthenticated(
                "invalid token: the services' secret signs their own calls only; people's "
                "tokens come from the issuer"
            )
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise errors.unauthenticated(f"invalid token: unknown role {claims['role']!r}") from exc
        identity = Identity(subject=str(claims["sub"]), customer=str(claims["customer"]), role=role)
        return identity, float(claims["exp"])

    def verify_header(self, authorization: str | None) -> Identity:
        """Identity from an `Authorization: Bearer <jwt>` value."""
        if not authorization:
            raise errors.unauthenticated("missing bearer token (Authorization: Bearer <jwt>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthenticated("Authorization header must be 'Bearer <jwt>'")
        return self.verify(token.strip())


def mint_token(
    settings: Settings, *, subject: str, customer: str, role: Role, ttl_seconds: int
) -> str:
    """A signed HS256 token; only possible where a local secret is configured."""
    if not settings.jwt_secret:
        raise RuntimeError("minting tokens needs JWT_SECRET (HS256); this process uses JWKS")
    now = int(time.time())
    claims = {
        "sub": subject,
        "customer": customer,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


class ServiceAuthorization:
    """The `Authorization` value of a service's calls on its own behalf: its token, minted
    again only once a fifth of its life is left (an HMAC signature every few minutes rather
    than one a call; a call in flight always has a minute or more of it)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._value = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        now = self._clock()
        if now >= self._renew_at:
            self._value = f"Bearer {service_token(self._settings)}"
            self._renew_at = now + SERVICE_TOKEN_TTL_SECONDS * 4 / 5
        return self._value


def require_service_signing(settings: Settings) -> None:
    """A service's calls to the others are signed with JWT_SECRET: where people's tokens are
    verified against a JWKS, the secret must be set as well, or no call between the
    services would be accepted. Raises RuntimeError saying so."""
    if settings.jwt_jwks_url and not settings.jwt_secret:
        raise RuntimeError(
            "JWT_JWKS_URL is set (people's tokens are verified against the issuer's keys), but "
            "JWT_SECRET is not: the services sign their calls to each other with it (HS256, "
            "shared by every service; the upstream-jwt Secret in Kubernetes)"
        )


def service_token(settings: Settings) -> str:
    """A short-lived superuser token with which a service calls another on its own behalf."""
    return mint_token(
        settings,
        subject=f"{SERVICE_SUBJECT}{settings.service}",
        customer="*",
        role=Role.SUPERUSER,
        ttl_seconds=SERVICE_TOKEN_TTL_SECONDS,
    )
