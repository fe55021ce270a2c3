"""`python -m reranker judgments list|export|import|remove`: the grades made in the app for a corpus (its
overlay, `reranker.judgments`), from the command line.

`--dataset` names the corpus as `eval` does, so these commands read and write the same overlay folder as
the app and `eval`. Every write goes through `JudgmentStore` (locked, atomic), so it is safe while the app
is grading the same corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.commands import judge_next
from reranker.commands.common import Command, add_dataset_argument, judgment_store, load_cli_dataset
from reranker.errors import ConfigError, DataError
from reranker.judgments import (
    OVERLAY_SPLIT,
    QRELS_FILE,
    QUERIES_FILE,
    listed_judgments,
    merge_files,
    merged_texts,
    overlay_texts,
    remove_judgments,
)

QUERY_COLUMN = 48  # characters of a query's text in the `list` table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{list,export,import,remove,next}")
    for name, help_text, add in (
        ("list", "the grades made in the app (or imported) for a corpus: how many, and each one", _add_list),
        ("export", f"write the overlay, alone or merged over the shipped qrels, as {QRELS_FILE} + {QUERIES_FILE}", _add_export),
        ("import", "merge a qrels file (and its queries.jsonl) into the overlay, as the app's upload does", _add_import),
        ("remove", "delete grades made here for a query (the corpus's shipped grades then apply again)", _add_remove),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        add_dataset_argument(sub)
        add(sub)
    judge_next.add_arguments(actions.add_parser("next", help=judge_next.HELP, description=judge_next.HELP))


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, metavar="DIR", help=f"folder to write {QRELS_FILE} (and {QUERIES_FILE} when any) into"
    )
    parser.add_argument(
        "--merged",
        action="store_true",
        help="the split's shipped qrels with the overlay merged over them (what `eval` scores against); "
        "default: the overlay alone (what the app's download holds)",
    )
    parser.add_argument("--split", default=OVERLAY_SPLIT, help="the split --merged exports (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files already in --out")


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="qrels: BEIR TSV (query-id, corpus-id, score) or TREC (qid iter docid grade)"
    )
    parser.add_argument("--queries", metavar="FILE", help="queries.jsonl with the texts of queries the corpus does not ship")


def _add_remove(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", required=True, metavar="QID", help="the query id (`judgments list` shows them)")
    parser.add_argument(
        "--doc", action="append", metavar="DOCID", help="remove only this document's grade (repeat for several; default: all)"
    )


def run(args: argparse.Namespace) -> int:
    actions = {"list": run_list, "export": run_export, "import": run_import, "remove": run_remove, "next": judge_next.run}
    return actions[args.action](args)


def run_list(args: argparse.Namespace) -> int:
    dataset = load_cli_dataset(args.dataset)
    store = judgment_store(args.dataset)
    rows = listed_judgments(store.load(), dataset)
    queries = len({row.qid for row in rows})
    if args.json:
        judgments = [
            {"qid": r.qid, "query": r.query, "docid": r.doc, "grade": r.grade, "shipped": r.shipped} for r in rows
        ]
        data = {"dataset": args.dataset, "overlay_path": str(store.folder), "count": len(rows), "queries": queries}
        print(json.dumps({**data, "judgments": judgments}, indent=2, ensure_ascii=False))
        return 0
    print(f"{len(rows)} judgments for {queries} queries made in the app or imported, in {store.folder}")
    if not rows:
        return 0
    table = [("qid", "query", "docid", "grade", "shipped")]
    for r in rows:
        query = r.query if r.query is not None else "(no text)"
        query = query if len(query) <= QUERY_COLUMN else query[: QUERY_COLUMN - 1] + "…"
        table.append((r.qid, query, r.doc, str(r.grade), "-" if r.shipped is None else str(r.shipped)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_export(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    qrels_path, queries_path = out / QRELS_FILE, out / QUERIES_FILE
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to write {QRELS_FILE} and {QUERIES_FILE} into")
    present = [str(p) for p in (qrels_path, queries_path) if p.exists()]
    if present and not args.overwrite:
        raise ConfigError(f"{' and '.join(present)} already exist; pass --overwrite to replace them")
    dataset = load_cli_dataset(args.dataset)
    overlay = judgment_store(args.dataset).load()
    if args.merged:
        qrels_text, queries_text, merged = merged_texts(dataset, overlay, args.split)
        for problem in merged.problems[len(dataset.problems):]:
            print(f"note: {problem}", file=sys.stderr)
    else:
        qrels_text, queries_text = overlay_texts(overlay)
    atomic_write_text(qrels_path, qrels_text)
    judgments = qrels_text.count("\n") - 1  # the header line
    what = f"the {args.split} split's shipped qrels with the overlay merged over them" if args.merged else "the overlay"
    print(f"wrote {judgments} judgments ({what}) to {qrels_path}")
    if queries_text is not None:
        atomic_write_text(queries_path, queries_text)
        count = len(queries_text.splitlines())
        print(f"wrote the texts of {count} {'query' if count == 1 else 'queries'} the corpus does not ship to {queries_path}")
    elif queries_path.exists():
        queries_path.unlink()  # --overwrite: a stale queries file would name queries the qrels no longer hold
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.file.lower().endswith(".jsonl"):
        raise ConfigError(f"{args.file} looks like a queries file: give the qrels file first, its queries with --queries")
    if args.queries and not args.queries.lower().endswith(".jsonl"):
        raise ConfigError(f"--queries takes a queries.jsonl ({{\"_id\": ..., \"text\": ...}} per line), not {args.queries}")
    dataset = load_cli_dataset(args.dataset)
    files = [(path, _read(path)) for path in (args.file, args.queries) if path]
    _, report = merge_files(judgment_store(args.dataset), dataset, files)
    print(report.message(args.dataset))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    dataset = load_cli_dataset(args.dataset)
    print(remove_judgments(judgment_store(args.dataset), dataset, args.query, args.doc).describe())
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except IsADirectoryError:
        raise DataError("is a folder; give the file", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", path=path) from None


COMMAND = Command(
    "judgments",
    "the grades made in the app for a corpus: list, export, import or remove them",
    add_arguments,
    run,
)
