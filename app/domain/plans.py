"""The dry run of a create (contract §10): the upstream calls that would write, in the order the
saga makes them, with their bodies built by the saga's own steps (steps.py), so that the plan cannot
drift from what a real run sends. Pure: nothing here calls Adobe, reads a secret or writes anything.

Ids that do not exist yet are placeholders: ``{create_flow}`` is the id the create_flow step would
get, ``{activation_id}`` the activation's. Secrets are ``***``, the mask Adobe answers with."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NoReturn, cast

from .catalog import DestinationCatalog, ResolvedDestination
from .model import Activation, Lease
from .ports import FlowService, ResourceKind
from .steps import (
    SAGA_STEPS,
    ActivateSegments,
    CreateFlow,
    CreateResourceStep,
    ResolveDestination,
    SagaStep,
    StepContext,
    VerifyFlow,
    missing_selector_operations,
)
from .upstream import LeasedFlowService

MASK = "***"
ACTIVATION_ID = "{activation_id}"
# Every credential a stored activation may hold (contract §1's storage secrets).
SECRET_FIELDS = ("secretKey", "password", "sshKey")
# Steps whose upstream calls only read: they have no place in a plan of writes.
_READ_ONLY = (ResolveDestination, VerifyFlow)


def placeholder(step: str) -> str:
    """What the plan shows for the id of the resource ``step`` would create."""
    return "{" + step + "}"


class DryRunViolation(Exception):
    """Planning tried to do something only a real run does (a bug: it would have left the process)."""


class MaskingCipher:
    """Decrypts to masks: the target base connection's body shows where each secret goes, and the
    plan is built without the secrets ever being at hand."""

    def encrypt(self, secrets: dict[str, Any]) -> str:
        raise DryRunViolation("a dry run stores no credentials")

    def decrypt(self, token: str) -> dict[str, Any]:
        return dict.fromkeys(SECRET_FIELDS, MASK)

    def fingerprint(self, canonical: bytes) -> str:
        raise DryRunViolation("a dry run keeps no idempotency key")

    def fingerprint_matches(self, canonical: bytes, stored: str) -> bool:
        raise DryRunViolation("a dry run keeps no idempotency key")


class _Offline:
    """The Flow Service of a plan: the steps only build bodies, and a call would stop here, before
    anything is sent."""

    def __getattr__(self, name: str) -> NoReturn:
        raise DryRunViolation(f"a dry run calls nothing upstream ({name})")


def plan_create(
    activation: Activation, destination: ResolvedDestination, steps: Sequence[SagaStep] = SAGA_STEPS
) -> list[dict[str, Any]]:
    """The writes the create saga would send for ``activation`` (as accepted: pending, no resource
    yet) resolved to ``destination``: ``{"method", "path", "body"}`` each, in the steps' order."""
    planning = dataclasses.replace(
        activation,
        destination=destination.to_json(),
        credentials_ciphertext=MASK,  # what MaskingCipher "decrypts"
        # Copies: the plan fills in placeholder resource ids, the caller's activation keeps none.
        steps={name: dataclasses.replace(state) for name, state in activation.steps.items()},
    )
    ctx = _context(planning, steps)
    return [_without_id(call, str(activation.id)) for step in steps for call in _calls(step, ctx)]


def _context(activation: Activation, steps: Sequence[SagaStep]) -> StepContext:
    # A lease already expired: even a client that was reached would refuse to send.
    lease = Lease(activation_id=activation.id, epoch=0, owner="dry-run", valid_until=float("-inf"))
    upstream = LeasedFlowService(cast(FlowService, _Offline()), lease)
    return StepContext(
        activation=activation,
        upstream=upstream,
        catalog=DestinationCatalog(ttl_seconds=0),
        cipher=MaskingCipher(),
        attempt=1,  # a first attempt builds its request without looking upstream first
        steps=steps,
    )


def _calls(step: SagaStep, ctx: StepContext) -> list[dict[str, Any]]:
    if isinstance(step, CreateResourceStep):
        body = step.body(ctx, step.resource_name(ctx))
        # What the steps after this one refer to (their bodies read it as this step's resource id).
        ctx.activation.steps[step.name].resource_id = placeholder(step.name)
        return [{"method": "POST", "path": f"/{step.kind.value}", "body": body}]
    if isinstance(step, ActivateSegments):
        # On a flow just created, with no selector yet: what the step's first PATCH adds.
        operations = missing_selector_operations(ctx.activation, None)
        path = f"/{ResourceKind.FLOWS.value}/{ctx.resource(CreateFlow)}"
        return [{"method": "PATCH", "path": path, "body": operations}] if operations else []
    if isinstance(step, _READ_ONLY):
        return []
    # A step the planner does not know may write: a plan without it would be wrong, so say so.
    raise DryRunViolation(f"step {step.name} cannot be planned: its writes are unknown to the dry run")


def _without_id(value: Any, activation_id: str) -> Any:
    """``value`` with the provisional activation id (in the resource names) as its placeholder."""
    if isinstance(value, str):
        return value.replace(activation_id, ACTIVATION_ID)
    if isinstance(value, list):
        return [_without_id(item, activation_id) for item in value]
    if isinstance(value, dict):
        return {key: _without_id(item, activation_id) for key, item in value.items()}
    return value
