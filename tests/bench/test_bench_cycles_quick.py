"""`python -m bench.cycles` at small sizes: it runs end to end and its counts say what the cycles
did (every flow's run mirrored, every flow read by the full sweep, nothing by a steady reconcile).
No timing assertions; docs/performance.md has the real figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cycles_benchmark_reports_calls_per_cycle(tmp_path: Path) -> None:
    out = tmp_path / "cycles.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.cycles", "--sizes", "5,12", "--latency-ms", "5", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    cycles = json.loads(out.read_text())["cycles"]
    assert [c["activations"] for c in cycles] == [5, 12]
    for figures in cycles:
        size = figures["activations"]
        # A day on, every flow has one new run: the first mirroring records each once, the next none.
        assert f"runs_written={size}" in figures["mirrorFirst"]["report"]
        assert "runs_written=0" in figures["mirrorSteady"]["report"]
        assert f"checked={size}" in figures["reconcileFullSweep"]["report"]
        assert "checked=0" in figures["reconcileSteady"]["report"]
        for name in ("mirrorFirst", "mirrorSteady", "reconcileFullSweep", "reconcileSteady"):
            assert 1 <= figures[name]["calls"] <= 2, (name, figures[name])
            assert figures[name]["seconds"] > 0
