"""The shared corpora: bundled ones and BEIR folders under the data directories, read-only and shared by
every visitor, each loaded and indexed once per process (one `Pipeline` per corpus, shared by concurrent
users). `CorpusEntry` is one corpus's loaded dataset and pipeline, also used for a workspace's uploads
(`reranker.ui.uploads`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reranker.corpus import Dataset, load_dataset
from reranker.corpus_keys import bundled_key, data_key
from reranker.cross_encoder import SCORE_CACHE_ENTRIES
from reranker.distribution import bundled
from reranker.pipeline import Pipeline, PipelineConfig

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DIR = bundled("corpora")
DEFAULT_CORPUS = "knowledge"

SourceKind = Literal["bundled", "data", "upload"]
# A pipeline's score cache bound (pairs) for an uploaded corpus: a small corpus of one workspace, and a server
# holds many of them (reranker.ui.state.MAX_OPEN_WORKSPACES), so each keeps a tenth of a shared corpus's.
UPLOAD_SCORE_CACHE_ENTRIES = SCORE_CACHE_ENTRIES // 10
ProgressFn = Callable[[int, int], None]


def default_data_dirs() -> list[Path]:
    """Folders scanned for BEIR datasets: $RERANK_LENS_DATA (os.pathsep-separated), else ../shared/datasets."""
    env = os.environ.get("RERANK_LENS_DATA")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return [REPO_ROOT.parent / "shared" / "datasets"]


@dataclass(frozen=True)
class CorpusSource:
    """Where a corpus can be loaded from, and how the picker names it."""

    key: str
    label: str
    path: str
    kind: SourceKind


@dataclass
class CorpusEntry:
    """One corpus in memory: its dataset as shipped (or uploaded), loaded once, and its pipeline, built once."""

    source: CorpusSource
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards loading the dataset
    build_lock: threading.Lock = field(default_factory=threading.Lock)  # guards building the pipeline (slow)
    dataset: Dataset | None = None
    pipeline: Pipeline | None = None
    judged: Any = None  # the dataset with its judgments merged, cached by `reranker.ui.judging`

    def load(self) -> Dataset:
        with self.lock:
            if self.dataset is None:
                self.dataset = load_dataset(self.source.path)
                for problem in self.dataset.problems:
                    logger.warning("%s: %s", self.source.label, problem)
            return self.dataset

    def build(self, config: PipelineConfig, cache_dir: str | None, progress: ProgressFn | None = None) -> Pipeline:
        """The corpus's pipeline, building BM25 and the dense index on first use."""
        dataset = self.load()  # the dataset stays readable (examples, judgments) while indexes build
        with self.build_lock:
            if self.pipeline is None:
                with progress_listener(progress):
                    entries = UPLOAD_SCORE_CACHE_ENTRIES if self.source.kind == "upload" else SCORE_CACHE_ENTRIES
                    self.pipeline = Pipeline(
                        dataset.corpus, config, progress=_forward_progress, cache_dir=cache_dir, score_cache_entries=entries
                    )
            return self.pipeline


_progress_local = threading.local()


def _forward_progress(done: int, total: int) -> None:
    """Pipelines report encoding progress here; it goes to whichever request is building in this thread."""
    listener = getattr(_progress_local, "listener", None)
    if listener is not None:
        listener(done, total)


@contextmanager
def progress_listener(callback: ProgressFn | None) -> Iterator[None]:
    """Route pipeline progress reports in this thread to `callback` for the duration of a block."""
    previous = getattr(_progress_local, "listener", None)
    _progress_local.listener = callback
    try:
        yield
    finally:
        _progress_local.listener = previous


def has_beir(folder: Path) -> bool:
    return (folder / "corpus.jsonl").is_file()


def discover(bundled_dir: Path, data_dirs: Iterable[Path]) -> list[CorpusSource]:
    """Bundled corpora first (the default one at the top), then BEIR folders under the data dirs."""
    found: list[CorpusSource] = []
    if bundled_dir.is_dir():
        names = sorted(p.name for p in bundled_dir.iterdir() if p.is_dir() and has_beir(p))
        names.sort(key=lambda n: n != DEFAULT_CORPUS)
        found += [CorpusSource(bundled_key(n), f"{n} (bundled)", str(bundled_dir / n), "bundled") for n in names]
    for root in data_dirs:
        if not root.is_dir():
            continue
        candidates = [root] if has_beir(root) else sorted(p for p in root.iterdir() if p.is_dir() and has_beir(p))
        for folder in candidates:
            key = data_key(folder)
            if all(s.key != key for s in found):
                found.append(CorpusSource(key, f"{folder.name} ({folder.parent.name}/)", str(folder), "data"))
    return found


class CorpusShelf:
    """Corpus entries by key, in the order they came, behind a lock: what the shared corpora and a workspace's
    uploads (reranker.ui.uploads.UploadShelf) both hold. Thread-safe."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, CorpusEntry] = OrderedDict()
        self._lock = threading.Lock()

    def _register(self, sources: Iterable[CorpusSource]) -> None:
        """An entry for each source not held yet (one already held keeps its loaded dataset)."""
        with self._lock:
            for source in sources:
                self._entries.setdefault(source.key, CorpusEntry(source))

    def sources(self) -> list[CorpusSource]:
        with self._lock:
            return [entry.source for entry in self._entries.values()]

    def entry(self, key: str) -> CorpusEntry | None:
        with self._lock:
            return self._entries.get(key)


class SharedCorpora(CorpusShelf):
    """The bundled and data-directory corpora, shared read-only by every visitor. Thread-safe."""

    def __init__(self, bundled_dir: Path, data_dirs: Iterable[Path], start_corpus: str | None = None) -> None:
        super().__init__()
        self.bundled_dir = Path(bundled_dir)
        self.data_dirs = [Path(d) for d in data_dirs]
        self.start_corpus = start_corpus
        self._warned_start_corpus = False
        self.refresh()

    def refresh(self) -> list[CorpusSource]:
        """Re-scan the bundled and data folders (corpora written after start appear)."""
        self._register(discover(self.bundled_dir, self.data_dirs))
        return self.sources()

    @property
    def default_key(self) -> str | None:
        """The start-up corpus: `start_corpus` (a key, or a corpus folder's name) if it names one, else the first."""
        sources = self.sources()
        wanted = (self.start_corpus or "").strip()
        if wanted:
            for source in sources:
                if wanted in (source.key, Path(source.path).name):
                    return source.key
            if not self._warned_start_corpus:
                names = ", ".join(Path(s.path).name for s in sources)
                logger.warning("start corpus %r not found (available: %s); starting on the default", wanted, names)
                self._warned_start_corpus = True
        return sources[0].key if sources else None


class WarmUps:
    """Which corpora the server is preparing in the background: a request for one waits for it rather than
    building it a second time."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def mark(self, key: str) -> threading.Event:
        """Mark a warm-up of `key` as running until the returned event is set."""
        done = threading.Event()
        with self._lock:
            self._events[key] = done
        return done

    def running(self, key: str) -> bool:
        with self._lock:
            done = self._events.get(key)
        return done is not None and not done.is_set()

    def wait(self, key: str, timeout: float | None = None) -> bool:
        """Wait for a running warm-up of `key` to end; True when none is running (any more)."""
        with self._lock:
            done = self._events.get(key)
        return done is None or done.wait(timeout)
