"""Values in PostgreSQL's COPY text format, written directly: uploads make millions of them."""

from __future__ import annotations

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """`value` as a field of a COPY text line."""
    if "\\" not in value and value.isprintable():
        return value  # nothing to escape: the common case, checked without copying
    return value.translate(_ESCAPES)
