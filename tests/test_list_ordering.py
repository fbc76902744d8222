"""`orderBy` and `filter` on the lists that document them, through the gateway as a web
client calls them: the order holds across pages, a summary filter picks what it names, and
an order a list does not offer is a 400 naming `order_by` and the choices."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.scenarios import DRIFTED_PAYER, upload_drifted_history
from tests.system import System

RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}


@pytest.fixture(scope="module")
def history(system: System) -> str:
    """A customer with a drifted history (several events) and two more small uploads."""
    customer = "ord" + uuid.uuid4().hex[:8]
    upload_drifted_history(system, customer)
    header = "claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"
    with system.client(customer, "admin") as client:
        for name, rows in (("one.csv", 1), ("three.csv", 3)):
            lines = "".join(
                f"X{name}{i},Zenith Mutual,99213,2026-03-0{i + 1},PAID,100.00,80.00\n"
                for i in range(rows)
            )
            made = client.post(
                f"/v1/customers/{customer}/uploads",
                params={"upload.fileName": name},
                content=(header + lines).encode(),
            )
            assert made.status_code == 200, made.text
    return customer


def every_page(client: httpx.Client, path: str, field: str, **query: Any) -> list[dict[str, Any]]:
    """The whole list, one item a page."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        page = client.get(path, params={**query, "pageSize": 1, "pageToken": token})
        assert page.status_code == 200, page.text
        items.extend(page.json().get(field, []))
        token = page.json()["nextPageToken"]
        if not token:
            return items


def cents(event: dict[str, Any]) -> int:
    money = event["dollarsAtStake"]
    return int(money.get("units", 0)) * 100 + int(money.get("nanos", 0)) // 10_000_000


def test_drift_events_in_the_order_asked_for_across_pages(system: System, history: str) -> None:
    path = f"/v1/customers/{history}/driftEvents"
    with system.client(history, "viewer") as client:
        by_dollars = every_page(client, path, "driftEvents", orderBy="dollars_at_stake desc")
        fewest_dollars = every_page(client, path, "driftEvents", orderBy="dollars_at_stake")
        by_severity = every_page(client, path, "driftEvents", orderBy="severity")
        default = every_page(client, path, "driftEvents")

    assert len(by_dollars) >= 2
    assert [cents(e) for e in by_dollars] == sorted((cents(e) for e in by_dollars), reverse=True)
    assert [cents(e) for e in fewest_dollars] == sorted(cents(e) for e in by_dollars)
    assert [RANK[e["severity"]] for e in by_severity] == sorted(
        RANK[e["severity"]] for e in by_severity
    )
    seen = [e["lastSeenTime"] for e in default]
    assert seen == sorted(seen, reverse=True)
    assert {e["name"] for e in by_dollars} == {e["name"] for e in by_severity}
    assert len({e["name"] for e in by_dollars}) == len(by_dollars)


def test_uploads_and_payers_in_the_order_asked_for(system: System, history: str) -> None:
    base = f"/v1/customers/{history}"
    with system.client(history, "viewer") as client:
        by_rows = every_page(client, f"{base}/uploads", "uploads", orderBy="rows_read")
        by_name = every_page(client, f"{base}/payers", "payers", orderBy="raw_payer_name desc")

    assert [u["fileName"] for u in by_rows] == ["one.csv", "three.csv", "history.csv"]
    names = [p["rawPayerName"] for p in by_name]
    assert names == sorted(names, reverse=True) and "Zenith Mutual" in names


def test_payer_summaries_are_filtered_and_ordered(system: System, history: str) -> None:
    path = f"/v1/customers/{history}/payerSummaries"
    with system.client(history, "viewer") as client:
        one = client.get(path, params={"filter": f'payer = "{DRIFTED_PAYER}"'}).json()
        with_events = every_page(client, path, "payerSummaries", filter="open_event_count > 0")
        by_payer = every_page(client, path, "payerSummaries", orderBy="payer")
        by_claims = every_page(client, path, "payerSummaries")

    assert [s["payer"] for s in one["payerSummaries"]] == [DRIFTED_PAYER]
    assert DRIFTED_PAYER in {s["payer"] for s in with_events}
    assert all(s["openEventCount"] > 0 for s in with_events)
    payers = [s["payer"] for s in by_payer]
    assert payers == sorted(payers) and len(payers) > len(with_events)
    claims = [int(s["current"]["claims"]) for s in by_claims]
    assert claims == sorted(claims, reverse=True)


@pytest.mark.parametrize(
    "path",
    ["driftEvents", "payerSummaries", "uploads", "payers", "claims"],
)
def test_an_order_a_list_does_not_offer_is_refused_naming_the_choices(
    system: System, path: str
) -> None:
    with system.client("ord-refused", "viewer") as client:
        refused = client.get(f"/v1/customers/ord-refused/{path}", params={"orderBy": "colour"})

    problem = refused.json()
    assert refused.status_code == 400
    assert problem["violations"][0]["field"] == "order_by"
    assert "optionally followed by ' desc'" in problem["violations"][0]["description"]
