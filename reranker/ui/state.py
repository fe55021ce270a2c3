"""Process-wide registry of corpora and pipelines shared by every browser session.

Corpora come from three places: the project's bundled corpora (`corpora/<name>/corpus.jsonl`),
BEIR folders under data directories (e.g. `../shared/datasets/scifact`), and uploads. A corpus
is loaded and indexed once per process; concurrent users of the same corpus share one
`Pipeline`, and switching back to a corpus is instant. `dataset(key)` is the corpus with the
judgments people made in the app merged over its shipped qrels (`reranker.judgments`), read
again whenever someone grades.

An uploaded file of documents is read in memory. An uploaded BEIR zip (corpus, queries, qrels) is
extracted safely (`reranker.archives`) into a folder of its own under the upload folder
(`default_upload_dir`), so its splits can be evaluated, and it is found there again after a restart;
at most `MAX_UPLOADS` uploads are kept, the oldest (and its folder) forgotten first. A TREC run uploaded
for a corpus (`load_run`) becomes the "before" list of the corpus queries it ranks, for every session; a copy
is kept under the upload folder (`reranker.ui.kept_runs`) and, checked against the corpus again, restored the first
time the corpus's run is asked for after a restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reranker.archives import BeirLayout, extract_beir_zip, is_beir_zip
from reranker.corpus import Corpus, Dataset, load_beir, load_dataset, load_documents
from reranker.distribution import bundled
from reranker.errors import DataError
from reranker.judgments import (
    GRADES,
    JudgmentStore,
    RemovalReport,
    judgments_root,
    normalise_query,
    overlay_name,
    query_judgments,
    remove_judgments,
    with_overlay,
)
from reranker.pipeline import Pipeline, PipelineConfig, resolve_cross_encoder_spec
from reranker.runs import TrecRun, check_run, read_run
from reranker.ui.kept_runs import has_kept_run, keep_run, kept_run_folder, read_kept_run, set_aside, set_aside_folder

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DIR = bundled("corpora")
DEFAULT_CORPUS = "knowledge"
SEED_QUERY = "What is transformer attention mechanism?"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_SUFFIXES = (".jsonl", ".csv", ".txt", ".md", ".zip")
MAX_EXAMPLES = 8
MAX_UPLOADS = 10  # uploaded corpora kept per process; the oldest is forgotten first
_UPLOAD_FOLDER = re.compile(r"^(?P<stem>.+)-(?P<digest>[0-9a-f]{12})$")  # <name>-<content hash>

SourceKind = Literal["bundled", "data", "upload"]
ProgressFn = Callable[[int, int], None]


def default_data_dirs() -> list[Path]:
    """Folders scanned for BEIR datasets: $RERANK_LENS_DATA (os.pathsep-separated), else ../shared/datasets."""
    env = os.environ.get("RERANK_LENS_DATA")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return [REPO_ROOT.parent / "shared" / "datasets"]


def default_upload_dir() -> Path:
    """Where uploaded BEIR zips are extracted, one folder each: $RERANK_LENS_UPLOADS, else the app's data
    folder, $XDG_DATA_HOME (or ~/.local/share) /rerank-lens/uploads."""
    env = os.environ.get("RERANK_LENS_UPLOADS")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "rerank-lens" / "uploads"


@dataclass(frozen=True)
class CorpusSource:
    """Where a corpus can be loaded from, and how the picker names it."""

    key: str
    label: str
    path: str
    kind: SourceKind


@dataclass
class _Entry:
    source: CorpusSource
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards loading the dataset
    build_lock: threading.Lock = field(default_factory=threading.Lock)  # guards building the pipeline (slow)
    dataset: Dataset | None = None  # as shipped (or uploaded)
    pipeline: Pipeline | None = None
    judged: tuple[tuple, Dataset, int] | None = None  # (overlay stamp, dataset with the overlay, judgments used)
    run: LoadedRun | None = None  # an uploaded TREC run: the "before" list of the queries it ranks
    run_lock: threading.Lock = field(default_factory=threading.Lock)  # guards `run`, its kept copy, `run_restored`
    run_restored: bool = False  # whether a run kept by an earlier process was looked for (done once, lazily)


@dataclass(frozen=True)
class LoadedRun:
    """A TREC run uploaded for a corpus, checked against it: every query in its queries, every document in it."""

    name: str  # the file name as uploaded
    run: TrecRun
    digest: str

    @property
    def label(self) -> str:
        return f"uploaded run {self.name}"


@dataclass(frozen=True)
class BeforeList:
    """The list a query's reranking starts from: the uploaded run's list when the corpus has a run that ranks
    the query (`qid`), else BM25 + dense fusion. Search, Compare, the HTML snapshot and Evaluate's comparison
    on the current query all take it from `AppState.before_list`, so they agree and say the same."""

    loaded: LoadedRun | None = None  # the run uploaded for the corpus, if any
    qid: str | None = None  # the run's query id for this query, when the run ranks it

    @property
    def run(self) -> TrecRun | None:
        """The run whose list is the before list; None when it is fusion."""
        return self.loaded.run if self.loaded is not None and self.qid is not None else None

    @property
    def heading(self) -> str | None:
        """The before column's heading when it is not fusion's."""
        return f"Before: {self.loaded.label}" if self.loaded is not None and self.qid is not None else None

    @property
    def note(self) -> str | None:
        """What the before list is, when a run is uploaded for the corpus (without one, fusion goes unsaid)."""
        if self.loaded is None:
            return None
        if self.qid is not None:
            return f"before: {self.loaded.label} (its list for this query), reranked by the cross-encoder."
        return (
            f"before: BM25 + dense fused — the {self.loaded.label} has no list for this query "
            "(pick one of the corpus queries it ranks)."
        )


_progress_local = threading.local()


def _forward_progress(done: int, total: int) -> None:
    """Pipelines report encoding progress here; it goes to whichever request is building in this thread."""
    listener = getattr(_progress_local, "listener", None)
    if listener is not None:
        listener(done, total)


def _has_beir(folder: Path) -> bool:
    return (folder / "corpus.jsonl").is_file()


def discover(bundled_dir: Path, data_dirs: Iterable[Path]) -> list[CorpusSource]:
    """Bundled corpora first (the default one at the top), then BEIR folders under the data dirs."""
    found: list[CorpusSource] = []
    if bundled_dir.is_dir():
        names = sorted(p.name for p in bundled_dir.iterdir() if p.is_dir() and _has_beir(p))
        names.sort(key=lambda n: n != DEFAULT_CORPUS)
        found += [CorpusSource(f"bundled:{n}", f"{n} (bundled)", str(bundled_dir / n), "bundled") for n in names]
    for root in data_dirs:
        if not root.is_dir():
            continue
        candidates = [root] if _has_beir(root) else sorted(p for p in root.iterdir() if p.is_dir() and _has_beir(p))
        for folder in candidates:
            key = f"data:{folder.resolve()}"
            if all(s.key != key for s in found):
                found.append(CorpusSource(key, f"{folder.name} ({folder.parent.name}/)", str(folder), "data"))
    return found


def discover_uploads(upload_dir: Path) -> list[CorpusSource]:
    """BEIR folders extracted from earlier uploads (`<name>-<hash>/`), oldest first."""
    if not upload_dir.is_dir():
        return []
    found = []
    folders = [p for p in upload_dir.iterdir() if not p.is_symlink() and p.is_dir() and _has_beir(p)]
    for folder in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name)):
        match = _UPLOAD_FOLDER.match(folder.name)
        if match:
            found.append(CorpusSource(f"upload:{match['digest']}", f"{match['stem']} (upload, BEIR)", str(folder), "upload"))
    return found


class AppState:
    """Corpora, their datasets and pipelines; safe to share between threads."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        bundled_dir: Path | str = BUNDLED_DIR,
        data_dirs: Iterable[Path | str] | None = None,
        cache_dir: str | None = None,
        start_corpus: str | None = None,
        judgments_dir: Path | str | None = None,
        upload_dir: Path | str | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self.judgments_dir = Path(judgments_dir) if judgments_dir is not None else judgments_root()
        self.bundled_dir = Path(bundled_dir)
        self.data_dirs = [Path(d) for d in (default_data_dirs() if data_dirs is None else data_dirs)]
        self.upload_dir = Path(upload_dir) if upload_dir is not None else default_upload_dir()
        self.cache_dir = cache_dir
        self.start_corpus = start_corpus if start_corpus is not None else os.environ.get("RERANK_LENS_CORPUS")
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._warming: dict[str, threading.Event] = {}  # corpus key -> set when its warm-up ends
        self._warned_start_corpus = False
        self.refresh()

    def refresh(self) -> list[CorpusSource]:
        """Re-scan the bundled, data and upload folders (corpora written after start appear)."""
        sources = discover(self.bundled_dir, self.data_dirs)
        uploads = discover_uploads(self.upload_dir)
        with self._lock:
            for source in sources:
                self._entries.setdefault(source.key, _Entry(source))
            for source in uploads:
                self._entries.setdefault(source.key, _Entry(source))
            forgotten = self._forget_old_uploads()
        self._delete_folders(forgotten)
        return self.sources()

    def sources(self) -> list[CorpusSource]:
        with self._lock:
            return [entry.source for entry in self._entries.values()]

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        return [(s.label, s.key) for s in self.sources()]

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

    def source(self, key: str) -> CorpusSource:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            raise DataError(f"unknown corpus {key!r}; pick one from the list or upload a file")
        return entry.source

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            raise DataError(f"unknown corpus {key!r}; pick one from the list or upload a file")
        return entry

    def shipped_dataset(self, key: str) -> Dataset:
        """The corpus as shipped (or uploaded): its own qrels only."""
        entry = self._entry(key)
        with entry.lock:
            if entry.dataset is None:
                entry.dataset = _load(entry.source)
            return entry.dataset

    def dataset(self, key: str) -> Dataset:
        """The corpus with the overlay of judgments made here merged over its qrels (see `judgments.with_overlay`)."""
        return self._judged(key)[0]

    def overlay_used(self, key: str) -> int:
        """How many overlay judgments `dataset(key)` merged in."""
        return self._judged(key)[1]

    def judgments(self, key: str) -> JudgmentStore:
        """The corpus's overlay of judgments made in the app (or uploaded)."""
        return JudgmentStore(self.judgments_dir / overlay_name(self._entry(key).source.key))

    def _judged(self, key: str) -> tuple[Dataset, int]:
        shipped = self.shipped_dataset(key)
        entry = self._entry(key)
        store = self.judgments(key)
        stamp = store.stamp()
        cached = entry.judged
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        dataset, used = with_overlay(shipped, store.load())
        entry.judged = (stamp, dataset, used)
        return dataset, used

    def judge(self, key: str, query: str, doc_id: str, grade: int) -> str:
        """Save one grade (0-3) for a document and a query text in the corpus's overlay; returns the query id.

        A query the corpus does not ship gets a stable id from its text, and its text goes into the overlay.
        """
        if grade not in GRADES:
            raise DataError(f"grade {grade!r} is not one of {', '.join(map(str, GRADES))}")
        shipped = self.shipped_dataset(key)
        if doc_id not in shipped.corpus:
            raise DataError(f"document {doc_id!r} is not in {self.source(key).label}; search again and grade a listed one")
        qid = self._judged_query(key, query)
        new_text = {} if qid in shipped.queries else {qid: " ".join(query.split())}
        self.judgments(key).record([(qid, doc_id, grade)], queries_if_missing=new_text)
        return qid

    def unjudge(self, key: str, query: str, doc_id: str) -> RemovalReport:
        """Remove the grade made here for a document and a query text from the corpus's overlay. A grade the
        corpus ships cannot be removed: it applies again, and the report says so (see `judgments.remove_judgments`)."""
        qid = self._judged_query(key, query)
        return remove_judgments(self.judgments(key), self.shipped_dataset(key), qid, [doc_id])

    def _judged_query(self, key: str, query: str) -> str:
        """The query id grades of this text go under: a shipped query's, one judged here before, or a new one."""
        text = " ".join(query.split())
        if not text:
            raise DataError("the query is empty: search first, then grade the listed documents")
        return query_judgments(self.dataset(key), text)[0]

    def is_ready(self, key: str) -> bool:
        entry = self._entry(key)
        return entry.pipeline is not None

    def mark_warming(self, key: str) -> threading.Event:
        """Mark a warm-up of `key` (indexing it, loading the default cross-encoder) as running until the
        returned event is set: meanwhile a request for `key` says the corpus and model are being prepared
        and waits for them instead of building them a second time."""
        done = threading.Event()
        with self._lock:
            self._warming[key] = done
        return done

    def is_warming(self, key: str) -> bool:
        """Whether a warm-up of `key` is still running."""
        with self._lock:
            done = self._warming.get(key)
        return done is not None and not done.is_set()

    def wait_warm(self, key: str, timeout: float | None = None) -> bool:
        """Wait for a running warm-up of `key` to end; True when none is running (any more)."""
        with self._lock:
            done = self._warming.get(key)
        return done is None or done.wait(timeout)

    def pipeline(self, key: str, progress: ProgressFn | None = None) -> Pipeline:
        """The corpus's pipeline, building BM25 and the dense index on first use (once per process)."""
        entry = self._entry(key)
        dataset = self.shipped_dataset(key)  # the dataset stays readable (examples, judgments) while indexes build
        with entry.build_lock:
            if entry.pipeline is None:
                with progress_listener(progress):
                    entry.pipeline = Pipeline(dataset.corpus, self.config, progress=_forward_progress, cache_dir=self.cache_dir)
            return entry.pipeline

    def add_upload(self, path: str | Path, display_name: str | None = None) -> CorpusSource:
        """Validate an uploaded file and register it; raises DataError (file and line) and registers nothing.

        A .zip holding corpus.jsonl (with queries.jsonl and qrels/<split>.tsv) is a BEIR dataset: extracted
        into its own folder under `upload_dir`, its judgments kept for the Evaluate tab. Any other file, or
        zip of files, is read as plain documents."""
        path = Path(path)
        name = display_name or path.name
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise DataError(f"unsupported file type; upload one of {', '.join(UPLOAD_SUFFIXES)}", path=name)
        digest = _digest(path, name)
        stem = re.sub(r"[^\w.\- ]+", "_", Path(name).stem)[:60].strip() or "upload"
        if path.suffix.lower() == ".zip" and is_beir_zip(path):
            dataset = self._extract_beir(path, name, f"{stem}-{digest}")
            splits = ", ".join(sorted(dataset.qrels))
            label = f"{stem} (upload, {len(dataset.corpus)} docs" + (f", judged: {splits})" if splits else ")")
            where = dataset.path
        else:
            try:
                corpus = load_documents(path, name=stem)
            except DataError as exc:
                # Name the file as the user knows it, not by its temporary path.
                raise DataError(str(exc).replace(str(path), name)) from None
            dataset = Dataset(corpus=corpus, path=name)
            label = f"{stem} (upload, {len(corpus)} docs)"
            where = str(path)
        source = CorpusSource(f"upload:{digest}", label, where, "upload")
        with self._lock:
            entry = self._entries.pop(source.key, None) or _Entry(source)
            entry.source = source
            self._entries[source.key] = entry  # the newest upload, last to be forgotten
            forgotten = self._forget_old_uploads()
        self._delete_folders(forgotten)
        with entry.lock:
            if entry.dataset is None:
                entry.dataset = dataset
        return entry.source

    def _extract_beir(self, path: Path, name: str, folder_name: str) -> Dataset:
        """Extract (or reuse) and load an uploaded BEIR zip; on any problem its new folder is removed."""
        folder = self.upload_dir / folder_name
        existed = (folder / "corpus.jsonl").is_file()
        layout: BeirLayout | None = None
        try:
            layout = extract_beir_zip(path, folder, label=name)
            dataset = load_beir(folder)
        except DataError as exc:
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            raise DataError(_as_uploaded(str(exc), folder, name, layout)) from None
        if existed:
            os.utime(folder)  # uploaded again: the newest, last to be forgotten
        problems = tuple(_as_uploaded(p, folder, name, layout) for p in dataset.problems)
        corpus = Corpus(dataset.corpus.documents, Path(name).stem)
        return dataclasses.replace(dataset, corpus=corpus, problems=problems)

    def _forget_old_uploads(self) -> list[Path]:
        """Forget the oldest uploads beyond MAX_UPLOADS (call with the lock held); their extracted folders and
        the folders of the runs kept for them."""
        uploads = [key for key, e in self._entries.items() if e.source.kind == "upload"]
        folders = []
        for key in uploads[: max(0, len(uploads) - MAX_UPLOADS)]:
            logger.info("forgetting the oldest upload %s (at most %d are kept)", key, MAX_UPLOADS)
            extracted = Path(self._entries.pop(key).source.path)
            if extracted.parent.resolve() == self.upload_dir.resolve() and extracted.is_dir():
                folders.append(extracted)
            kept = kept_run_folder(self.upload_dir, key)
            folders += [kept, set_aside_folder(kept)]
        return folders

    @staticmethod
    def _delete_folders(folders: Iterable[Path]) -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------ uploaded runs

    def load_run(self, key: str, path: str | Path, display_name: str | None = None) -> LoadedRun:
        """Check an uploaded TREC run against the corpus `key` and make it the corpus's "before" list for the
        queries it ranks, keeping a copy under the upload folder so that it is restored after a restart.
        Raises DataError naming the file (as uploaded) and line; the corpus's previous run, if any, then stays."""
        path = Path(path)
        name = display_name or path.name
        entry = self._entry(key)
        loaded = self._checked_run(key, path, name)
        with entry.run_lock:
            try:
                keep_run(kept_run_folder(self.upload_dir, key), key, path, loaded.name, loaded.digest)
            except OSError as exc:
                raise DataError(
                    f"the server could not keep a copy of the run ({exc.strerror or type(exc).__name__}), so the "
                    "before list is unchanged: free some space in its upload folder, or set RERANK_LENS_UPLOADS to "
                    "a writable one, then upload again",
                    path=name,
                ) from None
            entry.run = loaded
            entry.run_restored = True  # its copy replaced whatever an earlier process kept
        logger.info("run %s (%d queries) is the before list of %s", name, len(loaded.run), key)
        return loaded

    def run_for(self, key: str) -> LoadedRun | None:
        """The run uploaded for the corpus, if any. The first call for a corpus restores the run an earlier
        process kept for it, when that run still fits the corpus (which loads the corpus)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        self._restore_kept_run(key, entry)
        return entry.run

    def drop_run(self, key: str) -> None:
        """Go back to BM25 + dense fusion as the corpus's before list, deleting the run's kept copy."""
        entry = self._entry(key)
        with entry.run_lock:
            entry.run = None
            entry.run_restored = True  # nothing kept is left to restore
            shutil.rmtree(kept_run_folder(self.upload_dir, key), ignore_errors=True)

    def _checked_run(self, key: str, path: Path, name: str, digest: str | None = None) -> LoadedRun:
        """The run in `path` checked against the corpus (and, for a kept copy, against its recorded `digest`)."""
        actual = _digest(path, name)
        if digest is not None and actual != digest:
            raise DataError(f"the kept copy's content changed (digest {actual}, recorded {digest})", path=name)
        dataset = self.dataset(key)
        if not dataset.queries:
            raise DataError(
                f"{self.source(key).label} has no queries file, so the run's query ids cannot be matched to query "
                "texts: upload the corpus as a BEIR zip with queries.jsonl, then its run",
                path=name,
            )
        try:
            trec = dataclasses.replace(read_run(path), path=name)
            check_run(trec, dataset.corpus, dataset.queries)
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), name)) from None
        return LoadedRun(name, trec, actual)

    def _restore_kept_run(self, key: str, entry: _Entry) -> None:
        """Once per corpus and process: restore the run an earlier process kept for it, checked again against
        the corpus as it is now. A copy that no longer fits is set aside, with a log line saying why."""
        if entry.run_restored:
            return
        with entry.run_lock:
            if entry.run_restored:
                return
            folder = kept_run_folder(self.upload_dir, key)
            if has_kept_run(folder):
                self.dataset(key)  # a corpus that fails to load raises for its own reason, and is retried later
                try:
                    run_file, name, digest = read_kept_run(folder, key)
                    entry.run = self._checked_run(key, run_file, name, digest)
                    logger.info("restored the run %s kept for %s (%d queries)", name, key, len(entry.run.run))
                except (DataError, OSError) as exc:
                    aside = set_aside(folder)
                    logger.warning("the run kept for %s no longer fits the corpus, so it is not restored (%s); "
                                   "its copy is %s", key, exc, f"moved to {aside}" if aside else "removed")
            entry.run_restored = True

    def before_list(self, key: str, query: str) -> BeforeList:
        """Where the query's reranking starts: the corpus's run, when one is loaded and ranks a corpus query
        with this text (ignoring case, spacing and a final "?"), else fusion."""
        loaded = self.run_for(key)
        if loaded is None:
            return BeforeList()
        wanted = normalise_query(query or "")
        queries = self.dataset(key).queries
        qid = next((q for q in loaded.run.queries if normalise_query(queries.get(q, "")) == wanted), None)
        return BeforeList(loaded, qid)


def _digest(path: Path, name: str) -> str:
    """The first 12 hex digits of the file's SHA-256, refusing files over the upload limit."""
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise DataError(f"the file is {size / 2**20:.0f} MB; the upload limit is {MAX_UPLOAD_BYTES // 2**20} MB", path=name)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _as_uploaded(message: str, folder: Path, name: str, layout: BeirLayout | None) -> str:
    """A message about an extracted file, naming it as it sits in the uploaded zip (`data.zip:scifact/corpus.jsonl`)."""
    inside = f"{layout.root}/" if layout is not None and layout.root else ""
    return message.replace(f"{folder}{os.sep}", f"{name}:{inside}").replace(str(folder), name)


@contextmanager
def progress_listener(callback: ProgressFn | None) -> Iterator[None]:
    """Route pipeline progress reports in this thread to `callback` for the duration of a block."""
    previous = getattr(_progress_local, "listener", None)
    _progress_local.listener = callback
    try:
        yield
    finally:
        _progress_local.listener = previous


def warm_up(state: AppState, key: str | None = None) -> threading.Thread:
    """Index the default corpus and load the default cross-encoder in a background thread, so the
    first visitor's query only pays for inference. Until it ends, `state.is_warming(key)` is true (the
    page says it is preparing the corpus and model, and its opening query waits). Failures are logged;
    the page reports them later."""
    target = key or state.default_key
    done = state.mark_warming(target) if target else None  # before the thread starts: a page served at once sees it

    def run() -> None:
        if target is None:
            return
        try:
            pipeline = state.pipeline(target)
            spec = resolve_cross_encoder_spec(state.config.cross_encoder)
            if spec:
                pipeline.reranker(spec)
            logger.info("warm: %s indexed%s", target, f", {spec} loaded" if spec else "")
            # nDCG@10 (ranx) shows for judged queries and follows every grade, on any corpus: compile it now,
            # not on someone's first grade.
            from reranker.evaluation.metrics import warm_metrics

            warm_metrics()
            logger.info("warm: relevance metrics compiled")
        except Exception:  # a warm-up failure must not stop the server
            logger.exception("warm-up of %s failed; the first query will retry", target)
        finally:
            done.set()

    thread = threading.Thread(target=run, name="rerank-lens-warm-up", daemon=True)
    thread.start()
    return thread


def _load(source: CorpusSource) -> Dataset:
    dataset = load_dataset(source.path)
    for problem in dataset.problems:
        logger.warning("%s: %s", source.label, problem)
    return dataset


def example_queries(dataset: Dataset, limit: int = MAX_EXAMPLES) -> list[str]:
    """Judged queries first (test split, then others), the seed query at the top when present."""
    ordered: list[str] = []
    for split in sorted(dataset.qrels, key=lambda s: s != "test"):
        ordered += [dataset.queries[q] for q in dataset.qrels[split] if q in dataset.queries]
    ordered += list(dataset.queries.values())
    seen: set[str] = set()
    unique = [q for q in ordered if not (q in seen or seen.add(q))]
    if SEED_QUERY in seen:
        unique.remove(SEED_QUERY)
        unique.insert(0, SEED_QUERY)
    return unique[:limit]


def judgments_for(dataset: Dataset, query: str) -> tuple[str, dict[str, int]] | None:
    """(query id, doc id -> grade) when the query text matches a judged query of the dataset."""
    qid, grades = query_judgments(dataset, query)
    return (qid, grades) if grades else None
