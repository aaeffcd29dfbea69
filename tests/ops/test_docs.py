"""The documentation cannot drift: the README stays a short front door, every relative link in the
README and docs/ leads to a file (and an #anchor to a heading in it), every environment variable
the service reads is documented in docs/configuration.md, and the generated-client example is the
one tests/ops/test_generated_client.py runs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200

_FENCE = re.compile(r"^(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target), with an optional "title"; the target has no spaces.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed (letters,
    digits, `_`, `-` and spaces stay), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, … as on GitHub."""
    seen: Counter[str] = Counter()
    result: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        result.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return result


def broken_links(path: Path, root: Path) -> list[str]:
    """The relative links of a Markdown file that lead nowhere, as 'file:line: target (why)'."""
    problems: list[str] = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):  # a link in code is no link
            target = match.group(1)
            if _SCHEME.match(target) or target.startswith("//"):
                continue  # http:, https:, mailto: …: not ours to check offline
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not resolved.is_relative_to(root.resolve()):
                problems.append(f"{where} (outside the repository)")
            elif not resolved.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where} (no heading with this anchor)")
    return problems


def test_readme_is_a_short_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    text = "\n".join(lines)
    for command in ("python3 dev.py serve", "python3 dev.py test"):
        assert command in text, f"the README must show {command!r}"


def test_readme_links_every_document() -> None:
    text = README.read_text(encoding="utf-8")
    unlinked = [doc.name for doc in sorted(DOCS.glob("*.md")) if f"(docs/{doc.name})" not in text]
    assert not unlinked, f"docs not linked from README.md: {unlinked}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path, ROOT) == []


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    names = sorted((field.alias or name).upper() for name, field in Settings.model_fields.items())
    assert names, "Settings reads no variable?"
    missing = [n for n in names if not re.search(rf"(?<![A-Z0-9_]){re.escape(n)}(?![A-Z0-9_])", text)]
    assert not missing, f"environment variables missing from docs/configuration.md: {missing}"


def test_the_generated_client_example_is_the_one_the_tests_run() -> None:
    from tests.ops.test_generated_client import DOCS_EXAMPLE

    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    examples = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert DOCS_EXAMPLE in examples, "docs/operations.md must show DOCS_EXAMPLE of test_generated_client.py"


# ---------------------------------------------------------------- the checker itself can fail
def test_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Rolling back (`POST`)\n\n## Rolling back (`POST`)\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/guide.md#rolling-back-post) [ok](docs/guide.md#rolling-back-post-1) [ok](#top)\n"
        "[gone](docs/missing.md) [bad anchor](docs/guide.md#rollback) [web](https://example.com/x.md)\n"
        "`[in code](docs/nowhere.md)`\n"
        "```\n[in a block](docs/nowhere.md)\n```\n"
        "# Top\n"
        "[after a block](docs/guide.md#guide) [gone too](../outside.md)\n"
    )
    assert broken_links(page, tmp_path) == [
        "README.md:2: docs/missing.md (no such file)",
        "README.md:2: docs/guide.md#rollback (no heading with this anchor)",
        "README.md:8: ../outside.md (outside the repository)",
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("What was done (issue 8), with what it measured", "what-was-done-issue-8-with-what-it-measured"),
        ("Rotating `SECRETS_KEY`", "rotating-secrets_key"),
        ("Health checks", "health-checks"),
        ("The lease guards every request, not every call", "the-lease-guards-every-request-not-every-call"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug
