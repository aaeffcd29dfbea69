"""The composition root: builds the adapters, the saga and the worker from settings, and owns
their lifetimes. Only this module and the CLI know how the pieces fit together."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import SecretStr
from sqlalchemy import text

from app.adapters.crypto import CredentialCipher, development_key
from app.adapters.db.engine import create_engine
from app.adapters.db.migrate import current_revision, head_revision
from app.adapters.db.repository import ActivationRepository
from app.adapters.flowservice import FlowServiceClient, TokenProvider, UpstreamCall
from app.adapters.flowservice.client import build_http_client
from app.api.auth import ApiKeyRegistry
from app.domain.catalog import DestinationCatalog
from app.domain.retry import RetryPolicy
from app.domain.saga import SagaRunner
from app.domain.worker import Worker
from app.metrics import Metrics
from app.settings import Settings

log = structlog.get_logger(__name__)

# The worker loop ticks at least this often; older than that and readiness fails.
_WORKER_STALE_SECONDS = 30.0


class ConfigurationError(Exception):
    pass


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
        self.api_keys = ApiKeyRegistry.parse(
            settings.api_keys.get_secret_value() if settings.api_keys else None, development=settings.development
        )
        if not self.api_keys.hashes and not settings.development:
            raise ConfigurationError("API_KEYS is required outside development mode")
        if settings.development:
            self.notes.append("development mode: requests without Authorization act as client 'dev'")
        self.cipher = CredentialCipher.from_setting(self._secrets_key(settings))
        self.engine = create_engine(self.deployment.database_url, pool_size=settings.database_pool_size)
        self.repository = ActivationRepository(self.engine)
        verify: bool | ssl.SSLContext = True
        if settings.adobe_ca_bundle:
            verify = ssl.create_default_context(cafile=settings.adobe_ca_bundle)
        self.http = build_http_client(
            connect_timeout=settings.upstream_connect_timeout_seconds,
            timeout=settings.upstream_timeout_seconds,
            max_connections=settings.worker_concurrency * 2,
            verify=verify,
        )
        adobe = self.deployment.adobe
        self.tokens = TokenProvider(
            self.http,
            token_url=adobe.ims_token_url,
            client_id=adobe.client_id,
            client_secret=adobe.client_secret,
            scopes=adobe.scopes,
        )
        self.flow_service = FlowServiceClient(
            self.http, self.tokens, base_url=adobe.flow_service_url, org_id=adobe.org_id, observer=self._on_upstream
        )
        self.catalog = DestinationCatalog(settings.spec_cache_ttl_seconds)
        self.runner = SagaRunner(
            self.repository,
            self.flow_service,
            self.catalog,
            self.cipher,
            retry=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                base_delay=settings.retry_base_delay_seconds,
                max_delay=settings.retry_max_delay_seconds,
                retry_after_max=settings.retry_after_max_seconds,
            ),
            auto_compensate=settings.auto_compensate,
        )
        self.worker: Worker | None = None
        if self.deployment.run_worker and settings.worker_enabled:
            self.worker = Worker(
                self.repository,
                self.runner,
                database_url=self.deployment.database_url,
                concurrency=settings.worker_concurrency,
                lease_seconds=settings.lease_seconds,
                poll_interval=settings.worker_poll_interval_seconds,
            )
        self._worker_task: asyncio.Task[None] | None = None
        self.draining = False

    @staticmethod
    def _secrets_key(settings: Settings) -> str:
        if settings.secrets_key is not None:
            return settings.secrets_key.get_secret_value()
        if settings.development:
            return development_key(settings.data_dir)
        raise ConfigurationError("SECRETS_KEY is required outside development mode")

    async def _on_upstream(self, call: UpstreamCall) -> None:
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
        activation_id = call.context.get("activation_id")
        if activation_id:
            await self.repository.add_event(
                activation_id,
                "upstream",
                call.context.get("step"),
                {
                    "method": call.method,
                    "path": call.path,
                    "status": call.status,
                    "durationMs": call.duration_ms,
                    "attempt": call.context.get("attempt"),
                    "requestId": call.request_id,
                    "adobeRequestId": call.adobe_request_id,
                    "error": call.error,
                },
            )

    async def start(self) -> None:
        for note in self.notes:
            log.warning(note)
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run(), name="saga-worker")

    async def stop(self) -> None:
        self.draining = True
        if self.worker is not None:
            await self.worker.stop(grace_seconds=10.0)
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await self.http.aclose()
        await self.engine.dispose()

    async def readiness_checks(self) -> dict[str, list[dict[str, Any]]]:
        checks: dict[str, list[dict[str, Any]]] = {}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                revision = await conn.run_sync(current_revision)
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
        if self.draining:
            checks["process:draining"] = [{"status": "fail", "output": "shutting down"}]
        return checks
