"""``flowservice-emulator``: run the emulator as a standalone server."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn
from uvicorn.config import LOG_LEVELS

from .app import create_app
from .config import EmulatorConfig
from .persistence import StateFileError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flowservice-emulator", description="Emulate Adobe IMS and the Flow Service API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=86399,
        metavar="SECONDS",
        help="expires_in of issued tokens (default: 86399)",
    )
    parser.add_argument("--client-id", help="only issue tokens to this client id")
    parser.add_argument("--client-secret", help="only issue tokens for this client secret")
    parser.add_argument("--org-id", help="only accept this x-gw-ims-org-id (default: any)")
    parser.add_argument(
        "--state-file",
        type=Path,
        metavar="PATH",
        help="keep the resources in this JSON file: loaded at start, saved on every change (default: memory only)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = EmulatorConfig(
        token_lifetime_seconds=args.token_lifetime,
        client_id=args.client_id,
        client_secret=args.client_secret,
        org_id=args.org_id,
        state_file=args.state_file,
    )
    try:
        app = create_app(config)
    except StateFileError as exc:
        raise SystemExit(f"flowservice-emulator: {exc}") from None
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            # Above info the access log (INFO lines) is never written, but uvicorn would still build each line's
            # arguments (client address, quoted path) for every response. This process owns its loggers, so
            # turning the access log off is safe here; the in-process EmulatorServer must not do it.
            access_log=LOG_LEVELS[args.log_level] <= logging.INFO,
            lifespan="off",
            backlog=4096,
        )
    finally:
        app.state.emulator.close()  # uvicorn has stopped serving: flush a save still pending
