"""All configuration of the service, read from the environment (contract §8) in one place."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.sftp_hosts import HostAllowList

DEFAULT_ADOBE_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"


class Settings(BaseSettings):
    """Environment variables, upper-cased field names (``DATABASE_URL`` → ``database_url``)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- storage -------------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN; unset starts an embedded PostgreSQL in DATA_DIR."
    )
    data_dir: Path = Field(default=Path(".data"), description="Local folder for the embedded database.")
    database_pool_size: int = Field(default=10, ge=1, le=200)
    auto_migrate: bool = Field(default=True, description="Run Alembic migrations to head when serving.")

    # --- Adobe ---------------------------------------------------------------------------------
    flow_service_url: str | None = None
    # Export now (contract §12): Adobe's ad-hoc activation service; default: its path on the Flow
    # Service's host (the built-in emulator serves it there too).
    ad_hoc_activation_url: str | None = None
    ims_token_url: str | None = None
    adobe_client_id: str | None = None
    adobe_client_secret: SecretStr | None = None
    adobe_org_id: str | None = None
    adobe_scopes: str = DEFAULT_ADOBE_SCOPES
    adobe_sandbox: str = "prod"
    allowed_sandboxes: str | None = Field(
        default=None, description="Comma-separated sandbox allow-list; unset allows only ADOBE_SANDBOX."
    )
    adobe_ca_bundle: str | None = Field(default=None, description="CA bundle for TLS to Adobe.")
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    upstream_timeout_seconds: float = Field(default=15.0, gt=0)
    spec_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    destination_check_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "How long POST /activations and GET /destinations wait for the destination catalog; past it a"
            " new activation is accepted unchecked and its saga resolves the destination."
        ),
    )
    dataflow_limit_per_sandbox: int = Field(
        default=100,
        ge=0,
        description=(
            "Adobe's limit of destination dataflows per sandbox: a create that would exceed it answers 409"
            " (dataflow-limit-reached), counted from the sandbox's destination flows and the creates under way;"
            " 0 turns the check off."
        ),
    )
    dataflow_count_ttl_seconds: float = Field(
        default=30.0, ge=0, description="How long a sandbox's dataflow count is reused before it is read again."
    )
    sftp_allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated SFTP hosts (names, IP addresses, CIDR ranges) accepted although they are"
            " loopback, link-local, private or special-purpose; empty refuses all of those."
        ),
    )

    webhook_allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated webhook receiver hosts (names, IP addresses, CIDR ranges) accepted although they are"
            " loopback, link-local, private or special-purpose, or reached over plain http; empty refuses all of"
            " those (contract §14)."
        ),
    )
    webhook_secret_overlap_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="After POST /webhooks/{id}/rotate-secret, how long the previous secret still signs as well.",
    )

    # --- callers and secrets -------------------------------------------------------------------
    api_keys: SecretStr | None = Field(default=None, description="Comma-separated client:sha256hex.")
    secrets_key: SecretStr | None = Field(default=None, description="Comma-separated Fernet keys.")
    dev_mode: bool | None = Field(
        default=None, description="Development mode; unset means on exactly when DATABASE_URL is unset."
    )

    # --- saga worker ---------------------------------------------------------------------------
    worker_enabled: bool = True
    worker_concurrency: int = Field(default=64, ge=1, le=1000)
    worker_poll_interval_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=1)
    # Contract §12, §13: the background cycles of the worker processes (one process at a time runs each).
    runs_poll_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often the export runs of every live activation are mirrored from Adobe."
    )
    reconcile_interval_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How often every live activation's dataflow is compared with its desired state.",
    )
    reconcile_full_sweep_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often a reconcile reads every live activation's flow (finding deleted flows); the cycles "
        "in between read only the flows changed since the one before.",
    )
    background_lease_seconds: float = Field(
        default=120.0,
        gt=1,
        description="How long a background cycle's lease lasts at least (longer when its interval is): a cycle "
        "slower than this loses its fence and is redone; a process that dies mid-cycle holds the cycle up this long.",
    )
    run_delay_threshold_seconds: float = Field(
        default=9000.0,
        gt=0,
        description="A run still processing this long after it started is reported (Adobe's 150 minutes).",
    )
    retry_max_attempts: int = Field(default=6, ge=1, le=50)
    retry_base_delay_seconds: float = Field(default=0.2, ge=0)
    retry_max_delay_seconds: float = Field(default=30.0, ge=0)
    retry_after_max_seconds: float = Field(default=60.0, ge=0)
    auto_compensate: bool = True
    idempotency_key_retention_hours: float = Field(default=24.0, ge=24.0)
    late_commit_window_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long after an unanswered create Adobe may still commit it (the duplicate sweeps wait).",
    )
    run_crash_limit: int = Field(
        default=5, ge=1, le=100, description="Runs ending in an unexpected exception before an activation fails."
    )
    compensation_retry_base_seconds: float = Field(
        default=60.0, gt=0, description="First delay of the automatic retries of a failed compensation."
    )
    compensation_retry_max_seconds: float = Field(
        default=21600.0, gt=0, description="Longest delay between automatic retries of a failed compensation."
    )

    # --- process lifecycle ---------------------------------------------------------------------
    shutdown_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After SIGTERM, keep serving this long with /health/ready at 503 before shutting down.",
    )

    # --- built-in emulator (no Adobe credentials configured) -------------------------------------
    emulator_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of the built-in emulator; 0 picks any free port."
    )
    emulator_persist: bool | None = Field(
        default=None,
        description=(
            "Keep the built-in emulator's resources in DATA_DIR/emulator-state.json across restarts; unset"
            " means on exactly when the embedded database is (DATABASE_URL unset), which lives there too."
        ),
    )

    # --- logging -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable lines on a terminal, JSON lines otherwise."
    )

    @cached_property
    def sandboxes(self) -> frozenset[str]:
        if not self.allowed_sandboxes:
            return frozenset({self.adobe_sandbox})
        return frozenset(s.strip() for s in self.allowed_sandboxes.split(",") if s.strip())

    @field_validator("sftp_allowed_hosts", "webhook_allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: str) -> str:
        HostAllowList.parse(value)  # a bad entry stops the process at startup, not a request later
        return value

    @cached_property
    def sftp_host_allow_list(self) -> HostAllowList:
        return HostAllowList.parse(self.sftp_allowed_hosts)

    @cached_property
    def webhook_host_allow_list(self) -> HostAllowList:
        return HostAllowList.parse(self.webhook_allowed_hosts)

    @property
    def development(self) -> bool:
        return self.dev_mode if self.dev_mode is not None else self.database_url is None

    @property
    def emulator_state_file(self) -> Path | None:
        persist = self.emulator_persist if self.emulator_persist is not None else self.database_url is None
        return self.data_dir / "emulator-state.json" if persist else None

    @property
    def uses_emulator(self) -> bool:
        """No Adobe credentials and no explicit endpoint: talk to the built-in emulator."""
        return self.adobe_client_id is None and self.flow_service_url is None
