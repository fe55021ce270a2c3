"""Workspaces and share links: who owns which uploads on a server many people visit.

A workspace is one visitor's corner of the server: its uploads, runs and the judgments of its uploads live
in `<upload_dir>/workspaces/<id>/`, and nobody else sees them. Its id is an opaque random token (192
bits, `secrets.token_urlsafe`) that the browser keeps (Gradio's `BrowserState`), so a reload or a server
restart finds the same workspace; with a login, the id is derived from the user name instead (an HMAC
under the server's secret), so the workspace follows the user. Ids and tokens are checked against one
strict pattern before they name a folder, and the server only adopts ids it issued: a guessed, tampered
or path-like id gets a fresh, empty workspace, never someone else's files.

A share link is a second token (`<upload_dir>/shares/<token>.json`), separate from the workspace id: it
opens the owner's corpus, run and query, read-only or with judging, until the owner revokes it.

Idle workspaces expire (`WorkspacePolicy.idle_days`): their folders and share links are removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from reranker.cache import BoundedLRU, atomic_write_text
from reranker.errors import ConfigError

logger = logging.getLogger(__name__)

TOKEN_BYTES = 24  # 192 random bits, 32 URL-safe characters
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
WORKSPACES_FOLDER = "workspaces"
SHARES_FOLDER = "shares"
SECRET_FILE = ".secret"
SEEN_FILE = ".seen"  # its mtime: when the workspace was last used
SEEN_EVERY_S = 60.0  # a workspace's last use is written at most once a minute
SWEEP_EVERY_S = 600.0  # idle workspaces are looked for at most every ten minutes
MAX_ISSUED = 100_000  # ids issued (and last uses) remembered in memory; a folder on disk is known regardless

ShareMode = Literal["read", "judge"]
SHARE_MODES: tuple[ShareMode, ...] = ("read", "judge")


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"${name} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"${name} must be above 0, not {value!r}")
    return number


@dataclass(frozen=True)
class WorkspacePolicy:
    """What one workspace may keep, and for how long it may sit idle.

    Attributes:
        max_uploads: Uploaded corpora kept per workspace; a new one beyond it forgets the workspace's oldest.
        max_megabytes: Megabytes of uploads (extracted corpora, documents, runs) kept per workspace; the oldest
            uploads are forgotten to make room.
        idle_days: Days without a visit after which a workspace and its files are removed.
    """

    max_uploads: int = 10
    max_megabytes: float = 200.0
    idle_days: float = 7.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 2**20)

    @property
    def idle_seconds(self) -> float:
        return self.idle_days * 86400.0

    def validate(self) -> WorkspacePolicy:
        if self.max_uploads < 1 or self.max_megabytes <= 0 or self.idle_days <= 0:
            raise ConfigError(f"workspace limits must be above 0: {self}")
        return self

    @classmethod
    def from_env(cls, **overrides: float | None) -> WorkspacePolicy:
        """$RERANK_LENS_WORKSPACE_UPLOADS, $RERANK_LENS_WORKSPACE_MB and $RERANK_LENS_WORKSPACE_DAYS, then
        the `overrides` that are not None (the app's options)."""
        defaults = cls()
        values = {
            "max_uploads": int(_env_number("RERANK_LENS_WORKSPACE_UPLOADS", defaults.max_uploads)),
            "max_megabytes": _env_number("RERANK_LENS_WORKSPACE_MB", defaults.max_megabytes),
            "idle_days": _env_number("RERANK_LENS_WORKSPACE_DAYS", defaults.idle_days),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validate()  # type: ignore[arg-type]


def new_token() -> str:
    """A fresh unguessable token (192 random bits) for a workspace id or a share link."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: object) -> bool:
    """Whether `value` has the exact shape of a token this server issues (so it can name a folder or file)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def server_secret(root: Path) -> bytes:
    """The server's secret (created once, readable by its owner only): it keys user workspaces and the
    browser's encrypted copy of the workspace id, so both survive a restart."""
    path = root / SECRET_FILE
    root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32))
    for _ in range(20):  # another process may be writing it this instant
        text = path.read_text(encoding="ascii").strip()
        if text:
            break
        time.sleep(0.05)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{path} is not a secret this app wrote; delete it and a new one is made") from None


class WorkspaceStore:
    """The workspaces of one server: their ids, folders, last use and expiry. Thread-safe."""

    def __init__(self, root: Path, policy: WorkspacePolicy | None = None) -> None:
        self.root = Path(root)
        self.folder_root = self.root / WORKSPACES_FOLDER
        self.policy = policy or WorkspacePolicy()
        self._issued: BoundedLRU[str, bool] = BoundedLRU(MAX_ISSUED)  # issued by this process, folder not written yet
        self._seen: BoundedLRU[str, float] = BoundedLRU(MAX_ISSUED)
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self._secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = server_secret(self.root)
        return self._secret

    def folder(self, workspace: str) -> Path:
        """The workspace's folder; ConfigError for anything but a token's shape (nothing path-like gets through)."""
        if not is_token(workspace):
            raise ConfigError("not a workspace id")
        return self.folder_root / workspace

    def issue(self) -> str:
        """A new workspace id; its folder is made on its first upload."""
        workspace = new_token()
        self._issued.put(workspace, True)
        return workspace

    def for_user(self, username: str) -> str:
        """The workspace of a logged-in user: the same id at every login and after a restart."""
        digest = hmac.new(self.secret, b"user:" + username.encode("utf-8"), hashlib.sha256).digest()
        workspace = base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).decode("ascii")
        self._issued.put(workspace, True)
        return workspace

    def known(self, workspace: object) -> bool:
        """Whether `workspace` is an id this server issued and has not expired (a folder on disk, or issued now)."""
        if not is_token(workspace):
            return False
        return workspace in self._issued or self.folder(workspace).is_dir()  # type: ignore[arg-type]

    def adopt(self, stored: object) -> str:
        """The workspace a browser's stored id names when this server knows it, else a new one."""
        return stored if self.known(stored) else self.issue()  # type: ignore[return-value]

    def touch(self, workspace: str) -> None:
        """Note a use of the workspace (on disk at most once a minute), so it does not expire while used."""
        now = time.time()
        if now - (self._seen.get(workspace) or 0.0) < SEEN_EVERY_S:
            return
        self._seen.put(workspace, now)
        folder = self.folder(workspace)
        if folder.is_dir():
            (folder / SEEN_FILE).touch()

    def last_seen(self, workspace: str) -> float | None:
        folder = self.folder(workspace)
        for path in (folder / SEEN_FILE, folder):
            try:
                return path.stat().st_mtime
            except OSError:
                continue
        return None

    def ids(self) -> Iterator[str]:
        """The workspaces on disk."""
        if self.folder_root.is_dir():
            for path in self.folder_root.iterdir():
                if is_token(path.name) and path.is_dir() and not path.is_symlink():
                    yield path.name

    def expired(self, now: float | None = None) -> list[str]:
        """The workspaces idle for longer than the policy allows."""
        now = time.time() if now is None else now
        return [w for w in self.ids() if (seen := self.last_seen(w)) is not None and now - seen > self.policy.idle_seconds]

    def remove(self, workspace: str) -> None:
        """Delete the workspace's folder and forget it."""
        shutil.rmtree(self.folder(workspace), ignore_errors=True)
        self._issued.pop(workspace)
        self._seen.pop(workspace)

    def sweep_due(self) -> bool:
        """Whether it is time to look for idle workspaces again (and, if so, note that it is being done)."""
        now = time.monotonic()
        with self._lock:
            if self._last_sweep and now - self._last_sweep < SWEEP_EVERY_S:
                return False
            self._last_sweep = now
            return True


@dataclass(frozen=True)
class Share:
    """A share link: the owner's workspace, the corpus (its key in that workspace), the query, and whether
    whoever holds the token may grade."""

    token: str
    workspace: str
    corpus_key: str
    query: str
    mode: ShareMode
    label: str  # the corpus as the owner's picker named it
    created: float

    @property
    def key(self) -> str:
        """The corpus key that opens it: `share:<token>`."""
        return f"share:{self.token}"

    @property
    def can_judge(self) -> bool:
        return self.mode == "judge"

    def describe(self) -> str:
        query = self.query if len(self.query) <= 40 else self.query[:39] + "…"
        mode = "with judging" if self.can_judge else "read-only"
        return f"{self.label} · “{query}” · {mode}"


class ShareStore:
    """Share links on disk, one JSON file per token; revoking deletes it."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / SHARES_FOLDER
        self._lock = threading.Lock()

    def _path(self, token: str) -> Path:
        if not is_token(token):
            raise ConfigError("not a share token")
        return self.folder / f"{token}.json"

    def create(self, workspace: str, corpus_key: str, query: str, mode: ShareMode, label: str) -> Share:
        if mode not in SHARE_MODES:
            raise ConfigError(f"share mode must be one of {', '.join(SHARE_MODES)}, not {mode!r}")
        if not is_token(workspace):
            raise ConfigError("not a workspace id")
        share = Share(new_token(), workspace, corpus_key, " ".join((query or "").split()), mode, label, time.time())
        with self._lock:
            atomic_write_text(self._path(share.token), json.dumps(asdict(share), ensure_ascii=False) + "\n")
        logger.info("workspace %s… shared %s (%s)", workspace[:6], corpus_key, mode)
        return share

    def get(self, token: object) -> Share | None:
        """The share a token names; None for anything unknown, revoked, malformed or not a token's shape."""
        if not is_token(token):
            return None
        try:
            data = json.loads(self._path(token).read_text(encoding="utf-8"))  # type: ignore[arg-type]
            share = Share(**data)
        except (OSError, ValueError, TypeError):
            return None
        if share.token != token or not is_token(share.workspace) or share.mode not in SHARE_MODES:
            return None
        return share

    def of(self, workspace: str) -> list[Share]:
        """The workspace's share links, oldest first."""
        if not self.folder.is_dir():
            return []
        shares = [self.get(p.stem) for p in self.folder.glob("*.json")]
        return sorted((s for s in shares if s is not None and s.workspace == workspace), key=lambda s: s.created)

    def revoke(self, workspace: str, token: str) -> bool:
        """Delete the workspace's share `token`; False when it is not one of this workspace's."""
        share = self.get(token)
        if share is None or share.workspace != workspace:
            return False
        with self._lock:
            self._path(token).unlink(missing_ok=True)
        return True

    def revoke_all(self, workspace: str) -> int:
        shares = self.of(workspace)
        for share in shares:
            self.revoke(workspace, share.token)
        return len(shares)
