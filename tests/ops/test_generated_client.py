"""Generate a Python client from the committed openapi/openapi.json with openapi-python-client and
drive a running gateway with it: the documentation's example (create → wait → read), and
create → poll → rollback → poll, as an internal app would. The docs generate the client into
`.generated/`, which neither git nor ruff look at; here it goes to a temporary folder."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "activation_gateway_client"
GENERATED = ROOT / ".generated"

# The documentation's example, verbatim (docs/operations.md, "Generated clients"): run as it stands, with only its
# base URL pointed at the test's gateway. API_KEY and ACTIVATION (a POST /activations body) are the
# reader's.
DOCS_EXAMPLE = """\
from activation_gateway_client import AuthenticatedClient
from activation_gateway_client.api.activations import create_activation, get_activation
from activation_gateway_client.models import ActivationOut, ActivationRequest

with AuthenticatedClient(base_url="http://127.0.0.1:8080", token=API_KEY) as client:
    body = ActivationRequest.from_dict(ACTIVATION)
    created = create_activation.sync(client=client, body=body, idempotency_key="spring-1", prefer="wait=30")
    assert isinstance(created, ActivationOut), created  # otherwise a Problem (RFC 9457)
    activation = get_activation.sync(created.id, client=client)
    print(activation.status, [(step.name, str(step.status)) for step in activation.steps])
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    # No post hooks: the generator would otherwise run ruff from PATH over the output.
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(ROOT / "openapi" / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
            "--config",
            str(config),
            "--fail-on-warning",  # a document the generator only half understands is a bug of ours
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        names = ["client", "models", "api.activations.create_activation", "api.activations.get_activation"]
        names += ["api.activations.rollback_activation", "api.activations.list_activation_events"]
        names += ["api.operations.get_readiness", "api.destinations.list_destinations"]
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _poll(read: Callable[[], Any], status: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    current = read()
    while current.status.value != status and time.monotonic() < deadline:
        time.sleep(0.1)
        current = read()
    assert current.status.value == status, current.to_dict()
    return current


def test_generated_client_runs_create_poll_rollback(
    generated: dict[str, ModuleType], gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    models = generated["models"]
    create = generated["api.activations.create_activation"]
    get = generated["api.activations.get_activation"]
    rollback = generated["api.activations.rollback_activation"]
    events = generated["api.activations.list_activation_events"]
    readiness = generated["api.operations.get_readiness"]

    # Development mode: no API key needed, so the plain client (not AuthenticatedClient) is enough.
    with generated["client"].Client(base_url=gateway.url, raise_on_unexpected_status=True) as client:
        health = readiness.sync(client=client)
        assert isinstance(health, models.Health) and health.status.value == "pass"
        listed = generated["api.destinations.list_destinations"].sync(client=client)
        assert isinstance(listed, models.DestinationList)
        assert [str(kind) for kind in listed.items[0].storage] == ["s3", "sftp"]  # Adobe Campaign

        body = models.ActivationRequest.from_dict(s3_request())
        created = create.sync_detailed(client=client, body=body, idempotency_key="generated-client-1")
        assert created.status_code == 202
        activation = created.parsed
        assert isinstance(activation, models.ActivationOut) and activation.status.value == "pending"

        replay = create.sync_detailed(client=client, body=body, idempotency_key="generated-client-1")
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.parsed.id == activation.id

        done = _poll(lambda: get.sync(activation.id, client=client), "succeeded")
        assert [step.status.value for step in done.steps] == ["succeeded"] * len(done.steps)
        timeline = events.sync(activation.id, client=client)
        assert any(item.type_.value == "upstream" for item in timeline.items)

        started = rollback.sync_detailed(activation.id, client=client)
        assert started.status_code == 202
        assert started.parsed.status.value == "rolling_back"
        _poll(lambda: get.sync(activation.id, client=client), "rolled_back")

        missing = get.sync("00000000-0000-0000-0000-000000000000", client=client)
        assert isinstance(missing, models.Problem) and missing.status == 404

    state = httpx.get(f"{emulator.url}/_emulator/state").json()
    held = {kind: sum(len(items) for items in sandboxes.values()) for kind, sandboxes in state["resources"].items()}
    assert not any(held.values()), held


def test_the_documented_example_creates_waits_and_reads(
    generated: dict[str, ModuleType], start_gateway: Callable[..., GatewayProcess]
) -> None:
    api_key = f"docs-example-{uuid.uuid4().hex}"
    # A gateway that knows the key: the example authenticates as a real caller would.
    gateway = start_gateway(API_KEYS=f"docs:{hashlib.sha256(api_key.encode()).hexdigest()}")
    code = DOCS_EXAMPLE.replace("http://127.0.0.1:8080", gateway.url)
    assert code != DOCS_EXAMPLE and len(DOCS_EXAMPLE.splitlines()) <= 10
    namespace: dict[str, Any] = {"API_KEY": api_key, "ACTIVATION": s3_request()}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs-example", "exec"), namespace)
    activation = namespace["activation"]
    assert activation.status.value == "succeeded", activation.to_dict()
    assert namespace["created"].status.value == "succeeded", "Prefer: wait answered once it was done"
    assert printed.getvalue().startswith("succeeded [('resolve_destination', 'succeeded')"), printed.getvalue()


def test_the_readmes_output_folder_is_ignored_by_git_and_ruff() -> None:
    probe = GENERATED / f"probe-{uuid.uuid4().hex[:8]}"
    probe.mkdir(parents=True)
    try:
        (probe / "bad.py").write_text("import os\n")  # F401: ruff would report it if it looked
        ruff = Path(sys.executable).parent / "ruff"
        shown = subprocess.run(
            [str(ruff), "check", "--no-cache", "--show-files", "."],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert str(probe) not in shown.stdout and ".generated" not in shown.stdout
        if shutil.which("git") and (ROOT / ".git").exists():
            ignored = subprocess.run(["git", "check-ignore", "-q", str(probe / "bad.py")], cwd=ROOT, timeout=30)
            assert ignored.returncode == 0, ".generated/ is not in .gitignore"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
        with contextlib.suppress(OSError):
            GENERATED.rmdir()  # only if it holds nothing else (a client a developer generated stays)
