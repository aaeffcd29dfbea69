"""Contract checks of recorded exchanges against Adobe's official Flow Service OpenAPI documents.

Input is an emulator request-history entry (``GET /_emulator/requests``)::

    {"method", "path", "query", "headers", "body", "status", "responseHeaders", "responseBody", ...}

Adobe publishes two documents that cover different parts of the API (see ``docs/adobe-specs.md``), so a
request or a response counts as valid when *either* document accepts it. They are not in the repository:
:mod:`devtools.adobe_specs` says where they are looked for (``ADOBE_SPECS_DIR``, else ``../shared/adobe/``
beside the repository, else ``.adobe-specs/``, which ``python3 dev.py fetch-adobe-specs`` fills). Where they
are missing, tests that need them are skipped with that explanation, or fail with ``REQUIRE_ADOBE_SPECS=1``
(CI). Their ``servers`` are replaced by the bare base path so that any host and port match.

Tests that need the documents ask for the :func:`adobe_documents` fixture (``usefixtures``), so that they stop
before their other, costlier fixtures start.

* :func:`validate_exchange` returns the problems of one exchange (empty list: valid).
* :func:`assert_exchanges_valid` fails with every problem of a list of exchanges.
* :func:`undocumented_statuses` lists error responses whose status neither document mentions; these are
  not contract violations by default (Adobe documents few error statuses) but can be reported.

IMS token exchanges are covered by no document; they get a small hand-written check.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound, ServerNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from werkzeug.datastructures import MultiDict  # openapi-core's own dependency

from devtools import adobe_specs

BASE_PATH = "/data/foundation/flowservice"
IMS_TOKEN_PATH = "/ims/token/v3"
SPEC_FILES = adobe_specs.NEEDED
_HOST = "http://flowservice.test"
_ROUTING_ERRORS = (PathNotFound, OperationNotFound, ServerNotFound)

Entry = Mapping[str, Any]


def specs_dir() -> Path:
    """The folder holding the documents. Missing, the calling test is skipped with a message that names the files
    and where they come from (a bare FileNotFoundError for a path outside the repository explains nothing); with
    REQUIRE_ADOBE_SPECS=1 it fails instead, so that CI cannot lose the contract checks silently."""
    folder = adobe_specs.locate(SPEC_FILES)
    if folder is None:
        message = adobe_specs.missing_message(SPEC_FILES)
        if adobe_specs.required():
            pytest.fail(f"{adobe_specs.REQUIRE_ENV} is set: {message}", pytrace=False)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def adobe_documents() -> Path:
    """The documents' folder. Session-scoped so that it is set up, and skips, before the session-scoped emulator,
    gateway and database fixtures of the tests that use it."""
    return specs_dir()


@functools.cache
def documents() -> tuple[tuple[str, OpenAPI], ...]:
    """The two documents, loaded once per process."""
    loaded = []
    for name in SPEC_FILES:
        spec = yaml.safe_load((specs_dir() / name).read_text())
        spec["servers"] = [{"url": BASE_PATH}]
        loaded.append((name, OpenAPI.from_dict(spec)))
    return tuple(loaded)


@dataclass
class ExchangeCheck:
    """Per-document outcome of one exchange; a document missing from ``request_errors`` has no such route."""

    request_errors: dict[str, list[str]] = field(default_factory=dict)
    response_errors: dict[str, list[str]] = field(default_factory=dict)
    undocumented_in: list[str] = field(default_factory=list)

    @property
    def routed(self) -> bool:
        return bool(self.request_errors)

    @property
    def request_valid(self) -> bool:
        return any(not errors for errors in self.request_errors.values())

    @property
    def response_valid(self) -> bool:
        return any(not errors for errors in self.response_errors.values())

    @property
    def status_undocumented(self) -> bool:
        """No document that has this operation documents the response status."""
        return self.routed and not self.response_errors


def check_exchange(entry: Entry) -> ExchangeCheck:
    result = ExchangeCheck()
    for doc_name, api in documents():
        for path in _path_forms(entry["path"]):
            request = _request(entry, path)
            errors = list(api.unmarshal_request(request).errors)
            if any(isinstance(error, _ROUTING_ERRORS) for error in errors):
                continue
            result.request_errors[doc_name] = [_describe(error) for error in errors]
            if entry.get("status") is not None:
                response_errors = list(api.unmarshal_response(request, _response(entry)).errors)
                if any(isinstance(error, ResponseNotFound) for error in response_errors):
                    result.undocumented_in.append(doc_name)
                else:
                    result.response_errors[doc_name] = [_describe(error) for error in response_errors]
            break
    return result


def validate_exchange(entry: Entry, *, strict_status: bool = False) -> list[str]:
    """Problems with one exchange. An error status (>= 400) documented by neither document is a problem
    only with ``strict_status``; an undocumented success status always is."""
    label = f"{entry['method']} {entry['path']}" + (f"?{entry['query']}" if entry.get("query") else "")
    if entry["path"] == IMS_TOKEN_PATH:
        return [f"{label}: {problem}" for problem in _ims_problems(entry)]
    if not entry["path"].startswith(BASE_PATH):
        return []
    check = check_exchange(entry)
    if not check.routed:
        return [f"{label}: no operation in {', '.join(SPEC_FILES)}"]
    problems = []
    if not check.request_valid:
        problems += [
            f"{label}: request rejected by {doc}: {'; '.join(errors)}" for doc, errors in check.request_errors.items()
        ]
    status = entry.get("status")
    if status is None:
        return problems  # the connection was dropped: there is no response to check
    if check.status_undocumented:
        if status < 400 or strict_status:
            problems.append(f"{label}: status {status} is documented by neither document")
    elif not check.response_valid:
        problems += [
            f"{label}: {status} response rejected by {doc}: {'; '.join(errors)}"
            for doc, errors in check.response_errors.items()
        ]
    return problems


def assert_exchanges_valid(entries: Iterable[Entry], *, strict_status: bool = False) -> None:
    problems = [problem for entry in entries for problem in validate_exchange(entry, strict_status=strict_status)]
    assert not problems, "Exchanges violate Adobe's contract:\n" + "\n".join(problems)


def undocumented_statuses(entries: Iterable[Entry]) -> list[str]:
    return [
        f"{entry['method']} {entry['path']} -> {entry['status']}"
        for entry in entries
        if entry["path"].startswith(BASE_PATH)
        and entry.get("status") is not None
        and check_exchange(entry).status_undocumented
    ]


def _path_forms(path: str) -> list[str]:
    # flow-service.yaml writes base-connection PATCH and DELETE as /connections/{id}/ (trailing slash).
    return [path, path.rstrip("/")] if path.endswith("/") else [path, path + "/"]


def _request(entry: Entry, path: str) -> MockRequest:
    headers = dict(entry.get("headers") or {})
    return MockRequest(
        _HOST,
        entry["method"].lower(),
        path,
        args=_multi(parse_qsl(entry.get("query") or "", keep_blank_values=True)),
        headers=headers,
        data=_encode(entry.get("body")),
        content_type=headers.get("content-type", ""),
    )


def _response(entry: Entry) -> MockResponse:
    headers = dict(entry.get("responseHeaders") or {})
    return MockResponse(
        _encode(entry.get("responseBody")) or b"",
        status_code=int(entry["status"]),
        headers=headers,
        content_type=headers.get("content-type", ""),
    )


def _multi(pairs: list[tuple[str, str]]) -> MultiDict[str, str]:
    return MultiDict(pairs)


def _encode(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _describe(error: BaseException) -> str:
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        details = [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in schema_errors]
        return f"{type(error).__name__}: " + " | ".join(details)
    return f"{type(error).__name__}: {error}" + (f" ({cause})" if cause else "")


def _ims_problems(entry: Entry) -> list[str]:
    """IMS v3 client-credentials rules (flow-service.md Part 2 §12); no OpenAPI document covers IMS."""
    problems = []
    content_type = (entry.get("headers") or {}).get("content-type", "")
    if entry["method"] != "POST":
        problems.append("IMS token requests must be POST")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        problems.append(f"IMS token requests must be form-encoded, not {content_type!r}")
    request_body = entry.get("body")
    form: Mapping[str, Any] = request_body if isinstance(request_body, dict) else {}
    if form.get("grant_type") != "client_credentials":
        problems.append("grant_type must be client_credentials")
    if not form.get("client_id"):
        problems.append("client_id is missing")
    status, body = entry.get("status"), entry.get("responseBody")
    if status == 200:
        if not (
            isinstance(body, dict)
            and isinstance(body.get("access_token"), str)
            and body["access_token"]
            and body.get("token_type") == "bearer"
            and isinstance(body.get("expires_in"), int)
            and not isinstance(body.get("expires_in"), bool)
            and body["expires_in"] > 0
        ):
            problems.append(f"token response must be {{access_token, token_type: bearer, expires_in > 0}}: {body}")
    elif status is not None and not (isinstance(body, dict) and isinstance(body.get("error"), str)):
        problems.append(f"IMS error response must carry an 'error' string: {body}")
    return problems
