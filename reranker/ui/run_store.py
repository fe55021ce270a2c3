"""The TREC runs uploaded in one workspace (`RunStore`): per corpus, the run whose lists are the "before"
list of the queries it ranks, in that workspace only. A copy is kept under the workspace's folder
(`reranker.ui.kept_runs`) and, checked against the corpus again, restored the first time the corpus's
run is asked for after a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reranker.corpus import Dataset
from reranker.errors import DataError
from reranker.judgments import normalise_query
from reranker.runs import TrecRun, check_run, read_run
from reranker.ui.kept_runs import has_kept_run, keep_run, kept_run_folder, read_kept_run, set_aside, set_aside_folder
from reranker.ui.uploads import digest_of, named_as_uploaded

logger = logging.getLogger("reranker.ui.state")  # the messages people grep for since runs were AppState's


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
    on the current query all take it from `before_list`, so they agree and say the same."""

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


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards `run`, its kept copy, `restored`
    run: LoadedRun | None = None
    restored: bool = False  # whether a run kept by an earlier process was looked for (done once, lazily)


@dataclass(frozen=True)
class RunCorpus:
    """What a run is checked against: the corpus's key, its label, and its dataset (judgments merged)."""

    key: str
    label: str
    dataset: Callable[[], Dataset]


class RunStore:
    """The runs of one workspace, by corpus key, kept under `folder` (`<folder>/runs/<hash of the key>/`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def _slot(self, key: str) -> _Slot:
        with self._lock:
            return self._slots.setdefault(key, _Slot())

    def load(self, corpus: RunCorpus, path: str | Path, display_name: str | None = None) -> LoadedRun:
        """Check an uploaded TREC run against the corpus and make it its "before" list for the queries it ranks,
        keeping a copy so that it is restored after a restart. Raises DataError naming the file (as uploaded)
        and line; the corpus's previous run, if any, then stays."""
        path = Path(path)
        name = display_name or path.name
        slot = self._slot(corpus.key)
        loaded = self._checked(corpus, path, name)
        with slot.lock:
            try:
                keep_run(kept_run_folder(self.folder, corpus.key), corpus.key, path, loaded.name, loaded.digest)
            except OSError as exc:
                raise DataError(
                    f"the server could not keep a copy of the run ({exc.strerror or type(exc).__name__}), so the "
                    "before list is unchanged: free some space in its upload folder, or set RERANK_LENS_UPLOADS to "
                    "a writable one, then upload again",
                    path=name,
                ) from None
            slot.run = loaded
            slot.restored = True  # its copy replaced whatever an earlier process kept
        logger.info("run %s (%d queries) is the before list of %s", name, len(loaded.run), corpus.key)
        return loaded

    def run_for(self, corpus: RunCorpus) -> LoadedRun | None:
        """The run uploaded for the corpus, if any. The first call for a corpus restores the run an earlier
        process kept for it, when that run still fits the corpus (which loads the corpus)."""
        slot = self._slot(corpus.key)
        self._restore(corpus, slot)
        return slot.run

    def drop(self, key: str) -> None:
        """Go back to BM25 + dense fusion as the corpus's before list, deleting the run's kept copy."""
        slot = self._slot(key)
        with slot.lock:
            slot.run = None
            slot.restored = True  # nothing kept is left to restore
            shutil.rmtree(kept_run_folder(self.folder, key), ignore_errors=True)

    def forget(self, key: str) -> None:
        """The corpus itself is gone: drop its run and the copy set aside for it."""
        self.drop(key)
        shutil.rmtree(set_aside_folder(kept_run_folder(self.folder, key)), ignore_errors=True)

    def before_list(self, corpus: RunCorpus, query: str) -> BeforeList:
        """Where the query's reranking starts: the corpus's run, when one is loaded and ranks a corpus query
        with this text (ignoring case, spacing and a final "?"), else fusion."""
        loaded = self.run_for(corpus)
        if loaded is None:
            return BeforeList()
        wanted = normalise_query(query or "")
        queries = corpus.dataset().queries
        qid = next((q for q in loaded.run.queries if normalise_query(queries.get(q, "")) == wanted), None)
        return BeforeList(loaded, qid)

    def _checked(self, corpus: RunCorpus, path: Path, name: str, digest: str | None = None) -> LoadedRun:
        """The run in `path` checked against the corpus (and, for a kept copy, against its recorded `digest`)."""
        actual = digest_of(path, name)
        if digest is not None and actual != digest:
            raise DataError(f"the kept copy's content changed (digest {actual}, recorded {digest})", path=name)
        dataset = corpus.dataset()
        if not dataset.queries:
            raise DataError(
                f"{corpus.label} has no queries file, so the run's query ids cannot be matched to query "
                "texts: upload the corpus as a BEIR zip with queries.jsonl, then its run",
                path=name,
            )
        try:
            trec = dataclasses.replace(read_run(path), path=name)
            check_run(trec, dataset.corpus, dataset.queries)
        except DataError as exc:
            raise named_as_uploaded(exc, path, name) from None
        return LoadedRun(name, trec, actual)

    def _restore(self, corpus: RunCorpus, slot: _Slot) -> None:
        """Once per corpus and process: restore the run an earlier process kept for it, checked again against
        the corpus as it is now. A copy that no longer fits is set aside, with a log line saying why."""
        if slot.restored:
            return
        with slot.lock:
            if slot.restored:
                return
            folder = kept_run_folder(self.folder, corpus.key)
            if has_kept_run(folder):
                corpus.dataset()  # a corpus that fails to load raises for its own reason, and is retried later
                try:
                    run_file, name, digest = read_kept_run(folder, corpus.key)
                    slot.run = self._checked(corpus, run_file, name, digest)
                    logger.info("restored the run %s kept for %s (%d queries)", name, corpus.key, len(slot.run.run))
                except (DataError, OSError) as exc:
                    aside = set_aside(folder)
                    logger.warning("the run kept for %s no longer fits the corpus, so it is not restored (%s); "
                                   "its copy is %s", corpus.key, exc, f"moved to {aside}" if aside else "removed")
            slot.restored = True
