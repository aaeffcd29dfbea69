"""`activation-gateway demo`: one activation end to end against the built-in emulator, then its step
timeline as a table. It runs the real service (API, saga worker, PostgreSQL) on a short-lived server
in this process and talks to it over HTTP, exactly as a caller would."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from datetime import datetime
from typing import Any

import httpx
import uvicorn

from app.adapters.db import migrate
from app.logging import configure_logging
from app.settings import Settings

_TERMINAL = {"succeeded", "failed", "rolled_back", "rollback_failed"}
_TIMEOUT_SECONDS = 60.0
# Long path segments are resource ids: shown as {id} so the table stays readable.
_ID_SEGMENT = re.compile(r"/[0-9A-Za-z-]{20,}")

DEMO_REQUEST: dict[str, Any] = {
    "destination": "Adobe Campaign",
    "name": "Demo newsletter",
    "storage": {
        "type": "s3",
        "accessId": "AKIAIOSFODNN7EXAMPLE",
        "secretKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "bucketName": "acme-aep-exports",
        "path": "campaign/demo",
    },
    "segments": [
        {"id": "72ddd79b-6b0a-4e97-a8d2-112ccd81bd02", "name": "Men over 50"},
        {"id": "5b3e8a2c-9d41-4f0e-8a77-0c1d2e3f4a5b", "name": "Newsletter opt-ins"},
    ],
    "attributes": ["person.name.lastName", "personalEmail.address"],
}


def run_demo(settings: Settings) -> int:
    """Returns the exit status: 0 when the activation succeeded."""
    from app.cli import prepare_deployment
    from app.main import create_app

    # Always the emulator (a demo must never create resources in a real Adobe organisation), and
    # development mode (no API key, a local secrets key), on an emulator of its own (any free port,
    # nothing kept), beside a `serve` that may run. Logs would drown the table: errors only.
    settings = settings.model_copy(
        update={
            "adobe_client_id": None,
            "flow_service_url": None,
            "ims_token_url": None,
            "dev_mode": True,
            "emulator_port": 0,
            "emulator_persist": False,
        }
    )
    configure_logging("ERROR", settings.log_format)
    deployment = prepare_deployment(settings)
    migrate.upgrade(deployment.database_url)
    for note in deployment.notes:
        print(f"note: {note}")
    app = create_app(settings, deployment)
    activation, events = asyncio.run(_run_once(app))
    print(f"\nactivation {activation['id']}: {activation['status']}\n")
    print(render_timeline(activation, events))
    return 0 if activation["status"] == "succeeded" else 1


async def _run_once(app: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # startup failed: raise its error
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            created = await client.post(
                "/activations", json=DEMO_REQUEST, headers={"Idempotency-Key": f"demo-{time.time_ns()}"}
            )
            created.raise_for_status()
            activation_id = created.json()["id"]
            deadline = time.monotonic() + _TIMEOUT_SECONDS
            activation = created.json()
            while activation["status"] not in _TERMINAL and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                activation = (await client.get(f"/activations/{activation_id}")).json()
            events = (await client.get(f"/activations/{activation_id}/events")).json()["items"]
    finally:
        server.should_exit = True
        await serving
        sock.close()
    return activation, events


def render_timeline(activation: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """One row per step: status, attempts, duration and the upstream calls it made."""
    calls: dict[str, list[str]] = {}
    for event in events:
        if event["type"] == "upstream" and event.get("step"):
            data = event["data"]
            path = _ID_SEGMENT.sub("/{id}", str(data.get("path", "")))
            status = data.get("status") if data.get("status") is not None else "network error"
            calls.setdefault(event["step"], []).append(f"{data.get('method')} {path} → {status}")
    header = ("step", "status", "attempts", "duration", "upstream calls")
    rows = [header]
    for step in activation["steps"]:
        rows.append(
            (
                step["name"],
                step["status"],
                str(step["attempts"]),
                _duration(step.get("startedAt"), step.get("finishedAt")),
                ", ".join(calls.get(step["name"], [])) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            lines.append("  ".join(["-" * width for width in widths] + ["-" * len(header[-1])]))
    return "\n".join(lines)


def _duration(started: str | None, finished: str | None) -> str:
    if not started or not finished:
        return "-"
    seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    return f"{seconds * 1000:.0f} ms"
