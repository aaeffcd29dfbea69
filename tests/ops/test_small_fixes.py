"""Issue #17, point 6: the console log format follows the terminal, readiness probes log at DEBUG
only (Alembic's set-up lines included), and `bench --quick` does not fail what it never measured."""

from __future__ import annotations

import io
import logging
import time
import uuid
from typing import Any

import pytest
from alembic.runtime.migration import MigrationContext

import app.adapters.db.migrate  # noqa: F401  (installs the filter under test)
from app.logging import resolve_format
from app.settings import Settings
from bench.run import _targets, split_targets, targets_line
from tests.ops.support import json_lines
from tests.support.gateway import GatewayProcess


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


# --------------------------------------------------------------------------- LOG_FORMAT
def test_log_format_is_auto_by_default() -> None:
    assert Settings.model_fields["log_format"].default == "auto"


@pytest.mark.parametrize(
    ("setting", "tty", "chosen"),
    [
        ("auto", True, "console"),  # the interactive default run: readable lines
        ("auto", False, "json"),  # a file, a pipe, a log collector
        ("json", True, "json"),  # explicit values win
        ("console", False, "console"),
    ],
)
def test_the_log_format_follows_the_terminal_unless_set(setting: str, tty: bool, chosen: str) -> None:
    assert resolve_format(setting, _Stream(tty)) == chosen


def test_a_closed_stdout_gets_json() -> None:
    stream = io.StringIO()
    stream.close()  # isatty() now raises ValueError
    assert resolve_format("auto", stream) == "json"


# --------------------------------------------------------------------------- probe log levels
def _set_up_a_migration_context() -> None:
    MigrationContext.configure(dialect_name="postgresql")  # logs "Context impl …", "Will assume … DDL."


def test_alembics_set_up_lines_are_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    name = "alembic.runtime.migration"
    with caplog.at_level(logging.INFO):
        _set_up_a_migration_context()
    assert [r for r in caplog.records if r.name == name] == [], "nothing at INFO"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        _set_up_a_migration_context()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == name]
    assert lines == [("DEBUG", "Context impl PostgresqlImpl."), ("DEBUG", "Will assume transactional DDL.")]


def test_a_readiness_probe_logs_at_debug_only(gateway: GatewayProcess) -> None:
    probe = f"probe-{uuid.uuid4().hex[:12]}"
    with gateway.client() as client:
        assert client.get("/health/ready", headers={"X-Request-Id": probe}).status_code == 200

    def probe_lines() -> list[dict[str, Any]]:
        return [e for e in json_lines(gateway.logs()) if e.get("request_id") == probe]

    deadline = time.monotonic() + 5
    while not any(e["event"] == "request" for e in probe_lines()) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = probe_lines()
    assert any(e["event"] == "request" for e in lines), "the probe's own request line (LOG_LEVEL=DEBUG)"
    assert any(e.get("logger") == "alembic.runtime.migration" for e in lines), "the revision read was logged"
    assert {e["level"] for e in lines} == {"debug"}, [e for e in lines if e["level"] != "debug"]


# --------------------------------------------------------------------------- bench --quick
def _quick_results() -> dict[str, Any]:
    """A --quick run's measures: bursts of 20 and 50, never 500."""
    history = {"claim_p50_ms": 1.0, "get_p50_ms": 1.0}
    return {
        "latency": {"p50": 300.0, "targetMs": 287.5},
        "throughput": [{"size": 20, "perSecond": 90.0}, {"size": 50, "perSecond": 95.0}],
        "accept": {"p99": 20.0, "errors": 0},
        "history": {"before": history, "after": history},
        "memory": {"ratio": 1.1},
    }


def test_quick_mode_reports_what_it_never_measures_as_not_measured() -> None:
    targets, not_measured = split_targets(_targets(_quick_results()))
    assert not_measured == ["throughput_500_at_least_100_per_s"]
    assert targets["latency_p50_within_1.15x_critical_path"] is False, "a measured miss still fails"
    assert targets["throughput_flat"] is True
    line = targets_line({"targets": targets, "notMeasured": not_measured})
    assert "throughput_500_at_least_100_per_s=not measured" in line
    assert "latency_p50_within_1.15x_critical_path=FAIL" in line and "throughput_flat=PASS" in line
    assert line.count("FAIL") == 1


def test_a_measured_500_burst_is_judged() -> None:
    results = _quick_results()
    results["throughput"].append({"size": 500, "perSecond": 80.0})
    targets, not_measured = split_targets(_targets(results))
    assert not_measured == []
    assert targets["throughput_500_at_least_100_per_s"] is False
