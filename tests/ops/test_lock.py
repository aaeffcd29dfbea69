"""The hashed locks cannot drift from pyproject.toml: every dependency (with its extras' own
requirements) is pinned, with hashes, at a version pyproject allows; both locks agree; and what
installs the project (dev.py, the Dockerfile) installs from them."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import dev

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
BUILD = [Requirement(line) for line in PYPROJECT["build-system"]["requires"]]
TEST = [Requirement(line) for line in PYPROJECT["project"]["optional-dependencies"]["test"]]
STALE = "out of date with pyproject.toml: run `python3 dev.py lock` (docs/development.md)"


def parse_lock(path: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """name -> (the pinned requirement with its marker, its hashes)."""
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = line.strip().removesuffix("\\").strip()
        if line[0].isspace():
            assert current is not None and text.startswith("--hash=sha256:"), f"{path.name}: {line!r}"
            entries[current][1].append(text.removeprefix("--hash="))
            continue
        requirement = Requirement(text)
        current = canonicalize_name(requirement.name)
        assert current not in entries, f"{path.name}: {requirement.name} twice"
        entries[current] = (requirement, [])
    return entries


LOCKS = {path.name: parse_lock(path) for path in (dev.RUNTIME_LOCK, dev.TEST_LOCK)}


def pinned(lock: dict[str, tuple[Requirement, list[str]]], name: str) -> str:
    requirement = lock[canonicalize_name(name)][0]
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", requirement
    return specifier.version


def extras_requirements(requirement: Requirement) -> list[Requirement]:
    """What ``name[extra]`` adds, read from the installed distribution's metadata."""
    if not requirement.extras:
        return []
    try:
        listed = requires(requirement.name) or []
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is not installed: {STALE}")
    added = []
    for line in listed:
        dependency = Requirement(line)
        marker = dependency.marker
        if marker is None or marker.evaluate({"extra": ""}):
            continue  # a requirement without the extra too (or not on this platform)
        if any(marker.evaluate({"extra": extra}) for extra in requirement.extras):
            added.append(dependency)
    return added


@pytest.mark.parametrize(
    ("lock_name", "wanted"),
    [(dev.RUNTIME_LOCK.name, RUNTIME + BUILD), (dev.TEST_LOCK.name, RUNTIME + BUILD + TEST)],
)
def test_every_dependency_of_pyproject_is_pinned_at_an_allowed_version(
    lock_name: str, wanted: list[Requirement]
) -> None:
    lock = LOCKS[lock_name]
    for requirement in wanted:
        for needed in [requirement, *extras_requirements(requirement)]:
            assert canonicalize_name(needed.name) in lock, f"{lock_name} lacks {needed.name}: {STALE}"
            version = pinned(lock, needed.name)
            assert needed.specifier.contains(version, prereleases=True), (
                f"{lock_name} pins {needed.name}=={version}, pyproject wants {needed}: {STALE}"
            )


def test_the_runtime_lock_has_no_test_tools_and_agrees_with_the_test_lock() -> None:
    runtime, test = LOCKS[dev.RUNTIME_LOCK.name], LOCKS[dev.TEST_LOCK.name]
    assert set(runtime) <= set(test)
    for name, (requirement, hashes) in runtime.items():
        assert str(requirement) == str(test[name][0]), f"{name}: the locks differ: {STALE}"
        assert hashes == test[name][1], f"{name}: the locks' hashes differ: {STALE}"
    # Some of the test extra come with the runtime too (pyyaml with uvicorn[standard]): not these.
    assert not {"pytest", "ruff", "mypy", "schemathesis"} & set(runtime), "test tools in the image's lock"


def test_every_pin_has_hashes_and_the_lock_says_how_to_refresh_it() -> None:
    for name, lock in LOCKS.items():
        assert all(hashes for _, hashes in lock.values()), f"{name}: a pin without --hash"
        assert (ROOT / name).read_text().splitlines()[0] == dev.LOCK_POINTER


def test_the_image_and_dev_py_install_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    source = (ROOT / "dev.py").read_text()
    assert '"--require-hashes", "-r", str(TEST_LOCK)' in source and '"--no-deps"' in source


def test_dev_py_reinstalls_when_the_lock_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dev.install_digest()
    changed = tmp_path / dev.TEST_LOCK.name
    changed.write_text(dev.TEST_LOCK.read_text() + "# changed\n")
    monkeypatch.setattr(dev, "TEST_LOCK", changed)
    assert dev.install_digest() != before
