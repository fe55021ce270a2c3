"""The grade log of one corpus: an SQLite database (standard library, WAL mode) with one row per grade event.

A row says who (the judge's name) gave which grade to which (query, document) and when (UTC, ISO 8601);
a removal is a row too, with no grade. Nothing is ever updated or deleted, so the history stays. A
judge's current grade of a pair is their latest row for it, "latest" meaning the last one written (the
row id): timestamps are for people, and a migrated file's rows carry its older modification time.

Each operation opens its own connection and closes it (sqlite3 connections must not cross threads, and
a forked process must not inherit one). Writes run in `BEGIN IMMEDIATE` transactions, so a writer reads
the state it changes under the write lock; the busy timeout makes concurrent writers (threads, processes,
a second server) wait for each other instead of failing. In WAL mode readers never wait for a writer and
see a consistent snapshot: each read below is one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DB_FILE = "judgments.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0  # a writer waits this long for another's transaction (they take milliseconds)

SCHEMA = """
CREATE TABLE IF NOT EXISTS grade_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order events were written in: "latest" means the highest
    corpus TEXT NOT NULL,                  -- the corpus's judgments folder name (reranker.judgments.overlay_name)
    query_id TEXT NOT NULL,
    query_text TEXT,                       -- for queries the corpus does not ship, else NULL (and on removals)
    doc_id TEXT NOT NULL,
    grade INTEGER,                         -- NULL: the judge removed their grade of the pair
    judge TEXT NOT NULL,
    at TEXT NOT NULL,                      -- UTC, ISO 8601 (YYYY-MM-DDTHH:MM:SS.ffffffZ), sorts as text
    origin TEXT NOT NULL                   -- app, import FILE, migrated FILE
);
CREATE INDEX IF NOT EXISTS grade_events_by_pair ON grade_events (judge, query_id, doc_id, id);
CREATE INDEX IF NOT EXISTS grade_events_by_query ON grade_events (query_id, id);
CREATE TABLE IF NOT EXISTS migrations (
    path TEXT NOT NULL,
    sha1 TEXT NOT NULL,                    -- of the old files' bytes: the same content is never imported twice
    at TEXT NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (path, sha1)
);
"""


@dataclass(frozen=True)
class GradeEvent:
    """One row of the log: a grade (0-3 from the app; an import keeps its file's integer) or a removal."""

    id: int
    corpus: str
    qid: str
    query: str | None
    doc: str
    grade: int | None  # None: a removal
    judge: str
    at: str
    origin: str


@dataclass(frozen=True)
class CurrentGrade:
    """A judge's current grade of a (query, document): their latest event for it, when not a removal."""

    judge: str
    qid: str
    doc: str
    grade: int
    at: str
    event: int  # the event's id: orders grades by when they were written


def utc_now() -> str:
    return utc_iso(datetime.now(UTC))


def utc_iso(moment: datetime) -> str:
    """Fixed width and always UTC, so that comparing the texts compares the times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection of its own, closed afterwards; transactions are explicit (`isolation_level=None`)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        yield conn
    finally:
        conn.close()


@contextmanager
def writing(path: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction (`BEGIN IMMEDIATE`: the write lock first, so what it reads stays true until it
    commits) on a database created with its schema when missing. Commits on success, rolls back on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connection(path) as conn:
        # WAL persists in the file; setting it again is a no-op. Outside a transaction, as SQLite requires.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in SCHEMA.split(";"):  # not executescript: it would commit the open transaction
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read transaction (one consistent snapshot), or None when there is no database yet: reading never
    creates one."""
    if not path.is_file():
        yield None
        return
    with connection(path) as conn:
        conn.execute("BEGIN")
        try:
            yield conn if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION else None
        finally:
            conn.execute("COMMIT")


def current_grades(conn: sqlite3.Connection | None, qids: Iterable[str] | None = None) -> list[CurrentGrade]:
    """Every judge's current grades (removed ones left out), in the order they were written.

    Relies on SQLite's documented rule for a bare column beside MAX(): it comes from the row holding the maximum.
    """
    if conn is None:
        return []
    sql = "SELECT judge, query_id, doc_id, grade, at, MAX(id) FROM grade_events"
    args: tuple = ()
    if qids is not None:
        wanted = sorted(set(qids))
        if not wanted:
            return []
        sql += f" WHERE query_id IN ({','.join('?' * len(wanted))})"
        args = tuple(wanted)
    rows = conn.execute(sql + " GROUP BY judge, query_id, doc_id", args).fetchall()
    return sorted(
        (CurrentGrade(judge, qid, doc, grade, at, event) for judge, qid, doc, grade, at, event in rows if grade is not None),
        key=lambda g: g.event,
    )


def query_texts(conn: sqlite3.Connection | None) -> dict[str, str]:
    """Each query's latest text (the queries the corpus does not ship; whether it still has grades is the caller's
    question)."""
    if conn is None:
        return {}
    rows = conn.execute(
        "SELECT query_id, query_text, MAX(id) FROM grade_events WHERE query_text IS NOT NULL GROUP BY query_id"
    ).fetchall()
    return {qid: text for qid, text, _ in rows}


def last_event(conn: sqlite3.Connection | None) -> int:
    """The id of the latest event (0: none): it grows with every write, so it stamps the state."""
    if conn is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM grade_events").fetchone()[0]


def events(conn: sqlite3.Connection | None, qid: str | None = None) -> list[GradeEvent]:
    """The log, oldest first (one query's, when `qid` is given)."""
    if conn is None:
        return []
    sql = "SELECT id, corpus, query_id, query_text, doc_id, grade, judge, at, origin FROM grade_events"
    rows = conn.execute(sql + (" WHERE query_id = ? ORDER BY id" if qid is not None else " ORDER BY id"),
                        (qid,) if qid is not None else ()).fetchall()
    return [GradeEvent(*row) for row in rows]


def append(
    conn: sqlite3.Connection,
    corpus: str,
    rows: Iterable[tuple[str, str | None, str, int | None]],
    *,
    judge: str,
    origin: str,
    at: str | None = None,
) -> int:
    """Append events (query id, query text, document id, grade or None) for one judge; returns how many."""
    at = at or utc_now()
    rows = [(corpus, qid, text, doc, grade, judge, at, origin) for qid, text, doc, grade in rows]
    conn.executemany(
        "INSERT INTO grade_events (corpus, query_id, query_text, doc_id, grade, judge, at, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def migrated(conn: sqlite3.Connection, path: str, sha1: str) -> bool:
    return conn.execute("SELECT 1 FROM migrations WHERE path = ? AND sha1 = ?", (path, sha1)).fetchone() is not None


def record_migration(conn: sqlite3.Connection, path: str, sha1: str, count: int) -> None:
    conn.execute("INSERT INTO migrations (path, sha1, at, events) VALUES (?, ?, ?, ?)", (path, sha1, utc_now(), count))


def latest_event_at(conn: sqlite3.Connection, judge: str) -> Mapping[tuple[str, str], str]:
    """(query id, document id) -> the time of the judge's latest event of the pair."""
    rows = conn.execute(
        "SELECT query_id, doc_id, at, MAX(id) FROM grade_events WHERE judge = ? GROUP BY query_id, doc_id", (judge,)
    ).fetchall()
    return {(qid, doc): at for qid, doc, at, _ in rows}
