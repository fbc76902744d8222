"""The people and programs that use Upstream, as locust users.

Held at the plan's rate (each interactive user acts once a second; the shape sets how many):
- analysts reading drift events, payer summaries, claims, uploads, the drift settings and
  reports through the REST gateway (viewer tokens);
- internal services reading the same over gRPC, and the daily statistic series as drift does;
- triage: an admin opens an event and acknowledges it with a note, conditional on the etag
  it read (a change saved meanwhile is a 412, the conflict the dashboard shows), and now and
  then sends a test delivery to the customer's webhook.
Beside them, one uploader sends a large claims CSV every few minutes (streamed, each time
with claim ids of its own) and one report builder asks for a report, follows it until it is
built and downloads it.

Every request's latency is kept as it was measured and written to `requests.csv` when
locust quits; `python -m bench.load` summarises it. Run by `python -m bench.load`; by hand
against `make run` (tokens signed with the local secret, as `make token` signs them):

    .venv/bin/locust -f bench/load/locustfile.py --headless --host http://127.0.0.1:8080
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import math
import random
import secrets
import time
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import gevent
import grpc
import grpc.experimental.gevent
from locust import LoadTestShape, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from bench.load.grpc_user import GrpcUser, ghz_status
from bench.load.plan import Plan
from bench.load.summary import Request, step_result, write_requests
from runtime.auth import Role, mint_token
from runtime.settings import Settings
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc

# Sync gRPC cooperates with gevent only if this runs before any channel is made.
grpc.experimental.gevent.init_gevent()

logger = logging.getLogger("load")

# Each interactive user acts once a second: the rate is the number of such users.
PER_USER_RATE = 1.0
# The uploader and the report builder, there whatever the rate.
BACKGROUND_USERS = 2
REPORT_WAIT_SECONDS = 300.0
TOKEN_MARGIN_SECONDS = 3600


class _Run:
    """What the users of this locust process share."""

    def __init__(self) -> None:
        self.plan = Plan()
        self.settings: Settings | None = None
        self.started = time.time()
        self.requests: list[Request] = []
        self.stages_run = 0
        self.stopped_early = False
        # Names of the events the last list returned: what analysts open and triage changes.
        self.event_names: list[str] = []

    def token(self, role: Role, subject: str) -> str:
        assert self.settings is not None
        plan = self.plan
        return mint_token(
            self.settings,
            subject=subject,
            customer=plan.customer,
            role=role,
            ttl_seconds=int(plan.stages()[-1].end) + TOKEN_MARGIN_SECONDS,
        )


RUN = _Run()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--plan", default="", help="the plan (JSON) `python -m bench.load` wrote")


@events.init.add_listener
def _read_plan(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and options.plan:
        RUN.plan = Plan.read(Path(options.plan))
    RUN.settings = Settings.from_env("load")


@events.test_start.add_listener
def _started(**_: Any) -> None:
    RUN.started = time.time()


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: BaseException | None = None,
    response: Any = None,
    context: dict[str, Any] | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    if request_type == "grpc":
        status = ghz_status(exception)
        # As ghz writes a failed call (grpc-go's status error).
        error = f"rpc error: code = {status} desc = {_details(exception)}" if exception else ""
    else:
        code = getattr(response, "status_code", 0) or 0
        status = str(code) if code else type(exception).__name__
        error = "" if exception is None else str(exception).splitlines()[0][:200]
    RUN.requests.append(
        Request(
            start=start_time if start_time is not None else time.time() - response_time / 1000,
            kind=request_type,
            name=name,
            latency_ms=response_time,
            length=response_length or 0,
            status=status,
            error=error,
            background=bool((context or {}).get("background")),
        )
    )


def _details(error: BaseException) -> str:
    details = getattr(error, "details", None)
    return str(details()) if callable(details) else str(error)


@events.quitting.add_listener
def _write(**_: Any) -> None:
    folder = Path(RUN.plan.output)
    folder.mkdir(parents=True, exist_ok=True)
    write_requests(folder / "requests.csv", RUN.requests)
    (folder / "run.json").write_text(
        json.dumps(
            {
                "start": RUN.started,
                "end": time.time(),
                "stagesRun": RUN.stages_run,
                "stoppedEarly": RUN.stopped_early,
            }
        )
        + "\n"
    )


class RateProfile(LoadTestShape):
    """The plan's stages: as many interactive users as requests a second, plus the
    background users. A step run stops after the first step over its p99 target or with
    an error: beyond the knee there is nothing more to learn. `--run-time` ends it sooner."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.judged = 0

    def tick(self) -> tuple[int, float] | None:
        plan = RUN.plan
        stages = plan.stages()
        elapsed = self.get_run_time()
        options = self.runner.environment.parsed_options if self.runner else None
        if options is not None and options.run_time and elapsed >= options.run_time:
            return None
        current = next((i for i, s in enumerate(stages) if s.start <= elapsed < s.end), None)
        if current is None:
            return None
        if plan.profile == "steps" and current > self.judged:
            step = step_result(RUN.requests, RUN.started, stages[self.judged], plan.p99_target_ms)
            logger.warning(
                "step %g req/s: %.1f req/s, p99 %.0f ms, %d errors",
                step.rate,
                step.rps,
                step.p99 / 1e6,
                step.errors,
            )
            self.judged = current
            if not step.passed:
                RUN.stopped_early = True
                return None
        RUN.stages_run = current + 1
        users = BACKGROUND_USERS + math.ceil(stages[current].rate / PER_USER_RATE)
        return users, float(users)


def _date(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


class _RestUser(FastHttpUser):
    abstract = True
    role: ClassVar[Role] = Role.VIEWER
    background: ClassVar[bool] = False
    network_timeout = 120.0
    connection_timeout = 10.0

    def context(self) -> dict[str, Any]:
        return {"background": self.background}

    def on_start(self) -> None:
        self.subject = f"load-{self.role.value}-{secrets.token_hex(3)}@{RUN.plan.customer}"
        token = RUN.token(self.role, self.subject)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.base = f"/v1/customers/{RUN.plan.customer}"
        self.end = dt.date.fromisoformat(RUN.plan.period_end)
        if not self.background:
            # Users start spread over a second, not in step.
            gevent.sleep(random.random() / PER_USER_RATE)

    def get(self, path: str, name: str, **params: Any) -> Any:
        """The answer's JSON; {} when the request failed (locust has recorded it)."""
        response = self.client.get(path, params=params, headers=self.headers, name=name)
        return response.json() if response.ok else {}

    def list_events(self) -> None:
        page = self.get(
            f"{self.base}/driftEvents",
            "/v1/customers/{customer}/driftEvents",
            filter="active = true",
            pageSize=50,
        )
        names = [event["name"] for event in page.get("driftEvents", [])]
        if names:
            RUN.event_names = names


class Analyst(_RestUser):
    """A revenue-cycle analyst on the dashboard (viewer)."""

    weight = 5
    wait_time = constant_throughput(PER_USER_RATE)

    @task(4)
    def drift_events(self) -> None:
        self.list_events()

    @task(2)
    def drift_event(self) -> None:
        if not RUN.event_names:
            self.list_events()
            return
        self.get(
            f"/v1/{random.choice(RUN.event_names)}",
            "/v1/customers/{customer}/driftEvents/{driftEvent}",
        )

    @task(2)
    def payer_summaries(self) -> None:
        self.get(f"{self.base}/payerSummaries", "/v1/customers/{customer}/payerSummaries")

    @task(2)
    def denied_claims(self) -> None:
        since = self.end - dt.timedelta(days=30)
        self.get(
            f"{self.base}/claims",
            "/v1/customers/{customer}/claims",
            filter=f'denied = true AND decision_date >= "{since}"',
            pageSize=50,
        )

    @task(1)
    def uploads(self) -> None:
        self.get(f"{self.base}/uploads", "/v1/customers/{customer}/uploads", pageSize=20)

    @task(1)
    def drift_config(self) -> None:
        self.get(f"{self.base}/driftConfig", "/v1/customers/{customer}/driftConfig")

    @task(1)
    def reports(self) -> None:
        self.get(f"{self.base}/reports", "/v1/customers/{customer}/reports", pageSize=20)


class Triage(_RestUser):
    """An admin triaging events: opens one, then acknowledges it with a note, conditional on
    the etag it read."""

    role = Role.ADMIN
    weight = 2
    wait_time = constant_throughput(PER_USER_RATE)

    def on_start(self) -> None:
        super().on_start()
        self.opened: dict[str, Any] | None = None

    @task(9)
    def triage(self) -> None:
        if self.opened is None:
            if not RUN.event_names:
                self.list_events()
                return
            self.opened = (
                self.get(
                    f"/v1/{random.choice(RUN.event_names)}",
                    "/v1/customers/{customer}/driftEvents/{driftEvent}",
                )
                or None
            )
            return
        event, self.opened = self.opened, None
        with self.client.request(
            "PATCH",
            f"/v1/{event['name']}",
            params={"updateMask": "state,triage_note"},
            json={
                "state": "ACKNOWLEDGED",
                "triageNote": f"Called the payer; checked {dt.datetime.now(dt.UTC):%H:%M:%S}.",
            },
            headers={**self.headers, "If-Match": f'"{event["etag"]}"'},
            name="/v1/customers/{customer}/driftEvents/{driftEvent}",
            catch_response=True,
        ) as response:
            if response.status_code == 412:
                response.success()  # someone saved a change meanwhile: the answer is right

    @task(1)
    def test_webhook(self) -> None:
        if not RUN.plan.webhook:
            return
        self.client.post(
            f"/v1/{RUN.plan.webhook}:test",
            json={},
            headers=self.headers,
            name="/v1/customers/{customer}/webhooks/{webhook}:test",
        )


class InternalService(GrpcUser):
    """A service reading over gRPC what the dashboard reads, and the daily statistic series
    as drift reads them."""

    weight = 3
    wait_time = constant_throughput(PER_USER_RATE)

    def on_start(self) -> None:
        plan = RUN.plan
        self.parent = f"customers/{plan.customer}"
        self.metadata = (
            ("authorization", f"Bearer {RUN.token(Role.VIEWER, f'load-grpc@{plan.customer}')}"),
        )
        self.end = dt.date.fromisoformat(plan.period_end)
        self.drift = drift_service_pb2_grpc.DriftServiceStub(self.channel(plan.targets["drift"]))
        self.ingest = ingest_service_pb2_grpc.IngestServiceStub(
            self.channel(plan.targets["ingest"])
        )
        self.reports = reports_service_pb2_grpc.ReportsServiceStub(
            self.channel(plan.targets["reports"])
        )
        gevent.sleep(random.random() / PER_USER_RATE)

    def call(self, method: Any, request: Any) -> Any:
        """The answer, or None when the call failed (the interceptor has reported it)."""
        try:
            return method(request, metadata=self.metadata, timeout=30)
        except grpc.RpcError:
            return None

    @task(4)
    def list_drift_events(self) -> None:
        request = drift_service_pb2.ListDriftEventsRequest(
            parent=self.parent, filter="active = true", page_size=50
        )
        answer = self.call(self.drift.ListDriftEvents, request)
        if answer is not None and answer.drift_events:
            RUN.event_names = [event.name for event in answer.drift_events]

    @task(2)
    def get_drift_event(self) -> None:
        if RUN.event_names:
            name = random.choice(RUN.event_names)
            self.call(self.drift.GetDriftEvent, drift_service_pb2.GetDriftEventRequest(name=name))

    @task(2)
    def list_payer_summaries(self) -> None:
        request = drift_service_pb2.ListPayerSummariesRequest(parent=self.parent)
        self.call(self.drift.ListPayerSummaries, request)

    @task(2)
    def list_claims(self) -> None:
        since = self.end - dt.timedelta(days=30)
        request = ingest_service_pb2.ListClaimsRequest(
            parent=self.parent,
            filter=f'denied = true AND decision_date >= "{since}"',
            page_size=50,
        )
        self.call(self.ingest.ListClaims, request)

    @task(1)
    def list_uploads(self) -> None:
        request = ingest_service_pb2.ListUploadsRequest(parent=self.parent, page_size=20)
        self.call(self.ingest.ListUploads, request)

    @task(1)
    def get_drift_config(self) -> None:
        request = drift_service_pb2.GetDriftConfigRequest(name=f"{self.parent}/driftConfig")
        self.call(self.drift.GetDriftConfig, request)

    @task(1)
    def list_reports(self) -> None:
        request = reports_service_pb2.ListReportsRequest(parent=self.parent, page_size=20)
        self.call(self.reports.ListReports, request)

    @task(2)
    def stream_daily_stat_series(self) -> None:
        # A detection run's read: the baseline and current windows (210 days), packed.
        request = ingest_service_pb2.StreamDailyStatSeriesRequest(
            parent=self.parent,
            start_date=_date(self.end - dt.timedelta(days=209)),
            end_date=_date(self.end),
            encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
        )
        stream = self.call(self.ingest.StreamDailyStatSeries, request)
        try:
            for _ in stream or ():
                pass
        except grpc.RpcError:
            pass  # reported by the interceptor


class PrefixedClaims:
    """A claims CSV read with `prefix` before every claim id: the same claims under ids of
    their own, so each upload is new content and adds new claims. Its length is known
    before it is read, so it is sent with a Content-Length, as a browser sends a file."""

    def __init__(self, path: Path, prefix: str) -> None:
        self._prefix = prefix.encode()
        with path.open("rb") as counting:
            rows = sum(1 for _ in counting) - 1
        self._length = path.stat().st_size + rows * len(self._prefix)
        self._file: BinaryIO = path.open("rb")
        self._pending = self._file.readline()  # the header, as it is

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        chunk = bytearray(self._pending)
        while size < 0 or len(chunk) < size:
            line = self._file.readline()
            if not line:
                break
            chunk += self._prefix + line
        if size < 0:
            size = len(chunk)
        self._pending = bytes(chunk[size:])
        return bytes(chunk[:size])

    def close(self) -> None:
        self._file.close()


class _Periodic(_RestUser):
    """A background user whose task runs at `first()` seconds, then every `every()` seconds,
    however long each run takes (a run longer than the period starts the next at once)."""

    abstract = True
    role = Role.ADMIN
    background = True
    fixed_count = 1

    def first(self) -> float:
        raise NotImplementedError

    def every(self) -> float:
        raise NotImplementedError

    def on_start(self) -> None:
        super().on_start()
        self.due = time.monotonic() + self.first()
        gevent.sleep(self.first())

    def wait_time(self) -> float:
        self.due += self.every()
        return max(0.0, self.due - time.monotonic())


class Uploader(_Periodic):
    """An admin uploading the month's claims export, every few minutes."""

    network_timeout = 900.0

    def first(self) -> float:
        return RUN.plan.upload_first_seconds

    def every(self) -> float:
        return RUN.plan.upload_every_seconds

    def on_start(self) -> None:
        self.numbers = itertools.count(1)
        self.run_id = secrets.token_hex(3)
        super().on_start()

    @task
    def upload(self) -> None:
        if not RUN.plan.upload_file:
            return
        tag = f"L{self.run_id}{next(self.numbers):03d}"
        body = PrefixedClaims(Path(RUN.plan.upload_file), f"{tag}-")
        try:
            self.client.post(
                f"{self.base}/uploads",
                data=body,  # type: ignore[arg-type]  # streamed as it is read
                params={"upload.fileName": f"claims-{tag}.csv"},
                headers={**self.headers, "Idempotency-Key": tag, "Content-Type": "text/csv"},
                name="/v1/customers/{customer}/uploads",
            )
        finally:
            body.close()


class ReportBuilder(_Periodic):
    """An admin asking for a report, following it until it is built, and downloading it."""

    network_timeout = 300.0
    KINDS: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("PAYER_SCORECARD", "PDF", 90),
        ("CLAIMS_EXPORT", "CSV", 30),
        ("DRIFT_SUMMARY", "PDF", 90),
        ("EVENTS_EXPORT", "CSV", 90),
    )

    def first(self) -> float:
        return min(5.0, RUN.plan.report_every_seconds)

    def every(self) -> float:
        return RUN.plan.report_every_seconds

    def on_start(self) -> None:
        self.kinds = itertools.cycle(self.KINDS)
        super().on_start()

    @task
    def build_and_download(self) -> None:
        kind, file_format, days = next(self.kinds)
        start = self.end - dt.timedelta(days=days - 1)
        created = self.client.post(
            f"{self.base}/reports",
            json={
                "kind": kind,
                "format": file_format,
                "parameters": {
                    "dateRange": {"startDate": _date(start), "endDate": _date(self.end)}
                },
            },
            headers={**self.headers, "Idempotency-Key": secrets.token_hex(8)},
            name="/v1/customers/{customer}/reports",
        )
        if not created.ok:
            return
        name = created.json()["name"]
        deadline = time.monotonic() + REPORT_WAIT_SECONDS
        while time.monotonic() < deadline:
            gevent.sleep(1.0)
            with self.client.get(
                f"/v1/{name}",
                headers=self.headers,
                name="/v1/customers/{customer}/reports/{report}",
                catch_response=True,
            ) as response:
                state = response.json().get("state") if response.ok else None
                if state == "FAILED":
                    response.failure(f"report failed: {response.json().get('error', {})}")
            if state == "SUCCEEDED":
                self.client.get(
                    f"/v1/{name}:download",
                    headers=self.headers,
                    name="/v1/customers/{customer}/reports/{report}:download",
                )
                return
            if state not in ("PENDING", "RUNNING"):
                return
