"""Bring a ledger written by an older fhir-pa up to the current schema, in place.

Only additive changes exist so far (new nullable or defaulted columns), so an ``ALTER TABLE ... ADD COLUMN``
per missing column is enough; nothing is ever dropped or rewritten, so no stored request can be lost.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.schema import CreateColumn


def add_missing_columns(bind: Engine | Connection, metadata: MetaData) -> list[str]:
    """Add every column the tables in ``metadata`` declare but the database lacks; returns what was added.

    Given a connection, runs in its transaction (PostgreSQL's DDL is transactional: all columns or none).
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return add_missing_columns(conn, metadata)
    inspector = inspect(bind)
    quote = bind.dialect.identifier_preparer
    added: list[str] = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name, schema=table.schema):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name in present:
                continue
            ddl = CreateColumn(column).compile(dialect=bind.dialect)
            bind.execute(text(f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {ddl}"))
            added.append(f"{table.name}.{column.name}")
    return added
