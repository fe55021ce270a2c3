"""One workspace's uploaded corpora (`UploadShelf`): each in a folder of its own, found again after a
restart, kept within the workspace's quota.

A BEIR zip (corpus, queries, qrels) is extracted safely (`reranker.archives`) into `<folder>/<name>-<hash>/`,
so its splits can be evaluated. Any other file of documents (or zip of them) is kept as uploaded in
`<folder>/<name>-<hash>/` beside an `upload.json` that names it. The quota (`WorkspacePolicy`) bounds the
number of uploads and their bytes: a new upload forgets the same workspace's oldest ones, never another's,
and says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reranker.archives import BeirLayout, extract_beir_zip, is_beir_zip
from reranker.cache import atomic_copy, atomic_write_text
from reranker.corpus import Corpus, Dataset, load_beir, load_documents
from reranker.corpus_keys import upload_key
from reranker.errors import DataError
from reranker.ui.corpora import CorpusEntry, CorpusShelf, CorpusSource, has_beir
from reranker.ui.kept_runs import RUNS_FOLDER
from reranker.ui.workspaces import WorkspacePolicy

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # one file; the page's upload button says the same
UPLOAD_SUFFIXES = (".jsonl", ".csv", ".txt", ".md", ".zip")
UPLOAD_INFO = "upload.json"  # in a documents upload's folder: its name as uploaded, its file and its label
_UPLOAD_FOLDER = re.compile(r"^(?P<stem>.+)-(?P<digest>[0-9a-f]{12})$")  # <name>-<content hash>


@dataclass(frozen=True)
class AddedUpload:
    """An upload registered, and the labels of the workspace's older uploads forgotten to make room for it."""

    source: CorpusSource
    forgotten: tuple[str, ...] = ()

    def message(self) -> str:
        said = f"Loaded {self.source.label}."
        if self.forgotten:
            said += f" To stay within this workspace's quota, forgot: {', '.join(self.forgotten)}."
        return said


def digest_of(path: Path, name: str, limit: int = MAX_UPLOAD_BYTES) -> str:
    """The first 12 hex digits of the file's SHA-256, refusing files over `limit` bytes."""
    size = path.stat().st_size
    if size > limit:
        raise DataError(f"the file is {size / 2**20:.0f} MB; the upload limit is {limit / 2**20:.0f} MB", path=name)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _as_uploaded(message: str, folder: Path, name: str, layout: BeirLayout | None) -> str:
    """A message about an extracted file, naming it as it sits in the uploaded zip (`data.zip:scifact/corpus.jsonl`)."""
    inside = f"{layout.root}/" if layout is not None and layout.root else ""
    return message.replace(f"{folder}{os.sep}", f"{name}:{inside}").replace(str(folder), name)


def named_as_uploaded(exc: DataError, path: Path, name: str) -> DataError:
    """`exc` about the temporary copy `path` (or a member of it, `<copy>:<member>`), naming the file as the user
    uploaded it, `name`; its fields (path, line) stay fields. An error that names no file is about the upload."""
    where = exc.path
    if where is None or where in (str(path), path.name):
        return exc.naming(name)
    if where.startswith(f"{path.name}:"):
        return exc.naming(name + where[len(path.name) :])
    return exc.naming(where.replace(str(path), name))


class UploadShelf(CorpusShelf):
    """The uploaded corpora of one workspace, oldest first. Thread-safe.

    `on_forget(key)` runs for each upload forgotten to stay within the quota (the workspace drops its run).
    """

    def __init__(self, folder: Path, policy: WorkspacePolicy, on_forget: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.policy = policy
        self.on_forget = on_forget
        self.refresh()

    def refresh(self) -> None:
        """Find the uploads kept in the folder (after a restart, or written by another process)."""
        self._register(self._discover())

    def _discover(self) -> list[CorpusSource]:
        if not self.folder.is_dir():
            return []
        found = []
        folders = [p for p in self.folder.iterdir() if not p.is_symlink() and p.is_dir() and _UPLOAD_FOLDER.match(p.name)]
        for folder in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name)):
            match = _UPLOAD_FOLDER.match(folder.name)
            key = upload_key(match['digest'])
            if has_beir(folder):
                found.append(CorpusSource(key, f"{match['stem']} (upload, BEIR)", str(folder), "upload"))
            elif (folder / UPLOAD_INFO).is_file():
                try:
                    info = json.loads((folder / UPLOAD_INFO).read_text(encoding="utf-8"))
                    file = folder / Path(str(info["file"])).name
                    found.append(CorpusSource(key, str(info["label"]), str(file), "upload"))
                except (OSError, ValueError, KeyError, TypeError):
                    logger.warning("skipping the upload in %s: its %s is unreadable", folder, UPLOAD_INFO)
        return found

    def add(self, path: str | Path, display_name: str | None = None) -> AddedUpload:
        """Validate an uploaded file, keep it and register it; raises DataError (file and line) and keeps nothing.

        A .zip holding corpus.jsonl (with queries.jsonl and qrels/<split>.tsv) is a BEIR dataset: extracted
        into its own folder, its judgments kept for the Evaluate tab. Any other file, or zip of files, is read
        as plain documents."""
        path = Path(path)
        name = display_name or path.name
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise DataError(f"unsupported file type; upload one of {', '.join(UPLOAD_SUFFIXES)}", path=name)
        digest = digest_of(path, name, min(MAX_UPLOAD_BYTES, self.policy.max_bytes))
        stem = re.sub(r"[^\w.\- ]+", "_", Path(name).stem)[:60].strip() or "upload"
        folder = self.folder / f"{stem}-{digest}"
        if path.suffix.lower() == ".zip" and is_beir_zip(path):
            dataset = self._extract_beir(path, name, folder)
            splits = ", ".join(sorted(dataset.qrels))
            label = f"{stem} (upload, {len(dataset.corpus)} docs" + (f", judged: {splits})" if splits else ")")
            where = dataset.path
        else:
            try:
                corpus = load_documents(path, name=stem)
            except DataError as exc:
                raise named_as_uploaded(exc, path, name) from None  # the file as the user knows it, not its temporary copy
            label = f"{stem} (upload, {len(corpus)} docs)"
            where = str(self._keep_documents(path, folder, name, label))
            dataset = Dataset(corpus=corpus, path=name)
        source = CorpusSource(upload_key(digest), label, where, "upload")
        with self._lock:
            entry = self._entries.pop(source.key, None) or CorpusEntry(source)
            entry.source = source
            self._entries[source.key] = entry  # the newest upload, last to be forgotten
            forgotten = self._over_quota(source.key)
        for old in forgotten:
            self._delete(old)
        with entry.lock:
            if entry.dataset is None:
                entry.dataset = dataset
        return AddedUpload(entry.source, tuple(old.source.label for old in forgotten))

    def _keep_documents(self, path: Path, folder: Path, name: str, label: str) -> Path:
        """Keep a documents upload as uploaded, so a restart finds it again."""
        file = folder / f"documents{path.suffix.lower()}"
        atomic_copy(path, file)
        info = {"name": name, "file": file.name, "label": label}
        atomic_write_text(folder / UPLOAD_INFO, json.dumps(info, ensure_ascii=False) + "\n")
        os.utime(folder)  # uploaded again: the newest, last to be forgotten
        return file

    def _extract_beir(self, path: Path, name: str, folder: Path) -> Dataset:
        """Extract (or reuse) and load an uploaded BEIR zip; on any problem its new folder is removed."""
        existed = (folder / "corpus.jsonl").is_file()
        layout: BeirLayout | None = None
        try:
            layout = extract_beir_zip(path, folder, label=name)
            dataset = load_beir(folder)
        except DataError as exc:
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            raise exc.naming(_as_uploaded(exc.path, folder, name, layout) if exc.path else name) from None
        if existed:
            os.utime(folder)  # uploaded again: the newest, last to be forgotten
        problems = tuple(_as_uploaded(p, folder, name, layout) for p in dataset.problems)
        corpus = Corpus(dataset.corpus.documents, Path(name).stem)
        return dataclasses.replace(dataset, corpus=corpus, problems=problems)

    def _over_quota(self, newest: str) -> list[CorpusEntry]:
        """Take out the oldest uploads beyond the quota's count and bytes (call with the lock held); never `newest`."""
        forgotten: list[CorpusEntry] = []
        folders = [f for f in map(self._folder_of, self._entries.values()) if f is not None]
        used = sum(map(folder_bytes, folders)) + folder_bytes(self.folder / RUNS_FOLDER)
        for key in list(self._entries):
            if key == newest:
                continue
            if len(self._entries) <= self.policy.max_uploads and used <= self.policy.max_bytes:
                break
            entry = self._entries.pop(key)
            folder = self._folder_of(entry)
            if folder is not None:
                used -= folder_bytes(folder)
            logger.info("forgetting the workspace's oldest upload %s (quota: %d uploads, %.0f MB)",
                        key, self.policy.max_uploads, self.policy.max_megabytes)
            forgotten.append(entry)
        return forgotten

    def _folder_of(self, entry: CorpusEntry) -> Path | None:
        """The upload's own folder under the shelf's, if it has one."""
        path = Path(entry.source.path)
        for folder in (path, path.parent):
            if folder.parent.resolve() == self.folder.resolve() and _UPLOAD_FOLDER.match(folder.name) and folder.is_dir():
                return folder
        return None

    def _delete(self, entry: CorpusEntry) -> None:
        folder = self._folder_of(entry)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if self.on_forget is not None:
            self.on_forget(entry.source.key)
