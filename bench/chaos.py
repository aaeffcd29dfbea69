"""Chaos soak: random emulator faults (late commits included), random SIGKILLs and SIGSTOPs of service
processes and random rollback requests for a set time, then an invariant check.
Run: .venv/bin/python -m bench.chaos --duration 600 (short CI run: tests/chaos, --duration 20).

Invariants, once the chaos stops, every late commit has landed and every process has had time to finish:
  1. every accepted activation is terminal, and none is left rollback_failed (the settle phase retries
     each rollback_failed once, as an operator would);
  2. nothing is created twice upstream (no two resources of a kind share a name);
  3. a succeeded activation holds exactly one resource of each kind (two base connections, a source
     connection, a target connection and a flow);
  4. a rolled_back or failed activation holds nothing upstream, and no resource belongs to no activation;
  5. every rollback requested (and answered 202 or 200) was acted on: that activation is rolled_back;
  6. a process paused past its lease makes no upstream call, once resumed, for an activation whose lease
     another process held at that moment (until that lease could have expired).
Exit status 0 when all hold, 1 otherwise; the last line printed is a JSON summary with the seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

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
LEASE_SECONDS = 3
UPSTREAM_TIMEOUT_SECONDS = 2
LATE_COMMIT_WINDOW_SECONDS = 8
PAUSE_SECONDS = (4.0, 7.0)  # longer than the lease: another process takes the paused one's work over
COMMIT_AFTER_MS = (2500, 6000)  # longer than the upstream timeout: the gateway has given up by then
# Gateway names end with "[ag:<activation id>]" (see the owner lookup in check()).
ACTIVATION_TAG = re.compile(r"\[ag:([0-9a-f-]{36})\]")

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
# Late commits: Adobe's backend applies the request after its gateway gave up on it (a 504, a hung
# answer the gateway times out on, a dropped connection). Only where a late change matters.
LATE_COMMIT_ROUTES = [route for route in ROUTES if route[0] == "POST" or route == ("PATCH", "/flows/*")]
LATE_COMMIT_FAILURES: list[dict[str, Any]] = [
    {"failure": "error", "status": 504},
    {"failure": "timeout", "holdMs": 3000},
    {"failure": "drop"},
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


@dataclass(frozen=True)
class Call:
    """What invariant 6 needs of one upstream call in the emulator's history."""

    time: float  # when the request reached the emulator: answers may come later than the request left
    method: str
    path: str
    activations: frozenset[str]  # ids named in the body or the query ("[ag:<id>]")


class History:
    """Follows the emulator's request history (bounded: it must be read often in a long run) and keeps
    the gateway's calls by process id, from the pid its User-Agent carries ("(host:pid:random)")."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.next_seq = 0
        self.calls: dict[int, list[Call]] = {}
        self.gaps = 0  # entries dropped by the emulator before we read them
        self.lock = threading.Lock()

    def follow(self) -> None:
        with self.lock:
            items = self.emulator.admin("GET", "/requests", params={"since": self.next_seq})["items"]
            if items and items[0]["seq"] > self.next_seq:
                self.gaps += items[0]["seq"] - self.next_seq
            for entry in items:
                self._keep(entry)
            if items:
                self.next_seq = items[-1]["seq"] + 1

    def _keep(self, entry: dict[str, Any]) -> None:
        parsed = parse_call(entry)
        if parsed is not None:
            self.calls.setdefault(parsed[0], []).append(parsed[1])


def parse_call(entry: dict[str, Any]) -> tuple[int, Call] | None:
    """The pid of the gateway process that made a history entry's call, and the call; ``None`` for a late
    commit (Adobe's doing, not the caller's) or a call from anything else."""
    match = re.search(r"\([^:()]*:(\d+):", entry["headers"].get("user-agent", ""))
    if match is None or entry.get("lateCommitOf") is not None:
        return None
    text = json.dumps(entry.get("body")) + unquote_plus(entry.get("query") or "")
    arrived = entry.get("receivedAt", entry["time"])
    return int(match[1]), Call(arrived, entry["method"], entry["path"], frozenset(ACTIVATION_TAG.findall(text)))


@dataclass
class Pause:
    """A SIGSTOP of ``pid`` and, at its SIGCONT, the leases another process held on activations ``pid``
    had leased when it stopped: activation id → when that lease would expire without renewal."""

    pid: int
    resumed_at: float = 0.0
    guarded: dict[str, float] = field(default_factory=dict)


@dataclass
class Rollback:
    activation_id: str
    when: str  # "now", "during" (at ``due``) or "after" (once terminal)
    due: float = 0.0
    status: int | None = None  # the answer to our POST .../rollback
    requested_at: float | None = None


class Chaos:
    def __init__(self, args: argparse.Namespace, database_url: str, log_dir: Path) -> None:
        self.args = args
        # One generator per thread: the chaos ticks draw the same sequence for a seed whatever the
        # submitter's timing, so a failing run can be replayed.
        self.random = random.Random(args.seed)
        self.submit_random = random.Random(args.seed + 1)
        self.database_url = database_url
        self.log_dir = log_dir
        self.emulator = Emulator(log_dir)
        self.history = History(self.emulator)
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
            "LEASE_SECONDS": str(LEASE_SECONDS),
            "UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT_SECONDS),
            "LATE_COMMIT_WINDOW_SECONDS": str(LATE_COMMIT_WINDOW_SECONDS),
            "COMPENSATION_RETRY_BASE_SECONDS": "1",
            "RETRY_BASE_DELAY_SECONDS": "0.05",
            "RETRY_MAX_DELAY_SECONDS": "1",
            "RETRY_AFTER_MAX_SECONDS": "1",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            # The soak creates activations in one sandbox for as long as it runs, far past Adobe's 100.
            "DATAFLOW_LIMIT_PER_SANDBOX": "0",
        }
        self.processes: list[GatewayProcess] = []
        self.paused: set[int] = set()  # pids between SIGSTOP and SIGCONT
        self.pauses: list[Pause] = []
        self.pause_threads: list[threading.Thread] = []
        self.accepted: dict[str, str] = {}  # idempotency key → activation id
        self.rollbacks: dict[str, Rollback] = {}  # activation id → its rollback
        self.longest_commit_after_ms = 0
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ processes
    def start_process(self) -> GatewayProcess:
        process = GatewayProcess(self.env, log_path=self.log_dir / f"gateway-{len(self.processes)}.log")
        process.start()
        self.processes.append(process)
        return process

    def live(self) -> list[GatewayProcess]:
        return [p for p in self.processes if p.process is not None and p.process.poll() is None]

    def serving(self) -> list[GatewayProcess]:
        """Live processes that are not paused: where a load balancer would send callers."""
        with self.lock:
            return [p for p in self.live() if p.process is not None and p.process.pid not in self.paused]

    def kill_one(self) -> None:
        live = self.live()
        if len(live) <= 1:
            return
        victim = self.random.choice(live)
        victim.kill()  # a paused process dies too: SIGKILL needs no SIGCONT
        self.stats["kills"] += 1
        self.start_process()

    def pause_one(self) -> None:
        """SIGSTOP a process for longer than its lease, in the background, keeping one process serving."""
        serving = self.serving()
        if len(serving) <= 1:
            return
        victim = self.random.choice(serving)
        seconds = self.random.uniform(*PAUSE_SECONDS)
        thread = threading.Thread(target=self._pause, args=(victim, seconds), daemon=True)
        self.pause_threads.append(thread)
        thread.start()
        self.stats["pauses"] += 1

    def _pause(self, process: GatewayProcess, seconds: float) -> None:
        assert process.process is not None
        pause = Pause(process.process.pid)
        with self.lock:
            self.paused.add(pause.pid)
        process.process.send_signal(signal.SIGSTOP)
        try:
            leased = self._leased_by(pause.pid)
            time.sleep(seconds)
            if process.process.poll() is None:
                pause.guarded = self._held_by_others(leased, pause.pid)
                pause.resumed_at = time.time()
        finally:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)
            with self.lock:
                self.paused.discard(pause.pid)
        if pause.resumed_at:
            self.pauses.append(pause)

    def _leased_by(self, pid: int) -> list[str]:
        """Activations ``pid`` owns the lease of, expired or not: it may still be working on either."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT id::text FROM activations WHERE lease_owner LIKE %s",
                (f"%:{pid}:%",),
            ).fetchall()
        return [row[0] for row in rows]

    def _held_by_others(self, ids: list[str], pid: int) -> dict[str, float]:
        """Of ``ids``, those another process holds a lease on now, with when that lease expires at the
        earliest: until then ``pid`` cannot have a lease on them, whatever happens."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT id::text, extract(epoch FROM lease_expires_at)::float8 FROM activations"
                " WHERE id::text = ANY(%s) AND lease_owner NOT LIKE %s AND lease_expires_at > now()",
                (ids, f"%:{pid}:%"),
            ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    # ------------------------------------------------------------------ callers
    def submit_one(self) -> None:
        """Like a careful caller: retry with the same Idempotency-Key until some process answers."""
        body = self.submit_random.choice([s3_request, sftp_password_request])()
        key = f"chaos-{uuid.uuid4()}"
        for _ in range(20):
            serving = self.serving()
            if not serving:
                time.sleep(0.2)
                continue
            target = self.submit_random.choice(serving)
            try:
                response = httpx.post(
                    f"{target.url}/activations", json=body, headers={"Idempotency-Key": key}, timeout=10
                )
            except httpx.TransportError:
                self.stats["submit_retries"] += 1
                continue
            if response.status_code == 202:
                activation_id = response.json()["id"]
                with self.lock:
                    self.accepted[key] = activation_id
                self.plan_rollback(activation_id)
                return
            self.stats[f"submit_{response.status_code}"] += 1
            time.sleep(0.1)

    def submitter(self, until: float) -> None:
        while time.monotonic() < until:
            self.submit_one()
            time.sleep(1 / self.args.rate)

    def plan_rollback(self, activation_id: str) -> None:
        """For a share of the accepted activations, ask for a rollback: at once, a little later (most
        likely mid-saga), or once the activation is terminal."""
        if self.submit_random.random() >= self.args.rollback_share:
            return
        when = self.submit_random.choice(["now", "during", "after"])
        rollback = Rollback(activation_id, when, due=time.monotonic() + self.submit_random.uniform(0.2, 8.0))
        with self.lock:
            self.rollbacks[activation_id] = rollback
        if when == "now":
            self.request_rollback(rollback)

    def due_rollbacks(self, statuses: dict[str, str]) -> list[Rollback]:
        now = time.monotonic()
        with self.lock:
            waiting = [r for r in self.rollbacks.values() if r.requested_at is None and r.when != "now"]
        return [
            r
            for r in waiting
            if (r.when == "during" and r.due <= now)
            or (r.when == "after" and statuses.get(r.activation_id) in TERMINAL)
        ]

    def request_rollback(self, rollback: Rollback) -> None:
        """POST .../rollback like a careful caller: another process when one does not answer."""
        rollback.requested_at = time.time()
        for _ in range(10):
            serving = self.serving()
            if not serving:
                time.sleep(0.2)
                continue
            url = f"{self.submit_random.choice(serving).url}/activations/{rollback.activation_id}/rollback"
            try:
                response = httpx.post(url, timeout=10)
            except httpx.TransportError:
                continue
            rollback.status = response.status_code
            if response.status_code < 500:
                break
        self.stats[f"rollback_{rollback.status}"] += 1

    def rollback_requests(self, statuses: dict[str, str]) -> None:
        for rollback in self.due_rollbacks(statuses):
            self.request_rollback(rollback)

    def rollbacker(self, until: float) -> None:
        while time.monotonic() < until:
            self.rollback_requests(self.statuses())
            time.sleep(0.5)

    # ------------------------------------------------------------------ faults
    def inject(self) -> None:
        if self.random.random() < self.args.late_commit_share:
            method, path = self.random.choice(LATE_COMMIT_ROUTES)
            commit_after_ms = self.random.randint(*COMMIT_AFTER_MS)
            kind: dict[str, Any] = {
                "mode": "late_commit",
                **self.random.choice(LATE_COMMIT_FAILURES),
                "commitAfterMs": commit_after_ms,
            }
            self.longest_commit_after_ms = max(self.longest_commit_after_ms, commit_after_ms)
            self.stats["late_commit_rules"] += 1
        else:
            method, path = self.random.choice(ROUTES)
            kind = dict(self.random.choice(FAULTS))
            if kind.get("status") == 400 and method == "DELETE":
                kind["status"] = 503  # a permanent delete failure is rollback_failed by design, tested elsewhere
        fault = {
            **kind,
            "method": method,
            "path": path,
            "rate": self.random.choice([0.1, 0.2, 0.3]),
            "seed": self.random.randrange(10**6),
            "times": self.random.randint(3, 15),
        }
        self.emulator.admin("POST", "/faults", json=fault)
        self.stats["faults"] += 1

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        self.emulator.admin("POST", "/latency", json={"fixedMs": 5, "randomMs": 40})
        for _ in range(self.args.processes):
            self.start_process()
        until = time.monotonic() + self.args.duration
        with self.background(until):
            while time.monotonic() < until:
                time.sleep(self.random.uniform(0.5, 2.0))
                self.tick()
                self.history.follow()
        # Calm: no more faults (late commits already due still land); every process alive finishes.
        self.emulator.admin("DELETE", "/faults")
        self.emulator.admin("DELETE", "/latency")
        for thread in self.pause_threads:
            thread.join()
        if not self.live():
            self.start_process()
        return self.settle()

    @contextmanager
    def background(self, until: float) -> Iterator[None]:
        threads = [
            threading.Thread(target=self.submitter, args=(until,), daemon=True),
            threading.Thread(target=self.rollbacker, args=(until,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for thread in threads:
                thread.join()

    def tick(self) -> None:
        action = self.random.random()
        kill_until = 0.5 + self.args.kill_rate
        if action < 0.5:
            self.inject()
        elif action < kill_until:
            self.kill_one()
        elif action < kill_until + self.args.pause_rate:
            self.pause_one()
        else:
            self.emulator.admin("DELETE", "/faults")

    def statuses(self) -> dict[str, str]:
        with self.lock:
            ids = list(self.accepted.values())
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT id::text, status FROM activations WHERE id::text = ANY(%s)", (ids,)).fetchall()
        return dict(rows)

    def settle(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.args.settle
        # Check only once no late commit can land any more: one landing after the check would go unseen.
        # The emulator's pending list says when; the longest commitAfterMs (plus a margin) is a floor.
        margin = self.longest_commit_after_ms / 1000 + 2
        quiet_from = time.monotonic() + margin
        retried_rollbacks: set[str] = set()
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            self.history.follow()
            statuses = self.statuses()
            for activation_id, status in statuses.items():
                # An operator retries a rollback that met a fault, once the fault is gone.
                if status == "rollback_failed" and activation_id not in retried_rollbacks:
                    retried_rollbacks.add(activation_id)
                    httpx.post(f"{self.serving()[0].url}/activations/{activation_id}/rollback", timeout=10)
            self.rollback_requests(statuses)
            pending_late = self.emulator.admin("GET", "/lateCommits")["items"]
            if pending_late:
                quiet_from = max(quiet_from, time.monotonic() + 1)
            if time.monotonic() >= quiet_from and self.settled(statuses):
                break
            time.sleep(0.5)
        self.history.follow()
        return self.check(self.statuses(), len(retried_rollbacks))

    def settled(self, statuses: dict[str, str]) -> bool:
        with self.lock:
            waiting = [r for r in self.rollbacks.values() if r.requested_at is None]
        return (
            not waiting
            and len(statuses) == len(self.accepted)
            and all(s in TERMINAL and s != "rollback_failed" for s in statuses.values())
        )

    # ------------------------------------------------------------------ invariants
    def check(self, statuses: dict[str, str], retried_rollbacks: int) -> dict[str, Any]:
        violations: list[str] = []
        not_terminal = [i for i in self.accepted.values() if statuses.get(i) not in TERMINAL]
        if not_terminal:
            violations.append(f"{len(not_terminal)} accepted activations are not terminal, e.g. {not_terminal[:3]}")
        per_activation, duplicated = self.upstream()
        if duplicated:
            violations.append(f"{len(duplicated)} resources created more than once, e.g. {duplicated[:3]}")
        for activation_id, status in statuses.items():
            violations += self.check_one(activation_id, status, dict(per_activation.pop(activation_id, Counter())))
        if per_activation:
            violations.append(f"resources of no accepted activation: {sorted(per_activation)[:3]}")
        violations += self.check_pauses()
        late = self.emulator.admin("GET", "/lateCommits")
        return {
            "seed": self.args.seed,
            "accepted": len(self.accepted),
            "statuses": dict(Counter(statuses.values())),
            "kills": self.stats["kills"],
            "pauses": self.stats["pauses"],
            "pause_leases_guarded": sum(len(p.guarded) for p in self.pauses),
            "faults_injected": self.stats["faults"],
            "late_commit_rules": self.stats["late_commit_rules"],
            "late_commits_fired": late["scheduled"],
            "late_commits_landed": late["applied"],
            "rollbacks_requested": sum(r.status in (200, 202) for r in self.rollbacks.values()),
            "rollback_answers": {k: v for k, v in self.stats.items() if k.startswith("rollback_")},
            "rollbacks_retried": retried_rollbacks,
            "submit_retries": self.stats["submit_retries"],
            "history_entries_missed": self.history.gaps,
            "violations": violations,
            "ok": not violations,
        }

    def upstream(self) -> tuple[dict[str, Counter[str]], list[str]]:
        """Resources held upstream, by owning activation and kind; and names held more than once."""
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
        return per_activation, [n for n, c in names.items() if c > 1]

    def check_one(self, activation_id: str, status: str, held: dict[str, int]) -> list[str]:
        return activation_violations(activation_id, status, held, self.rollbacks.get(activation_id))

    def check_pauses(self) -> list[str]:
        return [v for pause in self.pauses for v in lease_violations(pause, self.history.calls.get(pause.pid, []))]

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        self.emulator.stop()


def activation_violations(
    activation_id: str, status: str, held: dict[str, int], rollback: Rollback | None
) -> list[str]:
    """Invariants 1 (rollback_failed part), 3, 4 and 5 for one activation, from what it holds upstream."""
    violations = []
    if status == "succeeded" and held != EXPECTED_PER_SUCCESS:
        violations.append(f"succeeded {activation_id} holds {held}")
    elif status in ("rolled_back", "failed") and held:
        violations.append(f"{status} {activation_id} left {held} upstream")
    elif status == "rollback_failed":
        violations.append(f"{activation_id} is still rollback_failed after an operator's retry, holds {held}")
    if rollback is not None and rollback.status in (200, 202) and status != "rolled_back":
        violations.append(
            f"rollback of {activation_id} requested ({rollback.when}, answered {rollback.status}) "
            f"but it ended {status}, holding {held}"
        )
    return violations


def lease_violations(pause: Pause, calls: list[Call]) -> list[str]:
    """Invariant 6: the calls the paused process made after its SIGCONT for an activation whose lease
    another process held then, before that lease could have expired."""
    violations = []
    for call in calls:
        if call.time < pause.resumed_at:
            continue
        for activation_id in sorted(call.activations):
            expires = pause.guarded.get(activation_id)
            if expires is not None and call.time < expires:
                violations.append(
                    f"process {pause.pid}, resumed after a pause, sent {call.method} {call.path} for "
                    f"{activation_id} {call.time - pause.resumed_at:.2f}s later, while another process held its lease"
                )
    return violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of chaos")
    parser.add_argument("--processes", type=int, default=3, help="service processes sharing the database")
    parser.add_argument("--rate", type=float, default=10.0, help="activations submitted per second")
    parser.add_argument("--kill-rate", type=float, default=0.2, help="share of chaos ticks that SIGKILL a process")
    parser.add_argument(
        "--pause-rate", type=float, default=0.1, help="share of chaos ticks that SIGSTOP a process for 4-7 s"
    )
    parser.add_argument(
        "--late-commit-share", type=float, default=0.3, help="share of injected faults that are late commits"
    )
    parser.add_argument(
        "--rollback-share", type=float, default=0.15, help="share of accepted activations asked to roll back"
    )
    parser.add_argument("--settle", type=float, default=120.0, help="seconds allowed to finish after the chaos")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", time.time())))
    args = parser.parse_args(argv)
    if 0.5 + args.kill_rate + args.pause_rate > 1:
        parser.error("--kill-rate plus --pause-rate must leave room: half of the ticks inject faults")
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
