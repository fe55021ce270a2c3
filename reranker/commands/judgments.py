"""`python -m reranker judgments list|export|import|remove|history|agreement`: a corpus's grades made in the app
(`reranker.judgments`: a log of named grade events in SQLite), from the command line.

`--dataset` names the corpus as `eval` does, so these commands read and write the same judgments as the app
and `eval`. Every write is one SQLite transaction, so it is safe while the app is grading the same corpus.
A subcommand is one `Action` in `ACTIONS`: its name, help, arguments and function.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.commands import judge_next
from reranker.commands.common import Command, add_dataset_argument, judgment_store, load_cli_dataset
from reranker.errors import ConfigError, DataError
from reranker.judge_agreement import LEVELS, agreement_report, agreement_text
from reranker.judgments import (
    DEFAULT_JUDGE,
    OVERLAY_SPLIT,
    QRELS_FILE,
    QUERIES_FILE,
    RULE_ENV,
    RULE_HELP,
    RULES,
    TREC_QRELS_FILE,
    check_judge,
    format_trec_qrels,
    listed_judgments,
    merge_files,
    merged_texts,
    overlay_texts,
    remove_judgments,
)

QUERY_COLUMN = 48  # characters of a query's text in the `list` table
ONE_JUDGE = "judge"  # --rule judge: one judge's grades (--judge NAME)


@dataclass(frozen=True)
class Action(Command):
    """A `judgments` subcommand: a command whose `add_arguments` declares its arguments besides --dataset."""

    takes_dataset: bool = True  # False where `add_arguments` declares --dataset itself (with the pipeline's arguments)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{" + ",".join(a.name for a in ACTIONS) + "}")
    for action in ACTIONS:
        sub = actions.add_parser(action.name, help=action.help, description=action.help)
        if action.takes_dataset:
            add_dataset_argument(sub)
        action.add_arguments(sub)


def _add_judge(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--judge", metavar="NAME", default=DEFAULT_JUDGE, help=f"{what} (default: %(default)s)")


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--judge", metavar="NAME", help="only this judge's grades (default: every judge's)")


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, metavar="DIR",
        help=f"folder to write {QRELS_FILE} (or {TREC_QRELS_FILE} with --format trec), and {QUERIES_FILE} when needed, into",
    )
    rules = "; ".join(f"{name}: {text}" for name, text in RULE_HELP.items())
    parser.add_argument(
        "--rule", choices=(*RULES, ONE_JUDGE),
        help=f"one grade per (query, document) where judges disagree: {rules}; {ONE_JUDGE}: only --judge's grades "
        f"(default: ${RULE_ENV}, else mean; --judge alone means {ONE_JUDGE})",
    )
    parser.add_argument("--judge", metavar="NAME", help="export this judge's grades only")
    parser.add_argument("--format", choices=("beir", "trec"), default="beir",
                        help="beir: query-id<TAB>corpus-id<TAB>score with a header; trec: 'qid 0 docid grade' (trec_eval)")
    parser.add_argument(
        "--merged",
        action="store_true",
        help="the split's shipped qrels with the grades made here merged over them (what `eval` scores against); "
        "default: the grades made here alone (what the app's download holds)",
    )
    parser.add_argument("--split", default=OVERLAY_SPLIT, help="the split --merged exports (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files already in --out")


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="qrels: BEIR TSV (query-id, corpus-id, score) or TREC (qid iter docid grade)"
    )
    parser.add_argument("--queries", metavar="FILE", help="queries.jsonl with the texts of queries the corpus does not ship")
    _add_judge(parser, "whose grades these are")


def _add_remove(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", required=True, metavar="QID", help="the query id (`judgments list` shows them)")
    parser.add_argument(
        "--doc", action="append", metavar="DOCID", help="remove only this document's grade (repeat for several; default: all)"
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--judge", metavar="NAME", default=DEFAULT_JUDGE, help="whose grades to remove (default: %(default)s)")
    who.add_argument("--all-judges", action="store_true", help="remove every judge's grades of the query (or of --doc)")


def _add_history(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", metavar="QID", help="only this query's events")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _add_agreement(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", choices=LEVELS, default="ordinal",
                        help="Krippendorff's alpha's difference function (default: %(default)s: grades as ranks)")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="pairs and queries listed (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (every pair and query)")


def run(args: argparse.Namespace) -> int:
    return next(action for action in ACTIONS if action.name == args.action).run(args)


def run_list(args: argparse.Namespace) -> int:
    dataset = load_cli_dataset(args.dataset)
    store = judgment_store(args.dataset)
    judge = check_judge(args.judge) if args.judge else None
    overlay = store.load(judge=judge)
    rows = listed_judgments(overlay, dataset)
    queries = len({row.qid for row in rows})
    judges = sorted({row.judge for row in rows})
    if args.json:
        judgments = [
            {"qid": r.qid, "query": r.query, "docid": r.doc, "judge": r.judge, "grade": r.grade, "shipped": r.shipped}
            for r in rows
        ]
        data = {"dataset": args.dataset, "overlay_path": str(store.folder), "database": str(store.database),
                "count": len(rows), "queries": queries, "judges": judges}
        print(json.dumps({**data, "judgments": judgments}, indent=2, ensure_ascii=False))
        return 0
    by = f", by {len(judges)} {'judge' if len(judges) == 1 else 'judges'}" if judges else ""
    print(f"{len(rows)} judgments for {queries} queries made in the app or imported{by}, in {store.database}")
    if not rows:
        return 0
    table = [("qid", "query", "docid", "judge", "grade", "shipped")]
    for r in rows:
        query = r.query if r.query is not None else "(no text)"
        query = query if len(query) <= QUERY_COLUMN else query[: QUERY_COLUMN - 1] + "…"
        table.append((r.qid, query, r.doc, r.judge, str(r.grade), "-" if r.shipped is None else str(r.shipped)))
    _print_table(table)
    return 0


def _print_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def export_rule(rule: str | None, judge: str | None) -> tuple[str | None, str | None]:
    """(merge rule, judge) from --rule and --judge: --judge alone, or with --rule judge, exports one judge."""
    if rule == ONE_JUDGE and not judge:
        raise ConfigError("--rule judge exports one judge's grades: name the judge with --judge NAME")
    if judge and rule not in (None, ONE_JUDGE):
        raise ConfigError(f"--judge NAME exports that judge's grades alone; it cannot be combined with --rule {rule}")
    return (None if rule == ONE_JUDGE else rule), (check_judge(judge) if judge else None)


def run_export(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    qrels_path = out / (TREC_QRELS_FILE if args.format == "trec" else QRELS_FILE)
    queries_path = out / QUERIES_FILE
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to write {qrels_path.name} and {QUERIES_FILE} into")
    present = [str(p) for p in (qrels_path, queries_path) if p.exists()]
    if present and not args.overwrite:
        raise ConfigError(f"{' and '.join(present)} already exist; pass --overwrite to replace them")
    rule, judge = export_rule(args.rule, args.judge)
    dataset = load_cli_dataset(args.dataset)
    store = judgment_store(args.dataset)
    overlay = store.load(rule, judge=judge)
    if judge and not len(overlay):
        known = ", ".join(sorted({g.judge for g in store.current()})) or "none yet"
        raise ConfigError(f"judge {judge!r} has no grades for {args.dataset}; the judges are: {known}")
    if args.merged:
        qrels_text, queries_text, merged = merged_texts(dataset, overlay, args.split)
        for problem in merged.problems[len(dataset.problems):]:
            print(f"note: {problem}", file=sys.stderr)
        qrels = merged.split_qrels(args.split)
    else:
        qrels_text, queries_text = overlay_texts(overlay)
        qrels = overlay.qrels
    if args.format == "trec":
        qrels_text = format_trec_qrels(qrels)
    atomic_write_text(qrels_path, qrels_text)
    judgments = sum(len(docs) for docs in qrels.values())
    what = f"the {args.split} split's shipped qrels with the overlay merged over them" if args.merged else "the overlay"
    how = f"{judge}'s grades only" if judge else f"where judges differ: {RULE_HELP[overlay.rule]} (rule {overlay.rule})"
    print(f"wrote {judgments} judgments ({what}) to {qrels_path}; {how}")
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
    judge = check_judge(args.judge)
    dataset = load_cli_dataset(args.dataset)
    files = [(path, _read(path)) for path in (args.file, args.queries) if path]
    _, report = merge_files(judgment_store(args.dataset), dataset, files, judge=judge)
    print(report.message(args.dataset) + ("" if judge == DEFAULT_JUDGE else f" (as {judge}'s grades)"))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    dataset = load_cli_dataset(args.dataset)
    store = judgment_store(args.dataset)
    if not args.all_judges:
        print(remove_judgments(store, dataset, args.query, args.doc, judge=args.judge).describe())
        return 0
    judges = sorted({g.judge for g in store.current() if g.qid == args.query and (not args.doc or g.doc in args.doc)})
    if not judges:
        raise ConfigError(f"no judge has a grade to remove for query {args.query!r}"
                          + (f" and {', '.join(args.doc)}" if args.doc else "") + " (`judgments list` shows them)")
    for judge in judges:
        docs = [d for d in args.doc if d in store.load(judge=judge).qrels.get(args.query, {})] if args.doc else None
        print(remove_judgments(store, dataset, args.query, docs, judge=judge).describe())
    return 0


def run_history(args: argparse.Namespace) -> int:
    load_cli_dataset(args.dataset)  # a wrong --dataset says so rather than showing an empty history
    store = judgment_store(args.dataset)
    events = store.history(args.query)
    if args.json:
        rows = [{"id": e.id, "at": e.at, "judge": e.judge, "qid": e.qid, "docid": e.doc, "grade": e.grade,
                 "query": e.query, "origin": e.origin} for e in events]
        print(json.dumps({"dataset": args.dataset, "database": str(store.database), "events": rows}, indent=2,
                         ensure_ascii=False))
        return 0
    print(f"{len(events)} grade events{f' of query {args.query}' if args.query else ''}, oldest first, in {store.database}")
    if events:
        table = [("at (UTC)", "judge", "qid", "docid", "grade", "origin")]
        table += [(e.at, e.judge, e.qid, e.doc, "removed" if e.grade is None else str(e.grade), e.origin) for e in events]
        _print_table(table)
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    dataset = load_cli_dataset(args.dataset)
    store = judgment_store(args.dataset)
    queries = {**store.texts(), **dataset.queries}
    report = agreement_report(store.current(), queries, args.level)
    if args.json:
        print(json.dumps({"dataset": args.dataset, **report.to_json()}, indent=2, ensure_ascii=False))
    else:
        print(agreement_text(report, max(args.limit, 0)))
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


ACTIONS: tuple[Action, ...] = (
    Action("list", "the grades made in the app (or imported) for a corpus: how many, and each judge's", _add_list, run_list),
    Action("export", f"write the grades, one per pair by a rule, alone or merged over the shipped qrels, as "
                     f"{QRELS_FILE} (or TREC {TREC_QRELS_FILE}) + {QUERIES_FILE}", _add_export, run_export),
    Action("import", "merge a qrels file (and its queries.jsonl) into the judgments, as the app's upload does",
           _add_import, run_import),
    Action("remove", "remove a judge's grades for a query (the corpus's shipped grades then apply again)",
           _add_remove, run_remove),
    Action("history", "every grade event, oldest first: who graded or removed what, and when", _add_history, run_history),
    Action("agreement", "how much the judges agree (Krippendorff's alpha) per corpus and per query, the pairs "
                        "they disagree on first", _add_agreement, run_agreement),
    Action("next", judge_next.HELP, judge_next.add_arguments, judge_next.run, takes_dataset=False),
)

COMMAND = Command(
    "judgments",
    "the grades made in the app for a corpus: list, export, import, remove, history, agreement",
    add_arguments,
    run,
)
