"""Flow Service's stateful resources: create, read, list, patch, delete, and the flow actions.

Every public method is synchronous and runs on the event loop, so each call is atomic with respect to
other requests (see :mod:`~flowservice_emulator.store`).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import jsonpatch

from . import ui_edits, validation
from .auth import Caller
from .catalog import PROFILE_STORE, PROFILE_TYPE_INFO, Catalog
from .errors import ApiError, FlowCode, flow_error, not_found
from .filters import Page, next_href, paginate, parse_query
from .jsoncopy import json_copy
from .masking import mask_resource
from .store import KINDS, ResourceStore, new_etag

JsonObject = dict[str, Any]

RESOURCE_SORT_FIELDS: Final = frozenset({"createdAt", "updatedAt", "name", "id", "state"})
SPEC_SORT_FIELDS: Final = frozenset({"name", "id"})
# "Most recently created or updated first" (Dest spec list operations).
DEFAULT_RESOURCE_ORDER: Final = "-updatedAt"

# Fields a client may send on create, per kind; anything else in the body is ignored.
_WRITABLE: Final[dict[str, tuple[str, ...]]] = {
    "connections": ("name", "description", "connectionSpec", "auth"),
    "sourceConnections": ("name", "description", "baseConnectionId", "connectionSpec", "data", "params"),
    "targetConnections": ("name", "description", "baseConnectionId", "connectionSpec", "data", "params"),
    "flows": (
        "name",
        "description",
        "flowSpec",
        "sourceConnectionIds",
        "targetConnectionIds",
        "transformations",
        "scheduleParams",
    ),
}
_SERVER_MANAGED: Final = frozenset(
    {
        "id",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
        "createdClient",
        "updatedClient",
        "sandboxId",
        "sandboxName",
        "imsOrgId",
        "etag",
        "version",
        "inheritedAttributes",
        "typeInfo",
        "runs",
        "lastOperation",
        "state",
        "flowSpec",
    }
)
_PATCH_OPS: Final = frozenset({"add", "replace", "remove"})


class ResourceService:
    def __init__(self, catalog: Catalog, store: ResourceStore) -> None:
        self.catalog = catalog
        self.store = store
        # A flow's `lastRunDetails` (the run book's, see :mod:`.runs`), given the flow and its sandbox.
        self.last_run_details: Callable[[JsonObject, str], JsonObject | None] | None = None

    # --- catalog -------------------------------------------------------------------------------------------

    def list_specs(self, which: str, params: Sequence[tuple[str, str]]) -> JsonObject:
        specs = self.catalog.connection_specs() if which == "connectionSpecs" else self.catalog.flow_specs()
        query = parse_query(params, sortable=SPEC_SORT_FIELDS, default_order=None)
        page = paginate(list(enumerate(specs)), query, sortable=SPEC_SORT_FIELDS)
        return _list_body(which, page)

    def get_spec(self, which: str, spec_id: str) -> JsonObject:
        spec = self.catalog.connection_spec(spec_id) if which == "connectionSpecs" else self.catalog.flow_spec(spec_id)
        if spec is None:
            raise not_found(which, spec_id)
        return {"items": [spec]}

    # --- resources -----------------------------------------------------------------------------------------

    def create(self, kind: str, caller: Caller, body: JsonObject) -> JsonObject:
        if kind == "flows" and "state" in body:
            raise flow_error(FlowCode.STATE_NOT_ALLOWED, "The field 'state' is not allowed in a create flow request.")
        fields = {name: json_copy(body[name]) for name in _WRITABLE[kind] if name in body}
        self._validate(kind, caller, fields)
        now = _now_ms()
        etag = new_etag()
        doc: JsonObject = {
            "id": str(uuid.uuid4()),
            "createdAt": now,
            "updatedAt": now,
            "createdBy": caller.user,
            "updatedBy": caller.user,
            "createdClient": caller.client_id,
            "updatedClient": caller.client_id,
            "sandboxId": caller.sandbox_id,
            "sandboxName": caller.sandbox,
            "imsOrgId": caller.org_id,
            **fields,
            "state": "enabled",
        }
        if kind == "connections" and "encryptionSpecs" in body:
            doc["encryption"] = json_copy(body["encryptionSpecs"])  # GET shows it as "encryption" (§4.3)
        self._derive(kind, caller, doc, previous=None)
        doc |= {"version": etag, "etag": etag}
        if kind == "flows":
            doc["runs"] = f"/runs?property=flowId=={doc['id']}"
            doc["lastOperation"] = _operation("create", now, [])
        self.store.add(kind, caller.sandbox, doc)
        return doc

    def get(self, kind: str, caller: Caller, resource_id: str) -> JsonObject:
        return {"items": [self._present(self._require(kind, caller, resource_id), caller.sandbox)]}

    def list_resources(self, kind: str, caller: Caller, params: Sequence[tuple[str, str]]) -> JsonObject:
        query = parse_query(params, sortable=RESOURCE_SORT_FIELDS, default_order=DEFAULT_RESOURCE_ORDER)
        entries = [(entry.seq, entry.doc) for entry in self.store.entries(kind, caller.sandbox)]
        page = paginate(
            entries, query, sortable=RESOURCE_SORT_FIELDS, project=lambda doc: self._present(doc, caller.sandbox)
        )
        return _list_body(kind, page)

    def patch(self, kind: str, caller: Caller, resource_id: str, if_match: str | None, body: Any) -> JsonObject:
        if if_match is None:
            raise flow_error(
                FlowCode.IF_MATCH_MISSING,
                "The header 'If-Match' is missing. Provide the etag of the entity, in double quotes.",
            )
        current = self._require(kind, caller, resource_id)
        if if_match != current["etag"]:
            message = f"Supplied version=[{if_match}] does not match the current version on entity=[{current['etag']}]"
            raise flow_error(FlowCode.VERSION_MISMATCH, message)
        operations = _parse_patch(kind, body)
        try:
            # in_place on a copy of our own: apply() would otherwise deep-copy the document a second time.
            patched = jsonpatch.JsonPatch(operations).apply(json_copy(current), in_place=True)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction validation failed: {exc}") from None
        if not isinstance(patched, dict):
            raise flow_error(
                FlowCode.PATCH_INVALID, "Patch instruction validation failed: the entity must stay an object."
            )
        try:
            self._validate(kind, caller, patched)
        except ApiError as exc:
            detail = exc.body.get("errorMessage", "invalid entity")
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction validation failed: {detail}") from None
        now = _now_ms()
        etag = new_etag()
        self._derive(kind, caller, patched, previous=current)
        patched |= {
            "updatedAt": now,
            "updatedBy": caller.user,
            "updatedClient": caller.client_id,
            "version": etag,
            "etag": etag,
        }
        if kind == "flows":
            patched["lastOperation"] = _operation("update", now, operations)
        self.store.replace(kind, caller.sandbox, patched)
        return patched

    def edit_flow_as_person(self, sandbox: str, flow_id: str, edit: ui_edits.FlowEdit) -> JsonObject:
        """An out-of-band edit, as a person saves one in Adobe's UI (:mod:`.ui_edits`): one PATCH of the flow
        as it is now (the UI holds its current etag), then the flow action if the state is to change, through
        the API's own code paths (validation, enrichment, ``lastOperation``, a new etag at each step), by that
        person rather than a technical account. Raises :class:`~.ui_edits.EditRefused` for an edit the UI
        would not offer. The flow as it then is, masked."""
        current = self.store.get("flows", sandbox, flow_id)
        if current is None:
            raise not_found("flows", flow_id)
        caller = Caller(ui_edits.UI_CLIENT_ID, str(current.get("imsOrgId", "")), sandbox, person=edit.person)
        flow = current
        operations = ui_edits.patch_operations(current, edit)
        if operations:
            flow = self.patch("flows", caller, flow_id, current["etag"], operations)
        if edit.state is not None and edit.state != flow.get("state"):
            flow = self.flow_action(caller, flow_id, ui_edits.STATE_ACTIONS[edit.state])
        return self._present(flow)

    def delete(self, kind: str, caller: Caller, resource_id: str) -> None:
        self._require(kind, caller, resource_id)
        if kind == "connections":
            flows = self._flows_using_base_connection(caller.sandbox, resource_id)
            if flows:
                raise flow_error(
                    FlowCode.BASE_CONNECTION_IN_USE,
                    f"Base connection {resource_id} cannot be deleted because it is used by {len(flows)} "
                    f"flow(s): {', '.join(flows)}. Delete the flows first.",
                )
        self.store.delete(kind, caller.sandbox, resource_id)

    def flow_action(self, caller: Caller, flow_id: str, op: str | None) -> JsonObject:
        states = {"ENABLE": "enabled", "DISABLE": "disabled"}
        if op is None or op.upper() not in states:
            raise flow_error(FlowCode.BAD_QUERY_PARAM, f"Invalid value '{op}' for query parameter 'op'.")
        flow = json_copy(self._require("flows", caller, flow_id))
        now = _now_ms()
        etag = new_etag()
        flow |= {
            "state": states[op.upper()],
            "updatedAt": now,
            "updatedBy": caller.user,
            "updatedClient": caller.client_id,
            "version": etag,
            "etag": etag,
            "lastOperation": _operation(op.lower(), now, []),
        }
        self.store.replace("flows", caller.sandbox, flow)
        return flow

    def masked_state(self) -> tuple[JsonObject, JsonObject]:
        """All resources (masked) and their counts, by kind and sandbox."""
        resources: JsonObject = {}
        counts: JsonObject = {}
        for kind in KINDS:
            sandboxes = self.store.sandboxes(kind)
            resources[kind] = {sb: [self._present(doc) for doc in self.store.docs(kind, sb)] for sb in sandboxes}
            counts[kind] = {sb: len(resources[kind][sb]) for sb in sandboxes}
        return resources, counts

    # --- helpers -------------------------------------------------------------------------------------------

    def _require(self, kind: str, caller: Caller, resource_id: str) -> JsonObject:
        doc = self.store.get(kind, caller.sandbox, resource_id)
        if doc is None:
            raise not_found(kind, resource_id)
        return doc

    def _present(self, doc: JsonObject, sandbox: str | None = None) -> JsonObject:
        presented = mask_resource(doc, self.catalog)
        if sandbox is not None and "runs" in doc and self.last_run_details is not None:  # a flow
            details = self.last_run_details(doc, sandbox)
            if details is not None:
                presented = {**presented, "lastRunDetails": details}
        return presented

    def _lookup(self, caller: Caller) -> Callable[[str, str], JsonObject | None]:
        return lambda kind, resource_id: self.store.get(kind, caller.sandbox, resource_id)

    def _validate(self, kind: str, caller: Caller, doc: JsonObject) -> None:
        lookup = self._lookup(caller)
        if kind == "connections":
            validation.check_connection(doc, self.catalog)
        elif kind == "sourceConnections":
            validation.check_source_connection(doc, self.catalog, lookup)
        elif kind == "targetConnections":
            validation.check_target_connection(doc, self.catalog, lookup)
        else:
            validation.check_flow(doc, self.catalog, lookup)

    def _derive(self, kind: str, caller: Caller, doc: JsonObject, previous: JsonObject | None) -> None:
        """Add what the server computes: inherited attributes, typeInfo, authorizedDate, selector fields."""
        lookup = self._lookup(caller)
        if kind == "connections" and isinstance(doc.get("auth"), dict):
            old_auth = (previous or {}).get("auth")
            if old_auth != doc["auth"] or "authorizedDate" not in doc["auth"].get("params", {}):
                doc["auth"].setdefault("params", {})["authorizedDate"] = dt.date.today().isoformat()
        elif kind in ("sourceConnections", "targetConnections"):
            if doc["connectionSpec"]["id"] == PROFILE_STORE:
                doc["typeInfo"] = dict(PROFILE_TYPE_INFO)
            base = lookup("connections", doc["baseConnectionId"]) if doc.get("baseConnectionId") else None
            doc["inheritedAttributes"] = (
                {"baseConnection": {"id": base["id"], "connectionSpec": dict(base["connectionSpec"])}} if base else {}
            )
        elif kind == "flows":
            doc["inheritedAttributes"] = self._flow_inheritance(doc, lookup, previous)
            _enrich_selectors(doc, previous)

    def _flow_inheritance(
        self, flow: JsonObject, lookup: Callable[[str, str], JsonObject | None], previous: JsonObject | None
    ) -> JsonObject:
        spec = self.catalog.flow_spec_readonly(flow["flowSpec"]["id"]) or {}
        inherited: JsonObject = {
            "properties": {"isDestinationFlow": bool(spec.get("attributes", {}).get("isDestinationFlow"))},
        }
        for field, kind in (("sourceConnectionIds", "sourceConnections"), ("targetConnectionIds", "targetConnections")):
            summaries = []
            for connection_id in flow[field]:
                connection = lookup(kind, connection_id)
                if connection is None:  # deleted since: keep the snapshot taken when it was linked
                    summaries += [
                        s
                        for s in ((previous or {}).get("inheritedAttributes", {}).get(kind, []))
                        if s.get("id") == connection_id
                    ]
                    continue
                summary: JsonObject = {"id": connection_id, "connectionSpec": dict(connection["connectionSpec"])}
                summary |= json_copy(connection.get("inheritedAttributes", {}))
                if "typeInfo" in connection:
                    summary["typeInfo"] = dict(connection["typeInfo"])
                summaries.append(summary)
            inherited[kind] = summaries
        return inherited

    def _flows_using_base_connection(self, sandbox: str, base_id: str) -> list[str]:
        users = {
            (kind, doc["id"])
            for kind in ("sourceConnections", "targetConnections")
            for doc in self.store.docs(kind, sandbox)
            if doc.get("baseConnectionId") == base_id
        }
        return [
            flow["id"]
            for flow in self.store.docs("flows", sandbox)
            if any(("sourceConnections", sid) in users for sid in flow.get("sourceConnectionIds", []))
            or any(("targetConnections", tid) in users for tid in flow.get("targetConnectionIds", []))
        ]


def _parse_patch(kind: str, body: Any) -> list[JsonObject]:
    """Normalise a JSON Patch: ``op`` case-insensitive, ``value`` required even for ``remove`` (both specs)."""
    # A flow's PATCH body is an array of instructions in both documents (destinations.yaml Patch_Flow_Request,
    # flow-service.yaml "type: array"), and so is a source or target connection's in flow-service.yaml, the
    # only one with those PATCHes: a bare instruction object is refused. A base connection's is the one
    # exception: both documents'
    # schemas are a single instruction object (destinations.yaml PatchConnectionItem, flow-service.yaml
    # PatchInstruction) while destinations.yaml's own examples and Adobe's guides send an array, so both
    # forms are accepted there.
    instructions = [body] if isinstance(body, dict) and kind == "connections" else body
    if not isinstance(instructions, list) or not instructions:
        raise flow_error(FlowCode.PATCH_INVALID, "The request body must be a non-empty array of patch instructions.")
    operations: list[JsonObject] = []
    for index, instruction in enumerate(instructions):
        if not isinstance(instruction, dict):
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction {index} must be an object.")
        op = str(instruction.get("op", "")).lower()
        if op not in _PATCH_OPS:
            raise flow_error(
                FlowCode.BAD_PATCH_OP,
                f"Patch operation '{instruction.get('op')}' is not supported. Use add, replace or remove.",
            )
        path = instruction.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction {index}: 'path' must be a JSON pointer.")
        if "value" not in instruction:
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction {index}: 'value' is required.")
        root = path.split("/")[1]
        if root == "connectionSpec" and kind != "flows":
            raise flow_error(FlowCode.SPEC_NOT_UPDATABLE, "The connectionSpec of a connection cannot be updated.")
        if root in _SERVER_MANAGED:
            raise flow_error(FlowCode.PATCH_INVALID, f"Patch instruction {index}: '/{root}' cannot be updated.")
        operation = {"op": op, "path": path}
        if op != "remove":
            operation["value"] = instruction["value"]
        operations.append(operation)
    return operations


def _enrich_selectors(flow: JsonObject, previous: JsonObject | None) -> None:
    """Server-side selector fields (§4.6): audience createTime/updateTime (epoch seconds as strings), profile
    selector ``operator: EXISTS`` and its ``mapping``."""
    now = str(int(time.time()))
    old_segments = {
        selector.get("value", {}).get("id"): selector
        for transformation in (previous or {}).get("transformations") or []
        for selector in transformation.get("params", {}).get("segmentSelectors", {}).get("selectors", [])
        if isinstance(selector, dict) and isinstance(selector.get("value"), dict)
    }
    for transformation in flow.get("transformations") or []:
        params = transformation.get("params", {})
        for selector in params.get("segmentSelectors", {}).get("selectors", []):
            value = selector["value"]
            old = old_segments.get(value["id"])
            old_value = old["value"] if old else {}
            value["createTime"] = old_value.get("createTime") or value.get("createTime") or now
            changed = _without_times(value) != _without_times(old_value)
            value["updateTime"] = now if changed or "updateTime" not in old_value else old_value["updateTime"]
        for selector in params.get("profileSelectors", {}).get("selectors", []):
            value = selector["value"]
            value.setdefault("operator", "EXISTS")
            path = value["path"]
            value["mapping"] = {
                "sourceType": "text/x.schema-path",
                "source": path,
                "destination": path,
                "identity": False,
                "primaryIdentity": False,
                "functionVersion": 0,
                "copyModeMapping": False,
                "sourceAttribute": path,
                "destinationXdmPath": path,
            }


def _without_times(value: JsonObject) -> JsonObject:
    return {k: v for k, v in value.items() if k not in ("createTime", "updateTime")}


def _operation(name: str, now: int, operations: list[JsonObject]) -> JsonObject:
    return {
        "started": now,
        "updated": now,
        "operation": name,
        "percentCompleted": 100,
        "status": {"value": "completed", "errors": []},
        "ops": operations,
    }


def _list_body(collection: str, page: Page) -> JsonObject:
    if page.count is not None:
        return {"count": page.count}
    body: JsonObject = {"items": page.items}
    if page.next_token is not None:
        body["_links"] = {"next": {"href": next_href(collection, page.next_token)}}
    return body


def _now_ms() -> int:
    return int(time.time() * 1000)
