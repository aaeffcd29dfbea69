"""Docker is not available where the tests run: check what can be checked without building."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_runs_postgres_api_worker_and_emulator() -> None:
    services = _compose()["services"]
    assert {"postgres", "gateway", "worker", "emulator"} <= set(services)
    assert services["gateway"]["command"][:1] == ["serve"] and "--no-worker" in services["gateway"]["command"]
    assert services["worker"]["command"][:1] == ["worker"]
    assert services["emulator"]["command"][:3] == ["emulator", "--host", "0.0.0.0"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("gateway", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["FLOW_SERVICE_URL"].startswith("http://emulator:8081/")


def test_compose_commands_are_cli_commands() -> None:
    parser = build_parser()
    for service in _compose()["services"].values():
        if "build" in service:  # our image: ENTRYPOINT is activation-gateway
            parser.parse_args(service["command"])  # exits (SystemExit) on an unknown command or flag


def test_dockerfile_is_multi_stage_non_root_with_a_liveness_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (.+)$", dockerfile, re.MULTILINE | re.DOTALL)
    assert healthcheck and "/health/live" in healthcheck.group(1) and "urllib" in healthcheck.group(1)
    assert "curl" not in healthcheck.group(1)
    assert 'ENTRYPOINT ["activation-gateway"]' in dockerfile
    assert re.search(r'^CMD \["serve", "--host", "0.0.0.0"', dockerfile, re.MULTILINE)
