"""The steps of an update (contract §10): converge the flow on the activation's desired audiences,
attributes and name as Adobe has them at that moment, then read it back and require equality.

The desired state is declarative, so every attempt starts from a fresh read and recomputes one
JSON Patch (flow_diff.plan_update) instead of replaying operations: a retry after an unanswered
PATCH, a 412 because someone edited the flow, or an update that starts after several revisions
all converge the same way, and an update that finds the flow already equal sends nothing. The
read-back first waits out the late-commit window of any PATCH whose answer never came, so a late
commit cannot change the flow after it was confirmed; what such a commit left (a duplicate, say)
is converged away before confirming.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from .errors import StepFailed
from .flow_diff import DesiredFlow, differences, plan_update
from .model import Activation
from .ports import ResourceKind, UpstreamStatusError
from .steps import CreateFlow, SagaStep, StepContext, StepResult, named_resource

# Each 412 means the flow changed between our read and our PATCH: read again and recompute.
MAX_ETAG_REFRESHES = 5


def desired_flow(activation: Activation) -> DesiredFlow:
    """What the flow should hold for this activation: its lists, and the name it was created with."""
    return desired_flow_of(activation.id, activation.name, activation.segments, activation.attributes)


def desired_flow_of(
    activation_id: uuid.UUID, name: str | None, segments: Sequence[dict[str, Any]], attributes: Sequence[str]
) -> DesiredFlow:
    return DesiredFlow(
        segments=tuple(segments),
        attributes=tuple(attributes),
        name=named_resource(name, activation_id, CreateFlow.label),
    )


def _flow_id(ctx: StepContext) -> str:
    if ctx.activation.flow_id is None:
        raise StepFailed("No dataflow", "the activation has no dataflow to change", type_="activation-not-live")
    return ctx.activation.flow_id


async def converge(ctx: StepContext) -> dict[str, Any]:
    """Read the flow and, when it differs from the desired state, send the one patch that makes it
    equal under the etag of that read; on 412 start over. Returns the activation values to record."""
    flow_id = _flow_id(ctx)
    desired = desired_flow(ctx.activation)
    for _ in range(MAX_ETAG_REFRESHES):
        flow = await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox)
        operations = plan_update(flow, desired)
        if not operations:
            return {"flow_etag": flow.get("etag")}
        try:
            etag = await ctx.upstream.patch(
                ResourceKind.FLOWS, flow_id, operations, etag=str(flow["etag"]), sandbox=ctx.sandbox
            )
        except UpstreamStatusError as exc:
            if exc.status != 412:
                raise
            continue
        return {"flow_etag": etag} if etag else {}
    raise StepFailed(
        "Flow keeps changing",
        f"the flow's etag changed on each of {MAX_ETAG_REFRESHES} attempts to apply the desired state",
        type_="flow-keeps-changing",
    )


class ApplyDesiredState(SagaStep):
    name = "apply_desired_state"

    async def forward(self, ctx: StepContext) -> StepResult:
        return StepResult(activation_values=await converge(ctx))


class VerifyDesiredState(SagaStep):
    """Read the flow back and require it to equal the desired state (Adobe warns that selectors
    sometimes do not appear after a successful answer): what differs is converged again, a bounded
    number of times, and only an equal read confirms the revision."""

    name = "verify_desired_state"
    depends_on = (ApplyDesiredState.name,)

    async def forward(self, ctx: StepContext) -> StepResult:
        await self._wait_until_settled(ctx)
        desired = desired_flow(ctx.activation)
        flow_id = _flow_id(ctx)
        found: list[dict[str, Any]] = []
        for round_ in range(MAX_ETAG_REFRESHES):
            if round_:
                await converge(ctx)
            flow = await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox)
            found = differences(flow, desired)
            if not found:
                return StepResult(activation_values={"flow_etag": flow.get("etag"), "state": flow.get("state")})
        raise StepFailed(
            "Flow verification failed",
            f"the flow still differs from the desired state in {len(found)} way(s): {found[:5]}",
            type_="verification-failed",
        )

    async def _wait_until_settled(self, ctx: StepContext) -> None:
        # Our own earlier attempts count too: one may have patched before it was cut off.
        states = [ctx.operation_steps[ApplyDesiredState.name]]
        if ctx.outcome_unknown:
            states.append(ctx.operation_steps[self.name])
        await ctx.wait_until_settled_since(*states)


UPDATE_STEPS: tuple[SagaStep, ...] = (ApplyDesiredState(), VerifyDesiredState())
