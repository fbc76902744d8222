"""Production verification: RS256 tokens checked against an issuer's JWKS over real HTTP,
the services' calls to each other signed with their shared secret, and a whole system run
that way."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.utils import base64url_encode

from devtools.stack import wait_until
from runtime.auth import Role, TokenVerifier, mint_token, require_service_signing, service_token
from runtime.errors import ApiError
from runtime.settings import Settings
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_webhook_deliveries import create_webhook
from tests.reports.webhook_receiver import receiving
from tests.scenarios import DETECTION_SECONDS, DRIFTED_PAYER, drifted_history
from tests.system import SERVICES, TEST_JWT_SECRET, running_system

ISSUER = "https://issuer.example.com/"
# Production settings state the page-token keys every replica shares.
PRODUCTION_KEYS = {"PAGE_TOKEN_KEYS": "k" * 32}


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**public_jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]})

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    finally:
        server.shutdown()


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "lead@acme",
        "customer": "acme",
        "role": "viewer",
        "iss": ISSUER,
        "aud": "upstream",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    return claims


def test_tokens_signed_by_the_issuer_are_accepted(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    settings = Settings.from_env(
        "tests", {**PRODUCTION_KEYS, "JWT_JWKS_URL": jwks_url, "JWT_ISSUER": ISSUER}
    )
    token = jwt.encode(_claims(), signing_key, algorithm="RS256", headers={"kid": "key-1"})
    identity = TokenVerifier(settings).verify(token)
    assert (identity.subject, identity.customer, identity.role) == (
        "lead@acme",
        "acme",
        Role.VIEWER,
    )


def _hs256_signed_with_public_key(signing_key: rsa.RSAPrivateKey) -> str:
    """The algorithm-confusion attack: HS256 keyed with the issuer's public key, which anyone
    can fetch. PyJWT refuses to make such a token, so it is put together by hand."""
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    signing_input = b".".join(
        base64url_encode(json.dumps(part).encode()) for part in (header, _claims())
    )
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64url_encode(signature)).decode()


def test_production_settings_refuse_to_start_without_shared_page_token_keys(
    jwks_url: str,
) -> None:
    with pytest.raises(RuntimeError, match="PAGE_TOKEN_KEYS is not set"):
        Settings.from_env("tests", {"JWT_JWKS_URL": jwks_url, "JWT_ISSUER": ISSUER})


def test_other_keys_and_symmetric_tricks_are_refused(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    settings = Settings.from_env(
        "tests", {**PRODUCTION_KEYS, "JWT_JWKS_URL": jwks_url, "JWT_ISSUER": ISSUER}
    )
    verifier = TokenVerifier(settings)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "key-1"})
    unknown_kid = jwt.encode(_claims(), signing_key, algorithm="RS256", headers={"kid": "nope"})
    refusals = {
        forged: "Signature verification failed",
        unknown_kid: 'Unable to find a signing key that matches: "nope"',
        _hs256_signed_with_public_key(signing_key): "The specified alg value is not allowed",
    }
    for token, why in refusals.items():
        with pytest.raises(ApiError) as caught:
            verifier.verify(token)
        assert (caught.value.reason, caught.value.message) == (
            "UNAUTHENTICATED",
            f"invalid token: {why}",
        )


SERVICES_SECRET = "services-secret-with-enough-entropy-for-hs256"


def test_the_services_own_calls_are_signed_with_their_shared_secret_and_nothing_else(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    """Beside the issuer's keys, the services' secret verifies their tokens to each other,
    and only those: a person's token made with it is refused, and so is the
    algorithm-confusion token."""
    env = {**PRODUCTION_KEYS, "JWT_JWKS_URL": jwks_url, "JWT_ISSUER": ISSUER}
    settings = Settings.from_env("drift", {**env, "JWT_SECRET": SERVICES_SECRET})
    verifier = TokenVerifier(settings)
    person = jwt.encode(_claims(), signing_key, algorithm="RS256", headers={"kid": "key-1"})
    made_up = mint_token(
        settings, subject="admin@acme", customer="acme", role=Role.ADMIN, ttl_seconds=60
    )

    service = verifier.verify(service_token(settings))
    assert (service.subject, service.customer, service.role) == (
        "service:drift",
        "*",
        Role.SUPERUSER,
    )
    assert verifier.verify(person).subject == "lead@acme"
    for token, why in (
        (made_up, "the services' secret signs their own calls only"),
        (_hs256_signed_with_public_key(signing_key), "Signature verification failed"),
    ):
        with pytest.raises(ApiError) as caught:
            verifier.verify(token)
        assert caught.value.reason == "UNAUTHENTICATED" and why in caught.value.message
    # Without the secret no service could call another: a service refuses to start.
    with pytest.raises(RuntimeError, match="JWT_SECRET is not"):
        require_service_signing(Settings.from_env("drift", env))


def test_a_system_verifying_people_against_the_issuer_works_end_to_end(
    postgres: PostgresUnderTest, signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    """Every process verifies people's tokens against the issuer's JWKS, as in production:
    an upload with such a token is analysed (ingest's outbox asks drift for a run, drift
    reads ingest's statistics, reports gets the events — each a call between the services,
    signed with their secret) and its drift reaches a webhook; a person's token signed with
    the services' secret is refused at the gateway."""
    customer = "jwks" + uuid.uuid4().hex[:8]

    def bearer(role: str) -> dict[str, str]:
        claims = _claims(sub=f"{role}@{customer}", customer=customer, role=role)
        token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "key-1"})
        return {"Authorization": f"Bearer {token}"}

    made_up = mint_token(
        Settings.from_env("tests", {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": ISSUER}),
        subject=f"admin@{customer}",
        customer=customer,
        role=Role.ADMIN,
        ttl_seconds=60,
    )
    with (
        own_database(postgres) as database,
        running_system(
            {service: database.url(service) for service in SERVICES},
            JWT_JWKS_URL=jwks_url,
            JWT_ISSUER=ISSUER,
        ) as system,
        receiving() as receiver,
        httpx.Client(base_url=system.gateway_url, headers=bearer("admin"), timeout=60) as admin,
    ):
        create_webhook(admin, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        uploaded = admin.post(
            f"/v1/customers/{customer}/uploads",
            content=drifted_history(customer).encode(),
            headers={"Content-Type": "text/csv"},
        )
        wait_until("a webhook delivery", receiver.received, system.stack, DETECTION_SECONDS)
        with httpx.Client(base_url=system.gateway_url, headers=bearer("viewer")) as viewer:
            events = viewer.get(f"/v1/customers/{customer}/driftEvents").json()["driftEvents"]
        refused = httpx.get(
            f"{system.gateway_url}/v1/customers/{customer}/driftEvents",
            headers={"Authorization": f"Bearer {made_up}"},
        )

    assert uploaded.status_code == 200, uploaded.text
    assert any(e["payer"] == DRIFTED_PAYER for e in events)
    assert refused.status_code == 401
    assert "the services' secret signs their own calls only" in refused.text
