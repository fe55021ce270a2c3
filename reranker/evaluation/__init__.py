"""Evaluation and error analysis: how good a ranking is, where reranking helped or hurt, and the files that say so.

- `metrics`: nDCG, MRR, recall and MAP from qrels (ranx), per query and on average, per pipeline stage.
- `compare`: how two rankings differ (movement badges, Kendall's tau, top-k overlap, rank-biased overlap).
- `analysis`: named configurations over a query set, paired significance, helped/hurt queries, agreement.
- `export`: TREC run files, per-query and metrics CSV, JSON, and a self-contained HTML snapshot of a query.
- `tradeoffs`: quality against latency over rerank depth, model and blend; the Pareto front; a budgeted pick.
- `report`: what `python -m reranker eval` prints (JSON or a text table) and which queries it reads.
"""
