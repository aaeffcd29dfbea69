"""The steps of pause and resume (contract §11): Adobe's flow action disable or enable, then the
flow read back. The action takes no If-Match and is idempotent upstream, so a retry may simply
send it again; but an action whose answer never came may still land late, after a later
operation changed the state back, so the read-back first waits out the late-commit window of any
such attempt (as the duplicate sweeps do for creates, see duplicates.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from .duplicates import settled_at
from .errors import StepFailed
from .ports import ResourceKind
from .steps import SagaStep, StepContext, StepResult

# Adobe's `op` for the state each action reaches.
_ACTIONS = {"enabled": "enable", "disabled": "disable"}


def _flow_id(ctx: StepContext) -> str:
    if ctx.activation.flow_id is None:
        raise StepFailed("No dataflow", "the activation has no dataflow to change", type_="activation-not-live")
    return ctx.activation.flow_id


class ChangeFlowState(SagaStep):
    name = "change_flow_state"

    def __init__(self, target: str) -> None:
        self.target = target

    async def forward(self, ctx: StepContext) -> StepResult:
        flow_id = _flow_id(ctx)
        if ctx.outcome_unknown:  # an earlier attempt may have changed it already
            flow = await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox)
            if flow.get("state") == self.target:
                return StepResult(activation_values={"flow_etag": flow.get("etag")})
        etag = await ctx.upstream.flow_action(flow_id, _ACTIONS[self.target], sandbox=ctx.sandbox)
        return StepResult(activation_values={"flow_etag": etag} if etag else {})


class VerifyFlowState(SagaStep):
    name = "verify_flow_state"
    depends_on = (ChangeFlowState.name,)

    def __init__(self, target: str) -> None:
        self.target = target

    async def forward(self, ctx: StepContext) -> StepResult:
        change = ctx.operation_steps.get(ChangeFlowState.name)
        deadline = settled_at([change], ctx.late_commit_window) if change is not None else None
        if deadline is not None:
            await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))
        flow = await ctx.upstream.get(ResourceKind.FLOWS, _flow_id(ctx), sandbox=ctx.sandbox)
        state = flow.get("state")
        if state != self.target:
            raise StepFailed(
                "Flow state not confirmed",
                f"Adobe shows the dataflow {state!r} after the {_ACTIONS[self.target]} action, not {self.target!r}",
                type_="verification-failed",
            )
        return StepResult(activation_values={"state": self.target, "flow_etag": flow.get("etag")})


FLOW_STATE_STEPS: dict[str, tuple[SagaStep, ...]] = {
    target: (ChangeFlowState(target), VerifyFlowState(target)) for target in _ACTIONS
}
