#!/usr/bin/env python3
"""Set-up and day-to-day commands for a machine that has nothing but Python 3.11+.

    python3 dev.py serve [--port 8080 ...]   run the service (embedded PostgreSQL + built-in emulator by default)
    python3 dev.py test [pytest args ...]    run the test suite
    python3 dev.py check                     ruff and mypy
    python3 dev.py lock [uv args ...]        re-resolve requirements*.lock from pyproject.toml (needs uv)
    python3 dev.py bench [args ...]          the benchmark (docs/performance.md)
    python3 dev.py fetch-adobe-specs         Adobe's OpenAPI documents for the contract tests (docs/adobe-specs.md)

Each command first creates ``.venv`` and, when pyproject.toml or the lock changed, installs the
locked dependencies (hash-checked) and the project into it. See docs/development.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
# Exact versions and sha256 hashes of every distribution, resolved from pyproject.toml by `lock`:
# the runtime dependencies (the Docker image) and those plus the test extra (this script's venv).
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
LOCK_POINTER = "# Hashed lock of pyproject.toml: do not edit; refresh with `python3 dev.py lock` (docs/development.md)."


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain itself on an old Python
        sys.exit(f"Python 3.11 or newer is required (this is {sys.version.split()[0]})")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{install_digest()}"
    if not stamp.exists():
        print(f"installing the locked dependencies ({TEST_LOCK.name}) and the project", flush=True)
        pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
        # Every distribution pinned and its hash checked: pip refuses anything the lock lacks.
        subprocess.run([*pip, "--require-hashes", "-r", str(TEST_LOCK)], check=True)
        # The project itself, whose dependencies are all in place: --no-build-isolation builds it
        # with the locked setuptools instead of fetching whatever is newest.
        subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()


def install_digest() -> str:
    """What the venv was installed from: a change to pyproject.toml or to the lock reinstalls."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", TEST_LOCK):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run(*command: str, own_group: bool = False) -> int:
    """Run a tool, pass a stop request on to it and wait for it: never leave it running behind us.

    SIGTERM (and SIGHUP, as SIGTERM) is forwarded. Ctrl-C at a terminal goes to the whole
    foreground process group; by default the tool is in it (pytest --pdb reads the terminal), gets
    it from there, and this script only waits. With ``own_group`` the tool has a process group of
    its own, so SIGINT reaches it only through this script, exactly once whether it was sent to
    the group or to this script alone (``serve`` counts signals: a second one skips its drain delay).

    Returns the tool's status, or 0 when it ended as asked after a forwarded signal.
    """
    child: subprocess.Popen[bytes] | None = None
    forwarded: list[int] = []
    # What to send the tool for each signal this script receives.
    relay = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM}
    if hasattr(signal, "SIGHUP"):  # not on Windows; a closed terminal
        relay[signal.SIGHUP] = signal.SIGTERM

    def forward(sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT and not own_group:
            return  # the terminal told the tool already
        forwarded.append(relay[signal.Signals(sig)])
        if child is not None:
            child.send_signal(forwarded[-1])

    # Installed before the tool starts, so that no signal can arrive unhandled in between.
    previous = {sig: signal.signal(sig, forward) for sig in relay}
    try:
        group = 0 if own_group and os.name == "posix" else None  # 0: a new group, led by the tool
        child = subprocess.Popen(list(command), cwd=ROOT, process_group=group)
        for sig in forwarded:  # arrived while it was starting
            child.send_signal(sig)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # After a forwarded signal these are the tool's normal ends: `serve` re-raises SIGTERM after its
    # graceful shutdown (docs/operations.md "Shutdown"), a shell would say 128 + the signal's number.
    stopped = {0} | {status for sig in (signal.SIGINT, signal.SIGTERM) for status in (-sig, 128 + sig)}
    if forwarded and returncode in stopped:
        return 0
    return returncode if returncode >= 0 else 128 - returncode


def lock(*uv_args: str) -> int:
    """Re-resolve both lock files from pyproject.toml with uv (only here: installing needs pip alone).

    uv keeps the versions already in a lock unless pyproject.toml asks otherwise (or ``--upgrade``).
    """
    import tomllib  # 3.11+: imported here so that an old Python still gets the version message

    uv = shutil.which("uv")
    if uv is None:
        print("`lock` needs uv on PATH: python3 -m pip install --user uv (or pipx install uv)", file=sys.stderr)
        return 2
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The build backend too: the project is installed with --no-build-isolation from the locked one.
    build_requires = "\n".join(pyproject["build-system"]["requires"]) + "\n"
    compile_ = [uv, "pip", "compile", "--quiet", "pyproject.toml", "-", "--universal", "--generate-hashes"]
    compile_ += ["--python-version", pyproject["project"]["requires-python"].removeprefix(">="), *uv_args]
    compile_ += ["--custom-compile-command", "python3 dev.py lock"]
    # The test lock first; the runtime lock is constrained by it, so both pin the same versions.
    for output, extra in ((TEST_LOCK, ["--extra", "test"]), (RUNTIME_LOCK, ["--constraint", TEST_LOCK.name])):
        result = subprocess.run([*compile_, *extra, "-o", output.name], input=build_requires, text=True, cwd=ROOT)
        if result.returncode:
            return result.returncode
        output.write_text(f"{LOCK_POINTER}\n{output.read_text()}")  # uv rewrote the whole file
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "lock":
        return lock(*rest)
    ensure_environment()
    if command == "serve":
        return run(str(BIN / "activation-gateway"), "serve", *rest, own_group=True)
    if command == "test":
        return run(str(BIN / "python"), "-m", "pytest", *rest)
    if command == "check":
        return (
            run(str(BIN / "ruff"), "check", ".")
            or run(str(BIN / "ruff"), "format", "--check", ".")
            or run(str(BIN / "mypy"))
            or run(str(BIN / "lint-imports"))
        )
    if command == "bench":
        return run(str(BIN / "python"), "-m", "bench", *rest)
    if command == "fetch-adobe-specs":
        return run(str(BIN / "python"), "-m", "devtools.adobe_specs", *rest)
    if command == "gateway":
        return run(str(BIN / "activation-gateway"), *rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C while setting up: pip got it too; no traceback
        sys.exit(130)
