"""Workspaces and share links as plain functions: each visitor's uploads, runs and grades are theirs, within
their quota; ids and tokens that the server did not issue get nothing; idle workspaces expire with their
files; a share link opens the owner's corpus and run until it is revoked; a restart keeps it all."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reranker.cache import BoundedLRU
from reranker.errors import ConfigError, DataError
from reranker.runs import format_run
from reranker.ui.state import AppState, Scratch
from reranker.ui.workspaces import SEEN_FILE, WorkspacePolicy, is_token
from tests.support import TOPIC_QUERIES, TOPICS, write_topics, zip_folder

KEY = "bundled:knowledge"
HOSTILE = ["../../etc", "..", "local", "", "a/b", "A" * 31, "A" * 33, "%2e%2e%2f" * 4, "x" * 31 + "/", None, 42]


@dataclass(frozen=True)
class Request:
    """What the app reads of a Gradio request: the browser session, and the user when there is a login."""

    session_hash: str
    username: str | None = None


@pytest.fixture()
def app(tmp_path) -> AppState:
    write_topics(tmp_path / "corpora" / "knowledge")
    return AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], upload_dir=tmp_path / "uploads",
                    judgments_dir=tmp_path / "judgments", policy=WorkspacePolicy(max_uploads=2, max_megabytes=1))


def restarted(app: AppState) -> AppState:
    return AppState(bundled_dir=app.bundled_dir, data_dirs=[], upload_dir=app.upload_dir, judgments_dir=app.judgments_dir,
                    policy=app.policy)


def visitor(app: AppState, session: str, stored: object = None, share: object = None):
    """A browser session opening the page (with the workspace id its browser kept), then its visitor."""
    request = Request(session)
    workspace, _ = app.begin_session(request, stored, share)
    return workspace, app.visitor_for(request)


def text_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_bounded_lru_forgets_the_least_recently_used_and_says_so():
    evicted = []
    lru = BoundedLRU(2, on_evict=lambda k, v: evicted.append((k, v)))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert evicted == [("b", 2)] and len(lru) == 2 and "b" not in lru and lru.get("b") is None
    assert lru.get_or_put("d", lambda: 4) == 4 and evicted[-1] == ("a", 1)


def test_the_scratch_folder_is_bounded_and_removed_with_the_app():
    scratch = Scratch(max_folders=2)
    first, second, third = (scratch.new_folder("evaluation") for _ in range(3))
    assert not first.exists() and second.is_dir() and third.is_dir() and third.parent == scratch.root
    with pytest.raises(ValueError):
        scratch.folder("../escape")
    scratch.close()
    assert not scratch.root.exists()


def test_a_visitors_uploads_and_runs_are_invisible_to_another(app, tmp_path):
    a_id, a = visitor(app, "session-a")
    b_id, b = visitor(app, "session-b")
    assert a_id != b_id and is_token(a_id) and is_token(b_id)
    secret = a.add_upload(text_file(tmp_path, "secret.txt", "Confidential merger plans for next quarter."), "secret.txt")
    assert (secret.label, secret.key) in a.choices()
    assert all(key != secret.key for _, key in b.choices())
    assert [key for _, key in b.choices()] == [KEY]
    with pytest.raises(DataError, match="unknown corpus"):
        b.dataset(secret.key)
    with pytest.raises(DataError, match="unknown corpus"):
        b.pipeline(secret.key)
    assert Path(secret.path).is_relative_to(app.workspaces.folder(a_id))
    # Downloads: A's grades of its upload are A's files; B cannot ask for them, and B's shared downloads lack them.
    from reranker.ui.search_tab import judgment_files

    doc = a.dataset(secret.key).corpus.documents[0].id
    a.judge(secret.key, "merger plans", doc, 2, judge="Ada")
    qrels, _, count = judgment_files(a, secret.key)
    assert count == 1 and doc in Path(qrels).read_text()
    with pytest.raises(DataError, match="unknown corpus"):
        judgment_files(b, secret.key)
    assert judgment_files(b, KEY)[2] == 0
    assert not list(app.judgments_dir.glob("upload-*"))  # an upload's grades live in its workspace
    # A run uploaded by A for the shared corpus is A's before list only.
    qid, (query, _) = next(iter(TOPIC_QUERIES.items()))
    run = text_file(tmp_path, "prod.trec", format_run({qid: {d: float(len(TOPICS) - i) for i, d in enumerate(TOPICS)}}, "p"))
    a.load_run(KEY, run, "prod.trec")
    assert a.before_list(KEY, query).qid == qid
    assert b.run_for(KEY) is None and b.before_list(KEY, query).loaded is None
    assert app.run_for(KEY) is None  # nor the local workspace's


def test_quota_evicts_only_within_the_workspace_and_says_what_it_forgot(app, tmp_path):
    _, a = visitor(app, "session-a")
    _, b = visitor(app, "session-b")
    b_doc = b.add_upload(text_file(tmp_path, "b.txt", "B's only document."), "b.txt")
    added = [a.upload(text_file(tmp_path, f"a{i}.txt", f"A's document number {i}."), f"a{i}.txt") for i in range(3)]
    assert added[0].forgotten == added[1].forgotten == ()
    assert added[2].forgotten == (added[0].source.label,) and "forgot: a0 (upload, 1 docs)" in added[2].message()
    assert [k for _, k in a.choices() if k.startswith("upload:")] == [added[1].source.key, added[2].source.key]
    assert not Path(added[0].source.path).exists()
    assert [k for _, k in b.choices() if k.startswith("upload:")] == [b_doc.key]  # B keeps its upload
    # Bytes: a file over the workspace's megabytes is refused, and nothing of it is kept.
    big = text_file(tmp_path, "big.txt", "word " * 300_000)
    with pytest.raises(DataError, match="upload limit is 1 MB"):
        a.upload(big, "big.txt")
    assert len([k for _, k in a.choices() if k.startswith("upload:")]) == 2


def test_bytes_quota_forgets_the_oldest_uploads_of_the_workspace(tmp_path):
    write_topics(tmp_path / "corpora" / "knowledge")
    app = AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], upload_dir=tmp_path / "uploads",
                   policy=WorkspacePolicy(max_uploads=10, max_megabytes=0.5))
    _, a = visitor(app, "session-a")
    first = a.upload(text_file(tmp_path, "one.txt", "first " * 50_000), "one.txt")  # ~300 kB
    second = a.upload(text_file(tmp_path, "two.txt", "second " * 45_000), "two.txt")  # ~315 kB: over 0.5 MB together
    assert second.forgotten == (first.source.label,)
    assert [k for _, k in a.choices() if k.startswith("upload:")] == [second.source.key]


@pytest.mark.parametrize("stored", HOSTILE)
def test_a_guessed_tampered_or_path_like_workspace_id_gets_a_new_empty_workspace(app, tmp_path, stored):
    owner, a = visitor(app, "session-a")
    a.add_upload(text_file(tmp_path, "secret.txt", "Confidential."), "secret.txt")
    workspace, other = visitor(app, "session-x", stored=stored)
    assert workspace != owner and is_token(workspace) and [k for _, k in other.choices()] == [KEY]
    assert app.workspaces.folder(workspace).parent == app.upload_dir / "workspaces"
    if not is_token(stored):
        with pytest.raises(ConfigError):
            app.workspaces.folder(stored)
    # Even a well-formed id the server never issued is not adopted.
    guessed = "B" * 32
    assert visitor(app, "session-y", stored=guessed)[0] != guessed
    assert visitor(app, "session-z", stored=owner)[0] == owner  # the browser that kept it gets it back


@pytest.mark.parametrize("token", ["C" * 32, "../../../etc/passwd", "", "x" * 40, "share", None])
def test_a_guessed_or_tampered_share_token_opens_nothing(app, token):
    _, b = visitor(app, "session-b", share=token)
    assert [k for _, k in b.choices()] == [KEY]
    with pytest.raises(DataError, match="unknown or was revoked"):
        b.dataset(f"share:{token}")


def test_a_share_link_opens_the_owners_corpus_and_run_until_revoked(app, tmp_path):
    owner, a = visitor(app, "session-a")
    folder = write_topics(tmp_path / "beir" / "topics")
    key = a.add_upload(zip_folder(folder, tmp_path / "topics.zip", top="topics"), "topics.zip").key
    qid, (query, relevant) = next(iter(TOPIC_QUERIES.items()))
    a.load_run(key, text_file(tmp_path, "r.trec", format_run({qid: {relevant: 2.0, "tides": 1.0}}, "p")), "r.trec")
    read = a.share(key, query, "read")
    judging = a.share(key, query, "judge")
    assert is_token(read.token) and read.token != owner and [s.token for s in a.shares()] == [read.token, judging.token]

    _, b = visitor(app, "session-b", share=read.token)
    assert (f"{a.source(key).label} — shared by link, read-only", read.key) in b.choices()
    assert b.dataset(read.key).corpus.fingerprint == a.dataset(key).corpus.fingerprint
    assert b.before_list(read.key, query).qid == qid  # the owner's run comes with it
    with pytest.raises(ConfigError, match="read-only"):
        b.judge(read.key, query, relevant, 2, judge="Bea")
    with pytest.raises(ConfigError, match="cannot change the run"):
        b.drop_run(read.key)
    assert not b.revoke(read.token)  # only the owner revokes
    b.judge(judging.key, query, relevant, 1, judge="Bea")  # a judging link may grade: into the owner's judgments
    assert a.dataset(key).qrels["test"][qid][relevant] == 1
    with pytest.raises(DataError):
        b.dataset(key)  # the link opens the shared corpus, not the rest of the workspace

    assert a.revoke(read.token)
    with pytest.raises(DataError, match="revoked"):
        b.dataset(read.key)
    assert all(k != read.key for _, k in app.visitor_for(Request("session-b")).choices())


def test_a_restart_keeps_workspaces_uploads_runs_and_share_links(app, tmp_path):
    owner, a = visitor(app, "session-a")
    doc = a.add_upload(text_file(tmp_path, "notes.md", "# Notes\nKept across restarts."), "notes.md")
    share = a.share(KEY, "volcano", "read")
    again = restarted(app)
    workspace, a2 = visitor(again, "new-session", stored=owner)
    assert workspace == owner and (doc.label, doc.key) in a2.choices()
    assert "Kept across restarts" in a2.dataset(doc.key).corpus.documents[0].full_text
    assert [s.token for s in a2.shares()] == [share.token]


def test_login_keys_the_workspace_by_user_across_browsers_and_restarts(app, tmp_path):
    ada = app.begin_session(Request("laptop", "ada"), None)[0]
    assert app.begin_session(Request("phone", "ada"), "C" * 32)[0] == ada != app.begin_session(Request("x", "bob"), None)[0]
    app.visitor_for(Request("laptop", "ada")).add_upload(text_file(tmp_path, "a.txt", "Ada's file."), "a.txt")
    assert any(k.startswith("upload:") for _, k in restarted(app).visitor_for(Request("desk", "ada")).choices())
    assert not any(k.startswith("upload:") for _, k in app.visitor_for(Request("laptop2", "bob")).choices())


def test_idle_workspaces_expire_with_their_files_and_share_links(app, tmp_path):
    old, a = visitor(app, "session-a")
    a.add_upload(text_file(tmp_path, "a.txt", "Old."), "a.txt")
    share = a.share(KEY, "volcano", "read")
    fresh, b = visitor(app, "session-b")
    b.add_upload(text_file(tmp_path, "b.txt", "Fresh."), "b.txt")
    folder = app.workspaces.folder(old)
    (folder / SEEN_FILE).touch()
    past = time.time() - app.policy.idle_seconds - 60
    os.utime(folder / SEEN_FILE, (past, past))
    assert app.expire() == [old]
    assert not folder.exists() and app.workspaces.folder(fresh).is_dir()
    assert app.shares.get(share.token) is None
    assert visitor(app, "session-c", stored=old)[0] != old  # an expired id is not adopted again


def test_workspace_limits_come_from_the_environment_and_are_checked(monkeypatch):
    monkeypatch.setenv("RERANK_LENS_WORKSPACE_UPLOADS", "3")
    monkeypatch.setenv("RERANK_LENS_WORKSPACE_MB", "12.5")
    monkeypatch.setenv("RERANK_LENS_WORKSPACE_DAYS", "2")
    policy = WorkspacePolicy.from_env(idle_days=0.5)
    assert (policy.max_uploads, policy.max_megabytes, policy.idle_days) == (3, 12.5, 0.5)
    monkeypatch.setenv("RERANK_LENS_WORKSPACE_DAYS", "soon")
    with pytest.raises(ConfigError, match="RERANK_LENS_WORKSPACE_DAYS must be a number"):
        WorkspacePolicy.from_env()


def test_every_grade_the_page_saves_names_its_judge():
    from reranker.ui.judging import judge_name

    assert judge_name("  Ada   Lovelace ") == "Ada Lovelace"
    for missing in ("", "   ", None):
        with pytest.raises(ConfigError, match="Type your name"):
            judge_name(missing)


def test_grades_made_through_a_visitor_carry_the_judge_s_name(app, tmp_path):
    """Two judges grade the same pair through the app's one recording path: both grades are kept, by name."""
    _, ada = visitor(app, "session-a")
    _, bea = visitor(app, "session-b")
    query, relevant = TOPIC_QUERIES["q-volcano"]
    ada.judge(KEY, query, relevant, 2, judge="Ada")
    bea.judge(KEY, query, relevant, 0, judge="Bea")
    store = app.judgments(KEY)
    assert store.load(judge="Ada").qrels["q-volcano"] == {relevant: 2}
    assert store.load(judge="Bea").qrels["q-volcano"] == {relevant: 0}
    bea.unjudge(KEY, query, relevant, judge="Bea")  # a removal takes away that judge's grade only
    assert store.load(judge="Ada").qrels["q-volcano"] == {relevant: 2} and "q-volcano" not in store.load(judge="Bea").qrels
    # With a login, the user's name is the judge, whatever the page sent.
    user = app.visitor_for(Request("laptop", "carol"))
    user.judge(KEY, query, relevant, 1, judge="someone else")
    assert store.load(judge="carol").qrels["q-volcano"] == {relevant: 1}
