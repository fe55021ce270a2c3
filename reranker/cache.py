"""Where Rerank Lens keeps what it can rebuild: embeddings, BM25 indexes, rebuilt models.

Everything here is keyed by content (corpus and model fingerprints), so a stale entry is never
read; deleting the folder only costs the next start its rebuild.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np


def cache_root() -> Path:
    """`$RERANK_LENS_CACHE`, else ~/.cache/rerank-lens."""
    root = os.environ.get("RERANK_LENS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rerank-lens")
    return Path(root)


def atomic_save(path: Path, array: np.ndarray) -> None:
    """Write an array so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file so that readers see either the old file or the whole new one (never half of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # plain open: the umask's mode
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_copy(source: str | Path, target: str | Path) -> Path:
    """Copy a file byte for byte so that readers see either the old target or the whole copy (never half of it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_directory(target: Path, write: Callable[[Path], None], *, complete: str) -> None:
    """Fill a staging folder with `write`, then move it to `target` in one rename.

    `complete` names a file that exists only in a finished folder: if another process renamed its
    own copy first, that one is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        write(staging)
        if target.exists() and not (target / complete).is_file():
            shutil.rmtree(target, ignore_errors=True)  # a broken earlier copy
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first
            if not (target / complete).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """A thread-safe mapping that forgets its least recently used entries beyond `max_entries`.

    `get` and `put` count as a use. `on_evict(key, value)`, when given, runs (outside the lock) for each
    entry forgotten to stay within the bound, e.g. to delete files the entry owns.
    """

    def __init__(self, max_entries: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._data: OrderedDict[K, V] = OrderedDict()
        self.max_entries = max_entries
        self._on_evict = on_evict
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            evicted = self._trim()
        self._evicted(evicted)

    def get_or_put(self, key: K, make: Callable[[], V]) -> V:
        """The entry for `key`, made (under the lock, so once) and stored when missing."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            value = self._data[key] = make()
            evicted = self._trim()
        self._evicted(evicted)
        return value

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            return self._data.pop(key, default)

    def values(self) -> list[V]:
        with self._lock:
            return list(self._data.values())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def _trim(self) -> list[tuple[K, V]]:
        evicted = []
        while len(self._data) > self.max_entries:
            evicted.append(self._data.popitem(last=False))
        return evicted

    def _evicted(self, evicted: list[tuple[K, V]]) -> None:
        if self._on_evict is not None:
            for key, value in evicted:
                self._on_evict(key, value)
