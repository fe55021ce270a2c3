"""Which unjudged documents to grade next: the ones whose grade would move the comparison of two configurations most.

The comparison is D = mean over the judged queries of nDCG@k(B) - nDCG@k(A). An unjudged document d of query q
in the top k of A or of B counts as not relevant today. Its **swing** is how much D would change if d were
graded at the top grade instead: ((B'q - A'q) - (Bq - Aq)) / N, where ' marks nDCG with d judged relevant
(the ideal ranking grows with it) and N is the number of judged queries. The queue lists documents by the
size of that swing, largest first; its sign says which configuration a "relevant" grade would favour
(+ favours B). A grade of 0 leaves D where it is, so the swing is the whole range the grade can move D over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reranker.corpus import Qrels
from reranker.evaluation.bounds import ranked_top, top_grade
from reranker.evaluation.metrics import Run


def ndcg_at(grades: Mapping[str, int], ranking: Sequence[str], k: int) -> float:
    """nDCG@k with linear gains (Järvelin & Kekäläinen, TOIS 2002), as ranx's "ndcg" computes it."""
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


@dataclass(frozen=True)
class JudgeNextItem:
    """One unjudged document and how much grading it would move the comparison of A and B."""

    query_id: str
    doc_id: str
    swing: float  # change of mean nDCG@k(B) - nDCG@k(A) if graded at the top grade (+ favours B)
    rank_a: int | None
    rank_b: int | None
    delta_now: float  # this query's nDCG@k(B) - nDCG@k(A) today
    delta_if_relevant: float  # the same with the document graded at the top grade


def judge_next_queue(
    qrels: Qrels, run_a: Run, run_b: Run, *, k: int = 10, n: int = 20, grade: int | None = None
) -> list[JudgeNextItem]:
    """The `n` unjudged documents (in either top k) whose top grade would move mean nDCG@k(B) - nDCG@k(A) most;
    ties by query id, then document id."""
    grade = grade or top_grade(qrels)
    judged = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    count = len(judged)
    items = []
    for q, grades in judged.items():
        top_a = ranked_top(run_a.get(q) or {}, k)
        top_b = ranked_top(run_b.get(q) or {}, k)
        now = ndcg_at(grades, top_b, k) - ndcg_at(grades, top_a, k)
        for d in dict.fromkeys(top_a + top_b):
            if d in grades:
                continue
            graded = {**grades, d: grade}
            after = ndcg_at(graded, top_b, k) - ndcg_at(graded, top_a, k)
            rank_a = top_a.index(d) + 1 if d in top_a else None
            rank_b = top_b.index(d) + 1 if d in top_b else None
            items.append(JudgeNextItem(q, d, (after - now) / count, rank_a, rank_b, now, after))
    items.sort(key=lambda item: (-abs(item.swing), item.query_id, item.doc_id))
    return items[:n]
