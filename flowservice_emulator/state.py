"""Everything the emulator holds, in one object owned by the app."""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import TokenRegistry
from .catalog import Catalog
from .clock import EmulatorClock
from .config import EmulatorConfig
from .faults import FaultPlan
from .history import RequestHistory
from .latecommits import LateCommits
from .masking import history_secret_names
from .persistence import StateFile
from .resources import ResourceService
from .runs import RunBook
from .store import ResourceStore


@dataclass
class EmulatorState:
    config: EmulatorConfig
    catalog: Catalog = field(default_factory=Catalog)
    store: ResourceStore = field(default_factory=ResourceStore)
    tokens: TokenRegistry = field(default_factory=TokenRegistry)
    plan: FaultPlan = field(default_factory=FaultPlan)
    late_commits: LateCommits = field(default_factory=LateCommits)
    clock: EmulatorClock = field(default_factory=EmulatorClock)
    runs: RunBook = field(init=False)
    history: RequestHistory = field(init=False)
    service: ResourceService = field(init=False)
    state_file: StateFile | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.history = RequestHistory(self.config.history_limit, lambda: history_secret_names(self.catalog))
        self.service = ResourceService(self.catalog, self.store)
        self.runs = RunBook(self.clock, self.store)
        self.service.last_run_details = self._last_run_details
        if self.config.state_file is not None:
            self.state_file = StateFile(self.config.state_file, self.store)
            self.state_file.load()
            self.store.on_change = self.state_file.changed

    def _last_run_details(self, flow: dict[str, object], sandbox: str) -> dict[str, object] | None:
        self.runs.catch_up_flow(flow, sandbox)
        return self.runs.last_run_details(str(flow["id"]))

    def close(self) -> None:
        """The server stopped: write anything not yet saved."""
        if self.state_file is not None:
            self.state_file.close()

    def reset(self) -> None:
        # First: a late commit must not land in the emptied store. Must run on the serving event loop.
        self.late_commits.reset()
        self.store.clear()
        self.tokens.clear()
        self.plan.clear()
        self.history.clear()
        self.runs.reset()
        self.clock.reset()
