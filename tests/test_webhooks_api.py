"""Webhook subscriptions through the real gateway into the real reports service."""

from __future__ import annotations

import uuid

from tests.system import System


def test_webhooks_are_listed_by_their_filter_and_an_unknown_field_is_refused(
    system: System,
) -> None:
    customer = "hooks" + uuid.uuid4().hex[:6]
    with system.client(customer, "admin") as client:
        hooks = f"/v1/customers/{customer}/webhooks"
        for url, types, disabled in (
            ("https://hooks.example.com/drift", ["DRIFT_EVENT_OPENED"], False),
            ("https://hooks.example.com/reports", ["REPORT_READY"], False),
            ("https://hooks.example.com/off", ["REPORT_READY", "DRIFT_EVENT_CLOSED"], True),
        ):
            created = client.post(
                hooks, json={"url": url, "eventTypes": types, "disabled": disabled}
            )
            assert created.status_code == 200, created.text

        def urls(filter_text: str) -> list[str]:
            response = client.get(hooks, params={"filter": filter_text})
            assert response.status_code == 200, response.text
            return [w["url"] for w in response.json().get("webhooks", [])]

        every = urls("")
        enabled = urls("disabled = false")
        reporting = urls("event_types:REPORT_READY AND disabled = false")
        refused = client.get(hooks, params={"filter": "secret = 1"})
    assert len(every) == 3
    assert enabled == ["https://hooks.example.com/drift", "https://hooks.example.com/reports"]
    assert reporting == ["https://hooks.example.com/reports"]
    assert refused.status_code == 400
    assert "secret" in refused.json()["detail"]
