"""Migration steps of a service's audit log (`<schema>.audit_entries`), shared by the
services' revisions. See runtime/audit.py for what is recorded and how it is read.

The database records the entries itself: an AFTER trigger on each audited table calls
`<schema>.audit_change(...)`, in the transaction of the change, so no code path can change a
resource without its entry and a rolled-back change leaves none. The service's app role may
read and add entries, never change or delete them; retention deletes old ones only through
`<schema>.purge_audit_entries`, a function that runs as the schema's owner.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runtime.schemas import role_name, squawk_ignore

TABLE = "audit_entries"

_AUDIT_CHANGE = """
CREATE FUNCTION {schema}.audit_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $audit$
DECLARE
  -- The resource's collection in the API, and the column holding its id ('' for a
  -- customer's singleton such as driftConfig).
  collection text := TG_ARGV[0];
  key_column text := TG_ARGV[1];
  -- Fields whose values never leave the table (secrets): named, not shown.
  hidden text[] := coalesce(string_to_array(nullif(TG_ARGV[2], ''), ','), '{{}}');
  -- Bookkeeping fields: their changes alone are not a change anyone made.
  ignored text[] := coalesce(string_to_array(nullif(TG_ARGV[3], ''), ','), '{{}}');
  -- When set, only these fields are audited.
  tracked text[] := string_to_array(nullif(TG_ARGV[4], ''), ',');
  old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  the_row jsonb := coalesce(new_row, old_row);
  changed text[];
  before_values jsonb;
  after_values jsonb;
BEGIN
  SELECT coalesce(array_agg(field ORDER BY field), '{{}}') INTO changed
  FROM jsonb_object_keys(the_row) AS field
  WHERE field <> 'customer_id'
    AND NOT field = ANY (ignored)
    AND (tracked IS NULL OR field = ANY (tracked))
    AND (TG_OP <> 'UPDATE' OR (old_row -> field) IS DISTINCT FROM (new_row -> field));
  IF TG_OP = 'UPDATE' AND cardinality(changed) = 0 THEN
    RETURN NULL;
  END IF;
  SELECT jsonb_object_agg(field, old_row -> field) FILTER (WHERE old_row IS NOT NULL),
         jsonb_object_agg(field, new_row -> field) FILTER (WHERE new_row IS NOT NULL)
    INTO before_values, after_values
  FROM unnest(changed) AS field
  WHERE NOT field = ANY (hidden);
  INSERT INTO {schema}.audit_entries (customer_id, entry_id, create_time, actor, actor_role,
      request_id, action, resource, changed_fields, before, after)
  VALUES (
    the_row ->> 'customer_id',
    gen_random_uuid(),
    now(),
    coalesce(nullif(current_setting('upstream.actor', true), ''), 'service:{schema}'),
    coalesce(nullif(current_setting('upstream.actor_role', true), ''), 'service'),
    coalesce(current_setting('upstream.request_id', true), ''),
    CASE TG_OP WHEN 'INSERT' THEN 'CREATE' WHEN 'UPDATE' THEN 'UPDATE' ELSE 'DELETE' END,
    'customers/' || (the_row ->> 'customer_id') || '/' || collection
      || CASE WHEN key_column <> '' THEN '/' || (the_row ->> key_column) ELSE '' END,
    changed,
    before_values,
    after_values
  );
  RETURN NULL;
END
$audit$
"""

_PURGE = """
CREATE FUNCTION {schema}.purge_audit_entries(
  customer text, older_than timestamptz, batch integer
) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $purge$
  WITH gone AS (
    DELETE FROM {schema}.audit_entries
    WHERE customer_id = customer AND entry_id IN (
      SELECT entry_id FROM {schema}.audit_entries
      WHERE customer_id = customer AND create_time < older_than
      ORDER BY create_time
      LIMIT batch
    )
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$purge$
"""


def create_audit_log(schema: str) -> None:
    """The audit table, its trigger function, and the purge function retention calls."""
    op.create_table(
        TABLE,
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("changed_fields", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("before", postgresql.JSONB(), nullable=True),
        sa.Column("after", postgresql.JSONB(), nullable=True),
        sa.CheckConstraint(
            "action IN ('CREATE', 'UPDATE', 'DELETE')", name="audit_entries_action_check"
        ),
        sa.PrimaryKeyConstraint("customer_id", "entry_id", name="audit_entries_pkey"),
        schema=schema,
    )
    # Newest first, per customer; retention deletes the oldest.
    op.create_index(
        "audit_entries_time_idx",
        TABLE,
        ["customer_id", "create_time", "entry_id"],
        schema=schema,
    )
    app = role_name(schema, "app")
    squawk_ignore(
        "ban-revoke",
        "the table is new and append-only: no release ever updates or deletes its rows",
    )
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.{TABLE} FROM {app}")
    op.execute(_AUDIT_CHANGE.format(schema=schema))
    op.execute(_PURGE.format(schema=schema))
    squawk_ignore("ban-revoke", "a new function: only the service's app role may call it")
    op.execute(
        f"REVOKE ALL ON FUNCTION {schema}.purge_audit_entries(text, timestamptz, integer) "
        "FROM PUBLIC"
    )
    op.execute(
        f"GRANT EXECUTE ON FUNCTION {schema}.purge_audit_entries(text, timestamptz, integer) "
        f"TO {app}"
    )


def audit_table(
    schema: str,
    table: str,
    collection: str,
    key_column: str = "",
    *,
    events: str = "INSERT OR UPDATE OR DELETE",
    hidden: Sequence[str] = (),
    ignored: Sequence[str] = (),
    tracked: Sequence[str] = (),
) -> None:
    """Record every change to `schema.table` in the audit log, as changes of the resource
    `customers/{customer}/{collection}[/{key_column's value}]`."""
    lists = (",".join(names) for names in (hidden, ignored, tracked))
    arguments = ", ".join(f"'{argument}'" for argument in (collection, key_column, *lists))
    op.execute(
        f"CREATE TRIGGER {table}_audit AFTER {events} ON {schema}.{table} "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.audit_change({arguments})"
    )


def drop_audit_table(schema: str, table: str) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {table}_audit ON {schema}.{table}")


def drop_audit_log(schema: str) -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.purge_audit_entries(text, timestamptz, integer)")
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.audit_change()")
    op.drop_table(TABLE, schema=schema)
