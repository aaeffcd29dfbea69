"""The layers hold (pyproject.toml [tool.importlinter]): the domain imports no adapter, framework or
driver; the API reaches storage and Adobe only through the services; the emulator imports nothing
from the gateway. `dev.py check` runs the same contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout
