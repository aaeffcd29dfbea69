"""Adobe's OpenAPI documents (docs/adobe-specs.md): the fetch command against a local HTTP server serving fake
documents, the lenient derivation, and the contract tests' skip (or failure, in CI) without the documents."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import adobe_specs
from devtools.adobe_specs import DESTINATIONS, LENIENT, REPOSITORY, Upstream

ROOT = Path(__file__).resolve().parents[2]

FAKE_DESTINATIONS = b"""\
openapi: 3.0.0
paths:
  /connections/{id}:
    patch:
      responses:
        '200':
          content:
            application/json:
              schema:
                oneOf: [{type: object}, {type: array, items: {oneOf: [{type: string}, {type: integer}]}}]
              examples:
                Patch_Connection_Response: {$ref: '#/components/examples/Patch_Connection_Response'}
        '202':
          content:
            application/json:
              examples:
                Missing: {$ref: '#/components/examples/Missing'}
                Known: {$ref: '#/components/examples/Known'}
components:
  examples:
    Known: {value: {}}
"""
FAKE_FLOW_SERVICE = b"openapi: 3.0.1\npaths: {}\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upstream(destinations: bytes = FAKE_DESTINATIONS, flow_service: bytes = FAKE_FLOW_SERVICE) -> tuple[Upstream, ...]:
    """The real pins' names and paths, with the fakes' digests (or, given other bytes, deliberately wrong ones)."""
    real = {doc.name: doc for doc in adobe_specs.UPSTREAM}
    return (
        Upstream(DESTINATIONS, real[DESTINATIONS].path, "1" * 40, _sha256(destinations)),
        Upstream("flow-service.yaml", real["flow-service.yaml"].path, "2" * 40, _sha256(flow_service)),
    )


class _Server(ThreadingHTTPServer):
    requested: list[str]


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def do_GET(self) -> None:
        assert isinstance(self.server, _Server)
        self.server.requested.append(self.path)
        super().do_GET()


class _Upstream:
    """Adobe's raw file host, on 127.0.0.1: ``/<commit>/<path>`` under a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.server.requested = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def requested(self) -> list[str]:
        return list(self.server.requested)

    def publish(self, doc: Upstream, data: bytes) -> None:
        path = self.root / doc.commit / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Upstream]:
    served = _Upstream(tmp_path / "served")
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(adobe_specs.BASE_URL_ENV, served.url)
    monkeypatch.delenv(adobe_specs.REQUIRE_ENV, raising=False)
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        thread.join(5)


def _publish_fakes(upstream: _Upstream, pins: tuple[Upstream, ...]) -> None:
    upstream.publish(pins[0], FAKE_DESTINATIONS)
    upstream.publish(pins[1], FAKE_FLOW_SERVICE)


def test_fetch_writes_the_pinned_documents_and_the_lenient_copy(
    upstream: _Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = _upstream()
    monkeypatch.setattr(adobe_specs, "UPSTREAM", pins)
    _publish_fakes(upstream, pins)
    dest = tmp_path / "specs"
    monkeypatch.setenv(adobe_specs.DIR_ENV, str(dest))  # the default target, and the only place looked in

    assert adobe_specs.main([]) == 0

    assert sorted(upstream.requested) == sorted(f"/{doc.commit}/{doc.path}" for doc in pins)
    assert (dest / DESTINATIONS).read_bytes() == FAKE_DESTINATIONS
    assert (dest / "flow-service.yaml").read_bytes() == FAKE_FLOW_SERVICE
    lenient = yaml.safe_load((dest / LENIENT).read_text())
    patch = lenient["paths"]["/connections/{id}"]["patch"]["responses"]
    assert patch["200"]["content"]["application/json"] == {
        "schema": {
            "anyOf": [
                {"type": "object"},
                {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            ]
        }
    }, "the dangling example is gone with its emptied map, every oneOf is an anyOf"
    assert patch["202"]["content"]["application/json"]["examples"] == {"Known": {"$ref": "#/components/examples/Known"}}
    assert REPOSITORY in (dest / "SOURCES.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served", "specs"], "no staging folder is left behind"
    assert adobe_specs.locate() == dest
    assert "wrote" in capsys.readouterr().out

    # Found and matching its pins: the next run downloads nothing.
    assert adobe_specs.main([]) == 0
    assert len(upstream.requested) == len(pins)
    assert "nothing to fetch" in capsys.readouterr().out


def test_a_digest_mismatch_is_refused_and_leaves_the_target_as_it_was(
    upstream: _Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = _upstream(flow_service=b"not what is served")  # the second document fails, after the first passed
    monkeypatch.setattr(adobe_specs, "UPSTREAM", pins)
    _publish_fakes(upstream, pins)
    dest = tmp_path / "specs"
    dest.mkdir()
    (dest / "flow-service.yaml").write_text("old\n")
    (dest / LENIENT).write_text("old\n")
    monkeypatch.setenv(adobe_specs.DIR_ENV, str(dest))

    assert adobe_specs.main(["--force"]) == 1

    error = capsys.readouterr().err
    assert "flow-service.yaml" in error and f"not the pinned {pins[1].sha256}" in error
    assert _sha256(FAKE_FLOW_SERVICE) in error and "refused, nothing was written" in error
    assert sorted(p.name for p in dest.iterdir()) == [LENIENT, "flow-service.yaml"], "the verified first file too"
    assert {p.read_text() for p in dest.iterdir()} == {"old\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served", "specs"], "no staging folder is left behind"


def test_a_missing_document_is_reported_and_nothing_is_written(
    upstream: _Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = _upstream()
    monkeypatch.setattr(adobe_specs, "UPSTREAM", pins)
    upstream.publish(pins[0], FAKE_DESTINATIONS)  # flow-service.yaml is not served: 404
    dest = tmp_path / "specs"

    assert adobe_specs.main(["--dest", str(dest), "--force"]) == 1

    assert "could not download flow-service.yaml" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


def test_the_lenient_derivation_matches_the_copy_beside_the_documents() -> None:
    """The fetched lenient copy is the one the contract tests were written against (make_lenient in
    docs/adobe-specs.md), compared as data: the YAML layout may differ."""
    folder = adobe_specs.locate((DESTINATIONS, LENIENT))
    if folder is None:
        message = adobe_specs.missing_message((DESTINATIONS, LENIENT))
        if adobe_specs.required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert adobe_specs.verify(folder) == []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    derived = yaml.load(adobe_specs.lenient_yaml((folder / DESTINATIONS).read_bytes()), Loader=loader)
    assert derived == yaml.load((folder / LENIENT).read_bytes(), Loader=loader)


def _contract_tests(specs_dir: Path, *, require: bool) -> subprocess.CompletedProcess[str]:
    """The contract validator's tests in a pytest of their own, with ``specs_dir`` as the only place to look."""
    environment = {name: value for name, value in os.environ.items() if name != adobe_specs.REQUIRE_ENV}
    environment[adobe_specs.DIR_ENV] = str(specs_dir)
    if require:
        environment[adobe_specs.REQUIRE_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/emulator/test_contract_validator.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contract_tests_skip_with_the_reason_without_the_documents(tmp_path: Path) -> None:
    run = _contract_tests(tmp_path, require=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "8 skipped" in run.stdout
    reason = run.stdout.split("short test summary info", 1)[1]
    assert "flow-service.yaml, destinations.lenient.yaml were not found" in reason
    assert f"Adobe's public repository {REPOSITORY}" in reason
    assert all(f"{doc.path} @ {doc.commit}" in reason for doc in adobe_specs.UPSTREAM)
    assert "python3 dev.py fetch-adobe-specs" in reason


def test_contract_tests_fail_without_the_documents_when_required(tmp_path: Path) -> None:
    run = _contract_tests(tmp_path, require=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "8 errors" in run.stdout and "skipped" not in run.stdout
    assert f"{adobe_specs.REQUIRE_ENV} is set: Adobe's Flow Service OpenAPI documents" in run.stdout
    assert REPOSITORY in run.stdout


def test_dev_py_lists_the_command() -> None:
    shown = subprocess.run([sys.executable, "dev.py", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "fetch-adobe-specs" in shown.stdout
