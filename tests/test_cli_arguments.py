"""Command-line options derived from config dataclasses: every field is an option, a new field appears
without a CLI edit, the historical flag names keep working, and an unsupported type fails loudly."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from reranker.cli import build_parser
from reranker.commands.arguments import Option, add_config_arguments, config_from_args
from reranker.commands.common import pipeline_config
from reranker.commands.finetune import FINETUNE_OPTIONS
from reranker.errors import ConfigError
from reranker.finetune import FinetuneConfig
from reranker.pipeline import PipelineConfig


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", ["search", "eval"])
def test_no_flags_give_the_pipeline_config_defaults_and_every_field_has_an_option(command):
    extra = ["--query", "q"] if command == "search" else []
    args = parse(command, "--dataset", "d", *extra)
    assert pipeline_config(args) == PipelineConfig()
    assert {f.name for f in dataclasses.fields(PipelineConfig)} <= set(vars(args))


@pytest.mark.parametrize(
    "names",
    [
        ("--rerank-depth", "--latency-budget-ms", "--blend"),
        ("--depth", "--budget-ms", "--interpolation"),  # the old flags, for one release
    ],
)
def test_flag_names_reach_their_fields(names, capsys):
    depth, budget, blend = names
    args = parse(
        "search", "--dataset", "d", "--query", "q", depth, "7", budget, "250", "--cross-encoder", "none",
        blend, "0.3", "--trust-remote-code", "--aggregation", "mean", "--stemmer", "none", "--top-n", "4",
    )
    config = pipeline_config(args)
    assert (config.rerank_depth, config.latency_budget_ms, config.cross_encoder) == (7, 250.0, None)
    assert (config.blend, config.trust_remote_code, config.aggregation) == (0.3, True, "mean")
    notes = capsys.readouterr().err
    assert [flag for flag in names if f"note: {flag} is now" in notes] == ([] if depth == "--rerank-depth" else list(names))
    assert (config.stemmer, config.top_n) == (None, 4)
    with pytest.raises(SystemExit):
        parse("search", "--dataset", "d", "--query", "q", "--aggregation", "median")


def test_finetune_options_cover_every_field_and_repeat_dataset():
    args = parse("finetune", "--dataset", "a", "--dataset", "b", "--out", "o", "--epochs", "1.5", "--overwrite",
                 "--no-freeze-word-embeddings", "--max-queries", "12")
    config = config_from_args(FinetuneConfig, args)
    expected = FinetuneConfig(datasets=("a", "b"), out="o", epochs=1.5, overwrite=True, freeze_word_embeddings=False,
                              max_queries=12)
    assert config == expected
    defaults = config_from_args(FinetuneConfig, parse("finetune", "--dataset", "a", "--out", "o"))
    assert defaults == FinetuneConfig(datasets=("a",), out="o")
    mined = config_from_args(FinetuneConfig, parse("finetune", "--groups", "g.json.gz", "--out", "o"))
    assert mined == FinetuneConfig(out="o", groups="g.json.gz")  # groups mined earlier need no --dataset
    mined.validate()
    with pytest.raises(ConfigError, match="--dataset"):
        config_from_args(FinetuneConfig, parse("finetune", "--out", "o")).validate()


def test_a_field_added_to_a_config_appears_with_no_cli_edit():
    """What the next FinetuneConfig fields may look like (dataset mixing): each is an option as it stands."""
    extended = dataclasses.make_dataclass(
        "ExtendedFinetuneConfig",
        [
            ("mix_weights", tuple[float, ...], field(default=())),
            ("mix_strategy", Literal["proportional", "uniform"], field(default="proportional")),
            ("per_dataset_cap", dict[str, int], field(default_factory=dict)),
            ("temperature", float | None, field(default=None)),
            ("shuffle_datasets", bool, field(default=True)),
        ],
        bases=(FinetuneConfig,),
        frozen=True,
    )
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, extended, FINETUNE_OPTIONS)
    args = parser.parse_args(
        ["--dataset", "a", "--out", "o", "--mix-weights", "0.7", "--mix-weights", "0.3", "--mix-strategy", "uniform",
         "--per-dataset-cap", "a=100", "--temperature", "none", "--no-shuffle-datasets"]
    )
    config = config_from_args(extended, args)
    assert config.mix_weights == (0.7, 0.3) and config.mix_strategy == "uniform"
    assert config.per_dataset_cap == {"a": 100} and config.temperature is None and config.shuffle_datasets is False
    assert config_from_args(extended, parser.parse_args(["--dataset", "a", "--out", "o"])).mix_weights == ()


def test_options_for_missing_fields_and_unsupported_types_fail_loudly():
    @dataclass(frozen=True)
    class Tiny:
        path: Path = Path(".")
        callback: object = None

    with pytest.raises(TypeError, match=r"Tiny\.callback"):
        add_config_arguments(argparse.ArgumentParser(), Tiny)
    add_config_arguments(argparse.ArgumentParser(), Tiny, {"callback": Option(hidden=True)})
    with pytest.raises(TypeError, match="renamed_away"):
        add_config_arguments(argparse.ArgumentParser(), Tiny, {"renamed_away": Option()})


def test_help_comes_from_the_docstring_attributes_and_an_option_wins():
    @dataclass(frozen=True)
    class Documented:
        """Something.

        Attributes:
            depth (int): How deep to go,
                over two lines.
            name: Its name.

        Returns:
            nothing: not an attribute.
        """

        depth: int = 3
        name: str = "x"

    from reranker.commands.arguments import field_docs

    assert field_docs(Documented) == {"depth": "How deep to go, over two lines.", "name": "Its name."}
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Documented, {"name": Option(help="another help")})
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["depth"] == "How deep to go, over two lines. (default: 3)" and helps["name"] == "another help (default: x)"
    depth = next(a for a in build_parser()._subparsers._group_actions[0].choices["search"]._actions if a.dest == "rerank_depth")
    assert depth.option_strings == ["--rerank-depth"] and depth.help.startswith("Fused candidates the cross-encoder scores")
