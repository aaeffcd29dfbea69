"""Acceptance 1: hostile and malformed requests. Each one gets the documented 4xx problem
(status, application/problem+json, problem type and, for 422, the JSON Pointer of the offending
field), and none of them writes a row or makes a call to Adobe."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from flowservice_emulator import EmulatorServer
from tests.security.support import (
    assert_problem,
    encrypted_openssh_key_b64,
    encrypted_pkcs8_key_b64,
    flow_service_calls,
    public_key_b64,
    row_counts,
)
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request, segments, sftp_password_request, sftp_ssh_request

Body = dict[str, Any]
UNKNOWN = "0b8f7a52-2f7e-4f7e-9a51-6d1c3f0a9e11"


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    slug: str
    path: str | None = None  # the errors[].path of a 422
    body: Body | None = None  # JSON body for POST /activations, built lazily
    raw: bytes | None = None  # a raw body instead of `body`
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    url: str = "/activations"
    chunked: bool = False


def s3(mutate: Callable[[Body], Any]) -> Body:
    body = s3_request()
    mutate(body)
    return body


def sftp(mutate: Callable[[Body], Any], ssh: bool = False) -> Body:
    body = copy.deepcopy(sftp_ssh_request() if ssh else sftp_password_request())
    mutate(body)
    return body


def storage(**values: Any) -> Callable[[Body], None]:
    return lambda body: body["storage"].update(values)


def drop(*keys: str, where: str | None = None) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        target = body[where] if where else body
        for key in keys:
            target.pop(key, None)

    return apply


def top(**values: Any) -> Callable[[Body], None]:
    return lambda body: body.update(values)


def segment(**values: Any) -> Callable[[Body], None]:
    return lambda body: body["segments"][0].update(values)


def schedule(**values: Any) -> Callable[[Body], None]:
    return lambda body: body["segments"][0].update(schedule=values)


def duplicate_segment(body: Body) -> None:
    body["segments"][1]["id"] = body["segments"][0]["id"]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


GOOD = json.dumps(s3_request()).encode()
BAD_KEY = {"Authorization": "Bearer not-a-key-anyone-was-given"}

CASES: list[Case] = [
    # ---- caller authentication: in development mode a bad Authorization header is still a 401
    Case("auth-wrong-key", 401, "unauthorized", body=s3_request(), headers=BAD_KEY),
    Case("auth-basic-scheme", 401, "unauthorized", body=s3_request(), headers={"Authorization": "Basic dXNlcjpwYXNz"}),
    Case("auth-bearer-without-key", 401, "unauthorized", body=s3_request(), headers={"Authorization": "Bearer"}),
    Case("auth-token-scheme", 401, "unauthorized", body=s3_request(), headers={"Authorization": "Token abc"}),
    Case("auth-empty-header", 401, "unauthorized", body=s3_request(), headers={"Authorization": ""}),
    Case("auth-list", 401, "unauthorized", method="GET", headers=BAD_KEY),
    Case("auth-get", 401, "unauthorized", method="GET", url=f"/activations/{UNKNOWN}", headers=BAD_KEY),
    Case("auth-events", 401, "unauthorized", method="GET", url=f"/activations/{UNKNOWN}/events", headers=BAD_KEY),
    Case("auth-rollback", 401, "unauthorized", url=f"/activations/{UNKNOWN}/rollback", headers=BAD_KEY),
    # ---- Idempotency-Key
    Case("key-missing", 400, "idempotency-key-missing", body=s3_request(), headers={"Idempotency-Key": ""}),
    Case("key-quoted-space", 400, "idempotency-key-malformed", body=s3_request(), headers={"Idempotency-Key": '"a b"'}),
    Case("key-too-long", 400, "idempotency-key-malformed", body=s3_request(), headers={"Idempotency-Key": "k" * 256}),
    Case("key-inner-space", 400, "idempotency-key-malformed", body=s3_request(), headers={"Idempotency-Key": "a b"}),
    Case("key-open-quote", 400, "idempotency-key-malformed", body=s3_request(), headers={"Idempotency-Key": '"abc'}),
    Case("key-empty-quoted", 400, "idempotency-key-malformed", body=s3_request(), headers={"Idempotency-Key": '""'}),
    # ---- media type, size, JSON
    Case("media-text-plain", 415, "unsupported-media-type", raw=GOOD, headers={"Content-Type": "text/plain"}),
    Case("media-missing", 415, "unsupported-media-type", raw=GOOD, headers={"Content-Type": ""}),
    Case(
        "media-form",
        415,
        "unsupported-media-type",
        raw=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case("media-xml", 415, "unsupported-media-type", raw=b"<a/>", headers={"Content-Type": "application/xml"}),
    Case("size-declared", 413, "payload-too-large", raw=b" " * (64 * 1024) + GOOD),
    Case("size-chunked", 413, "payload-too-large", raw=b" " * (64 * 1024) + GOOD, chunked=True),
    Case("json-truncated", 400, "malformed-json", raw=GOOD[:-1]),
    Case("json-empty", 400, "malformed-json", raw=b""),
    Case("json-trailing-garbage", 400, "malformed-json", raw=GOOD + b" x"),
    Case("json-nan", 400, "malformed-json", raw=GOOD[:-1] + b', "port": NaN}'),
    Case("json-duplicate-key", 400, "malformed-json", raw=b'{"name": "a", "name": "b"}'),
    Case("json-deep-nesting", 400, "malformed-json", raw=nested(30000)),
    Case("json-invalid-utf8", 400, "malformed-json", raw=b'{"name": "\xff\xfe"}'),
    Case("json-single-quotes", 400, "malformed-json", raw=b"{'destination': 'x'}"),
    # ---- body shape
    Case("body-array", 422, "validation-error", "/", raw=b"[]"),
    Case("body-string", 422, "validation-error", "/", raw=b'"activate"'),
    Case("unknown-field", 422, "validation-error", "/colour", s3(top(colour="blue"))),
    Case("unknown-field-escaped", 422, "validation-error", "/a~1b~0c", s3(top(**{"a/b~c": 1}))),
    Case("destination-missing", 422, "validation-error", "/destination", s3(drop("destination"))),
    Case("destination-empty", 422, "validation-error", "/destination", s3(top(destination=""))),
    Case("destination-too-long", 422, "validation-error", "/destination", s3(top(destination="d" * 257))),
    Case("destination-control", 422, "validation-error", "/destination", s3(top(destination="Adobe\nCampaign"))),
    Case("destination-number", 422, "validation-error", "/destination", s3(top(destination=42))),
    Case("sandbox-pattern", 422, "validation-error", "/sandbox", s3(top(sandbox="Prod!"))),
    Case("sandbox-not-allowed", 422, "validation-error", "/sandbox", s3(top(sandbox="staging"))),
    Case("name-too-long", 422, "validation-error", "/name", s3(top(name="n" * 101))),
    Case("name-nul", 422, "validation-error", "/name", s3(top(name="spring\x00"))),
    # ---- storage
    Case("storage-missing", 422, "validation-error", "/storage", s3(drop("storage"))),
    Case("storage-not-object", 422, "validation-error", "/storage", s3(top(storage="s3://bucket"))),
    Case("storage-type-missing", 422, "validation-error", "/storage/type", s3(drop("type", where="storage"))),
    Case("storage-type-unknown", 422, "validation-error", "/storage/type", s3(storage(type="ftp"))),
    Case("s3-unknown-field", 422, "validation-error", "/storage/region", s3(storage(region="eu-west-1"))),
    Case("s3-field-named-like-tag", 422, "validation-error", "/storage/s3", s3(storage(s3=True))),
    Case("s3-secret-missing", 422, "validation-error", "/storage/secretKey", s3(drop("secretKey", where="storage"))),
    Case("s3-secret-control", 422, "validation-error", "/storage/secretKey", s3(storage(secretKey="abc\x01def"))),
    Case("s3-secret-too-long", 422, "validation-error", "/storage/secretKey", s3(storage(secretKey="s" * 257))),
    Case("s3-access-id-short", 422, "validation-error", "/storage/accessId", s3(storage(accessId="AKIA"))),
    Case(
        "s3-access-id-charset",
        422,
        "validation-error",
        "/storage/accessId",
        s3(storage(accessId="AKIA-IOSFODNN7EXAMP")),
    ),
    Case("bucket-uppercase", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="Acme-Exports"))),
    Case("bucket-short", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="ab"))),
    Case("bucket-long", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="b" * 64))),
    Case("bucket-ip", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="192.168.10.20"))),
    Case("bucket-double-dot", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme..exports"))),
    Case("bucket-dash-dot", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme-.exports"))),
    Case("bucket-underscore", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme_exports"))),
    Case("bucket-xn-prefix", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="xn--acme"))),
    Case("bucket-alias-suffix", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme-s3alias"))),
    Case("bucket-trailing-dash", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme-"))),
    Case("bucket-trailing-newline", 422, "validation-error", "/storage/bucketName", s3(storage(bucketName="acme-x\n"))),
    Case("s3-path-dotdot", 422, "validation-error", "/storage/path", s3(storage(path="campaign/../../etc"))),
    Case("s3-path-backslash-dotdot", 422, "validation-error", "/storage/path", s3(storage(path="a\\..\\b"))),
    Case("s3-path-nul", 422, "validation-error", "/storage/path", s3(storage(path="campaign\x00/x"))),
    Case("s3-path-newline", 422, "validation-error", "/storage/path", s3(storage(path="campaign\nx"))),
    Case("s3-path-too-long", 422, "validation-error", "/storage/path", s3(storage(path="p" * 1025))),
    Case("sftp-host-scheme", 422, "validation-error", "/storage/host", sftp(storage(host="sftp://sftp.example.com"))),
    Case("sftp-host-path", 422, "validation-error", "/storage/host", sftp(storage(host="sftp.example.com/x"))),
    Case("sftp-host-port", 422, "validation-error", "/storage/host", sftp(storage(host="sftp.example.com:22"))),
    Case("sftp-host-userinfo", 422, "validation-error", "/storage/host", sftp(storage(host="me@sftp.example.com"))),
    Case("sftp-host-label", 422, "validation-error", "/storage/host", sftp(storage(host="-bad-.example.com"))),
    Case("sftp-host-not-ip", 422, "validation-error", "/storage/host", sftp(storage(host="999.1.1.1"))),
    Case("sftp-host-space", 422, "validation-error", "/storage/host", sftp(storage(host="sftp example.com"))),
    *[
        Case(f"sftp-host-{name}", 422, "validation-error", "/storage/host", sftp(storage(host=host)))
        for name, host in {
            # malformed: brackets only as one pair around an IPv6 literal; nothing after the name
            "bracket-open": "[::1",
            "bracket-close": "::1]",
            "bracket-double": "[[2001:db8::1]]",
            "bracket-ipv4": "[203.0.113.7]",
            "bracket-name": "[sftp.example.com]",
            "ipv6-zone": "2001:db8::1%eth0",
            "trailing-newline": "sftp.example.com\n",
            "ipv4-hex": "0x7f000001",
            "ipv4-hex-label": "127.0.0.0x1",
            "ipv4-decimal": "2130706433",
            # addresses inside Adobe's own network, refused unless SFTP_ALLOWED_HOSTS lists them
            "localhost": "localhost",
            "localhost-upper-dot": "LOCALHOST.",
            "localhost-sub": "sftp.localhost",
            "single-label": "sftp",
            "internal-suffix": "sftp.internal",
            "mdns-suffix": "nas.local",
            "loopback": "127.0.0.1",
            "loopback-other": "127.255.0.9",
            "loopback-v6": "::1",
            "loopback-v6-bracketed": "[::1]",
            "unspecified": "0.0.0.0",
            "unspecified-v6": "::",
            "this-network": "0.1.2.3",
            "metadata": "169.254.169.254",
            "link-local": "169.254.10.20",
            "link-local-v6": "fe80::1",
            "private-10": "10.1.2.3",
            "private-172": "172.16.0.5",
            "private-172-top": "172.31.255.254",
            "private-192": "192.168.1.10",
            "unique-local-v6": "fd12:3456::1",
            "shared-cgnat": "100.64.0.1",
            "documentation": "192.0.2.10",
            "multicast": "224.0.0.251",
            "multicast-v6": "ff02::1",
            "reserved": "240.0.0.1",
            "broadcast": "255.255.255.255",
            "mapped-loopback": "::ffff:127.0.0.1",
            "mapped-metadata": "[::ffff:169.254.169.254]",
            "mapped-private-hex": "::ffff:a01:203",
            "nat64-private": "64:ff9b::10.0.0.1",
            "6to4-loopback": "2002:7f00:1::",
            "v4-compatible-loopback": "::127.0.0.1",
        }.items()
    ],
    Case("sftp-port-zero", 422, "validation-error", "/storage/port", sftp(storage(port=0))),
    Case("sftp-port-high", 422, "validation-error", "/storage/port", sftp(storage(port=65536))),
    Case("sftp-port-string", 422, "validation-error", "/storage/port", sftp(storage(port="22"))),
    Case("sftp-port-bool", 422, "validation-error", "/storage/port", sftp(storage(port=True))),
    Case("sftp-port-float", 422, "validation-error", "/storage/port", sftp(storage(port=22.5))),
    Case("sftp-both-secrets", 422, "validation-error", "/storage/sshKey", sftp(storage(password="pw"), ssh=True)),
    Case("sftp-no-secret", 422, "validation-error", "/storage/password", sftp(drop("password", where="storage"))),
    Case("sftp-username-control", 422, "validation-error", "/storage/username", sftp(storage(username="ca\rmp"))),
    Case("sftp-path-dotdot", 422, "validation-error", "/storage/path", sftp(storage(path="/exports/.."))),
    Case("sftp-path-empty", 422, "validation-error", "/storage/path", sftp(storage(path=""))),
    Case(
        "ssh-key-not-base64", 422, "validation-error", "/storage/sshKey", sftp(storage(sshKey="not base64!"), ssh=True)
    ),
    Case(
        "ssh-key-garbage",
        422,
        "validation-error",
        "/storage/sshKey",
        sftp(storage(sshKey="aGVsbG8gd29ybGQ="), ssh=True),
    ),
    Case(
        "ssh-key-public", 422, "validation-error", "/storage/sshKey", sftp(storage(sshKey=public_key_b64()), ssh=True)
    ),
    Case(
        "ssh-key-openssh-passphrase",
        422,
        "validation-error",
        "/storage/sshKey",
        sftp(storage(sshKey=encrypted_openssh_key_b64()), ssh=True),
    ),
    Case(
        "ssh-key-pkcs8-passphrase",
        422,
        "validation-error",
        "/storage/sshKey",
        sftp(storage(sshKey=encrypted_pkcs8_key_b64()), ssh=True),
    ),
    # ---- segments
    Case("segments-missing", 422, "validation-error", "/segments", s3(drop("segments"))),
    Case("segments-empty", 422, "validation-error", "/segments", s3(top(segments=[]))),
    Case("segments-too-many", 422, "validation-error", "/segments", s3(top(segments=segments(251)))),
    Case("segments-duplicate", 422, "validation-error", "/segments/1/id", s3(duplicate_segment)),
    Case("segment-not-object", 422, "validation-error", "/segments/0", s3(top(segments=["72ddd79b"]))),
    Case("segment-id-missing", 422, "validation-error", "/segments/0/id", s3(lambda b: b["segments"][0].pop("id"))),
    Case("segment-id-space", 422, "validation-error", "/segments/0/id", s3(segment(id="has space"))),
    Case("segment-id-long", 422, "validation-error", "/segments/0/id", s3(segment(id="s" * 129))),
    Case("segment-id-slash", 422, "validation-error", "/segments/0/id", s3(segment(id="../etc/passwd"))),
    Case("segment-unknown-field", 422, "validation-error", "/segments/0/colour", s3(segment(colour="red"))),
    Case("segment-name-long", 422, "validation-error", "/segments/0/name", s3(segment(name="n" * 257))),
    Case("segment-name-control", 422, "validation-error", "/segments/0/name", s3(segment(name="Men\x1bover 50"))),
    Case(
        "segment-description-long",
        422,
        "validation-error",
        "/segments/0/description",
        s3(segment(description="d" * 4097)),
    ),
    Case(
        "export-mode-unknown", 422, "validation-error", "/segments/0/exportMode", s3(segment(exportMode="WEEKLY_FULL"))
    ),
    Case(
        "frequency-unknown", 422, "validation-error", "/segments/0/schedule/frequency", s3(schedule(frequency="HOURLY"))
    ),
    Case(
        "full-export-every-3-hours",
        422,
        "validation-error",
        "/segments/0/schedule/frequency",
        s3(schedule(frequency="EVERY_3_HOURS", triggerType="SCHEDULED", startTime="10:00")),
    ),
    Case(
        "incremental-once",
        422,
        "validation-error",
        "/segments/0/schedule/frequency",
        s3(
            segment(
                exportMode="FIRST_FULL_THEN_INCREMENTAL", schedule={"triggerType": "SCHEDULED", "startTime": "10:00"}
            )
        ),
    ),
    Case(
        "incremental-after-segment-eval",
        422,
        "validation-error",
        "/segments/0/schedule/triggerType",
        s3(segment(exportMode="FIRST_FULL_THEN_INCREMENTAL", schedule={"frequency": "DAILY"})),
    ),
    Case(
        "start-time-arabic-indic-digit",
        422,
        "validation-error",
        "/segments/0/schedule/startTime",
        s3(schedule(triggerType="SCHEDULED", startTime="1\u0663:00")),
    ),
    Case(
        "scheduled-without-time",
        422,
        "validation-error",
        "/segments/0/schedule/startTime",
        s3(schedule(triggerType="SCHEDULED")),
    ),
    Case(
        "after-eval-with-time",
        422,
        "validation-error",
        "/segments/0/schedule/startTime",
        s3(schedule(startTime="10:00")),
    ),
    Case(
        "start-time-format",
        422,
        "validation-error",
        "/segments/0/schedule/startTime",
        s3(schedule(triggerType="SCHEDULED", startTime="25:00")),
    ),
    Case(
        "end-date-with-once",
        422,
        "validation-error",
        "/segments/0/schedule/endDate",
        s3(schedule(endDate="2027-01-01")),
    ),
    Case(
        "end-before-start",
        422,
        "validation-error",
        "/segments/0/schedule/endDate",
        s3(schedule(frequency="DAILY", startDate="2027-02-01", endDate="2027-01-01")),
    ),
    Case(
        "start-date-invalid",
        422,
        "validation-error",
        "/segments/0/schedule/startDate",
        s3(schedule(startDate="2026-13-01")),
    ),
    Case(
        "start-date-timestamp",
        422,
        "validation-error",
        "/segments/0/schedule/startDate",
        s3(schedule(startDate=1798761600)),
    ),
    Case(
        "start-date-datetime",
        422,
        "validation-error",
        "/segments/0/schedule/startDate",
        s3(schedule(startDate="2026-12-01T00:00:00")),
    ),
    Case(
        "schedule-unknown-field", 422, "validation-error", "/segments/0/schedule/timezone", s3(schedule(timezone="CET"))
    ),
    Case(
        "template-without-segment-id",
        422,
        "validation-error",
        "/segments/0/filenameTemplate",
        s3(segment(filenameTemplate="%DESTINATION_NAME%_export")),
    ),
    Case(
        "template-with-separator",
        422,
        "validation-error",
        "/segments/0/filenameTemplate",
        s3(segment(filenameTemplate="../%DESTINATION_NAME%_%SEGMENT_ID%")),
    ),
    Case(
        "template-too-long",
        422,
        "validation-error",
        "/segments/0/filenameTemplate",
        s3(segment(filenameTemplate="%DESTINATION_NAME%%SEGMENT_ID%" + "x" * 240)),
    ),
    # ---- attributes
    Case(
        "attributes-too-many",
        422,
        "validation-error",
        "/attributes",
        s3(top(attributes=[f"a.f{i}" for i in range(51)])),
    ),
    Case("attributes-duplicate", 422, "validation-error", "/attributes/2", s3(top(attributes=["a.b", "c.d", "a.b"]))),
    Case("attributes-not-list", 422, "validation-error", "/attributes", s3(top(attributes="person.name"))),
    Case("attribute-not-string", 422, "validation-error", "/attributes/0", s3(top(attributes=[42]))),
    Case("attribute-double-dot", 422, "validation-error", "/attributes/0", s3(top(attributes=["person..name"]))),
    Case("attribute-slash", 422, "validation-error", "/attributes/0", s3(top(attributes=["person/name"]))),
    Case("attribute-leading-digit", 422, "validation-error", "/attributes/0", s3(top(attributes=["1person.name"]))),
    Case("attribute-too-long", 422, "validation-error", "/attributes/0", s3(top(attributes=["a" * 257]))),
    # ---- the other endpoints
    Case("list-limit-zero", 422, "validation-error", "/query/limit", method="GET", url="/activations?limit=0"),
    Case("list-limit-high", 422, "validation-error", "/query/limit", method="GET", url="/activations?limit=101"),
    Case("list-status-unknown", 422, "validation-error", "/query/status", method="GET", url="/activations?status=done"),
    Case("list-cursor-forged", 400, "invalid-cursor", method="GET", url="/activations?cursor=forged"),
    Case("get-not-a-uuid", 404, "not-found", method="GET", url="/activations/not-a-uuid"),
    Case("get-unknown", 404, "not-found", method="GET", url=f"/activations/{UNKNOWN}"),
    Case("events-unknown", 404, "not-found", method="GET", url=f"/activations/{UNKNOWN}/events"),
    Case("rollback-unknown", 404, "not-found", url=f"/activations/{UNKNOWN}/rollback"),
    Case("method-not-allowed", 405, "method-not-allowed", method="DELETE", url="/activations"),
]


def test_the_corpus_is_large_and_unambiguous() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def _request(gateway: GatewayProcess, case: Case) -> Any:
    headers = {"Idempotency-Key": f"bad-{uuid.uuid4()}", **case.headers}
    if case.headers.get("Idempotency-Key") == "":
        del headers["Idempotency-Key"]  # missing, not empty
    content: bytes | Iterator[bytes] | None = None
    if case.raw is not None:
        headers.setdefault("Content-Type", "application/json")
        if headers["Content-Type"] == "":
            del headers["Content-Type"]
        content = case.raw
        if case.chunked:
            raw = case.raw
            content = iter([raw[i : i + 8192] for i in range(0, len(raw), 8192)])  # no Content-Length
    elif case.body is not None:
        headers.setdefault("Content-Type", "application/json")
        content = json.dumps(case.body).encode()
    with gateway.client() as client:
        return client.request(case.method, case.url, headers=headers, content=content)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request_is_refused_without_side_effects(
    case: Case, gateway: GatewayProcess, emulator: EmulatorServer, db: psycopg.Connection[Any]
) -> None:
    response = _request(gateway, case)
    body = assert_problem(response, case.status, case.slug, case.path if case.status == 422 else None)
    if case.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if case.status == 422:
        assert all(error["message"] for error in body["errors"])
    assert set(row_counts(db).values()) == {0}, row_counts(db)
    assert flow_service_calls(emulator) == []


def test_a_good_request_passes_the_same_harness(
    gateway: GatewayProcess, emulator: EmulatorServer, db: psycopg.Connection[Any]
) -> None:
    """The harness itself can tell an accepted request from a refused one."""
    response = _request(gateway, Case("good", 202, "", body=s3_request()))
    assert response.status_code == 202, response.text
    assert row_counts(db)["activations"] == 1


def test_secret_values_are_not_echoed_in_validation_errors(gateway: GatewayProcess) -> None:
    secret = "TopSecretValue-\x01-9f8e7d"
    body = s3(storage(secretKey=secret, bucketName="Invalid_Bucket"))
    response = _request(gateway, Case("echo", 422, "validation-error", body=body))
    assert response.status_code == 422
    assert "TopSecretValue" not in response.text
    assert {e["path"] for e in response.json()["errors"]} == {"/storage/secretKey", "/storage/bucketName"}
