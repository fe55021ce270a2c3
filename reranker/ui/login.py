"""Optional login for the app: a file of users that Gradio's own login page checks (`launch(auth=...)`).

One user per line, `name:password` or `name:sha256:<hex digest of the password>`; blank lines and lines
starting with `#` are skipped. With a login, each user's workspace follows the user (the same uploads
from any browser), and grades are saved under the user's name. `rerank-lens app --auth FILE`, or
$RERANK_LENS_AUTH, names the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path

from reranker.errors import ConfigError

AUTH_ENV = "RERANK_LENS_AUTH"


def read_users(path: str | Path) -> dict[str, str]:
    """{name: sha256 hex of the password} from an auth file; ConfigError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the auth file ({exc})") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        name = name.strip()
        if not sep or not name or not secret:
            raise ConfigError(f"{path}, line {number}: expected name:password or name:sha256:<hex>")
        if name in users:
            raise ConfigError(f"{path}, line {number}: user {name!r} appears twice")
        if secret.startswith("sha256:"):
            digest = secret[len("sha256:"):].strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{path}, line {number}: sha256: must be followed by 64 hex digits")
        else:
            digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        users[name] = digest
    if not users:
        raise ConfigError(f"{path}: no users in the auth file (one name:password per line)")
    return users


def authenticator(users: dict[str, str]) -> Callable[[str, str], bool]:
    """Gradio's `auth` callable: whether a name and password match a user of the file."""

    def check(name: str, password: str) -> bool:
        expected = users.get(name)
        given = hashlib.sha256((password or "").encode("utf-8")).hexdigest()
        return expected is not None and hmac.compare_digest(expected, given)

    return check


def auth_from(path: str | Path | None) -> Callable[[str, str], bool] | None:
    """The login for `path`, else for $RERANK_LENS_AUTH; None when neither names a file (no login)."""
    path = path or os.environ.get(AUTH_ENV) or None
    return authenticator(read_users(path)) if path else None
