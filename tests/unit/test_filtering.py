"""AIP-160 filters as the SQL a List method runs: what a user's filter string selects."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from runtime.errors import ApiError
from runtime.filtering import FilterField, parse_filter

_claims = sa.Table(
    "claims",
    sa.MetaData(),
    sa.Column("state", sa.Text),
    sa.Column("create_time", sa.DateTime(timezone=True)),
    sa.Column("decision_date", sa.Date),
    sa.Column("denied", sa.Boolean),
    sa.Column("rows_read", sa.BigInteger),
    sa.Column("ratio", sa.Float),
    sa.Column("file_name", sa.Text),
    sa.Column("payers", postgresql.ARRAY(sa.Text)),
)

FIELDS = {
    # API names map to the values stored in the column.
    "state": FilterField(_claims.c.state, "enum", {"FAILED": "failed", "SUCCEEDED": "succeeded"}),
    "create_time": FilterField(_claims.c.create_time, "timestamp"),
    "decision_date": FilterField(_claims.c.decision_date, "date"),
    "denied": FilterField(_claims.c.denied, "bool"),
    "rows_read": FilterField(_claims.c.rows_read, "int"),
    "ratio": FilterField(_claims.c.ratio, "float"),
    "file_name": FilterField(_claims.c.file_name),
    "payers": FilterField(_claims.c.payers, "text_array"),
}


def sql(filter_text: str) -> str:
    condition = parse_filter(filter_text, FIELDS)
    compiled = condition.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def rejection(filter_text: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_filter(filter_text, FIELDS)
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["filter"]
    return error


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_an_empty_filter_matches_everything(text: str) -> None:
    assert sql(text) == "true"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state = FAILED", "claims.state = 'failed'"),
        ("state != SUCCEEDED", "claims.state != 'succeeded'"),
        ("state:FAILED", "claims.state = 'failed'"),
        ("rows_read > 100", "claims.rows_read > 100"),
        ("rows_read>=100", "claims.rows_read >= 100"),
        ("rows_read < 7", "claims.rows_read < 7"),
        ("rows_read:5", "claims.rows_read = 5"),
        ("ratio <= 0.5", "claims.ratio <= 0.5"),
        ("denied = true", "claims.denied = true"),
        ("denied = FALSE", "claims.denied = false"),
        ("denied != false", "claims.denied != false"),
        ("file_name = remits.csv", "claims.file_name = 'remits.csv'"),
        ("file_name:remits.csv", "claims.file_name = 'remits.csv'"),
        ("file_name > m", "claims.file_name > 'm'"),
        ("decision_date >= 2024-01-01", "claims.decision_date >= '2024-01-01'"),
        ('decision_date <= "2024-03-31"', "claims.decision_date <= '2024-03-31'"),
    ],
)
def test_a_comparison_reads_the_field_column_with_a_typed_value(text: str, expected: str) -> None:
    assert sql(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "create_time >= 2024-05-01T00:00:00Z",
            "claims.create_time >= '2024-05-01 00:00:00+00:00'",
        ),
        (
            'create_time < "2024-05-01T02:30:00+02:00"',
            "claims.create_time < '2024-05-01 02:30:00+02:00'",
        ),
        (
            "create_time > 2024-05-01T00:00:00.250Z",
            "claims.create_time > '2024-05-01 00:00:00.250000+00:00'",
        ),
    ],
)
def test_rfc3339_timestamps_keep_their_offset(text: str, expected: str) -> None:
    assert sql(text) == expected


def test_and_binds_tighter_than_or() -> None:
    assert sql("state = FAILED AND denied = true OR rows_read > 5") == (
        "claims.state = 'failed' AND claims.denied = true OR claims.rows_read > 5"
    )


def test_parentheses_group_an_or_inside_an_and() -> None:
    assert sql("state = FAILED AND (denied = true OR rows_read > 5)") == (
        "claims.state = 'failed' AND (claims.denied = true OR claims.rows_read > 5)"
    )


def test_terms_side_by_side_are_an_implicit_and() -> None:
    assert sql("state = FAILED denied = true") == sql("state = FAILED AND denied = true")
    assert sql("state = FAILED denied = true") == (
        "claims.state = 'failed' AND claims.denied = true"
    )


def test_not_negates_a_parenthesised_group() -> None:
    assert sql("NOT (state = FAILED OR denied = false)") == (
        "NOT (claims.state = 'failed' OR claims.denied = false)"
    )


@pytest.mark.parametrize("text", ["NOT file_name = x", "-file_name = x", "- file_name = x"])
def test_not_and_minus_negate_a_comparison(text: str) -> None:
    assert sql(text) == "claims.file_name != 'x'"


def test_minus_binds_to_the_next_term_only() -> None:
    assert sql("-denied = true file_name = x") == (
        "claims.denied != true AND claims.file_name = 'x'"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('file_name = "remits march.csv"', "remits march.csv"),
        ("file_name = 'remits march.csv'", "remits march.csv"),
        ('file_name = "say \\"hi\\""', 'say "hi"'),
        ('file_name = "AND OR NOT ( ) = :"', "AND OR NOT ( ) = :"),
        ('file_name = ""', ""),
    ],
)
def test_quoted_values_keep_spaces_keywords_and_escaped_quotes(text: str, value: str) -> None:
    condition = parse_filter(text, FIELDS)
    assert condition.right.value == value  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "payer"),
    [
        ("payers:Aetna", "Aetna"),
        ("payers : Aetna", "Aetna"),
        ('payers:"Blue Cross"', "Blue Cross"),
        ("payers:'Blue Cross'", "Blue Cross"),
    ],
)
def test_has_on_a_list_is_array_containment(text: str, payer: str) -> None:
    quoted = payer.replace("'", "''")
    assert sql(text) == f"claims.payers @> ARRAY['{quoted}']"


def test_has_on_a_list_combines_with_other_terms() -> None:
    assert sql('payers:Aetna AND NOT payers:"Blue Cross"') == (
        "(claims.payers @> ARRAY['Aetna']) AND NOT ((claims.payers @> ARRAY['Blue Cross']))"
    )


@pytest.mark.parametrize("text", ["file_name:*", 'file_name:"*"', "file_name : *"])
def test_has_star_on_a_text_field_tests_presence(text: str) -> None:
    assert sql(text) == "claims.file_name IS NOT NULL"


@pytest.mark.parametrize("operator", ["=", "!=", "<", ">="])
def test_a_list_only_takes_the_has_operator(operator: str) -> None:
    error = rejection(f"payers {operator} Aetna")
    assert "payers:value" in error.message


def test_an_unknown_field_is_refused_with_the_filterable_fields() -> None:
    error = rejection("status = DENIED")
    assert "'status'" in error.message
    assert (
        "filterable: create_time, decision_date, denied, file_name, payers, ratio, rows_read, "
        "state" in error.violations[0].description
    )


def test_an_unknown_field_with_has_is_refused_by_its_name() -> None:
    assert "'payer'" in rejection("payer:Aetna").message


def test_a_bad_enum_value_lists_the_accepted_names() -> None:
    error = rejection("state = failed")
    assert "'failed' is not one of FAILED, SUCCEEDED" in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("decision_date = 2024-02-30", "is not a date (YYYY-MM-DD)"),
        ("decision_date = yesterday", "is not a date (YYYY-MM-DD)"),
        ("create_time > 2024-05-01T00:00:00", "is not an RFC 3339 timestamp"),
        ("create_time > 2024-13-01T00:00:00Z", "is not an RFC 3339 timestamp"),
        ("rows_read > many", "is not an integer"),
        ("rows_read > 1.5", "is not an integer"),
        ("ratio < half", "is not a number"),
        ("denied = yes", "is not true or false"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(text: str, expected: str) -> None:
    assert expected in rejection(text).message


@pytest.mark.parametrize("operator", ["<", "<=", ">", ">="])
def test_enums_and_bools_are_only_compared_for_equality(operator: str) -> None:
    assert "only be compared with = or !=" in rejection(f"state {operator} FAILED").message
    assert "only be compared with = or !=" in rejection(f"denied {operator} true").message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(state = FAILED", "ends too early"),
        ("(state = FAILED OR denied = true", "ends too early"),
        ("state = FAILED)", "unexpected ')' at position 15"),
        ("(state = FAILED denied = true) )", "unexpected ')'"),
        ("()", "expected a field name"),
    ],
)
def test_unbalanced_parentheses_are_refused(text: str, expected: str) -> None:
    assert expected in rejection(text).message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state = FAILED AND", "ends too early"),
        ("state = FAILED OR", "ends too early"),
        ("NOT", "ends too early"),
        ("state =", "ends too early"),
        ("state", "ends too early"),
        ("state FAILED", "expected a comparison after 'state'"),
        ("state = = FAILED", "expected a value"),
        ("state = (FAILED)", "expected a value"),
        ("= FAILED", "expected a field name"),
        ('"state" = FAILED', "expected a field name"),
    ],
)
def test_dangling_or_misplaced_operators_are_refused(text: str, expected: str) -> None:
    assert expected in rejection(text).message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state = FAILED $", "unexpected character '$' at position 16"),
        ('file_name = "unterminated', "unexpected character '\"' at position 13"),
        ("file_name = a;b", "unexpected character"),
    ],
)
def test_characters_outside_the_grammar_are_refused_with_their_position(
    text: str, expected: str
) -> None:
    assert expected in rejection(text).message


def test_nesting_up_to_32_levels_is_accepted() -> None:
    text = "(" * 32 + "denied = true" + ")" * 32
    assert sql(text) == "claims.denied = true"
    assert "nested deeper than 32 at position 33" in rejection("(" + text + ")").message


@pytest.mark.parametrize("opening", ["(", "-(", "NOT ("])
def test_absurdly_deep_nesting_is_a_clean_error(opening: str) -> None:
    # A few hundred levels used to exhaust Python's stack (RecursionError, a 500).
    text = opening * 400 + "denied = true" + ")" * 400
    assert "nested" in rejection(text).message


_SAFE_VALUE = st.text(st.characters(blacklist_categories=["Cs"]))


@given(value=_SAFE_VALUE)
def test_any_value_survives_quoting(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    condition = parse_filter(f'file_name = "{escaped}"', FIELDS)
    assert condition.right.value == value  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_text_parses_or_is_a_clean_invalid_argument(text: str) -> None:
    try:
        parse_filter(text, FIELDS)
    except ApiError as error:
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in error.violations] == ["filter"]


_FILTER_TOKENS = st.sampled_from(
    [
        *FIELDS,
        "status",
        "AND",
        "OR",
        "NOT",
        "-",
        "(",
        ")",
        "=",
        "!=",
        "<",
        ">=",
        ":",
        "FAILED",
        "true",
        "42",
        "1.5",
        "2024-01-01",
        "2024-05-01T00:00:00Z",
        '"Blue Cross"',
        "Aetna",
        "*",
        "payers:Aetna",
        "'x'",
    ]
)


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(_FILTER_TOKENS, max_size=12), glue=st.sampled_from([" ", ""]))
def test_filter_like_token_soup_parses_to_sql_or_is_a_clean_error(
    tokens: list[str], glue: str
) -> None:
    try:
        condition = parse_filter(glue.join(tokens), FIELDS)
    except ApiError as error:
        assert [v.field for v in error.violations] == ["filter"]
    else:
        condition.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
