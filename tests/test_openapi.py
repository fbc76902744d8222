"""The OpenAPI document and Swagger UI the real gateway serves: a valid OpenAPI 3.1 document
built from the protos, whose schemas describe what the gateway really answers (responses of
a customer with data, validated against the operation's schema), with the protos' comments
and field behaviours; and a docs page whose every script and style comes from the gateway."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.system import System

SPEC_URI = "urn:upstream-openapi"
CLAIMS_CSV = (
    b"claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    b"billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
    b"A-1,Aetna,99213,2026-02-20,2026-02-21,2026-03-02,paid,200.00,150.00,120.00,30.00,\n"
    b"A-2,Aetna,99213,2026-02-20,2026-02-21,2026-03-09,denied,180.00,0,0,0,CO-50\n"
    b"A-3,Aetna,99214,2026-02-25,2026-02-26,,pending,300.00,,,,\n"
)


@pytest.fixture(scope="module")
def spec(system: System) -> dict[str, Any]:
    # No token: the document describes the API, not a customer's data.
    response = httpx.get(f"{system.gateway_url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


@pytest.fixture(scope="module")
def customer(system: System) -> str:
    name = "openapi" + uuid.uuid4().hex[:8]
    with system.client(name) as client:
        uploaded = client.post(
            f"/v1/customers/{name}/uploads",
            content=CLAIMS_CSV,
            params={"upload.fileName": "march.csv"},
            headers={"content-type": "text/csv"},
            timeout=60,
        )
    assert uploaded.status_code == 200, uploaded.text
    return name


def check(spec: dict[str, Any], path: str, verb: str, status: str, body: Any) -> None:
    """`body` validates against the schema the document gives that answer."""
    operation = spec["paths"][path][verb]
    answer = operation["responses"].get(status) or operation["responses"]["default"]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    (content,) = answer["content"].values()
    schema = content["schema"]
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    anchored = {"$ref": SPEC_URI + schema["$ref"]} if "$ref" in schema else schema
    OAS31Validator(anchored, registry=registry).validate(body)


def test_the_document_is_valid_openapi_3_1_with_an_operation_for_every_rpc_route(
    spec: dict[str, Any],
) -> None:
    validate(spec)

    operations = {
        operation["operationId"]: (path, verb)
        for path, item in spec["paths"].items()
        for verb, operation in item.items()
    }
    assert spec["openapi"] == "3.1.0"
    assert {tag["name"] for tag in spec["tags"]} == {
        "IngestService",
        "DriftService",
        "ReportsService",
    }
    assert operations["IngestService_ListUploads"] == (
        "/v1/customers/{customer}/uploads",
        "get",
    )
    assert operations["ReportsService_DownloadReport"] == (
        "/v1/customers/{customer}/reports/{report}:download",
        "get",
    )
    assert operations["DriftService_UpdateDriftEvent"][1] == "patch"
    assert len(operations) >= 45
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_schemas_speak_the_proto3_json_mapping_with_the_protos_comments(
    spec: dict[str, Any],
) -> None:
    schemas = spec["components"]["schemas"]
    upload = schemas["upstream.ingest.v1.Upload"]
    properties = upload["properties"]

    assert upload["description"]  # the message's comment
    assert properties["rowsRead"]["type"] == "string"  # int64
    assert properties["rowsRead"]["format"] == "int64"
    assert properties["createTime"]["readOnly"] is True
    assert (properties["createTime"]["type"], properties["createTime"]["format"]) == (
        "string",
        "date-time",
    )
    assert properties["createTime"]["readOnly"] is True and properties["name"]["description"]
    state = schemas["upstream.ingest.v1.Upload.State"]
    assert "SUCCEEDED" in state["enum"] and state["type"] == "string"
    listed = spec["paths"]["/v1/customers/{customer}/uploads"]["get"]
    query = {p["name"]: p for p in listed["parameters"] if p["in"] == "query"}
    assert set(query) == {"pageSize", "pageToken", "filter", "orderBy"}
    assert query["pageSize"]["schema"]["maximum"] == 1000
    assert "AIP-160" in query["filter"]["description"]
    created = spec["paths"]["/v1/customers/{customer}/uploads"]["post"]
    assert "*/*" in created["requestBody"]["content"]  # the file itself, streamed
    stream = spec["paths"]["/v1/customers/{customer}/claims:stream"]["get"]
    assert "application/x-ndjson" in stream["responses"]["200"]["content"]
    assert {p["name"] for p in stream["parameters"]} >= {"startDate", "endDate", "payers"}
    got = spec["paths"]["/v1/customers/{customer}/driftConfig"]["get"]
    assert "304" in got["responses"] and "ETag" in got["responses"]["200"]["headers"]
    assert "If-None-Match" in {p["name"] for p in got["parameters"]}
    patched = spec["paths"]["/v1/customers/{customer}/driftConfig"]["patch"]
    assert "If-Match" in {p["name"] for p in patched["parameters"]}
    removed = spec["paths"]["/v1/customers/{customer}/uploads/{upload}"]["delete"]
    assert "If-Match" not in {p["name"] for p in removed["parameters"]}  # uploads take no etag


def test_what_the_gateway_answers_is_what_the_document_says(
    system: System, spec: dict[str, Any], customer: str
) -> None:
    with system.client(customer, "viewer") as client:
        uploads = client.get(f"/v1/customers/{customer}/uploads").json()
        upload_id = uploads["uploads"][0]["name"].rsplit("/", 1)[1]
        single = f"/v1/customers/{customer}/uploads/{upload_id}"
        answers = [
            ("/v1/customers/{customer}/uploads", uploads),
            ("/v1/customers/{customer}/uploads/{upload}", client.get(single).json()),
        ] + [
            (path, client.get(path.format(customer=customer)).json())
            for path in (
                "/v1/customers/{customer}/claims",
                "/v1/customers/{customer}/payers",
                "/v1/customers/{customer}/driftConfig",
                "/v1/customers/{customer}/driftEvents",
                "/v1/customers/{customer}/alertPolicy",
            )
        ]
        missing = client.get(f"/v1/customers/{customer}/uploads/u_missing")
        bad = client.get(f"/v1/customers/{customer}/uploads", params={"pageSize": "-1"})

    assert len(answers[2][1]["claims"]) == 3
    for path, body in answers:
        check(spec, path, "get", "200", body)
    assert (missing.status_code, bad.status_code) == (404, 400)
    assert missing.headers["content-type"] == "application/problem+json"
    check(spec, "/v1/customers/{customer}/uploads/{upload}", "get", "404", missing.json())
    check(spec, "/v1/customers/{customer}/uploads", "get", "400", bad.json())


def test_every_query_example_the_document_gives_is_accepted_by_the_api(
    system: System, spec: dict[str, Any], customer: str
) -> None:
    tried = []
    with system.client(customer, "admin") as client:
        for path, operations in spec["paths"].items():
            for parameter in operations.get("get", {}).get("parameters", []):
                if parameter["in"] != "query" or "example" not in parameter:
                    continue
                url = path.replace("{customer}", customer)
                if "{" in url:
                    continue
                answer = client.get(url, params={parameter["name"]: parameter["example"]})
                tried.append((url, parameter["name"], answer.status_code))

    assert len(tried) >= 5
    assert all(status == 200 for _, _, status in tried), tried


def test_an_answer_that_breaks_the_document_is_caught(spec: dict[str, Any]) -> None:
    # The check above can fail: a count as a JSON number is not the mapping's int64 text.
    with pytest.raises(Exception, match="is not of type 'string'"):
        check(
            spec,
            "/v1/customers/{customer}/uploads/{upload}",
            "get",
            "200",
            {"name": "customers/a/uploads/u_1", "rowsRead": 3},
        )


def test_the_docs_page_loads_swagger_ui_from_the_gateway_itself(system: System) -> None:
    page = httpx.get(f"{system.gateway_url}/docs", timeout=30)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    fetched = {asset: httpx.get(f"{system.gateway_url}{asset}", timeout=30) for asset in assets}

    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src" not in policy and "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text  # no inline script
    assert assets and all(asset.startswith("/docs/") for asset in assets)
    assert all(response.status_code == 200 for response in fetched.values()), {
        asset: response.status_code for asset, response in fetched.items()
    }
    start = next(r for a, r in fetched.items() if a.endswith("start.js"))
    assert '"/openapi.json"' in start.text
    bundle = next(r for a, r in fetched.items() if a.endswith("swagger-ui-bundle.js"))
    assert "javascript" in bundle.headers["content-type"] and len(bundle.content) > 100_000
