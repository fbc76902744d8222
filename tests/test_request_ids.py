"""Request ids and problem details through the real gateway: every answer carries
`X-Request-ID` (the client's, or a new one when it sent none or an unusable one) and
`API-Version`; an error is RFC 9457 problem details naming the request and its trace; and the
id reaches the log lines of every service the request touches, a service's own calls
included (a whole `make run`, its output read)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.system import System
from tests.test_log_secrets import BANNER_END, make_run, stop, wait_for

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize("given", ["", "has spaces in it", "x" * 129, "nul\x01"])
def test_a_request_without_a_usable_id_gets_a_new_one(system: System, given: str) -> None:
    headers = {"X-Request-ID": given} if given else {}
    with system.client("rid" + uuid.uuid4().hex[:8], "viewer") as client:
        first = client.get("/v1/customers/acme/uploads", headers=headers)
        second = client.get("/v1/customers/acme/uploads", headers=headers)

    assert HEX_ID.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.headers["api-version"] == "v1"


def test_a_clients_request_id_comes_back_on_answers_and_in_problem_details(
    system: System,
) -> None:
    customer = "rid" + uuid.uuid4().hex[:8]
    with system.client(customer, "viewer") as client:
        listed = client.get(f"/v1/customers/{customer}/uploads", headers={"X-Request-ID": "ok-1"})
        missing = client.get(
            f"/v1/customers/{customer}/uploads/u_none", headers={"X-Request-ID": "lost:2"}
        )
        bad = client.get(
            f"/v1/customers/{customer}/uploads",
            params={"filter": "state = NOPE"},
            headers={"X-Request-ID": "bad.3"},
        )
        no_route = client.get("/v2/nothing", headers={"X-Request-ID": "nowhere-4"})

    assert (listed.status_code, listed.headers["x-request-id"]) == (200, "ok-1")
    assert listed.headers["api-version"] == "v1"
    problem = missing.json()
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["x-request-id"] == "lost:2"
    assert (problem["type"], problem["title"], problem["status"], problem["code"]) == (
        "about:blank",
        "Not Found",
        404,
        "NOT_FOUND",
    )
    assert problem["instance"] == f"/v1/customers/{customer}/uploads/u_none"
    assert problem["request_id"] == "lost:2" and HEX_ID.match(problem["trace_id"])
    assert "u_none" in problem["detail"]
    refused = bad.json()
    assert (refused["status"], refused["request_id"]) == (400, "bad.3")
    assert [v["field"] for v in refused["violations"]] == ["filter"]
    assert any(d["@type"].endswith("google.rpc.BadRequest") for d in refused["details"])
    assert no_route.status_code == 404 and no_route.json()["request_id"] == "nowhere-4"
    assert no_route.headers["api-version"] == "v1"


def test_the_request_id_is_on_the_log_lines_of_every_service_it_reaches(
    pg_scratch_folder: Path,
) -> None:
    """With no exporter (as `make run`), a trace is recorded only where its caller chose to
    keep it; either way each service's lines carry the request's id and its trace."""
    customer = "rid" + uuid.uuid4().hex[:8]
    unkept, kept = uuid.uuid4().hex, uuid.uuid4().hex
    log_path = pg_scratch_folder / "run.log"
    with (
        open(log_path, "wb") as log,
        make_run(pg_scratch_folder, log, subprocess.STDOUT) as run,
    ):
        wait_for("the banner", lambda: BANNER_END in log_path.read_text(), run.process)
        with run.client(customer) as client:
            # Drift's run asks ingest for the uploads: a service's own call, same request.
            started = client.post(
                f"/v1/customers/{customer}/driftRuns",
                json={},
                headers={"X-Request-ID": "run-the-checks-7"},
            )
            config = f"/v1/customers/{customer}/driftConfig"
            for trace_id, flags, request_id in ((unkept, "00", "unkept-8"), (kept, "01", "kept-9")):
                traceparent = f"00-{trace_id}-00f067aa0ba902b7-{flags}"
                read = client.get(
                    config, headers={"X-Request-ID": request_id, "traceparent": traceparent}
                )
                assert read.status_code == 200, read.text
        stop(run.process)
    records = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]

    assert started.status_code == 200, started.text
    handled = {
        (r["service"], r["grpc_method"].rsplit("/", 1)[1])
        for r in records
        if r.get("request_id") == "run-the-checks-7" and r["message"] == "rpc handled"
    }
    assert ("drift", "RunDetection") in handled
    assert ("ingest", "GetDataState") in handled
    # Drift's line of each read: the caller's trace, kept or not as the caller chose.
    reads = {
        r["request_id"]: (r["trace_id"], r["trace_sampled"])
        for r in records
        if r.get("service") == "drift"
        and r["message"] == "rpc handled"
        and r.get("request_id") in ("unkept-8", "kept-9")
    }
    assert reads == {"unkept-8": (unkept, False), "kept-9": (kept, True)}
