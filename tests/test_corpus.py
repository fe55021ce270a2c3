from __future__ import annotations

import json
import zipfile

import pytest

from reranker.corpus import build_corpus, load_dataset, load_documents
from reranker.errors import DataError
from reranker.types import Document


def write_beir(folder, docs, queries=None, qrels=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    if queries is not None:
        (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    if qrels is not None:
        (folder / "qrels").mkdir(exist_ok=True)
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return folder


def test_beir_folder_loads_corpus_queries_and_qrels(tmp_path):
    folder = write_beir(
        tmp_path / "ds",
        [{"_id": "d1", "title": "T1", "text": "alpha"}, {"_id": "d2", "title": "", "text": "beta"}],
        [{"_id": "q1", "text": "alpha?"}],
        ["q1\td1\t2", "q1\td2\t0"],
    )
    ds = load_dataset(folder)
    assert [d.id for d in ds.corpus.documents] == ["d1", "d2"]
    assert ds.corpus["d1"].full_text == "T1\nalpha"
    assert ds.queries == {"q1": "alpha?"}
    assert ds.split_qrels("test") == {"q1": {"d1": 2, "d2": 0}}
    assert ds.split_queries("test") == {"q1": "alpha?"}


def test_qrels_with_unknown_ids_are_counted_not_fatal(tmp_path):
    folder = write_beir(
        tmp_path / "ds",
        [{"_id": "d1", "text": "alpha"}],
        [{"_id": "q1", "text": "alpha?"}],
        ["q1\td1\t1", "q1\tmissing\t1", "q9\td1\t1"],
    )
    ds = load_dataset(folder)
    assert ds.split_qrels("test") == {"q1": {"d1": 1}}
    assert "1 judgments for unknown queries" in ds.problems[0] and "1 for unknown documents" in ds.problems[0]


def test_missing_split_names_the_available_ones(tmp_path):
    ds = load_dataset(write_beir(tmp_path / "ds", [{"_id": "d1", "text": "a"}], [], ["q\td1\t1"]))
    with pytest.raises(DataError, match=r"split 'train'.*available: test"):
        ds.split_qrels("train")


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', "duplicate document id 'a'", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "  "}\n', "empty text", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', "broken JSON", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "caf\xe9"}\n', "not UTF-8", 2),
    ],
)
def test_bad_corpus_lines_name_file_and_line(tmp_path, content, message, line):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "corpus.jsonl").write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(folder)
    assert info.value.line == line
    assert str(folder / "corpus.jsonl") in str(info.value)


def test_plain_files_csv_txt_md_and_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text("id,title,text\nc1,Cee,first row\nc2,,second row\n")
    (tmp_path / "notes.md").write_text("# Heading\nBody of the note.\n")
    (tmp_path / "plain.txt").write_text("Just one sentence of text.")
    (tmp_path / "docs.jsonl").write_text('{"text": "no id here"}\n')
    corpus = load_documents(tmp_path)
    by_id = {d.id: d for d in corpus.documents}
    assert by_id["c1"] == Document("c1", "first row", "Cee")
    assert by_id["notes"].title == "Heading" and by_id["notes"].text == "Body of the note."
    assert by_id["plain"].text == "Just one sentence of text."
    assert by_id["docs-1"].text == "no id here"


def test_csv_without_text_column_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("id,body\n1,x\n")
    with pytest.raises(DataError, match='needs a "text" column'):
        load_documents(tmp_path / "a.csv")


def test_zip_is_read_in_memory_and_ignores_path_tricks(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.txt", "Escaping text should still just be a document.")
        zf.writestr("dir/good.md", "# Good\nA good document.")
        zf.writestr("binary.bin", b"\x00\x01")
    corpus = load_documents(archive)
    assert sorted(d.id for d in corpus.documents) == ["../../evil", "dir/good"]
    assert not (tmp_path.parent.parent / "evil.txt").exists()


def test_zip_error_names_member_and_line(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("docs.jsonl", '{"_id": "a", "text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match=r"upload.zip:docs.jsonl, line 2: broken JSON"):
        load_documents(archive)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        load_documents(bad)


def test_build_corpus_refuses_empty_and_duplicates():
    with pytest.raises(DataError, match="empty"):
        build_corpus([])
    with pytest.raises(DataError, match="duplicate"):
        build_corpus([Document("a", "x"), Document("a", "y")])


def test_fingerprint_follows_content():
    a = build_corpus([Document("a", "x")])
    assert a.fingerprint == build_corpus([Document("a", "x")]).fingerprint
    assert a.fingerprint != build_corpus([Document("a", "y")]).fingerprint
