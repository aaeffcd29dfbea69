"""``python -m bench``: start the emulator and the gateway, measure, print a table and one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import baseline, history
from .harness import database_server, fresh_database, load_average, set_latency, start_emulator, start_gateway
from .workload import (
    LiveActivation,
    create_for_updates,
    emulator_next_seq,
    open_loop,
    single_latency,
    submit_burst,
    summary_ms,
    update_burst,
    update_latency,
    upstream_calls_since,
    wait_for_batch,
    wait_for_updates,
)

# The upstream critical path with the catalog cached: the two branches run side by side (2 calls),
# then create_flow, activate_segments (PATCH) and verify_flow.
CRITICAL_PATH_CALLS = 5
# An update's (contract §10): read the flow, PATCH it, read it back.
UPDATE_CRITICAL_PATH_CALLS = 3
# Activations the update latency is measured on, round robin (each update adds one audience).
UPDATE_LATENCY_ACTIVATIONS = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for CI (about 30 s); figures are rough")
    parser.add_argument("--latency-ms", type=int, default=50, help="emulated latency per upstream call")
    parser.add_argument("--random-ms", type=int, default=0, help="extra uniform random latency per call")
    parser.add_argument("--single", type=int, help="activations timed one at a time (default 20)")
    parser.add_argument(
        "--update-single",
        type=int,
        help="updates (PATCH, Prefer: wait) of live activations timed one at a time (default 20)",
    )
    parser.add_argument(
        "--update-burst",
        help="UPDATES,ACTIVATIONS: PATCHes sent at once, spread over that many live activations (default 500,100)",
    )
    parser.add_argument("--sizes", help="burst sizes for throughput, comma-separated (default 100,500,1000,5000)")
    parser.add_argument("--accept-rate", type=float, help="offered POSTs per second, open loop (default 200)")
    parser.add_argument("--accept-seconds", type=float, help="duration of the open-loop load (default 10)")
    parser.add_argument("--memory", help="LOW,HIGH activations between which RSS is compared (default 1000,10000)")
    parser.add_argument("--history", type=int, help="finished activations bulk-inserted (default 100000)")
    parser.add_argument("--baseline", type=int, help="activations done by the plain script (default 20)")
    parser.add_argument("--query-rounds", type=int, help="repetitions per timed query (default 300)")
    parser.add_argument("--worker-concurrency", type=int, default=None, help="WORKER_CONCURRENCY of the gateway")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes beside an API-only `serve --no-worker` (default 2); 0 runs the worker "
        "inside the one `serve` process",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="`worker --nice`: CPU priority below the API process's (default 10; 0 for none)",
    )
    parser.add_argument(
        "--generator-nice",
        type=int,
        default=-10,
        help="CPU priority of this process (the load generator) once the servers run (default -10; "
        "needs privileges, else left as is and reported)",
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the gateway (default INFO)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="more gateway settings")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (printed path)")
    parser.add_argument("--json-out", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.single = args.single if args.single is not None else (5 if quick else 20)
    args.sizes = [int(s) for s in (args.sizes or ("20,50" if quick else "100,500,1000,5000")).split(",")]
    args.update_single = args.update_single if args.update_single is not None else (5 if quick else 20)
    updates, spread = (int(v) for v in (args.update_burst or ("50,10" if quick else "500,100")).split(","))
    if updates < 1 or spread < 1:
        parser.error("--update-burst: UPDATES and ACTIVATIONS must be at least 1")
    args.update_burst_updates, args.update_burst_activations = updates, spread
    args.accept_rate = args.accept_rate if args.accept_rate is not None else (20.0 if quick else 200.0)
    args.accept_seconds = args.accept_seconds if args.accept_seconds is not None else (2.0 if quick else 10.0)
    low, high = (int(v) for v in (args.memory or ("50,150" if quick else "1000,10000")).split(","))
    args.memory_low, args.memory_high = low, high
    args.history = args.history if args.history is not None else (2000 if quick else 100_000)
    args.baseline = args.baseline if args.baseline is not None else (3 if quick else 20)
    args.query_rounds = args.query_rounds if args.query_rounds is not None else (30 if quick else 300)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="ag-bench-"))
    ok = False
    try:
        results = _run(args, log_dir)
        _print_report(results)
        line = json.dumps(results, separators=(",", ":"))
        print(line, flush=True)
        if args.json_out:
            args.json_out.write_text(line + "\n")
        ok = True
    finally:
        if args.keep_logs or not ok:
            print(f"server logs: {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def _prioritise_generator(nice: int) -> int | None:
    """The load generator stands for callers on other machines, but here it shares 2 cores with
    what it measures: starved, its own scheduling delay would be counted as the gateway's latency
    (open loop: latency runs from the scheduled send time). Set after the servers started, so they
    keep the default priority. Returns the niceness applied, or None."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        _progress(f"could not set the generator's priority to {nice} ({exc}); its figures may include its own delays")
        return None
    return nice


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {load_average()}] {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    gateway_env = {"LOG_LEVEL": args.log_level}
    if args.worker_concurrency:
        gateway_env["WORKER_CONCURRENCY"] = str(args.worker_concurrency)
    for item in args.env:
        key, _, value = item.partition("=")
        gateway_env[key] = value
    results: dict[str, Any] = {
        "config": {
            "quick": args.quick,
            "latencyMs": args.latency_ms,
            "randomMs": args.random_ms,
            "cpus": os.cpu_count(),
            "workerProcesses": args.workers,
            "workerNice": args.worker_nice if args.workers else None,
            "gatewayEnv": {k: v for k, v in gateway_env.items()},
        },
        "load": {"start": load_average()},
    }
    with database_server() as server, fresh_database(server) as database_url:
        emulator, emulator_url = start_emulator(log_dir)
        gateway = None
        try:
            set_latency(emulator_url, args.latency_ms, args.random_ms)
            gateway, base_url = start_gateway(
                database_url,
                emulator_url,
                log_dir,
                extra_env=gateway_env,
                workers=args.workers,
                worker_nice=args.worker_nice,
            )
            done = 0
            results["config"]["generatorNice"] = _prioritise_generator(args.generator_nice)

            _progress("warm-up (catalog cache, connection pools)")
            asyncio.run(single_latency(base_url, 3, "warmup"))
            done += 3

            _progress(f"latency: {args.single} activations one at a time, Prefer: wait")
            samples = asyncio.run(single_latency(base_url, args.single, "single"))
            done += args.single
            bound = CRITICAL_PATH_CALLS * args.latency_ms
            results["latency"] = {
                "criticalPathMs": bound,
                "targetMs": round(bound * 1.15, 1),
                **summary_ms(samples),
                "ratioP50": round(percentile_ratio(samples, bound), 3),
                "load": load_average(),
            }

            _progress("query timings with (almost) no history")
            results["history"] = {"before": history.measure(database_url, base_url, args.query_rounds)}

            memory: dict[str, Any] = {"baselineKib": gateway.rss_kib()}
            throughput: list[dict[str, Any]] = []
            for size in args.sizes:
                _progress(f"throughput: {size} activations at once")
                batch = f"burst-{size}"
                cpu_gateway, cpu_emulator = gateway.cpu_seconds(), emulator.cpu_seconds()
                submit_seconds = asyncio.run(submit_burst(base_url, size, batch))
                result = wait_for_batch(database_url, batch, size, timeout=max(120.0, size * 0.5))
                # CPU per activation does not depend on the neighbours the way wall-clock rates do.
                cpu_gateway = (gateway.cpu_seconds() - cpu_gateway) * 1000 / size
                cpu_emulator = (emulator.cpu_seconds() - cpu_emulator) * 1000 / size
                done += size
                throughput.append(
                    {
                        "size": size,
                        "perSecond": round(result.per_second, 1),
                        "seconds": round(result.seconds, 2),
                        "submitSeconds": round(submit_seconds, 2),
                        "succeeded": result.succeeded,
                        "gatewayCpuMsPerActivation": round(cpu_gateway, 1),
                        "emulatorCpuMsPerActivation": round(cpu_emulator, 1),
                        "load": load_average(),
                    }
                )
                if "lowKib" not in memory and done >= args.memory_low:
                    memory.update(lowAfter=done, lowKib=gateway.rss_kib())
            results["throughput"] = throughput

            _progress(f"accept latency: {args.accept_rate:g} POST/s for {args.accept_seconds:g} s, open loop")
            latencies, errors = asyncio.run(open_loop(base_url, args.accept_rate, args.accept_seconds, "accept"))
            results["accept"] = {
                "rate": args.accept_rate,
                "seconds": args.accept_seconds,
                "errors": errors,
                **summary_ms(latencies),
                "load": load_average(),
            }
            accepted = len(latencies)  # a request that failed created nothing to wait for
            wait_for_batch(database_url, "accept", accepted, timeout=max(120.0, accepted * 0.5))
            done += accepted
            if "lowKib" not in memory and done >= args.memory_low:
                memory.update(lowAfter=done, lowKib=gateway.rss_kib())

            # After the creates' figures, so that those are measured as they always were; the
            # update burst reads the emulator's request history from its own start on, and the
            # queue is empty again by now.
            results["updateLatency"] = _update_latency(args, base_url, database_url)
            done += results["updateLatency"].pop("created")
            results["updateThroughput"] = _update_throughput(
                args, base_url, database_url, emulator_url, gateway, emulator
            )
            done += args.update_burst_activations
            if "lowKib" not in memory and done >= args.memory_low:
                memory.update(lowAfter=done, lowKib=gateway.rss_kib())

            if done < args.memory_high:
                extra = args.memory_high - done
                _progress(f"memory: {extra} more activations to reach {args.memory_high}")
                asyncio.run(submit_burst(base_url, extra, "memory"))
                wait_for_batch(database_url, "memory", extra, timeout=max(120.0, extra * 0.5))
                done += extra
            memory.update(highAfter=done, highKib=gateway.rss_kib())
            memory["ratio"] = round(memory["highKib"] / memory["lowKib"], 3) if memory.get("lowKib") else None
            results["memory"] = memory

            _progress(f"baseline: {args.baseline} activations by a plain sequential script")
            base_samples = baseline.run_baseline(emulator_url, args.baseline)
            base_summary = summary_ms(base_samples)
            base_rate = 1000.0 / base_summary["mean"] if base_summary["mean"] else 0.0
            burst_500 = next((t for t in throughput if t["size"] == 500), throughput[-1])
            results["baseline"] = {
                **base_summary,
                "perSecond": round(base_rate, 2),
                "latencyRatio": round(results["latency"]["p50"] / base_summary["p50"], 3) if base_samples else None,
                "throughputRatio": round(burst_500["perSecond"] / base_rate, 1) if base_rate else None,
                "load": load_average(),
            }

            _progress(f"history: bulk-inserting {args.history} finished activations")
            results["history"]["insert"] = history.bulk_insert(database_url, args.history)
            results["history"]["after"] = history.measure(database_url, base_url, args.query_rounds)
            sample = _any_id(database_url)
            results["history"]["plans"] = history.explain_plans(database_url, sample)
        finally:
            if gateway is not None:
                gateway.stop()
            emulator.stop()
    results["load"]["end"] = load_average()
    results["targets"], results["notMeasured"] = split_targets(_targets(results))
    return results


def _create_live(base_url: str, database_url: str, count: int, batch: str) -> list[LiveActivation]:
    live = asyncio.run(create_for_updates(base_url, count, batch))
    result = wait_for_batch(database_url, batch, count, timeout=max(120.0, count * 0.5))
    if result.succeeded != count:
        raise RuntimeError(f"{batch}: {result.succeeded} of {count} activations went live")
    return live


def _update_latency(args: argparse.Namespace, base_url: str, database_url: str) -> dict[str, Any]:
    """PATCH with `Prefer: wait` one at a time until the 200 that shows the update applied."""
    count = max(1, min(args.update_single, UPDATE_LATENCY_ACTIVATIONS))
    _progress(f"update latency: {count} live activations, then {args.update_single} updates one at a time")
    live = _create_live(base_url, database_url, count, "update-single")
    if args.update_single:  # warm-up: the update path's statements and connections
        asyncio.run(update_latency(base_url, live, min(3, count)))
    samples = asyncio.run(update_latency(base_url, live, args.update_single))
    bound = UPDATE_CRITICAL_PATH_CALLS * args.latency_ms
    return {
        "criticalPathMs": bound,
        "targetMs": round(bound * 1.15, 1),
        "activations": count,
        **summary_ms(samples),
        "ratioP50": round(percentile_ratio(samples, bound), 3),
        "load": load_average(),
        "created": count,  # taken out by the caller (activations count towards the memory figures)
    }


def _update_throughput(
    args: argparse.Namespace, base_url: str, database_url: str, emulator_url: str, gateway: Any, emulator: Any
) -> dict[str, Any]:
    """UPDATES PATCHes at once over ACTIVATIONS live activations, then wait until each shows its
    last accepted revision applied; the emulator's log tells how many upstream PATCHes they took."""
    updates, spread = args.update_burst_updates, args.update_burst_activations
    _progress(f"update throughput: {spread} live activations, then {updates} updates at once")
    live = _create_live(base_url, database_url, spread, "update-burst")
    since = emulator_next_seq(emulator_url)
    cpu_gateway, cpu_emulator = gateway.cpu_seconds(), emulator.cpu_seconds()
    submit_seconds, accepted = asyncio.run(update_burst(base_url, live, updates))
    result = wait_for_updates(database_url, accepted, timeout=max(120.0, updates * 0.5))
    cpu_gateway = (gateway.cpu_seconds() - cpu_gateway) * 1000 / updates
    cpu_emulator = (emulator.cpu_seconds() - cpu_emulator) * 1000 / updates
    upstream = upstream_calls_since(emulator_url, since, result.flow_ids)
    return {
        "updates": updates,
        "activations": spread,
        "perSecond": round(result.per_second, 1),
        "seconds": round(result.seconds, 2),
        "submitSeconds": round(submit_seconds, 2),
        "operations": result.count,
        "succeeded": result.succeeded,
        # Updates of one activation coalesce: an operation applies the latest desired state, so the
        # later ones queued behind it find the flow equal and send no PATCH.
        "upstreamPatches": upstream["patches"] if upstream else None,
        "upstreamCalls": upstream["calls"] if upstream else None,
        "gatewayCpuMsPerUpdate": round(cpu_gateway, 1),
        "emulatorCpuMsPerUpdate": round(cpu_emulator, 1),
        "load": load_average(),
    }


def split_targets(targets: dict[str, bool | None]) -> tuple[dict[str, bool], list[str]]:
    """Quick mode (or custom --sizes) may skip what a target is about: such a target is neither met
    nor missed, so it is listed apart rather than reported as a failure."""
    return {k: v for k, v in targets.items() if v is not None}, [k for k, v in targets.items() if v is None]


def targets_line(r: dict[str, Any]) -> str:
    verdicts = [f"{k}={'PASS' if v else 'FAIL'}" for k, v in r["targets"].items()]
    verdicts += [f"{k}=not measured" for k in r.get("notMeasured", [])]
    return "targets: " + ", ".join(verdicts)


def percentile_ratio(samples: list[float], bound: float) -> float:
    return summary_ms(samples)["p50"] / bound if bound else 0.0


def _any_id(database_url: str) -> Any:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM activations WHERE name = 'single' LIMIT 1").fetchone()
    assert row is not None
    return row[0]


def _targets(r: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of issue 8: met, missed, or None when this run did not measure it (only
    meaningful at the default sizes)."""
    burst = {t["size"]: t["perSecond"] for t in r["throughput"]}
    rates = list(burst.values())
    before, after = r["history"]["before"], r["history"]["after"]
    update: dict[str, bool | None] = {}
    if "updateLatency" in r:  # measured since the update in place (contract §10)
        upd = r["updateLatency"]
        update["update_latency_p50_within_1.15x_critical_path"] = upd["p50"] <= upd["targetMs"] if upd["n"] else None
    return {
        "latency_p50_within_1.15x_critical_path": r["latency"]["p50"] <= r["latency"]["targetMs"],
        **update,
        "throughput_500_at_least_100_per_s": burst[500] >= 100.0 if 500 in burst else None,
        # "Flat": the largest burst keeps at least 80 % of the best rate; one burst size shows nothing.
        "throughput_flat": min(rates[1:]) >= 0.8 * max(rates) if len(rates) > 1 else None,
        "accept_p99_at_most_50ms": r["accept"]["p99"] <= 50.0 and r["accept"]["errors"] == 0,
        # Within 1.5x or 1 ms (query times of a millisecond are mostly noise).
        "history_claim_flat": after["claim_p50_ms"] <= max(1.5 * before["claim_p50_ms"], before["claim_p50_ms"] + 1),
        "history_status_flat": after["get_p50_ms"] <= max(1.5 * before["get_p50_ms"], before["get_p50_ms"] + 1),
        "memory_within_1.2x": r["memory"]["ratio"] is not None and r["memory"]["ratio"] <= 1.2,
    }


def _print_report(r: dict[str, Any]) -> None:
    out: list[str] = []
    cfg = r["config"]
    out.append(
        f"Activation Gateway benchmark — {cfg['latencyMs']} ms (+{cfg['randomMs']} random) per upstream call,"
        f" {cfg['cpus']} CPUs, load {r['load']['start']} → {r['load']['end']}{'  [QUICK]' if cfg['quick'] else ''}"
    )
    layout = (
        f"serve --no-worker + {cfg['workerProcesses']} worker process(es) at nice {cfg['workerNice']}"
        if cfg["workerProcesses"]
        else "one serve process (API and worker)"
    )
    out.append(f"gateway: {layout}; load generator at nice {cfg.get('generatorNice')}")
    lat = r["latency"]
    out.append("")
    out.append(f"{'measure':44} {'result':>28}  target")
    out.append("-" * 90)
    out.append(
        f"{'latency POST→succeeded (Prefer: wait) p50':44} {lat['p50']:>25.1f} ms  ≤ {lat['targetMs']} ms"
        f" (5 calls = {lat['criticalPathMs']} ms)"
    )
    out.append(f"{'   p95 / max':44} {lat['p95']:>15.1f} / {lat['max']:>6.1f} ms")
    upd = r["updateLatency"]
    out.append(
        f"{'update PATCH→applied (Prefer: wait) p50':44} {upd['p50']:>25.1f} ms  ≤ {upd['targetMs']} ms"
        f" ({UPDATE_CRITICAL_PATH_CALLS} calls = {upd['criticalPathMs']} ms; ratio {upd['ratioP50']})"
    )
    out.append(f"{'   p95 / max':44} {upd['p95']:>15.1f} / {upd['max']:>6.1f} ms")
    ups = r["updateThroughput"]
    out.append(
        f"{'update throughput, ' + str(ups['updates']) + ' over ' + str(ups['activations']) + ' activations':44}"
        f" {ups['perSecond']:>21.1f} upd/s  —      ({ups['seconds']} s, submit {ups['submitSeconds']} s,"
        f" {ups['succeeded']}/{ups['operations']} ok, upstream PATCHes {ups['upstreamPatches']} for"
        f" {ups['updates']} updates, {ups['upstreamCalls']} Flow Service calls, load {ups['load']},"
        f" CPU/update: gateway {ups['gatewayCpuMsPerUpdate']} ms, emulator {ups['emulatorCpuMsPerUpdate']} ms)"
    )
    for t in r["throughput"]:
        out.append(
            f"{'throughput, ' + str(t['size']) + ' at once':44} {t['perSecond']:>21.1f} act/s  "
            + ("≥ 100 act/s" if t["size"] == 500 else "flat")
            + f"   ({t['seconds']} s, submit {t['submitSeconds']} s, {t['succeeded']} ok, load {t['load']},"
            f" CPU/activation: gateway {t['gatewayCpuMsPerActivation']} ms,"
            f" emulator {t['emulatorCpuMsPerActivation']} ms)"
        )
    acc = r["accept"]
    out.append(
        f"{'accept POST p50 / p99 @ ' + format(acc['rate'], 'g') + '/s':44} {acc['p50']:>15.1f} / {acc['p99']:>6.1f} ms"
        f"  p99 ≤ 50 ms   ({acc['errors']} errors)"
    )
    mem = r["memory"]
    out.append(
        f"{'RSS after ' + str(mem.get('lowAfter')) + ' / ' + str(mem['highAfter']) + ' activations':44}"
        f" {mem.get('lowKib', 0) / 1024:>12.1f} / {mem['highKib'] / 1024:>6.1f} MiB  ratio {mem['ratio']} ≤ 1.2"
    )
    hist = r["history"]
    rows = f"{hist['before']['activations']} → {hist['after']['activations']} rows"
    for label, key in (("claim (empty queue)", "claim"), ("status", "get_status"), ("load (GET)", "get")):
        title = f"query {label} p50, {rows}"
        out.append(
            f"{title:44} {hist['before'][key + '_p50_ms']:>12.2f} → {hist['after'][key + '_p50_ms']:>6.2f} ms  flat"
        )
    out.append(
        f"{'HTTP GET /activations/{id} p50':44} {hist['before']['http_get_p50_ms']:>12.2f} →"
        f" {hist['after']['http_get_p50_ms']:>6.2f} ms"
    )
    base = r["baseline"]
    out.append(
        f"{'baseline script: one activation p50':44} {base['p50']:>25.1f} ms  gateway/script latency"
        f" {base['latencyRatio']}"
    )
    out.append(
        f"{'baseline script throughput':44} {base['perSecond']:>21.2f} act/s  gateway: {base['throughputRatio']} x"
    )
    out.append("")
    out.append(targets_line(r))
    out.append("")
    out.append("claim plan (100k history):")
    out.extend("    " + line for line in hist["plans"]["claim"].splitlines())
    out.append("status plan:")
    out.extend("    " + line for line in hist["plans"]["status"].splitlines())
    print("\n".join(out), flush=True)
