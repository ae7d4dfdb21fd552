"""Plain, frozen results the store hands out (no database sessions attached)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "PatientRecord",
    "SiteRecord",
    "SessionRecord",
    "PhotoRecord",
    "ImportResult",
    "AuditRecord",
    "CheckReport",
    "EraseSummary",
    "ExportSummary",
    "RemoveSummary",
]


@dataclass(frozen=True)
class PatientRecord:
    id: int
    code: str
    name: str | None
    birth_date: date | None
    created_at: datetime
    sites: int = 0
    sessions: int = 0
    photos: int = 0

    def __repr__(self) -> str:  # keep name and date of birth out of logs and tracebacks
        return f"PatientRecord(id={self.id}, sites={self.sites}, sessions={self.sessions}, photos={self.photos})"


@dataclass(frozen=True)
class SiteRecord:
    id: int
    patient_id: int
    label: str
    sessions: int = 0


@dataclass(frozen=True)
class SessionRecord:
    id: int
    patient_id: int
    site_id: int
    site_label: str
    session_date: date
    sclerosant: str | None = None
    concentration_pct: float | None = None
    volume_ml: float | None = None
    notes: str | None = None
    photos: int = 0


@dataclass(frozen=True)
class PhotoRecord:
    id: int
    session_id: int
    sha256: str
    original_name: str | None
    media_type: str
    size_bytes: int
    width_px: int
    height_px: int
    capture_time: datetime | None
    stored_path: str
    imported_at: datetime
    path: Path
    analyses: int = 0

    def __repr__(self) -> str:
        return f"PhotoRecord(id={self.id}, session_id={self.session_id}, sha256={self.sha256[:12]}...)"


@dataclass(frozen=True)
class ImportResult:
    """Outcome of importing one photo: ``status`` is ``"imported"``, ``"duplicate"`` or ``"failed"``."""

    status: str
    source: str
    message: str
    photo: PhotoRecord | None = None
    analysis_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "duplicate")


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    action: str
    patient_id: int | None
    entity: str | None
    entity_id: int | None
    details: dict[str, Any]


@dataclass(frozen=True)
class CheckReport:
    """Consistency of database rows and photo files.

    ``missing``: photo ids whose file is gone; ``corrupt``: photo ids whose file no longer has
    the recorded SHA-256; ``orphans``: stored files no row refers to; ``temporaries``: files
    left by interrupted writes; ``in_flight``: imports running right now (left alone).
    """

    photos: int
    files: int
    missing: tuple[int, ...] = ()
    corrupt: tuple[int, ...] = ()
    orphans: tuple[str, ...] = ()
    temporaries: tuple[str, ...] = ()
    in_flight: int = 0
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.orphans or self.temporaries)

    def lines(self) -> list[str]:
        out = [f"{self.photos} photo rows, {self.files} stored files"]
        if self.missing:
            out.append(f"{len(self.missing)} photo rows whose file is missing: ids {list(self.missing)}")
        if self.corrupt:
            out.append(f"{len(self.corrupt)} files damaged (content changed): photo ids {list(self.corrupt)}")
        if self.orphans:
            out.append(f"{len(self.orphans)} stored files no record refers to")
        if self.temporaries:
            out.append(f"{len(self.temporaries)} leftovers of interrupted writes")
        if self.in_flight:
            out.append(f"{self.in_flight} imports in progress (left alone)")
        for what, n in self.repaired.items():
            out.append(f"repaired: {what}: {n}")
        return out


@dataclass(frozen=True)
class EraseSummary:
    patient_id: int
    sites: int
    sessions: int
    photos: int
    analyses: int
    comparisons: int
    files_removed: int


@dataclass(frozen=True)
class RemoveSummary:
    """What :meth:`Store.remove_photo` removed: one photo, its analyses and the comparisons made with it."""

    photo_id: int
    session_id: int
    patient_id: int
    analyses: int
    #: saved comparisons of the photo's session that used this photo (or whose photo is not recorded)
    comparisons: int
    #: photos left in the session (the session itself, with its date and notes, stays)
    photos_left: int
    #: whether the photo's file was removed from the photo folder (kept while another record refers to it)
    file_removed: bool


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    photos: int
    analyses: int
    comparisons: int
