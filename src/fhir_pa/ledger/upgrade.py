"""Bring a ledger written by an older fhir-pa up to the current schema, in place.

Only additive changes exist so far (new nullable or defaulted columns), so an ``ALTER TABLE ... ADD COLUMN``
per missing column is enough; nothing is ever dropped or rewritten, so no stored request can be lost.
"""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.schema import CreateColumn


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add every column the tables in ``metadata`` declare but the database lacks; returns what was added."""
    inspector = inspect(engine)
    added: list[str] = []
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                ddl = CreateColumn(column).compile(dialect=engine.dialect)
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
                added.append(f"{table.name}.{column.name}")
    return added
