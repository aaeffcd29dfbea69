"""The benchmark in --quick mode: it runs end to end and reports sane numbers. No timing assertions:
CI machines are too noisy for them; docs/performance.md has the real figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_and_reports_every_measure(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--sizes",
            "10,20",
            "--single",
            "3",
            "--update-single",
            "3",
            "--update-burst",
            "12,4",
            "--accept-rate",
            "10",
            "--accept-seconds",
            "1",
            "--memory",
            "20,60",
            "--history",
            "500",
            "--baseline",
            "2",
            "--query-rounds",
            "10",
            "--latency-ms",
            "10",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(out.read_text())
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == result, "the last line is the JSON result"
    assert "latency POST" in completed.stdout and "targets:" in completed.stdout
    assert "update PATCH" in completed.stdout and "update throughput" in completed.stdout

    assert result["latency"]["n"] == 3 and result["latency"]["p50"] > 0
    # Nothing can be faster than its upstream calls: 5 on the critical path at 10 ms each.
    assert result["latency"]["p50"] >= 5 * 10
    update = result["updateLatency"]
    assert update["n"] == 3 and update["criticalPathMs"] == 3 * 10 and update["targetMs"] == 34.5
    # An update applied means 3 upstream calls (read, PATCH, read back) at 10 ms each.
    assert update["max"] >= update["p95"] >= update["p50"] >= 3 * 10 and update["ratioP50"] >= 1.0
    updates = result["updateThroughput"]
    assert updates["updates"] == 12 and updates["activations"] == 4 and updates["perSecond"] > 0
    assert updates["operations"] == updates["succeeded"] == 12, "one operation per accepted PATCH, all applied"
    # Every activation's list changed, so at least one upstream PATCH each; coalescing makes it at most one per update.
    assert 4 <= updates["upstreamPatches"] <= 12 and updates["upstreamCalls"] > updates["upstreamPatches"]
    assert updates["gatewayCpuMsPerUpdate"] > 0
    assert [t["size"] for t in result["throughput"]] == [10, 20]
    for burst in result["throughput"]:
        assert burst["succeeded"] == burst["size"] and burst["perSecond"] > 0
        assert burst["gatewayCpuMsPerActivation"] > 0
    assert result["accept"]["n"] == 10 and result["accept"]["errors"] == 0 and result["accept"]["p99"] > 0
    assert result["memory"]["lowKib"] > 0 and result["memory"]["highKib"] > 0 and result["memory"]["highAfter"] >= 60
    assert result["baseline"]["n"] == 2 and result["baseline"]["p50"] >= 8 * 10
    history = result["history"]
    assert history["insert"]["rows"]["activations"] >= 500
    assert history["insert"]["rows"]["activation_events"] >= 500 * 17
    for phase in ("before", "after"):
        assert all(history[phase][key] > 0 for key in ("claim_p50_ms", "get_status_p50_ms", "get_p50_ms"))
    assert "ix_activations_claimable" in history["plans"]["claim"], "the claim walks the partial index"
    assert "activations_pkey" in history["plans"]["status"]
    assert set(result["targets"]) and all(isinstance(v, bool) for v in result["targets"].values())
    assert "update_latency_p50_within_1.15x_critical_path" in result["targets"]
