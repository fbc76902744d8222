"""The API's OpenAPI 3.1 document, built at start-up from the same descriptors and
`google.api.http` routes the gateway serves: no spec is written by hand.

Schemas follow the proto3 JSON mapping the gateway speaks: lowerCamel field names, 64-bit
integers as strings, enums by name, Timestamp as RFC 3339 text, Date and Money as their
messages, FieldMask and Duration as text. Descriptions are the protos' comments, read from
the descriptor set `make protos` writes with source info (`gen/upstream/descriptors.binpb`);
`field_behavior` marks required and read-only fields, `field_limits` lengths and counts.
Path templates such as `{name=customers/*/uploads/*}` become one parameter per segment
(`/v1/customers/{customer}/uploads/{upload}`): the URL is the same, each part named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor, descriptor_pb2

from gateway.problems import PROBLEM_JSON
from gateway.transcoding import DATE, FIELD_MASK, HTTP_BODY, Route
from runtime.methods import API_SERVICES
from upstream.api.v1 import field_limits_pb2

DESCRIPTORS = Path(__file__).resolve().parent.parent / "gen" / "upstream" / "descriptors.binpb"
API_VERSION = "v1"
SCHEMA_REF = "#/components/schemas/"
ERROR_SCHEMA = "Error"
_FD = descriptor.FieldDescriptor
_INT64 = {_FD.TYPE_INT64, _FD.TYPE_UINT64, _FD.TYPE_SINT64, _FD.TYPE_FIXED64, _FD.TYPE_SFIXED64}
_INT32 = {_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32}
_UINT32 = {_FD.TYPE_UINT32, _FD.TYPE_FIXED32}
_WRAPPERS: dict[str, dict[str, Any]] = {
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int32", "minimum": 0},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "int64"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
}
# Messages whose JSON form is not an object of their fields.
_SPECIAL: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time in UTC.",
        "example": "2026-03-31T14:05:00Z",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "Seconds with up to nine decimals and an `s`.",
        "example": "3600s",
    },
    FIELD_MASK: {
        "type": "string",
        "description": "Field paths, lowerCamel, separated by commas.",
        "example": "displayName,url",
    },
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    **_WRAPPERS,
}
# Query values of these message types are one text value (see gateway.transcoding).
_QUERY_TEXT: dict[str, dict[str, Any]] = {
    DATE: {"type": "string", "format": "date", "example": "2026-03-01"},
    **{name: schema for name, schema in _SPECIAL.items() if schema.get("type") == "string"},
    **_WRAPPERS,
}
_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")
# A file as it is, in a request or a response.
_BYTES: dict[str, Any] = {"type": "string", "contentMediaType": "application/octet-stream"}
# The same file as the one part of a form (gateway/forms.py).
FORM_DATA = "multipart/form-data"
_FILE_FORM: dict[str, Any] = {
    "schema": {
        "type": "object",
        "properties": {
            "file": {
                **_BYTES,
                "description": "The file, as a part with a filename (the upload's file name "
                "unless the query gives one); the form holds nothing else.",
            }
        },
        "required": ["file"],
        "additionalProperties": False,
    },
    "encoding": {"file": {"contentType": "*/*"}},
}


# --- Comments ------------------------------------------------------------------------------


def _comments(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Leading comments by full name (messages, fields, enums, values, services, methods)."""
    found: dict[str, str] = {}
    for file in files:
        by_path = {
            tuple(location.path): location.leading_comments
            for location in file.source_code_info.location
            if location.leading_comments
        }
        for i, proto in enumerate(file.message_type):
            _message_comments(found, by_path, proto, (4, i), file.package)
        for i, enum in enumerate(file.enum_type):
            _enum_comments(found, by_path, enum, (5, i), file.package)
        for i, service in enumerate(file.service):
            name = f"{file.package}.{service.name}"
            found[name] = by_path.get((6, i), "")
            for j, method in enumerate(service.method):
                found[f"{name}.{method.name}"] = by_path.get((6, i, 2, j), "")
    return {name: _clean(text) for name, text in found.items() if text.strip()}


# Field numbers in descriptor.proto: a message's fields, nested messages and enums; an
# enum's values.
_FIELDS, _NESTED, _ENUMS, _VALUES = 2, 3, 4, 2


def _message_comments(
    found: dict[str, str],
    by_path: dict[tuple[int, ...], str],
    proto: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
    scope: str,
) -> None:
    name = f"{scope}.{proto.name}"
    found[name] = by_path.get(path, "")
    for i, field in enumerate(proto.field):
        found[f"{name}.{field.name}"] = by_path.get((*path, _FIELDS, i), "")
    for i, nested in enumerate(proto.nested_type):
        _message_comments(found, by_path, nested, (*path, _NESTED, i), name)
    for i, enum in enumerate(proto.enum_type):
        _enum_comments(found, by_path, enum, (*path, _ENUMS, i), name)


def _enum_comments(
    found: dict[str, str],
    by_path: dict[tuple[int, ...], str],
    proto: descriptor_pb2.EnumDescriptorProto,
    path: tuple[int, ...],
    scope: str,
) -> None:
    name = f"{scope}.{proto.name}"
    found[name] = by_path.get(path, "")
    for i, value in enumerate(proto.value):
        found[f"{name}.{value.name}"] = by_path.get((*path, _VALUES, i), "")


def _clean(comment: str) -> str:
    """A comment as Markdown: the leading space of each line gone, paragraphs kept."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip()


@cache
def _descriptor_set(path: Path = DESCRIPTORS) -> tuple[descriptor_pb2.FileDescriptorProto, ...]:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: `make protos` writes it")
    found = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    return tuple(found.file)


# --- Schemas -------------------------------------------------------------------------------


class _Schemas:
    """components/schemas, filled as messages and enums are referred to."""

    def __init__(self, comments: dict[str, str]) -> None:
        self._comments = comments
        self.components: dict[str, dict[str, Any]] = {}

    def ref(self, message: descriptor.Descriptor) -> dict[str, Any]:
        if message.full_name in _SPECIAL:
            return dict(_SPECIAL[message.full_name])
        if message.full_name not in self.components:
            self.components[message.full_name] = {}  # taken before recursing
            self.components[message.full_name] = self._object(message, exclude=())
        return {"$ref": SCHEMA_REF + message.full_name}

    def body(self, message: descriptor.Descriptor, exclude: Sequence[str]) -> dict[str, Any]:
        """The request message without the fields the path already holds."""
        if not exclude:
            return self.ref(message)
        return self._object(message, exclude)

    def _object(self, message: descriptor.Descriptor, exclude: Sequence[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in exclude:
                continue
            properties[field.json_name] = self.field(field)
            if field_behavior_pb2.REQUIRED in _behaviors(field):
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if text := self._comments.get(message.full_name):
            schema["description"] = text
        return schema

    def field(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self._single(value),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
            limits = _limits(field)
            if limits is not None and limits.max_items:
                schema["maxItems"] = limits.max_items
        else:
            schema = self._single(field)
        return self._described(field, schema)

    def _described(
        self, field: descriptor.FieldDescriptor, schema: dict[str, Any]
    ) -> dict[str, Any]:
        behaviors = _behaviors(field)
        notes = []
        if text := self._comments.get(field.full_name):
            notes.append(text)
            example = _EXAMPLE.search(text)
            if example and field.type == _FD.TYPE_STRING and not field.is_repeated:
                schema = {**schema, "examples": [example.group(1)]}
        if field_behavior_pb2.IMMUTABLE in behaviors:
            notes.append("Set when the resource is created; cannot be changed.")
        if notes or field_behavior_pb2.OUTPUT_ONLY in behaviors:
            if "$ref" in schema:
                # A $ref's siblings are allowed in 3.1, but tools read them more surely here.
                schema = {"allOf": [schema]}
            if notes:
                schema["description"] = "\n\n".join(notes)
            if field_behavior_pb2.OUTPUT_ONLY in behaviors:
                schema["readOnly"] = True
        return schema

    def _single(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of `field` (an item, for repeated fields)."""
        if field.type == _FD.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if field.type == _FD.TYPE_ENUM:
            return self.enum(field.enum_type)
        schema: dict[str, Any]
        if field.type in _INT64:
            schema = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
        elif field.type in _INT32:
            schema = {"type": "integer", "format": "int32"}
        elif field.type in _UINT32:
            schema = {"type": "integer", "format": "int32", "minimum": 0}
        elif field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
            schema = {"type": "number"}
        elif field.type == _FD.TYPE_BOOL:
            schema = {"type": "boolean"}
        elif field.type == _FD.TYPE_BYTES:
            schema = {"type": "string", "contentEncoding": "base64"}
        else:
            schema = {"type": "string"}
        limits = _limits(field)
        if limits is not None:
            if limits.max_length:
                schema["maxLength"] = limits.max_length
            if limits.HasField("min_int"):
                schema["minimum"] = limits.min_int
            if limits.HasField("max_int"):
                schema["maximum"] = limits.max_int
        return schema

    def enum(self, enum: descriptor.EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.components:
            values = [value.name for value in enum.values]
            described = [
                f"- `{value.name}`: {self._comments[f'{enum.full_name}.{value.name}']}"
                for value in enum.values
                if f"{enum.full_name}.{value.name}" in self._comments
            ]
            text = "\n".join(filter(None, [self._comments.get(enum.full_name, ""), *described]))
            schema: dict[str, Any] = {"type": "string", "enum": values}
            if text:
                schema["description"] = text
            self.components[enum.full_name] = schema
        return {"$ref": SCHEMA_REF + enum.full_name}


# The first example a field's comment gives, "(e.g. `metric = DENIAL_RATE`)", is its example.
_EXAMPLE = re.compile(r"e\.g\.,? `([^`]+)`")


def _behaviors(field: descriptor.FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def _limits(field: descriptor.FieldDescriptor) -> Any:
    options = field.GetOptions()
    if not options.HasExtension(field_limits_pb2.field_limits):
        return None
    return options.Extensions[field_limits_pb2.field_limits]


# --- Operations ----------------------------------------------------------------------------


def _singular(collection: str) -> str:
    if collection.endswith("ies"):
        return collection[:-3] + "y"
    return collection[:-1] if collection.endswith("s") else collection


def openapi_path(template: str) -> tuple[str, list[tuple[str, str, str]]]:
    """`/v1/{name=customers/*/uploads/*}:download` as an OpenAPI path, and its parameters as
    (parameter, the request field it is part of, the segment pattern around it)."""
    parameters: list[tuple[str, str, str]] = []
    taken: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        field, inner = match.group(1), match.group(2) or "*"
        segments = inner.split("/")
        out = []
        for at, segment in enumerate(segments):
            if segment != "*":
                out.append(segment)
                continue
            base = _singular(segments[at - 1]) if at > 0 else field.split(".")[-1]
            name = base
            while name in taken:
                name += "_"
            taken.add(name)
            parameters.append((name, field, inner))
            out.append("{" + name + "}")
        return "/".join(out)

    return _VARIABLE.sub(expand, template), parameters


def _query_parameters(
    schemas: _Schemas,
    message: descriptor.Descriptor,
    skip: set[str],
    prefix: str = "",
    depth: int = 0,
) -> list[dict[str, Any]]:
    """Query parameters of the fields not in the path or body, nested ones dotted."""
    parameters = []
    for field in message.fields:
        dotted = prefix + field.json_name
        if prefix + field.name in skip or dotted in skip:
            continue
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            continue
        nested = field.message_type
        if nested is not None and nested.full_name not in _QUERY_TEXT:
            if depth < 3 and not field.is_repeated:
                parameters.extend(
                    _query_parameters(schemas, nested, skip, prefix=f"{dotted}.", depth=depth + 1)
                )
            continue
        if nested is not None:
            single = dict(_QUERY_TEXT[nested.full_name])
        elif field.type == _FD.TYPE_ENUM:
            single = schemas.enum(field.enum_type)
        else:
            single = schemas._single(field)
        schema = {"type": "array", "items": single} if field.is_repeated else single
        parameter: dict[str, Any] = {"name": dotted, "in": "query", "schema": schema}
        if field.is_repeated:
            parameter["explode"] = True
            parameter["style"] = "form"
        described = schemas._described(field, {})
        if "description" in described:
            parameter["description"] = described["description"]
        if "examples" in described:
            parameter["example"] = described["examples"][0]
        if field_behavior_pb2.OUTPUT_ONLY in _behaviors(field):
            continue
        if field_behavior_pb2.REQUIRED in _behaviors(field) and not prefix:
            parameter["required"] = True
        parameters.append(parameter)
    return parameters


_ERRORS = {
    "400": "The request is not valid: the error names each field and what is wrong with it.",
    "401": "No bearer token, or one that is not valid.",
    "403": "The token's role may not do this.",
    "404": "No such resource for this customer.",
    "409": "The resource exists already, or changed meanwhile.",
    "412": "The etag given is not the resource's.",
    "415": "The body's `Content-Encoding` is not one this operation reads (see `Accept-Encoding`).",
    "429": "Too many requests; try again later.",
    "503": "A service is unavailable; try again later.",
}


def _operation(
    schemas: _Schemas, comments: dict[str, str], route: Route, ids: set[str]
) -> tuple[str, str, dict[str, Any]]:
    method = route.method
    service = method.containing_service
    path, path_parameters = openapi_path(route.binding.template)
    operation_id = f"{service.name}_{method.name}"
    while operation_id in ids:
        operation_id += "_"
    ids.add(operation_id)
    text = comments.get(method.full_name, "")
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [service.name],
        "summary": text.split("\n\n")[0].replace("\n", " ") if text else method.name,
    }
    if text and text != operation["summary"]:
        operation["description"] = text
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": f"A segment of `{field}` (`{pattern}`).",
            "schema": {"type": "string", "pattern": "^[^/]+$"},
            **({"example": "acme"} if name == "customer" else {}),
        }
        for name, field, pattern in path_parameters
    ]
    path_fields = {field for _, field, _ in path_parameters}
    body = route.binding.body
    input_type = method.input_type
    if body != "*":
        skip = set(path_fields) | ({body} if body else set())
        parameters.extend(_query_parameters(schemas, input_type, skip))
    parameters.extend(_header_parameters(route))
    if parameters:
        operation["parameters"] = parameters
    if body == "*":
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": schemas.body(input_type, sorted(path_fields))}
            },
        }
    elif body:
        field = input_type.fields_by_name[body]
        if field.message_type is not None and field.message_type.full_name == HTTP_BODY:
            content = {"*/*": {"schema": _BYTES}, FORM_DATA: _FILE_FORM}
        else:
            content = {"application/json": {"schema": schemas.field(field)}}
        operation["requestBody"] = {"required": True, "content": content}
    output = method.output_type
    response: dict[str, Any]
    if output.full_name == HTTP_BODY:
        response = {
            "description": "The file, with its `Content-Type`, `Content-Disposition` and length.",
            "content": {"*/*": {"schema": _BYTES}},
        }
    elif method.server_streaming:
        response = {
            "description": 'Newline-delimited JSON: one `{"result": …}` a message, or '
            '`{"error": …}` if the stream fails midway.',
            "content": {
                "application/x-ndjson": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "result": schemas.ref(output),
                            "error": {"$ref": SCHEMA_REF + ERROR_SCHEMA},
                        },
                    }
                }
            },
        }
    else:
        response = {
            "description": comments.get(output.full_name, output.name).split("\n\n")[0],
            "content": {"application/json": {"schema": schemas.ref(output)}},
        }
    is_read = route.binding.verb == "get"
    response["headers"] = {
        name: {"$ref": f"#/components/headers/{name}"}
        for name in ("X-Request-ID", "API-Version", "Cache-Control")
    }
    if is_read and not method.server_streaming:
        response["headers"]["ETag"] = {"$ref": "#/components/headers/ETag"}
    operation["responses"] = {
        "200": response,
        **(
            {"304": {"description": "The client's copy (If-None-Match) is current."}}
            if is_read and not method.server_streaming
            else {}
        ),
        **{
            code: {"$ref": f"#/components/responses/{code}"}
            for code in _ERRORS
            if code != "415" or route.binding.body
        },
        "default": {"$ref": "#/components/responses/default"},
    }
    return path, route.binding.verb, operation


def _header_parameters(route: Route) -> list[dict[str, Any]]:
    headers: list[dict[str, Any]] = [
        {
            "name": "X-Request-ID",
            "in": "header",
            "description": "Your id for the request (else one is made), returned and logged.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        }
    ]
    if route.binding.verb == "get" and not route.method.server_streaming:
        headers.append(
            {
                "name": "If-None-Match",
                "in": "header",
                "description": "ETags of the copies you hold: 304 if one is current.",
                "schema": {"type": "string"},
            }
        )
    if route.streams_request_body:
        headers.append(
            {
                "name": "Content-Encoding",
                "in": "header",
                "description": "`gzip` for a body compressed with gzip (a `.gz` file may also be "
                "sent as it is); any other coding is 415.",
                "schema": {"type": "string", "enum": ["gzip", "identity"]},
            }
        )
    if route.binding.verb in ("patch", "delete") and _takes_etag(route):
        headers.append(
            {
                "name": "If-Match",
                "in": "header",
                "description": "Change only if the resource's ETag is this one (else 412), or `*`.",
                "schema": {"type": "string", "example": '"17f2a9c3"'},
            }
        )
    return headers


def _takes_etag(route: Route) -> bool:
    input_type = route.method.input_type
    body = route.binding.body
    if body not in ("", "*"):
        nested = input_type.fields_by_name[body].message_type
        if nested is not None and "etag" in nested.fields_by_name:
            return True
    return "etag" in input_type.fields_by_name


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details, with the gRPC status as extension members.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "description": "`about:blank`: the status says it."},
            "title": {"type": "string", "description": "The HTTP status phrase."},
            "status": {"type": "integer", "description": "The HTTP status."},
            "detail": {"type": "string", "description": "What is wrong, in words."},
            "instance": {"type": "string", "description": "The path asked for."},
            "code": {"type": "string", "description": "The canonical gRPC status name."},
            "violations": {
                "type": "array",
                "description": "Each bad field (a request field, a header or `body`).",
                "items": {
                    "type": "object",
                    "required": ["field", "description"],
                    "properties": {
                        "field": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
            },
            "details": {
                "type": "array",
                "items": {"type": "object", "properties": {"@type": {"type": "string"}}},
                "description": "The gRPC error details (`google.rpc.BadRequest`, "
                "`ErrorInfo`, `RetryInfo`…), each with its `@type`.",
            },
            "request_id": {"type": "string", "description": "The `X-Request-ID` answered."},
            "trace_id": {"type": "string", "description": "The call's trace."},
        },
    }


def build_spec(
    routes: Sequence[Route], services: Sequence[descriptor.ServiceDescriptor] = API_SERVICES
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`."""
    comments = _comments(_descriptor_set())
    schemas = _Schemas(comments)
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for route in sorted(routes, key=lambda r: (r.binding.template, r.binding.verb)):
        path, verb, operation = _operation(schemas, comments, route, ids)
        paths.setdefault(path, {})[verb] = operation
    error = {"content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMA_REF + ERROR_SCHEMA}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Upstream API",
            "version": API_VERSION,
            "description": "Payer drift detection: uploads of claims, the drift found in "
            "them, and the reports, webhooks and alerts that deliver it. Every call takes a "
            "bearer token (`make token` prints one for local runs).",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": service.name, "description": comments.get(service.full_name, "")}
            for service in services
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**dict(sorted(schemas.components.items())), ERROR_SCHEMA: _error_schema()},
            "responses": {
                **{code: {"description": text, **error} for code, text in _ERRORS.items()},
                "default": {"description": "Any other error, in the same shape.", **error},
            },
            "headers": {
                "X-Request-ID": {
                    "description": "The request's id: yours, or one made for it.",
                    "schema": {"type": "string"},
                },
                "API-Version": {"description": "The API's version.", "schema": {"type": "string"}},
                "Cache-Control": {
                    "description": "`private, no-cache` for reads, `no-store` for writes.",
                    "schema": {"type": "string"},
                },
                "ETag": {
                    "description": "Strong: the resource's etag, or a digest of the answer.",
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
