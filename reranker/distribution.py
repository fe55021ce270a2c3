"""The installed distribution: its version, and where the files shipped beside the code live.

The app's style sheet (`assets/app.css`), the bundled corpora (`corpora/`) and the offline cross-encoder
(`models/`) sit next to the package in a source checkout. A wheel (`pip install .`) carries the same
files inside the package as `reranker/_bundled/<name>` (pyproject.toml maps them there), so an installed
`rerank-lens` opens on the bundled corpus and reranks offline exactly like the checkout.
"""

from __future__ import annotations

import logging
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

DISTRIBUTION = "rerank-lens"
PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_DATA = PACKAGE_DIR / "_bundled"  # inside an installed wheel
CHECKOUT = PACKAGE_DIR.parent  # the repository root, in a source checkout
BUNDLED = ("assets", "corpora", "models")


def bundled(name: str) -> Path:
    """The folder `name` (assets, corpora or models): the wheel's copy when installed, else the checkout's.

    When neither exists the checkout's path is returned and a warning says what is missing; callers
    then find no bundled corpus, no offline model or no style sheet, each with its own message.
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled folder {name!r}; one of {', '.join(BUNDLED)}")
    for root in (INSTALLED_DATA, CHECKOUT):
        if (root / name).is_dir():
            return root / name
    logger.warning(
        "the bundled %s/ folder is missing (looked in %s and %s); reinstall rerank-lens or run from a full checkout",
        name,
        INSTALLED_DATA,
        CHECKOUT,
    )
    return CHECKOUT / name


@cache
def version() -> str:
    """The version: the checkout's pyproject.toml when running from one, else the installed package's metadata."""
    pyproject = CHECKOUT / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            project = {}
        if project.get("name") == DISTRIBUTION and "version" in project:
            return str(project["version"])
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (neither installed nor in a checkout)"
