"""Uploaded BEIR zips, extracted safely: corpus.jsonl, queries.jsonl and qrels/<split>.tsv, at the top of
the zip or in one folder at its top (as BEIR's own downloads are), copied into a folder of their own.

An upload is untrusted. Before anything is written the whole archive is checked, and refused with a
message naming the problem when a member's path is absolute or climbs out with `..` (or uses a
backslash or a drive letter), a member is a symbolic link or a device, there are more than
`MAX_MEMBERS` members, or the files to extract declare more than `MAX_TOTAL_BYTES` (one more than
`MAX_FILE_BYTES`). Only the BEIR files are extracted, under names this module writes itself
(`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` with a checked split name), and every byte is
counted while it is written, so a member that inflates past what it declared stops the extraction.
Everything goes into a staging folder renamed into place at the end: a refused or broken zip leaves
nothing behind, and an archive extracted before is reused as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reranker.corpus import MAX_FILE_BYTES, MAX_ZIP_MEMBERS, MAX_ZIP_TOTAL_BYTES
from reranker.errors import DataError

MAX_MEMBERS = MAX_ZIP_MEMBERS
MAX_TOTAL_BYTES = MAX_ZIP_TOTAL_BYTES
MAX_SPLITS = 20
CORPUS, QUERIES, QRELS = "corpus.jsonl", "queries.jsonl", "qrels"
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BeirLayout:
    """Where a BEIR dataset sits in a zip: its folder ("" for the top) and the members to extract."""

    root: str
    corpus: zipfile.ZipInfo
    queries: zipfile.ZipInfo | None
    qrels: dict[str, zipfile.ZipInfo]  # split -> member

    def members(self) -> dict[str, zipfile.ZipInfo]:
        """Relative path to write -> member."""
        out = {CORPUS: self.corpus}
        if self.queries is not None:
            out[QUERIES] = self.queries
        out.update({f"{QRELS}/{split}.tsv": member for split, member in self.qrels.items()})
        return out


def is_beir_zip(path: str | Path) -> bool:
    """Whether a zip holds a BEIR dataset's files (corpus.jsonl, queries.jsonl or qrels/*.tsv) rather than
    plain documents; False for a file that is not a zip (the document reader reports that)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(_is_beir_name(PurePosixPath(m.filename)) for m in _files(archive))
    except (zipfile.BadZipFile, OSError):
        return False


def extract_beir_zip(path: str | Path, target: str | Path, *, label: str | None = None) -> BeirLayout | None:
    """Extract the BEIR files of the zip at `path` into the folder `target` (created; it must not be a
    link). Returns where the dataset sat in the zip, or None when `target` already holds a finished
    extraction (archives are named by their content, so it is the same). Raises DataError naming `label`
    (default: the zip's file name) for an unsafe, oversized or incomplete archive; nothing is left behind."""
    path, target = Path(path), Path(target)
    label = label or path.name
    if (target / CORPUS).is_file() and not target.is_symlink():
        return None
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive ({exc})", path=label) from None
    with archive:
        layout = check_archive(archive, label)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        try:
            for relative, member in layout.members().items():
                _copy_member(archive, member, staging, relative, label)
            if target.is_symlink() or (target.exists() and not (target / CORPUS).is_file()):
                _remove(target)  # a link planted there, or a broken earlier copy
            try:
                os.replace(staging, target)
            except OSError:  # another request extracted the same archive first
                if not (target / CORPUS).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return layout


def check_archive(archive: zipfile.ZipFile, label: str) -> BeirLayout:
    """Refuse an unsafe or incomplete archive (see the module's docstring); the BEIR layout otherwise."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DataError(f"too many files in the archive ({len(infos)} > {MAX_MEMBERS})", path=label)
    for info in infos:
        problem = _unsafe(info)
        if problem:
            raise DataError(f"refused: member {info.filename!r} {problem}; a dataset zip holds plain files only", path=label)
    layout = _layout(archive, label)
    members = layout.members()
    for member in members.values():
        if member.file_size > MAX_FILE_BYTES:
            raise DataError(
                f"{member.filename} expands to {member.file_size // 2**20} MB; the limit is {MAX_FILE_BYTES // 2**20} MB "
                "per file",
                path=label,
            )
    total = sum(m.file_size for m in members.values())
    if total > MAX_TOTAL_BYTES:
        raise DataError(f"the dataset expands to {total // 2**20} MB; the limit is {MAX_TOTAL_BYTES // 2**20} MB", path=label)
    return layout


def _files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's files, without folders and the clutter archivers add (__MACOSX/, .DS_Store, ._x)."""
    names = [(m, PurePosixPath(m.filename)) for m in archive.infolist() if not m.is_dir()]
    return [m for m, name in names if "__MACOSX" not in name.parts and not name.name.startswith(".")]


def _is_beir_name(name: PurePosixPath) -> bool:
    return name.name in (CORPUS, QUERIES) or (name.suffix == ".tsv" and QRELS in name.parts[:-1])


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why a member could write outside its folder (or be something other than a file), or None."""
    name = info.filename
    mode = info.external_attr >> 16
    if "\x00" in name:
        return "has a NUL byte in its name"
    if "\\" in name:
        return "has a backslash in its path"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the archive's folder with '..'"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file"
    return None


def _layout(archive: zipfile.ZipFile, label: str) -> BeirLayout:
    files = _files(archive)
    corpora = [m for m in files if PurePosixPath(m.filename).name == CORPUS]
    if not corpora:
        found = ", ".join(sorted(m.filename for m in files if _is_beir_name(PurePosixPath(m.filename)))[:3])
        raise DataError(
            "no corpus.jsonl in the archive" + (f" (it holds {found})" if found else "") + "; a BEIR zip holds "
            "corpus.jsonl, queries.jsonl and qrels/<split>.tsv, at its top or in one folder",
            path=label,
        )
    if len(corpora) > 1:
        names = ", ".join(sorted(m.filename for m in corpora)[:3])
        raise DataError(f"several corpus.jsonl files ({names}); upload one dataset per zip", path=label)
    corpus = corpora[0]
    root = PurePosixPath(corpus.filename).parent
    if len(root.parts) > 1:
        raise DataError(
            f"corpus.jsonl sits in {root}/; put the dataset at the top of the zip or in one folder at its top",
            path=label,
        )
    prefix = "" if str(root) == "." else f"{root}/"
    by_name = {m.filename: m for m in files}
    queries = by_name.get(f"{prefix}{QUERIES}")
    qrels: dict[str, zipfile.ZipInfo] = {}
    for member in files:
        name = PurePosixPath(member.filename)
        if str(name.parent) != f"{prefix}{QRELS}" or name.suffix != ".tsv":
            continue
        if not _SPLIT.match(name.stem):
            raise DataError(
                f"{member.filename}: name a split with letters, digits, '-', '_' or '.' (e.g. qrels/test.tsv)", path=label
            )
        qrels[name.stem] = member
    if len(qrels) > MAX_SPLITS:
        raise DataError(f"{len(qrels)} qrels files; at most {MAX_SPLITS} splits", path=label)
    if qrels and queries is None:
        raise DataError(
            f"{prefix}qrels/ has judgments but there is no {prefix}queries.jsonl: the Evaluate tab needs the query "
            "texts; add queries.jsonl (lines of {\"_id\": ..., \"text\": ...}) next to corpus.jsonl",
            path=label,
        )
    return BeirLayout(prefix.rstrip("/"), corpus, queries, dict(sorted(qrels.items())))


def _copy_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, folder: Path, relative: str, label: str) -> None:
    """Write one member to `folder/relative`, never past what it declared (or the per-file cap)."""
    out = folder / relative
    if os.path.commonpath([folder.resolve(), out.parent.resolve()]) != str(folder.resolve()):
        raise DataError(f"refused: {member.filename} would be written outside the upload's folder", path=label)
    out.parent.mkdir(parents=True, exist_ok=True)
    limit = min(member.file_size, MAX_FILE_BYTES)
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with archive.open(member) as source, os.fdopen(os.open(out, flags, 0o644), "wb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise DataError(f"{member.filename} inflates past the {limit:,} bytes it declares", path=label)
                sink.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(f"{member.filename} is damaged ({exc})", path=label) from None
    except NotImplementedError as exc:
        raise DataError(
            f"{member.filename} uses a compression this server cannot read ({exc}); zip it with deflate", path=label
        ) from None
    except RuntimeError as exc:  # encrypted members
        raise DataError(f"{member.filename} cannot be read ({exc}); upload a zip without a password", path=label) from None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
