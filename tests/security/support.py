"""Helpers for the security tests: problem assertions, database dumps, what Adobe (the emulator) saw,
and keys that must be refused."""

from __future__ import annotations

import base64
import os
import struct
from typing import Any

import httpx
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from flowservice_emulator import EmulatorServer

PROBLEM = "urn:activation-gateway:problem:"


def assert_problem(response: httpx.Response, status: int, slug: str, path: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status and body["title"] and body["detail"], body
    if path is not None:
        assert [e["path"] for e in body.get("errors", [])] == [path], body
    return body


def table_names(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()
    return [str(row[0]) for row in rows]


# The background cycles' bookkeeping (their leases and watermarks), written by the worker on its own
# schedule: no request's side effect.
BOOKKEEPING = frozenset({"alembic_version", "background_leases", "cycle_watermarks"})


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {
        name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # type: ignore[index]
        for name in table_names(conn)
        if name not in BOOKKEEPING
    }


def dump_database(database_url: str) -> str:
    """Every row of every table, all columns, as PostgreSQL's text form of the row."""
    with psycopg.connect(database_url) as conn:
        lines = []
        for name in table_names(conn):
            for (text,) in conn.execute(f'SELECT t::text FROM "{name}" AS t').fetchall():
                lines.append(f"{name}: {text}")
    return "\n".join(lines)


def flow_service_calls(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """Every request the emulator received (Flow Service and IMS), admin calls excluded."""
    items: list[dict[str, Any]] = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return [item for item in items if not str(item.get("path", "")).startswith("/_emulator")]


def add_fault(emulator: EmulatorServer, **rule: Any) -> str:
    response = httpx.post(f"{emulator.url}/_emulator/faults", json=rule)
    response.raise_for_status()
    return str(response.json()["id"])


def add_latency(emulator: EmulatorServer, **rule: Any) -> str:
    response = httpx.post(f"{emulator.url}/_emulator/latency", json=rule)
    response.raise_for_status()
    return str(response.json()["id"])


def encrypted_openssh_key_b64() -> str:
    """An OpenSSH private key that says it is passphrase-protected (aes256-ctr, bcrypt KDF).

    Built by hand because writing a real one needs the optional bcrypt module; the loader refuses a
    protected key before it would decrypt anything, which is all validation has to notice."""

    def sshstr(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    blob = (
        b"openssh-key-v1\0"
        + sshstr(b"aes256-ctr")
        + sshstr(b"bcrypt")
        + sshstr(sshstr(os.urandom(16)) + struct.pack(">I", 16))
        + struct.pack(">I", 1)
        + sshstr(sshstr(b"ssh-ed25519") + sshstr(raw))
        + sshstr(os.urandom(160))
    )
    body = base64.encodebytes(blob).decode().replace("\n", "")
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    return base64.b64encode(pem.encode()).decode()


def encrypted_pkcs8_key_b64() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    return base64.b64encode(pem).decode()


def public_key_b64() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return base64.b64encode(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
