"""Helpers shared by test modules: small BEIR folders, ranked lists, and the chromium launch flags,
free ports and dropdown typing of the tests that serve the app or drive Debian's chromium.

Test modules import helpers from here (or fixtures from conftest.py), never from each other.
"""

from __future__ import annotations

import json
import re
import socket
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from reranker.types import Document, Hit, RankedList
from tests.conftest import SEED_QUERY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Eight documents on unrelated topics, each with one query that only it answers (graded 2).
TOPICS = {
    "volcano": (
        "Volcanoes",
        "A volcano erupts when magma, molten rock from the mantle, rises through the crust as lava and ash.",
    ),
    "sourdough": (
        "Sourdough bread",
        "Sourdough bread is leavened by a starter of wild yeast and lactobacilli instead of baker's yeast.",
    ),
    "chess": ("Chess openings", "The Sicilian Defence is a chess opening answering 1.e4 with c5; it is sharp and popular."),
    "penguin": ("Emperor penguins", "Emperor penguins breed in the Antarctic winter; males incubate the egg on their feet."),
    "violin": ("The violin", "The violin is a bowed string instrument with four strings tuned in fifths: G, D, A and E."),
    "bitcoin": (
        "Bitcoin mining",
        "Bitcoin mining secures the blockchain by proof of work: miners hash block headers for a reward.",
    ),
    "tides": ("Ocean tides", "Tides are caused by the gravitational pull of the Moon and the Sun on the Earth's oceans."),
    "attention": (
        "Transformer attention",
        "The transformer attention mechanism weighs value vectors by softmax of query-key dot products.",
    ),
}
TOPIC_QUERIES = {
    "q-volcano": ("how does a volcano erupt with magma and lava", "volcano"),
    "q-sourdough": ("what leavens sourdough bread starter yeast", "sourdough"),
    "q-chess": ("Sicilian Defence chess opening", "chess"),
    "q-penguin": ("where do emperor penguins breed", "penguin"),
    "q-violin": ("how are violin strings tuned", "violin"),
    "q-bitcoin": ("bitcoin mining proof of work", "bitcoin"),
    "q-tides": ("what causes ocean tides moon", "tides"),
    "q-attention": (SEED_QUERY, "attention"),
}


def documents(topics: Mapping[str, tuple[str, str]]) -> list[Document]:
    """Documents from {id: (title, text)}."""
    return [Document(doc_id, text, title) for doc_id, (title, text) in topics.items()]


def write_beir(
    folder: Path,
    docs: Iterable[Document],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    split: str = "test",
) -> Path:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (query id -> {doc id: grade})."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, judged in qrels.items() for d, g in judged.items()]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_topics(folder: Path) -> Path:
    """The eight-topic corpus as a BEIR folder with one judged query per topic (split test)."""
    queries = {qid: text for qid, (text, _) in TOPIC_QUERIES.items()}
    qrels = {qid: {doc: 2} for qid, (_, doc) in TOPIC_QUERIES.items()}
    return write_beir(folder, documents(TOPICS), queries, qrels)


def zip_folder(folder: Path, archive: Path, *, top: str = "", extra: Mapping[str, bytes] | None = None,
               skip: Sequence[str] = ()) -> Path:
    """Zip a folder's files under `top/` ("" for the zip's top), leaving out `skip` (relative paths) and
    adding `extra` members (name -> bytes): an upload as a person would make it, or a broken one."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(folder.rglob("*")):
            relative = file.relative_to(folder).as_posix()
            if file.is_file() and relative not in skip:
                z.write(file, f"{top}/{relative}" if top else relative)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return archive


def ranked(stage: str, ids: Sequence[str], scores: Sequence[float] | None = None) -> RankedList:
    """A ranked list of `ids` in order; scores count down from len(ids) unless given."""
    scores = scores or [float(len(ids) - i) for i in range(len(ids))]
    hits = tuple(Hit(d, r, s, stage) for r, (d, s) in enumerate(zip(ids, scores, strict=False), start=1))
    return RankedList(stage, hits, "x")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_dropdown(page, elem_id: str, value: str) -> None:
    """Type a value into a Gradio dropdown that accepts custom values, and confirm it."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")
    page.locator("body").click(position={"x": 5, "y": 5})


REPO = Path(__file__).resolve().parents[1]


def registered_endpoints(root: Path = REPO) -> set[str]:
    """The API names the app's code registers (`api_name="..."`, and the layout's `wire(trigger, "name")`), read
    from the source: the docs check needs no app built; tests/test_app_client.py checks this against the app."""
    names: set[str] = set()
    for path in [*(root / "reranker" / "ui").glob("*.py"), root / "app.py"]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"""api_name\s*=\s*["'](\w+)["']""", text))
        names |= set(re.findall(r"""\bwire\(\s*[\w.\[\]()"']+?,\s*["'](\w+)["']\s*\)""", text))
    return names
