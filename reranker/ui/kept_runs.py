"""The copies of uploaded TREC runs kept on disk, so that a corpus's run survives a server restart.

One folder per corpus under the workspace's folder, `<workspace>/runs/<hash of the corpus key>/` (the key holds
':' and '/' and, for a data folder, any name at all, so it never names a path), holding the run file as
uploaded, `run-<digest>.trec`, and `run.json` with the corpus key, the name as uploaded and the digest. A
copy that no longer fits its corpus is set aside in `<folder>.unmatched` rather than deleted, so the file
the user uploaded is not lost. Checking a run against its corpus is `RunStore`'s (reranker.ui.run_store).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from reranker.cache import atomic_copy, atomic_write_text
from reranker.errors import DataError

RUNS_FOLDER = "runs"  # under the upload folder: one folder per corpus whose uploaded run is kept
KEPT_RUN_INFO = "run.json"  # in a kept run's folder: the corpus key, the name as uploaded, the file's digest
SET_ASIDE_SUFFIX = ".unmatched"  # a kept run that no longer fits its corpus, moved aside rather than deleted
_DIGEST = re.compile(r"^[0-9a-f]{12}$")


def kept_run_folder(upload_dir: Path, key: str) -> Path:
    """The folder where the run uploaded for the corpus `key` is kept: `<upload_dir>/runs/<hash of the key>/`."""
    return upload_dir / RUNS_FOLDER / hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def keep_run(folder: Path, key: str, path: Path, name: str, digest: str) -> None:
    """Copy the run file `path` into `folder` as the corpus `key`'s kept run (callers serialise per corpus)."""
    run_file = _kept_run_file(digest)
    atomic_copy(path, folder / run_file)
    info = {"key": key, "name": name, "digest": digest}
    # The info file names the run file in use, so it is written last: a crash before it leaves the
    # previous run (and its info) whole.
    atomic_write_text(folder / KEPT_RUN_INFO, json.dumps(info, ensure_ascii=False, indent=1) + "\n")
    for older in folder.glob("run-*.trec"):
        if older.name != run_file:
            older.unlink(missing_ok=True)


def has_kept_run(folder: Path) -> bool:
    return (folder / KEPT_RUN_INFO).is_file()


def read_kept_run(folder: Path, key: str) -> tuple[Path, str, str]:
    """(run file, name as uploaded, digest) of the run kept in `folder`; DataError when its info file is not one
    this corpus's key wrote."""
    try:
        info = json.loads((folder / KEPT_RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable ({exc})", path=str(folder / KEPT_RUN_INFO)) from None
    if not isinstance(info, dict):
        info = {}
    name, digest = info.get("name"), info.get("digest")
    if info.get("key") != key or not isinstance(name, str) or not isinstance(digest, str) or not _DIGEST.match(digest):
        raise DataError("not the info of a run kept for this corpus", path=str(folder / KEPT_RUN_INFO))
    return folder / _kept_run_file(digest), name, digest


def set_aside_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + SET_ASIDE_SUFFIX)


def set_aside(folder: Path) -> Path | None:
    """Move a kept run that no longer fits out of the way (replacing an earlier one set aside); None when it
    could not be moved and was removed instead."""
    aside = set_aside_folder(folder)
    shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(folder, aside)
        return aside
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _kept_run_file(digest: str) -> str:
    return f"run-{digest}.trec"
