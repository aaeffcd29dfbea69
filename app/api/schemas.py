"""Request and response bodies of the public contract (camelCase, as Adobe's vocabulary)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.domain.sftp_hosts import parse_sftp_host

SEGMENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
XDM_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,15}$"
SANDBOX = r"^[a-z0-9][a-z0-9-]{0,63}$"
DEFAULT_FILENAME_TEMPLATE = "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%"
# Used with fullmatch: re's "$" also matches before a trailing newline ("acme-exports\n" passed).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: \d takes every script's
# AWS reserves these prefixes and suffixes for access points, S3 Express and S3 Tables buckets.
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# The discriminated unions of the request: pydantic puts the tag into error locations, but it is
# not part of the document, so problem paths drop it (app/api/problems.py).
TAGGED_UNIONS: dict[str, frozenset[str]] = {"storage": frozenset({"s3", "sftp"})}

DAILY_FULL_FREQUENCIES = {"ONCE", "DAILY", "WEEKLY", "MONTHLY"}
INCREMENTAL_FREQUENCIES = {"DAILY", "EVERY_3_HOURS", "EVERY_6_HOURS", "EVERY_8_HOURS", "EVERY_12_HOURS"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def field_error(pointer: str, message: str) -> PydanticCustomError:
    """An error raised by a model-level rule that is really about one field: ``pointer`` (relative to
    the model, e.g. ``schedule/frequency``) lets the problem name that field instead of the model."""
    return PydanticCustomError("invalid_field", message, {"pointer": pointer})


def _iso_date(value: Any) -> Any:
    # Lax pydantic would also take Unix timestamps and datetimes; the contract says "YYYY-MM-DD".
    if value is not None and not (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


def _secret_text(value: SecretStr | None) -> SecretStr | None:
    if value is not None and _CONTROL.search(value.get_secret_value()):
        raise ValueError("must not contain control characters")
    return value


def _safe_path(value: str) -> str:
    _no_control(value)
    if any(part == ".." for part in re.split(r"[/\\]", value)):
        raise ValueError("must not contain '..' segments")
    return value


PlainText = Annotated[str, Field(min_length=1, max_length=256)]


class S3Storage(Strict):
    type: Literal["s3"]
    accessId: str = Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9]+$", examples=["AKIAIOSFODNN7EXAMPLE"])
    secretKey: SecretStr = Field(min_length=1, max_length=256, json_schema_extra={"writeOnly": True})
    bucketName: str = Field(min_length=3, max_length=63, examples=["acme-aep-exports"])
    path: str = Field(default="", max_length=1024, examples=["campaign/spring"])

    @field_validator("bucketName")
    @classmethod
    def _bucket(cls, value: str) -> str:
        # AWS bucket naming rules: lowercase, digits, dots and hyphens; no "..", not an IP address.
        if not _BUCKET.fullmatch(value) or ".." in value or ".-" in value or "-." in value:
            raise ValueError("is not a valid S3 bucket name")
        if (
            re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value)
            or value.startswith(_BUCKET_RESERVED_PREFIXES)
            or value.endswith(_BUCKET_RESERVED_SUFFIXES)
        ):
            raise ValueError("is not a valid S3 bucket name")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _safe_path(value)

    @field_validator("secretKey")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        _secret_text(value)
        return value


class SftpStorage(Strict):
    type: Literal["sftp"]
    host: str = Field(min_length=1, max_length=253, examples=["sftp.example.com"])
    # strict: a JSON integer only (lax mode would take "22", 22.0 and true).
    port: int = Field(default=22, ge=1, le=65535, strict=True)
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr | None = Field(
        default=None, min_length=1, max_length=1024, json_schema_extra={"writeOnly": True}
    )
    sshKey: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=16384,
        description="Base64 of a private key without passphrase.",
        json_schema_extra={"writeOnly": True},
    )
    path: str = Field(min_length=1, max_length=1024, examples=["/exports/campaign"])

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return parse_sftp_host(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return _no_control(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _safe_path(value)

    @field_validator("sshKey")
    @classmethod
    def _ssh_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64-encoded") from None
        try:
            if b"OPENSSH PRIVATE KEY" in raw:
                load_ssh_private_key(raw, password=None)
            else:
                load_pem_private_key(raw, password=None)
        except TypeError:  # cryptography's way of saying "this key needs a password"
            raise ValueError("must be a private key without a passphrase") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("is not a parseable private key") from None
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        return _secret_text(value)

    @model_validator(mode="after")
    def _one_secret(self) -> SftpStorage:
        if self.password is None and self.sshKey is None:
            raise field_error("password", "exactly one of password and sshKey is required; neither was given")
        if self.password is not None and self.sshKey is not None:
            raise field_error("sshKey", "exactly one of password and sshKey is required; both were given")
        return self


Storage = Annotated[S3Storage | SftpStorage, Field(discriminator="type")]


class Schedule(Strict):
    frequency: Literal[
        "ONCE", "DAILY", "WEEKLY", "MONTHLY", "EVERY_3_HOURS", "EVERY_6_HOURS", "EVERY_8_HOURS", "EVERY_12_HOURS"
    ] = "ONCE"
    triggerType: Literal["AFTER_SEGMENT_EVAL", "SCHEDULED"] = "AFTER_SEGMENT_EVAL"
    startDate: date | None = Field(default=None, description="Default: today (UTC).")
    endDate: date | None = None
    startTime: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:mm, UTC.")

    @field_validator("startDate", "endDate", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return _iso_date(value)

    @model_validator(mode="after")
    def _combination(self) -> Schedule:
        if self.triggerType == "SCHEDULED" and self.startTime is None:
            raise field_error("startTime", "triggerType SCHEDULED requires startTime (HH:mm)")
        if self.triggerType == "AFTER_SEGMENT_EVAL" and self.startTime is not None:
            raise field_error("startTime", "startTime is only allowed with triggerType SCHEDULED")
        if self.endDate is not None and self.frequency == "ONCE":
            raise field_error("endDate", "endDate does not apply to frequency ONCE")
        if self.endDate is not None and self.startDate is not None and self.endDate < self.startDate:
            raise field_error("endDate", "endDate must not be before startDate")
        return self


class Segment(Strict):
    id: str = Field(pattern=SEGMENT_ID, examples=["72ddd79b-6b0a-4e97-a8d2-112ccd81bd02"])
    name: str | None = Field(default=None, max_length=256)
    description: str = Field(default="", max_length=4096)
    exportMode: Literal["DAILY_FULL_EXPORT", "FIRST_FULL_THEN_INCREMENTAL"] = "DAILY_FULL_EXPORT"
    schedule: Schedule = Field(default_factory=Schedule)
    filenameTemplate: str = Field(default=DEFAULT_FILENAME_TEMPLATE, min_length=1, max_length=255)

    @field_validator("name", "description")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _no_control(value) if value else value

    @field_validator("filenameTemplate")
    @classmethod
    def _template(cls, value: str) -> str:
        _no_control(value)
        if "%DESTINATION_NAME%" not in value or "%SEGMENT_ID%" not in value:
            raise ValueError("must contain the macros %DESTINATION_NAME% and %SEGMENT_ID%")
        if "/" in value or "\\" in value:
            raise ValueError("must not contain path separators")
        return value

    @model_validator(mode="after")
    def _mode(self) -> Segment:
        allowed = DAILY_FULL_FREQUENCIES if self.exportMode == "DAILY_FULL_EXPORT" else INCREMENTAL_FREQUENCIES
        if self.schedule.frequency not in allowed:
            raise field_error(
                "schedule/frequency",
                f"frequency {self.schedule.frequency} is not allowed with exportMode {self.exportMode}"
                f" (allowed: {', '.join(sorted(allowed))})",
            )
        if self.exportMode == "FIRST_FULL_THEN_INCREMENTAL" and self.schedule.triggerType == "AFTER_SEGMENT_EVAL":
            raise field_error(
                "schedule/triggerType", "exportMode FIRST_FULL_THEN_INCREMENTAL requires triggerType SCHEDULED"
            )
        return self

    def normalized(self, start_date: str | None = None) -> dict[str, Any]:
        """As sent to Adobe and shown back: defaults filled in, the start date defaulting to
        ``start_date`` (an audience's current one, on an update) or today (UTC)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.setdefault("name", self.id)
        data["schedule"].setdefault("startDate", start_date or datetime.now(UTC).date().isoformat())
        return data


def unique_segments(value: list[Segment]) -> list[Segment]:
    seen: set[str] = set()
    for index, segment in enumerate(value):
        if segment.id in seen:
            raise field_error(f"{index}/id", "segment ids must be unique; this one is repeated")
        seen.add(segment.id)
    return value


def unique_attributes(value: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, path in enumerate(value):
        if path in seen:
            raise field_error(str(index), "attributes must be unique; this one is repeated")
        seen.add(path)
    return value


Segments = Annotated[list[Segment], Field(min_length=1, max_length=250, description="At most 250 (Adobe's guardrail).")]
Attributes = Annotated[
    list[Annotated[str, Field(pattern=XDM_PATH, max_length=256)]],
    Field(max_length=50, description="At most 50 (Adobe's guardrail).", examples=[["person.name.lastName"]]),
]
# Fixed at creation: a different destination, storage or sandbox is a new activation.
IMMUTABLE_FIELDS = ("destination", "storage", "sandbox")


# Contract §13: what the reconciler does with a difference from the desired state.
DriftPolicy = Literal["report", "enforce"]


class ActivationRequest(Strict):
    """Activate segments and profile attributes to an email-marketing destination."""

    destination: str = Field(min_length=1, max_length=256, examples=["Adobe Campaign"])
    sandbox: str | None = Field(default=None, pattern=SANDBOX)
    name: str | None = Field(default=None, min_length=1, max_length=100, examples=["Spring newsletter"])
    storage: Storage
    segments: Segments
    attributes: Attributes = Field(default_factory=list)
    driftPolicy: DriftPolicy = Field(
        default="report",
        description="`report`: differences found in Adobe are recorded in `sync`; `enforce`: they are also repaired"
        " by an update operation (§13). Changeable later by PATCH.",
    )

    @field_validator("destination", "name")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _no_control(value) if value else value

    @field_validator("segments")
    @classmethod
    def _unique_segments(cls, value: list[Segment]) -> list[Segment]:
        return unique_segments(value)

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, value: list[str]) -> list[str]:
        return unique_attributes(value)


class ActivationPatch(Strict):
    """A change of a live activation's desired state (contract §10): the lists are the whole desired lists."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    segments: Segments | None = None
    attributes: Attributes | None = None
    driftPolicy: DriftPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _immutable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in IMMUTABLE_FIELDS:
                if name in data:
                    raise field_error(name, f"{name} is fixed at creation; a different {name} is a new activation")
            if "segments" in data and data["segments"] is None:
                raise field_error("segments", "an activation keeps at least one segment; send the whole list")
        return data

    @field_validator("name")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _no_control(value) if value else value

    @field_validator("segments")
    @classmethod
    def _unique_segments(cls, value: list[Segment] | None) -> list[Segment] | None:
        return unique_segments(value) if value is not None else value

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, value: list[str] | None) -> list[str] | None:
        return unique_attributes(value) if value is not None else value


# ------------------------------------------------------------------------------------ responses
class DestinationOut(BaseModel):
    name: str
    connectionSpecId: str | None = None
    flowSpecId: str | None = None


class StorageOut(BaseModel):
    type: Literal["s3", "sftp"]
    path: str
    bucketName: str | None = None
    accessId: str | None = Field(default=None, description="Masked.")
    host: str | None = None
    port: int | None = None
    username: str | None = None
    authMethod: Literal["password", "sshKey"] | None = None


class StepOut(BaseModel):
    name: str
    status: Literal["pending", "running", "succeeded", "failed", "compensating", "compensated", "skipped"]
    attempts: int
    resourceId: str | None
    startedAt: datetime | None
    finishedAt: datetime | None
    error: dict[str, Any] | None


class FlowOut(BaseModel):
    id: str
    etag: str | None


class RunRecords(BaseModel):
    received: int = Field(description="Profiles the run read.")
    exported: int = Field(description="Records written to the destination's files.")
    skipped: int = Field(description="Records left out (see `skippedReasons`).")
    failed: int


class RunReason(BaseModel):
    code: str | None
    message: str | None
    count: int


class RunAudience(BaseModel):
    id: str
    exported: int


class RunError(BaseModel):
    code: str | None
    message: str | None


class RunOut(BaseModel):
    """An export run of the activation's dataflow, mirrored from Adobe (contract §12)."""

    id: str = Field(description="Adobe's run id.")
    status: Literal["processing", "waiting", "succeeded", "failed"] = Field(
        description="Adobe's spellings normalised; a status the gateway does not know is `processing`."
    )
    trigger: Literal["scheduled", "adhoc"] = Field(description="`adhoc`: started by `POST /exports`.")
    startedAt: datetime | None
    completedAt: datetime | None
    records: RunRecords
    skippedReasons: list[RunReason]
    audiences: list[RunAudience] = Field(description="Records exported per audience.")
    files: int
    bytes: int
    errors: list[RunError]


class RunList(BaseModel):
    items: list[RunOut]
    nextCursor: str | None


class SyncOut(BaseModel):
    status: Literal["in_sync", "applying", "failed", "drifted", "unknown"] = Field(
        description=(
            "`in_sync`: the flow was confirmed at the current revision; `applying`: a newer revision is on its "
            "way; `failed`: the last operation that changed the flow failed for good (the flow keeps what it "
            "had; see `error`); `drifted`: the flow differs from the desired state; `unknown`: no flow to compare."
        )
    )
    checkedAt: datetime | None
    differences: list[dict[str, Any]]
    error: dict[str, Any] | None


class ActivationOut(BaseModel):
    id: str
    status: Literal["pending", "running", "succeeded", "failed", "rolling_back", "rolled_back", "rollback_failed"]
    destination: DestinationOut
    sandbox: str
    name: str | None
    storage: StorageOut
    segments: list[dict[str, Any]]
    attributes: list[str]
    steps: list[StepOut]
    flow: FlowOut | None
    error: dict[str, Any] | None = Field(description="RFC 9457 problem naming the step and the upstream error.")
    createdAt: datetime
    updatedAt: datetime
    completedAt: datetime | None
    revision: int = Field(description="1 at creation, +1 for every accepted change of the desired state.")
    appliedRevision: int | None = Field(description="The revision last confirmed upstream by reading the flow back.")
    state: Literal["enabled", "disabled"] | None = Field(description="The flow's state as last confirmed.")
    sync: SyncOut
    driftPolicy: DriftPolicy
    lastRun: RunOut | None = Field(description="The newest export run mirrored from Adobe (§12), or null.")


class PlannedCall(BaseModel):
    method: str
    path: str
    body: Any = None


class DryRunOut(BaseModel):
    activation: ActivationOut
    plan: list[PlannedCall] = Field(description="The upstream calls that would write, in order; secrets masked.")


class OperationOut(BaseModel):
    id: str = Field(description="The create operation's id is the activation's.")
    kind: Literal["create", "update", "pause", "resume", "export", "retire", "rollback"]
    status: Literal["pending", "running", "succeeded", "failed"]
    revision: int
    workflowVersion: int = Field(description="The version of the workflow definition the operation runs with.")
    steps: list[StepOut]
    error: dict[str, Any] | None
    createdAt: datetime
    startedAt: datetime | None
    completedAt: datetime | None
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="What the operation was queued with: an export's `segments`; a drift repair's `reason`.",
    )
    result: dict[str, Any] | None = Field(
        default=None,
        description="What a succeeded operation produced: an export's `runs` (`[{id, segments, joined}]`; "
        "`joined`: they were already being exported by that run).",
    )


class ExportRequest(BaseModel):
    """Export now (contract §12): these audiences of the activation, or all of them."""

    model_config = ConfigDict(extra="forbid")

    segments: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=250, description="Audience ids; default: all of the activation's."
    )

    @field_validator("segments")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("segment ids must be unique")
        return value


class OperationList(BaseModel):
    items: list[OperationOut]
    nextCursor: str | None


class ActivationList(BaseModel):
    items: list[ActivationOut]
    nextCursor: str | None


class EventOut(BaseModel):
    id: int
    occurredAt: datetime
    type: Literal[
        "status",
        "step",
        "upstream",
        "retry",
        "duplicate",
        "crash",
        "compensation_retries_stopped",
        "operation",
        "workflow_unavailable",
        "run",
        "run_delayed",
        "drift",
        "drift_resolved",
    ] = Field(
        description=(
            "`status`: a status change; `step`: a step's outcome; `upstream`: one call to Adobe; `retry`: an attempt "
            "that failed with a retryable error; `duplicate`: a copy of a created resource that a late commit left "
            "upstream, deleted; `crash`: a run that ended in an unexpected error; `compensation_retries_stopped`: "
            "an operator stopped the automatic retries of a failed compensation; `operation`: an operation was queued, "
            "started or ended (`data.operationId`, `kind`, `status`); `workflow_unavailable`: an operation waits for "
            "a process whose build has its workflow version; `run`: an export run finished (`data`: the run as "
            "`GET /runs` shows it); `run_delayed`: a run still processing past `RUN_DELAY_THRESHOLD_SECONDS`; "
            "`drift`: a reconcile found the flow different from the desired state (`data.differences`); "
            "`drift_resolved`: it found it equal again."
        )
    )
    step: str | None
    data: dict[str, Any]


class EventList(BaseModel):
    items: list[EventOut]
