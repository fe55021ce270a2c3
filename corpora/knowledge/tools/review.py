"""Print the judging sheet: for each query, every pooled passage (key, title, current grade).

Ranks are shown only to locate passages; grades are assigned by reading the passage text.
  python corpora/knowledge/tools/review.py [q001 q002 ...] [--unjudged] [--text]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import build

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    only_unjudged = "--unjudged" in argv
    show_text = "--text" in argv
    wanted = {a for a in argv if a.startswith("q")}
    passages = build.read_passages()
    keymap = build.load_keymap(list(passages))
    id_to_key = {v: k for k, v in keymap.items()}
    queries = build.read_queries()
    judged = build.read_judgments(set(passages), {q["_id"] for q in queries})
    ranks: dict[str, dict[str, dict[str, int]]] = {}
    for path in sorted((HERE / "pools").glob("*.json")):
        for qid, lists in json.loads(path.read_text())["pools"].items():
            for stage, ids in lists.items():
                for r, d in enumerate(ids, 1):
                    slot = ranks.setdefault(qid, {}).setdefault(id_to_key[d], {})
                    slot[stage] = min(r, slot.get(stage, r))
    for q in queries:
        qid = q["_id"]
        if wanted and qid not in wanted:
            continue
        grades = judged.get(qid, {})
        keys = set(ranks.get(qid, {})) | set(grades)
        print(f"\n== {qid} [{q['metadata']['type']}] {q['text']}")
        for key in sorted(keys, key=lambda k: (-grades.get(k, -1), k)):
            if only_unjudged and key in grades:
                continue
            r = ranks.get(qid, {}).get(key, {})
            g = grades.get(key, "-")
            print(f"  {g} {key:28s} b{r.get('bm25', '--'):>2} d{r.get('dense', '--'):>2}  {passages[key][0]}")
            if show_text:
                print("      " + passages[key][1])


if __name__ == "__main__":
    main(sys.argv[1:])
