"""Process configuration from environment variables, with defaults that run locally.

One `Settings` object per process, built once by `Settings.from_env(service)` at start-up
and passed down; nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / ".local"

DEFAULT_GRPC_PORTS = {"ingest": 50051, "drift": 50052, "reports": 50053}
DEFAULT_METRICS_PORTS = {"ingest": 9101, "drift": 9102, "reports": 9103}


@dataclass(frozen=True)
class Settings:
    """Everything a service or the gateway reads from its environment."""

    service: str
    host: str
    grpc_port: int
    metrics_port: int
    gateway_port: int
    database_url: str
    database_pool_size: int
    # Addresses of the three services, as `host:port` or a `dns:///` target.
    ingest_target: str
    drift_target: str
    reports_target: str
    jwt_secret: str
    jwt_jwks_url: str
    jwt_issuer: str
    jwt_audience: str
    shutdown_grace_seconds: float
    client_timeout_seconds: float
    # Deadline of streamed calls (uploads, downloads), which run as long as the file does.
    stream_timeout_seconds: float
    keepalive_time_seconds: int
    max_connection_age_seconds: int
    log_level: str
    # Largest upload ingest accepts, in bytes.
    max_upload_bytes: int
    # Claims staged before ingest writes them while the rest of the file streams in.
    upload_merge_rows: int

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def target(name: str) -> str:
            return env.get(f"{name.upper()}_TARGET", f"127.0.0.1:{DEFAULT_GRPC_PORTS[name]}")

        jwks_url = env.get("JWT_JWKS_URL", "")
        secret = env.get("JWT_SECRET", "")
        if not secret and not jwks_url:
            # Locally a secret is generated once, so `make token` and `make run` agree.
            from runtime.local_secrets import jwt_secret

            secret = jwt_secret()
        return cls(
            service=service,
            host=env.get("HOST", "127.0.0.1"),
            grpc_port=int(env.get("GRPC_PORT", DEFAULT_GRPC_PORTS.get(service, 50050))),
            metrics_port=int(env.get("METRICS_PORT", DEFAULT_METRICS_PORTS.get(service, 9100))),
            gateway_port=int(env.get("GATEWAY_PORT", "8080")),
            database_url=env.get("DATABASE_URL", ""),
            database_pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            ingest_target=target("ingest"),
            drift_target=target("drift"),
            reports_target=target("reports"),
            jwt_secret=secret,
            jwt_jwks_url=jwks_url,
            jwt_issuer=env.get("JWT_ISSUER", "upstream-local"),
            jwt_audience=env.get("JWT_AUDIENCE", "upstream"),
            shutdown_grace_seconds=float(env.get("SHUTDOWN_GRACE_SECONDS", "20")),
            client_timeout_seconds=float(env.get("GRPC_CLIENT_TIMEOUT_SECONDS", "10")),
            stream_timeout_seconds=float(env.get("GRPC_STREAM_TIMEOUT_SECONDS", "900")),
            keepalive_time_seconds=int(env.get("GRPC_KEEPALIVE_TIME_SECONDS", "30")),
            max_connection_age_seconds=int(env.get("GRPC_MAX_CONNECTION_AGE_SECONDS", "300")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", str(2 * 1024**3))),
            upload_merge_rows=int(env.get("UPLOAD_MERGE_ROWS", "100000")),
        )
