"""A short chaos soak in CI (the long one is documented in the README): random faults and SIGKILLs,
then the invariant check of bench/chaos.py, which exits non-zero on any violation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_keeps_every_invariant() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--duration",
            "20",
            "--processes",
            "3",
            "--seed",
            "20261129",
            "--settle",
            "90",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])["chaos"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary["ok"] and summary["violations"] == []
    assert summary["accepted"] > 20, "the run did real work"
    assert summary["kills"] + summary["faults_injected"] > 0, "the run did real chaos"
