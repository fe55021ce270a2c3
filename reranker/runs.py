"""TREC run files, read and written in one place: `qid Q0 docid rank score tag`, one line per ranked document.

`eval --trec-runs`, `rerank-run` and the app's downloads write runs with `format_run`/`write_run`;
`read_run` parses one back and refuses, naming the file and line, anything a ranking cannot hold:
a line without six fields, a rank that is not a whole number, a score that is not a finite number,
a rank or a document given twice for one query, or ranks that do not follow the scores (trec_eval
and ranx order by score, the rank column is what a reader sees: they must agree). `check_run` then
checks a run against a dataset: every query in its queries file, every document in its corpus.

Scores are written with Python's shortest round-trip repr, so a run read back holds exactly the
floats that were written (six decimals cannot: the RRF scores 1/61 + 1/88 and 1/62 + 1/86, ranks 1 and 28
against 2 and 26, both print as 0.027757).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.corpus import Corpus
from reranker.errors import ConfigError, DataError
from reranker.types import Hit, RankedList

Run = dict[str, dict[str, float]]  # query id -> document id -> score, best first (evaluation's shape too)
RUN_STAGE = "run"
_TAG = re.compile(r"[^A-Za-z0-9_.:+-]+")
_SHOWN = 5  # problems a message lists by line before it counts the rest


# ---------------------------------------------------------------- writing


def format_run(run: Mapping[str, Mapping[str, float]], tag: str, depth: int | None = None) -> str:
    """TREC run text: `qid Q0 docid rank score tag` per line, best first.

    Documents are ordered by score; documents with equal scores keep the order they have in `run`
    (for a ranking's `as_run()`, its own tie-break), which is also the order ranx evaluates them in.

    Example:
        >>> print(format_run({"q1": {"d1": 0.5, "d2": 0.75}}, "my run"), end="")
        q1 Q0 d2 1 0.75 my_run
        q1 Q0 d1 2 0.5 my_run
    """
    tag = safe_tag(tag)
    lines = []
    for qid, scores in run.items():
        _check_token(qid, "query id")
        ordered = sorted(scores.items(), key=lambda kv: -kv[1])  # stable: ties keep their order
        for rank, (doc_id, score) in enumerate(ordered[:depth] if depth else ordered, start=1):
            _check_token(doc_id, "document id")
            if not math.isfinite(score):
                raise ConfigError(f"query {qid}, document {doc_id}: score {score} is not a finite number")
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}")
    return "\n".join(lines) + ("\n" if lines else "")


def safe_tag(text: str) -> str:
    """`text` as one token a run file (or a file name) can hold: runs of other characters become `_`."""
    return _TAG.sub("_", text.strip()) or RUN_STAGE


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str, depth: int | None = None) -> Path:
    """Write `format_run`'s text to `path` atomically: a reader sees the old file or the whole new one."""
    return atomic_write_text(path, format_run(run, tag, depth))


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{what} {value!r} contains whitespace, which a TREC run file cannot hold; rename it")


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunEntry:
    """One line of a run: a document's rank and score for one query, and where the line is."""

    doc_id: str
    rank: int
    score: float
    line: int


@dataclass(frozen=True)
class TrecRun:
    """A parsed run: each query's entries in rank order, queries in the order the file first names them."""

    path: str
    queries: Mapping[str, tuple[RunEntry, ...]]
    tags: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.queries)

    def head(self, n: int) -> TrecRun:
        """The first `n` queries."""
        return TrecRun(self.path, dict(list(self.queries.items())[:n]), self.tags)

    def first_line(self, qid: str) -> int:
        return min(entry.line for entry in self.queries[qid])

    def as_run(self) -> Run:
        """Query id -> doc id -> score, in rank order (the shape evaluation takes)."""
        return {qid: {e.doc_id: e.score for e in entries} for qid, entries in self.queries.items()}

    def ranked_list(self, qid: str, stage: str = RUN_STAGE) -> RankedList:
        """One query's ranking as the first-stage list reranking starts from (ranks renumbered 1, 2, ...)."""
        hits = tuple(Hit(e.doc_id, rank, e.score, stage) for rank, e in enumerate(self.queries[qid], start=1))
        tag = f", tag {self.tags[0]}" if len(self.tags) == 1 else ""
        return RankedList(stage, hits, f"score in {Path(self.path).name}{tag}")


def read_run(path: str | Path) -> TrecRun:
    """Read and check a TREC run file; a problem raises DataError naming the file and line."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("no such run file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); is this a TREC run file?", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read the run file ({exc.strerror})", path=str(path)) from None
    return parse_run(text, str(path))


def parse_run(text: str, path: str = "<run>") -> TrecRun:
    """Parse TREC run text (see `read_run`); `path` names the source in error messages."""
    by_query: dict[str, dict[str, RunEntry]] = {}
    ranks: dict[str, dict[int, RunEntry]] = {}
    tags: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise DataError(
                f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}: {line.strip()[:80]!r}",
                path=path,
                line=number,
            )
        qid, _, doc_id, rank_text, score_text, tag = parts
        try:
            rank = int(rank_text)
        except ValueError:
            raise DataError(f"rank {rank_text!r} is not a whole number", path=path, line=number) from None
        if rank < 0:
            raise DataError(f"rank {rank} is negative; ranks count 1, 2, 3, ... (or from 0)", path=path, line=number)
        try:
            score = float(score_text)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataError(f"score {score_text!r} is not a finite number", path=path, line=number)
        entry = RunEntry(doc_id, rank, score, number)
        seen = by_query.setdefault(qid, {}).get(doc_id)
        if seen is not None:
            raise DataError(
                f"query {qid} lists document {doc_id} twice (first at line {seen.line}); a ranking holds a document once",
                path=path,
                line=number,
            )
        clash = ranks.setdefault(qid, {}).get(rank)
        if clash is not None:
            raise DataError(
                f"query {qid} has rank {rank} twice ({clash.doc_id} at line {clash.line}, {doc_id} here); "
                "every document of a query needs its own rank",
                path=path,
                line=number,
            )
        by_query[qid][doc_id] = entry
        ranks[qid][rank] = entry
        tags.setdefault(tag)
    if not by_query:
        raise DataError("the run is empty: expected lines of `qid Q0 docid rank score tag`", path=path)
    queries = {qid: tuple(sorted(entries.values(), key=lambda e: e.rank)) for qid, entries in by_query.items()}
    for qid, entries in queries.items():
        for before, after in pairwise(entries):
            if after.score > before.score:
                raise DataError(
                    f"query {qid}: rank {after.rank} scores {after.score:g}, more than rank {before.rank} "
                    f"({before.score:g}, line {before.line}); ranks must follow scores, best first "
                    "(trec_eval and ranx order by score)",
                    path=path,
                    line=after.line,
                )
    return TrecRun(path, queries, tuple(tags))


def check_run(run: TrecRun, corpus: Corpus, queries: Collection[str]) -> None:
    """Refuse a run that names a query the queries file lacks or a document the corpus lacks.

    The message names the file and the first offending line, and counts the others.
    """
    missing = [(run.first_line(qid), qid) for qid in run.queries if qid not in queries]
    if missing:
        raise DataError(
            _problem(missing, "query", "is not in the dataset's queries file", "the query's text is needed to rerank it"),
            path=run.path,
            line=missing[0][0],
        )
    unknown = sorted((e.line, e.doc_id) for entries in run.queries.values() for e in entries if e.doc_id not in corpus)
    if unknown:
        raise DataError(
            _problem(unknown, "document", "is not in the dataset's corpus", "is the run for this dataset?"),
            path=run.path,
            line=unknown[0][0],
        )


def _problem(found: list[tuple[int, str]], what: str, problem: str, fix: str) -> str:
    first = found[0][1]
    message = f"{what} {first!r} {problem}"
    if len(found) > 1:
        others = ", ".join(str(line) for line, _ in found[1:_SHOWN])
        more = f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
        message += f" ({len(found)} {what} lines like this; the next at lines {others}{more})"
    return f"{message}; {fix}"
