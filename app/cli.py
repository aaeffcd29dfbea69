"""`activation-gateway`: serve, worker, migrate, emulator, demo, openapi, stop-compensation-retries,
create-api-key."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import SecretStr

from app.logging import configure_logging
from app.runtime import AdobeEndpoints, ConfigurationError, Deployment, Runtime, check_security
from app.settings import Settings

if TYPE_CHECKING:
    from flowservice_emulator import EmulatorServer

log = structlog.get_logger("activation_gateway")

# Credentials the gateway and its built-in emulator agree on in the default run; not secrets.
_DEV_CLIENT_ID = "activation-gateway-dev"
_DEV_ORG_ID = "0000000000000000DEV00000@AdobeOrg"


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    from app.adapters.db.embedded import start_embedded_postgres

    return start_embedded_postgres(settings.data_dir)


def prepare_deployment(settings: Settings, *, run_worker: bool = True) -> Deployment:
    """Start what the defaults need (embedded PostgreSQL, the emulator) and say where everything is."""
    notes: list[str] = []
    database_url = _database_url(settings)
    if not settings.database_url:
        notes.append(f"embedded PostgreSQL in {settings.data_dir}")
    if settings.uses_emulator:
        dev_secret = secrets.token_urlsafe(24)
        server = _start_emulator(settings, dev_secret)
        adobe = AdobeEndpoints(
            flow_service_url=server.flow_service_url,
            ims_token_url=server.ims_token_url,
            client_id=_DEV_CLIENT_ID,
            client_secret=SecretStr(dev_secret),
            org_id=_DEV_ORG_ID,
            scopes=settings.adobe_scopes,
        )
        kept = f", its resources kept in {server.config.state_file}" if server.config.state_file else ""
        notes.append(f"no Adobe credentials configured: using the built-in Flow Service emulator at {server.url}{kept}")
    else:
        adobe = AdobeEndpoints.from_settings(settings)
    return Deployment(
        database_url=database_url,
        adobe=adobe,
        notes=tuple(notes),
        run_worker=run_worker,
        emulated=settings.uses_emulator,
    )


class _Terminated(BaseException):
    """SIGTERM before uvicorn handles signals: unwinds like KeyboardInterrupt, past ``except Exception``."""


def _start_emulator(settings: Settings, dev_secret: str) -> EmulatorServer:
    """The built-in emulator on EMULATOR_PORT: a fixed, documented address (a taken port is an error
    naming the setting, never a silent move elsewhere), its resources optionally kept in DATA_DIR."""
    from flowservice_emulator import EmulatorConfig, EmulatorServer
    from flowservice_emulator.persistence import StateFileError

    config = EmulatorConfig(client_id=_DEV_CLIENT_ID, client_secret=dev_secret, state_file=settings.emulator_state_file)
    server = EmulatorServer(config, port=settings.emulator_port)
    try:
        return server.start()
    except StateFileError as exc:
        raise ConfigurationError(f"{exc} (EMULATOR_PERSIST=false starts the emulator empty)") from None
    except OSError as exc:
        raise ConfigurationError(
            f"the built-in Flow Service emulator cannot listen on {server.host}:{settings.emulator_port}"
            f" ({exc.strerror or exc}): set EMULATOR_PORT to a free port (0 picks any free port)"
        ) from None


def _serve(args: argparse.Namespace) -> None:
    """Run the server; on every way out stop what the default run started (the embedded PostgreSQL):
    after the graceful shutdown, when startup fails, on Ctrl-C or SIGTERM during startup."""
    from types import FrameType

    from app.adapters.db.embedded import stop_embedded_postgres

    pending: list[int] = []  # signals to re-raise once everything is stopped

    def interrupt_startup(sig: int, frame: FrameType | None) -> None:
        # Until uvicorn installs its handlers (the embedded server's first start takes seconds), the
        # default action of SIGTERM would end the process on the spot, the database left running.
        pending.append(sig)
        raise _Terminated

    def defer(sig: int, frame: FrameType | None) -> None:
        pending.append(sig)  # a signal now must not cut the stop short

    signal.signal(signal.SIGTERM, interrupt_startup)
    try:
        pending.extend(_run_server(args))
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGINT, defer)
        signal.signal(signal.SIGTERM, defer)
        stop_embedded_postgres()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # As uvicorn would have (docs/operations.md, "Shutdown"): the last signal first. SIGTERM ends the process with
    # status -15 (no atexit hooks: all is stopped already), SIGINT raises KeyboardInterrupt, which
    # main() ends quietly.
    sys.stdout.flush()
    sys.stderr.flush()
    for sig in reversed(pending):
        signal.raise_signal(sig)


def _run_server(args: argparse.Namespace) -> list[int]:
    """Serve until a signal's graceful shutdown; return the signals received, not yet re-raised."""
    import uvicorn

    from app.adapters.db import migrate
    from app.main import create_app
    from app.server import DrainingServer

    settings = Settings()
    check_security(settings)  # refuse before starting the embedded database or the emulator
    deployment = prepare_deployment(settings, run_worker=not args.no_worker)
    if settings.auto_migrate:
        migrate.upgrade(deployment.database_url)
    app = create_app(settings, deployment)
    # Starting the in-process emulator configured uvicorn's loggers (levels); make ours win again.
    configure_logging(settings.log_level, settings.log_format)

    def begin_draining() -> None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is not None:  # a signal during startup: nothing to mark yet
            runtime.begin_draining()

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,  # app/logging.py owns logging
        access_log=False,  # RequestContextMiddleware logs each request with its correlation id
        timeout_graceful_shutdown=15,
    )
    server = DrainingServer(config, drain_seconds=settings.shutdown_delay_seconds, on_drain=begin_draining)
    _banner(args.host, args.port, deployment)
    server.run()
    return server.caught_signals


def _banner(host: str, port: int, deployment: Deployment) -> None:
    """The start-up line: where the service, its API docs and, in the default run, the emulator are."""
    url = f"http://{host}:{port}"
    emulator = None
    if deployment.emulated:
        from flowservice_emulator.config import BASE_PATH

        emulator = deployment.adobe.flow_service_url.removesuffix(BASE_PATH)
    log.info("serving", url=url, docs=f"{url}/docs", emulator=emulator, worker=deployment.run_worker)


def _worker(args: argparse.Namespace) -> None:
    if args.nice:
        # On a host shared with the API process, accepting requests comes first: the scheduler
        # gives this process what the API leaves (docs/performance.md, accept latency).
        os.nice(args.nice)
    settings = Settings()
    check_security(settings)
    deployment = prepare_deployment(settings)

    async def run() -> None:
        runtime = Runtime(settings, deployment)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        if args.metrics_port:
            # A worker has no HTTP API; its saga metrics (steps, retries, durations) are served here.
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr=args.metrics_host, registry=runtime.metrics.registry)
        log.info("worker running", owner=runtime.worker.owner if runtime.worker else None)
        await stop.wait()
        log.info("worker stopping")
        await runtime.stop()

    _run_event_loop(run())


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (uvicorn[standard] brings it, and `serve` runs on it too)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        asyncio.run(main)
    else:
        uvloop.run(main)


def _migrate(args: argparse.Namespace) -> None:
    from app.adapters.db import migrate

    settings = Settings()
    url = _database_url(settings)
    if args.downgrade:
        migrate.downgrade(url, args.revision)
    else:
        migrate.upgrade(url, args.revision)
    log.info("migrations applied", revision=args.revision)


def _emulator(args: argparse.Namespace) -> None:
    from flowservice_emulator.cli import main as emulator_main

    emulator_main(["--host", args.host, "--port", str(args.port)])


def _demo(args: argparse.Namespace) -> None:
    from app.demo import run_demo

    raise SystemExit(run_demo(Settings()))


def _openapi(args: argparse.Namespace) -> None:
    from app.main import create_app

    document = json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=False) + "\n"
    if args.output == "-":
        sys.stdout.write(document)
    else:
        Path(args.output).write_text(document)


def _stop_compensation_retries(args: argparse.Namespace) -> None:
    """An operator gives up on an orphan (e.g. deleted by hand in Adobe's UI): the activation stays
    rollback_failed, its orphans listed, and the gateway stops retrying the deletes."""
    import uuid

    from app.adapters.db.engine import create_engine
    from app.adapters.db.repository import ActivationRepository
    from app.adapters.db.statements import StatementPool

    settings = Settings()
    if not settings.database_url:
        raise ConfigurationError("DATABASE_URL is required")
    try:
        activation_id = uuid.UUID(args.activation_id)
    except ValueError:
        raise ConfigurationError(f"not an activation id: {args.activation_id!r}") from None

    async def stop() -> bool:
        engine = create_engine(settings.database_url or "", pool_size=1)
        try:
            # Its statement pool is never opened: stopping retries is one SQLAlchemy transaction.
            statements = StatementPool(settings.database_url or "", size=1)
            return await ActivationRepository(engine, statements).stop_compensation_retries(activation_id)
        finally:
            await engine.dispose()

    if asyncio.run(stop()):
        print(f"automatic compensation retries of {activation_id} stopped")
    else:
        print(f"{activation_id} is not rollback_failed with retries scheduled: nothing changed", file=sys.stderr)
        raise SystemExit(1)


def _create_api_key(args: argparse.Namespace) -> None:
    key = secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    print(f"API key for client {args.client} (shown once, store it now):\n  {key}")
    print("Add this entry to API_KEYS (comma-separated):")
    print(f"  {args.client}:{digest}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activation-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (and, by default, the saga worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-worker", action="store_true", help="serve the API only")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run the saga worker only (scale out)")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    worker.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")
    worker.add_argument(
        "--nice", type=int, default=0, help="lower this process's CPU priority by N (0-19) below the API's"
    )
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="apply Alembic migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to the revision instead")
    migrate.set_defaults(handler=_migrate)

    emulator = commands.add_parser("emulator", help="run the Flow Service emulator standalone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8081)
    emulator.set_defaults(handler=_emulator)

    demo = commands.add_parser(
        "demo", help="run one activation against the built-in emulator and print its step timeline"
    )
    demo.set_defaults(handler=_demo)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="openapi/openapi.json")
    openapi.set_defaults(handler=_openapi)

    stop_retries = commands.add_parser(
        "stop-compensation-retries", help="stop the automatic retries of a failed compensation (rollback_failed)"
    )
    stop_retries.add_argument("activation_id")
    stop_retries.set_defaults(handler=_stop_compensation_retries)

    api_key = commands.add_parser("create-api-key", help="make a caller API key; prints it once")
    api_key.add_argument("client", help="client id, e.g. campaign-app")
    api_key.set_defaults(handler=_create_api_key)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        args.handler(args)
    except ConfigurationError as exc:
        log.error("configuration error", error=str(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
