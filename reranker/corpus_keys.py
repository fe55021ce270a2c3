"""Corpus keys: the one spelling of "which corpus" shared by the app (its corpus picker, uploads) and the
command line (`--dataset`), so judgments made in the app are found by `eval` for the same corpus.

`bundled:<name>` is a corpus shipped in corpora/, `data:<resolved folder>` one in a data directory or named by
path, `upload:<digest>` an upload (by content).
"""

from __future__ import annotations

from pathlib import Path

from reranker.distribution import bundled

BUNDLED = "bundled"
DATA = "data"
UPLOAD = "upload"


def bundled_key(name: str) -> str:
    return f"{BUNDLED}:{name}"


def data_key(folder: str | Path) -> str:
    return f"{DATA}:{Path(folder).expanduser().resolve()}"


def upload_key(digest: str) -> str:
    return f"{UPLOAD}:{digest}"


def is_upload_key(key: str) -> bool:
    return key.startswith(f"{UPLOAD}:")


def dataset_key(name: str) -> str:
    """The corpus key for `--dataset`'s value: a bundled corpus's name (or its folder) is `bundled:<name>`,
    anything else `data:<resolved path>`."""
    path = Path(name).expanduser()
    shipped = bundled("corpora")
    if not path.exists() and (shipped / name / "corpus.jsonl").is_file():
        return bundled_key(name)
    resolved = path.resolve()
    if resolved.parent == shipped.resolve():
        return bundled_key(resolved.name)
    return data_key(resolved)
