"""How much the judges of a corpus agree: Krippendorff's alpha over their grades, per query and per corpus.

Krippendorff's alpha (Krippendorff, *Content Analysis: An Introduction to Its Methodology*, 2004, ch. 11;
"Computing Krippendorff's Alpha-Reliability", 2011, https://repository.upenn.edu/asc_papers/43) fits judging
in the app: any number of judges, and a judge who did not grade a pair is missing data rather than an error.
A unit is a (query, document) pair; the values are the judges' current grades of it. With the coincidence
matrix o_ck (each unit's ordered pairs of values, weighted 1 / (m_u - 1) for its m_u grades), n_c = sum_k o_ck
and n = sum_c n_c:

    alpha = 1 - D_o / D_e,  D_o = (1/n) sum_ck o_ck delta2_ck,  D_e = 1/(n(n-1)) sum_ck n_c n_k delta2_ck

The default difference is ordinal, the grades being ranks (0 < 1 < 2 < 3) whose distances are not known:
delta2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2. `interval` ((c - k)^2) and `nominal` (0 when equal, else 1)
are there too. alpha is 1 for perfect agreement, 0 for agreement at chance level, below 0 for systematic
disagreement; it is undefined (None here) when fewer than two grades are pairable or every grade is the same.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from reranker.judgment_db import CurrentGrade

Level = Literal["ordinal", "interval", "nominal"]
LEVELS: tuple[Level, ...] = ("ordinal", "interval", "nominal")
RELIABLE = 0.800  # Krippendorff (2004, p. 241): rely on data with alpha >= .800,
TENTATIVE = 0.667  # draw tentative conclusions only from .667 <= alpha < .800, and discard data below


def krippendorff_alpha(units: Iterable[Sequence[int]], level: Level = "ordinal") -> float | None:
    """Krippendorff's alpha of `units` (each the values the judges who graded it gave; missing ones left out).
    None when it is undefined: fewer than two pairable values, or no variation at all."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    coincidences: dict[tuple[int, int], float] = defaultdict(float)
    for unit in units:
        m = len(unit)
        if m < 2:
            continue  # a value nobody else gave a grade beside is not pairable
        counts = Counter(unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                coincidences[(c, k)] += n_c * (n_k - (c == k)) / (m - 1)
    totals: dict[int, float] = defaultdict(float)
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    if n < 2:
        return None
    values = sorted(totals)
    delta = _differences(values, totals, level)
    observed = sum(weight * delta[pair] for pair, weight in coincidences.items())
    expected = sum(totals[c] * totals[k] * delta[(c, k)] for c in values for k in values) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def _differences(values: Sequence[int], totals: Mapping[int, float], level: Level) -> dict[tuple[int, int], float]:
    """delta^2 for every pair of values that occur (Krippendorff 2011, section C)."""
    delta: dict[tuple[int, int], float] = {}
    for i, c in enumerate(values):
        for j, k in enumerate(values):
            if level == "nominal":
                d = 0.0 if c == k else 1.0
            elif level == "interval":
                d = float(c - k) ** 2
            else:
                low, high = min(i, j), max(i, j)
                between = sum(totals[values[g]] for g in range(low, high + 1))
                d = (between - (totals[c] + totals[k]) / 2) ** 2
            delta[(c, k)] = d
    return delta


@dataclass(frozen=True)
class PairGrades:
    """The judges' current grades of one (query, document)."""

    qid: str
    query: str | None
    doc: str
    grades: Mapping[str, int]  # judge -> grade

    @property
    def spread(self) -> int:
        """Highest grade minus lowest: 0 when the judges agree."""
        return max(self.grades.values()) - min(self.grades.values())


@dataclass(frozen=True)
class QueryAgreement:
    qid: str
    query: str | None
    alpha: float | None
    pairs: int  # pairs of this query graded by at least two judges
    disagreements: int  # of them, those with different grades


@dataclass(frozen=True)
class AgreementReport:
    """Agreement of a corpus's judges: alpha over the corpus and per query, and the pairs two or more judges
    graded, those they disagree on first (widest spread first)."""

    level: Level
    judges: Mapping[str, int]  # judge -> how many pairs they grade now
    alpha: float | None
    pairs: tuple[PairGrades, ...]
    queries: tuple[QueryAgreement, ...]  # the queries with a pair graded twice; least agreement first
    single: int  # pairs only one judge graded (not pairable: they do not count)

    @property
    def disagreements(self) -> int:
        return sum(p.spread > 0 for p in self.pairs)

    @property
    def exact(self) -> float | None:
        """Share of the pairs graded twice or more on which every judge gave the same grade."""
        return (len(self.pairs) - self.disagreements) / len(self.pairs) if self.pairs else None

    def reading(self) -> str:
        """What the corpus's alpha means, in Krippendorff's (2004) terms."""
        return reading(self.alpha, len(self.judges), len(self.pairs))

    def to_json(self) -> dict:
        return {
            "metric": f"krippendorff_alpha_{self.level}",
            "alpha": self.alpha,
            "judges": dict(self.judges),
            "pairs_graded_by_several": len(self.pairs),
            "disagreements": self.disagreements,
            "exact_agreement": self.exact,
            "pairs_graded_once": self.single,
            "reading": self.reading(),
            "queries": [
                {"qid": q.qid, "query": q.query, "alpha": q.alpha, "pairs": q.pairs, "disagreements": q.disagreements}
                for q in self.queries
            ],
            "pairs": [
                {"qid": p.qid, "query": p.query, "docid": p.doc, "grades": dict(p.grades), "spread": p.spread}
                for p in self.pairs
            ],
        }


def reading(alpha: float | None, judges: int, pairs: int) -> str:
    if judges < 2:
        return "one judge so far: agreement needs two judges grading the same documents"
    if alpha is None:
        if not pairs:
            return "no document was graded by two judges yet"
        return "undefined: every grade of the pairs graded twice is the same, so there is nothing to tell chance from"
    if alpha >= RELIABLE:
        return f"reliable (alpha >= {RELIABLE:.3f})"
    if alpha >= TENTATIVE:
        return f"tentative: fit for cautious conclusions only ({TENTATIVE:.3f} <= alpha < {RELIABLE:.3f})"
    return f"unreliable (alpha < {TENTATIVE:.3f}): the judges read the grades differently; compare notes on the pairs below"


def agreement_report(
    grades: Iterable[CurrentGrade], queries: Mapping[str, str] | None = None, level: Level = "ordinal"
) -> AgreementReport:
    """The agreement of the judges whose current grades are `grades` (`JudgmentStore.current()`); `queries`
    gives query texts (the corpus's and the overlay's)."""
    queries = queries or {}
    by_pair: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    judged: Counter[str] = Counter()
    for g in grades:
        by_pair[(g.qid, g.doc)][g.judge] = g.grade
        judged[g.judge] += 1
    several = [PairGrades(qid, queries.get(qid), doc, dict(sorted(by.items())))
               for (qid, doc), by in by_pair.items() if len(by) > 1]
    several.sort(key=lambda p: (-p.spread, p.qid, p.doc))
    per_query: dict[str, list[PairGrades]] = defaultdict(list)
    for pair in several:
        per_query[pair.qid].append(pair)
    rows = [
        QueryAgreement(qid, queries.get(qid), krippendorff_alpha([list(p.grades.values()) for p in pairs], level),
                       len(pairs), sum(p.spread > 0 for p in pairs))
        for qid, pairs in per_query.items()
    ]
    rows.sort(key=lambda q: (-q.disagreements, 2.0 if q.alpha is None else q.alpha, q.qid))
    alpha = krippendorff_alpha([list(p.grades.values()) for p in several], level)
    return AgreementReport(level, dict(sorted(judged.items())), alpha, tuple(several), tuple(rows),
                           sum(len(by) == 1 for by in by_pair.values()))


def _alpha(alpha: float | None) -> str:
    return "–" if alpha is None else f"{alpha:.3f}"


def agreement_text(report: AgreementReport, limit: int = 20) -> str:
    """The report for a terminal: the summary, then the pairs the judges disagree on (at most `limit`), then
    the queries."""
    judges = ", ".join(f"{j} ({n})" for j, n in report.judges.items()) or "none"
    lines = [
        f"Krippendorff's alpha ({report.level}): {_alpha(report.alpha)} — {report.reading()}",
        f"judges (pairs graded): {judges}",
        f"{len(report.pairs)} pairs graded by two judges or more, {report.disagreements} with different grades; "
        f"{report.single} graded by one judge only",
    ]
    disagreed = [p for p in report.pairs if p.spread > 0]
    if disagreed:
        lines.append("")
        shown = "" if len(disagreed) <= limit else f", first {limit}"
        lines.append(f"pairs the judges disagree on (widest spread first){shown}:")
        for p in disagreed[:limit]:
            grades = ", ".join(f"{j} {g}" for j, g in p.grades.items())
            lines.append(f"  {p.qid}  {p.doc}  spread {p.spread}: {grades}")
    if report.queries:
        lines.append("")
        lines.append("per query (least agreement first): qid, alpha, pairs graded twice, disagreements")
        for q in report.queries[:limit]:
            lines.append(f"  {q.qid}  {_alpha(q.alpha)}  {q.pairs}  {q.disagreements}")
    return "\n".join(lines)


def agreement_html(report: AgreementReport, limit: int = 10) -> str:
    """A compact view for the Evaluate tab: alpha and its reading, then the pairs the judges disagree on."""
    esc = html.escape
    if len(report.judges) < 2:
        judges = ", ".join(esc(j) for j in report.judges) or "nobody"
        return (f'<div class="rl-judges"><b>Judges\' agreement</b>: {esc(report.reading())} '
                f"(graded here so far by {judges}).</div>")
    judges = ", ".join(f"{esc(j)} ({n})" for j, n in report.judges.items())
    head = (
        f'<div class="rl-judges"><b>Judges\' agreement</b>: Krippendorff\'s α ({esc(report.level)}) '
        f"<b>{_alpha(report.alpha)}</b>, {esc(report.reading())}. "
        f"{len(report.pairs)} documents graded by two judges or more, {report.disagreements} with different grades. "
        f"Judges (grades): {judges}."
    )
    disagreed = [p for p in report.pairs if p.spread > 0][:limit]
    if not disagreed:
        return head + "</div>"
    rows = "".join(
        f"<tr><td>{esc(p.query or p.qid)}</td><td>{esc(p.doc)}</td>"
        f"<td>{esc(', '.join(f'{j} {g}' for j, g in p.grades.items()))}</td><td>{p.spread}</td></tr>"
        for p in disagreed
    )
    return (head + "<table><thead><tr><th>query</th><th>document</th><th>grades</th><th>spread</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")

