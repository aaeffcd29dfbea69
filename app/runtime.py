"""The composition root: builds the adapters, the saga and the worker from settings, and owns
their lifetimes. Only this module and the CLI know how the pieces fit together."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr
from sqlalchemy import text

from app import __version__
from app.adapters.crypto import CredentialCipher, SecretsError, development_key
from app.adapters.db.drift_store import DriftStore
from app.adapters.db.engine import create_engine
from app.adapters.db.intake import ActivationIntake
from app.adapters.db.migrate import current_revision, head_revision
from app.adapters.db.notifications import Notifications
from app.adapters.db.operation_queue import OperationQueue
from app.adapters.db.operation_store import OperationStore
from app.adapters.db.repository import ActivationRepository
from app.adapters.db.run_store import RunStore
from app.adapters.db.saga_store import SagaStore
from app.adapters.db.statements import StatementPool
from app.adapters.db.stats import newest_success_age, queue_stats, unrunnable_work
from app.adapters.db.webhook_store import WebhookStore
from app.adapters.flowservice import FlowServiceClient, TokenProvider, UpstreamCall
from app.adapters.flowservice.client import build_http_client, build_transport, upstream_timeout
from app.api.auth import ApiKeyRegistry
from app.domain.catalog import DestinationCatalog, DestinationCheck
from app.domain.operations import OperationRunner
from app.domain.retry import RetryPolicy
from app.domain.saga import CompensationRetries, SagaRunner
from app.domain.worker import Worker
from app.domain.workflows import WORKFLOWS, OperationKind
from app.metrics import Metrics
from app.services.activations import ActivationService
from app.services.cycles import BackgroundCycles, Cycle
from app.services.dataflows import DataflowLimit
from app.services.drift import Reconciler
from app.services.operations import OperationService
from app.services.runs import RunMirror, RunQueries
from app.services.webhooks import WebhookService
from app.settings import Settings

log = structlog.get_logger(__name__)

# The worker loop ticks at least this often; older than that and readiness fails.
_WORKER_STALE_SECONDS = 30.0
# Probes and scrapes must answer even when the database hangs: a hung check is a failed check.
_DATABASE_CHECK_TIMEOUT_SECONDS = 3.0
# How long a stopping worker lets the steps in flight finish before it cancels them.
_WORKER_GRACE_SECONDS = 10.0


class ConfigurationError(Exception):
    pass


def process_identity() -> str:
    """host:pid:random — unique per process, stable for its life (the worker's lease owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def check_security(settings: Settings) -> list[str]:
    """Refuse a configuration that is unsafe outside development (contract §6, §8), and say loudly
    what development mode lets through. Run before anything starts, so a refusal is immediate."""
    notes: list[str] = []
    try:
        keys = ApiKeyRegistry.parse(
            settings.api_keys.get_secret_value() if settings.api_keys else None, development=settings.development
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if settings.development and settings.database_url is None:
        notes.append("development mode (embedded database): requests without Authorization act as client 'dev'")
    elif settings.development:
        # An external database may be shared with real traffic: dev mode there is never the default.
        notes.append(
            "development mode FORCED by DEV_MODE=true on the database at DATABASE_URL: requests without"
            " Authorization act as client 'dev'; never run like this in production"
        )
    elif not keys.hashes:
        reason = " (DATABASE_URL is set, so development mode is off)" if settings.dev_mode is None else ""
        raise ConfigurationError(f"API_KEYS is required outside development mode{reason}")
    if settings.secrets_key is None:
        if not settings.development:
            raise ConfigurationError("SECRETS_KEY is required outside development mode")
        # Fine for one process on the embedded database; processes sharing a database each need the same key.
        notes.append(f"SECRETS_KEY unset: credentials are encrypted with a development key kept in {settings.data_dir}")
    else:
        try:
            CredentialCipher.from_setting(settings.secrets_key.get_secret_value())
        except SecretsError as exc:
            raise ConfigurationError(str(exc)) from None
    if settings.adobe_ca_bundle and not Path(settings.adobe_ca_bundle).is_file():
        raise ConfigurationError("ADOBE_CA_BUNDLE does not name a readable file")
    return notes


def adobe_tls(settings: Settings) -> ssl.SSLContext | bool:
    """Certificate and host name verification are always on for Adobe; ADOBE_CA_BUNDLE only
    replaces the trusted roots (e.g. a corporate TLS-inspecting proxy)."""
    if settings.adobe_ca_bundle:
        return ssl.create_default_context(cafile=settings.adobe_ca_bundle)
    return True


@dataclass(frozen=True, slots=True)
class AdobeEndpoints:
    flow_service_url: str
    ims_token_url: str
    client_id: str
    client_secret: SecretStr
    org_id: str
    scopes: str

    @classmethod
    def from_settings(cls, settings: Settings) -> AdobeEndpoints:
        missing = [
            name
            for name, value in (
                ("FLOW_SERVICE_URL", settings.flow_service_url),
                ("IMS_TOKEN_URL", settings.ims_token_url),
                ("ADOBE_CLIENT_ID", settings.adobe_client_id),
                ("ADOBE_CLIENT_SECRET", settings.adobe_client_secret),
                ("ADOBE_ORG_ID", settings.adobe_org_id),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"Adobe configuration incomplete, missing: {', '.join(missing)}")
        assert settings.flow_service_url and settings.ims_token_url and settings.adobe_client_id
        assert settings.adobe_client_secret and settings.adobe_org_id
        return cls(
            flow_service_url=settings.flow_service_url,
            ims_token_url=settings.ims_token_url,
            client_id=settings.adobe_client_id,
            client_secret=settings.adobe_client_secret,
            org_id=settings.adobe_org_id,
            scopes=settings.adobe_scopes,
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where things are, once the CLI has started whatever the defaults need."""

    database_url: str
    adobe: AdobeEndpoints
    notes: tuple[str, ...] = ()
    run_worker: bool = True
    emulated: bool = False


@dataclass
class Runtime:
    settings: Settings
    deployment: Deployment
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        settings = self.settings
        self.notes = list(self.deployment.notes)
        self.notes.extend(check_security(settings))
        self.api_keys = ApiKeyRegistry.parse(
            settings.api_keys.get_secret_value() if settings.api_keys else None, development=settings.development
        )
        self.cipher = CredentialCipher.from_setting(self._secrets_key(settings))
        self.engine = create_engine(self.deployment.database_url, pool_size=settings.database_pool_size)
        # The hot paths (accepting an activation; the worker's claims, leases and step writes) run
        # single SQL statements straight on psycopg: see saga_store.py.
        # Two pools, so that accepting an activation never queues for a connection behind the
        # worker's step writes (each opens on first use: an API-only process opens one).
        self.api_statements = StatementPool(self.deployment.database_url, size=settings.database_pool_size, name="api")
        self.worker_statements = StatementPool(
            self.deployment.database_url, size=settings.database_pool_size, name="worker"
        )
        self.repository = ActivationRepository(self.engine, self.api_statements)
        self.intake = ActivationIntake(self.api_statements)
        self.saga_store = SagaStore(
            self.worker_statements,
            key_retention_hours=settings.idempotency_key_retention_hours,
            create_versions=WORKFLOWS.versions(OperationKind.CREATE),
        )
        self.operation_store = OperationStore(self.worker_statements)
        # One LISTEN connection: wakes the worker for new work, and answers `Prefer: wait` as soon as
        # the worker reports the activation terminal.
        self.notifications = Notifications(self.deployment.database_url)
        verify = adobe_tls(settings)
        self.identity = process_identity()
        # Names the process: Adobe support (or a test) can tell which worker made a call.
        user_agent = f"activation-gateway/{__version__} ({self.identity})"
        timeout = upstream_timeout(
            connect_timeout=settings.upstream_connect_timeout_seconds, timeout=settings.upstream_timeout_seconds
        )
        transport = build_transport(max_connections=settings.worker_concurrency * 2, verify=verify)
        self.http = build_http_client(transport, timeout=timeout, user_agent=user_agent)  # closes the transport
        adobe = self.deployment.adobe
        self.tokens = TokenProvider(
            self.http,
            token_url=adobe.ims_token_url,
            client_id=adobe.client_id,
            client_secret=adobe.client_secret,
            scopes=adobe.scopes,
        )
        self.metrics.count_token_refreshes(lambda: self.tokens.refreshes)
        self.flow_service = FlowServiceClient(
            transport,
            self.tokens,
            base_url=adobe.flow_service_url,
            adhoc_url=settings.ad_hoc_activation_url,
            org_id=adobe.org_id,
            timeout=timeout,
            user_agent=user_agent,
            observer=self._on_upstream,
        )
        self.catalog = DestinationCatalog(settings.spec_cache_ttl_seconds)
        # The API's reads of the same cached catalog (GET /destinations, the early check of POST
        # /activations), on the unguarded client: an API-only process (`serve --no-worker`) has it too.
        self.destinations = DestinationCheck(
            self.catalog,
            self.flow_service,
            sandbox=settings.adobe_sandbox,
            timeout=settings.destination_check_timeout_seconds,
        )
        retry = RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            base_delay=settings.retry_base_delay_seconds,
            max_delay=settings.retry_max_delay_seconds,
            retry_after_max=settings.retry_after_max_seconds,
        )
        late_commit_window = timedelta(seconds=settings.late_commit_window_seconds)
        operations = OperationRunner(
            self.operation_store,
            self.flow_service,
            self.catalog,
            self.cipher,
            workflows=WORKFLOWS,
            retry=retry,
            observer=self.metrics,
            late_commit_window=late_commit_window,
        )
        self.runner = SagaRunner(
            self.saga_store,
            self.flow_service,
            self.catalog,
            self.cipher,
            operations=operations,
            retry=retry,
            auto_compensate=settings.auto_compensate,
            observer=self.metrics,
            late_commit_window=late_commit_window,
            crash_limit=settings.run_crash_limit,
            compensation_retries=CompensationRetries(
                base_seconds=settings.compensation_retry_base_seconds,
                max_seconds=settings.compensation_retry_max_seconds,
            ),
        )
        self.activations = ActivationService(
            self.intake,
            self.repository,
            self.destinations,
            self.notifications,
            self.cipher,
            create_workflow=WORKFLOWS.current(OperationKind.CREATE),
            dataflows=DataflowLimit(
                self.flow_service,
                self.intake.creates_without_flow,
                limit=settings.dataflow_limit_per_sandbox,
                ttl=settings.dataflow_count_ttl_seconds,
            ),
            default_sandbox=settings.adobe_sandbox,
            sandboxes=settings.sandboxes,
            sftp_hosts=settings.sftp_host_allow_list,
            on_created=self.metrics.activations_created.inc,
        )
        # The use cases of changing a live activation (the API reaches them through a dependency).
        self.operations = OperationService(
            OperationQueue(self.api_statements, key_retention_hours=settings.idempotency_key_retention_hours),
            self.repository,
            WORKFLOWS,
            fingerprint=self.cipher.fingerprint,
            fingerprint_matches=self.cipher.fingerprint_matches,
            flows=self.flow_service,
        )
        # Contract §12, §13: runs mirrored from Adobe and drift. The API's on-demand reads (a refresh,
        # a reconcile now) use its pool; the cycles of a worker process use the worker's.
        self.run_mirror = RunMirror(
            RunStore(self.worker_statements),
            self.flow_service,
            self.metrics,
            owner=self.identity,
            delay_threshold_seconds=settings.run_delay_threshold_seconds,
            lease_seconds=settings.background_lease_seconds,
        )
        self.reconcile_cycle = Reconciler(
            DriftStore(self.worker_statements),
            RunStore(self.worker_statements),
            self.flow_service,
            WORKFLOWS,
            self.metrics,
            owner=self.identity,
            full_sweep_seconds=settings.reconcile_full_sweep_seconds,
            lease_seconds=settings.background_lease_seconds,
        )
        api_runs = RunStore(self.api_statements)
        on_demand_mirror = RunMirror(
            api_runs,
            self.flow_service,
            self.metrics,
            owner=self.identity,
            delay_threshold_seconds=settings.run_delay_threshold_seconds,
            lease_seconds=settings.background_lease_seconds,
        )
        self.run_queries = RunQueries(api_runs, on_demand_mirror)
        self.webhooks = WebhookService(
            WebhookStore(self.api_statements),
            self.cipher,
            allowed_hosts=settings.webhook_host_allow_list,
            secret_overlap_seconds=settings.webhook_secret_overlap_seconds,
        )
        self.reconciler = Reconciler(
            DriftStore(self.api_statements),
            api_runs,
            self.flow_service,
            WORKFLOWS,
            self.metrics,
            owner=self.identity,
            full_sweep_seconds=settings.reconcile_full_sweep_seconds,
            lease_seconds=settings.background_lease_seconds,
        )
        self.cycles: BackgroundCycles | None = None
        self.worker: Worker | None = None
        if self.deployment.run_worker and settings.worker_enabled:
            self.cycles = BackgroundCycles(
                [
                    Cycle(
                        "runs",
                        settings.runs_poll_interval_seconds,
                        lambda interval: self.run_mirror.cycle(interval_seconds=interval),
                    ),
                    Cycle(
                        "reconcile",
                        settings.reconcile_interval_seconds,
                        lambda interval: self.reconcile_cycle.cycle(interval_seconds=interval),
                    ),
                ]
            )
            self.worker = Worker(
                self.repository,
                self.saga_store,
                self.runner,
                signal=self.notifications,
                owner=self.identity,
                concurrency=settings.worker_concurrency,
                lease_seconds=settings.lease_seconds,
                poll_interval=settings.worker_poll_interval_seconds,
            )
        self._worker_task: asyncio.Task[None] | None = None
        self._worker_stopping: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.draining = False

    @staticmethod
    def _secrets_key(settings: Settings) -> str:
        if settings.secrets_key is not None:
            return settings.secrets_key.get_secret_value()
        if settings.development:
            return development_key(settings.data_dir)
        raise ConfigurationError("SECRETS_KEY is required outside development mode")

    async def _on_upstream(self, call: UpstreamCall) -> None:
        """Metrics and a log line for every upstream call; an operation's own record of its calls
        (its timeline) is kept by its leased wrapper (app/domain/upstream.py)."""
        self.metrics.observe_upstream(call)
        log.info(
            "upstream call",
            method=call.method,
            path=call.path,
            status=call.status,
            duration_ms=call.duration_ms,
            x_request_id=call.request_id,
            adobe_request_id=call.adobe_request_id,
            **call.context,
        )

    def begin_draining(self) -> None:
        """Shutdown has begun: readiness fails from now on so traffic moves elsewhere, while the
        process keeps serving until the server's drain delay ends. Called from a signal handler.

        The worker serves no routed traffic, so it starts stopping now (claims nothing more, steps
        in flight end at their boundary, leases are released for other workers): its grace period
        overlaps the drain delay instead of adding to it."""
        self.draining = True
        if self.worker is not None and self._loop is not None and self._worker_stopping is None:
            # call_soon_threadsafe is safe in a signal handler: it only wakes the loop.
            self._loop.call_soon_threadsafe(self._stop_worker_soon)

    def _stop_worker_soon(self) -> None:
        if self.worker is not None and self._worker_stopping is None:
            log.info("worker stopping: process draining")
            self._worker_stopping = asyncio.create_task(self.worker.stop(grace_seconds=_WORKER_GRACE_SECONDS))

    async def refresh_metrics(self) -> None:
        """Update the gauges that are read rather than counted, right before a scrape."""
        if self.worker is not None:
            self.metrics.active_leases.set(self.worker.active_leases)
        try:
            stats = await asyncio.wait_for(queue_stats(self.engine), _DATABASE_CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # the scrape must still answer, with queue_stats_up 0
            log.warning("queue statistics unavailable", error=type(exc).__name__)
            stats = None
        self.metrics.refresh_queue(stats)
        try:
            unrunnable = await asyncio.wait_for(self._unrunnable_work(), _DATABASE_CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("unrunnable work unavailable", error=type(exc).__name__)
            unrunnable = None
        self.metrics.unrunnable_operations.set(float("nan") if unrunnable is None else unrunnable)
        try:
            age = await asyncio.wait_for(newest_success_age(self.engine), _DATABASE_CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("export run age unavailable", error=type(exc).__name__)
            age = None
        self.metrics.newest_success_age.set(float("nan") if age is None else age)

    async def _unrunnable_work(self) -> int:
        return await unrunnable_work(
            self.engine,
            create_versions=WORKFLOWS.versions(OperationKind.CREATE),
            operation_versions=WORKFLOWS.operation_keys(),
        )

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for note in self.notes:
            log.warning(note)
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run(), name="saga-worker")
        if self.cycles is not None:
            self.cycles.start()

    async def stop(self) -> None:
        self.draining = True
        if self.cycles is not None:
            await self.cycles.stop()
        if self._worker_stopping is not None:
            await self._worker_stopping
        elif self.worker is not None:
            await self.worker.stop(grace_seconds=_WORKER_GRACE_SECONDS)
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await self.notifications.stop()
        await self.http.aclose()
        await self.api_statements.close()
        await self.worker_statements.close()
        await self.engine.dispose()

    async def readiness_checks(self) -> dict[str, list[dict[str, Any]]]:
        checks: dict[str, list[dict[str, Any]]] = {}
        try:
            revision = await asyncio.wait_for(self._database_revision(), _DATABASE_CHECK_TIMEOUT_SECONDS)
            checks["database:connection"] = [{"status": "pass"}]
            head = head_revision()
            checks["database:migrations"] = [
                {"status": "pass" if revision == head else "fail", "observedValue": revision, "expected": head}
            ]
        except Exception as exc:
            checks["database:connection"] = [{"status": "fail", "output": type(exc).__name__}]
        if self.worker is not None:
            alive = self.worker.alive(_WORKER_STALE_SECONDS)
            checks["worker:heartbeat"] = [
                {
                    "status": "pass" if alive else "fail",
                    "observedValue": self.worker.active_leases,
                    "observedUnit": "active leases",
                }
            ]
            self.metrics.active_leases.set(self.worker.active_leases)
        adobe = self.deployment.adobe
        checks["flowservice:endpoint"] = [
            {
                "status": "pass",
                "observedValue": adobe.flow_service_url,
                "output": "built-in emulator" if self.deployment.emulated else "Adobe",
            }
        ]
        try:
            unrunnable = await asyncio.wait_for(self._unrunnable_work(), _DATABASE_CHECK_TIMEOUT_SECONDS)
        except Exception:  # the database check above already says so
            unrunnable = None
        if unrunnable:
            # Not a failure of this process (it serves everything else): a warning that work waits
            # for a process whose build has its workflow version (see domain/workflows.py).
            checks["workflows:versions"] = [
                {
                    "status": "warn",
                    "observedValue": unrunnable,
                    "observedUnit": "unfinished activations and operations",
                    "output": "their workflow version is not in this build; a process that has it must run them",
                }
            ]
        if self.draining:
            checks["process:draining"] = [{"status": "fail", "output": "shutting down"}]
        return checks

    async def _database_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            return await conn.run_sync(current_revision)
