"""In-memory resources, partitioned by kind and sandbox.

Concurrency: the emulator runs on one event loop and every method here is synchronous, so a handler that
checks and then mutates state without an ``await`` in between is atomic. Handlers must keep it that way.

A stored document is never changed in place: an update stores a new document (:meth:`ResourceStore.replace`)
built from a copy. Responses share values with stored documents rather than copying them (see
:func:`~flowservice_emulator.masking.mask_resource`), which is only correct while this holds.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

JsonObject = dict[str, Any]

KINDS: Final = ("connections", "sourceConnections", "targetConnections", "flows")


def new_etag() -> str:
    """An etag shaped like Adobe's (``"26013a41-0000-0200-0000-6361687a0000"``), literal quotes included."""
    return f'"{secrets.token_hex(4)}-0000-0200-0000-{int(time.time()) & 0xFFFFFFFF:08x}0000"'


@dataclass
class Entry:
    """A stored resource. ``seq`` is a unique, increasing creation number: the tie-breaker for paging."""

    seq: int
    doc: JsonObject


class ResourceStore:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, dict[str, Entry]]] = {kind: {} for kind in KINDS}
        self._seq = itertools.count(1)
        # Called after every change (the optional state file saves then, see :mod:`.persistence`).
        self.on_change: Callable[[], None] | None = None

    def add(self, kind: str, sandbox: str, doc: JsonObject) -> None:
        self._sandbox(kind, sandbox)[doc["id"]] = Entry(next(self._seq), doc)
        self._changed()

    def get(self, kind: str, sandbox: str, resource_id: str) -> JsonObject | None:
        entry = self._entries[kind].get(sandbox, {}).get(resource_id)
        return entry.doc if entry is not None else None

    def replace(self, kind: str, sandbox: str, doc: JsonObject) -> None:
        self._sandbox(kind, sandbox)[doc["id"]].doc = doc
        self._changed()

    def delete(self, kind: str, sandbox: str, resource_id: str) -> bool:
        deleted = self._entries[kind].get(sandbox, {}).pop(resource_id, None) is not None
        if deleted:
            self._changed()
        return deleted

    def entries(self, kind: str, sandbox: str) -> list[Entry]:
        return list(self._entries[kind].get(sandbox, {}).values())

    def docs(self, kind: str, sandbox: str) -> Iterator[JsonObject]:
        return (entry.doc for entry in self._entries[kind].get(sandbox, {}).values())

    def sandboxes(self, kind: str) -> list[str]:
        return [name for name, items in self._entries[kind].items() if items]

    def clear(self) -> None:
        for kind in KINDS:
            self._entries[kind].clear()
        self._changed()

    def snapshot(self) -> dict[str, dict[str, list[JsonObject]]]:
        """Every document by kind and sandbox, oldest first (the order :meth:`restore` re-creates)."""
        return {
            kind: {sandbox: [entry.doc for entry in items.values()] for sandbox, items in by_sandbox.items() if items}
            for kind, by_sandbox in self._entries.items()
        }

    def restore(self, snapshot: dict[str, dict[str, list[JsonObject]]]) -> None:
        """Load a :meth:`snapshot` into an empty store; creation order (paging) is kept."""
        on_change, self.on_change = self.on_change, None  # loading is not a change to save
        try:
            for kind in KINDS:
                for sandbox, docs in snapshot.get(kind, {}).items():
                    for doc in docs:
                        self.add(kind, sandbox, doc)
        finally:
            self.on_change = on_change

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _sandbox(self, kind: str, sandbox: str) -> dict[str, Entry]:
        return self._entries[kind].setdefault(sandbox, {})
