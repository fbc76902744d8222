"""AIP-160 filters: one parser for every List method's `filter` string.

Supported: comparisons `field op value` with `= != < <= > >= :` (`:` is "has" on repeated
fields), `AND`, `OR`, `NOT`/`-`, parentheses, quoted or bare values. Each List method names
the fields it allows and their types; anything else is INVALID_ARGUMENT on `filter`, with the
position of the problem.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from runtime import errors

_TOKENS = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|
        (?P<op><=|>=|!=|=|<|>|:)|
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|
        (?P<word>[A-Za-z0-9_.@/*][A-Za-z0-9_.\-+:@/*]*?(?=\s|\)|$|<=|>=|!=|=|<|>|:["']))|
        (?P<minus>-)
    )""",
    re.VERBOSE,
)
_COMPARATORS = {"=", "!=", "<", "<=", ">", ">=", ":"}
# Deeper nesting would exhaust the parser's (recursive) stack.
_MAX_NESTING = 32


@dataclass(frozen=True)
class FilterField:
    """A filterable field: the column it reads and how its values are typed."""

    column: Any
    kind: str = "text"  # text | enum | int | float | bool | date | timestamp | text_array
    # For enums: the accepted names (as in the API) mapped to stored values.
    enum_values: Mapping[str, Any] | None = None
    # Enums whose values have an order (`severity >= MEDIUM`); the column holds the rank.
    ordered: bool = False
    # An expression equal to the column wherever the column is not NULL, which an index
    # holds (`coalesce(decision_date, '0001-01-01')`): a comparison with a value is made on
    # it, beside `column IS NOT NULL`, so the index can serve the range; same results.
    indexed_as: Any = None


def _invalid(description: str) -> errors.ApiError:
    return errors.invalid_argument(
        f"filter: {description}", errors.FieldViolation("filter", description)
    )


@dataclass
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKENS.match(text, position)
        if found is None or found.end() == position:
            bad = len(text) - len(text[position:].lstrip())
            raise _invalid(f"unexpected character {text[bad]!r} at position {bad + 1}")
        kind = found.lastgroup or ""
        value = found.group(kind)
        start = found.start(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(_Token(kind, value, start + 1))
        position = found.end()
    return tokens


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, FilterField]) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.fields = fields
        self.nesting = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _invalid("ends too early")
        self.index += 1
        return token

    def is_keyword(self, token: _Token | None, keyword: str) -> bool:
        return token is not None and token.kind == "word" and token.text == keyword

    def parse(self) -> ColumnElement[bool]:
        expression = self.or_expression()
        leftover = self.peek()
        if leftover is not None:
            raise _invalid(f"unexpected {leftover.text!r} at position {leftover.position}")
        return expression

    def or_expression(self) -> ColumnElement[bool]:
        terms = [self.and_expression()]
        while self.is_keyword(self.peek(), "OR"):
            self.take()
            terms.append(self.and_expression())
        return terms[0] if len(terms) == 1 else or_(*terms)

    def and_expression(self) -> ColumnElement[bool]:
        terms = [self.unary()]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen" or self.is_keyword(token, "OR"):
                break
            if self.is_keyword(token, "AND"):
                self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else and_(*terms)

    def unary(self) -> ColumnElement[bool]:
        token = self.peek()
        if self.is_keyword(token, "NOT") or (token is not None and token.kind == "minus"):
            self.take()
            return not_(self.term())
        return self.term()

    def term(self) -> ColumnElement[bool]:
        token = self.take()
        if token.kind == "lparen":
            self.nesting += 1
            if self.nesting > _MAX_NESTING:
                raise _invalid(
                    f"parentheses nested deeper than {_MAX_NESTING} at position {token.position}"
                )
            inner = self.or_expression()
            closing = self.take()
            if closing.kind != "rparen":
                raise _invalid(f"expected ')' at position {closing.position}")
            self.nesting -= 1
            return inner
        if token.kind != "word":
            raise _invalid(f"expected a field name at position {token.position}")
        if ":" in token.text and token.text not in self.fields:
            # `payers:Aetna` arrives as one word, since values may hold colons (timestamps).
            name, _, value = token.text.partition(":")
            position = token.position + len(name)
            token = _Token("word", name, token.position)
            self.tokens[self.index : self.index] = [_Token("op", ":", position)] + (
                [_Token("word", value, position + 1)] if value else []
            )
        field = self.fields.get(token.text) or self.fields.get(_snake(token.text))
        if field is None:
            allowed = ", ".join(sorted(self.fields)) or "none"
            raise _invalid(f"unknown field {token.text!r} (filterable: {allowed})")
        operator = self.take()
        if operator.kind != "op" or operator.text not in _COMPARATORS:
            raise _invalid(f"expected a comparison after {token.text!r} at {operator.position}")
        value_token = self.take()
        if value_token.kind not in ("word", "string"):
            raise _invalid(f"expected a value at position {value_token.position}")
        return _compare(token.text, field, operator.text, value_token.text)


def _snake(name: str) -> str:
    """`codeGroup` → `code_group`: REST clients write JSON names, as in the bodies."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _typed(name: str, field: FilterField, raw: str) -> Any:
    try:
        match field.kind:
            case "int":
                return int(raw)
            case "float":
                return float(raw)
            case "bool":
                if raw.lower() not in ("true", "false"):
                    raise ValueError
                return raw.lower() == "true"
            case "date":
                return dt.date.fromisoformat(raw)
            case "timestamp":
                parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    raise ValueError
                return parsed
            case "enum":
                assert field.enum_values is not None
                return field.enum_values[raw]
    except (ValueError, KeyError) as exc:
        expected = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "date": "a date (YYYY-MM-DD)",
            "timestamp": "an RFC 3339 timestamp (2026-03-14T00:00:00Z)",
            "enum": "one of " + ", ".join(sorted(field.enum_values or {})),
        }[field.kind]
        raise _invalid(f"{name}: {raw!r} is not {expected}") from exc
    return raw


def _compare(name: str, field: FilterField, operator: str, raw: str) -> ColumnElement[bool]:
    column = field.column
    if field.kind == "text_array":
        if operator != ":":
            raise _invalid(f"{name} is a list: use {name}:value")
        return column.contains([raw])
    value = _typed(name, field, raw)
    if operator == ":":
        if field.kind != "text":
            operator = "="
        elif raw == "*":
            return column.is_not(None)
        else:
            return column == value
    if field.kind in ("enum", "bool") and not field.ordered and operator not in ("=", "!="):
        raise _invalid(f"{name} can only be compared with = or !=")
    target = column if field.indexed_as is None else field.indexed_as
    compared = {
        "=": lambda: target == value,
        "!=": lambda: target != value,
        "<": lambda: target < value,
        "<=": lambda: target <= value,
        ">": lambda: target > value,
        ">=": lambda: target >= value,
    }[operator]()
    if field.indexed_as is None:
        return compared
    # A NULL column compares as nothing, as the column itself would.
    return and_(compared, column.is_not(None))


def parse_filter(text: str, fields: Mapping[str, FilterField]) -> ColumnElement[bool]:
    """A SQL condition for an AIP-160 filter; an empty filter matches everything."""
    if not text.strip():
        return true()
    return _Parser(text, fields).parse()
