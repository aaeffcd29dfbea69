"""Secrets never leave the emulator: every resource is masked on its way out (GET, lists, admin state), and
so is every body and query of the request history (admin ``/state`` and ``/requests``)."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

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


# Names that are secret in the request history only: OAuth fields of the IMS token exchange (the form's
# client_secret is dropped altogether, see history.py) and whatever a caller puts in a JSON body.
_HISTORY_SECRET: Final = frozenset({"client_secret", "access_token", "refresh_token"})

# A list filter (``property=auth.params.secretKey==x``), split as filters.py splits it.
_PROPERTY_FILTER: Final = re.compile(r"^(?P<path>[A-Za-z0-9_.\[\]]+?)(?P<op>==|!=|>=|<=|>|<)(?P<value>.*)$")


def history_secret_names(catalog: Catalog) -> frozenset[str]:
    """Every name whose value the request history masks, wherever it appears in a body or query."""
    return catalog.all_secret_params() | _ALWAYS_SECRET | _HISTORY_SECRET


def mask_document(value: Any, secret: frozenset[str]) -> Any:
    """A request or response body as the history shows it: a copy with the value of every key in ``secret``
    masked at any depth, and the ``value`` of a JSON Patch operation on such a path (``/auth/params/password``).

    Broader than :func:`mask_resource`, on purpose: a request body is not a stored resource, its auth spec
    may be one the catalog does not know, and a PATCH carries secrets outside any ``auth`` object."""
    if isinstance(value, list):
        return [mask_document(item, secret) for item in value]
    if not isinstance(value, dict):
        return value
    masked = {
        key: (MASK if key in secret and item is not None else mask_document(item, secret))
        for key, item in value.items()
    }
    if _patches_secret(masked, secret):
        masked["value"] = MASK
    return masked


def _patches_secret(operation: JsonObject, secret: frozenset[str]) -> bool:
    """A JSON Patch operation that sets a secret field: ``{"op": "replace", "path": "/auth/params/password"}``."""
    path = operation.get("path")
    if not isinstance(path, str) or "op" not in operation or operation.get("value") is None:
        return False
    return path.rstrip("/").rsplit("/", 1)[-1] in secret


def mask_query(query: str, secret: frozenset[str]) -> str:
    """``query`` with secret parameters and filters on secret fields masked; unchanged (byte for byte) when
    it holds none, so that the history shows what was sent."""
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(name, _mask_query_value(name, value, secret)) for name, value in pairs]
    return query if masked == pairs else urlencode(masked)


def _mask_query_value(name: str, value: str, secret: frozenset[str]) -> str:
    if name in secret:
        return MASK
    if name == "property":
        match = _PROPERTY_FILTER.match(value.strip())
        if match is not None and match["path"].rsplit(".", 1)[-1].removesuffix("[]") in secret:
            return f"{match['path']}{match['op']}{MASK}"
    return value
