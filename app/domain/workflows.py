"""Workflow definitions: each kind of operation is a named, versioned list of steps.

An activation's create operation (and its compensation: rollback, retire) runs with the version
of the create workflow it was accepted with (``activations.workflow_version``), and every other
operation with the version it was queued with (``activation_operations.workflow_version``), never
with whatever the code holds today. So a change to a workflow is a new version beside the old
one: old versions stay here until no operation in any database uses them (a readiness note and a
metric count those a build lacks; see docs/how-it-works.md). A process claims only what it has
the definition for, so an operation of a version this build lacks waits for a process that has
it: it never crash-loops and never runs with the wrong steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .exports import EXPORT_STEPS
from .flow_state import FLOW_STATE_STEPS
from .flow_update import UPDATE_STEPS
from .steps import SAGA_STEPS, SagaStep


class OperationKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PAUSE = "pause"
    RESUME = "resume"
    EXPORT = "export"
    RETIRE = "retire"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Workflow:
    kind: OperationKind
    version: int
    steps: tuple[SagaStep, ...]

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    @property
    def first_steps(self) -> tuple[str, ...]:
        """What a new run starts with: the steps that depend on nothing."""
        return tuple(step.name for step in self.steps if not step.depends_on)

    def step(self, name: str) -> SagaStep:
        return next(step for step in self.steps if step.name == name)


class Workflows:
    """The definitions this build has, by kind and version; the newest version of a kind is the
    one new operations get."""

    def __init__(self, definitions: Iterable[Workflow]) -> None:
        self._by_key: dict[tuple[OperationKind, int], Workflow] = {}
        for definition in definitions:
            key = (definition.kind, definition.version)
            if key in self._by_key:
                raise ValueError(f"workflow {definition.kind} v{definition.version} is defined twice")
            names = definition.step_names
            if len(set(names)) != len(names):
                raise ValueError(f"workflow {definition.kind} v{definition.version} repeats a step name")
            self._by_key[key] = definition

    def get(self, kind: OperationKind, version: int) -> Workflow | None:
        return self._by_key.get((kind, version))

    def current(self, kind: OperationKind) -> Workflow:
        versions = self.versions(kind)
        if not versions:
            raise LookupError(f"no workflow defined for {kind}")
        definition = self._by_key[(kind, versions[-1])]
        return definition

    def versions(self, kind: OperationKind) -> tuple[int, ...]:
        return tuple(sorted(version for k, version in self._by_key if k == kind))

    def operation_keys(self) -> tuple[str, ...]:
        """ "kind:version" of every definition other than create's: what this build can run."""
        return tuple(f"{k.value}:{v}" for k, v in sorted(self._by_key) if k != OperationKind.CREATE)


# Rollback and retire are the create workflow's compensation (contract §4, §11): they run with the
# create version of the activation, so they need no definitions of their own.
WORKFLOWS = Workflows(
    [
        Workflow(OperationKind.CREATE, 1, SAGA_STEPS),
        Workflow(OperationKind.PAUSE, 1, FLOW_STATE_STEPS["disabled"]),
        Workflow(OperationKind.RESUME, 1, FLOW_STATE_STEPS["enabled"]),
        Workflow(OperationKind.UPDATE, 1, UPDATE_STEPS),
        Workflow(OperationKind.EXPORT, 1, EXPORT_STEPS),
    ]
)
