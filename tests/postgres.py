"""A throwaway PostgreSQL server on loopback for the test session, so ledger tests run on the real thing.

The server lives in a temp dir (trust auth, fsync off: nothing in it outlives the session) and each test that
asks for ``postgres_url`` gets its own empty database. Without server binaries the PostgreSQL tests skip,
unless ``FHIR_PA_REQUIRE_POSTGRES=1`` (set by CI) makes that a failure, so a missing install cannot hide.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:  # imported where used, so the rest of the suite runs without the driver
    import psycopg

REQUIRE_ENV = "FHIR_PA_REQUIRE_POSTGRES"
OS_USER = "postgres"  # the server refuses to run as root; as root we run it as this user
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")

_databases = itertools.count(1)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"


def _server_bindir(candidate: Path) -> Path | None:
    return candidate if all(os.access(candidate / tool, os.X_OK) for tool in SERVER_TOOLS) else None


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres live: on PATH, then ``pg_config --bindir``, then Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates += [Path(on_path).resolve().parent, Path(on_path).parent]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(done.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass  # pg_config of a client-only install, or broken: the other candidates still count
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for candidate in candidates:
        found = _server_bindir(candidate)
        if found is not None:
            return found
    return None


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail when PostgreSQL is required (CI): a missing server must never pass as a skip there."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires PostgreSQL", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Runner:
    """Runs the server tools, as the ``postgres`` OS user when we are root."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root, and runuser (to run PostgreSQL as postgres) is missing")
            self.prefix = [runuser, "-u", OS_USER, "--"]

    def __call__(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [*self.prefix, str(self.bindir / tool), *args]
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        done = subprocess.run(command, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args[:2])} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")


def _configure(data: Path, socket_dir: Path) -> None:
    quoted = str(socket_dir).replace("'", "''")
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{quoted}'\n"
                   "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")


def _wait_until_ready(server: PostgresServer, deadline: float) -> None:
    import psycopg

    while True:
        try:
            with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres",
                                 connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def running_server(bindir: Path) -> Iterator[PostgresServer]:
    """initdb into a temp dir, start on a free loopback port, and always stop and remove it afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="fhir-pa-pg-"))
    data, log = workdir / "data", workdir / "server.log"
    run: _Runner | None = None
    try:
        try:
            run = _Runner(bindir, workdir)
            if run.prefix:
                owner = pwd.getpwnam(OS_USER)
                os.chown(workdir, owner.pw_uid, owner.pw_gid)
            run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync")
            _configure(data, workdir)
            server = _start(run, data, log)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"cannot run a test PostgreSQL server from {bindir}: {exc}\n{tail}".rstrip()) from exc
        yield server
    finally:
        if run is not None and (data / "postmaster.pid").exists():
            with suppress(RuntimeError, subprocess.SubprocessError):  # nothing more to do than remove its directory
                run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def _start(run: _Runner, data: Path, log: Path, attempts: int = 3) -> PostgresServer:
    for attempt in range(1, attempts + 1):  # the free port can be taken before the server binds it: try another
        port = _free_port()
        try:
            run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", f"-p {port}")
            break
        except RuntimeError:
            if attempt == attempts:
                raise
    server = PostgresServer(host="127.0.0.1", port=port)
    _wait_until_ready(server, time.monotonic() + 30)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (skips without one, or fails under FHIR_PA_REQUIRE_POSTGRES=1)."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, from pg_config --bindir "
                     "or under /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            _unavailable(f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL as")
    try:
        import psycopg  # noqa: F401  - the driver of the ledger and of these fixtures
    except ImportError:
        _unavailable("the psycopg driver is not installed (pip install -e '.[dev]')")
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_server(bindir))
        except RuntimeError as exc:  # binaries there but no server: a failure, never a skip
            pytest.fail(str(exc), pytrace=False)
        yield server


def _admin(server: PostgresServer) -> psycopg.Connection[tuple[object, ...]]:
    import psycopg

    return psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, as a SQLAlchemy URL; dropped (connections and all) afterwards."""
    from psycopg import sql

    name = "".join(c if c.isalnum() else "_" for c in f"t{next(_databases)}_{request.node.name}".lower())[:63]
    with _admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_server.url(name)
    with _admin(postgres_server) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ledger's database for one test, on each backend it supports: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
