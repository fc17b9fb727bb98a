"""A throwaway PostgreSQL server for the tests: real, local, gone at the end of the session.

``scripts/ensure-postgres.sh`` installs Debian's server when it is missing (as root) and
says where ``initdb`` and ``pg_ctl`` are. The server is initialised in a temporary
directory, listens on a free loopback port (and a socket in that directory), asks TCP
clients for a password (so the store's password path is what the tests use) and is
tuned for tests (no fsync). As root it runs as the ``postgres`` user, since PostgreSQL
refuses to run as root. One server per test process; each test gets its own schema.

Use it through the fixtures: ``pg_server`` (session), ``pg_url`` (a fresh schema per test,
dropped after) and ``engine`` (the store's engine, parametrized over SQLite and PostgreSQL,
so that one test runs on both). Import the ones a module uses together with those they
depend on (``from pgserver import engine, pg_server, pg_url``). Outside CI a machine that
cannot run the server skips those tests with the reason; in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-postgres.sh"
SUPERUSER = "att"
SHARED_DB = "att_tests"  # each test has its own schema in it
RUN_AS = "postgres"  # the system user Debian's package creates
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    " -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB"
)


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine (the message says why)."""


class PgServer:
    """A PostgreSQL server in its own temporary directory."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self._run_as = _service_user()
        self.password = secrets.token_hex(12)
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="att-pg-"))
        self.data = self.root / "data"
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._started = False

    # -- life cycle --------------------------------------------------------------

    def start(self) -> PgServer:
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as is not None:
            os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        for _attempt in range(3):  # another process may take the free port first
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                    "-w", "-t", "30", "-s", "-o",
                    f"-p {self.port} -k {self.root} {_SERVER_OPTIONS}", "start",
                )  # fmt: skip
            except PgUnavailable:
                continue
            self._started = True
            with self.admin() as conn:
                conn.execute(f"CREATE DATABASE {SHARED_DB}")
            return self
        raise PgUnavailable(f"the server did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-s", "stop")
            except PgUnavailable:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.root)
        if done.returncode != 0:
            raise PgUnavailable(f"{program} failed: {(done.stderr or done.stdout).strip()}")

    # -- databases ---------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The URL of a database on this server, without the password (as the bot takes it)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> Any:
        """A psycopg connection over the socket, as the superuser (no password needed)."""
        import psycopg

        return psycopg.connect(
            host=str(self.root), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True
        )

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = self._new_name()
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def create_schema(self) -> str:
        """A new empty schema in the shared test database; a URL whose tables land in it.

        Much faster than a database per test (a CREATE DATABASE copies a template), and as
        independent: the store names every table without a schema.
        """
        name = self._new_name()
        with self.admin(SHARED_DB) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(SHARED_DB)}?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        name = url.rsplit("%3D", 1)[1]
        with self.admin(SHARED_DB) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def _new_name(self) -> str:
        with self._lock:
            return f"t{os.getpid()}_{next(self._names)}"


def _service_user() -> pwd.struct_passwd | None:
    """Who runs the server: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PgUnavailable(f"running as root and there is no {RUN_AS!r} user") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_bindir() -> Path:
    """Where initdb and pg_ctl are, installing the server first when missing (as root)."""
    if not ENSURE_SCRIPT.exists():
        raise PgUnavailable(f"{ENSURE_SCRIPT} is missing")
    done = subprocess.run(["bash", str(ENSURE_SCRIPT)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise PgUnavailable(done.stderr.strip() or "ensure-postgres.sh failed")
    return Path(done.stdout.strip().splitlines()[-1])


_shared: PgServer | None = None
_shared_error: str | None = None
_shared_lock = threading.Lock()


def shared_server() -> PgServer:
    """The one server of this test process, started on first use and stopped at exit."""
    global _shared, _shared_error
    with _shared_lock:
        if _shared is None and _shared_error is None:
            try:
                server = PgServer(find_bindir())
                atexit.register(server.stop)
                _shared = server.start()
            except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
                _shared_error = str(exc)
        if _shared is None:
            raise PgUnavailable(_shared_error or "unknown")
        return _shared


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The session's PostgreSQL server (skipped with the reason outside CI if none can run)."""
    try:
        return shared_server()
    except PgUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and could not be started: {exc}")
        pytest.skip(f"no PostgreSQL server can be started here: {exc}")


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty schema for one test; its URL (the password is ``pg_server.password``)."""
    url = pg_server.create_schema()
    try:
        yield url
    finally:
        pg_server.drop_schema(url)


# -- the store on each engine ------------------------------------------------------------

ENGINES = ("sqlite", "postgresql")


@dataclass
class Engine:
    """Where a test's store lives; ``open()`` opens it (again: another thread's, process's
    or replica's view of the same database)."""

    name: str
    data_dir: Path
    database_url: str = ""
    password: str | None = None

    def open(self, **options: Any) -> Any:
        from att_sms.store import open_store

        return open_store(
            self.data_dir, database_url=self.database_url, password=self.password, **options
        )

    def child_env(self) -> dict[str, str]:
        """The environment a second process needs to open the same store."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
        if self.password:
            env["ATT_DATABASE_PASSWORD"] = self.password
        return env


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """The store's engine for one test: SQLite in ``tmp_path``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return Engine("sqlite", tmp_path)
    server: PgServer = request.getfixturevalue("pg_server")
    return Engine("postgresql", tmp_path, request.getfixturevalue("pg_url"), server.password)
