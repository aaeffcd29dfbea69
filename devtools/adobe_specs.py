"""Adobe's Flow Service OpenAPI documents for the contract tests: where they are looked for, how to fetch them.

The documents are Adobe's, published in the public repository AdobeDocs/experience-platform-apis (Apache License
2.0). They are not committed here (see docs/adobe-specs.md); the tests look for them, in this order, in:

1. ``$ADOBE_SPECS_DIR`` when it is set (and then only there: an explicit choice must not silently fall back to
   another copy);
2. ``../shared/adobe/`` beside the repository (where CI keeps them);
3. ``.adobe-specs/`` in the repository, which ``python3 dev.py fetch-adobe-specs`` fills.

The fetch downloads each document at a pinned commit, refuses any whose SHA-256 is not the pinned one, derives
``destinations.lenient.yaml``, and only then moves the files into place. ``ADOBE_SPECS_BASE_URL`` replaces the
download host (a test serves the files from 127.0.0.1).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = "AdobeDocs/experience-platform-apis"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}"
BASE_URL_ENV = "ADOBE_SPECS_BASE_URL"
DIR_ENV = "ADOBE_SPECS_DIR"
REQUIRE_ENV = "REQUIRE_ADOBE_SPECS"
DOCS = "docs/adobe-specs.md"
COMMAND = "python3 dev.py fetch-adobe-specs"

ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = ROOT.parent / "shared" / "adobe"
FETCHED_DIR = ROOT / ".adobe-specs"

DESTINATIONS = "destinations.yaml"
LENIENT = "destinations.lenient.yaml"
# What the contract validator loads: the generic document and the fixed destinations one.
NEEDED = ("flow-service.yaml", LENIENT)


@dataclass(frozen=True)
class Upstream:
    """One document as Adobe publishes it: its name here, its path and commit upstream, its SHA-256 at that commit."""

    name: str
    path: str
    commit: str
    sha256: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.commit}/{self.path}"


UPSTREAM: tuple[Upstream, ...] = (
    Upstream(
        DESTINATIONS,
        "static/swagger-specs/destinations.yaml",
        "a496fa86e6fb268c7f36bd48522a675dc1f0f6cc",
        "11e92fbf774a46b75ca64afe422afa120506c2222be7f3f6ee291932f685d038",
    ),
    Upstream(
        "flow-service.yaml",
        "static/swagger-specs/flow-service.yaml",
        "5fd9766204d5903092cea0c341fcb69d5e87942f",
        "f97b8f36a5ecb3282b9d65f1c3e0f283ed4afaf676053a1ef40b80857f660932",
    ),
)


class FetchError(Exception):
    """A document could not be downloaded or is not the pinned version; nothing was written."""


# --- where the documents are -------------------------------------------------------------------------------


def search_dirs() -> list[Path]:
    override = os.environ.get(DIR_ENV)
    if override:
        return [Path(override)]
    return [SHARED_DIR, FETCHED_DIR]


def locate(needed: Sequence[str] = NEEDED) -> Path | None:
    """The first folder of :func:`search_dirs` that holds every ``needed`` file, if any."""
    for folder in search_dirs():
        if all((folder / name).is_file() for name in needed):
            return folder
    return None


def required() -> bool:
    """CI sets REQUIRE_ADOBE_SPECS=1 so that missing documents fail the contract tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing_message(needed: Sequence[str] = NEEDED) -> str:
    """Why the contract tests cannot run, what the documents are and where they come from."""
    looked = ", ".join(str(folder) for folder in search_dirs())
    sources = "; ".join(f"{doc.path} @ {doc.commit}" for doc in UPSTREAM)
    return (
        f"Adobe's Flow Service OpenAPI documents {', '.join(needed)} were not found (looked in {looked}). "
        f"They come from Adobe's public repository {REPOSITORY}: {sources}; {LENIENT} is derived from "
        f"{DESTINATIONS}. Fetch them with `{COMMAND}` or set {DIR_ENV} to a folder holding them (see {DOCS})."
    )


def verify(folder: Path, upstream: Sequence[Upstream] | None = None) -> list[str]:
    """Problems of the upstream documents present in ``folder``: a SHA-256 that is not the pinned one."""
    problems = []
    for doc in upstream or UPSTREAM:
        path = folder / doc.name
        if path.is_file():
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != doc.sha256:
                problems.append(f"{path}: SHA-256 {actual} is not the pinned {doc.sha256} ({doc.path} @ {doc.commit})")
    return problems


# --- the lenient copy ----------------------------------------------------------------------------------------

_EXAMPLE_REF = "#/components/examples/"


def make_lenient(spec: dict[str, Any]) -> dict[str, Any]:
    """``destinations.yaml`` with its two known defects fixed, so that strict validators accept it:

    1. an example that refers to a component example that does not exist is dropped (the PATCH
       ``/connections/{id}`` 200 response names a missing ``Patch_Connection_Response``, and strict loaders refuse
       the whole document over it);
    2. every ``oneOf`` becomes ``anyOf``: alternatives overlap (a segment selector matches both the V1 and the V2
       schema), so even Adobe's own PATCH examples fail "exactly one of".
    """
    lenient = copy.deepcopy(spec)
    components = lenient.get("components") or {}
    _relax(lenient, set(components.get("examples") or {}))
    return lenient


def _relax(node: Any, known_examples: set[str]) -> None:
    if isinstance(node, dict):
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        examples = node.get("examples")
        if isinstance(examples, dict):
            for key in [key for key, example in examples.items() if _dangling(example, known_examples)]:
                del examples[key]
            if not examples:
                del node["examples"]  # an empty examples map is itself invalid
        for value in node.values():
            _relax(value, known_examples)
    elif isinstance(node, list):
        for value in node:
            _relax(value, known_examples)


def _dangling(example: Any, known_examples: set[str]) -> bool:
    if not isinstance(example, dict) or set(example) != {"$ref"} or not isinstance(example["$ref"], str):
        return False
    ref: str = example["$ref"]
    return ref.startswith(_EXAMPLE_REF) and ref.removeprefix(_EXAMPLE_REF) not in known_examples


def lenient_yaml(destinations: bytes) -> bytes:
    import yaml  # the project's test extra; imported here so that locating the documents needs nothing installed

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the document is 350 kB
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    spec = yaml.load(destinations, Loader=loader)  # a safe loader, chosen above
    if not isinstance(spec, dict):
        raise ValueError(f"{DESTINATIONS} is not a YAML mapping")
    text: str = yaml.dump(make_lenient(spec), Dumper=dumper, sort_keys=False, allow_unicode=True)
    return text.encode()


# --- the fetch ---------------------------------------------------------------------------------------------


def download(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: bytes = response.read()
    return data


def fetch(
    dest: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    upstream: Sequence[Upstream] | None = None,
    get: Callable[[str], bytes] = download,
) -> list[Path]:
    """Download every upstream document into a staging folder beside ``dest``, check each against its pinned SHA-256,
    derive the lenient copy, and only then move the files into ``dest``: any failure leaves ``dest`` as it was."""
    docs = upstream or UPSTREAM
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Beside dest, not in /tmp: os.replace below must stay on one file system to be atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-partial-", dir=dest.parent))
    try:
        for doc in docs:
            url = doc.url(base_url)
            try:
                data = get(url)
            except (urllib.error.URLError, OSError) as error:
                raise FetchError(f"could not download {doc.name} from {url}: {error}") from error
            actual = hashlib.sha256(data).hexdigest()
            if actual != doc.sha256:
                raise FetchError(
                    f"{doc.name} from {url} has SHA-256 {actual}, not the pinned {doc.sha256}: "
                    f"refused, nothing was written to {dest}"
                )
            (staging / doc.name).write_bytes(data)
        names = [doc.name for doc in docs]
        if DESTINATIONS in names:
            try:
                (staging / LENIENT).write_bytes(lenient_yaml((staging / DESTINATIONS).read_bytes()))
            except Exception as error:  # a YAML error, whatever its class: report it like the others
                raise FetchError(f"could not derive {LENIENT}: {error}; nothing was written to {dest}") from error
            names.append(LENIENT)
        (staging / "SOURCES.txt").write_text(_sources(docs, base_url))
        names.append("SOURCES.txt")
        dest.mkdir(exist_ok=True)
        for name in names:
            os.replace(staging / name, dest / name)
        return [dest / name for name in names]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sources(docs: Sequence[Upstream], base_url: str) -> str:
    lines = [
        f"Fetched by `{COMMAND}` from Adobe's public repository {REPOSITORY} (Apache License 2.0); see {DOCS}.",
        *(f"{doc.name}: {doc.url(base_url)} sha256={doc.sha256}" for doc in docs),
        f"{LENIENT}: derived from {DESTINATIONS} (devtools/adobe_specs.py, make_lenient)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Fetch Adobe's Flow Service OpenAPI documents for the contract tests (pinned commits, SHA-256 "
        f"checked). Nothing is downloaded when the tests already find them (in ${DIR_ENV}, else ../shared/adobe, "
        "else .adobe-specs).",
    )
    parser.add_argument("--dest", type=Path, help=f"folder to fill (default: ${DIR_ENV}, else .adobe-specs)")
    parser.add_argument("--force", action="store_true", help="download even when the documents are found")
    args = parser.parse_args(argv)
    dest: Path = args.dest or Path(os.environ.get(DIR_ENV) or FETCHED_DIR)

    if not args.force and (found := locate()) is not None:
        problems = verify(found)
        if not problems:
            print(f"Adobe's documents are in {found}: nothing to fetch")
            return 0
        if found.absolute() != dest.absolute():
            heading = "fetch-adobe-specs: the documents the tests would read are not the pinned ones:"
            print("\n".join([heading, *problems]), file=sys.stderr)
            return 1
        print(f"{found} holds other versions than the pinned ones: fetching again")

    base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    try:
        written = fetch(dest, base_url=base_url)
    except FetchError as error:
        print(f"fetch-adobe-specs: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    found = locate()
    if found is None or found.absolute() != dest.absolute():
        print(f"note: the tests read {found or 'nothing'} first; set {DIR_ENV}={dest} to use these", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
