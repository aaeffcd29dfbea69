"""TLS to Adobe: the HTTP client the runtime builds verifies certificates and host names, always;
ADOBE_CA_BUNDLE only changes which roots it trusts. Checked against a real local HTTPS server."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from app.runtime import AdobeEndpoints, Deployment, Runtime
from app.settings import Settings


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        # Valid for the name "localhost" only, not for the address 127.0.0.1.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    # A refused handshake can leave a handler waiting on its socket: do not wait for it at close.
    daemon_threads = True
    block_on_close = False


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = self_signed(tmp_path)
    server = _Server(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), cert
    server.shutdown()
    server.server_close()


def fetch(ca_bundle: Path | None, url: str) -> int:
    """GET ``url`` with the Adobe HTTP client exactly as the runtime builds it."""
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:9/none",  # never connected to here
        dev_mode=True,
        secrets_key=SecretStr(Fernet.generate_key().decode()),
        worker_enabled=False,
        adobe_ca_bundle=str(ca_bundle) if ca_bundle else None,
    )
    adobe = AdobeEndpoints(
        flow_service_url=url,
        ims_token_url=url,
        client_id="client",
        client_secret=SecretStr("secret"),
        org_id="org@AdobeOrg",
        scopes="openid",
    )

    async def run() -> int:
        runtime = Runtime(settings, Deployment(database_url=settings.database_url or "", adobe=adobe, run_worker=False))
        try:
            return (await runtime.http.get(url)).status_code
        finally:
            await runtime.http.aclose()
            await runtime.engine.dispose()

    return asyncio.run(run())


def test_an_untrusted_certificate_is_refused(https_server: tuple[int, Path]) -> None:
    port, _ = https_server
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(None, f"https://localhost:{port}/")


def test_the_ca_bundle_makes_it_trusted(https_server: tuple[int, Path]) -> None:
    port, cert = https_server
    assert fetch(cert, f"https://localhost:{port}/") == 200


def test_the_host_name_is_still_checked_with_a_ca_bundle(https_server: tuple[int, Path]) -> None:
    port, cert = https_server
    # The certificate names "localhost" only: reached by address, it must not be accepted.
    with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
        fetch(cert, f"https://127.0.0.1:{port}/")
