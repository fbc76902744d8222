"""Production verification: RS256 tokens checked against an issuer's JWKS over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.utils import base64url_encode

from runtime.auth import Role, TokenVerifier
from runtime.errors import ApiError
from runtime.settings import Settings

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
