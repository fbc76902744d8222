"""Conditional requests and caching headers (RFC 9110 §13, AIP-154).

- Every successful GET answer has a strong `ETag`: the resource's own etag when it has one
  (the value `If-Match` is then checked against), else a digest of the answer; a GET whose
  `If-None-Match` names it is answered 304, without a body.
- `If-Match` on PATCH and DELETE becomes the request's etag (the resource's `etag` in an
  update, the request's `etag` in a delete), which the service checks; a mismatch is 412.
  `If-Match: *` asks only that the resource exists. A method with no etag refuses the header
  (400) rather than ignore a precondition its client relies on.
- Tenant data is `Cache-Control: private, no-cache` (kept only by the client, revalidated);
  answers to writes (which may hold a secret shown once) and errors are `no-store`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from google.protobuf import message
from starlette.responses import Response

from gateway.http_policy import ENCODING_ETAG_SUFFIXES
from gateway.transcoding import Route
from runtime import errors

ETAG_FIELD = "etag"
TENANT_DATA = "private, no-cache"
NOT_STORED = "no-store"
IF_MATCH = "If-Match"


def entity_tags(header: str) -> list[str]:
    """The entity tags of an If-Match / If-None-Match header, `*` as itself; a tag of a
    compressed answer (`"x-gzip"`, `"x-br"`, see gateway.http_policy) as the tag of what was
    compressed."""
    return [_uncompressed(tag.strip()) for tag in header.split(",") if tag.strip()]


def _uncompressed(tag: str) -> str:
    for suffix in ENCODING_ETAG_SUFFIXES.values():
        if tag.endswith(suffix + '"'):
            return tag[: -len(suffix) - 1] + '"'
    return tag


def _quoted(tag: str) -> str:
    return '"' + tag.replace("\\", "").replace('"', "") + '"'


def apply_if_match(route: Route, sent: Mapping[str, str], fields: dict[str, Any]) -> bool:
    """Put `If-Match`'s etag into the request (`sent`: the request's header fields by
    lower-case name); True when the request is conditional on it."""
    header = sent.get("if-match")
    if header is None or route.binding.verb not in ("patch", "delete"):
        return False
    tags = entity_tags(header)
    if tags == ["*"]:
        return False
    input_type = route.method.input_type
    body = route.binding.body
    if (
        body not in ("", "*")
        and ETAG_FIELD in input_type.fields_by_name[body].message_type.fields_by_name
    ):
        target = fields.setdefault(body, {})
    elif ETAG_FIELD in input_type.fields_by_name:
        target = fields
    else:
        description = f"{route.method.name} takes no etag, so it cannot be made conditional"
        raise errors.invalid_argument(
            f"{IF_MATCH} header: {description}", errors.FieldViolation(IF_MATCH, description)
        )
    if (
        len(tags) != 1
        or tags[0].startswith("W/")
        or not (tags[0].startswith('"') and tags[0].endswith('"'))
    ):
        description = 'must be one strong entity tag, such as "abc123", or *'
        raise errors.invalid_argument(
            f"{IF_MATCH} header: {description}", errors.FieldViolation(IF_MATCH, description)
        )
    if isinstance(target, dict):
        target[ETAG_FIELD] = tags[0][1:-1]
    return True


def entity_tag(reply: message.Message, body: bytes | memoryview) -> str:
    own = getattr(reply, ETAG_FIELD, "") if ETAG_FIELD in reply.DESCRIPTOR.fields_by_name else ""
    if own:
        return _quoted(str(own))
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def finish(
    route: Route, sent: Mapping[str, str], reply: message.Message | None, response: Response
) -> Response:
    """The answer with its caching headers, or a 304 when the client's copy is current
    (`sent`: the request's header fields by lower-case name)."""
    answer = response.headers
    if route.binding.verb != "get":
        answer["Cache-Control"] = NOT_STORED
        return response
    answer["Cache-Control"] = TENANT_DATA
    if reply is None or "etag" in answer:
        return response
    tag = entity_tag(reply, response.body)
    # It has none (looked for above): added as it is.
    response.raw_headers.append((b"etag", tag.encode("latin-1")))
    if_none_match = sent.get("if-none-match")
    if if_none_match is None:
        return response
    wanted = entity_tags(if_none_match)
    # Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
    if "*" in wanted or tag in {t.removeprefix("W/") for t in wanted}:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": TENANT_DATA})
    return response
