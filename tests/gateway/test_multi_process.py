"""Several service processes on one database: leases, fencing and takeover, with real processes."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import assert_one_of_each
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request


def history(emulator: EmulatorServer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return items


def calls_by(emulator: EmulatorServer, process: GatewayProcess) -> int:
    assert process.process is not None
    marker = f":{process.process.pid}:"
    return sum(marker in e["headers"].get("user-agent", "") for e in history(emulator))


def snapshot(database_url: str, activation_id: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, updated_at, lease_epoch, flow_etag, error FROM activations WHERE id = %s", (activation_id,)
        ).fetchone()
        steps = conn.execute(
            "SELECT name, status, attempts, resource_id, finished_at FROM activation_steps"
            " WHERE activation_id = %s ORDER BY position",
            (activation_id,),
        ).fetchall()
        events = conn.execute(
            "SELECT count(*) FROM activation_events WHERE activation_id = %s", (activation_id,)
        ).fetchone()
    return (row, tuple(steps), events)


def test_a_worker_paused_past_its_lease_changes_nothing_and_calls_nothing(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 500}).raise_for_status()
    paused = start_gateway(LEASE_SECONDS="2")
    body = s3_request()
    with paused.client() as client:
        activation_id = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()}).json()["id"]
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda b: any(s["status"] == "running" for s in b["steps"][1:]),
        )
    paused.signal(signal.SIGSTOP)
    try:
        other = start_gateway(LEASE_SECONDS="2")
        with other.client() as client:
            final = wait_terminal(client, activation_id, timeout=60)
        assert final["status"] == "succeeded", final
        before = snapshot(isolated_database, activation_id)
        calls_before = calls_by(emulator, paused)
        assert calls_by(emulator, other) > 0, "the other process finished the work"
    finally:
        paused.signal(signal.SIGCONT)
    time.sleep(4)  # time for the paused worker to wake up, hear back from Adobe and try to go on
    assert snapshot(isolated_database, activation_id) == before, "the paused worker changed nothing"
    assert calls_by(emulator, paused) == calls_before, "the paused worker made no upstream call"
    assert_one_of_each(emulator, activation_id)
    assert "lease" in paused.logs()


def test_three_processes_share_300_activations_while_one_is_killed(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 20, "randomMs": 30}).raise_for_status()
    processes = [start_gateway(LEASE_SECONDS="3", WORKER_CONCURRENCY="32") for _ in range(3)]
    accepted: list[str] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        # A caller whose instance dies retries with the same Idempotency-Key on another one.
        for _ in range(100):
            body, key = s3_request(), new_key()
            for attempt in range(6):
                target = processes[(index + attempt) % 3]
                try:
                    with target.client() as client:
                        response = client.post("/activations", json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    continue
                assert response.status_code == 202, response.text
                with lock:
                    accepted.append(response.json()["id"])
                break

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()

    def statuses() -> Counter[str]:
        with psycopg.connect(isolated_database) as conn:
            return Counter(dict(conn.execute("SELECT status, count(*) FROM activations GROUP BY status").fetchall()))

    wait_for(lambda: dict(statuses()), lambda s: s.get("succeeded", 0) >= 60, timeout=120)
    processes[1].kill()  # mid-run, with work claimed
    for thread in threads:
        thread.join(timeout=120)
    assert len(accepted) == len(set(accepted)) == 300
    final = wait_for(lambda: dict(statuses()), lambda s: s.get("succeeded", 0) == 300, timeout=240)
    assert final == {"succeeded": 300}

    state = httpx.get(f"{emulator.url}/_emulator/state").json()
    names = Counter(r["name"] for kind in state["resources"].values() for r in kind.get("prod", []))
    assert all(n == 1 for n in names.values()), "no resource was created twice"
    counts = {kind: len(v.get("prod", [])) for kind, v in state["resources"].items()}
    assert counts == {"connections": 600, "sourceConnections": 300, "targetConnections": 300, "flows": 300}
    per_activation = Counter(name.rsplit("[ag:", 1)[1].rstrip("]") for name in names)
    assert set(per_activation) == set(accepted)
    assert set(per_activation.values()) == {5}
