"""SQLAlchemy 2 models of patients, treated sites, sessions, photos, results and the audit log.

Personal data lives only in ``patient.name``, ``patient.birth_date`` and
``photo.original_name``; everything else refers to patients by their pseudonymous code or by
surrogate ids. The audit log has no foreign key to the patient, so it survives an erasure,
and it never holds personal data.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Patient",
    "Site",
    "TreatmentSession",
    "Photo",
    "AnalysisResult",
    "ComparisonResult",
    "AuditEntry",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    sites: Mapped[list[Site]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True, order_by="Site.label"
    )


class Site(Base):
    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("patient_id", "label", name="uq_site_patient_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="sites")
    sessions: Mapped[list[TreatmentSession]] = relationship(
        back_populates="site", cascade="all, delete-orphan", passive_deletes=True,
        order_by="TreatmentSession.session_date",
    )


class TreatmentSession(Base):
    """One visit's work on one treated site: date and treatment notes."""

    __tablename__ = "treatment_session"
    __table_args__ = (UniqueConstraint("site_id", "session_date", name="uq_session_site_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    session_date: Mapped[date] = mapped_column(Date)
    sclerosant: Mapped[str | None] = mapped_column(String(100))
    concentration_pct: Mapped[float | None] = mapped_column(Float)
    volume_ml: Mapped[float | None] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="sessions")
    photos: Mapped[list[Photo]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True, order_by="Photo.id"
    )


class Photo(Base):
    """An original photo, kept byte-identical in the content-addressed photo store."""

    __tablename__ = "photo"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_session.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str | None] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    capture_time: Mapped[datetime | None] = mapped_column(DateTime)
    stored_path: Mapped[str] = mapped_column(String(300))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[TreatmentSession] = relationship(back_populates="photos")
    analyses: Mapped[list[AnalysisResult]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True, order_by="AnalysisResult.id"
    )


class AnalysisResult(Base):
    __tablename__ = "analysis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    px_per_mm: Mapped[float | None] = mapped_column(Float)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="analyses")


class ComparisonResult(Base):
    __tablename__ = "comparison"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_a_id: Mapped[int] = mapped_column(ForeignKey("treatment_session.id", ondelete="CASCADE"), index=True)
    session_b_id: Mapped[int] = mapped_column(ForeignKey("treatment_session.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """What changed, when: ids and counts only, never names, codes, dates of birth or file names."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    entity: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
