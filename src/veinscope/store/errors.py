"""Errors of the patient store, with messages a practitioner understands.

Messages name the patient by the code the user typed (they already know it) but never by
name or date of birth, and never include file contents.
"""

from __future__ import annotations

from veinscope.errors import VeinScopeError

__all__ = [
    "StoreError",
    "PatientNotFoundError",
    "PatientExistsError",
    "DuplicatePhotoError",
    "StorageFullError",
    "SchemaError",
]


class StoreError(VeinScopeError):
    """Patient records or photos cannot be read or saved."""


class PatientNotFoundError(StoreError, LookupError):
    """No patient with that code."""


class PatientExistsError(StoreError):
    """A patient with that code already exists."""


class DuplicatePhotoError(StoreError):
    """The same photo (same bytes) is already stored for another patient."""


class StorageFullError(StoreError):
    """The disk holding the photo store is full."""


class SchemaError(StoreError):
    """The database was made by a different VeinScope version and needs ``veinscope db upgrade``."""
