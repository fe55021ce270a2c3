"""The README stays a front door (issue #15): short, with the two commands, its pictures, and links that
lead somewhere. Measurement narratives live in benchmarks/README.md and docs/, so every relative link in
those pages must resolve too, anchors included, and every benchmark script must be shown with its command.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_README_CHARS = 12_000
PAGES = [README, REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a `[x](y)` is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_the_readme_is_short():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= MAX_README_CHARS, (
        f"README.md has {size:,} characters (at most {MAX_README_CHARS:,}): move the detail to docs/ or "
        "benchmarks/README.md and link to it"
    )


def test_the_readme_gives_the_two_commands():
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    assert "make app" in commands and "make test" in commands


def test_the_readme_shows_the_app():
    images = [t for t in relative_links(README) if t.endswith(".png")]
    assert "assets/screenshot.png" in images


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / unquote(path)).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
            broken.append(f"{target} (no such heading in {destination.relative_to(REPO).as_posix()})")
    assert not broken, f"{page.relative_to(REPO).as_posix()} links to: " + "; ".join(broken)


def test_the_readme_links_every_measurement_page():
    links = {t.partition("#")[0] for t in relative_links(README)}
    assert "benchmarks/README.md" in links
    for page in ("docs/models.md", "docs/evaluation.md"):
        assert page in links


def test_every_benchmark_is_shown_with_its_command():
    text = (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem not in {"__init__", "common"})
    missing = [s for s in scripts if f"python -m benchmarks.{s}" not in text]
    assert not missing, f"benchmarks/README.md should show the command of: {missing}"
