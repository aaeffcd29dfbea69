"""Secrets never leave the emulator: every resource is masked on its way out (GET, lists, admin state)."""

from __future__ import annotations

from typing import Any, Final

from .catalog import Catalog

JsonObject = dict[str, Any]

MASK: Final = "***"

# Params that are secret whatever the auth spec says: a safety net for auth specs that were patched to a
# name the catalog does not know.
_ALWAYS_SECRET: Final = frozenset(
    {
        "password",
        "secretKey",
        "sshKey",
        "s3SecretKey",
        "connectionString",
        "secretAccessKey",
        "sasKey",
        "servicePrincipalKey",
        "accessToken",
        "token",
        "apiKey",
        "clientSecret",
        "securityToken",
    }
)


def mask_resource(doc: JsonObject, catalog: Catalog) -> JsonObject:
    """``doc`` with its secret auth params replaced by ``***``, for a response.

    A new top-level object (and a new ``auth``), but every other value is shared with ``doc``: serialize it,
    never mutate it. That is safe because stored documents are replaced, never changed in place (see
    :mod:`~flowservice_emulator.store`); a deep copy of every resource read was a good part of a GET's cost.
    """
    masked = dict(doc)
    auth = masked.get("auth")
    if not isinstance(auth, dict) or not isinstance(auth.get("params"), dict):
        return masked
    spec_id = str((masked.get("connectionSpec") or {}).get("id", ""))
    secret = catalog.secret_params(spec_id, str(auth.get("specName", ""))) | _ALWAYS_SECRET
    masked["auth"] = {
        **auth,
        "params": {
            name: (MASK if name in secret and value is not None else value) for name, value in auth["params"].items()
        },
    }
    return masked
