"""Where the data lives and how to connect: data directory, database URL, engine set-up.

SQLite (the default) gets WAL journaling, foreign keys, ``synchronous=FULL``,
``secure_delete`` and a 30 s busy timeout; write transactions start with ``BEGIN IMMEDIATE``
so that two processes queue for the write lock instead of failing with "database is locked".
PostgreSQL URLs are routed to psycopg 3.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

__all__ = [
    "DATA_DIR_ENV",
    "DATABASE_URL_ENV",
    "SCHEMA_HEAD",
    "SQLITE_NAME",
    "default_data_dir",
    "resolve_location",
    "make_engine",
    "redact_url",
]

DATA_DIR_ENV = "VEINSCOPE_DATA_DIR"
DATABASE_URL_ENV = "VEINSCOPE_DATABASE_URL"
SQLITE_NAME = "veinscope.sqlite3"
#: Seconds a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0
#: Alembic revision this VeinScope's models match (tests check it is the migrations' head).
SCHEMA_HEAD = "0001"
#: Execution option marking a connection as a writer (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "veinscope_write"


def default_data_dir() -> Path:
    """``$VEINSCOPE_DATA_DIR`` or the platform's user data directory for VeinScope."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("veinscope", appauthor=False))


def resolve_location(
    location: str | os.PathLike | None = None, *, data_dir: str | os.PathLike | None = None
) -> tuple[str, Path]:
    """Return ``(database_url, data_dir)`` for a store.

    Parameters
    ----------
    location : str, path or None
        A database URL (``sqlite:///...``, ``postgresql://...``), or a data directory that
        holds a SQLite database, or None for ``$VEINSCOPE_DATABASE_URL`` (if set) and
        ``$VEINSCOPE_DATA_DIR`` (else the user data directory).
    data_dir : path, optional
        Where the photo files are kept (default: the data directory above).
    """
    if location is not None and not isinstance(location, (str, os.PathLike)):
        raise TypeError(f"location must be a URL, a folder or None, got {type(location).__name__}")
    text = os.fspath(location) if location is not None else None
    if text is not None and "://" in text:
        url = text
        base = Path(data_dir).expanduser() if data_dir is not None else None
        if base is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                base = Path(parsed.database).expanduser().resolve().parent
            else:
                base = default_data_dir()
        return url, base
    if text is not None:
        base = Path(text).expanduser()
        return f"sqlite:///{(base / SQLITE_NAME).resolve()}", Path(data_dir).expanduser() if data_dir else base
    env_url = os.environ.get(DATABASE_URL_ENV)
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if env_url:
        return env_url, base
    return f"sqlite:///{(base / SQLITE_NAME).resolve()}", base


def _normalise(url: str | URL) -> URL:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def redact_url(url: str | URL) -> str:
    """The URL with any password hidden (safe to print and log)."""
    return _normalise(url).render_as_string(hide_password=True)


def make_engine(url: str | URL) -> Engine:
    """An engine configured for VeinScope's concurrency and durability needs."""
    u = _normalise(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot hold patient records; give a file or folder")
        # hide_parameters: patient data never reaches log lines or exception messages
        engine = create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(u, pool_pre_ping=True, hide_parameters=True)
    raise ValueError(f"database URL must be sqlite:// or postgresql://, got {redact_url(u)!r}")


def _sqlite_connect(dbapi_connection, connection_record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is DEFERRED
    # and would turn a read-then-write transaction into an immediate "database is locked").
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA secure_delete = ON")
    finally:
        cur.close()


def _sqlite_begin(conn) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision recorded in the database (None for an empty database), without Alembic."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else ",".join(sorted(rows)) or None
