"""How sure an evaluation report is, in one place: per configuration a bootstrap 95% interval for each metric and,
where judged@10 < 1, the bounds unjudged documents allow; per configuration and metric against the baseline the
paired difference's interval, the minimum detectable effect and the queries an effect needs
(`reranker.evaluation.uncertainty`, `reranker.evaluation.bounds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reranker.evaluation.analysis import EvaluationReport
from reranker.evaluation.bounds import metric_bounds, top_grade
from reranker.evaluation.metrics import Run, is_coverage_metric, judged_at
from reranker.evaluation.uncertainty import RESAMPLES, SEED, PairedEvidence, bootstrap_interval, paired_evidence, resample_indices

COVERAGE = "judged@10"
EFFECT = 0.02  # the difference in a metric (e.g. nDCG@10) whose needed number of queries is reported


@dataclass(frozen=True)
class ReportEvidence:
    ci95: Mapping[str, Mapping[str, tuple[float, float]]]  # configuration -> metric -> interval of the mean
    bounds: Mapping[str, Mapping[str, tuple[float, float]]]  # configuration -> metric -> (min, max), judged@10 < 1 only
    paired: Mapping[tuple[str, str], PairedEvidence]  # (configuration, metric) -> against the baseline
    judged: Mapping[str, float]  # configuration -> mean judged@10 (when measured)
    queries: int
    effect: float = EFFECT
    resamples: int = RESAMPLES
    seed: int = SEED
    top_grade: int = 1

    def for_significance(self, name: str, metric: str) -> PairedEvidence | None:
        return self.paired.get((name, metric))


def report_evidence(report: EvaluationReport, *, effect: float = EFFECT) -> ReportEvidence:
    """Intervals, bounds and power for every usable configuration of `report` (one shared set of resamples)."""
    queries = list(report.qrels)
    indices = resample_indices(len(queries))
    usable = [r for r in report.configurations if r.ok]
    base = next((r for r in usable if r.name == report.baseline), None)
    grade = top_grade(report.qrels)
    ci95: dict[str, dict[str, tuple[float, float]]] = {}
    bounds: dict[str, dict[str, tuple[float, float]]] = {}
    paired: dict[tuple[str, str], PairedEvidence] = {}
    judged: dict[str, float] = {}
    ranked = [m for m in report.metrics if not is_coverage_metric(m)]
    for result in usable:
        values = {m: [result.per_query.get(q, {}).get(m, 0.0) for q in queries] for m in report.metrics}
        ci95[result.name] = {m: bootstrap_interval(v, indices=indices) for m, v in values.items()}
        judged[result.name] = result.means.get(COVERAGE, _coverage(report, result.run, queries))
        if judged[result.name] < 1.0:
            bounds[result.name] = metric_bounds(report.qrels, result.run, ranked, grade)
        if base is not None and result is not base:
            for m in ranked:
                reference = [base.per_query.get(q, {}).get(m, 0.0) for q in queries]
                paired[result.name, m] = paired_evidence(values[m], reference, effect=effect, indices=indices)
    return ReportEvidence(ci95, bounds, paired, judged, len(queries), effect, top_grade=grade)


def _coverage(report: EvaluationReport, run: Run, queries: list[str]) -> float:
    """Mean judged@10 when the report did not measure it."""
    values = [judged_at(report.qrels.get(q, {}), run.get(q) or {}, 10) for q in queries]
    return sum(values) / len(values) if values else 1.0
