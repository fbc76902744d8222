"""The protos are the one source of truth: generated code matches them, every RPC has a
REST route, and the REST routes are the ones clients rely on."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

from gateway.transcoding import build_routes
from runtime.methods import API_SERVICES, http_bindings
from runtime.settings import REPO_ROOT


def test_checked_in_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        ["scripts/protos.sh", "generate"],
        cwd=REPO_ROOT,
        env={**os.environ, "GEN_DIR": str(tmp_path)},
        check=True,
        capture_output=True,
    )
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    checked_in = sorted(
        p.relative_to(REPO_ROOT / "gen") for p in (REPO_ROOT / "gen").rglob("*.py*")
    )
    assert fresh == checked_in, "gen/ is stale: run `make protos`"
    stale = [
        str(p) for p in fresh if not filecmp.cmp(tmp_path / p, REPO_ROOT / "gen" / p, shallow=False)
    ]
    assert stale == [], f"gen/ is stale, run `make protos`: {stale}"


def test_every_rpc_has_a_rest_route() -> None:
    missing = [
        f"{service.name}.{method.name}"
        for service in API_SERVICES
        for method in service.methods
        if not http_bindings(method)
    ]
    assert missing == []


def test_the_documented_rest_paths_exist() -> None:
    routes = {(r.binding.verb, r.binding.template) for r in build_routes(API_SERVICES)}
    expected = {
        ("post", "/v1/{parent=customers/*}/uploads"),
        ("get", "/v1/{parent=customers/*}/uploads"),
        ("get", "/v1/{name=customers/*/uploads/*}"),
        ("get", "/v1/{parent=customers/*/uploads/*}/rejections"),
        ("get", "/v1/{parent=customers/*}/claims"),
        ("get", "/v1/{parent=customers/*}/payerMappings"),
        ("post", "/v1/{parent=customers/*}/driftRuns"),
        ("get", "/v1/{parent=customers/*}/driftEvents"),
        ("patch", "/v1/{drift_event.name=customers/*/driftEvents/*}"),
        ("get", "/v1/{parent=customers/*}/payerSummaries"),
        ("get", "/v1/{name=customers/*/driftConfig}"),
        ("get", "/v1/{parent=customers/*}/reports"),
        ("get", "/v1/{name=customers/*/reports/*}:download"),
        ("get", "/v1/{parent=customers/*}/reportSchedules"),
        ("get", "/v1/{parent=customers/*}/webhooks"),
        ("post", "/v1/{name=customers/*/webhooks/*}:test"),
        ("get", "/v1/{parent=customers/*/webhooks/*}/deliveries"),
    }
    assert expected <= routes, sorted(expected - routes)
