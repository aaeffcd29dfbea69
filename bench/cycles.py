"""``python -m bench.cycles``: upstream calls and wall time of one run-mirroring cycle and one
reconcile cycle (contract §12, §13) at growing numbers of live activations.

The activations are created through a real gateway against the emulator (no latency while they are
made), which is then stopped; the cycles then run in this process on the gateway's own code
(app.runtime, with the worker off), against the same database and emulator with the emulated
latency per call, each one after the other with its lease freed first. Upstream calls are counted
from the emulator's request history. Two mirroring figures: the first cycle after the emulator's
clock moved a day on (every flow has runs to read, when the emulator makes runs) and a steady one
right after (what each cycle costs while nothing new ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

from app.logging import configure_logging
from app.runtime import AdobeEndpoints, Deployment, Runtime
from app.services.drift import FLOWS_CHANGED
from app.settings import Settings

from .harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    FLOW_PATH,
    ORG_ID,
    database_server,
    fresh_database,
    set_latency,
    start_emulator,
    start_gateway,
)
from .workload import submit_burst, wait_for_batch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cycles", description=__doc__)
    parser.add_argument("--sizes", default="100,1000,5000", help="live activations, cumulative (default 100,1000,5000)")
    parser.add_argument("--latency-ms", type=int, default=50, help="emulated latency per upstream call (default 50)")
    parser.add_argument("--json-out", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING")
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    log_dir = Path(tempfile.mkdtemp(prefix="ag-cycles-"))
    results: list[dict[str, Any]] = []
    with database_server() as server, fresh_database(server) as database_url:
        emulator, emulator_url = start_emulator(log_dir)
        gateway = None
        try:
            env = {
                "LOG_LEVEL": "WARNING",
                "RUNS_POLL_INTERVAL_SECONDS": "86400",
                "RECONCILE_INTERVAL_SECONDS": "86400",
            }
            created = 0
            for size in sizes:
                set_latency(emulator_url, 0, 0)
                gateway, base_url = start_gateway(database_url, emulator_url, log_dir, extra_env=env)
                batch = f"cycles-{size}"
                asyncio.run(submit_burst(base_url, size - created, batch, schedule=_DAILY))
                done = wait_for_batch(database_url, batch, size - created, timeout=max(300.0, size * 0.2))
                if done.succeeded != size - created:
                    raise RuntimeError(f"{batch}: {done.succeeded} of {size - created} went live")
                created = size
                # Stopped while the cycles are measured: its own cycles would take the leases freed
                # for them (they run once at start and whenever a lease is free).
                gateway.stop()
                gateway = None
                set_latency(emulator_url, args.latency_ms, 0)
                results.append(asyncio.run(_measure(size, database_url, emulator_url)))
                _print(results[-1])
        finally:
            if gateway is not None:
                gateway.stop()
            emulator.stop()
    line = json.dumps({"cycles": results, "latencyMs": args.latency_ms}, separators=(",", ":"))
    print(line, flush=True)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    return 0


async def _measure(size: int, database_url: str, emulator_url: str) -> dict[str, Any]:
    runtime = _runtime(database_url, emulator_url)
    try:
        _advance_clock(emulator_url, 86400)
        first = await _timed(database_url, emulator_url, lambda: runtime.run_mirror.cycle(interval_seconds=60))
        steady = await _timed(database_url, emulator_url, lambda: runtime.run_mirror.cycle(interval_seconds=60))
        # The first reconcile in a sandbox is a full sweep; the next reads what changed since.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM cycle_watermarks WHERE cycle <> 'runs-started'")
        full = await _timed(database_url, emulator_url, lambda: runtime.reconcile_cycle.cycle(interval_seconds=60))
        # The flows were all made minutes ago, within the overlap a steady cycle reads again: stand
        # for a later cycle, once nothing changed for longer than that.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE cycle_watermarks SET after_ms = %s WHERE cycle = %s", (int(time.time() * 1000), FLOWS_CHANGED)
            )
        steady_reconcile = await _timed(
            database_url, emulator_url, lambda: runtime.reconcile_cycle.cycle(interval_seconds=60)
        )
    finally:
        await runtime.stop()
    return {
        "activations": size,
        "mirrorFirst": first,
        "mirrorSteady": steady,
        "reconcileFullSweep": full,
        "reconcileSteady": steady_reconcile,
        "callsPerActivation": {
            "mirrorFirst": round(first["calls"] / size, 4),
            "mirrorSteady": round(steady["calls"] / size, 4),
            "reconcileFullSweep": round(full["calls"] / size, 4),
            "reconcileSteady": round(steady_reconcile["calls"] / size, 4),
        },
    }


async def _timed(database_url: str, emulator_url: str, cycle: Any) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM background_leases")  # the cycle runs now, here
    since = _next_seq(emulator_url)
    started = time.perf_counter()
    report = await cycle()
    seconds = time.perf_counter() - started
    if report is None:
        raise RuntimeError("the cycle's lease was held elsewhere")
    calls = _calls_since(emulator_url, since)
    return {"calls": calls, "seconds": round(seconds, 3), "report": repr(report)}


# Every day from today on: after the emulator's clock moves a day, every flow has a run to mirror.
_DAILY = {"frequency": "DAILY", "triggerType": "SCHEDULED", "startTime": "00:30"}


def _runtime(database_url: str, emulator_url: str) -> Runtime:
    settings = Settings(
        database_url=database_url,
        flow_service_url=emulator_url + FLOW_PATH,
        ims_token_url=emulator_url + "/ims/token/v3",
        adobe_client_id=CLIENT_ID,
        adobe_client_secret=CLIENT_SECRET,
        adobe_org_id=ORG_ID,
        worker_enabled=False,
        dev_mode=True,
        secrets_key=Fernet.generate_key().decode(),  # the cycles decrypt nothing
    )
    adobe = AdobeEndpoints.from_settings(settings)
    return Runtime(settings, Deployment(database_url=database_url, adobe=adobe, run_worker=False))


def _advance_clock(emulator_url: str, seconds: int) -> None:
    """A day on, when the emulator has a clock (runs then appear for every enabled flow)."""
    response = httpx.post(f"{emulator_url}/_emulator/clock", json={"advanceSeconds": seconds}, timeout=60)
    if response.status_code == 404:
        return
    response.raise_for_status()


def _next_seq(emulator_url: str) -> int:
    items = httpx.get(f"{emulator_url}/_emulator/requests", params={"since": 10**12}, timeout=60).json()["items"]
    if items:
        return int(items[-1]["seq"]) + 1
    everything = httpx.get(f"{emulator_url}/_emulator/requests", timeout=120).json()["items"]
    return int(everything[-1]["seq"]) + 1 if everything else 0


def _calls_since(emulator_url: str, since: int) -> int:
    items = httpx.get(f"{emulator_url}/_emulator/requests", params={"since": since}, timeout=60).json()["items"]
    return sum(1 for item in items if item["path"].startswith(FLOW_PATH) or "/activation/" in item["path"])


def _print(result: dict[str, Any]) -> None:
    size = result["activations"]
    for name in ("mirrorFirst", "mirrorSteady", "reconcileFullSweep", "reconcileSteady"):
        figure = result[name]
        print(
            f"{size:>6} activations  {name:<18} {figure['calls']:>5} calls "
            f"({figure['calls'] / size:.2%} of activations)  {figure['seconds']:>7.3f} s",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
