"""Conditional requests and caching headers through the real gateway: strong ETags on every
GET, 304 for a client whose copy is current, If-Match on PATCH and DELETE checked by the
services with 412 on a stale tag, and Cache-Control that keeps tenant data private and
secrets out of every cache."""

from __future__ import annotations

import uuid

import httpx

from tests.system import System

CSV = (
    b"claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    b"billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
    b"A-1,Aetna,99213,2026-02-20,2026-02-21,2026-03-02,paid,200.00,150.00,120.00,30.00,\n"
)


def fresh() -> str:
    return "cond" + uuid.uuid4().hex[:8]


def upload(client: httpx.Client, customer: str, name: str) -> httpx.Response:
    return client.post(
        f"/v1/customers/{customer}/uploads",
        content=CSV.replace(b"A-1", name.encode()),
        headers={"content-type": "text/csv"},
        timeout=60,
    )


def test_a_get_has_a_strong_etag_and_a_current_copy_is_answered_304(system: System) -> None:
    customer = fresh()
    with system.client(customer) as client:
        config = client.get(f"/v1/customers/{customer}/driftConfig")
        again = client.get(
            f"/v1/customers/{customer}/driftConfig",
            headers={"If-None-Match": config.headers["etag"]},
        )
        head = client.head(
            f"/v1/customers/{customer}/driftConfig",
            headers={"If-None-Match": f'"other", W/{config.headers["etag"]}'},
        )
        assert upload(client, customer, "A-1").status_code == 200
        listed = client.get(f"/v1/customers/{customer}/uploads")
        unchanged = client.get(
            f"/v1/customers/{customer}/uploads", headers={"If-None-Match": listed.headers["etag"]}
        )
        assert upload(client, customer, "A-2").status_code == 200
        changed = client.get(
            f"/v1/customers/{customer}/uploads", headers={"If-None-Match": listed.headers["etag"]}
        )

    assert config.status_code == 200
    assert config.headers["etag"] == f'"{config.json()["etag"]}"'  # the resource's own
    assert config.headers["cache-control"] == "private, no-cache"
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == config.headers["etag"]
    assert head.status_code == 304
    assert (
        listed.headers["etag"].startswith('"') and listed.headers["etag"] != config.headers["etag"]
    )
    assert unchanged.status_code == 304
    assert changed.status_code == 200 and changed.headers["etag"] != listed.headers["etag"]
    assert len(changed.json()["uploads"]) == 2


def test_if_match_makes_a_change_conditional_and_a_stale_tag_is_412(system: System) -> None:
    customer = fresh()
    path = f"/v1/customers/{customer}/driftConfig"
    with system.client(customer) as client:
        before = client.get(path)
        changed = client.patch(
            path,
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 45},
            headers={"If-Match": before.headers["etag"]},
        )
        stale = client.patch(
            path,
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 60},
            headers={"If-Match": before.headers["etag"]},
        )
        any_version = client.patch(
            path,
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 50},
            headers={"If-Match": "*"},
        )
        weak = client.patch(
            path,
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 70},
            headers={"If-Match": f"W/{before.headers['etag']}"},
        )
        after = client.get(path)

    assert changed.status_code == 200, changed.text
    assert changed.headers["cache-control"] == "no-store"
    assert stale.status_code == 412, stale.text
    problem = stale.json()
    assert (problem["status"], problem["title"], problem["code"]) == (
        412,
        "Precondition Failed",
        "ABORTED",
    )
    assert stale.headers["cache-control"] == "no-store"
    assert any_version.status_code == 200
    assert weak.status_code == 400 and [v["field"] for v in weak.json()["violations"]] == [
        "If-Match"
    ]
    assert after.json()["currentWindowDays"] == 50


def test_a_delete_with_a_stale_tag_is_412_and_keeps_the_resource(system: System) -> None:
    customer = fresh()
    with system.client(customer) as client:
        created = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "AETNA INC", "canonicalPayer": "Aetna"},
        )
        name = created.json()["name"]
        first = client.get(f"/v1/{name}")
        updated = client.patch(
            f"/v1/{name}",
            params={"updateMask": "canonical_payer"},
            json={"canonicalPayer": "Aetna Health"},
        )
        stale = client.delete(f"/v1/{name}", headers={"If-Match": first.headers["etag"]})
        still = client.get(f"/v1/{name}")
        current = client.delete(f"/v1/{name}", headers={"If-Match": still.headers["etag"]})
        gone = client.get(f"/v1/{name}")
        assert upload(client, customer, "A-9").status_code == 200
        (uploaded,) = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
        unconditional = client.delete(f"/v1/{uploaded['name']}", headers={"If-Match": '"anything"'})

    assert created.status_code == 200 and updated.status_code == 200, updated.text
    assert stale.status_code == 412, stale.text
    assert still.status_code == 200
    assert current.status_code == 200, current.text
    assert gone.status_code == 404
    assert unconditional.status_code == 400
    assert "takes no etag" in unconditional.json()["detail"]


def test_a_webhook_deleted_with_a_stale_tag_is_kept(system: System) -> None:
    customer = fresh()
    with system.client(customer) as client:
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={"url": "https://hooks.example.com/a", "eventTypes": ["REPORT_READY"]},
        ).json()
        path = f"/v1/{created['name']}"
        read = client.get(path)
        client.patch(path, params={"updateMask": "display_name"}, json={"displayName": "ERP"})
        stale = client.delete(path, headers={"If-Match": read.headers["etag"]})
        kept = client.get(path)
        current = client.delete(path, headers={"If-Match": kept.headers["etag"]})

    assert stale.status_code == 412, stale.text
    assert kept.status_code == 200 and kept.json()["displayName"] == "ERP"
    assert current.status_code == 200, current.text


def test_a_secret_shown_once_is_never_stored_by_a_cache(system: System) -> None:
    customer = fresh()
    with system.client(customer) as client:
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={"url": "https://hooks.example.com/upstream", "eventTypes": ["REPORT_READY"]},
        )
        listed = client.get(f"/v1/customers/{customer}/webhooks")

    assert created.status_code == 200, created.text
    assert created.json()["signingSecret"].startswith("whsec_")
    assert created.headers["cache-control"] == "no-store"
    assert (
        "signingSecret" not in listed.json()["webhooks"][0]
        or not listed.json()["webhooks"][0]["signingSecret"]
    )
    assert listed.headers["cache-control"] == "private, no-cache"
