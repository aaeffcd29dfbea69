"""Request bodies for POST /activations, with distinctive secrets that leak tests can search for."""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

S3_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYS3cr3tXYZ"
SFTP_PASSWORD = "sftp-Pa55word-Qm7x"


def ssh_private_key_b64() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return base64.b64encode(pem).decode()


def segments(count: int = 2) -> list[dict[str, Any]]:
    return [{"id": str(uuid.uuid4()), "name": f"Segment {i}"} for i in range(count)]


def s3_request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "destination": "Adobe Campaign",
        "name": "Spring newsletter",
        "storage": {
            "type": "s3",
            "accessId": "AKIAIOSFODNN7EXAMPLE",
            "secretKey": S3_SECRET_KEY,
            "bucketName": "acme-aep-exports",
            "path": "campaign/spring",
        },
        "segments": segments(2),
        "attributes": ["person.name.lastName", "personalEmail.address"],
    }
    body.update(overrides)
    return body


def sftp_password_request(**overrides: Any) -> dict[str, Any]:
    body = s3_request(**overrides)
    body["storage"] = {
        "type": "sftp",
        "host": "sftp.example.com",
        "port": 2222,
        "username": "campaign",
        "password": SFTP_PASSWORD,
        "path": "/exports/spring",
    }
    return body


def sftp_ssh_request(ssh_key: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(sftp_password_request(**overrides))
    del body["storage"]["password"]
    body["storage"]["sshKey"] = ssh_key or ssh_private_key_b64()
    return body


def new_key() -> str:
    return f"test-{uuid.uuid4()}"
