"""Secrets generated once for local runs and kept in `.local/secrets.json` (mode 0600).

Several processes start together under `make run`, so reads and updates hold an exclusive
`fcntl` lock and the file is replaced atomically: a secret, once handed out, never changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from runtime.settings import LOCAL_DIR

SECRETS_FILE = LOCAL_DIR / "secrets.json"


def load_or_create(key: str, factory: Callable[[], str], path: Path = SECRETS_FILE) -> str:
    """Return the secret stored under `key`, generating it with `factory` on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives in its own file because os.replace swaps the secrets file's inode.
    lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if key not in stored:
            stored[key] = factory()
            _write_privately(path, stored)
        return stored[key]
    finally:
        os.close(lock_fd)


def jwt_secret() -> str:
    """The HS256 secret that local tokens are signed and verified with."""
    return load_or_create("jwt_secret", lambda: secrets.token_urlsafe(32))


def page_token_key() -> str:
    """The key local page tokens are signed and verified with."""
    return load_or_create("page_token_key", lambda: secrets.token_urlsafe(32))


def _write_privately(path: Path, stored: dict[str, str]) -> None:
    """Write `stored` as JSON to `path`, mode 0600, all or nothing."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(stored, file, indent=2, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
