"""The moving parts of a benchmark run: a fresh database and the two server processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from cryptography.fernet import Fernet

from tests.support.database import fresh_database as create_fresh_database
from tests.support.database import server_dsn, stop_embedded_servers
from tests.support.gateway import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLOW_PATH = "/data/foundation/flowservice"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-not-real"
ORG_ID = "B3NCH000000000000000000@AdobeOrg"


@contextmanager
def database_server() -> Iterator[str]:
    """A maintenance DSN: TEST_DATABASE_URL, else 127.0.0.1:5432, else an embedded server (the
    tests' discovery, so the benchmark runs wherever the test suite does)."""
    with tempfile.TemporaryDirectory(prefix="ag-bench-pg-") as root:
        try:
            yield server_dsn(Path(root))
        finally:
            stop_embedded_servers()


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """Create an empty database for this run and drop it afterwards, whatever happens."""
    with create_fresh_database(server, prefix="ag_bench") as url:
        yield url


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


class Gateway:
    """The service under test: one `serve` process, plus `worker` processes when the API and the
    worker run apart (the production layout). CPU and memory are summed over them."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes

    @property
    def api(self) -> Process:
        return self.processes[0]

    def cpu_seconds(self) -> float:
        return sum(process.cpu_seconds() for process in self.processes)

    def rss_kib(self) -> int:
        return sum(process.rss_kib() for process in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_gateway(
    database_url: str,
    emulator_url: str,
    log_dir: Path,
    *,
    extra_env: dict[str, str],
    workers: int = 0,
    worker_nice: int = 0,
) -> tuple[Gateway, str]:
    """``workers`` = 0: one process serves the API and runs the worker; N > 0: an API-only
    process (`serve --no-worker`) and N `worker --nice worker_nice` processes."""
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
        # One sandbox holds every activation of the run, far past Adobe's 100: the check still runs
        # (its cost is measured), it never binds.
        "DATAFLOW_LIMIT_PER_SANDBOX": "1000000",
        **extra_env,
    }
    serve = [str(BIN / "activation-gateway"), "serve", "--port", str(port)] + (["--no-worker"] if workers else [])
    processes = [Process("gateway", serve, env, log_dir)]
    url = f"http://127.0.0.1:{port}"
    try:
        processes[0].wait_http(f"{url}/health/ready")  # migrations are applied by now
        for i in range(workers):
            worker = [str(BIN / "activation-gateway"), "worker", "--nice", str(worker_nice)]
            processes.append(Process(f"worker-{i + 1}", worker, env, log_dir))
    except BaseException:
        Gateway(processes).stop()
        raise
    return Gateway(processes), url


def load_average() -> str:
    """The 1-minute load average: benchmark figures are only comparable on a quiet machine."""
    return Path("/proc/loadavg").read_text().split()[0]
