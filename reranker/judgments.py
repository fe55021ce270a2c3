"""Relevance judgments people make (in the app, or uploaded), by name, as an overlay on a corpus's shipped qrels.

Each corpus has its own folder under the judgments directory (`judgments_root()`), holding an SQLite
database (`reranker.judgment_db`, WAL mode) that logs every grade event: corpus, query id, the query's text
when the corpus does not ship it, document id, grade or removal, the judge's name and the time (UTC). The
history stays; a judge's current grade of a (query, document) is their latest event for it. The shipped
qrels are never rewritten: `with_overlay` merges the current grades over them when a dataset is read, so
the app's Evaluate tab and `eval` score against both.

Where judges disagree, one grade per (query, document) is made by a rule (`RULES`): `mean` (the default:
the mean grade rounded half up), `majority` (the most frequent grade, ties to the higher) or `latest`
(the grade written last, whoever wrote it). With one judge per pair every rule gives that judge's grade,
so a single judge sees exactly what the earlier one-file overlay gave: their last grade wins.

Grades follow the TREC Deep Learning track's four-point scale (Craswell et al., TREC 2019 DL overview):
0 irrelevant, 1 related, 2 highly relevant, 3 perfectly relevant.

Removing a grade is an event too and takes away that judge's grade only: a grade the corpus ships stays,
and applies again once no judge overrides it. A new query's text leaves the overlay with its last grade.

A folder written by an earlier version (`qrels.tsv` + `queries.jsonl`) is imported into the database the
first time the store is used, as judge `MIGRATED_JUDGE` with the file's modification time, and the files
are renamed `*.migrated` (the database also remembers their content, so they are never imported twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from reranker import judgment_db as db
from reranker.corpus import Dataset, Qrels, json_lines
from reranker.corpus_keys import DATA
from reranker.errors import ConfigError, DataError
from reranker.judgment_db import CurrentGrade, GradeEvent
from reranker.types import PipelineResult

logger = logging.getLogger(__name__)

GRADES = (0, 1, 2, 3)
GRADE_NAMES = {0: "irrelevant", 1: "related", 2: "highly relevant", 3: "perfectly relevant"}
OVERLAY_SPLIT = "test"  # where judgments of queries no shipped split holds are evaluated
QRELS_FILE = "qrels.tsv"  # an export's file name, and an earlier version's overlay file (migrated)
QUERIES_FILE = "queries.jsonl"
TREC_QRELS_FILE = "qrels.txt"
QRELS_HEADER = "query-id\tcorpus-id\tscore"
NEW_QUERY_PREFIX = "u-"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MIGRATED_SUFFIX = ".migrated"

DEFAULT_JUDGE = "anonymous"  # grades made without a name: the app before a name is given, the CLI without --judge
# The earlier overlay kept no names, and it was one anonymous identity whose last grade won. Its grades stay
# that identity's, so a grade given again without a name replaces a migrated one (as before) instead of
# being averaged with it; the events' origin ("migrated <file>") keeps where they came from.
MIGRATED_JUDGE = DEFAULT_JUDGE
MAX_JUDGE_NAME = 64

Rule = Literal["mean", "majority", "latest"]
RULES: tuple[Rule, ...] = ("mean", "majority", "latest")
DEFAULT_RULE: Rule = "mean"
RULE_ENV = "RERANK_LENS_JUDGMENT_RULE"  # the rule the app and `eval` merge with, when set
RULE_HELP = {
    "mean": "the mean of the judges' grades, rounded half up (1.5 -> 2)",
    "majority": "the grade most judges gave; a tie goes to the higher grade",
    "latest": "the grade written last, whichever judge wrote it",
}

Judgment = tuple[str, str, int]  # (query id, document id, grade)


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
    if kind == DATA or not rest:
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


def check_rule(rule: str) -> Rule:
    """The rule, or ConfigError naming the ones there are."""
    if rule not in RULES:
        raise ConfigError(f"unknown judgment rule {rule!r}; pick one of {', '.join(RULES)} ({RULE_ENV} sets the default)")
    return rule  # type: ignore[return-value]


def check_judge(name: str) -> str:
    """A judge's name with its outer spaces gone, or DataError: empty, too long, or a control character."""
    if not isinstance(name, str) or not name.strip():
        raise DataError("the judge's name is empty: give a name (or leave it out to grade as 'anonymous')")
    name = " ".join(name.split())
    if len(name) > MAX_JUDGE_NAME:
        raise DataError(f"the judge's name is {len(name)} characters; at most {MAX_JUDGE_NAME}")
    if any(ord(c) < 32 for c in name):
        raise DataError("the judge's name holds a control character")
    return name


def consensus(grades: Sequence[int], rule: Rule = DEFAULT_RULE) -> int:
    """One grade from the judges' grades of a (query, document), given in the order they were written.

    mean: the mean rounded half up, exactly (integer arithmetic), so [1, 2] -> 2 and [0, 1, 1, 3] -> 1.
    majority: the most frequent grade; among equally frequent ones the highest, so [0, 0, 3, 3] -> 3.
    latest: the last grade written.
    Ties go up in both: a pair that some judges found relevant is not dropped from the relevant ones.
    """
    if not grades:
        raise ValueError("no grades to merge")
    if rule == "mean":
        n = len(grades)
        return (2 * sum(grades) + n) // (2 * n)  # floor(mean + 1/2)
    if rule == "majority":
        counts = Counter(grades)
        top = max(counts.values())
        return max(grade for grade, count in counts.items() if count == top)
    if rule == "latest":
        return grades[-1]
    raise ConfigError(f"unknown judgment rule {rule!r}; pick one of {', '.join(RULES)}")


@dataclass(frozen=True)
class Overlay:
    """A corpus's judgments made here: one grade per (query, document) by `rule`, the texts of queries the
    corpus lacks, and each judge's current grade (query -> document -> judge -> grade)."""

    qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    grades: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    rule: Rule = DEFAULT_RULE

    def __len__(self) -> int:
        return sum(len(docs) for docs in self.qrels.values())

    @property
    def judges(self) -> tuple[str, ...]:
        return tuple(sorted({judge for docs in self.grades.values() for by in docs.values() for judge in by}))

    def disagreements(self) -> int:
        """How many (query, document) pairs have different grades from different judges."""
        return sum(len(set(by.values())) > 1 for docs in self.grades.values() for by in docs.values())


def build_overlay(
    current: Sequence[CurrentGrade],
    texts: Mapping[str, str],
    path: str = "",
    rule: Rule = DEFAULT_RULE,
    judge: str | None = None,
) -> Overlay:
    """The overlay from judges' current grades (in the order written) and query texts: `rule` merges the
    judges' grades of a pair; `judge` keeps one judge's grades only."""
    check_rule(rule)
    grades: dict[str, dict[str, dict[str, int]]] = {}
    written: dict[tuple[str, str], list[int]] = {}
    for g in current:
        if judge is not None and g.judge != judge:
            continue
        grades.setdefault(g.qid, {}).setdefault(g.doc, {})[g.judge] = g.grade
        written.setdefault((g.qid, g.doc), []).append(g.grade)
    qrels: dict[str, dict[str, int]] = {}
    for (qid, doc), in_order in written.items():
        qrels.setdefault(qid, {})[doc] = consensus(in_order, rule)
    queries = {qid: texts[qid] for qid in qrels if qid in texts}
    return Overlay(qrels, queries, path, grades, rule)


@dataclass(frozen=True)
class MergeReport:
    """What merging judgments (an upload, or a grade) into an overlay did."""

    added: int = 0  # (query, document) pairs the judge had not graded
    changed: int = 0  # pairs whose grade by the judge changed
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
    """What removing a judge's grades of a query did, and which grades apply now instead."""

    query: str
    removed: Mapping[str, int] = field(default_factory=dict)  # document -> the grade removed
    shipped: Mapping[str, int] = field(default_factory=dict)  # removed documents whose shipped grade applies again
    missing: tuple[str, ...] = ()  # documents asked for that the judge has no grade of
    judge: str = DEFAULT_JUDGE
    others: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # removed documents -> other judges' grades

    def describe(self) -> str:
        removed = ", ".join(f"{doc} (was {grade})" for doc, grade in sorted(self.removed.items()))
        grades = "grade" if len(self.removed) == 1 else "grades"
        by = "" if self.judge == DEFAULT_JUDGE else f" by {self.judge}"
        text = f"Removed {len(self.removed)} {grades}{by} of query {self.query} from the overlay: {removed}."
        if self.others:
            still = ", ".join(
                f"{doc} ({', '.join(f'{j} {g}' for j, g in sorted(by_judge.items()))})"
                for doc, by_judge in sorted(self.others.items())
            )
            text += f" Other judges' grades still apply to {still}."
        if self.shipped:
            again = ", ".join(f"{doc} ({grade})" for doc, grade in sorted(self.shipped.items()))
            text += f" The corpus ships its own grade for {again}, which applies again (shipped qrels are never rewritten)."
        if self.missing:
            text += f" The overlay had no grade of {', '.join(self.missing)}{by}."
        return text


class JudgmentStore:
    """One corpus's judgments: its folder under the judgments directory and the grade log in it.

    Every method opens its own database connection, so one store (or many) can be used from any thread or
    process at once. `rule` is how `load` merges judges who disagree: the argument, else `$RERANK_LENS_JUDGMENT_RULE`,
    else `DEFAULT_RULE`.
    """

    def __init__(self, folder: str | Path, *, rule: str | None = None) -> None:
        self.folder = Path(folder)
        self.rule = check_rule(rule or os.environ.get(RULE_ENV) or DEFAULT_RULE)

    @property
    def database(self) -> Path:
        return self.folder / db.DB_FILE

    @property
    def corpus(self) -> str:
        """The name the events carry: the folder's (`overlay_name` of the corpus key)."""
        return self.folder.name

    @property
    def qrels_path(self) -> Path:
        """An earlier version's overlay file, imported by `migrate`."""
        return self.folder / QRELS_FILE

    @property
    def queries_path(self) -> Path:
        return self.folder / QUERIES_FILE

    def stamp(self) -> tuple:
        """Changes with every write (the latest event's id): for caching merged views."""
        self.migrate()
        with db.reading(self.database) as conn:
            return (db.last_event(conn),)

    def load(self, rule: str | None = None, *, judge: str | None = None) -> Overlay:
        """The overlay as it is now: every judge's current grades merged by `rule` (the store's by default),
        or only `judge`'s. Empty when nothing was judged."""
        self.migrate()
        with db.reading(self.database) as conn:
            current, texts = db.current_grades(conn), db.query_texts(conn)
        return build_overlay(current, texts, str(self.folder), check_rule(rule or self.rule), judge)

    def current(self) -> list[CurrentGrade]:
        """Every judge's current grade of every pair, in the order written (for agreement and listings)."""
        self.migrate()
        with db.reading(self.database) as conn:
            return db.current_grades(conn)

    def texts(self) -> dict[str, str]:
        """The latest text of each query the grade log names with one (the queries the corpus does not ship)."""
        self.migrate()
        with db.reading(self.database) as conn:
            return db.query_texts(conn)

    def history(self, qid: str | None = None) -> list[GradeEvent]:
        """Every grade event (one query's, when given), oldest first: grades and removals, by whom and when."""
        self.migrate()
        with db.reading(self.database) as conn:
            return db.events(conn, qid)

    def record(
        self,
        judgments: Iterable[Judgment],
        queries: Mapping[str, str] | None = None,
        *,
        queries_if_missing: Mapping[str, str] | None = None,
        judge: str = DEFAULT_JUDGE,
        origin: str = "app",
    ) -> tuple[Overlay, MergeReport]:
        """Log `judge`'s grades (and texts of queries the corpus lacks); a judge's last grade of a pair wins.

        `queries` replace a query's text; `queries_if_missing` are used only for queries the overlay has no text
        for (decided in the write transaction, so a removal that just dropped a text cannot orphan a grade).
        A grade equal to the judge's current one writes nothing. Texts travel with grades: a query's text is
        the one of its latest event that carries one, while any judge grades it.
        """
        judge = check_judge(judge)
        judgments = list(judgments)
        for qid, doc, grade in judgments:
            _check_id(qid, "query id")
            _check_id(doc, "document id")
            if not isinstance(grade, int) or isinstance(grade, bool):
                raise DataError(f"grade {grade!r} for ({qid}, {doc}) is not an integer")
        for qid in (queries or {}):
            _check_id(qid, "query id")
        self.migrate()
        with db.writing(self.database) as conn:
            current = db.current_grades(conn, {qid for qid, _, _ in judgments})
            mine = {(g.qid, g.doc): g.grade for g in current if g.judge == judge}
            live = {g.qid for g in current}
            texts = {qid: text for qid, text in db.query_texts(conn).items() if qid in live}
            added = changed = unchanged = 0
            new_queries: set[str] = set()
            rows: list[tuple[str, str | None, str, int | None]] = []
            for qid, doc, grade in judgments:
                given = (queries or {}).get(qid)
                text = given if given is not None else texts.get(qid, (queries_if_missing or {}).get(qid))
                before = mine.get((qid, doc))
                added += before is None
                changed += before is not None and before != grade
                unchanged += before == grade
                if before == grade and (given is None or given == texts.get(qid)):
                    continue
                if text is not None and qid not in texts:
                    new_queries.add(qid)
                if text is not None:
                    texts[qid] = text
                mine[(qid, doc)] = grade
                rows.append((qid, text, doc, grade))
            db.append(conn, self.corpus, rows, judge=judge, origin=origin)
        report = MergeReport(added=added, changed=changed, unchanged=unchanged, new_queries=len(new_queries))
        return self.load(), report  # read after the commit: the write lock is held no longer than the write

    def remove(
        self, qid: str, docs: Iterable[str] | None = None, *, judge: str = DEFAULT_JUDGE, origin: str = "app"
    ) -> tuple[Overlay, dict[str, int]]:
        """Log the removal of `judge`'s grades of a query (all, or those of `docs`); returns the overlay and the
        grades removed (document -> grade). Other judges' grades stay. A query left without any judge's grades
        loses its text too."""
        judge = check_judge(judge)
        self.migrate()
        with db.writing(self.database) as conn:
            grades = {g.doc: g.grade for g in db.current_grades(conn, [qid]) if g.judge == judge}
            wanted = list(grades) if docs is None else list(dict.fromkeys(docs))
            removed = {doc: grades[doc] for doc in wanted if doc in grades}
            db.append(conn, self.corpus, [(qid, None, doc, None) for doc in removed], judge=judge, origin=origin)
        return self.load(), removed

    def migrate(self) -> int:
        """Import an earlier version's overlay files (`qrels.tsv`, `queries.jsonl`) once: as `MIGRATED_JUDGE`'s
        grades at the files' modification time, skipping a pair that judge has graded since. The files are then
        renamed `*.migrated`. Returns how many events it wrote (0 when there was nothing to import)."""
        legacy = [path for path in (self.qrels_path, self.queries_path) if path.is_file()]
        if not legacy:
            return 0
        try:
            data = {path: path.read_bytes() for path in legacy}
            mtime = max(path.stat().st_mtime for path in legacy)
        except FileNotFoundError:  # another thread or process is migrating them right now
            return 0
        qrels_bytes, queries_bytes = data.get(self.qrels_path, b""), data.get(self.queries_path, b"")
        latest: dict[tuple[str, str], int] = {}
        for qid, doc, grade in parse_qrels(qrels_bytes, str(self.qrels_path)):
            latest[(qid, doc)] = grade  # a pair written twice: the later line, as the old loader did
        texts = parse_queries(queries_bytes, str(self.queries_path)) if queries_bytes else {}
        digest = hashlib.sha1(qrels_bytes + b"\0" + queries_bytes).hexdigest()
        at = db.utc_iso(datetime.fromtimestamp(mtime, UTC))
        count = 0
        with db.writing(self.database) as conn:
            if not db.migrated(conn, str(self.folder), digest):
                current = db.current_grades(conn)
                mine = {(g.qid, g.doc): g.grade for g in current if g.judge == MIGRATED_JUDGE}
                since = db.latest_event_at(conn, MIGRATED_JUDGE)
                live = {g.qid for g in current}
                known = {qid: text for qid, text in db.query_texts(conn).items() if qid in live}
                rows = [
                    (qid, known.get(qid, texts.get(qid)), doc, grade)
                    for (qid, doc), grade in latest.items()
                    if mine.get((qid, doc)) != grade and since.get((qid, doc), "") <= at
                ]
                count = db.append(conn, self.corpus, rows, judge=MIGRATED_JUDGE, origin=f"migrated {self.qrels_path}", at=at)
                db.record_migration(conn, str(self.folder), digest, count)
        for path in legacy:
            _set_aside(path, data[path])
        logger.info("imported %d grades of the earlier overlay %s into %s", count, self.folder, self.database)
        return count


def _set_aside(path: Path, imported: bytes) -> None:
    """Rename a migrated file to `NAME.migrated` (or `.migrated.2`, ...), unless it changed since it was read."""
    try:
        if path.read_bytes() != imported:
            return  # written again meanwhile (an older server still running): the next use imports that too
        target = path.with_name(path.name + MIGRATED_SUFFIX)
        n = 2
        while target.exists():
            target = path.with_name(f"{path.name}{MIGRATED_SUFFIX}.{n}")
            n += 1
        os.replace(path, target)
    except FileNotFoundError:
        pass  # another process set it aside first


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in "\t\r\n"):
        raise DataError(f"{what} {value!r} cannot be written to a qrels file (empty, or holds a tab or newline)")


def format_qrels(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """A BEIR qrels TSV with its header, sorted by query then document (stable diffs)."""
    lines = [QRELS_HEADER]
    lines += [f"{qid}\t{doc}\t{qrels[qid][doc]}" for qid in sorted(qrels) for doc in sorted(qrels[qid])]
    return "\n".join(lines) + "\n"


def format_trec_qrels(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """TREC qrels (`query-id 0 doc-id grade`, space separated, as trec_eval reads them), sorted like `format_qrels`."""
    return "".join(f"{qid} 0 {doc} {qrels[qid][doc]}\n" for qid in sorted(qrels) for doc in sorted(qrels[qid]))


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
        judges = overlay.judges
        who = ""
        if len(judges) > 1:
            who = (f" ({len(judges)} judges; {overlay.disagreements()} pairs they grade differently take "
                   f"{RULE_HELP[overlay.rule]}, rule {overlay.rule})")
        problems.append(
            f"{used} overlay judgments (made in the app or uploaded) merged over the shipped qrels, from {overlay.path}{who}"
        )
    if unknown_docs or unknown_queries:
        problems.append(
            f"{overlay.path}: ignored {unknown_docs} overlay judgments for unknown documents and "
            f"{unknown_queries} for queries with no text"
        )
    return replace(dataset, queries=queries, qrels=qrels, problems=tuple(problems)), used


def merge_files(
    store: JudgmentStore, dataset: Dataset, files: Sequence[tuple[str, bytes]], *, judge: str = DEFAULT_JUDGE
) -> tuple[Overlay, MergeReport]:
    """Merge uploaded files into a corpus's judgments as `judge`'s grades: qrels (.tsv, .txt, .qrels) and query
    texts (.jsonl).

    `dataset` is the corpus as shipped (no overlay): judgments for documents it lacks are ignored, and so
    are judgments for queries whose text is nowhere (the corpus, the overlay, an uploaded queries.jsonl).
    Nothing is written when a file cannot be read.
    """
    judge = check_judge(judge)
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
    origin = "import " + ", ".join(name for name, _ in files)
    overlay, report = store.record(kept, new_texts, judge=judge, origin=origin[:200])
    return overlay, replace(report, unknown_documents=unknown_docs, unknown_queries=unknown_queries)


def remove_judgments(
    store: JudgmentStore, dataset: Dataset, qid: str, docs: Sequence[str] | None = None, *, judge: str = DEFAULT_JUDGE
) -> RemovalReport:
    """Remove `judge`'s grades of a query (all of them, or those of `docs`) from a corpus's judgments.

    `dataset` is the corpus as shipped: where it grades a removed document too and no other judge does, its
    grade applies again, and the report says so (as it says which other judges' grades still apply). Raises
    ConfigError, naming what the judgments hold, when the judge has nothing to remove.
    """
    judge = check_judge(judge)
    overlay, removed = store.remove(qid, docs, judge=judge)
    shipped = grades_of(dataset, qid)
    if not removed:
        raise ConfigError(_nothing_to_remove(store, overlay, shipped, qid, docs, judge))
    missing = tuple(doc for doc in dict.fromkeys(docs or ()) if doc not in removed)
    graded = overlay.grades.get(qid, {})
    others = {doc: dict(graded[doc]) for doc in removed if graded.get(doc)}
    again = {doc: shipped[doc] for doc in removed if doc in shipped and doc not in others}
    return RemovalReport(qid, removed, again, missing, judge, others)


def _nothing_to_remove(
    store: JudgmentStore, overlay: Overlay, shipped: Mapping[str, int], qid: str, docs: Sequence[str] | None, judge: str
) -> str:
    where = f"the overlay of grades made in the app or imported ({store.folder})"
    graded = overlay.grades.get(qid, {})
    others = sorted({j for doc, by in graded.items() if not docs or doc in docs for j in by})
    by_others = (
        f"; {' and '.join(others)} graded {'them' if not docs or len(docs) > 1 else 'it'}: only "
        f"{'they' if len(others) > 1 else 'that judge'} can remove {'those grades' if len(others) > 1 else 'that grade'}"
        if others else ""
    )
    if docs:
        shipped_only = {doc: shipped[doc] for doc in docs if doc in shipped}
        text = f"{where} holds no grade of {', '.join(docs)} for query {qid!r} by {judge}" + by_others
        if shipped_only and not others:
            grades = ", ".join(f"{doc} ({grade})" for doc, grade in shipped_only.items())
            text += (
                f"; the grade of {grades} comes with the corpus, whose qrels are never rewritten: "
                "grade it again to override it"
            )
        return text
    if others:
        return f"{where} holds no grades for query {qid!r} by {judge}" + by_others
    if shipped:
        return (
            f"{where} holds no grades for query {qid!r}; its {len(shipped)} grades come with the corpus, whose qrels "
            "are never rewritten: grade a document again to override its grade"
        )
    return f"{where} holds no grades for query {qid!r} (check the query id)"


@dataclass(frozen=True)
class ListedJudgment:
    """One judge's grade with its query's text and the grade the corpus ships for the pair, if any."""

    qid: str
    query: str | None
    doc: str
    grade: int
    shipped: int | None
    judge: str = DEFAULT_JUDGE


def listed_judgments(overlay: Overlay, dataset: Dataset) -> list[ListedJudgment]:
    """Each judge's current grades, by query id, document id and judge; `dataset` is the corpus as shipped.
    An overlay built by hand without judges lists its merged grades as `DEFAULT_JUDGE`'s."""
    rows = []
    for qid in sorted(overlay.qrels):
        shipped = grades_of(dataset, qid)
        text = dataset.queries.get(qid, overlay.queries.get(qid))
        for doc in sorted(overlay.qrels[qid]):
            by_judge = overlay.grades.get(qid, {}).get(doc) or {DEFAULT_JUDGE: overlay.qrels[qid][doc]}
            for judge in sorted(by_judge):
                rows.append(ListedJudgment(qid, text, doc, by_judge[judge], shipped.get(doc), judge))
    return rows


def overlay_texts(overlay: Overlay) -> tuple[str, str | None]:
    """The overlay as file texts: its qrels.tsv (one grade per pair, by the overlay's rule) and, when it holds
    queries the corpus lacks, their queries.jsonl (what the app's download buttons hold)."""
    return format_qrels(overlay.qrels), (format_queries(overlay.queries) if overlay.queries else None)


def merged_texts(dataset: Dataset, overlay: Overlay, split: str = OVERLAY_SPLIT) -> tuple[str, str | None, Dataset]:
    """A split's shipped qrels with the overlay merged over them (what `eval` scores against) as a qrels.tsv
    text, the queries.jsonl text of its queries the corpus does not ship (None when there are none), and the
    merged dataset (its problems say what the overlay added and what it left out)."""
    merged, _ = with_overlay(dataset, overlay)
    qrels = merged.split_qrels(split)
    new = {qid: merged.queries[qid] for qid in qrels if qid not in dataset.queries and qid in merged.queries}
    return format_qrels(qrels), (format_queries(new) if new else None), merged
