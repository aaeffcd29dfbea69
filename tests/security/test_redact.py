"""Unit tests: credentials never travel on in Adobe's error texts."""

from __future__ import annotations

import base64
import json

import httpx

from app.adapters.flowservice.errors import FlowServiceError
from app.adapters.flowservice.redact import CREDENTIALS_WITHHELD, sensitive_values
from tests.support.payloads import S3_SECRET_KEY, ssh_private_key_b64

TARGET_BASE = {
    "name": "x",
    "auth": {"specName": "Access Key", "params": {"accessId": "AKIAIOSFODNN7EXAMPLE", "secretKey": S3_SECRET_KEY}},
    "connectionSpec": {"id": "4fce964d", "version": "1.0"},
}


def adobe_error(message: str, status: int = 400, *, raw: bool = False) -> httpx.Response:
    request = httpx.Request("POST", "https://platform.adobe.io/data/foundation/flowservice/connections")
    if raw:
        return httpx.Response(status, text=message, request=request)
    body = {"type": "https://ns.adobe.com/aep/errors/FLOW-2103-400", "report": {"detailed-message": message}}
    return httpx.Response(status, json=body, request=request)


def test_sensitive_values_are_the_credentials_only() -> None:
    values = sensitive_values(TARGET_BASE)
    assert S3_SECRET_KEY in values and "AKIAIOSFODNN7EXAMPLE" in values
    assert "Access Key" not in values and "4fce964d" not in values and "x" not in values
    assert sensitive_values(None) == () and sensitive_values([{"password": "hunter22"}]) == ("hunter22",)


def test_json_escaped_and_decoded_forms_are_covered() -> None:
    assert json.dumps(S3_SECRET_KEY)[1:-1] in sensitive_values(TARGET_BASE)  # "\/" inside JSON
    key = ssh_private_key_b64()
    assert base64.b64decode(key).decode() in sensitive_values({"sshKey": key})


def test_flow_service_error_never_carries_the_request_credentials() -> None:
    secrets = sensitive_values(TARGET_BASE)
    quoted = adobe_error(f"Invalid auth params {json.dumps(TARGET_BASE['auth'])}")
    error = FlowServiceError.from_response(quoted, path="/connections", redact=secrets)
    assert S3_SECRET_KEY not in error.message and S3_SECRET_KEY not in str(error)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(error)
    assert error.code == "2103-400" and error.status == 400


def test_a_secret_straddling_the_cut_is_withheld_too() -> None:
    # The secret straddles the 500-character cut: truncating first would leave a fragment behind.
    message = "x" * 480 + S3_SECRET_KEY
    error = FlowServiceError.from_response(adobe_error(message), path="/connections", redact=[S3_SECRET_KEY])
    assert S3_SECRET_KEY[:16] not in error.message
    plain = FlowServiceError.from_response(
        adobe_error("y" * 190 + S3_SECRET_KEY, raw=True), path="/connections", redact=[S3_SECRET_KEY]
    )
    assert S3_SECRET_KEY[:8] not in plain.message


def test_ims_errors_keep_the_code_and_withhold_the_message() -> None:
    request = httpx.Request("POST", "https://ims-na1.adobelogin.com/ims/token/v3")
    response = httpx.Response(
        400, json={"error": "invalid_client", "error_description": "bad client_secret s3cr3t-value"}, request=request
    )
    error = FlowServiceError.from_response(
        response, path="/ims/token/v3", redact=sensitive_values({"client_secret": "s3cr3t-value"})
    )
    assert error.code == "invalid_client"
    assert error.message == CREDENTIALS_WITHHELD, "the form carried the client secret"
