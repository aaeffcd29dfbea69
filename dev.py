#!/usr/bin/env python3
"""Set-up and day-to-day commands for a machine that has nothing but Python 3.11+.

    python3 dev.py serve [--port 8080 ...]   run the service (embedded PostgreSQL + built-in emulator by default)
    python3 dev.py test [pytest args ...]    run the test suite
    python3 dev.py check                     ruff and mypy
    python3 dev.py bench [args ...]          the benchmark (see bench/README in the main README)

Each command first creates ``.venv`` and installs the project into it when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain itself on an old Python
        sys.exit(f"Python 3.11 or newer is required (this is {sys.version.split()[0]})")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if not stamp.exists():
        print("installing the project and its test tools", flush=True)
        pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "--quiet", "-e", f"{ROOT}[test]"], check=True)
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()


def run(*command: str) -> int:
    return subprocess.run(list(command), cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    ensure_environment()
    if command == "serve":
        return run(str(BIN / "activation-gateway"), "serve", *rest)
    if command == "test":
        return run(str(BIN / "python"), "-m", "pytest", *rest)
    if command == "check":
        return (
            run(str(BIN / "ruff"), "check", ".")
            or run(str(BIN / "ruff"), "format", "--check", ".")
            or run(str(BIN / "mypy"))
        )
    if command == "bench":
        return run(str(BIN / "python"), "-m", "bench", *rest)
    if command == "gateway":
        return run(str(BIN / "activation-gateway"), *rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
