"""Demo data: two years of claims for customer `acme` to mid-February, so a new user of
`make run` sees detection results at once: three drifts that began in January among payers
in their deductible and plan-change season (expected from last January, not alarmed), and a
payer too new to be compared yet; and two months of X12 835 remittances for a second
customer, `globex`.

    python -m devtools.demo write   # `make demo-data`: the files under .local/demo/
    python -m devtools.demo load    # upload them through the gateway (idempotent)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import httpx

from devtools.stack import wait_until
from devtools.synthetic import Drift, NewPayer, Scenario, write_835, write_csv
from runtime.auth import Role, mint_token
from runtime.settings import LOCAL_DIR, Settings

DEMO_DIR = LOCAL_DIR / "demo"
CUSTOMER = "acme"
SCENARIO = Scenario(
    customer=CUSTOMER,
    start=dt.date(2024, 2, 16),
    days=731,
    claims=120_000,
    payers=15,
    seed=2026,
    drifts=(
        # Each begins in January 2026, inside the default 30-day current window that ends on
        # the extract date (February 15, 2026), in the season of deductibles and plan changes.
        Drift(
            payer="Blue Cross Blue Shield of Texas",
            start=dt.date(2026, 1, 20),
            metric="denial_rate",
            factor=2.2,
        ),
        Drift(payer="UnitedHealthcare", start=dt.date(2026, 1, 20), metric="decision_days", days=7),
        Drift(payer="Cigna", start=dt.date(2026, 1, 16), metric="payment_ratio", ratio_drop=0.12),
    ),
    # A payer the practice began billing in November: not enough history to compare yet.
    new_payers=(NewPayer(payer="Humana", first_service=dt.date(2025, 11, 3)),),
)
# A second tenant with a remittance file shows the X12 835 path next to the CSV one.
REMITTANCE = Scenario(
    customer="globex", start=dt.date(2026, 7, 1), days=60, claims=1_500, payers=5, seed=835
)


def write_files(folder: Path = DEMO_DIR) -> list[Path]:
    """The demo files, written once (the generator is deterministic)."""
    folder.mkdir(parents=True, exist_ok=True)
    # Named by the period they cover: a change of the scenario writes new files.
    csv_file = folder / f"acme-claims-{SCENARIO.start}-{SCENARIO.end}.csv"
    remittance = folder / f"globex-remittance-{REMITTANCE.start}-{REMITTANCE.end}.835"
    if not csv_file.exists():
        write_csv(SCENARIO, csv_file)
    if not remittance.exists():
        write_835(REMITTANCE, remittance)
    return [csv_file, remittance]


def load(gateway_url: str, settings: Settings) -> list[dict[str, str]]:
    """Upload the demo files through the gateway; the same file never makes a second upload."""
    uploads = []
    for path, scenario in zip(write_files(), (SCENARIO, REMITTANCE), strict=True):
        token = mint_token(
            settings,
            subject=f"demo@{scenario.customer}",
            customer=scenario.customer,
            role=Role.ADMIN,
            ttl_seconds=600,
        )
        with (
            httpx.Client(
                base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
            ) as client,
            path.open("rb") as body,
        ):
            response = client.post(
                f"/v1/customers/{scenario.customer}/uploads",
                content=body,
                params={"upload.fileName": path.name},
                headers={"Idempotency-Key": f"demo-{path.name}"},
            )
        response.raise_for_status()
        uploads.append(response.json())
    return uploads


# Where `make receivers` listens.
WEBHOOK_URL = "http://127.0.0.1:9009/hooks"
NOTIFIED_EVENTS = [
    "DRIFT_EVENT_OPENED",
    "DRIFT_EVENT_UPDATED",
    "DRIFT_EVENT_CLOSED",
    "REPORT_READY",
]


def _client(gateway_url: str, settings: Settings, customer: str) -> httpx.Client:
    token = mint_token(
        settings, subject=f"demo@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )
    return httpx.Client(
        base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def subscribe(
    gateway_url: str,
    settings: Settings,
    url: str = WEBHOOK_URL,
    customer: str = CUSTOMER,
    display_name: str = "make receivers",
) -> str:
    """A webhook of `customer` to the local receiver at `url` (once), before the demo's
    events are found."""
    with _client(gateway_url, settings, customer) as client:
        listed = client.get(f"/v1/customers/{customer}/webhooks").json().get("webhooks", [])
        for webhook in listed:
            if webhook["url"] == url:
                return str(webhook["name"])
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={"displayName": display_name, "url": url, "eventTypes": NOTIFIED_EVENTS},
        )
        created.raise_for_status()
        return str(created.json()["name"])


ALERT_RECIPIENT = "revenue-cycle@acme.example"


def alert_by_email(gateway_url: str, settings: Settings) -> None:
    """`acme`'s alert policy: email its revenue-cycle team (the local catcher takes it)."""
    with _client(gateway_url, settings, CUSTOMER) as client:
        updated = client.patch(
            f"/v1/customers/{CUSTOMER}/alertPolicy",
            params={"updateMask": "emailRecipients,minimumSeverity"},
            json={"emailRecipients": [ALERT_RECIPIENT], "minimumSeverity": "MEDIUM"},
        )
        updated.raise_for_status()


# The upload's detection run of two years of claims takes seconds; a slow machine, minutes.
DETECTION_SECONDS = 300


def scorecard(gateway_url: str, settings: Settings) -> str:
    """Ask for `acme`'s payer scorecard of the demo's last 90 days (once), after the upload's
    detection run has finished, so the scorecard holds the drift it found; its name."""
    end = SCENARIO.end
    start = end - dt.timedelta(days=89)
    with _client(gateway_url, settings, CUSTOMER) as client:

        def detection_finished() -> bool:
            listed = client.get(f"/v1/customers/{CUSTOMER}/driftRuns")
            listed.raise_for_status()
            runs = listed.json().get("driftRuns", [])
            return bool(runs) and all(r["state"] in ("SUCCEEDED", "FAILED") for r in runs)

        wait_until("the demo's detection run", detection_finished, timeout=DETECTION_SECONDS)
        created = client.post(
            f"/v1/customers/{CUSTOMER}/reports",
            json={
                "kind": "PAYER_SCORECARD",
                "format": "PDF",
                "parameters": {
                    "dateRange": {
                        "startDate": {"year": start.year, "month": start.month, "day": start.day},
                        "endDate": {"year": end.year, "month": end.month, "day": end.day},
                    }
                },
            },
            headers={"Idempotency-Key": f"demo-scorecard-{start}-{end}"},
        )
        created.raise_for_status()
        return str(created.json()["name"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("write", "load"))
    parser.add_argument("--gateway", default="")
    args = parser.parse_args()
    settings = Settings.from_env("demo")
    if args.command == "write":
        for path in write_files():
            print(f"wrote {path}")
        return 0
    gateway = args.gateway or f"http://{settings.host}:{settings.gateway_port}"
    for upload in load(gateway, settings):
        print(f"{upload['name']}: {upload['fileName']}, {upload['rowsAccepted']} claims")
    return 0


if __name__ == "__main__":
    sys.exit(main())
