"""What the contract says about each RPC, read once from the descriptors.

The `google.api.http` annotation tells which request fields hold resource names (the path
variables) and whether the method reads or writes (GET or not). The server's identity
interceptor and the gateway both rely on it, so policy follows the protos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pool

# Importing the generated modules registers every API descriptor in the default pool.
from upstream.drift.v1 import drift_service_pb2
from upstream.ingest.v1 import ingest_service_pb2
from upstream.reports.v1 import reports_service_pb2

API_SERVICES: tuple[descriptor.ServiceDescriptor, ...] = (
    ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"],
    drift_service_pb2.DESCRIPTOR.services_by_name["DriftService"],
    reports_service_pb2.DESCRIPTOR.services_by_name["ReportsService"],
)

_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")
HTTP_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One HTTP route of an RPC: verb, path template and the request field taken as body."""

    verb: str
    template: str
    body: str

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(match.group(1) for match in _VARIABLE.finditer(self.template))


@dataclass(frozen=True)
class MethodInfo:
    full_name: str  # e.g. "/upstream.ingest.v1.IngestService/ListUploads"
    service: str
    method: str
    descriptor: descriptor.MethodDescriptor | None
    bindings: tuple[HttpBinding, ...]

    @property
    def is_api(self) -> bool:
        """Our own API (as opposed to health checks and reflection)."""
        return self.service.startswith("upstream.")

    @property
    def is_read_only(self) -> bool:
        return bool(self.bindings) and all(b.verb == "get" for b in self.bindings)

    @property
    def resource_fields(self) -> tuple[str, ...]:
        """Request fields naming the resource acted on (`parent`, `name`, `webhook.name`...)."""
        fields: list[str] = []
        for binding in self.bindings:
            fields.extend(f for f in binding.path_fields if f not in fields)
        return tuple(fields)

    @property
    def rpc_type(self) -> str:
        if self.descriptor is None:
            return "unary"
        client, server = self.descriptor.client_streaming, self.descriptor.server_streaming
        if client and server:
            return "bidi_stream"
        if client:
            return "client_stream"
        return "server_stream" if server else "unary"


def http_bindings(method: descriptor.MethodDescriptor) -> tuple[HttpBinding, ...]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return ()
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    rules = [rule, *rule.additional_bindings]
    bindings = []
    for each in rules:
        pattern = each.WhichOneof("pattern")
        if pattern in HTTP_VERBS:
            bindings.append(HttpBinding(pattern, getattr(each, pattern), each.body))
        elif pattern == "custom":
            bindings.append(HttpBinding(each.custom.kind.lower(), each.custom.path, each.body))
    return tuple(bindings)


@cache
def method_info(full_name: str) -> MethodInfo:
    service, _, method = full_name.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return MethodInfo(full_name, service, method, None, ())
    return MethodInfo(full_name, service, method, found, http_bindings(found))


def field_value(message: object, path: str) -> str:
    """The string at a dotted field path (`drift_event.name`) of a request message."""
    value: object = message
    for part in path.split("."):
        value = getattr(value, part)
    return str(value)


def customer_of(resource_name: str) -> str | None:
    """`acme` for `customers/acme` or `customers/acme/uploads/u1`; None when not a tenant name."""
    parts = resource_name.split("/")
    if len(parts) >= 2 and parts[0] == "customers" and parts[1]:
        return parts[1]
    return None
