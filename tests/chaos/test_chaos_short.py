"""A short chaos soak in CI (the long one is documented in docs/emulator.md): random faults, late commits,
SIGKILLs, SIGSTOPs past the lease and rollback requests, then the invariant check of bench/chaos.py,
which exits non-zero on any violation. The new kinds of chaos are made more likely than in a long run,
so that 20 seconds exercise each of them."""

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
            "--pause-rate",
            "0.2",
            "--late-commit-share",
            "0.5",
            "--rollback-share",
            "0.15",
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
    assert summary["late_commits_landed"] > 0, "Adobe committed some request after the gateway gave up on it"
    assert summary["pauses"] > 0, "a process was paused past its lease"
    assert summary["rollbacks_requested"] > 0, "rollbacks were requested"
