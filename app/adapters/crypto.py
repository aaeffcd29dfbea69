"""Credentials at rest: MultiFernet with the keys of SECRETS_KEY (first encrypts, all decrypt)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsError(Exception):
    pass


class CredentialCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretsError("at least one Fernet key is required")
        try:
            self._fernets = [Fernet(key.strip().encode()) for key in keys]
        except ValueError:
            raise SecretsError("SECRETS_KEY must be comma-separated Fernet keys") from None
        self._multi = MultiFernet(self._fernets)
        # HMAC keys for request fingerprints, one per Fernet key, so rotation keeps old fingerprints valid.
        self._mac_keys = [hashlib.sha256(b"fingerprint:" + key.strip().encode()).digest() for key in keys]

    @classmethod
    def from_setting(cls, value: str) -> CredentialCipher:
        return cls([k for k in value.split(",") if k.strip()])

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self._multi.encrypt(json.dumps(secrets).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._multi.decrypt(token.encode()))
        except InvalidToken:
            raise SecretsError("stored credentials cannot be decrypted with the configured keys") from None
        return data

    def fingerprint(self, canonical: bytes) -> str:
        return hmac.new(self._mac_keys[0], canonical, hashlib.sha256).hexdigest()

    def fingerprint_matches(self, canonical: bytes, stored: str) -> bool:
        return any(
            hmac.compare_digest(hmac.new(key, canonical, hashlib.sha256).hexdigest(), stored) for key in self._mac_keys
        )


def development_key(data_dir: Path) -> str:
    """A key kept beside the embedded database, so a development restart can still decrypt."""
    path = data_dir / "secrets.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    path.write_text(key)
    path.chmod(0o600)
    return key
