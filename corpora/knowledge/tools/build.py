"""Build the knowledge corpus (BEIR layout) from the editable sources in tools/.

Sources (all hand-written for this project):
  tools/source/*.txt    passages: "@key | Title" line, passage text, blank line ("#" = comment)
  tools/queries.tsv     query-id <TAB> type <TAB> text
  tools/judgments.txt   graded judgments by passage key (see the header of that file)
  tools/pools/*.json    pooled passage ids per query, written by tools/pool.py
  tools/keymap.tsv      frozen key -> corpus id mapping (extended, never rewritten)

Outputs: corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv.

Every pooled passage that has no explicit grade in judgments.txt was read and judged not
relevant; it is written to the qrels with grade 0, so "judged" and "pooled" coincide and the
corpus check can verify pool completeness. A passage key listed in judgments.txt with grade 0 is
an explicit non-relevant judgment (used for keyword traps that may not be pooled).

Run from the repository root:  python corpora/knowledge/tools/build.py
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIN_WORDS, MAX_WORDS = 40, 200
KEY_RE = re.compile(r"^@([a-z0-9][a-z0-9-]*)\s*\|\s*(.+?)\s*$")
QID_RE = re.compile(r"^q\d{3}$")
QUERY_TYPES = {"keyword", "question", "ambiguous", "paraphrase"}


def read_passages() -> dict[str, tuple[str, str]]:
    passages: dict[str, tuple[str, str]] = {}

    def add(path: Path, key: str | None, title: str | None, lines: list[str]) -> None:
        if key is None:
            return
        text = " ".join(line.strip() for line in lines).strip()
        if not text:
            raise SystemExit(f"{path.name}: passage {key} has no text")
        if key in passages:
            raise SystemExit(f"{path.name}: duplicate key {key}")
        passages[key] = (title, text)

    for path in sorted((HERE / "source").glob("*.txt")):
        key = title = None
        lines: list[str] = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.startswith("#"):
                continue
            m = KEY_RE.match(raw)
            if m:
                add(path, key, title, lines)
                key, title, lines = m.group(1), m.group(2), []
            elif raw.strip():
                if key is None:
                    raise SystemExit(f"{path.name}: text before the first @key line: {raw[:60]!r}")
                lines.append(raw)
        add(path, key, title, lines)
    for key, (_, text) in passages.items():
        n = len(text.split())
        if not MIN_WORDS <= n <= MAX_WORDS:
            raise SystemExit(f"passage {key} has {n} words (allowed {MIN_WORDS}-{MAX_WORDS})")
    return passages


def load_keymap(keys: list[str]) -> dict[str, str]:
    """key -> kNNNN. Existing assignments are never changed; new keys get the next free ids in a
    seeded random order, so ids carry no hint of topic or of which passage answers which query."""
    path = HERE / "keymap.tsv"
    mapping: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                key, did = line.split("\t")
                mapping[key] = did
    new = [k for k in keys if k not in mapping]
    if new:
        random.Random(20240611 + len(mapping)).shuffle(new)
        next_no = max((int(d[1:]) for d in mapping.values()), default=0) + 1
        for key in new:
            mapping[key] = f"k{next_no:04d}"
            next_no += 1
        with path.open("w", encoding="utf-8") as f:
            for key, did in sorted(mapping.items(), key=lambda kv: kv[1]):
                f.write(f"{key}\t{did}\n")
    stale = set(mapping) - set(keys)
    if stale:
        raise SystemExit(f"keymap has keys without a passage (ids must stay stable): {sorted(stale)}")
    return mapping


def read_queries() -> list[dict]:
    queries = []
    for line in (HERE / "queries.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        qid, qtype, text = line.split("\t")
        if not QID_RE.match(qid) or qtype not in QUERY_TYPES or not text.strip():
            raise SystemExit(f"bad query line: {line!r}")
        queries.append({"_id": qid, "text": text.strip(), "metadata": {"type": qtype}})
    ids = [q["_id"] for q in queries]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate query ids")
    return queries


def read_judgments(keys: set[str], qids: set[str]) -> dict[str, dict[str, int]]:
    """judgments.txt: a line "qNNN" opens a query; following lines are "<grade> key key ..."."""
    judged: dict[str, dict[str, int]] = {}
    current = None
    for raw in (HERE / "judgments.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split()
        if QID_RE.match(head[0]):
            current = head[0]
            if current not in qids:
                raise SystemExit(f"judgments for unknown query {current}")
            if current in judged:
                raise SystemExit(f"query {current} judged twice")
            judged[current] = {}
            continue
        if current is None or head[0] not in {"0", "1", "2"}:
            raise SystemExit(f"bad judgment line: {raw!r}")
        grade = int(head[0])
        for key in head[1:]:
            if key not in keys:
                raise SystemExit(f"{current}: unknown passage key {key}")
            if key in judged[current]:
                raise SystemExit(f"{current}: {key} graded twice")
            judged[current][key] = grade
    return judged


def read_pools(id_to_key: dict[str, str]) -> dict[str, set[str]]:
    pools: dict[str, set[str]] = {}
    for path in sorted((HERE / "pools").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for qid, lists in data["pools"].items():
            for ids in lists.values():
                pools.setdefault(qid, set()).update(id_to_key[d] for d in ids)
    return pools


def split_of(qid: str) -> str:
    """Alternate by query number: odd numbers (q001, q003, ...) test, even numbers train."""
    return "test" if int(qid[1:]) % 2 == 1 else "train"


def main() -> int:
    passages = read_passages()
    keymap = load_keymap(list(passages))
    id_to_key = {v: k for k, v in keymap.items()}
    queries = read_queries()
    qids = {q["_id"] for q in queries}
    judged = read_judgments(set(passages), qids)
    pools = read_pools(id_to_key)

    with (ROOT / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for key in sorted(passages, key=lambda k: keymap[k]):
            title, text = passages[key]
            f.write(json.dumps({"_id": keymap[key], "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (ROOT / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")

    rows = {"train": [], "test": []}
    problems = []
    for q in queries:
        qid = q["_id"]
        grades = dict(judged.get(qid, {}))
        for key in pools.get(qid, ()):
            grades.setdefault(key, 0)
        if not any(g == 2 for g in grades.values()):
            problems.append(f"{qid} has no grade-2 passage")
        for key, grade in sorted(grades.items(), key=lambda kv: (-kv[1], keymap[kv[0]])):
            rows[split_of(qid)].append(f"{qid}\t{keymap[key]}\t{grade}")
    missing = sorted(qids - set(judged))
    if missing:
        problems.append(f"queries without judgments: {missing}")
    (ROOT / "qrels").mkdir(exist_ok=True)
    for split, lines in rows.items():
        (ROOT / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n", encoding="utf-8")

    print(f"{len(passages)} passages, {len(queries)} queries, "
          f"{sum(len(v) for v in rows.values())} judgments ({len(rows['train'])} train, {len(rows['test'])} test)")
    for p in problems:
        print("WARNING:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
