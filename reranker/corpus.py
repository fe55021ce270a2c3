"""Corpora and datasets: BEIR folders, plain document files, uploads (zip included).

Every loader validates as it reads and raises `DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reranker.errors import DataError
from reranker.types import Document

logger = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = (".jsonl", ".csv", ".txt", ".md")
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 300 * 1024 * 1024

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Corpus:
    """An ordered, id-unique collection of documents."""

    documents: tuple[Document, ...]
    name: str = "corpus"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {doc.id: doc for doc in self.documents})

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, doc_id: str) -> Document:
        return self._by_id[doc_id]  # type: ignore[attr-defined]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id  # type: ignore[attr-defined]

    def get(self, doc_id: str) -> Document | None:
        return self._by_id.get(doc_id)  # type: ignore[attr-defined]

    @property
    def fingerprint(self) -> str:
        """A hash of ids, titles and texts: equal corpora share embedding caches."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            digest = hashlib.sha256()
            for doc in self.documents:
                for part in (doc.id, doc.title, doc.text):
                    digest.update(part.encode("utf-8"))
                    digest.update(b"\x00")
            cached = digest.hexdigest()
            object.__setattr__(self, "_fingerprint", cached)
        return cached


@dataclass(frozen=True)
class Dataset:
    """A corpus with optional queries and graded relevance judgments per split."""

    corpus: Corpus
    queries: Mapping[str, str] = field(default_factory=dict)
    qrels: Mapping[str, Qrels] = field(default_factory=dict)
    path: str = ""
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.corpus.name

    def split_qrels(self, split: str) -> Qrels:
        if split not in self.qrels:
            available = ", ".join(sorted(self.qrels)) or "none"
            raise DataError(
                f"no relevance judgments for split {split!r} (available: {available}); "
                f"add qrels/{split}.tsv to the dataset folder",
                path=self.path or None,
            )
        return self.qrels[split]

    def split_queries(self, split: str) -> dict[str, str]:
        """The queries of a split that have judgments, in qrels order."""
        qrels = self.split_qrels(split)
        return {qid: self.queries[qid] for qid in qrels if qid in self.queries}


def build_corpus(documents: Iterable[Document], name: str = "corpus") -> Corpus:
    """A corpus from documents, refusing duplicate ids and empty texts."""
    seen: set[str] = set()
    docs = []
    for doc in documents:
        if doc.id in seen:
            raise DataError(f"duplicate document id {doc.id!r}")
        if not doc.full_text.strip():
            raise DataError(f"document {doc.id!r} has no text")
        seen.add(doc.id)
        docs.append(doc)
    if not docs:
        raise DataError("the corpus is empty: add at least one document")
    return Corpus(tuple(docs), name)


def load_dataset(path: str | Path) -> Dataset:
    """A BEIR folder (corpus.jsonl [+ queries.jsonl, qrels/*.tsv]) or document file(s)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("no such file or folder", path=str(path))
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return load_beir(path)
    return Dataset(corpus=load_documents(path), path=str(path))


def load_beir(folder: str | Path) -> Dataset:
    """Load a BEIR-layout folder; qrels naming unknown queries or documents are counted, not fatal."""
    folder = Path(folder)
    corpus = Corpus(tuple(_read_jsonl_documents(folder / "corpus.jsonl", require_unique=True)), folder.name)
    if not corpus.documents:
        raise DataError("the corpus is empty", path=str(folder / "corpus.jsonl"))
    queries: dict[str, str] = {}
    if (folder / "queries.jsonl").is_file():
        queries = _read_queries(folder / "queries.jsonl")
    qrels: dict[str, Qrels] = {}
    problems: list[str] = []
    qrels_dir = folder / "qrels"
    if qrels_dir.is_dir():
        for tsv in sorted(qrels_dir.glob("*.tsv")):
            split_qrels, unknown_q, unknown_d = _read_qrels(tsv, queries, corpus)
            qrels[tsv.stem] = split_qrels
            if unknown_q or unknown_d:
                message = (
                    f"{tsv}: ignored {unknown_q} judgments for unknown queries and "
                    f"{unknown_d} for unknown documents"
                )
                problems.append(message)
                logger.warning(message)
    return Dataset(corpus, queries, qrels, str(folder), tuple(problems))


def load_documents(path: str | Path, name: str | None = None) -> Corpus:
    """Documents from one file, a folder of files, or a .zip of them."""
    path = Path(path).expanduser()
    if path.suffix.lower() == ".zip":
        return _load_zip(path, name)
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES) if path.is_dir() else [path]
    if path.is_file() and path.suffix.lower() not in DOCUMENT_SUFFIXES:
        raise DataError(f"unsupported file type; use one of {', '.join(DOCUMENT_SUFFIXES)} or .zip", path=str(path))
    if not files:
        raise DataError(f"no {', '.join(DOCUMENT_SUFFIXES)} files found", path=str(path))
    root = path if path.is_dir() else path.parent
    documents: list[Document] = []
    origin: dict[str, str] = {}
    for file in files:
        relative = file.relative_to(root).as_posix()
        for doc, line in _documents_from_bytes(_read_capped(file), relative, str(file)):
            if doc.id in origin:
                raise DataError(f"duplicate document id {doc.id!r} (first seen in {origin[doc.id]})", path=str(file), line=line)
            origin[doc.id] = f"{file}" + (f", line {line}" if line else "")
            documents.append(doc)
    if not documents:
        raise DataError("no documents found", path=str(path))
    return Corpus(tuple(documents), name or path.stem)


def _load_zip(path: Path, name: str | None) -> Corpus:
    """Read members in memory: nothing is extracted, so no path can escape a folder."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive ({exc})", path=str(path)) from None
    with archive:
        members = [
            m for m in archive.infolist() if not m.is_dir() and PurePosixPath(m.filename).suffix.lower() in DOCUMENT_SUFFIXES
        ]
        members = [m for m in members if not PurePosixPath(m.filename).name.startswith(".") and "__MACOSX" not in m.filename]
        if len(members) > MAX_ZIP_MEMBERS:
            raise DataError(f"too many files in the archive ({len(members)} > {MAX_ZIP_MEMBERS})", path=str(path))
        if sum(m.file_size for m in members) > MAX_ZIP_TOTAL_BYTES:
            raise DataError(f"archive expands beyond {MAX_ZIP_TOTAL_BYTES // 2**20} MB", path=str(path))
        if not members:
            raise DataError(f"the archive holds no {', '.join(DOCUMENT_SUFFIXES)} files", path=str(path))
        documents: list[Document] = []
        seen: set[str] = set()
        for member in sorted(members, key=lambda m: m.filename):
            label = f"{path.name}:{member.filename}"
            for doc, line in _documents_from_bytes(archive.read(member), member.filename, label):
                if doc.id in seen:
                    raise DataError(f"duplicate document id {doc.id!r}", path=label, line=line)
                seen.add(doc.id)
                documents.append(doc)
    return Corpus(tuple(documents), name or path.stem)


def _read_capped(file: Path) -> bytes:
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"file is {size // 2**20} MB; the limit is {MAX_FILE_BYTES // 2**20} MB", path=str(file))
    return file.read_bytes()


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path=label, line=line) from None


def _documents_from_bytes(data: bytes, relative: str, label: str) -> Iterable[tuple[Document, int | None]]:
    text = _decode(data, label)
    suffix = PurePosixPath(relative).suffix.lower()
    if suffix == ".jsonl":
        yield from _parse_jsonl_documents(text, label, default_prefix=PurePosixPath(relative).stem)
    elif suffix == ".csv":
        yield from _parse_csv_documents(text, label)
    else:
        if not text.strip():
            raise DataError("the file is empty", path=label)
        yield _plain_text_document(text, str(PurePosixPath(relative).with_suffix(""))), None


def _plain_text_document(text: str, doc_id: str) -> Document:
    lines = text.strip().splitlines()
    first = lines[0].strip()
    if first.startswith("#") or (len(first) <= 120 and len(lines) > 1 and not first.endswith(".")):
        return Document(id=doc_id, title=first.lstrip("#").strip(), text="\n".join(lines[1:]).strip() or first)
    return Document(id=doc_id, title="", text=text.strip())


def _read_jsonl_documents(file: Path, require_unique: bool) -> list[Document]:
    if not file.is_file():
        raise DataError("missing corpus.jsonl", path=str(file))
    docs = []
    seen: dict[str, int] = {}
    for doc, line in _parse_jsonl_documents(_decode(_read_capped(file), str(file)), str(file), default_prefix=None):
        if require_unique and doc.id in seen:
            raise DataError(f"duplicate document id {doc.id!r} (first on line {seen[doc.id]})", path=str(file), line=line)
        seen[doc.id] = line or 0
        docs.append(doc)
    return docs


def _parse_jsonl_documents(text: str, label: str, default_prefix: str | None) -> Iterable[tuple[Document, int]]:
    for number, record in json_lines(text, label):
        raw_id = record.get("_id", record.get("id"))
        if raw_id is None:
            if default_prefix is None:
                raise DataError('missing "_id"', path=label, line=number)
            raw_id = f"{default_prefix}-{number}"
        body = record.get("text", record.get("contents", ""))
        title = record.get("title") or ""
        if not isinstance(body, str) or not isinstance(title, str):
            raise DataError('"text" and "title" must be strings', path=label, line=number)
        if not (body.strip() or title.strip()):
            raise DataError(f"document {raw_id!r} has empty text", path=label, line=number)
        yield Document(id=str(raw_id), title=title.strip(), text=body.strip()), number


def json_lines(text: str, label: str) -> Iterable[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines text; a bad line is a DataError naming it."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"broken JSON ({exc.msg} at column {exc.colno})", path=label, line=number) from None
        if not isinstance(record, dict):
            raise DataError("each line must be a JSON object", path=label, line=number)
        yield number, record


def _parse_csv_documents(text: str, label: str) -> Iterable[tuple[Document, int]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "text" not in fields:
        raise DataError('a CSV corpus needs a "text" column (optional: "id", "title")', path=label, line=1)
    reader.fieldnames = fields
    for row in reader:
        number = reader.line_num
        body = (row.get("text") or "").strip()
        if not body:
            raise DataError("empty text", path=label, line=number)
        doc_id = (row.get("id") or row.get("_id") or f"row-{number}").strip()
        yield Document(id=doc_id, title=(row.get("title") or "").strip(), text=body), number


def _read_queries(file: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, record in json_lines(_decode(_read_capped(file), str(file)), str(file)):
        qid = record.get("_id", record.get("id"))
        text = record.get("text")
        if qid is None or not isinstance(text, str):
            raise DataError('each query needs "_id" and "text"', path=str(file), line=number)
        if str(qid) in queries:
            raise DataError(f"duplicate query id {qid!r}", path=str(file), line=number)
        queries[str(qid)] = text
    return queries


def _read_qrels(file: Path, queries: Mapping[str, str], corpus: Corpus) -> tuple[Qrels, int, int]:
    qrels: Qrels = {}
    unknown_queries = unknown_docs = 0
    text = _decode(_read_capped(file), str(file))
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.strip().split("\t") if "\t" in line else line.split()
        if not parts or not line.strip():
            continue
        if number == 1 and not parts[-1].lstrip("-").isdigit():
            continue  # header
        if len(parts) == 4:  # TREC layout: qid iter docid grade
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise DataError("expected query-id<TAB>corpus-id<TAB>score", path=str(file), line=number)
        qid, doc_id, grade_text = parts
        try:
            grade = int(grade_text)
        except ValueError:
            raise DataError(f"score {grade_text!r} is not an integer", path=str(file), line=number) from None
        if queries and qid not in queries:
            unknown_queries += 1
            continue
        if doc_id not in corpus:
            unknown_docs += 1
            continue
        qrels.setdefault(qid, {})[doc_id] = grade
    return qrels, unknown_queries, unknown_docs
