"""HTTP/JSON ↔ gRPC transcoding, driven by the `google.api.http` annotations.

The same semantics as grpc-gateway and Envoy's transcoder: path templates bind fields,
`body: "*"` or `body: "<field>"` takes the JSON body, remaining fields come from the query
string (proto or JSON names, dotted for nested, repeated by repetition), and messages map to
JSON by the proto3 JSON mapping. Pure code: no I/O.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import unquote

import orjson
from google.protobuf import descriptor, json_format, message, message_factory
from prometheus_client import Counter
from starlette.responses import JSONResponse

from gateway import json_printer
from runtime import errors
from runtime.methods import HttpBinding, http_bindings

HTTP_BODY = "google.api.HttpBody"
DATE = "google.type.Date"
FIELD_MASK = "google.protobuf.FieldMask"
# Query values for these message types are given as one JSON string, as in JSON bodies.
_STRING_VALUED_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.StringValue",
    "google.protobuf.Int64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.DoubleValue",
}
_FD = descriptor.FieldDescriptor
_INT_TYPES = {
    _FD.TYPE_INT32, _FD.TYPE_INT64, _FD.TYPE_UINT32, _FD.TYPE_UINT64,
    _FD.TYPE_SINT32, _FD.TYPE_SINT64, _FD.TYPE_FIXED32, _FD.TYPE_FIXED64,
    _FD.TYPE_SFIXED32, _FD.TYPE_SFIXED64,
}  # fmt: skip
_FLOAT_TYPES = {_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE}
# How many (verb, path) pairs Routes.match keeps the route and variables of.
MATCHED_PATHS_KEPT = 4096
MATCHED_PATH_MAX_CHARS = 256
# Deeper than any request message; refused before the recursive proto parsing.
MAX_JSON_DEPTH = 64


def _compile_segments(segments: str) -> str:
    parts = []
    for segment in segments.split("/"):
        if segment == "**":
            parts.append(".+")
        elif segment == "*":
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return "/".join(parts)


_TOKEN = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")


def compile_template(template: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for a path template and the field paths of its variables, in order."""
    verb = ""
    # The verb is a `:literal` after the last variable or segment.
    last_close = template.rfind("}")
    colon = template.rfind(":")
    if colon > last_close and "/" not in template[colon:]:
        template, verb = template[:colon], template[colon:]
    pattern, fields, position = [], [], 0
    for match in _TOKEN.finditer(template):
        pattern.append(_compile_segments(template[position : match.start()]))
        fields.append(match.group(1))
        inner = match.group(2) or "*"
        pattern.append(f"({_compile_segments(inner)})")
        position = match.end()
    pattern.append(_compile_segments(template[position:]))
    return re.compile("^" + "".join(pattern) + re.escape(verb) + "$"), fields


@dataclass(frozen=True)
class Route:
    """One HTTP route bound to one RPC."""

    method: descriptor.MethodDescriptor
    binding: HttpBinding
    pattern: re.Pattern[str]
    variables: tuple[str, ...]

    @cached_property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @cached_property
    def specificity(self) -> tuple[int, int]:
        """Routes with a custom verb and more literal text are tried first."""
        has_verb = ":" in self.binding.template.rsplit("}", 1)[-1]
        literal = len(_TOKEN.sub("", self.binding.template))
        return (int(has_verb), literal)

    @cached_property
    def request_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @cached_property
    def string_fields(self) -> frozenset[str]:
        """The request's top-level fields of one string each: what a path binds (`name`,
        `parent`), which a request made of them alone can be given directly."""
        return frozenset(
            f.name
            for f in self.method.input_type.fields
            if f.type == descriptor.FieldDescriptor.TYPE_STRING and not f.is_repeated
        )

    @cached_property
    def response_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    @cached_property
    def body_field(self) -> descriptor.FieldDescriptor | None:
        body = self.binding.body
        if body in ("", "*"):
            return None
        return self.method.input_type.fields_by_name[body]

    @cached_property
    def streams_request_body(self) -> bool:
        """The raw HTTP body is streamed in chunks into an `HttpBody` field."""
        field = self.body_field
        return (
            field is not None
            and field.message_type is not None
            and (field.message_type.full_name == HTTP_BODY)
        )

    @cached_property
    def returns_http_body(self) -> bool:
        return self.method.output_type.full_name == HTTP_BODY


class Routes(list[Route]):
    """Routes in the order they are tried (most specific first), and for each HTTP verb one
    regex that tries all of that verb's routes in that order at once: the first to match is
    the one whose group closes last (`lastindex`)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        super().__init__(routes)
        self._by_verb: dict[str, tuple[re.Pattern[str], dict[int, Route]]] = {}
        for verb in {route.binding.verb for route in self}:
            alternatives, by_group, group = [], {}, 1
            for route in (r for r in self if r.binding.verb == verb):
                # Each route's own pattern, anchored at both ends, as one group.
                alternatives.append(f"({route.pattern.pattern.removeprefix('^')})")
                by_group[group] = route
                group += 1 + route.pattern.groups
            self._by_verb[verb] = (re.compile("^(?:" + "|".join(alternatives) + ")"), by_group)

        # The paths matched last (up to 256 characters each), most recently used first: a
        # client reads the same few resources again and again, and one regex trying every
        # route takes microseconds.
        self._matched = lru_cache(maxsize=MATCHED_PATHS_KEPT)(self._match)

    def match(self, verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a request and its bound variables; None when none matches."""
        found = (self._matched if len(path) <= MATCHED_PATH_MAX_CHARS else self._match)(verb, path)
        return None if found is None else (found[0], dict(found[1]))

    def _match(self, verb: str, path: str) -> tuple[Route, tuple[tuple[str, str], ...]] | None:
        combined = self._by_verb.get(verb.lower())
        found = combined[0].match(path) if combined is not None else None
        if found is None or found.lastindex is None or combined is None:
            return None
        first = found.lastindex
        route = combined[1][first]
        # Only the route's own groups: `groups()` would make a tuple of every route's.
        return route, tuple(
            (field, unquote(found.group(first + 1 + index)))
            for index, field in enumerate(route.variables)
        )


def build_routes(services: Iterable[descriptor.ServiceDescriptor]) -> Routes:
    routes = []
    for service in services:
        for method in service.methods:
            for binding in http_bindings(method):
                pattern, variables = compile_template(binding.template)
                routes.append(Route(method, binding, pattern, tuple(variables)))
    return Routes(sorted(routes, key=lambda r: r.specificity, reverse=True))


def match(routes: Routes, verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a request and its bound variables; None when none matches."""
    return routes.match(verb, path)


def path_exists(routes: list[Route], path: str) -> bool:
    return any(route.pattern.match(path) for route in routes)


def _bad_field(field: str, description: str) -> errors.ApiError:
    return errors.invalid_argument(
        f"{field}: {description}", errors.FieldViolation(field, description)
    )


def parse_json_body(raw: bytes) -> Any:
    """A request body as one plain JSON document: INVALID_ARGUMENT naming `body` for text
    that is not UTF-8 JSON, a bare NaN or Infinity, a key given twice (which readers resolve
    differently) or nesting deeper than MAX_JSON_DEPTH."""
    try:
        document = json.loads(
            raw, object_pairs_hook=_object_of_distinct_keys, parse_constant=_no_constant
        )
    except RecursionError as exc:
        raise _bad_field("body", f"is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise _bad_field("body", f"is not valid JSON: {exc}") from exc
    if _nested_deeper_than(document, MAX_JSON_DEPTH):
        raise _bad_field("body", f"is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _object_of_distinct_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _bad_field("body", f"names {key!r} more than once in one object")
        document[key] = value
    return document


def _no_constant(constant: str) -> Any:
    raise _bad_field("body", f"{constant} is not JSON; write it as the string {constant!r}")


def _nested_deeper_than(document: Any, limit: int) -> bool:
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _resolve(
    message_descriptor: descriptor.Descriptor, dotted: str
) -> list[descriptor.FieldDescriptor]:
    """The chain of fields for a dotted path, accepting proto and JSON names."""
    chain = []
    current: descriptor.Descriptor | None = message_descriptor
    for part in dotted.split("."):
        if current is None:
            raise _bad_field(dotted, "is not a field of this request")
        field = current.fields_by_name.get(part) or next(
            (f for f in current.fields if f.json_name == part), None
        )
        if field is None:
            raise _bad_field(dotted, "is not a field of this request")
        chain.append(field)
        current = field.message_type
    return chain


def _scalar(field: descriptor.FieldDescriptor, raw: str, name: str) -> Any:
    try:
        if field.type in _INT_TYPES:
            return int(raw)
        if field.type in _FLOAT_TYPES:
            return float(raw)
    except ValueError as exc:
        raise _bad_field(name, f"{raw!r} is not a number") from exc
    if field.type == _FD.TYPE_BOOL:
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise _bad_field(name, f"{raw!r} is not true or false")
        return lowered in ("true", "1")
    if field.type == _FD.TYPE_ENUM and raw.isdecimal():
        return int(raw)
    if field.type == _FD.TYPE_MESSAGE:
        full_name = field.message_type.full_name
        if full_name == DATE:
            return _date(raw, name)
        if full_name == FIELD_MASK:
            # `update_mask=current_window_days,etag`: proto names, as grpc-gateway takes them.
            return ",".join(_lower_camel(path) for path in raw.split(",") if path)
        if full_name not in _STRING_VALUED_MESSAGES:
            raise _bad_field(name, "set its subfields instead (e.g. name.subfield=value)")
    return raw


def _lower_camel(path: str) -> str:
    return ".".join(
        part.split("_")[0] + "".join(w.capitalize() for w in part.split("_")[1:])
        for part in path.strip().split(".")
    )


def _date(raw: str, name: str) -> dict[str, int]:
    """`2026-03-14` for a `google.type.Date` field."""
    parts = raw.split("-")
    if len(parts) != 3 or not all(p.isdecimal() for p in parts):
        raise _bad_field(name, f"{raw!r} is not a date (YYYY-MM-DD)")
    year, month, day = (int(p) for p in parts)
    return {"year": year, "month": month, "day": day}


def _assign(target: dict[str, Any], chain: list[descriptor.FieldDescriptor], value: Any) -> None:
    for field in chain[:-1]:
        target = target.setdefault(field.name, {})
        if not isinstance(target, dict):
            raise _bad_field(field.name, "is set more than once")
    leaf = chain[-1]
    if leaf.is_repeated:
        target.setdefault(leaf.name, []).append(value)
    elif leaf.name in target and not isinstance(target[leaf.name], dict):
        raise _bad_field(leaf.name, "is set more than once")
    else:
        target[leaf.name] = value


_MAP_KEY = re.compile(r"^([A-Za-z0-9_.]+)\[([^\]]*)\]$")


def _assign_map_entry(
    target: dict[str, Any], chain: list[descriptor.FieldDescriptor], key: str, raw: str, name: str
) -> None:
    """`upload.column_map[claim_id]=Claim Number`: one entry of a map field (grpc-gateway's
    query syntax for maps)."""
    leaf = chain[-1]
    entry = leaf.message_type
    if entry is None or not entry.GetOptions().map_entry:
        raise _bad_field(name, "is not a map field")
    for field in chain[:-1]:
        target = target.setdefault(field.name, {})
        if not isinstance(target, dict):
            raise _bad_field(field.name, "is set more than once")
    entries = target.setdefault(leaf.name, {})
    if key in entries:
        raise _bad_field(name, "is set more than once")
    entries[key] = _scalar(entry.fields_by_name["value"], raw, name)


def request_dict(
    route: Route,
    path_values: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: Any,
) -> dict[str, Any]:
    """The request as a proto-JSON dict, from path variables, query parameters and body."""
    input_type = route.method.input_type
    fields: dict[str, Any] = {}
    if route.binding.body == "*":
        if body is not None:
            if not isinstance(body, dict):
                raise _bad_field("body", "must be a JSON object")
            fields.update(body)
    elif route.binding.body and not route.streams_request_body and body is not None:
        fields[route.binding.body] = body
    if route.binding.body != "*":
        bound = set(path_values) | ({route.binding.body} if route.binding.body else set())
        for key, raw in query:
            map_entry = _MAP_KEY.match(key)
            chain = _resolve(input_type, map_entry.group(1) if map_entry else key)
            dotted = ".".join(f.name for f in chain)
            if any(dotted == b or dotted.startswith(b + ".") for b in bound):
                raise _bad_field(key, "is bound by the path or body, not the query string")
            if map_entry:
                _assign_map_entry(fields, chain, map_entry.group(2), raw, key)
            else:
                _assign(fields, chain, _scalar(chain[-1], raw, key))
    inferred = _mask_from_body(route, body)
    if inferred is not None and UPDATE_MASK not in fields:
        fields[UPDATE_MASK] = inferred
    for dotted, value in path_values.items():
        chain = _resolve(input_type, dotted)
        target = fields
        for field in chain[:-1]:
            target = target.setdefault(_key_in(target, field), {})
            if not isinstance(target, dict):
                raise _bad_field(field.name, "must be a JSON object")
        # The path wins over a body that names the same field.
        target[_key_in(target, chain[-1])] = value
    return fields


UPDATE_MASK = "update_mask"


def _mask_from_body(route: Route, body: Any) -> str | None:
    """A PATCH without `update_mask` updates exactly the fields its body names, as
    grpc-gateway infers it; so `{"minCurrentClaims": 0}` sets a zero. The name identifies
    the resource and the etag is a precondition: neither is a change."""
    mask_field = route.method.input_type.fields_by_name.get(UPDATE_MASK)
    body_field = route.body_field
    if route.binding.verb != "patch" or mask_field is None or body_field is None:
        return None
    if not isinstance(body, dict) or body_field.message_type is None:
        return None
    resource = body_field.message_type
    paths = []
    for key in body:
        field = resource.fields_by_name.get(key) or next(
            (f for f in resource.fields if f.json_name == key), None
        )
        if field is not None and field.name not in ("name", "etag"):
            paths.append(_lower_camel(field.name))
    return ",".join(paths)


def _key_in(target: dict[str, Any], field: descriptor.FieldDescriptor) -> str:
    """The key a dict already uses for a field (JSON or proto name), else the proto name."""
    return field.json_name if field.json_name in target else field.name


def parse_request(route: Route, fields: dict[str, Any]) -> message.Message:
    if fields.keys() <= route.string_fields and all(type(v) is str for v in fields.values()):
        # Strings into string fields (a GET by name): what ParseDict makes, 20 times sooner.
        return route.request_class(**fields)
    _check_objects(fields, route.method.input_type, "")
    request = route.request_class()
    try:
        json_format.ParseDict(fields, request)
    except json_format.ParseError as exc:
        raise _bad_field(*_parse_error_field(route.method.input_type, str(exc))) from exc
    except OverflowError as exc:
        # A number too large for a float (`1e999` reads as infinity) where an integer or an
        # enum's number goes: protobuf's parser lets this one error through unwrapped.
        raise _bad_field("body", "holds a number too large for its field") from exc
    return request


def _check_objects(
    document: dict[str, Any], message_type: descriptor.Descriptor, path: str, sent: str = ""
) -> None:
    """Refuse, naming the field, a key that is no field and JSON that is not an object where
    a message is: json_format would read a list or a string as the keys of one, and its
    errors quote keys in a way a key with a quote in it breaks. A field is named by its
    path (`path`); a key that is no field by the keys the client sent to it (`sent`), since
    it has no field path."""
    for key, value in document.items():
        field = message_type.fields_by_name.get(key) or next(
            (f for f in message_type.fields if f.json_name == key), None
        )
        if field is None:
            raise _bad_field(f"{sent}{errors.client_text(key)}", "is not a field of this request")
        if not _json_is_object(field.message_type) or value is None:
            continue
        name, sent_name = f"{path}{field.name}", f"{sent}{key}"
        if not field.is_repeated:
            if not isinstance(value, dict):
                raise _bad_field(name, "must be a JSON object")
            _check_objects(value, field.message_type, f"{name}.", f"{sent_name}.")
        # Not a list at all: json_format names the field and says so.
        elif isinstance(value, list):
            if not all(isinstance(item, dict) for item in value):
                raise _bad_field(name, "must be a list of JSON objects")
            for item in value:
                _check_objects(item, field.message_type, f"{name}.", f"{sent_name}.")


def _json_is_object(message_type: descriptor.Descriptor | None) -> bool:
    """Whether a message's JSON is an object: not a map entry, nor a well-known type, which
    has a JSON form of its own (a string, a number, a list)."""
    return (
        message_type is not None
        and not message_type.GetOptions().map_entry
        and not message_type.full_name.startswith("google.protobuf.")
    )


_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_ERROR_PLACE = re.compile(r" at [\w.\[\]]+\.?$")


def _parse_error_field(message_descriptor: descriptor.Descriptor, error: str) -> tuple[str, str]:
    """The field path (proto names) and the reason of a json_format error, which names the
    fields it went through (`Failed to parse webhook field: Failed to parse url field: …`)."""
    names = _FAILED_FIELD.findall(error)
    reason = error.rsplit("field: ", 1)[-1]
    path = []
    current: descriptor.Descriptor | None = message_descriptor
    for name in names:
        field = current and (
            current.fields_by_name.get(name)
            or next((f for f in current.fields if f.json_name == name), None)
        )
        path.append(field.name if field else name)
        current = field.message_type if field else None
    return ".".join(path) or "body", _ERROR_PLACE.sub("", reason.strip()).rstrip(".")


json_answers_total = Counter(
    "gateway_json_answers_total",
    "Answers of 2 KiB or more sent as JSON, by whether they were printed or kept printed.",
    ("source",),
)


def to_json(response: message.Message) -> dict[str, Any]:
    # Zeros and empty lists are shown, not omitted: a browser reads `"rowsRejected": "0"`.
    return json_printer.message_to_dict(response)


def json_bytes(value: Any) -> bytes:
    """`value` (a JSON object of strings, numbers, lists and objects) as compact UTF-8 JSON."""
    return orjson.dumps(value)


class PrintedAnswers:
    """Answers as JSON, each printed once while it stays the same: a large answer (a page of
    payer summaries with their weekly series is 75 KB) is read again and again unchanged
    between the runs and uploads that change it, and printing it costs far more than
    recognising it. Kept by the message's type and wire bytes (what it says, so never one
    tenant's answer for another's), at most `max_bytes` of both, the least recently read
    going first; answers under `min_bytes` are printed every time."""

    def __init__(self, max_bytes: int, min_bytes: int = 2048) -> None:
        self._max_bytes = max_bytes
        self._min_bytes = min_bytes
        self._kept: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._bytes = 0

    def json(self, reply: message.Message) -> bytes:
        if reply.ByteSize() < self._min_bytes:
            return json_bytes(to_json(reply))
        key = (reply.DESCRIPTOR.full_name, reply.SerializeToString(deterministic=True))
        printed = self._kept.get(key)
        if printed is not None:
            self._kept.move_to_end(key)
            json_answers_total.labels("kept").inc()
            return printed
        printed = json_bytes(to_json(reply))
        json_answers_total.labels("printed").inc()
        size = len(key[1]) + len(printed)
        if size <= self._max_bytes:
            self._kept[key] = printed
            self._bytes += size
            while self._bytes > self._max_bytes:
                (_, old_wire), old = self._kept.popitem(last=False)
                self._bytes -= len(old_wire) + len(old)
        return printed


class JSONBody(JSONResponse):
    """Starlette's JSON response, rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
