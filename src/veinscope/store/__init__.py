"""Patient and session records: a database (SQLite or PostgreSQL) plus an atomic photo store.

>>> from veinscope.store import open_store                      # doctest: +SKIP
>>> store = open_store()            # $VEINSCOPE_DATABASE_URL, or SQLite in $VEINSCOPE_DATA_DIR
>>> store.add_patient("P-0042")
>>> store.import_photo("P-0042", "left calf, medial", "2026-03-02", "leg.jpg", px_per_mm=10)
>>> store.list_sessions("P-0042")

The app and the CLI use only this API (no SQL outside this package). Every call runs in its
own transaction, so several processes may share a store; photos are written atomically and
kept byte-identical; ``check(repair=True)`` cleans up after a crash.
"""

from __future__ import annotations

from veinscope.store._config import DATA_DIR_ENV, DATABASE_URL_ENV, default_data_dir, resolve_location
from veinscope.store._records import (
    AuditRecord,
    CheckReport,
    EraseSummary,
    ExportSummary,
    ImportResult,
    PatientRecord,
    PhotoRecord,
    RemoveSummary,
    SessionRecord,
    SiteRecord,
)
from veinscope.store._store import Store, open_store, parse_date
from veinscope.store.errors import (
    DuplicatePhotoError,
    PatientExistsError,
    PatientNotFoundError,
    SchemaError,
    StorageFullError,
    StoreError,
)

__all__ = [
    "DATA_DIR_ENV",
    "DATABASE_URL_ENV",
    "AuditRecord",
    "CheckReport",
    "DuplicatePhotoError",
    "EraseSummary",
    "ExportSummary",
    "ImportResult",
    "PatientExistsError",
    "PatientNotFoundError",
    "PatientRecord",
    "PhotoRecord",
    "RemoveSummary",
    "SchemaError",
    "SessionRecord",
    "SiteRecord",
    "StorageFullError",
    "Store",
    "StoreError",
    "default_data_dir",
    "open_store",
    "parse_date",
    "resolve_location",
]
