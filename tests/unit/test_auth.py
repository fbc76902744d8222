"""Bearer tokens: who a caller is, which tokens are refused, and what each role may do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from runtime import auth
from runtime.auth import Identity, Role, TokenVerifier
from runtime.errors import ApiError
from runtime.settings import Settings

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"
SETTINGS = Settings.from_env("tests", {"JWT_SECRET": SECRET})
VERIFIER = TokenVerifier(SETTINGS)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "user-1",
        "customer": "acme",
        "role": "admin",
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def signed(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def refused(token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        VERIFIER.verify(token)
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "UNAUTHENTICATED"
    return caught.value


@pytest.mark.parametrize("role", list(Role))
def test_a_valid_token_gives_the_callers_identity(role: Role) -> None:
    identity = VERIFIER.verify(signed(role=role.value, sub="ana", customer="acme"))
    assert identity == Identity(subject="ana", customer="acme", role=role)


def test_an_expired_token_is_refused() -> None:
    now = int(time.time())
    assert "expired" in refused(signed(iat=now - 600, exp=now - 10)).message


def test_a_token_verified_once_is_refused_when_it_expires_later() -> None:
    verifier = TokenVerifier(SETTINGS)
    now = int(time.time())
    token = signed(iat=now, exp=now + 1)

    first = verifier.verify(token)
    again = verifier.verify(token)  # remembered
    time.sleep(max(0.0, now + 1.05 - time.time()))
    with pytest.raises(ApiError) as late:
        verifier.verify(token)

    assert first == again == Identity(subject="user-1", customer="acme", role=Role.ADMIN)
    assert "expired" in late.value.message


def test_a_remembered_token_does_not_vouch_for_an_altered_copy() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = signed(customer="acme")
    verifier.verify(token)
    header, _, signature = token.split(".")
    other = jwt.encode(claims(customer="globex"), "another-secret-0123456789-abcdefghijkl")
    altered = ".".join([header, other.split(".")[1], signature])

    with pytest.raises(ApiError):
        verifier.verify(altered)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"customer": None}, "customer"),
        ({"role": None}, "role"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"aud": None}, "aud"),
    ],
)
def test_a_token_with_wrong_or_missing_claims_is_refused(
    overrides: dict[str, Any], problem: str
) -> None:
    assert problem in refused(signed(**overrides)).message.lower()


@pytest.mark.parametrize("role", ["owner", "ADMIN", "", 5, ["admin"]])
def test_an_unknown_role_is_refused(role: Any) -> None:
    assert "role" in refused(signed(role=role)).message


def test_an_unsigned_alg_none_token_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
    assert "alg" in refused(token).message


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = jwt.encode(claims(), "another-secret-that-is-also-32-bytes-long", algorithm="HS256")
    assert "Signature verification failed" in refused(token).message


def test_an_rs256_token_is_refused_where_hs256_is_configured() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(role="superuser"), key, algorithm="RS256")
    assert "alg" in refused(token).message


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", signed()[:-4]])
def test_garbage_is_refused(token: str) -> None:
    refused(token)


@pytest.mark.parametrize(
    "header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token x"]
)
def test_an_authorization_header_without_a_bearer_token_is_refused(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        VERIFIER.verify_header(header)
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in caught.value.message


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_bearer_header_gives_the_identity(scheme: str) -> None:
    identity = VERIFIER.verify_header(f"{scheme} {signed(role='viewer')}")
    assert identity == Identity(subject="user-1", customer="acme", role=Role.VIEWER)


def test_a_bearer_header_with_a_bad_token_is_refused() -> None:
    with pytest.raises(ApiError) as caught:
        VERIFIER.verify_header(f"Bearer {signed(aud='other')}")
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("role", "own", "other", "write"),
    [
        (Role.VIEWER, True, False, False),
        (Role.ADMIN, True, False, True),
        (Role.SUPERUSER, True, True, True),
    ],
)
def test_what_each_role_may_do(role: Role, own: bool, other: bool, write: bool) -> None:
    identity = Identity(subject="u", customer="acme", role=role)
    assert identity.can_read("acme") is own
    assert identity.can_read("globex") is other
    assert identity.can_write is write


def test_a_minted_token_verifies_to_the_same_identity() -> None:
    token = auth.mint_token(
        SETTINGS, subject="ops", customer="globex", role=Role.VIEWER, ttl_seconds=60
    )
    assert VERIFIER.verify(token) == Identity(subject="ops", customer="globex", role=Role.VIEWER)


def test_a_minted_token_stops_working_when_its_ttl_has_passed() -> None:
    token = auth.mint_token(
        SETTINGS, subject="ops", customer="acme", role=Role.ADMIN, ttl_seconds=-1
    )
    assert "expired" in refused(token).message


def test_a_token_minted_for_another_audience_is_refused() -> None:
    other = Settings.from_env("tests", {"JWT_SECRET": SECRET, "JWT_AUDIENCE": "elsewhere"})
    token = auth.mint_token(other, subject="ops", customer="acme", role=Role.ADMIN, ttl_seconds=60)
    assert "audience" in refused(token).message.lower()


def test_minting_needs_a_local_secret() -> None:
    jwks_only = Settings.from_env(
        "tests", {"JWT_JWKS_URL": "https://issuer.example/jwks.json", "PAGE_TOKEN_KEYS": "k" * 32}
    )
    with pytest.raises(RuntimeError, match="JWT_SECRET"):
        auth.mint_token(jwks_only, subject="s", customer="c", role=Role.ADMIN, ttl_seconds=60)


def test_a_service_token_is_a_superuser_named_after_the_service() -> None:
    identity = VERIFIER.verify(auth.service_token(SETTINGS))
    assert identity == Identity(subject="service:tests", customer="*", role=Role.SUPERUSER)
    assert identity.can_read("any-customer") and identity.can_write


def test_a_services_own_calls_reuse_its_token_until_a_fifth_of_its_life_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [time.time()]
    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    authorization = auth.ServiceAuthorization(SETTINGS, clock=lambda: now[0])

    first = authorization()
    now[0] += auth.SERVICE_TOKEN_TTL_SECONDS * 4 / 5 - 1
    assert authorization() == first
    now[0] += 1
    renewed = authorization()

    def expiry(value: str) -> int:
        scheme, token = value.split(" ")
        assert scheme == "Bearer"
        return int(jwt.decode(token, options={"verify_signature": False})["exp"])

    assert renewed != first
    assert expiry(renewed) - expiry(first) == auth.SERVICE_TOKEN_TTL_SECONDS * 4 / 5
    assert VERIFIER.verify(first.split(" ")[1]).role is Role.SUPERUSER


@pytest.fixture
def no_identity() -> Iterator[None]:
    reset = auth.current_identity.set(None)
    yield
    auth.current_identity.reset(reset)


@pytest.mark.usefixtures("no_identity")
def test_a_call_without_identity_is_unauthenticated() -> None:
    with pytest.raises(ApiError) as caught:
        auth.require_identity()
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.usefixtures("no_identity")
def test_the_identity_of_the_call_is_the_one_set_for_it() -> None:
    identity = Identity(subject="u", customer="acme", role=Role.ADMIN)
    auth.current_identity.set(identity)
    assert auth.require_identity() is identity
