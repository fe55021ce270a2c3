"""Uploaded BEIR zips: extracted into their own folder, refused with a clear message when unsafe
(traversal, absolute paths, links, zip bombs) or incomplete, and never leaving anything behind."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from reranker import archives
from reranker.archives import extract_beir_zip, is_beir_zip
from reranker.corpus import load_beir
from reranker.errors import DataError
from tests.support import write_topics, zip_folder


def beir_zip(tmp_path: Path, *, top: str = "topics", extra: dict[str, bytes] | None = None, skip: tuple[str, ...] = ()) -> Path:
    """The eight-topic BEIR folder zipped under `top/` ("" for the zip's top), plus `extra` members."""
    return zip_folder(write_topics(tmp_path / "src"), tmp_path / "topics.zip", top=top, extra=extra, skip=skip)


def leftovers(folder: Path) -> list[str]:
    """What a refused extraction left in the upload folder (nothing, or not even the folder)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def with_link(archive: Path, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr(info, target)


@pytest.mark.parametrize("top", ["topics", ""])
def test_a_beir_zip_lands_in_its_own_folder_and_loads_with_its_splits(tmp_path, top):
    archive = beir_zip(tmp_path, top=top, extra={"__MACOSX/._corpus.jsonl": b"junk", f"{top}/README.txt".lstrip("/"): b"hi"})
    assert is_beir_zip(archive)
    target = tmp_path / "uploads" / "topics-abc"
    layout = extract_beir_zip(archive, target)
    assert isinstance(layout, archives.BeirLayout) and layout.root == top and layout.corpus.filename.endswith("corpus.jsonl")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "corpus.jsonl", "qrels", "qrels/test.tsv", "queries.jsonl"
    ]  # only the dataset's files: nothing else of the zip is written
    dataset = load_beir(target)
    assert len(dataset.corpus) == 8 and list(dataset.qrels) == ["test"] and len(dataset.queries) == 8
    assert [p.name for p in target.parent.iterdir()] == ["topics-abc"]  # no staging folder left
    assert extract_beir_zip(archive, target) is None  # extracted before: reused as it is


def test_a_zip_of_plain_documents_is_not_a_beir_zip(tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.md", "# A\nText.")
    assert not is_beir_zip(archive)
    (tmp_path / "no.zip").write_text("not a zip")
    assert not is_beir_zip(tmp_path / "no.zip")
    with pytest.raises(DataError, match=r"no\.zip: not a valid zip archive"):
        extract_beir_zip(tmp_path / "no.zip", tmp_path / "out")


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../../evil.txt", "climbs out of the archive's folder with '..'"),
        ("topics/qrels/../../../evil.tsv", "climbs out"),
        ("/etc/cron.d/evil", "has an absolute path"),
        ("C:/Windows/evil.txt", "has an absolute path"),
        ("topics\\..\\..\\evil.txt", "has a backslash in its path"),
    ],
)
def test_traversal_and_absolute_paths_refuse_the_whole_archive(tmp_path, member, problem):
    archive = beir_zip(tmp_path, extra={member: b"owned"})
    target = tmp_path / "uploads" / "x"
    with pytest.raises(DataError) as info:
        extract_beir_zip(archive, target, label="data.zip")
    message = str(info.value)
    assert message.startswith("data.zip: refused: member") and problem in message and repr(member) in message
    assert not target.exists() and not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path / "uploads") == []


def test_symbolic_links_are_refused(tmp_path):
    archive = beir_zip(tmp_path)
    with_link(archive, "topics/qrels/dev.tsv", "/etc/passwd")
    with pytest.raises(DataError, match=r"'topics/qrels/dev\.tsv' is a symbolic link"):
        extract_beir_zip(archive, tmp_path / "uploads" / "x", label="data.zip")
    assert not (tmp_path / "uploads" / "x").exists()


def test_a_link_planted_at_the_target_is_replaced_not_followed(tmp_path):
    archive = beir_zip(tmp_path)
    elsewhere = write_topics(tmp_path / "elsewhere")
    target = tmp_path / "uploads" / "x"
    target.parent.mkdir()
    target.symlink_to(elsewhere, target_is_directory=True)
    assert isinstance(extract_beir_zip(archive, target), archives.BeirLayout)  # extracted, not taken as already there
    assert not target.is_symlink() and (target / "corpus.jsonl").is_file()
    assert (elsewhere / "corpus.jsonl").is_file()  # untouched


def test_size_and_count_caps_stop_zip_bombs_before_anything_is_written(tmp_path, monkeypatch):
    archive = beir_zip(tmp_path)
    monkeypatch.setattr(archives, "MAX_FILE_BYTES", 100)
    with pytest.raises(DataError, match=r"topics/corpus.jsonl expands to 0 MB; the limit is 0 MB per file"):
        extract_beir_zip(archive, tmp_path / "uploads" / "a", label="data.zip")
    monkeypatch.setattr(archives, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DataError, match="the dataset expands to 0 MB; the limit is 0 MB"):
        extract_beir_zip(archive, tmp_path / "uploads" / "b", label="data.zip")
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 10**9)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 2)
    with pytest.raises(DataError, match=r"too many files in the archive \(3 > 2\)"):
        extract_beir_zip(archive, tmp_path / "uploads" / "c", label="data.zip")
    assert leftovers(tmp_path / "uploads") == []


def test_a_member_that_inflates_past_what_it_declares_stops_the_extraction(tmp_path):
    """A forged central directory declares 10 bytes for a member holding far more: nothing past them is kept."""
    archive = beir_zip(tmp_path)
    data = bytearray(archive.read_bytes())
    name = b"topics/queries.jsonl"
    at = data.index(b"PK\x01\x02")
    while not data[at + 46 : at + 46 + len(name)] == name:  # the member's central directory entry
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24 : at + 28] = (10).to_bytes(4, "little")  # its uncompressed size
    archive.write_bytes(bytes(data))
    target = tmp_path / "uploads" / "x"
    with pytest.raises(DataError) as info:
        extract_beir_zip(archive, target, label="data.zip")
    assert str(info.value).startswith("data.zip: topics/queries.jsonl ")
    assert "inflates past" in str(info.value) or "is damaged" in str(info.value)
    assert leftovers(target.parent) == []


@pytest.mark.parametrize(
    ("skip", "extra", "message"),
    [
        (("corpus.jsonl",), {}, "no corpus.jsonl in the archive (it holds topics/qrels/test.tsv, topics/queries.jsonl)"),
        (("queries.jsonl",), {}, "topics/qrels/ has judgments but there is no topics/queries.jsonl"),
        ((), {"other/corpus.jsonl": b"{}"}, "several corpus.jsonl files (other/corpus.jsonl, topics/corpus.jsonl)"),
        ((), {"topics/qrels/my split.tsv": b""}, "topics/qrels/my split.tsv: name a split with letters, digits"),
    ],
)
def test_missing_or_ambiguous_files_say_what_a_beir_zip_holds(tmp_path, skip, extra, message):
    archive = beir_zip(tmp_path, skip=skip, extra=extra)
    with pytest.raises(DataError) as info:
        extract_beir_zip(archive, tmp_path / "uploads" / "x", label="data.zip")
    assert str(info.value).startswith("data.zip: ") and message in str(info.value)
    assert not (tmp_path / "uploads" / "x").exists()


def test_a_dataset_nested_two_folders_deep_is_refused(tmp_path):
    archive = beir_zip(tmp_path, top="a/b")
    with pytest.raises(DataError, match=r"corpus\.jsonl sits in a/b/; put the dataset at the top of the zip or in one folder"):
        extract_beir_zip(archive, tmp_path / "uploads" / "x", label="data.zip")
