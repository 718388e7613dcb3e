"""Opening the ledger's database, with what each backend needs decided in one place.

SQLite is a file of this process (pragmas for durability). PostgreSQL is a server that several workers share and
that can restart under us: pooled connections are checked before use, sessions speak UTC (so a naive time means
the same instant on any server), and schema setup is serialised, since two workers may open one new database at
the same moment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Connection, Engine, MetaData, create_engine, event, make_url, text

from fhir_pa.ledger.upgrade import add_missing_columns

#: The driver fhir-pa ships for PostgreSQL (extra ``postgres``); a bare ``postgresql://`` URL means it.
POSTGRES_DRIVER = "postgresql+psycopg"
#: Key of the transaction-level advisory lock that serialises schema setup on PostgreSQL ("fhpa").
SCHEMA_LOCK_KEY = 0x66687061
CONNECT_TIMEOUT_S = 10


def parse(url: str) -> URL:
    """The URL to connect to: ``postgresql://`` alone would pick psycopg2, which fhir-pa does not install."""
    parsed = make_url(url)
    return parsed.set(drivername=POSTGRES_DRIVER) if parsed.drivername == "postgresql" else parsed


def describe(url: str) -> str:
    """Where the ledger is, for messages: never a user name or password, in the URL's authority or its query.

    Only what follows the last ``@`` and precedes the query is shown, so a password holding an unencoded ``@``,
    ``/`` or ``?`` cannot leak either; when an ``@`` sits in the query, nothing but the scheme is.
    """
    if url.startswith("sqlite:"):
        return url.split("@")[-1]  # a file path, shown as it always was
    scheme, _, rest = url.partition("://")
    at, query = rest.rfind("@"), rest.find("?")
    if query != -1 and at > query:
        return f"{scheme}://(location not shown)"
    return rest[at + 1:].split("?")[0].split("#")[0]


def open_engine(url: str) -> Engine:
    """An engine for the ledger at ``url``; raises ImportError when the database's driver is not installed."""
    parsed = parse(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # an unreachable server fails the call, not hangs it
    engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgres_utc)
    return engine


def create_schema(engine: Engine, metadata: MetaData) -> list[str]:
    """Create missing tables and add missing columns in one transaction; returns the columns added."""
    with engine.begin() as conn:
        _lock_schema(conn)
        metadata.create_all(conn)
        return add_missing_columns(conn, metadata)


def _lock_schema(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # held to commit: a second opener waits, then finds the tables made
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _postgres_utc(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a SET outside any transaction, so it holds for the whole session
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.autocommit = autocommit
