"""The standalone entry point."""

from __future__ import annotations

from typing import Any

import pytest

from flowservice_emulator import cli


def test_defaults() -> None:
    args = cli.parse_args([])
    assert (args.host, args.port, args.token_lifetime, args.client_id, args.client_secret) == (
        "127.0.0.1",
        8081,
        86399,
        None,
        None,
    )


def test_main_runs_uvicorn_with_the_configured_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    cli.main(
        [
            "--port",
            "9999",
            "--token-lifetime",
            "60",
            "--client-id",
            "id",
            "--client-secret",
            "s",
            "--log-level",
            "warning",
        ]
    )
    (call,) = calls
    assert (call["host"], call["port"], call["log_level"]) == ("127.0.0.1", 9999, "warning")
    config = call["app"].state.emulator.config
    assert (config.token_lifetime_seconds, config.client_id, config.client_secret) == (60, "id", "s")
