"""The docs say what the code does: which model `auto` runs offline, every endpoint the app registers, and
the extras pyproject.toml defines. Each check reads the docs as text and the facts from the code; a doc that
drifts fails here, and each checker is shown a wrong sentence, so it can fail."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from reranker.models import DEFAULT_CROSS_ENCODER, PROJECT_MODELS
from reranker.pipeline import default_cross_encoder
from tests.support import registered_endpoints

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
# "`auto` = X", "`auto` is X", "`auto` resolves to X", "`auto` runs X", "`auto` picks X".
AUTO_IS = re.compile(r"`auto`\s*(?:=|is|resolves to|runs|picks)\s*`?((?:rerank-lens|cross-encoder)/[\w.-]+)")
# A table row or sentence that calls a model "the (offline) default of `auto`".
DEFAULT_OF_AUTO = re.compile(r"default of `auto`")
MODEL_NAME = re.compile(r"(?:rerank-lens|cross-encoder)/[\w.-]+")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def auto_claims(text: str) -> list[str]:
    """The models a text says `auto` is."""
    claims = AUTO_IS.findall(text)
    for line in text.splitlines():
        if DEFAULT_OF_AUTO.search(line):
            claims += MODEL_NAME.findall(line)[:1]
    return claims


def auto_orders(text: str) -> list[list[str]]:
    """Each "A, then B, then C" chain of the project's models in a paragraph about `auto`: the order it states."""
    short = {name.split("/", 1)[1]: name for name in PROJECT_MODELS}
    pattern = re.compile("|".join(re.escape(s) for s in sorted(short, key=len, reverse=True)))
    orders = []
    for paragraph in _paragraphs(text):
        if "`auto`" not in paragraph:
            continue
        chain: list[str] = []
        end = None
        for match in pattern.finditer(paragraph):
            between = paragraph[end : match.start()] if end is not None else ""
            if chain and re.fullmatch(r"[`\s,]*then[`\s]*(?:rerank-lens/)?", between):
                chain.append(short[match.group()])
            else:
                if len(chain) >= 2:
                    orders.append(chain)
                chain = [short[match.group()]]
            end = match.end()
        if len(chain) >= 2:
            orders.append(chain)
    return orders


def wrong_auto(text: str) -> list[str]:
    """What a text gets wrong about `auto`: claims naming another model than the hub default or the offline
    one, and orders that are not the registry's."""
    offline = default_cross_encoder()  # tests run with the hub switched off
    problems = [f"says `auto` is {claim}" for claim in auto_claims(text) if claim not in (DEFAULT_CROSS_ENCODER, offline)]
    for order in auto_orders(text):
        if order != [name for name in PROJECT_MODELS if name in order]:
            problems.append(f"lists the offline order as {order}, the registry's is {list(PROJECT_MODELS)}")
    return problems


def test_the_docs_name_the_model_auto_runs():
    assert default_cross_encoder() == next(iter(PROJECT_MODELS))  # offline, `auto` is the registry's first model
    claims = {doc.name: auto_claims(doc.read_text(encoding="utf-8")) for doc in DOCS}
    assert sum(map(len, claims.values())) >= 1  # the docs do say it somewhere, so the check is not empty
    problems = {doc.name: wrong_auto(doc.read_text(encoding="utf-8")) for doc in DOCS}
    assert {name: found for name, found in problems.items() if found} == {}
    assert sum(len(auto_orders(doc.read_text(encoding="utf-8"))) for doc in DOCS) >= 3  # cli.md, app.md, api.md, ...


@pytest.mark.parametrize(
    "wrong",
    [
        "35 queries, `auto` = rerank-lens/minilm-l6-scifact with its card's blend of 0.3).",
        "| `rerank-lens/tiny-general` | fast, the offline default of `auto` |",
        "`auto` tries them in this order: `minilm-l6-scifact`, then `minilm-l6-general`.",
    ],
)
def test_the_auto_check_catches_a_wrong_sentence(wrong):
    assert wrong_auto(wrong)


def documented_endpoints(text: str) -> set[str]:
    return set(re.findall(r"`/(\w+)`", text))


def test_the_app_page_lists_every_endpoint_the_app_registers():
    registered = registered_endpoints()
    assert {"search", "upload", "upload_run", "drop_run"} <= registered  # the reader found the layout's too
    documented = documented_endpoints((REPO / "docs" / "app.md").read_text(encoding="utf-8"))
    assert registered - documented == set(), "docs/app.md misses these endpoints"
    assert documented - registered == set(), "docs/app.md lists endpoints the app does not register"
    assert registered - documented_endpoints("`/search`, `/chunks`") != set()  # a short list fails


def extras() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])


def listed_extras(text: str) -> list[set[str]]:
    """Each "Extras: `[a]`, `[b]` ..." line's extras."""
    return [set(re.findall(r"`\[([\w-]+)\]`", line)) for line in text.splitlines() if line.startswith("Extras:")]


def named_extras(text: str) -> set[str]:
    """Every extra an install command names: rerank-lens[x,y] or ".[x]"."""
    found: set[str] = set()
    for group in re.findall(r"""(?:rerank-lens|["']\.)\[([\w,-]+)\]""", text):
        found |= set(group.split(","))
    return found


def test_the_docs_list_the_extras_pyproject_defines():
    lists = [found for doc in DOCS for found in listed_extras(doc.read_text(encoding="utf-8"))]
    assert lists and all(found == extras() for found in lists)
    named = set().union(*(named_extras(doc.read_text(encoding="utf-8")) for doc in DOCS))
    assert named and named <= extras()
    assert listed_extras("Extras: `[app]`, `[llama-index]`, `[langchain]`, `[dev]`.")[0] != extras()  # no [ray]: caught


# docs/app.md: "One is the page's own and no `PipelineConfig` field: `score_mode` (...)". Names in the sentence.
PAGE_OWN = re.compile(r"page's own and no `PipelineConfig` field:\s*((?:`\w+`(?:,\s*|\s+and\s+)?)+)")


def page_own_settings(text: str) -> set[str]:
    """The settings a text calls the page's own (no PipelineConfig field)."""
    return {name for group in PAGE_OWN.findall(text) for name in re.findall(r"`(\w+)`", group)}


def test_the_app_page_names_the_api_settings_as_the_code_does():
    from reranker.pipeline import PipelineConfig
    from reranker.ui.settings import PAGE_ONLY, SETTING_FIELDS

    text = (REPO / "docs" / "app.md").read_text(encoding="utf-8")
    assert page_own_settings(text) == set(PAGE_ONLY)  # the page's own names, no more, no fewer
    fields = set(PipelineConfig.__dataclass_fields__)
    assert set(SETTING_FIELDS) - set(PAGE_ONLY) <= fields  # every other setting has its PipelineConfig name
    from_code = text.split("## From code", 1)[1].split("*Renamed:*", 1)[0]  # the rename note names the old ones
    assert not {"interpolation", "budget_ms"} & set(re.findall(r"`(\w+)`", from_code))
    assert page_own_settings("page's own and no `PipelineConfig` field: `score_mode` and `budget_ms` (x)") != set(PAGE_ONLY)
