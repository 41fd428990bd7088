"""A real, private PostgreSQL server for the tests (never a mock).

``ORCHESTRATOR_TEST_PG`` says where it comes from:
- a ``postgresql://`` URL of a superuser: that server is used;
- ``required`` (what ``.ci/run`` sets): a throwaway cluster is started, and any reason it cannot
  be (no binaries, initdb or start failed) FAILS every PostgreSQL test;
- unset: a throwaway cluster is started when the binaries exist (a start that fails still
  fails); without binaries the PostgreSQL tests skip, saying why.

The cluster (initdb + pg_ctl, 127.0.0.1 on a free port, password auth, fsync off) lives in a
temporary folder for the session. PostgreSQL refuses to run as root: as root it runs as the
``postgres`` user when there is one, else ``nobody``.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "ORCHESTRATOR_TEST_PG"
SUPERUSER = "orch_test"


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs PostgreSQL as an unprivileged user (root only), and who."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], name
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


class PgCluster:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.prefix, self.user = _as_user()
        self.dir = Path(tempfile.mkdtemp(prefix="orch-pg-", dir="/tmp"))
        self.password = "pw-" + secrets.token_hex(8)
        self.port = _free_port()

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]} "
                               f"{tail}")

    def start(self) -> str:
        if self.user is not None:
            shutil.chown(self.dir, self.user)
        os.chmod(self.dir, 0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            shutil.chown(pwfile, self.user)
        data = self.dir / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        options = (f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "start")
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL of a live PostgreSQL server, for the whole test session."""
    wanted = os.environ.get(PG_ENV, "")
    if wanted.startswith(("postgresql://", "postgres://")):
        yield wanted
        return
    bindir = _bindir()
    if bindir is None:
        if wanted:
            pytest.fail(f"{PG_ENV}={wanted}: PostgreSQL is required but no initdb was found "
                        "(apt-get install postgresql)", pytrace=False)
        pytest.skip(f"no PostgreSQL binaries (initdb) and {PG_ENV} unset: the PostgreSQL backend is not tested")
    cluster = PgCluster(bindir)
    try:
        url = cluster.start()
    except Exception as exc:
        shutil.rmtree(cluster.dir, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL server for the tests: {exc}", pytrace=False)
    try:
        yield url
    finally:
        cluster.stop()


_numbers = itertools.count(1)


def _with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A URL of a fresh, empty database (dropped afterwards)."""
    import psycopg

    name = f"orch_t{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once per backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return str(request.getfixturevalue("pg_url"))
