"""The reports tests read what the service stored straight from its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from runtime import schemas
from tests.conftest import PostgresUnderTest


@pytest.fixture
def database(postgres: PostgresUnderTest) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(
        schemas.libpq_url(postgres.admin_url), autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection
