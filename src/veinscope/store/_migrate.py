"""Schema migrations with Alembic, safe to run from several processes at once.

The migration scripts live in ``veinscope/store/migrations`` inside the package, so they work
from an installed wheel. Concurrent upgrades are serialised: PostgreSQL with an advisory lock,
SQLite with a ``BEGIN IMMEDIATE`` transaction around the whole migration.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from veinscope.store._config import WRITE_OPTION

__all__ = ["alembic_config", "head_revision", "current_revision", "upgrade"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_lock key shared by every VeinScope process migrating the same database.
_PG_LOCK_KEY = 0x5645494E  # "VEIN"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the packaged migrations must have one head, found {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
    return rev


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision``; returns (revision before, revision after). Idempotent.

    Raises
    ------
    SchemaError
        The database was made by a newer VeinScope (a revision this package does not know).
    StoreError
        The database cannot be reached or changed.
    """
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import OperationalError

    from veinscope.store._config import redact_url
    from veinscope.store.errors import SchemaError, StoreError

    try:
        return _upgrade(engine, revision)
    except CommandError as exc:
        if "Can't locate revision" in str(exc):
            raise SchemaError(
                f"The database {redact_url(engine.url)} was made by a newer VeinScope. Update VeinScope before "
                "using it."
            ) from None
        raise
    except OperationalError as exc:
        raise StoreError(f"Cannot open the database {redact_url(engine.url)}: {exc.orig}") from None


def _refuse_unversioned_tables(conn, before: str | None) -> None:
    """A database with VeinScope's tables but no schema version cannot be migrated (creating the
    tables again fails half-way with the driver's error): say so instead."""
    if before is not None:
        return
    from sqlalchemy import inspect

    from veinscope.store._config import redact_url
    from veinscope.store.errors import SchemaError
    from veinscope.store.models import Base

    found = sorted(set(inspect(conn).get_table_names()) & set(Base.metadata.tables))
    if found:
        raise SchemaError(
            f"The database {redact_url(conn.engine.url)} already holds VeinScope tables ({', '.join(found)}) but no "
            "schema version (its alembic_version table is missing): it was not made by `veinscope db init`, or was "
            "copied without that table. It cannot be upgraded safely: restore it from a backup, or give an empty "
            "database."
        )


def _upgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    cfg = alembic_config()
    writer = engine.execution_options(**{WRITE_OPTION: True})
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
            conn.commit()
            try:
                before = MigrationContext.configure(conn).get_current_revision()
                _refuse_unversioned_tables(conn, before)
                conn.commit()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
                after = MigrationContext.configure(conn).get_current_revision()
                conn.commit()
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
                conn.commit()
    else:
        with writer.connect() as conn:
            # One IMMEDIATE transaction holds the write lock for the whole check-and-migrate,
            # so two processes opening a new store at once cannot both create the tables.
            with conn.begin():
                before = MigrationContext.configure(conn).get_current_revision()
                _refuse_unversioned_tables(conn, before)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema upgraded from %s to %s", before, after)
    return before, after
