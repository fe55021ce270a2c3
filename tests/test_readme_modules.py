"""The module map (docs/architecture.md, linked from the README) lists every module of the package, and
nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAP = REPO / "docs" / "architecture.md"
SECTION = re.compile(r"<!-- section:modules -->\s*```\n(.*?)```\s*<!-- /section:modules -->", re.S)
ENTRY = re.compile(r"^( *)(\S+)(?:\s{2,}(.*))?$")


def mapped_paths(text: str) -> dict[str, str]:
    """path -> description, from an indented tree (two spaces a level; folders end with /)."""
    folders: list[str] = []
    paths: dict[str, str] = {}
    for line in text.splitlines():
        match = ENTRY.match(line)
        if not match:
            continue
        level, name, description = len(match.group(1)) // 2, match.group(2), match.group(3) or ""
        folders = folders[:level]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
            paths["/".join(folders)] = description
        else:
            paths["/".join([*folders, name])] = description
    return paths


def test_the_module_map_covers_every_module():
    match = SECTION.search(MAP.read_text(encoding="utf-8"))
    assert match, "docs/architecture.md lost its <!-- section:modules --> map"
    mapped = mapped_paths(match.group(1))
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "reranker").rglob("*.py")}
    listed = {p for p in mapped if p.endswith(".py")}
    assert sorted(modules - listed) == [], "modules missing from the map in docs/architecture.md"
    assert sorted(listed - modules) == [], "the map in docs/architecture.md lists modules that no longer exist"
    assert all(mapped[p] for p in listed), "every module in the map says what it holds"
