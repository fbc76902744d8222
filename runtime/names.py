"""Resource names (AIP-122): parse `customers/acme/uploads/u_1` by its pattern."""

from __future__ import annotations

import re
from functools import cache

from runtime import errors

_SEGMENT = re.compile(r"\{(\w+)\}")


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    parts, position = [], 0
    for match in _SEGMENT.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("^" + "".join(parts) + "$")


def parse(value: str, pattern: str, *, field: str = "name") -> dict[str, str]:
    """The variables of `value` under `pattern` (e.g. `customers/{customer}/uploads/{upload}`);
    INVALID_ARGUMENT naming the field when it does not fit."""
    found = _compile(pattern).fullmatch(value)
    if found is None:
        raise errors.invalid_argument(
            f"{field} must look like {pattern}, got {value!r}",
            errors.FieldViolation(field, f"must look like {pattern}"),
        )
    return found.groupdict()


def format_name(pattern: str, **values: str) -> str:
    return pattern.format(**values)
