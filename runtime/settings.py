"""Process configuration from environment variables, with defaults that run locally.

One `Settings` object per process, built once by `Settings.from_env(service)` at start-up
and passed down; nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / ".local"

DEFAULT_GRPC_PORTS = {"ingest": 50051, "drift": 50052, "reports": 50053}
DEFAULT_METRICS_PORTS = {"ingest": 9101, "drift": 9102, "reports": 9103}
# Retries of a webhook delivery over about a day: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_DELAYS = "5,300,1800,7200,18000,36000,36000"


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
    # A pooled connection idle longer than this is checked before use (see runtime.db).
    database_ping_after_idle_seconds: float
    # Addresses of the three services, as `host:port` or a `dns:///` target.
    ingest_target: str
    drift_target: str
    reports_target: str
    jwt_secret: str
    jwt_jwks_url: str
    jwt_issuer: str
    jwt_audience: str
    # Page tokens are signed with the first key and verified with any; every replica shares them.
    page_token_keys: tuple[str, ...]
    shutdown_grace_seconds: float
    client_timeout_seconds: float
    # Deadline of streamed calls (uploads, downloads), which run as long as the file does.
    stream_timeout_seconds: float
    keepalive_time_seconds: int
    max_connection_age_seconds: int
    # gRPC server reflection (`grpcurl list`): on for local runs, off in production.
    grpc_reflection: bool
    log_level: str
    # Share of successful calls faster than `rpc_log_slow_ms` whose "rpc handled" line is
    # written (each such line says the rate); failed and slow calls are always logged.
    rpc_log_sample_rate: float
    rpc_log_slow_ms: float
    # Largest upload ingest accepts, in bytes.
    max_upload_bytes: int
    # Claims staged before ingest writes them while the rest of the file streams in.
    upload_merge_rows: int
    # Ingest packs months' entries narrow (migration ingest 0011); off while a pod of a
    # release that reads only triplets may still run.
    narrow_month_entries: bool
    # Ingest stores a claim's adjustments without their zero amount and line (a CSV's codes);
    # off while a pod of a release that reads only all four fields may still run.
    compact_adjustments: bool
    # Gateway: the whole request head must arrive within this many seconds of its first byte,
    # and a request body may pause at most this long between reads (and must then average
    # 500 bytes a second); else 408.
    gateway_header_timeout_seconds: float
    gateway_body_timeout_seconds: float
    # Port serving the gateway's /metrics instead of the public port; None: the public port.
    gateway_metrics_port: int | None
    # Web origins (`https://app.example.com`) whose pages may call the gateway (CORS).
    cors_allowed_origins: tuple[str, ...]
    # Requests a second (and the burst allowed above it) per tenant and per client address,
    # in each gateway replica; a rate of 0 turns that limit off.
    rate_limit_tenant_per_second: float
    rate_limit_tenant_burst: int
    rate_limit_client_per_second: float
    rate_limit_client_burst: int
    # Outbox relays: the wait before a failed event's first retry (it doubles after each
    # failure, up to five minutes).
    outbox_first_backoff_seconds: float
    # Webhooks: receivers on loopback addresses (and plain http:// to them) are accepted; for
    # local runs and tests only, never in production.
    webhook_allow_loopback: bool
    # Names resolved to fixed addresses before DNS is asked, like a hosts file ("name=address,
    # …"); the addresses still pass the same checks as DNS answers.
    webhook_host_overrides: tuple[tuple[str, str], ...]
    # Seconds before each retry of a failed delivery (before jitter); one attempt more than
    # there are delays.
    webhook_retry_delays_seconds: tuple[float, ...]
    webhook_attempt_timeout_seconds: float
    # An attempt's lease is its timeout plus this: a process that dies mid-attempt lets
    # another send the delivery again (same webhook-id) once the lease ends.
    webhook_lease_margin_seconds: float
    # Attempts in flight at once per process; one webhook has at most one.
    webhook_concurrency: int
    # Reports built at once per process, and the lease a build renews while it runs: a
    # process that dies lets another build its reports once the lease ends.
    report_build_concurrency: int
    report_lease_seconds: float
    # Alert email goes through this SMTP server, from `smtp_from`; STARTTLS and a login
    # where set (a login is sent only over STARTTLS, or to a server on loopback).
    smtp_host: str
    smtp_port: int
    smtp_from: str
    smtp_starttls: bool
    smtp_username: str
    smtp_password: str
    # Where people reach Upstream (the gateway or the web app in front of it): alerts link
    # to it.
    public_base_url: str
    # Retention (runtime/retention.py): claims and their statistics kept this many years
    # and audit entries this many days (0: kept for ever), per customer where
    # `retention_overrides` names one; purged every `retention_interval_seconds`, in
    # transactions of at most `retention_batch_rows` rows.
    retention_claims_years: int = 0
    retention_audit_days: int = 0
    retention_overrides: tuple[tuple[str, int | None, int | None], ...] = ()
    retention_interval_seconds: float = 3600.0
    retention_batch_rows: int = 5000

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

            secret = _kept_locally(
                jwt_secret,
                "neither JWT_SECRET nor JWT_JWKS_URL is set",
                "set JWT_SECRET (the upstream-jwt Secret in Kubernetes)",
            )
        return cls(
            service=service,
            host=env.get("HOST", "127.0.0.1"),
            grpc_port=int(env.get("GRPC_PORT", DEFAULT_GRPC_PORTS.get(service, 50050))),
            metrics_port=int(env.get("METRICS_PORT", DEFAULT_METRICS_PORTS.get(service, 9100))),
            gateway_port=int(env.get("GATEWAY_PORT", "8080")),
            database_url=env.get("DATABASE_URL", ""),
            database_pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            database_ping_after_idle_seconds=float(
                env.get("DATABASE_PING_AFTER_IDLE_SECONDS", "0.5")
            ),
            ingest_target=target("ingest"),
            drift_target=target("drift"),
            reports_target=target("reports"),
            jwt_secret=secret,
            jwt_jwks_url=jwks_url,
            jwt_issuer=env.get("JWT_ISSUER", "upstream-local"),
            jwt_audience=env.get("JWT_AUDIENCE", "upstream"),
            page_token_keys=_page_token_keys(env),
            shutdown_grace_seconds=float(env.get("SHUTDOWN_GRACE_SECONDS", "20")),
            client_timeout_seconds=float(env.get("GRPC_CLIENT_TIMEOUT_SECONDS", "10")),
            stream_timeout_seconds=float(env.get("GRPC_STREAM_TIMEOUT_SECONDS", "900")),
            keepalive_time_seconds=int(env.get("GRPC_KEEPALIVE_TIME_SECONDS", "30")),
            max_connection_age_seconds=int(env.get("GRPC_MAX_CONNECTION_AGE_SECONDS", "300")),
            grpc_reflection=_flag(env.get("GRPC_REFLECTION", "true")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            rpc_log_sample_rate=_share(env, "RPC_LOG_SAMPLE_RATE", "1"),
            rpc_log_slow_ms=float(env.get("RPC_LOG_SLOW_MS", "500")),
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", str(2 * 1024**3))),
            upload_merge_rows=int(env.get("UPLOAD_MERGE_ROWS", "100000")),
            narrow_month_entries=_flag(env.get("NARROW_MONTH_ENTRIES", "true")),
            compact_adjustments=_flag(env.get("COMPACT_ADJUSTMENTS", "true")),
            gateway_header_timeout_seconds=float(env.get("GATEWAY_HEADER_TIMEOUT_SECONDS", "10")),
            gateway_body_timeout_seconds=float(env.get("GATEWAY_BODY_TIMEOUT_SECONDS", "10")),
            gateway_metrics_port=int(env.get("GATEWAY_METRICS_PORT") or 0) or None,
            rate_limit_tenant_per_second=float(env.get("RATE_LIMIT_TENANT_PER_SECOND", "100")),
            rate_limit_tenant_burst=int(env.get("RATE_LIMIT_TENANT_BURST", "200")),
            rate_limit_client_per_second=float(env.get("RATE_LIMIT_CLIENT_PER_SECOND", "200")),
            rate_limit_client_burst=int(env.get("RATE_LIMIT_CLIENT_BURST", "400")),
            cors_allowed_origins=tuple(
                origin.strip().rstrip("/")
                for origin in env.get("CORS_ALLOWED_ORIGINS", "").split(",")
                if origin.strip()
            ),
            webhook_allow_loopback=_flag(env.get("WEBHOOK_ALLOW_LOOPBACK", "false")),
            webhook_host_overrides=_host_overrides(env.get("WEBHOOK_HOST_OVERRIDES", "")),
            webhook_retry_delays_seconds=tuple(
                float(delay)
                for delay in env.get("WEBHOOK_RETRY_DELAYS_SECONDS", DEFAULT_RETRY_DELAYS).split(
                    ","
                )
                if delay.strip()
            ),
            outbox_first_backoff_seconds=float(env.get("OUTBOX_FIRST_BACKOFF_SECONDS", "1")),
            webhook_attempt_timeout_seconds=float(env.get("WEBHOOK_ATTEMPT_TIMEOUT_SECONDS", "10")),
            webhook_lease_margin_seconds=float(env.get("WEBHOOK_LEASE_MARGIN_SECONDS", "30")),
            webhook_concurrency=int(env.get("WEBHOOK_CONCURRENCY", "16")),
            report_build_concurrency=int(env.get("REPORT_BUILD_CONCURRENCY", "2")),
            report_lease_seconds=float(env.get("REPORT_LEASE_SECONDS", "60")),
            smtp_host=env.get("SMTP_HOST", "127.0.0.1"),
            smtp_port=int(env.get("SMTP_PORT", "25")),
            smtp_from=env.get("SMTP_FROM", "Upstream <alerts@localhost>"),
            smtp_starttls=_flag(env.get("SMTP_STARTTLS", "false")),
            smtp_username=env.get("SMTP_USERNAME", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8080").rstrip("/"),
            retention_claims_years=_count(env, "RETENTION_CLAIMS_YEARS", "0"),
            retention_audit_days=_count(env, "RETENTION_AUDIT_DAYS", "0"),
            retention_overrides=_retention_overrides(env.get("RETENTION_OVERRIDES", "")),
            retention_interval_seconds=float(env.get("RETENTION_INTERVAL_SECONDS", "3600")),
            retention_batch_rows=max(_count(env, "RETENTION_BATCH_ROWS", "5000"), 1),
        )


def _count(env: Mapping[str, str], name: str, default: str) -> int:
    raw = env.get(name, default).strip()
    if not raw.isdigit():
        raise ValueError(f"{name}={raw!r}: a whole number ≥ 0 is needed")
    return int(raw)


def _share(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default).strip()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ValueError(f"{name}={raw!r}: a number above 0 and at most 1 is needed")
    return value


_RETENTION_KEYS = ("claims_years", "audit_days")


def _retention_overrides(value: str) -> tuple[tuple[str, int | None, int | None], ...]:
    """`acme:claims_years=10,audit_days=400;beta:claims_years=0` as (customer, claims
    years, audit days), None where the customer takes the default."""
    overrides = []
    for part in (p.strip() for p in value.split(";") if p.strip()):
        customer, _, fields = part.partition(":")
        found: dict[str, int] = {}
        for item in (i.strip() for i in fields.split(",") if i.strip()):
            key, _, number = item.partition("=")
            if key.strip() not in _RETENTION_KEYS or not number.strip().isdigit():
                raise ValueError(
                    f"RETENTION_OVERRIDES: {item!r} of {customer.strip()!r} is not "
                    "claims_years=N or audit_days=N"
                )
            found[key.strip()] = int(number)
        if not customer.strip() or not found:
            raise ValueError(f"RETENTION_OVERRIDES: {part!r} is not customer:key=N,…")
        overrides.append((customer.strip(), found.get("claims_years"), found.get("audit_days")))
    return tuple(overrides)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _host_overrides(value: str) -> tuple[tuple[str, str], ...]:
    pairs = (pair.split("=", 1) for pair in value.split(",") if pair.strip())
    return tuple((name.strip().lower(), address.strip()) for name, address in pairs)


def _page_token_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in env.get("PAGE_TOKEN_KEYS", "").split(",") if key.strip())
    if keys:
        return keys
    if env.get("JWT_JWKS_URL"):
        # Production (tokens from an issuer): a key made up per replica would refuse the
        # tokens of every other replica.
        raise RuntimeError("PAGE_TOKEN_KEYS is not set; every replica must share the same keys")
    # Locally a key is generated once, so every process of `make run` accepts the others' tokens.
    from runtime.local_secrets import page_token_key

    return (
        _kept_locally(
            page_token_key,
            "PAGE_TOKEN_KEYS is not set",
            "set it (the upstream-page-tokens Secret in Kubernetes)",
        ),
    )


def _kept_locally(secret: Callable[[], str], missing: str, remedy: str) -> str:
    """A secret generated once and kept in LOCAL_DIR for local runs; where it cannot be kept
    (a read-only container, say), RuntimeError saying what is `missing` and the `remedy`."""
    try:
        return secret()
    except OSError as exc:
        raise RuntimeError(
            f"{missing}, and no local secret can be kept in {LOCAL_DIR} ({exc.strerror}): {remedy}"
        ) from exc
