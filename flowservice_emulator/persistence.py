"""An optional JSON file that keeps the emulator's resources across restarts.

Only the resources are kept (connections, source and target connections, flows): tokens, faults,
latency rules and the request history belong to one run. The file is written after every change
(coalesced per event-loop turn: a request that changes several resources writes once) and on stop,
atomically (a temporary file renamed over the old one), readable by its owner only: stored auth
params include the secrets callers sent.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from .store import KINDS, ResourceStore

FORMAT_VERSION = 1


class StateFileError(Exception):
    """The state file exists but cannot be read back."""


class StateFile:
    def __init__(self, path: Path, store: ResourceStore) -> None:
        self.path = path
        self._store = store
        self._pending: asyncio.Handle | None = None
        self.saves = 0

    def load(self) -> int:
        """Fill the (empty) store from the file, if there is one; the number of resources loaded."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise StateFileError(f"cannot read the emulator state file {self.path}: {exc}") from None
        resources = document.get("resources") if isinstance(document, dict) else None
        if not isinstance(resources, dict) or document.get("version") != FORMAT_VERSION:
            raise StateFileError(f"{self.path} is not an emulator state file (version {FORMAT_VERSION})")
        snapshot = {kind: resources.get(kind) or {} for kind in KINDS}
        try:
            self._store.restore(snapshot)
        except (AttributeError, KeyError, TypeError) as exc:  # a hand-edited file: say where, not a traceback
            raise StateFileError(f"{self.path} holds a malformed resource ({type(exc).__name__}: {exc})") from None
        return sum(len(docs) for by_sandbox in snapshot.values() for docs in by_sandbox.values())

    def changed(self) -> None:
        """The store's ``on_change``: save once the current handler is done with the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the server's event loop (a test, a script): save now
            self.save()
            return
        if self._pending is None:
            self._pending = loop.call_soon(self._save_pending)

    def _save_pending(self) -> None:
        self._pending = None
        self.save()

    def save(self) -> None:
        document: dict[str, Any] = {"version": FORMAT_VERSION, "resources": self._store.snapshot()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(document, out, separators=(",", ":"))
        os.replace(temporary, self.path)
        self.saves += 1

    def close(self) -> None:
        """On stop: write what a pending save would have written (its event loop may be gone)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            self.save()
