"""Relevance judgments people make (in the app, or uploaded) as an overlay on a corpus's shipped qrels.

Each corpus has its own overlay folder under the judgments directory (`judgments_root()`):
`qrels.tsv` in BEIR's layout (query-id, corpus-id, score) and `queries.jsonl` for the queries the
corpus does not ship. The shipped qrels are never rewritten; `with_overlay` merges the overlay over
them when a dataset is read, so the app's Evaluate tab and `eval` score against both.

Grades follow the TREC Deep Learning track's four-point scale (Craswell et al., TREC 2019 DL overview):
0 irrelevant, 1 related, 2 highly relevant, 3 perfectly relevant.

Writers never lose each other's work: a write takes the folder's lock (an `flock` on `.lock`, plus a
thread lock), reads the files as they are on disk, applies only its own changes, and replaces each
file atomically, so readers never see half a file. The last grade written for a (query, document) wins.

Removing a grade deletes it from the overlay only: a grade the corpus ships stays, and applies again once
the overlay no longer overrides it. A new query's text leaves the overlay with its last grade.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.corpus import Dataset, Qrels, json_lines
from reranker.errors import ConfigError, DataError
from reranker.types import PipelineResult

try:  # POSIX: a lock other processes (app workers, `eval`, a second server) respect
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers within this process still serialise
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

GRADES = (0, 1, 2, 3)
GRADE_NAMES = {0: "irrelevant", 1: "related", 2: "highly relevant", 3: "perfectly relevant"}
OVERLAY_SPLIT = "test"  # where judgments of queries no shipped split holds are evaluated
QRELS_FILE = "qrels.tsv"
QUERIES_FILE = "queries.jsonl"
QRELS_HEADER = "query-id\tcorpus-id\tscore"
NEW_QUERY_PREFIX = "u-"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

Judgment = tuple[str, str, int]  # (query id, document id, grade)

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def judgments_root() -> Path:
    """`$RERANK_LENS_JUDGMENTS`, else `$XDG_DATA_HOME/rerank-lens/judgments`, else ~/.local/share/rerank-lens/judgments.

    Not the cache folder: judgments are people's work and cannot be rebuilt.
    """
    explicit = os.environ.get("RERANK_LENS_JUDGMENTS")
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "rerank-lens" / "judgments"


def overlay_name(corpus_key: str) -> str:
    """The overlay folder's name for a corpus key: `bundled:knowledge` -> `bundled-knowledge`,
    `data:/abs/scifact` -> `scifact-<hash of the path>`, `upload:<digest>` -> `upload-<digest>`."""
    kind, _, rest = corpus_key.partition(":")
    if kind == "data" or not rest:
        path = rest or kind
        digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:10]
        return f"{_slug(Path(path).name) or 'corpus'}-{digest}"
    return f"{_slug(kind)}-{_slug(rest)}"


def _slug(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", text).strip("._")[:80]


def normalise_query(text: str) -> str:
    """Case, spacing and a closing ?/./! do not make a query another query."""
    return " ".join(text.lower().split()).rstrip("?.! ")


def new_query_id(text: str) -> str:
    """A stable id for a query the corpus does not ship: equal texts (after `normalise_query`) share it."""
    return NEW_QUERY_PREFIX + hashlib.sha1(normalise_query(text).encode("utf-8")).hexdigest()[:12]


def find_query(dataset: Dataset, text: str) -> str | None:
    """The id of the dataset's query with this text (a judged one first), else None."""
    wanted = normalise_query(text)
    matches = [qid for qid, query in dataset.queries.items() if normalise_query(query) == wanted]
    judged = [qid for qid in matches if any(qid in split for split in dataset.qrels.values())]
    return (judged or matches or [None])[0]


def query_judgments(dataset: Dataset, text: str) -> tuple[str, dict[str, int]]:
    """(query id, document id -> grade) for a query text: the dataset's id when it has the query (its
    judgments from the test split first), else the id a new query gets (and no judgments yet)."""
    qid = find_query(dataset, text) or new_query_id(text)
    return qid, grades_of(dataset, qid)


def grades_of(dataset: Dataset, qid: str) -> dict[str, int]:
    """A query's judgments, document id -> grade, from the first split that judges it (the test split first)."""
    for split in sorted(dataset.qrels, key=lambda s: s != OVERLAY_SPLIT):
        if qid in dataset.qrels[split]:
            return dict(dataset.qrels[split][qid])
    return {}


def shown_documents(result: PipelineResult) -> list[str]:
    """The documents of the fused and the final top-n, each once, in list order (before first)."""
    top = result.before.doc_ids()[: result.top_n] + result.after.doc_ids()[: result.top_n]
    return list(dict.fromkeys(top))


def unjudged(result: PipelineResult, grades: Mapping[str, int]) -> list[str]:
    """The documents of the two top-n lists that nobody has judged for the query: what is left to judge."""
    return [doc for doc in shown_documents(result) if doc not in grades]


@dataclass(frozen=True)
class Overlay:
    """A corpus's judgments made here: grades by query, and the texts of queries the corpus lacks."""

    qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    def __len__(self) -> int:
        return sum(len(docs) for docs in self.qrels.values())


@dataclass(frozen=True)
class MergeReport:
    """What merging judgments (an upload, or a grade) into an overlay did."""

    added: int = 0  # (query, document) pairs the overlay did not have
    changed: int = 0  # pairs whose grade changed
    unchanged: int = 0
    unknown_documents: int = 0  # ignored: not in the corpus
    unknown_queries: int = 0  # ignored: no query text anywhere
    new_queries: int = 0  # query texts added to the overlay

    def describe(self) -> str:
        parts = [f"{self.added} new", f"{self.changed} changed", f"{self.unchanged} unchanged"]
        if self.new_queries:
            parts.append(f"{self.new_queries} new queries")
        text = ", ".join(parts)
        ignored = []
        if self.unknown_documents:
            ignored.append(f"{self.unknown_documents} for documents not in the corpus")
        if self.unknown_queries:
            ignored.append(f"{self.unknown_queries} for queries with no text (their queries.jsonl is needed too)")
        return text + (f"; ignored {' and '.join(ignored)}" if ignored else "")

    def message(self, corpus: str) -> str:
        """What the app and `judgments import` say after a merge into `corpus`'s judgments."""
        return f"Merged into the judgments of {corpus}: {self.describe()}."


@dataclass(frozen=True)
class RemovalReport:
    """What removing a query's grades from an overlay did, and which shipped grades apply again."""

    query: str
    removed: Mapping[str, int] = field(default_factory=dict)  # document -> the grade removed
    shipped: Mapping[str, int] = field(default_factory=dict)  # removed documents the corpus ships a grade for
    missing: tuple[str, ...] = ()  # documents asked for that the overlay has no grade of

    def describe(self) -> str:
        removed = ", ".join(f"{doc} (was {grade})" for doc, grade in sorted(self.removed.items()))
        grades = "grade" if len(self.removed) == 1 else "grades"
        text = f"Removed {len(self.removed)} {grades} of query {self.query} from the overlay: {removed}."
        if self.shipped:
            again = ", ".join(f"{doc} ({grade})" for doc, grade in sorted(self.shipped.items()))
            text += f" The corpus ships its own grade for {again}, which applies again (shipped qrels are never rewritten)."
        if self.missing:
            text += f" The overlay had no grade of {', '.join(self.missing)}."
        return text


class JudgmentStore:
    """One corpus's overlay folder: read it, and merge grades into it without losing concurrent writes."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def qrels_path(self) -> Path:
        return self.folder / QRELS_FILE

    @property
    def queries_path(self) -> Path:
        return self.folder / QUERIES_FILE

    def stamp(self) -> tuple:
        """Changes whenever either file is replaced (each write is a new inode): for caching merged views."""
        out = []
        for path in (self.qrels_path, self.queries_path):
            try:
                st = path.stat()
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def load(self) -> Overlay:
        """The overlay as it is on disk now (empty when nothing was judged)."""
        qrels: dict[str, dict[str, int]] = {}
        if self.qrels_path.is_file():
            for qid, doc, grade in parse_qrels(self.qrels_path.read_bytes(), str(self.qrels_path)):
                qrels.setdefault(qid, {})[doc] = grade
        queries = parse_queries(self.queries_path.read_bytes(), str(self.queries_path)) if self.queries_path.is_file() else {}
        return Overlay(qrels, queries, str(self.folder))

    def record(
        self,
        judgments: Iterable[Judgment],
        queries: Mapping[str, str] | None = None,
        *,
        queries_if_missing: Mapping[str, str] | None = None,
    ) -> tuple[Overlay, MergeReport]:
        """Merge grades (and new query texts) into the overlay on disk; the last grade for a pair wins.

        `queries` replace the overlay's texts; `queries_if_missing` are written only for queries the overlay
        has no text for (decided under the lock, so a removal that just dropped a text cannot orphan a grade).
        """
        judgments = list(judgments)
        for qid, doc, grade in judgments:
            _check_id(qid, "query id")
            _check_id(doc, "document id")
            if not isinstance(grade, int) or isinstance(grade, bool):
                raise DataError(f"grade {grade!r} for ({qid}, {doc}) is not an integer")
        with self._locked():
            current = self.load()
            qrels = {q: dict(docs) for q, docs in current.qrels.items()}
            texts = dict(current.queries)
            added = changed = unchanged = new_queries = 0
            wanted = {q: t for q, t in (queries_if_missing or {}).items() if q not in texts}
            for qid, text in {**wanted, **(queries or {})}.items():
                _check_id(qid, "query id")
                if texts.get(qid) != text:
                    new_queries += qid not in texts
                    texts[qid] = text
            for qid, doc, grade in judgments:
                before = qrels.setdefault(qid, {}).get(doc)
                if before is None:
                    added += 1
                elif before != grade:
                    changed += 1
                else:
                    unchanged += 1
                qrels[qid][doc] = grade
            if texts != current.queries:  # first the texts, so no grade ever names a query without one
                atomic_write_text(self.queries_path, format_queries(texts))
            if added or changed:
                atomic_write_text(self.qrels_path, format_qrels(qrels))
        report = MergeReport(added=added, changed=changed, unchanged=unchanged, new_queries=new_queries)
        return Overlay(qrels, texts, str(self.folder)), report

    def remove(self, qid: str, docs: Iterable[str] | None = None) -> tuple[Overlay, dict[str, int]]:
        """Delete a query's grades (all, or those of `docs`) from the overlay on disk; returns the overlay and
        the grades removed (document -> grade). A query left without grades loses its text too."""
        with self._locked():
            current = self.load()
            qrels = {q: dict(grades) for q, grades in current.qrels.items()}
            grades = qrels.get(qid, {})
            wanted = list(grades) if docs is None else list(docs)
            removed = {doc: grades.pop(doc) for doc in wanted if doc in grades}
            if not grades:
                qrels.pop(qid, None)
            texts = dict(current.queries)
            if removed and qid not in qrels:
                texts.pop(qid, None)
            if removed:  # first the grades, so no grade ever names a query without a text
                atomic_write_text(self.qrels_path, format_qrels(qrels))
            if texts != current.queries:
                atomic_write_text(self.queries_path, format_queries(texts))
        return Overlay(qrels, texts, str(self.folder)), removed

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        with _thread_locks_guard:
            thread_lock = _thread_locks.setdefault(key, threading.Lock())
        with thread_lock, open(self.folder / ".lock", "a+") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in "\t\r\n"):
        raise DataError(f"{what} {value!r} cannot be written to a qrels file (empty, or holds a tab or newline)")


def format_qrels(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """A BEIR qrels TSV with its header, sorted by query then document (stable diffs)."""
    lines = [QRELS_HEADER]
    lines += [f"{qid}\t{doc}\t{qrels[qid][doc]}" for qid in sorted(qrels) for doc in sorted(qrels[qid])]
    return "\n".join(lines) + "\n"


def format_queries(queries: Mapping[str, str]) -> str:
    return "".join(json.dumps({"_id": qid, "text": queries[qid]}, ensure_ascii=False) + "\n" for qid in sorted(queries))


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError("not UTF-8 text; save the file as UTF-8", path=label, line=line) from None


def parse_qrels(data: bytes, label: str) -> list[Judgment]:
    """Judgments from a BEIR qrels TSV (query-id, corpus-id, score; a header line is optional) or a TREC
    qrels file (query-id, iteration, doc-id, grade), in file order; errors name the file and line."""
    out: list[Judgment] = []
    for number, line in enumerate(_decode(data, label).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if number == 1 and not parts[-1].lstrip("-").isdigit():
            continue  # header
        if len(parts) == 4:
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise DataError("expected query-id<TAB>corpus-id<TAB>score (or a TREC qrels line)", path=label, line=number)
        try:
            grade = int(parts[2])
        except ValueError:
            raise DataError(f"score {parts[2]!r} is not an integer", path=label, line=number) from None
        out.append((parts[0], parts[1], grade))
    return out


def parse_queries(data: bytes, label: str) -> dict[str, str]:
    """Query texts from a BEIR queries.jsonl ({"_id": ..., "text": ...} per line)."""
    queries: dict[str, str] = {}
    for number, record in json_lines(_decode(data, label), label):
        qid = record.get("_id", record.get("id"))
        text = record.get("text")
        if qid is None or not isinstance(text, str):
            raise DataError('each query needs "_id" and "text"', path=label, line=number)
        queries[str(qid)] = text
    return queries


def with_overlay(dataset: Dataset, overlay: Overlay) -> tuple[Dataset, int]:
    """The dataset with the overlay merged over its qrels, and how many overlay judgments it used.

    An overlay grade replaces the shipped grade of the same (query, document). A query's judgments
    go to every split that already judges it, else to `OVERLAY_SPLIT`; queries the corpus lacks get
    their text from the overlay. Judgments for documents not in the corpus, or for queries with no
    text, are left out and counted in the dataset's problems. The result's problems say how many
    overlay judgments were used and where they live.
    """
    if not len(overlay):
        return dataset, 0
    queries = dict(dataset.queries)
    for qid, text in overlay.queries.items():
        queries.setdefault(qid, text)
    qrels: dict[str, Qrels] = {split: dict(judged) for split, judged in dataset.qrels.items()}
    used = unknown_docs = unknown_queries = 0
    for qid, grades in overlay.qrels.items():
        if qid not in queries:
            unknown_queries += len(grades)
            continue
        known = {doc: grade for doc, grade in grades.items() if doc in dataset.corpus}
        unknown_docs += len(grades) - len(known)
        if not known:
            continue
        used += len(known)
        splits = [split for split, judged in dataset.qrels.items() if qid in judged] or [OVERLAY_SPLIT]
        for split in splits:
            target = qrels.setdefault(split, {})
            target[qid] = {**target.get(qid, {}), **known}
    problems = list(dataset.problems)
    if used:
        problems.append(
            f"{used} overlay judgments (made in the app or uploaded) merged over the shipped qrels, from {overlay.path}"
        )
    if unknown_docs or unknown_queries:
        problems.append(
            f"{overlay.path}: ignored {unknown_docs} overlay judgments for unknown documents and "
            f"{unknown_queries} for queries with no text"
        )
    return replace(dataset, queries=queries, qrels=qrels, problems=tuple(problems)), used


def merge_files(
    store: JudgmentStore, dataset: Dataset, files: Sequence[tuple[str, bytes]]
) -> tuple[Overlay, MergeReport]:
    """Merge uploaded files into a corpus's overlay: qrels (.tsv, .txt, .qrels) and query texts (.jsonl).

    `dataset` is the corpus as shipped (no overlay): judgments for documents it lacks are ignored, and so
    are judgments for queries whose text is nowhere (the corpus, the overlay, an uploaded queries.jsonl).
    Nothing is written when a file cannot be read.
    """
    judgments: list[Judgment] = []
    uploaded_queries: dict[str, str] = {}
    for name, data in files:
        if len(data) > MAX_UPLOAD_BYTES:
            raise DataError(f"the file is {len(data) // 2**20} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB", path=name)
        if name.lower().endswith(".jsonl"):
            uploaded_queries.update(parse_queries(data, name))
        else:
            judgments += parse_qrels(data, name)
    current = store.load()
    texts_known = set(dataset.queries) | set(current.queries) | set(uploaded_queries)
    kept: list[Judgment] = []
    unknown_docs = unknown_queries = 0
    for qid, doc, grade in judgments:
        if doc not in dataset.corpus:
            unknown_docs += 1
        elif qid not in texts_known:
            unknown_queries += 1
        else:
            kept.append((qid, doc, grade))
    new_texts = {qid: text for qid, text in uploaded_queries.items() if qid not in dataset.queries}
    overlay, report = store.record(kept, new_texts)
    return overlay, replace(report, unknown_documents=unknown_docs, unknown_queries=unknown_queries)


def remove_judgments(
    store: JudgmentStore, dataset: Dataset, qid: str, docs: Sequence[str] | None = None
) -> RemovalReport:
    """Remove a query's grades made here (all of them, or those of `docs`) from a corpus's overlay.

    `dataset` is the corpus as shipped: where it grades a removed document too, its grade applies again,
    and the report says so. Raises ConfigError, naming what the overlay holds, when there is nothing to remove.
    """
    _, removed = store.remove(qid, docs)
    shipped = grades_of(dataset, qid)
    if not removed:
        raise ConfigError(_nothing_to_remove(store, shipped, qid, docs))
    missing = tuple(doc for doc in dict.fromkeys(docs or ()) if doc not in removed)
    again = {doc: shipped[doc] for doc in removed if doc in shipped}
    return RemovalReport(qid, removed, again, missing)


def _nothing_to_remove(store: JudgmentStore, shipped: Mapping[str, int], qid: str, docs: Sequence[str] | None) -> str:
    where = f"the overlay of grades made in the app or imported ({store.folder})"
    if docs:
        shipped_only = {doc: shipped[doc] for doc in docs if doc in shipped}
        text = f"{where} holds no grade of {', '.join(docs)} for query {qid!r}"
        if shipped_only:
            grades = ", ".join(f"{doc} ({grade})" for doc, grade in shipped_only.items())
            text += (
                f"; the grade of {grades} comes with the corpus, whose qrels are never rewritten: "
                "grade it again to override it"
            )
        return text
    if shipped:
        return (
            f"{where} holds no grades for query {qid!r}; its {len(shipped)} grades come with the corpus, whose qrels "
            "are never rewritten: grade a document again to override its grade"
        )
    return f"{where} holds no grades for query {qid!r} (check the query id)"


@dataclass(frozen=True)
class ListedJudgment:
    """One grade of an overlay with its query's text and the grade the corpus ships for the pair, if any."""

    qid: str
    query: str | None
    doc: str
    grade: int
    shipped: int | None


def listed_judgments(overlay: Overlay, dataset: Dataset) -> list[ListedJudgment]:
    """The overlay's grades, by query id then document id; `dataset` is the corpus as shipped."""
    rows = []
    for qid in sorted(overlay.qrels):
        shipped = grades_of(dataset, qid)
        text = dataset.queries.get(qid, overlay.queries.get(qid))
        for doc in sorted(overlay.qrels[qid]):
            rows.append(ListedJudgment(qid, text, doc, overlay.qrels[qid][doc], shipped.get(doc)))
    return rows


def overlay_texts(overlay: Overlay) -> tuple[str, str | None]:
    """The overlay as file texts: its qrels.tsv and, when it holds queries the corpus lacks, their queries.jsonl
    (what the app's download buttons hold)."""
    return format_qrels(overlay.qrels), (format_queries(overlay.queries) if overlay.queries else None)


def merged_texts(dataset: Dataset, overlay: Overlay, split: str = OVERLAY_SPLIT) -> tuple[str, str | None, Dataset]:
    """A split's shipped qrels with the overlay merged over them (what `eval` scores against) as a qrels.tsv
    text, the queries.jsonl text of its queries the corpus does not ship (None when there are none), and the
    merged dataset (its problems say what the overlay added and what it left out)."""
    merged, _ = with_overlay(dataset, overlay)
    qrels = merged.split_qrels(split)
    new = {qid: merged.queries[qid] for qid in qrels if qid not in dataset.queries and qid in merged.queries}
    return format_qrels(qrels), (format_queries(new) if new else None), merged
