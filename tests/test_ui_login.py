"""Optional login: the auth file is read with file-and-line errors, passwords are checked in constant time,
and with a login the workspace follows the user name, not the browser session."""

from __future__ import annotations

import hashlib

import pytest
from gradio_client import Client, handle_file

from reranker.errors import ConfigError
from reranker.ui import AppState, build_demo, launch_options
from reranker.ui.login import auth_from, authenticator, read_users
from tests.support import free_port, write_topics


def test_the_auth_file_takes_plain_and_hashed_passwords(tmp_path):
    path = tmp_path / "users"
    path.write_text(f"# team\nada:lovelace\n\nbob:sha256:{hashlib.sha256(b'builder').hexdigest()}\n")
    check = authenticator(read_users(path))
    assert check("ada", "lovelace") and check("bob", "builder")
    assert not check("ada", "builder") and not check("eve", "lovelace") and not check("ada", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ada\n", "line 1: expected name:password"),
        ("ada:x\nada:y\n", "line 2: user 'ada' appears twice"),
        ("bob:sha256:abc\n", "line 1: sha256: must be followed by 64 hex digits"),
        ("# nobody\n", "no users in the auth file"),
    ],
)
def test_a_bad_auth_file_is_refused_by_file_and_line(tmp_path, text, message):
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_users(path)


def test_no_file_no_login_and_the_environment_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("RERANK_LENS_AUTH", raising=False)
    assert auth_from(None) is None
    path = tmp_path / "users"
    path.write_text("ada:lovelace\n")
    monkeypatch.setenv("RERANK_LENS_AUTH", str(path))
    assert auth_from(None)("ada", "lovelace")


def test_with_a_login_the_workspace_follows_the_user(tmp_path):
    write_topics(tmp_path / "corpora" / "knowledge")
    users = tmp_path / "users"
    users.write_text("ada:lovelace\nbob:builder\n")
    state = AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], upload_dir=tmp_path / "uploads",
                     judgments_dir=tmp_path / "judgments")
    demo = build_demo(state)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, auth=auth_from(users),
                            **launch_options())
    try:
        note = tmp_path / "note.md"
        note.write_text("# Ada's note\nOnly Ada sees this.")
        key = Client(url, auth=("ada", "lovelace"), verbose=False).predict(handle_file(str(note)), "bundled:knowledge",
                                                                           api_name="/upload")["value"]
        other = tmp_path / "other.md"
        other.write_text("# Another\nA second file.")
        again = Client(url, auth=("ada", "lovelace"), verbose=False)  # another session of the same user
        assert key in {v for _, v in again.predict(handle_file(str(other)), "bundled:knowledge", api_name="/upload")["choices"]}
        bob = Client(url, auth=("bob", "builder"), verbose=False)
        assert key not in {v for _, v in bob.predict(handle_file(str(other)), "bundled:knowledge", api_name="/upload")["choices"]}
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's login failure is a plain error
            Client(url, auth=("ada", "wrong"), verbose=False)
    finally:
        demo.close()
