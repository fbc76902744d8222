"""How a process finds the secret its tokens are verified with, or says why it cannot."""

from __future__ import annotations

import errno
import os

import pytest

from runtime import local_secrets
from runtime.settings import Settings


def test_a_process_that_can_keep_no_local_secret_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a read-only container with neither JWT_SECRET nor a JWKS URL, the process refuses
    to start saying so, rather than failing on a file it cannot write."""

    def read_only() -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(local_secrets.SECRETS_FILE))

    monkeypatch.setattr(local_secrets, "jwt_secret", read_only)
    monkeypatch.setattr(local_secrets, "page_token_key", read_only)
    for env, missing, remedy in (
        ({}, "neither JWT_SECRET nor JWT_JWKS_URL is set", "set JWT_SECRET"),
        ({"JWT_SECRET": "s" * 32}, "PAGE_TOKEN_KEYS is not set", "upstream-page-tokens"),
    ):
        with pytest.raises(RuntimeError) as refused:
            Settings.from_env("drift", env)
        said = str(refused.value)
        assert missing in said and "Read-only file system" in said and remedy in said
