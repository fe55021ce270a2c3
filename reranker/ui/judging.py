"""The app's one way to the judgments store (`reranker.judgments`): where a corpus's grades live, the
corpus with them merged over its shipped qrels (cached until someone grades), and recording or removing a
grade in a judge's name.

Grades of a shared corpus (bundled, data directory) live in the server's judgments folder, shared by every
visitor and told apart by judge; grades of a workspace's upload live in that workspace's folder. Every
grade the page saves names its judge: the name the visitor gave (remembered in the browser) or the login.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from reranker.corpus import Dataset
from reranker.errors import ConfigError
from reranker.judgments import (
    DEFAULT_JUDGE,
    MAX_JUDGE_NAME,
    JudgmentStore,
    MergeReport,
    RemovalReport,
    check_judge,
    merge_files,
    overlay_name,
    remove_judgments,
    with_overlay,
)
from reranker.ui.corpora import CorpusEntry


def judge_name(text: object) -> str:
    """A judge's name as given (spacing tidied); ConfigError when there is none, so every grade names its judge."""
    name = " ".join(str(text or "").split())[:MAX_JUDGE_NAME]
    if not name:
        raise ConfigError("Type your name in “Judge” above the lists first: every grade is saved with its judge's "
                          "name (this browser remembers it).")
    return check_judge(name)


def store_for(folder: Path, corpus_key: str) -> JudgmentStore:
    """The judgments of the corpus `corpus_key` kept under `folder`."""
    return JudgmentStore(Path(folder) / overlay_name(corpus_key))


def judged_dataset(entry: CorpusEntry, store: JudgmentStore) -> tuple[Dataset, int]:
    """The corpus with the store's judgments merged over its shipped qrels, and how many were merged; cached in
    the entry until the store changes."""
    shipped = entry.load()
    stamp = (str(store.folder), store.stamp())
    cached = entry.judged
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    dataset, used = with_overlay(shipped, store.load())
    entry.judged = (stamp, dataset, used)
    return dataset, used


def record_grade(store: JudgmentStore, qid: str, doc_id: str, grade: int, *, judge: str | None,
                 queries_if_missing: Mapping[str, str]) -> None:
    """Save one grade in the judge's name (`judgments.DEFAULT_JUDGE` without one: scripts and tests)."""
    store.record([(qid, doc_id, grade)], queries_if_missing=queries_if_missing, judge=judge or DEFAULT_JUDGE)


def remove_grade(store: JudgmentStore, shipped: Dataset, qid: str, docs: Iterable[str], *,
                 judge: str | None) -> RemovalReport:
    """Remove the judge's grade (see `judgments.remove_judgments`)."""
    return remove_judgments(store, shipped, qid, list(docs), judge=judge or DEFAULT_JUDGE)


def merge_grade_files(store: JudgmentStore, shipped: Dataset, files: list[tuple[str, bytes]], *,
                      judge: str | None) -> MergeReport:
    """Merge uploaded qrels and queries files as the judge's grades (see `judgments.merge_files`)."""
    return merge_files(store, shipped, files, judge=judge or DEFAULT_JUDGE)[1]
