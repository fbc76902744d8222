"""The Kubernetes manifests as rendered (`kubectl kustomize` of each overlay), validated against
the pinned Kubernetes version's schemas (`kubernetes-validate --strict`), and held to the
rules a zero-downtime rollout and a locked-down cluster need."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

from runtime.auth import require_service_signing
from runtime.server import LIVENESS
from runtime.settings import REPO_ROOT, Settings
from services.reports.alerts import EmailChannel

K8S = REPO_ROOT / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
OPERATOR_GROUP = "monitoring.coreos.com/"
# What kube-state-metrics exports, which the alerts on pods read.
KUBE_STATE_METRICS = {"kube_deployment_status_replicas_available", "kube_deployment_spec_replicas"}
SERVICES = {"ingest": 50051, "drift": 50052, "reports": 50053}
# The gRPC calls each process makes (the channels services/*/server.py and the gateway open).
CALLS = {
    ("gateway", "ingest"),
    ("gateway", "drift"),
    ("gateway", "reports"),
    ("ingest", "drift"),
    ("drift", "ingest"),
    ("drift", "reports"),
    ("reports", "ingest"),
    ("reports", "drift"),
}


def render(overlay: str | Path) -> str:
    """`kubectl kustomize` of an overlay of k8s/overlays (by name) or of a folder."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize) is needed to render k8s/")
    folder = overlay if isinstance(overlay, Path) else K8S / "overlays" / overlay
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, [doc for doc in yaml.safe_load_all(render(request.param)) if doc]


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render("prod")) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_renders_and_validates_strictly(name: str, tmp_path: Path) -> None:
    objects = [doc for doc in yaml.safe_load_all(render(name)) if doc]
    # Kubernetes' own kinds; the Prometheus Operator's are checked by the tests below.
    core = [o for o in objects if not o["apiVersion"].startswith(OPERATOR_GROUP)]
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(yaml.safe_dump_all(core))
    done = validate(rendered)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_datadog_component_sends_every_process_s_spans_to_its_node_s_agent(
    tmp_path: Path,
) -> None:
    """prod with `components/datadog` added, as an SRE whose cluster runs the Datadog agent
    would render it."""
    overlay = tmp_path / "prod-datadog"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / "prod", overlay)],
                "components": [os.path.relpath(K8S / "components" / "datadog", overlay)],
            }
        )
    )
    objects = [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
    core = [o for o in objects if not o["apiVersion"].startswith(OPERATOR_GROUP)]
    rendered = tmp_path / "prod-datadog.yaml"
    rendered.write_text(yaml.safe_dump_all(core))
    done = validate(rendered)
    assert done.returncode == 0, done.stdout + done.stderr

    config = named(objects, "ConfigMap", "upstream-config")["data"]
    assert config["OTEL_TRACES_EXPORTER"] == "datadog"
    assert "DD_SERVICE" not in config  # each process names itself
    for deployment in of_kind(objects, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        agent_host = {e["name"]: e for e in container["env"]}["DD_AGENT_HOST"]
        assert agent_host["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    allowed = [
        port["port"]
        for policy in of_kind(objects, "NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    ]
    assert 8126 in allowed


def test_the_validator_refuses_what_kubernetes_would(tmp_path: Path) -> None:
    objects = [doc for doc in yaml.safe_load_all(render("prod")) if doc]
    deployment = named(objects, "Deployment", "drift")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    assert validate(broken).returncode != 0


def test_every_container_is_probed_limited_and_locked_down(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    checked = 0
    for where, spec in pod_specs(objects):
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            if where.startswith("Deployment/"):
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in container, (where, probe)
            checked += 1
    assert checked == 7  # four Deployments, three migration Jobs
    for account in of_kind(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_no_secret_value_is_in_the_manifests(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    assert of_kind(objects, "Secret") == []
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in ("DATABASE_URL", "PAGE_TOKEN_KEYS", "JWT_SECRET"):
                    assert "secretKeyRef" in variable["valueFrom"], (where, variable)
    config = named(objects, "ConfigMap", "upstream-config")["data"]
    assert not any(re.search("SECRET|PASSWORD|KEYS", key) for key in config), config


def test_a_rollout_in_prod_never_takes_the_last_ready_pod(prod: list[dict[str, Any]]) -> None:
    config = named(prod, "ConfigMap", "upstream-config")["data"]
    grace = float(config["SHUTDOWN_GRACE_SECONDS"])
    budgets = of_kind(prod, "PodDisruptionBudget")
    scalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(prod, "HorizontalPodAutoscaler")
    }
    deployments = of_kind(prod, "Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(["gateway", *SERVICES])
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["replicas"] >= 2, name
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert scalers[name]["spec"]["minReplicas"] >= 2, name
        assert any(
            b["spec"]["minAvailable"] >= 1
            and b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            for b in budgets
        ), name
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert pod["terminationGracePeriodSeconds"] > pre_stop + grace, name


def test_each_service_is_reached_through_a_headless_service_and_migrated_first(
    prod: list[dict[str, Any]],
) -> None:
    config = named(prod, "ConfigMap", "upstream-config")["data"]
    for service, port in SERVICES.items():
        headless = named(prod, "Service", service)
        assert headless["spec"]["clusterIP"] == "None"
        assert config[f"{service.upper()}_TARGET"] == (
            f"dns:///{service}.upstream.svc.cluster.local:{port}"
        )
        (container,) = named(prod, "Deployment", service)["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert {p["containerPort"] for p in container["ports"]} >= {port}
        assert container["startupProbe"]["grpc"]["port"] == port
        # Readiness follows the database; liveness asks for the name that never does.
        assert "service" not in container["readinessProbe"]["grpc"]
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": LIVENESS}
        job = named(prod, "Job", f"{service}-migrate")
        (migrate,) = job["spec"]["template"]["spec"]["containers"]
        assert migrate["command"] == [
            "python", "-m", "runtime.schemas", "upgrade", "--service", service,
        ]  # fmt: skip
        (url,) = [v for v in migrate["env"] if v["name"] == "DATABASE_URL"]
        assert url["valueFrom"]["secretKeyRef"]["key"] == "owner-url"
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


def test_the_entry_points_the_manifests_run_exist() -> None:
    for module in ("services.ingest", "services.drift", "services.reports", "gateway"):
        assert (REPO_ROOT / module.replace(".", "/") / "__main__.py").is_file(), module
    upgrade = subprocess.run(
        [sys.executable, "-m", "runtime.schemas", "upgrade", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0 and "--service" in upgrade.stdout


def _selected(peer: dict[str, Any]) -> str | None:
    return peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")


def test_network_policies_allow_exactly_the_calls_the_code_makes(
    prod: list[dict[str, Any]],
) -> None:
    policies = of_kind(prod, "NetworkPolicy")
    deny = named(prod, "NetworkPolicy", "default-deny")["spec"]
    egress: set[tuple[str, str]] = set()
    ingress: set[tuple[str, str]] = set()
    for policy in policies:
        own = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        if own is None:
            continue
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if callee := _selected(peer):
                    ports = {p["port"] for p in rule["ports"]}
                    assert ports == {SERVICES[callee]}, (own, callee, ports)
                    egress.add((own, callee))
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if caller := _selected(peer):
                    ingress.add((caller, own))

    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert egress == CALLS
    assert ingress == CALLS
    reports = named(prod, "NetworkPolicy", "reports")["spec"]["egress"]
    open_ports = {p["port"] for rule in reports if "to" not in rule for p in rule["ports"]}
    assert open_ports == {5432, 443, 587}
    gateway = named(prod, "NetworkPolicy", "gateway")["spec"]["egress"]
    assert all("to" in rule for rule in gateway)  # no database (HTTPS: `token-issuer` only)


def _metric_names(node: Any) -> set[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name}
    names: set[str] = set()
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector", "args"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if item is not None and not isinstance(item, (str, int, float)):
                names |= _metric_names(item)
    return names


def _exported_metrics() -> set[str]:
    """Every series name Upstream's processes export (their modules register the metrics)."""
    modules = ("services.ingest.server", "services.drift.server", "services.reports.server")
    for module in (*modules, "gateway.app"):
        importlib.import_module(module)
    names = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        for sample in metric.samples:
            names.add(sample.name)
        if metric.type == "histogram":
            names |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    return names


def test_alerts_and_dashboard_query_metrics_that_exist(prod: list[dict[str, Any]]) -> None:
    rules = [
        r for g in named(prod, "PrometheusRule", "upstream")["spec"]["groups"] for r in g["rules"]
    ]
    dashboard = json.loads(
        named(prod, "ConfigMap", "upstream-grafana-dashboard")["data"]["upstream.json"]
    )
    queries = [r["expr"] for r in rules] + [
        t["expr"] for panel in dashboard["panels"] for t in panel["targets"]
    ]
    exported = _exported_metrics() | KUBE_STATE_METRICS
    selected: set[str] = set()
    for query in queries:
        selected |= _metric_names(promql_parser.parse(query))

    assert len(rules) >= 5 and len(queries) >= 12
    assert selected, queries
    assert selected <= exported, sorted(selected - exported)
    monitor = named(prod, "ServiceMonitor", "upstream")["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics"
    scraped = [
        s for s in of_kind(prod, "Service")
        if any(p["name"] == "metrics" for p in s["spec"]["ports"])
        and monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]  # fmt: skip
    assert sorted(s["metadata"]["name"] for s in scraped) == sorted(["gateway", *SERVICES])


def test_every_alert_has_a_runbook_that_exists(prod: list[dict[str, Any]]) -> None:
    rules = [
        r for g in named(prod, "PrometheusRule", "upstream")["spec"]["groups"] for r in g["rules"]
    ]
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        path = url.split("/blob/main/", 1)[1]
        assert (REPO_ROOT / path).is_file(), (rule["alert"], url)
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]


def test_reports_in_prod_mails_alerts_through_a_relay_logging_in_over_tls(
    prod: list[dict[str, Any]],
) -> None:
    """The settings reports runs with in prod (the ConfigMap, its env, its Secrets' names)
    send alert email to a relay, not to the pod itself, and start the alert worker's mail
    channel: a login is never sent in clear text."""
    (container,) = named(prod, "Deployment", "reports")["spec"]["template"]["spec"]["containers"]
    env = dict(named(prod, "ConfigMap", "upstream-config")["data"])
    secrets = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            secrets[variable["name"]] = variable["valueFrom"]["secretKeyRef"]
    env |= {name: "from-its-secret" for name in secrets}
    settings = Settings.from_env("reports", env)

    assert {secrets[name]["name"] for name in ("SMTP_USERNAME", "SMTP_PASSWORD")} == {
        "upstream-smtp"
    }
    assert (settings.smtp_host, settings.smtp_port) == ("smtp.upstream.example.com", 587)
    assert settings.smtp_starttls and settings.smtp_username == "from-its-secret"
    EmailChannel(settings, timeout_seconds=10)


def test_in_prod_people_are_verified_against_the_issuer_which_every_process_can_reach(
    prod: list[dict[str, Any]],
) -> None:
    """People's tokens are checked against the issuer's keys (JWKS over HTTPS) by every
    process, so every process may reach it; the services sign their calls to each other with
    the secret they share, which each of them is given (a service without it refuses to
    start)."""
    config = named(prod, "ConfigMap", "upstream-config")["data"]
    policies = of_kind(prod, "NetworkPolicy")
    for deployment in of_kind(prod, "Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        secret = {v["name"]: v.get("valueFrom", {}) for v in container["env"]}["JWT_SECRET"]
        settings = Settings.from_env(
            name, {**config, "JWT_SECRET": "from-its-secret", "PAGE_TOKEN_KEYS": "k" * 32}
        )
        https_out = [
            rule
            for policy in policies
            if policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
            for rule in policy["spec"].get("egress", [])
            if "to" not in rule and {p["port"] for p in rule["ports"]} == {443}
        ]

        assert settings.jwt_jwks_url.startswith("https://"), name
        assert secret["secretKeyRef"]["name"] == "upstream-jwt", name
        require_service_signing(settings)
        assert https_out, f"{name} cannot reach the token issuer"
