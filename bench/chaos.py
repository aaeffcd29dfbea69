"""Chaos soak: random emulator faults and random SIGKILLs of service processes for a set time, then
an invariant check. Run: python3 dev.py bench-chaos --duration 300 (short CI run: --duration 20).

Invariants, once the chaos stops and every process has had time to finish:
  1. every accepted activation is terminal;
  2. upstream resources are exactly those of succeeded activations, each created once
     (two base connections, a source connection, a target connection and a flow apiece);
  3. nothing is left over from failed activations after their compensation.
Exit status 0 when all hold, 1 otherwise; the last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

from app.adapters.db import migrate
from tests.support.database import fresh_database, server_dsn
from tests.support.gateway import GatewayProcess, free_port
from tests.support.payloads import s3_request, sftp_password_request

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID, CLIENT_SECRET, ORG_ID = "chaos-client", "chaos-secret-9fK2", "C0FFEE00C0FFEE00C0FFEE00@AdobeOrg"
TERMINAL = {"succeeded", "failed", "rolled_back", "rollback_failed"}
KINDS = ("connections", "sourceConnections", "targetConnections", "flows")
EXPECTED_PER_SUCCESS = {"connections": 2, "sourceConnections": 1, "targetConnections": 1, "flows": 1}

# Faults drawn at random: transient errors that retries absorb, lost answers after a commit, and
# now and then a permanent 4xx that fails an activation and triggers its compensation.
FAULTS: list[dict[str, Any]] = [
    {"mode": "error", "status": 500},
    {"mode": "error", "status": 503},
    {"mode": "error", "status": 429, "retryAfter": 1},
    {"mode": "commit_then_fail", "failure": "error", "status": 500},
    {"mode": "commit_then_fail", "failure": "drop"},
    {"mode": "commit_then_fail", "failure": "timeout", "holdMs": 3000},
    {"mode": "error", "status": 400},
]
ROUTES = [
    ("POST", "/connections"),
    ("POST", "/sourceConnections"),
    ("POST", "/targetConnections"),
    ("POST", "/flows"),
    ("PATCH", "/flows/*"),
    ("GET", "/flows/*"),
    ("DELETE", "/*"),
]


class Emulator:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowservice_emulator",
                "--port",
                str(self.port),
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
            ],
            cwd=ROOT,
            stdout=(log_dir / "emulator.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_emulator/faults", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the emulator did not start")

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.url}/_emulator{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Chaos:
    def __init__(self, args: argparse.Namespace, database_url: str, log_dir: Path) -> None:
        self.args = args
        self.random = random.Random(args.seed)
        self.database_url = database_url
        self.log_dir = log_dir
        self.emulator = Emulator(log_dir)
        self.env = {
            "DATABASE_URL": database_url,
            "FLOW_SERVICE_URL": f"{self.emulator.url}/data/foundation/flowservice",
            "IMS_TOKEN_URL": f"{self.emulator.url}/ims/token/v3",
            "ADOBE_CLIENT_ID": CLIENT_ID,
            "ADOBE_CLIENT_SECRET": CLIENT_SECRET,
            "ADOBE_ORG_ID": ORG_ID,
            "DEV_MODE": "true",
            "SECRETS_KEY": Fernet.generate_key().decode(),
            "AUTO_MIGRATE": "false",
            "LEASE_SECONDS": "3",
            "UPSTREAM_TIMEOUT_SECONDS": "2",
            "RETRY_BASE_DELAY_SECONDS": "0.05",
            "RETRY_MAX_DELAY_SECONDS": "1",
            "RETRY_AFTER_MAX_SECONDS": "1",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        }
        self.processes: list[GatewayProcess] = []
        self.accepted: dict[str, str] = {}  # idempotency key → activation id
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def start_process(self) -> GatewayProcess:
        process = GatewayProcess(self.env, log_path=self.log_dir / f"gateway-{len(self.processes)}.log")
        process.start()
        self.processes.append(process)
        return process

    def live(self) -> list[GatewayProcess]:
        return [p for p in self.processes if p.process is not None and p.process.poll() is None]

    def submit_one(self) -> None:
        """Like a careful caller: retry with the same Idempotency-Key until some process answers."""
        body = self.random.choice([s3_request, sftp_password_request])()
        key = f"chaos-{uuid.uuid4()}"
        for _ in range(20):
            live = self.live()
            if not live:
                time.sleep(0.2)
                continue
            target = self.random.choice(live)
            try:
                response = httpx.post(
                    f"{target.url}/activations", json=body, headers={"Idempotency-Key": key}, timeout=10
                )
            except httpx.TransportError:
                self.stats["submit_retries"] += 1
                continue
            if response.status_code == 202:
                with self.lock:
                    self.accepted[key] = response.json()["id"]
                return
            self.stats[f"submit_{response.status_code}"] += 1
            time.sleep(0.1)

    def submitter(self, until: float) -> None:
        while time.monotonic() < until:
            self.submit_one()
            time.sleep(1 / self.args.rate)

    def inject(self) -> None:
        method, path = self.random.choice(ROUTES)
        fault = {
            **self.random.choice(FAULTS),
            "method": method,
            "path": path,
            "rate": self.random.choice([0.1, 0.2, 0.3]),
            "seed": self.random.randrange(10**6),
        }
        if fault.get("status") == 400 and method == "DELETE":
            fault["status"] = 503  # a permanent delete failure is rollback_failed by design, tested elsewhere
        fault["times"] = self.random.randint(3, 15)
        self.emulator.admin("POST", "/faults", json=fault)
        self.stats["faults"] += 1

    def kill_one(self) -> None:
        live = self.live()
        if len(live) <= 1:
            return
        victim = self.random.choice(live)
        victim.kill()
        self.stats["kills"] += 1
        self.start_process()

    def run(self) -> dict[str, Any]:
        self.emulator.admin("POST", "/latency", json={"fixedMs": 5, "randomMs": 40})
        for _ in range(self.args.processes):
            self.start_process()
        until = time.monotonic() + self.args.duration
        submitter = threading.Thread(target=self.submitter, args=(until,), daemon=True)
        submitter.start()
        while time.monotonic() < until:
            time.sleep(self.random.uniform(0.5, 2.0))
            action = self.random.random()
            if action < 0.5:
                self.inject()
            elif action < 0.5 + self.args.kill_rate:
                self.kill_one()
            else:
                self.emulator.admin("DELETE", "/faults")
        submitter.join()
        # Calm: no more faults; every process alive finishes what is left.
        self.emulator.admin("DELETE", "/faults")
        self.emulator.admin("DELETE", "/latency")
        if not self.live():
            self.start_process()
        return self.settle()

    def statuses(self) -> dict[str, str]:
        ids = list(self.accepted.values())
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT id::text, status FROM activations WHERE id::text = ANY(%s)", (ids,)).fetchall()
        return dict(rows)

    def settle(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.args.settle
        retried_rollbacks: set[str] = set()
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = self.statuses()
            for activation_id, status in statuses.items():
                # An operator retries a rollback that met a fault, once the fault is gone.
                if status == "rollback_failed" and activation_id not in retried_rollbacks:
                    retried_rollbacks.add(activation_id)
                    httpx.post(f"{self.live()[0].url}/activations/{activation_id}/rollback", timeout=10)
            if len(statuses) == len(self.accepted) and all(
                s in TERMINAL and s != "rollback_failed" for s in statuses.values()
            ):
                break
            time.sleep(0.5)
        return self.check(statuses, len(retried_rollbacks))

    def check(self, statuses: dict[str, str], retried_rollbacks: int) -> dict[str, Any]:
        violations: list[str] = []
        not_terminal = [i for i in self.accepted.values() if statuses.get(i) not in TERMINAL]
        if not_terminal:
            violations.append(f"{len(not_terminal)} accepted activations are not terminal, e.g. {not_terminal[:3]}")
        state = self.emulator.admin("GET", "/state")
        per_activation: dict[str, Counter[str]] = {}
        names: Counter[str] = Counter()
        for kind in KINDS:
            for resources in state["resources"].get(kind, {}).values():
                for resource in resources:
                    name = str(resource.get("name", ""))
                    names[f"{kind}:{name}"] += 1
                    owner = name.rsplit("[ag:", 1)[-1].rstrip("]") if "[ag:" in name else "<unknown>"
                    per_activation.setdefault(owner, Counter())[kind] += 1
        duplicated = [n for n, c in names.items() if c > 1]
        if duplicated:
            violations.append(f"{len(duplicated)} resources created more than once, e.g. {duplicated[:3]}")
        for activation_id, status in statuses.items():
            held = dict(per_activation.pop(activation_id, Counter()))
            if status == "succeeded" and held != EXPECTED_PER_SUCCESS:
                violations.append(f"succeeded {activation_id} holds {held}")
            elif status != "succeeded" and held:
                violations.append(f"{status} {activation_id} left {held} upstream")
        if per_activation:
            violations.append(f"resources of no accepted activation: {sorted(per_activation)[:3]}")
        summary = {
            "accepted": len(self.accepted),
            "statuses": dict(Counter(statuses.values())),
            "kills": self.stats["kills"],
            "faults_injected": self.stats["faults"],
            "submit_retries": self.stats["submit_retries"],
            "rollbacks_retried": retried_rollbacks,
            "violations": violations,
            "ok": not violations,
        }
        return summary

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        self.emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of chaos")
    parser.add_argument("--processes", type=int, default=3, help="service processes sharing the database")
    parser.add_argument("--rate", type=float, default=10.0, help="activations submitted per second")
    parser.add_argument("--kill-rate", type=float, default=0.2, help="share of chaos ticks that SIGKILL a process")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds allowed to finish after the chaos")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", time.time())))
    args = parser.parse_args(argv)
    print(f"chaos: seed {args.seed}, {args.duration:.0f}s, {args.processes} processes", flush=True)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        log_dir = Path(tmp)
        with fresh_database(server_dsn(log_dir), prefix="ag_chaos") as url:
            migrate.upgrade(url)
            chaos = Chaos(args, url, log_dir)
            try:
                summary = chaos.run()
            finally:
                chaos.stop()
    for violation in summary["violations"]:
        print(f"VIOLATION: {violation}", flush=True)
    print(json.dumps({"chaos": summary, "seed": args.seed}), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
