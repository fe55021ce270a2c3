"""The app's state, split into stores with one job each, and the `Visitor` through which a page sees them.

- `SharedCorpora` (`reranker.ui.corpora`): bundled and data-directory corpora, read-only, one dataset and
  one pipeline per corpus per process, shared by every visitor; `WarmUps` says which one the server is
  preparing.
- `WorkspaceStore` and `ShareStore` (`reranker.ui.workspaces`): one workspace per visitor (an opaque id the
  browser keeps, or the login), idle ones expiring; share links the owner can revoke.
- `Workspace`: one workspace in memory: its uploads (`reranker.ui.uploads.UploadShelf`, within its quota)
  and its TREC runs (`reranker.ui.run_store.RunStore`), both kept in its folder.
- Judgments go through `reranker.ui.judging` (one place that records a grade with its judge's name).
- What the page keeps between requests (the results shown, evaluation reports, stop flags, files to
  download) is owned here too, bounded, and the temporary files live in one folder (`Scratch`) removed
  with the app.

`AppState` holds the stores; `AppState.visitor_for(request)` is the `Visitor` of one request: the shared
corpora, that visitor's own uploads and runs, and the share links they opened, and nothing else.
`AppState` is itself the visitor of a local workspace (the upload folder itself), for scripts, the
command line and tests that use it without a server.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from reranker.cache import BoundedLRU
from reranker.corpus import Dataset
from reranker.corpus_keys import is_upload_key
from reranker.errors import ConfigError, DataError
from reranker.evaluation.analysis import ReportCache
from reranker.judgments import GRADES, JudgmentStore, RemovalReport, judgments_root, query_judgments
from reranker.pipeline import Pipeline, PipelineConfig, resolve_cross_encoder_spec
from reranker.ui import judging
from reranker.ui.corpora import (
    BUNDLED_DIR,
    DEFAULT_CORPUS,
    REPO_ROOT,
    CorpusEntry,
    CorpusSource,
    ProgressFn,
    SharedCorpora,
    WarmUps,
    default_data_dirs,
    discover,
    progress_listener,
)
from reranker.ui.run_store import BeforeList, LoadedRun, RunCorpus, RunStore
from reranker.ui.uploads import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, AddedUpload, UploadShelf
from reranker.ui.workspaces import Share, ShareMode, ShareStore, WorkspacePolicy, WorkspaceStore

__all__ = [
    "BUNDLED_DIR", "DEFAULT_CORPUS", "MAX_UPLOAD_BYTES", "REPO_ROOT", "UPLOAD_SUFFIXES", "AddedUpload", "AppState",
    "BeforeList", "CorpusSource", "LoadedRun", "Visitor", "default_data_dirs", "discover", "progress_listener",
]

logger = logging.getLogger(__name__)

SEED_QUERY = "What is transformer attention mechanism?"
MAX_EXAMPLES = 8
LOCAL = "local"  # the workspace of AppState used directly; no visitor's id can take this shape
SHARE_PREFIX = "share:"
MAX_OPEN_WORKSPACES = 64  # workspaces held in memory (their uploads' indexes); others are read again from disk
MAX_SESSIONS = 10_000  # browser sessions whose workspace is remembered in memory (the browser keeps it too)
MAX_OPENED_SHARES = 16  # share links one session keeps in its picker

T = TypeVar("T")


def default_upload_dir() -> Path:
    """Where uploads and workspaces are kept: $RERANK_LENS_UPLOADS, else the app's data folder,
    $XDG_DATA_HOME (or ~/.local/share) /rerank-lens/uploads."""
    env = os.environ.get("RERANK_LENS_UPLOADS")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "rerank-lens" / "uploads"


class Scratch:
    """The app's temporary files (download copies, evaluation files, snapshots) under one folder: at most
    `max_folders` kept (the oldest removed first), and the whole folder removed with the app."""

    def __init__(self, max_folders: int = 64) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rerank-lens-app-"))
        self._folders: BoundedLRU[str, Path] = BoundedLRU(max_folders, on_evict=lambda _, f: shutil.rmtree(f, True))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def folder(self, name: str) -> Path:
        """A folder of the scratch area by name (made once; content-named copies go in one)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"not a scratch folder name: {name!r}")
        folder = self.root / name
        self._folders.get_or_put(name, lambda: folder).mkdir(parents=True, exist_ok=True)
        return folder

    def new_folder(self, prefix: str) -> Path:
        """A fresh folder for one evaluation's or snapshot's files."""
        return self.folder(f"{prefix}-{secrets.token_hex(6)}")

    def close(self) -> None:
        self._cleanup()


class ShownResults(Generic[T]):
    """What pages show, by an unguessable view token, so a grade redraws it without searching again; the
    oldest are forgotten first (a page then asks to search again)."""

    def __init__(self, max_entries: int = 256) -> None:
        self._data: BoundedLRU[str, T] = BoundedLRU(max_entries)

    def add(self, shown: T) -> str:
        token = secrets.token_urlsafe(12)
        self._data.put(token, shown)
        return token

    def get(self, token: str) -> T | None:
        return self._data.get(token)


class Workspace:
    """One workspace in memory: its uploads (within the quota) and runs, kept in `folder`. Its uploads'
    judgments live in `judgments_dir` (None: the app's judgments folder, for the local workspace)."""

    def __init__(self, workspace_id: str, folder: Path, policy: WorkspacePolicy, judgments_dir: Path | None) -> None:
        self.id = workspace_id
        self.folder = folder
        self.judgments_dir = judgments_dir
        self.runs = RunStore(folder)
        self.uploads = UploadShelf(folder, policy, on_forget=self.runs.forget)


@dataclass
class Session:
    """A browser session (a page load, or an API client) on this server: its workspace and the share links it opened."""

    workspace: str
    shares: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Opened:
    """A corpus key as one visitor may use it: the corpus, where its runs and judgments are, and what they may change."""

    key: str  # as the visitor names it (`share:<token>` for a shared link)
    base_key: str  # as the owner's workspace names it
    entry: CorpusEntry
    source: CorpusSource  # as the visitor's picker shows it
    runs: RunStore
    judgments_dir: Path
    share: Share | None = None

    @property
    def can_judge(self) -> bool:
        return self.share is None or self.share.can_judge

    @property
    def can_change_run(self) -> bool:
        return self.share is None


class Visitor:
    """What one visitor sees and may do: the shared corpora, their workspace's uploads and runs, and the share
    links they opened. `login` is the logged-in user's name, when the server asks for a login."""

    def __init__(self, app: AppState, workspace: Workspace, *, opened_shares: Iterable[str] = (),
                 login: str | None = None) -> None:
        self.app = app
        self.workspace = workspace
        self.opened_shares = tuple(opened_shares)
        self.login = login
        # What the page keeps between requests, owned by the app.
        self.config: PipelineConfig = app.config
        self.cache_dir: str | None = app.cache_dir
        self.shown: ShownResults[Any] = app.shown
        self.reports: ReportCache = app.reports
        self.scratch: Scratch = app.scratch
        self.stop_flags: BoundedLRU[str, threading.Event] = app.stop_flags

    # ------------------------------------------------------------ corpora

    def refresh(self) -> list[CorpusSource]:
        """Re-scan the bundled, data and workspace folders (corpora written after start appear)."""
        self.app.corpora.refresh()
        self.workspace.uploads.refresh()
        return self.sources()

    def sources(self) -> list[CorpusSource]:
        """The shared corpora, this workspace's uploads, then the share links this visitor opened."""
        shared = []
        for token in self.opened_shares:
            try:
                shared.append(self.open(SHARE_PREFIX + token).source)
            except DataError:
                continue  # revoked or expired: gone from the picker
        return [*self.app.corpora.sources(), *self.workspace.uploads.sources(), *shared]

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        return [(s.label, s.key) for s in self.sources()]

    @property
    def default_key(self) -> str | None:
        return self.app.corpora.default_key

    def open(self, key: str) -> Opened:
        """The corpus `key` as this visitor may use it; DataError when it is none of theirs."""
        key = key or ""
        if key.startswith(SHARE_PREFIX):
            share = self.app.shares.get(key[len(SHARE_PREFIX):])
            if share is None:
                raise DataError("this share link is unknown or was revoked; ask its owner for a new one")
            owner = self.app.open_workspace(share.workspace)
            try:
                base = self.app.open_in(owner, share.corpus_key, key)
            except DataError:
                raise DataError("the corpus of this share link is gone (its owner's upload was forgotten)") from None
            mode = "with judging" if share.can_judge else "read-only"
            source = CorpusSource(key, f"{base.source.label} — shared by link, {mode}", base.source.path, base.source.kind)
            return Opened(key, base.base_key, base.entry, source, base.runs, base.judgments_dir, share)
        return self.app.open_in(self.workspace, key, key)

    def source(self, key: str) -> CorpusSource:
        return self.open(key).source

    def shipped_dataset(self, key: str) -> Dataset:
        """The corpus as shipped (or uploaded): its own qrels only."""
        return self.open(key).entry.load()

    def dataset(self, key: str) -> Dataset:
        """The corpus with the judgments made here merged over its qrels (see `judgments.with_overlay`)."""
        return self._judged(key)[0]

    def overlay_used(self, key: str) -> int:
        """How many judgments made here `dataset(key)` merged in."""
        return self._judged(key)[1]

    def _judged(self, key: str) -> tuple[Dataset, int]:
        opened = self.open(key)
        return judging.judged_dataset(opened.entry, judging.store_for(opened.judgments_dir, opened.base_key))

    def judgments(self, key: str) -> JudgmentStore:
        """The corpus's judgments made in the app (or uploaded)."""
        opened = self.open(key)
        return judging.store_for(opened.judgments_dir, opened.base_key)

    def can_judge(self, key: str) -> bool:
        """Whether this visitor may grade in the corpus (not in a read-only shared view)."""
        return self.open(key).can_judge

    def writable_judgments(self, key: str) -> JudgmentStore:
        """The corpus's judgments, to change: refused in a read-only shared view."""
        opened = self.open(key)
        if not opened.can_judge:
            raise ConfigError("This shared view is read-only: its owner did not allow judging.")
        return judging.store_for(opened.judgments_dir, opened.base_key)

    def judge(self, key: str, query: str, doc_id: str, grade: int, judge: str | None = None) -> str:
        """Save one grade (0-3) for a document and a query text, in the judge's name (the login, when there is
        one); returns the query id. A query the corpus does not ship gets a stable id from its text, and its
        text is saved with the judgments."""
        if grade not in GRADES:
            raise DataError(f"grade {grade!r} is not one of {', '.join(map(str, GRADES))}")
        store = self.writable_judgments(key)
        shipped = self.shipped_dataset(key)
        if doc_id not in shipped.corpus:
            raise DataError(f"document {doc_id!r} is not in {self.source(key).label}; search again and grade a listed one")
        qid = self._judged_query(key, query)
        new_text = {} if qid in shipped.queries else {qid: " ".join(query.split())}
        judging.record_grade(store, qid, doc_id, grade, judge=self.login or judge, queries_if_missing=new_text)
        return qid

    def unjudge(self, key: str, query: str, doc_id: str, judge: str | None = None) -> RemovalReport:
        """Remove the grade made here for a document and a query text. A grade the corpus ships cannot be
        removed: it applies again, and the report says so (see `judgments.remove_judgments`)."""
        store = self.writable_judgments(key)
        qid = self._judged_query(key, query)
        return judging.remove_grade(store, self.shipped_dataset(key), qid, [doc_id], judge=self.login or judge)

    def _judged_query(self, key: str, query: str) -> str:
        """The query id grades of this text go under: a shipped query's, one judged here before, or a new one."""
        text = " ".join(query.split())
        if not text:
            raise DataError("the query is empty: search first, then grade the listed documents")
        return query_judgments(self.dataset(key), text)[0]

    # ------------------------------------------------------------ pipelines and warm-up

    def is_ready(self, key: str) -> bool:
        return self.open(key).entry.pipeline is not None

    def is_warming(self, key: str) -> bool:
        """Whether the server's warm-up of this corpus is still running."""
        return self.app.warmups.running(self.open(key).base_key)

    def wait_warm(self, key: str, timeout: float | None = None) -> bool:
        """Wait for a running warm-up of `key` to end; True when none is running (any more)."""
        return self.app.warmups.wait(self.open(key).base_key, timeout)

    def pipeline(self, key: str, progress: ProgressFn | None = None) -> Pipeline:
        """The corpus's pipeline, building BM25 and the dense index on first use (once per process)."""
        return self.open(key).entry.build(self.config, self.cache_dir, progress)

    # ------------------------------------------------------------ uploads and runs

    def upload(self, path: str | Path, display_name: str | None = None) -> AddedUpload:
        """Keep an uploaded file in this workspace and register it (see `UploadShelf.add`), and say which of
        the workspace's older uploads its quota forgot; raises DataError (file and line) and keeps nothing."""
        return self.workspace.uploads.add(path, display_name)

    def add_upload(self, path: str | Path, display_name: str | None = None) -> CorpusSource:
        return self.upload(path, display_name).source

    def _run_corpus(self, opened: Opened) -> RunCorpus:
        return RunCorpus(opened.base_key, opened.source.label, lambda: self.dataset(opened.key))

    def load_run(self, key: str, path: str | Path, display_name: str | None = None) -> LoadedRun:
        """Check an uploaded TREC run against the corpus and make it the corpus's "before" list, in this
        workspace only, for the queries it ranks (see `RunStore.load`)."""
        opened = self.open(key)
        if not opened.can_change_run:
            raise ConfigError("A shared view cannot change the run: its owner's run is the before list.")
        return opened.runs.load(self._run_corpus(opened), path, display_name)

    def run_for(self, key: str) -> LoadedRun | None:
        """The run uploaded for the corpus in this workspace (or, for a share link, its owner's), if any."""
        try:
            opened = self.open(key)
        except DataError:
            return None
        return opened.runs.run_for(self._run_corpus(opened))

    def drop_run(self, key: str) -> None:
        """Go back to BM25 + dense fusion as the corpus's before list, deleting the run's kept copy."""
        opened = self.open(key)
        if not opened.can_change_run:
            raise ConfigError("A shared view cannot change the run: its owner's run is the before list.")
        opened.runs.drop(opened.base_key)

    def before_list(self, key: str, query: str) -> BeforeList:
        """Where the query's reranking starts: the corpus's run, when one is loaded and ranks a corpus query
        with this text (ignoring case, spacing and a final "?"), else fusion."""
        opened = self.open(key)
        return opened.runs.before_list(self._run_corpus(opened), query)

    # ------------------------------------------------------------ sharing

    def share(self, key: str, query: str, mode: ShareMode) -> Share:
        """A share link to this workspace's corpus `key` (its run included) and `query`: read-only or with judging."""
        if self.workspace.id == LOCAL:
            raise ConfigError("Sharing needs a workspace: open the app in a browser.")
        opened = self.open(key)
        if opened.share is not None:
            raise ConfigError("This corpus is shared with you by link; only its owner can share it.")
        self.workspace.folder.mkdir(parents=True, exist_ok=True)  # a workspace that shares is kept (and can expire)
        return self.app.shares.create(self.workspace.id, opened.base_key, query, mode, opened.source.label)

    def shares(self) -> list[Share]:
        return self.app.shares.of(self.workspace.id) if self.workspace.id != LOCAL else []

    def revoke(self, token: str) -> bool:
        """Revoke one of this workspace's share links; False when it is not one of them."""
        return self.workspace.id != LOCAL and self.app.shares.revoke(self.workspace.id, token)


class AppState(Visitor):
    """The stores of one server (see the module's docstring), and the visitor of its local workspace."""

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
        policy: WorkspacePolicy | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self.judgments_dir = Path(judgments_dir) if judgments_dir is not None else judgments_root()
        self.upload_dir = Path(upload_dir) if upload_dir is not None else default_upload_dir()
        self.cache_dir = cache_dir
        start = start_corpus if start_corpus is not None else os.environ.get("RERANK_LENS_CORPUS")
        dirs = default_data_dirs() if data_dirs is None else [Path(d) for d in data_dirs]
        self.corpora = SharedCorpora(Path(bundled_dir), dirs, start)
        self.policy = policy or WorkspacePolicy.from_env()
        self.workspaces = WorkspaceStore(self.upload_dir, self.policy)
        self.shares = ShareStore(self.upload_dir)
        self.warmups = WarmUps()
        self.shown: ShownResults[Any] = ShownResults()
        self.reports = ReportCache()
        self.stop_flags: BoundedLRU[str, threading.Event] = BoundedLRU(1024)
        self.scratch = Scratch()
        self._open: BoundedLRU[str, Workspace] = BoundedLRU(MAX_OPEN_WORKSPACES)
        self._sessions: BoundedLRU[str, Session] = BoundedLRU(MAX_SESSIONS)
        super().__init__(self, Workspace(LOCAL, self.upload_dir, self.policy, None))

    @property
    def bundled_dir(self) -> Path:
        return self.corpora.bundled_dir

    @property
    def data_dirs(self) -> list[Path]:
        return self.corpora.data_dirs

    def mark_warming(self, key: str) -> threading.Event:
        """Mark a warm-up of `key` (indexing it, loading the default cross-encoder) as running until the
        returned event is set: meanwhile a request for `key` says the corpus and model are being prepared
        and waits for them instead of building them a second time."""
        return self.warmups.mark(key)

    # ------------------------------------------------------------ workspaces

    def open_workspace(self, workspace_id: str) -> Workspace:
        """The workspace `workspace_id` (a valid id; see `WorkspaceStore.folder`), read from disk when not in memory."""
        folder = self.workspaces.folder(workspace_id)
        return self._open.get_or_put(
            workspace_id, lambda: Workspace(workspace_id, folder, self.policy, folder / "judgments")
        )

    def open_in(self, workspace: Workspace, key: str, as_key: str) -> Opened:
        """`key` among the shared corpora or `workspace`'s uploads; DataError when neither has it."""
        entry = self.corpora.entry(key)
        if entry is not None:
            return Opened(as_key, key, entry, entry.source, workspace.runs, self.judgments_dir)
        entry = workspace.uploads.entry(key) if is_upload_key(key) else None
        if entry is None:
            raise DataError(f"unknown corpus {key!r}; pick one from the list or upload a file")
        judgments = workspace.judgments_dir or self.judgments_dir
        return Opened(as_key, key, entry, entry.source, workspace.runs, judgments)

    def begin_session(self, request: Any, stored: object = None, share_token: object = None) -> tuple[str, Share | None]:
        """When a page opens: its workspace (the login's; else the id its browser kept, when this server issued
        it; else a new one) and the share link it opens, if `share_token` names a live one."""
        username = getattr(request, "username", None)
        workspace = self.workspaces.for_user(username) if username else self.workspaces.adopt(stored)
        session_id = getattr(request, "session_hash", None)
        if session_id:
            previous = self._sessions.get(session_id)
            opened = list(previous.shares) if previous is not None and previous.workspace == workspace else []
            self._sessions.put(session_id, Session(workspace, opened))
        self._sweep_if_due()
        return workspace, self.open_share(request, share_token) if share_token else None

    def open_share(self, request: Any, token: object) -> Share | None:
        """Add the share link `token` names to the request's session (its picker lists it); None when the
        token names no live link."""
        share = self.shares.get(token)
        if share is None:
            return None
        session_id = getattr(request, "session_hash", None)
        if session_id:
            self.visitor_for(request)  # the session gets its workspace first, if it has none yet
            session = self._sessions.get(session_id)
            if session is not None and share.token not in session.shares:
                session.shares = [*session.shares, share.token][-MAX_OPENED_SHARES:]
        return share

    def visitor_for(self, request: Any) -> Visitor:
        """The visitor a request comes from: a logged-in user's workspace, else its browser session's (a session
        the page did not open, e.g. an API client's, gets a new workspace of its own). No request: the local one."""
        if request is None:
            return self
        username = getattr(request, "username", None)
        session_id = getattr(request, "session_hash", None)
        session = self._sessions.get(session_id) if session_id else None
        if username:
            workspace = self.workspaces.for_user(username)
        elif session is not None:
            workspace = session.workspace
        else:
            workspace = self.workspaces.issue()
            if session_id:
                session = Session(workspace)
                self._sessions.put(session_id, session)
        self.workspaces.touch(workspace)
        self._sweep_if_due()
        return Visitor(self, self.open_workspace(workspace), opened_shares=session.shares if session else (), login=username)

    def expire(self, now: float | None = None) -> list[str]:
        """Remove the workspaces idle for longer than the policy allows: their files, share links and memory."""
        expired = self.workspaces.expired(now)
        for workspace in expired:
            self._open.pop(workspace)
            self.shares.revoke_all(workspace)
            self.workspaces.remove(workspace)
            logger.info("workspace %s… expired after %g idle days; its files are removed", workspace[:6],
                        self.policy.idle_days)
        return expired

    def _sweep_if_due(self) -> None:
        if self.workspaces.sweep_due():
            self.expire()


class RequestScoped:
    """The page's `ctx.state`: every attribute is the one of the visitor whose request is being handled (Gradio
    keeps the running event's request in a context variable), so a tab's handlers only ever reach their own
    visitor's uploads. Outside a request (while the page is built), the app's local visitor."""

    def __init__(self, app: AppState) -> None:
        self.app = app

    def current(self) -> Visitor:
        from gradio.context import LocalContext

        return self.app.visitor_for(LocalContext.request.get(None))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)


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
