"""Speed benchmarks that print tables: run from the repository root, e.g.
`python -m benchmarks.cross_encoder --dataset ../shared/datasets/scifact`."""
