"""Expected quality figures (benchmarks/expected_metrics.json) within a tolerance: a change that
silently degrades retrieval quality fails here. Each dataset is loaded and evaluated once per module
(SciFact's first run encodes 5,183 abstracts, a few minutes on two cores; later runs use the cache)."""

from __future__ import annotations

import pytest

from benchmarks.expected_metrics import dataset_path, fingerprint, load_expected, measure
from reranker.corpus import load_dataset
from reranker.pipeline import resolve_cross_encoder_spec

EXPECTED = load_expected()
TOLERANCE = EXPECTED["tolerance"]
ENTRIES = EXPECTED["entries"]


@pytest.fixture(scope="module")
def measured():
    """Entry name -> measured figures, computed lazily once per entry for the whole module."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            entry = ENTRIES[name]
            path = dataset_path(entry)
            if not path.exists():
                pytest.skip(f"{path} is absent: the {name} figures need that dataset")
            if any(c.startswith("auto") for c in entry["configurations"]):
                resolved = resolve_cross_encoder_spec("auto")
                if resolved is None or resolved != entry.get("model", resolved):
                    pytest.skip(f"{name}: measured with 'auto' = {entry.get('model')}, here it is {resolved}")
            dataset = load_dataset(path)
            if entry.get("fingerprint") and fingerprint(dataset, entry["split"]) != entry["fingerprint"]:
                pytest.fail(
                    f"{path} ({entry['split']}) changed since its figures were measured; if the change is intended, "
                    f"re-measure with `python -m benchmarks.expected_metrics --only {name} --update` and commit why"
                )
            cache[name] = measure(entry, dataset)
        return cache[name]

    return get


CASES = [
    pytest.param(
        name,
        config,
        marks=[pytest.mark.slow, pytest.mark.heavy] if "scifact" in name or "model" in entry else [],
        id=f"{name}-{config}",
    )
    for name, entry in ENTRIES.items()
    for config in entry["configurations"]
]


@pytest.mark.parametrize("name, config", CASES)
def test_reference_configuration_keeps_its_quality(measured, name, config):
    expected = ENTRIES[name]["configurations"][config]
    assert expected, f"{name} {config} has no figures yet: run python -m benchmarks.expected_metrics --only {name} --update"
    got = measured(name)[config]
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value, abs=TOLERANCE), f"{name} {config} {metric}: {got[metric]:.4f} vs {value:.4f}"


def test_expected_file_is_well_formed():
    assert 0 < TOLERANCE <= 0.02
    for name, entry in ENTRIES.items():
        assert {"path", "split", "configurations"} <= set(entry), name
        assert "fused" in entry["configurations"], f"{name}: fused is the reference every change is judged against"
