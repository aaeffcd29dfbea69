"""Each lifecycle rule has one home in app/domain/lifecycle.py; where SQL must carry it (the claim's
index predicate, the database's credential-erasure trigger), the text is held to that home here."""

from __future__ import annotations

import importlib
import re

from app.adapters.db.tables import CLAIMABLE
from app.domain.lifecycle import ACTIVE_STATUSES, CREDENTIAL_STATUSES

migration = importlib.import_module("migrations.versions.0003_operations_and_workflow_versions")


def quoted(statuses: frozenset[object]) -> set[str]:
    return {str(status) for status in statuses}


def test_the_claim_predicate_starts_with_the_active_statuses() -> None:
    match = re.match(r"status IN \(([^)]*)\)", CLAIMABLE)
    assert match is not None
    assert {s.strip().strip("'") for s in match.group(1).split(",")} == quoted(ACTIVE_STATUSES)


def test_the_erasure_trigger_keeps_credentials_only_in_the_credential_statuses() -> None:
    for sql in (migration.ERASE_CREDENTIALS_FUNCTION, migration.ERASE_CREDENTIALS_TRIGGER):
        match = re.search(r"status NOT IN \(([^)]*)\)", sql)
        assert match is not None
        assert {s.strip().strip("'") for s in match.group(1).split(",")} == quoted(CREDENTIAL_STATUSES)
