"""The patient store: the one API the app and the CLI use (no SQL outside this package)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from veinscope._version import __version__
from veinscope.errors import PhotoError, VeinScopeError
from veinscope.store._config import (
    SCHEMA_HEAD,
    WRITE_OPTION,
    make_engine,
    redact_url,
    resolve_location,
    schema_revision,
)
from veinscope.store._exif import image_info, strip_personal_metadata
from veinscope.store._photos import DiskFullError, PhotoFiles, sha256_hex
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
from veinscope.store.errors import (
    DuplicatePhotoError,
    PatientExistsError,
    PatientNotFoundError,
    SchemaError,
    StorageFullError,
    StoreError,
)
from veinscope.store.models import (
    AnalysisResult,
    AuditEntry,
    ComparisonResult,
    Patient,
    Photo,
    Site,
    TreatmentSession,
)

__all__ = ["Store", "open_store", "parse_date"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm", "total")
_UNSET: Any = object()
#: Seconds an orphan file / marker from another machine is assumed to belong to a running import.
DEFAULT_GRACE_S = 3600.0


def open_store(
    location: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    upgrade: bool = True,
) -> Store:
    """Open (and create or upgrade, unless ``upgrade=False``) the patient store.

    Parameters
    ----------
    location : str, path or None
        Database URL (``sqlite:///file``, ``postgresql://user@host/db``) or a data folder
        (SQLite inside). None: ``$VEINSCOPE_DATABASE_URL`` if set, else SQLite in
        ``$VEINSCOPE_DATA_DIR`` (default: the user data directory).
    data_dir : path, optional
        Folder of the photo files (default: the data folder).
    upgrade : bool
        Bring the database schema up to date (idempotent, safe with concurrent processes).
        With False, an out-of-date database raises :class:`SchemaError`.
    """
    url, base = resolve_location(location, data_dir=data_dir)
    return Store(url, base, upgrade=upgrade)


def parse_date(value: date | str, name: str = "date") -> date:
    """A ``date`` from a date or an ISO ``YYYY-MM-DD`` string; ValueError names ``name``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date written YYYY-MM-DD, got {value!r}")


def _clean_text(value: str, name: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"{name} must not be empty")
    if len(text) > max_len:
        raise ValueError(f"{name} must be at most {max_len} characters, got {len(text)}")
    if any(ord(c) < 32 for c in text):
        raise ValueError(f"{name} must not contain control characters, got {text!r}")
    return text


def _optional_number(value: float | None, name: str, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (lo <= x <= hi) or math.isnan(x):
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return x


def _json_safe(obj: Any) -> Any:
    """Plain JSON types, NaN/inf as None (JSON and PostgreSQL's jsonb have no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):  # numpy scalars
        return _json_safe(obj.item())
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    if isinstance(obj, (date, datetime)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"result values must be JSON-serialisable, got {type(obj).__name__}")


def _result_dict(result: Any, name: str) -> dict[str, Any]:
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, dict):
        raise TypeError(f"{name} must be a dict or have to_dict(), got {type(result).__name__}")
    return _json_safe(result)


def _transient(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock not available
        return True
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def _disk_full(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code == "53100" or "disk is full" in str(exc.orig).lower()


class Store:
    """Patients, treated sites, sessions, photos and results, in a database plus photo folder.

    Thread-safe for use from one process (each call uses its own database session); any
    number of processes may use the same store at once.
    """

    def __init__(self, url: str, data_dir: str | os.PathLike, *, upgrade: bool = True):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.files = PhotoFiles(self.data_dir / "photos")
        self.files.ensure()
        self.url = redact_url(url)
        self.engine = make_engine(url)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        try:
            self._ensure_schema(upgrade)
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"Cannot open the database {self.url}: {exc.orig}") from None
        except BaseException:
            self.engine.dispose()
            raise

    def _ensure_schema(self, upgrade: bool, *, wait_s: float = 30.0) -> None:
        """Check the schema and bring it to the head, waiting while another process does the same.

        Two processes opening a new store at the same moment both try to create the schema: one
        holds the write lock and the other gets "database is locked" (SQLite answers a read
        transaction that wants to write at once, without its busy timeout). The loser waits and
        looks again; by then the schema is usually there.
        """
        import random
        import time

        head = SCHEMA_HEAD
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                current = schema_revision(self.engine)
                if current == head:
                    return
                if not upgrade:
                    raise SchemaError(
                        f"The database {self.url} is at schema {current or 'empty'}; this VeinScope needs "
                        f"{head}. Run `veinscope db upgrade` (after a backup)."
                    )
                from veinscope.store import _migrate  # Alembic only when the schema must change

                _migrate.upgrade(self.engine)
                return
            except OperationalError as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(1.0, delay * 2)

    # -- plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store(url={self.url!r}, data_dir={str(self.data_dir)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def schema_revision(self) -> str | None:
        return schema_revision(self.engine)

    def _read(self, fn: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as s:  # close() ends the transaction
            return fn(s)

    def _write(self, fn: Callable[[Session], T], *, attempts: int = 8) -> T:
        """Run ``fn`` in one write transaction; retry on lock contention and on lost races."""
        delay = 0.05
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                with Session(self._writer, expire_on_commit=False) as s:
                    with s.begin():
                        return fn(s)
            except IntegrityError:
                # another process created the same site/session/photo first: look again
                if last:
                    raise
            except OperationalError as exc:
                if _disk_full(exc):
                    raise StorageFullError(
                        "The disk holding the database is full: nothing was changed. Free some space and try again."
                    ) from None
                if last or not _transient(exc):
                    raise StoreError(f"The database could not save the change: {exc.orig}") from None
                log.debug("database busy, retrying (attempt %d)", attempt + 1)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _audit(s: Session, action: str, *, patient_id: int | None = None, entity: str | None = None,
               entity_id: int | None = None, **details: Any) -> None:
        s.add(AuditEntry(action=action, patient_id=patient_id, entity=entity, entity_id=entity_id,
                         details=_json_safe(details)))

    @staticmethod
    def _patient(s: Session, code: str) -> Patient:
        code = _clean_text(code, "patient code", 64)
        p = s.scalar(select(Patient).where(Patient.code == code))
        if p is None:
            raise PatientNotFoundError(
                f"There is no patient with code {code!r}. Check the code, or add the patient first "
                f"(veinscope patient add {code})."
            )
        return p

    # -- patients ----------------------------------------------------------------------------
    def add_patient(self, code: str, *, name: str | None = None, birth_date: date | str | None = None) -> PatientRecord:
        """Add a patient under a pseudonymous ``code``; ``name`` and ``birth_date`` are optional."""
        code = _clean_text(code, "patient code", 64)
        name = _clean_text(name, "name", 200) if name is not None else None
        dob = parse_date(birth_date, "birth_date") if birth_date is not None else None
        if dob is not None and not (date(1900, 1, 1) <= dob <= date.today()):
            raise ValueError(f"birth_date must be between 1900-01-01 and today, got {dob.isoformat()!r}")

        def tx(s: Session) -> int:
            if s.scalar(select(Patient.id).where(Patient.code == code)) is not None:
                raise PatientExistsError(f"A patient with code {code!r} already exists.")
            p = Patient(code=code, name=name, birth_date=dob)
            s.add(p)
            s.flush()
            self._audit(s, "patient.add", patient_id=p.id, entity="patient", entity_id=p.id,
                        with_name=name is not None, with_birth_date=dob is not None)
            return p.id

        try:
            pid = self._write(tx)
        except IntegrityError:
            raise PatientExistsError(f"A patient with code {code!r} already exists.") from None
        log.info("added patient %d", pid)
        return self.get_patient(code)

    def update_patient(self, code: str, *, name: str | None = _UNSET, birth_date: date | str | None = _UNSET) -> PatientRecord:
        """Change the optional name or date of birth (None clears it)."""
        new_name = _UNSET if name is _UNSET else (None if name is None else _clean_text(name, "name", 200))
        new_dob = _UNSET if birth_date is _UNSET else (None if birth_date is None else parse_date(birth_date, "birth_date"))

        def tx(s: Session) -> None:
            p = self._patient(s, code)
            changed = []
            if new_name is not _UNSET and new_name != p.name:
                p.name = new_name
                changed.append("name")
            if new_dob is not _UNSET and new_dob != p.birth_date:
                p.birth_date = new_dob
                changed.append("birth_date")
            if changed:
                self._audit(s, "patient.update", patient_id=p.id, entity="patient", entity_id=p.id, fields=changed)

        self._write(tx)
        return self.get_patient(code)

    def _patient_records(self, s: Session, patients: Sequence[Patient]) -> list[PatientRecord]:
        ids = [p.id for p in patients]
        if not ids:
            return []
        n_sites = dict(s.execute(select(Site.patient_id, func.count(Site.id)).where(Site.patient_id.in_(ids))
                                 .group_by(Site.patient_id)).all())
        n_sessions = dict(s.execute(select(Site.patient_id, func.count(TreatmentSession.id))
                                    .join(TreatmentSession, TreatmentSession.site_id == Site.id)
                                    .where(Site.patient_id.in_(ids)).group_by(Site.patient_id)).all())
        n_photos = dict(s.execute(select(Site.patient_id, func.count(Photo.id))
                                  .join(TreatmentSession, TreatmentSession.site_id == Site.id)
                                  .join(Photo, Photo.session_id == TreatmentSession.id)
                                  .where(Site.patient_id.in_(ids)).group_by(Site.patient_id)).all())
        return [PatientRecord(p.id, p.code, p.name, p.birth_date, p.created_at, n_sites.get(p.id, 0),
                              n_sessions.get(p.id, 0), n_photos.get(p.id, 0)) for p in patients]

    def get_patient(self, code: str) -> PatientRecord:
        return self._read(lambda s: self._patient_records(s, [self._patient(s, code)])[0])

    def has_patient(self, code: str) -> bool:
        code = _clean_text(code, "patient code", 64)
        return self._read(lambda s: s.scalar(select(Patient.id).where(Patient.code == code))) is not None

    def list_patients(self, search: str | None = None) -> list[PatientRecord]:
        """All patients by code; ``search`` matches part of the code or the name (any case)."""

        def q(s: Session) -> list[PatientRecord]:
            stmt = select(Patient).order_by(Patient.code)
            if search:
                stmt = stmt.where(or_(Patient.code.icontains(search, autoescape=True),
                                      Patient.name.icontains(search, autoescape=True)))
            return self._patient_records(s, s.scalars(stmt).all())

        return self._read(q)

    search_patients = list_patients

    # -- sites and sessions ------------------------------------------------------------------
    def _get_or_create_site(self, s: Session, patient: Patient, label: str) -> Site:
        site = s.scalar(select(Site).where(Site.patient_id == patient.id, Site.label == label))
        if site is None:
            site = Site(patient_id=patient.id, label=label)
            s.add(site)
            s.flush()
            self._audit(s, "site.add", patient_id=patient.id, entity="site", entity_id=site.id)
        return site

    def _get_or_create_session(self, s: Session, patient: Patient, site: Site, day: date) -> TreatmentSession:
        sess = s.scalar(select(TreatmentSession).where(TreatmentSession.site_id == site.id,
                                                       TreatmentSession.session_date == day))
        if sess is None:
            sess = TreatmentSession(site_id=site.id, session_date=day)
            s.add(sess)
            s.flush()
            self._audit(s, "session.add", patient_id=patient.id, entity="session", entity_id=sess.id)
        return sess

    def add_site(self, code: str, label: str) -> SiteRecord:
        """The treated site ``label`` (e.g. "left calf, medial") of a patient, created if new."""
        label = _clean_text(label, "site", 200)

        def tx(s: Session) -> int:
            return self._get_or_create_site(s, self._patient(s, code), label).id

        site_id = self._write(tx)
        return next(r for r in self.list_sites(code) if r.id == site_id)

    def list_sites(self, code: str) -> list[SiteRecord]:
        def q(s: Session) -> list[SiteRecord]:
            p = self._patient(s, code)
            rows = s.execute(select(Site, func.count(TreatmentSession.id))
                             .outerjoin(TreatmentSession, TreatmentSession.site_id == Site.id)
                             .where(Site.patient_id == p.id).group_by(Site.id).order_by(Site.label)).all()
            return [SiteRecord(site.id, p.id, site.label, n) for site, n in rows]

        return self._read(q)

    def add_session(
        self,
        code: str,
        site: str,
        session_date: date | str,
        *,
        sclerosant: str | None = None,
        concentration_pct: float | None = None,
        volume_ml: float | None = None,
        notes: str | None = None,
    ) -> SessionRecord:
        """The session of ``site`` on ``session_date`` (created if new); given notes are saved.

        ``concentration_pct`` is the sclerosant concentration in % (e.g. 0.5 for polidocanol
        0.5 %), ``volume_ml`` the volume injected at this site in millilitres.
        """
        label = _clean_text(site, "site", 200)
        day = parse_date(session_date, "session_date")
        fields = {
            "sclerosant": _clean_text(sclerosant, "sclerosant", 100) if sclerosant is not None else None,
            "concentration_pct": _optional_number(concentration_pct, "concentration_pct", 0.0, 100.0),
            "volume_ml": _optional_number(volume_ml, "volume_ml", 0.0, 1000.0),
            "notes": notes.strip() if isinstance(notes, str) else notes,
        }
        if fields["notes"] is not None and not isinstance(fields["notes"], str):
            raise TypeError(f"notes must be a string, got {type(notes).__name__}")

        def tx(s: Session) -> int:
            p = self._patient(s, code)
            sess = self._get_or_create_session(s, p, self._get_or_create_site(s, p, label), day)
            changed = []
            for key, value in fields.items():
                if value is not None and getattr(sess, key) != value:
                    setattr(sess, key, value)
                    changed.append(key)
            if changed:
                self._audit(s, "session.update", patient_id=p.id, entity="session", entity_id=sess.id, fields=changed)
            return sess.id

        return self.get_session(self._write(tx))

    def _session_records(self, s: Session, stmt) -> list[SessionRecord]:
        rows = s.execute(stmt.add_columns(Site.label, Site.patient_id,
                                          select(func.count(Photo.id)).where(Photo.session_id == TreatmentSession.id)
                                          .scalar_subquery())
                         .join(Site, Site.id == TreatmentSession.site_id)).all()
        return [SessionRecord(t.id, pid, t.site_id, label, t.session_date, t.sclerosant, t.concentration_pct,
                              t.volume_ml, t.notes, n) for t, label, pid, n in rows]

    def get_session(self, session_id: int) -> SessionRecord:
        def q(s: Session) -> SessionRecord:
            out = self._session_records(s, select(TreatmentSession).where(TreatmentSession.id == int(session_id)))
            if not out:
                raise StoreError(f"There is no session with id {session_id}.")
            return out[0]

        return self._read(q)

    def list_sessions(self, code: str, site: str | None = None) -> list[SessionRecord]:
        """Sessions of a patient (optionally of one site), oldest first."""

        def q(s: Session) -> list[SessionRecord]:
            p = self._patient(s, code)
            stmt = select(TreatmentSession).where(Site.patient_id == p.id)
            if site is not None:
                stmt = stmt.where(Site.label == _clean_text(site, "site", 200))
            return self._session_records(s, stmt.order_by(TreatmentSession.session_date, Site.label))

        return self._read(q)

    # -- photos ------------------------------------------------------------------------------
    def _photo_record(self, ph: Photo, n_analyses: int = 0) -> PhotoRecord:
        return PhotoRecord(ph.id, ph.session_id, ph.sha256, ph.original_name, ph.media_type, ph.size_bytes,
                           ph.width_px, ph.height_px, ph.capture_time, ph.stored_path, ph.imported_at,
                           self.files.path(ph.stored_path), n_analyses)

    def list_photos(self, *, session_id: int | None = None, code: str | None = None) -> list[PhotoRecord]:
        """Photos of one session, or of one patient (by session date), or all."""

        def q(s: Session) -> list[PhotoRecord]:
            n = select(func.count(AnalysisResult.id)).where(AnalysisResult.photo_id == Photo.id).scalar_subquery()
            stmt = (select(Photo, n).join(TreatmentSession, TreatmentSession.id == Photo.session_id)
                    .join(Site, Site.id == TreatmentSession.site_id))
            if session_id is not None:
                stmt = stmt.where(Photo.session_id == int(session_id))
            if code is not None:
                stmt = stmt.where(Site.patient_id == self._patient(s, code).id)
            stmt = stmt.order_by(TreatmentSession.session_date, Site.label, Photo.id)
            return [self._photo_record(ph, k) for ph, k in s.execute(stmt).all()]

        return self._read(q)

    def photo_numbers(self, session_id: int) -> dict[int, int]:
        """The photos of a session numbered 1, 2, ... in the order they were added to it: photo id -> number.

        A photo taken out of the session (:meth:`remove_photo`, its "photo.remove" audit entry;
        or by ``check(repair=True)`` because its file was gone, "photo.remove_missing", recorded
        with its session since session 40) keeps its number, so the numbers of the others never
        change: a report that named "photo 2" names the same photo after photo 1 was removed. A
        photo added later takes the next number, after every photo removed before it was added
        (also where SQLite gave it the id of a photo removed before it: SQLite reuses the ids of
        the newest rows deleted). Removals recorded before the session was created (those of an
        erased patient whose patient and session ids SQLite gave again) are not counted. The
        PDF and the app name a session's photos by these numbers.

        One query on the patient's audit entries (the audit log's ``patient_id`` index).
        """

        def q(s: Session) -> dict[int, int]:
            sid = int(session_id)
            sess = s.get(TreatmentSession, sid)
            if sess is None:
                raise StoreError(f"There is no session with id {session_id}.")
            here = sorted(int(pid) for pid in s.scalars(select(Photo.id).where(Photo.session_id == sid)).all())
            patient_id = s.scalar(select(Site.patient_id).where(Site.id == sess.site_id))
            rows = s.execute(select(AuditEntry.id, AuditEntry.action, AuditEntry.entity_id, AuditEntry.details).where(
                AuditEntry.patient_id == patient_id,
                AuditEntry.action.in_(("session.add", "photo.import", "photo.remove", "photo.remove_missing")))
                .order_by(AuditEntry.id)).all()
            # this session's own entries: those after its creation (the latest "session.add" of its id)
            born = max((aid for aid, action, eid, _ in rows if action == "session.add" and eid == sid), default=0)
            mine = [(aid, action, int(eid)) for aid, action, eid, details in rows
                    if aid > born and eid is not None and (details or {}).get("session_id") == sid]
            gone = [(pid, aid) for aid, action, pid in mine if action != "photo.import"]
            added = {pid: aid for aid, action, pid in mine if action == "photo.import"}  # the latest: the photo here
            numbers_: dict[int, int] = {}
            last = 0
            for k, pid in enumerate(here):  # photos present together: id order is the order they were added
                # a removed photo came before this one if its id is lower (or equal: two photos
                # never hold one id at once), or if it was removed before this one was added
                # (SQLite: a lower id than a photo removed before)
                before = sum(1 for gid, aid in gone if gid <= pid or aid < added.get(pid, 0))
                last = max(last + 1, k + 1 + before)
                numbers_[pid] = last
            return numbers_

        return self._read(q)

    def get_photo(self, photo_id: int) -> PhotoRecord:
        def q(s: Session) -> PhotoRecord:
            ph = s.get(Photo, int(photo_id))
            if ph is None:
                raise StoreError(f"There is no photo with id {photo_id}.")
            n = s.scalar(select(func.count(AnalysisResult.id)).where(AnalysisResult.photo_id == ph.id))
            return self._photo_record(ph, int(n or 0))

        return self._read(q)

    def read_photo(self, photo_id: int) -> bytes:
        """The original bytes of a stored photo."""
        rec = self.get_photo(photo_id)
        try:
            return rec.path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"The file of photo {photo_id} is missing from the photo store. Run `veinscope db check`."
            ) from None

    def import_photos(
        self,
        code: str,
        site: str,
        session_date: date | str,
        sources: Iterable[str | os.PathLike | bytes],
        *,
        px_per_mm: float | None = None,
        analyze: bool | Callable[..., Any] = True,
        progress: Callable[[int, ImportResult], None] | None = None,
    ) -> list[ImportResult]:
        """Import several photos into one session; a photo that fails does not stop the others.

        Unknown patient, a bad date and a full disk stop the whole import (raised); unreadable
        photos and photos of another patient are reported in the results.
        """
        day = parse_date(session_date, "session_date")
        self.get_patient(code)  # unknown patient: fail before any work
        out = []
        for i, src in enumerate(sources):
            try:
                r = self.import_photo(code, site, day, src, px_per_mm=px_per_mm, analyze=analyze)
            except (PhotoError, DuplicatePhotoError) as exc:
                r = ImportResult("failed", _source_label(src), str(exc))
            out.append(r)
            if progress is not None:
                progress(i, r)
        return out

    def import_photo(
        self,
        code: str,
        site: str,
        session_date: date | str,
        source: str | os.PathLike | bytes,
        *,
        original_name: str | None = None,
        px_per_mm: float | None = None,
        analyze: bool | Callable[..., Any] = True,
    ) -> ImportResult:
        """Store one photo (byte-identical, once) in a patient's session, with its analysis.

        Parameters
        ----------
        code, site, session_date
            Patient code, treated site label (created if new), session date (created if new).
        source : path or bytes
            The photo file (JPEG, PNG, TIFF, WebP, BMP).
        original_name : str, optional
            File name to record (default: the path's name).
        px_per_mm : float, optional
            Scale for the analysis.
        analyze : bool or callable
            True: run :func:`veinscope.analyze`; False: store only; a callable
            ``f(photo, px_per_mm=...)`` returning a dict or an object with ``to_dict()``.

        Returns
        -------
        ImportResult
            ``status`` "imported" or "duplicate" (the same bytes are already in this patient's
            records: nothing changes).

        Raises
        ------
        PatientNotFoundError, PhotoError, DuplicatePhotoError, StorageFullError, ValueError
        """
        label = _clean_text(site, "site", 200)
        day = parse_date(session_date, "session_date")
        if px_per_mm is not None:
            px_per_mm = _optional_number(px_per_mm, "px_per_mm", 1e-3, 1e4)
        data, name = _read_source(source, original_name)
        sha = sha256_hex(data)

        def lookup(s: Session) -> ImportResult | None:
            p = self._patient(s, code)
            return self._existing(s, p, sha, name)

        dup = self._read(lookup)
        if dup is not None:
            if analyze and dup.photo.analyses == 0:  # stored earlier without analysis: analyse now
                try:
                    aid, _ = self._analyze_and_save(dup.photo.id, px_per_mm, analyze if callable(analyze) else None)
                except VeinScopeError as exc:
                    return ImportResult("duplicate", dup.source, f"{dup.message} (not analysed: {exc})", dup.photo)
                return ImportResult("duplicate", dup.source, dup.message.replace("nothing changed", "analysed now"),
                                    self.get_photo(dup.photo.id), aid)
            return dup

        from veinscope.io import load_photo

        try:
            photo = load_photo(data)  # validates (and registers optional decoders such as HEIC)
        except PhotoError as exc:
            raise PhotoError(str(exc).replace("'photo'", repr(name), 1)) from None
        try:
            media_type, ext, capture, _ = image_info(data)
        except Exception:
            raise PhotoError(
                f"{name!r} is not a photo VeinScope can keep (damaged, incomplete or another kind of file). "
                "Use a JPEG, PNG, TIFF, WebP, HEIC or BMP straight from the camera."
            ) from None
        io_capture = getattr(photo, "taken_at", None) or getattr(photo, "capture_time", None)
        if capture is None and isinstance(io_capture, datetime):
            capture = io_capture.replace(tzinfo=None)  # the camera's wall-clock time
        height, width = photo.rgb.shape[:2]

        analysis, note = None, ""
        if analyze:
            fn = analyze if callable(analyze) else _default_analyze
            try:
                analysis = _result_dict(fn(photo, px_per_mm=px_per_mm), "analysis")
            except VeinScopeError as exc:
                note = f" (not analysed: {exc})"

        def tx(s: Session) -> ImportResult:
            p = self._patient(s, code)
            dup = self._existing(s, p, sha, name)
            if dup is not None:
                return dup
            sess = self._get_or_create_session(s, p, self._get_or_create_site(s, p, label), day)
            ph = Photo(session_id=sess.id, sha256=sha, original_name=name[:255] if name else None,
                       media_type=media_type, size_bytes=len(data), width_px=int(width), height_px=int(height),
                       capture_time=capture, stored_path=rel)
            s.add(ph)
            s.flush()
            self._audit(s, "photo.import", patient_id=p.id, entity="photo", entity_id=ph.id,
                        session_id=sess.id, size_bytes=len(data))
            aid = None
            if analysis is not None:
                aid = self._add_analysis(s, ph, analysis, p.id)
            return ImportResult("imported", name, f"{name}: imported as photo {ph.id}{note}",
                                self._photo_record(ph, int(aid is not None)), aid)

        marker = self.files.mark_pending(sha)
        rel = None
        try:
            try:
                rel = self.files.put(data, sha, ext)
            except DiskFullError:
                raise StorageFullError(
                    f"The disk holding the photo store is full: {name!r} was not saved. Free some space and "
                    "import it again; photos already saved are not affected."
                ) from None
            result = self._write(tx)
            if result.photo is not None and not result.photo.path.is_file():
                # an erasure of the same bytes (another patient's) removed the file meanwhile
                self.files.put(data, sha, ext)
        except BaseException:
            if rel is not None:
                self._discard_if_unreferenced(sha, rel)
            raise
        finally:
            self.files.unmark(marker)
        if result.status == "imported":
            log.info("imported photo %d into session %d", result.photo.id, result.photo.session_id)
        return result

    def _existing(self, s: Session, patient: Patient, sha: str, name: str) -> ImportResult | None:
        row = s.execute(select(Photo, Site.patient_id, Site.label, TreatmentSession.session_date)
                        .join(TreatmentSession, TreatmentSession.id == Photo.session_id)
                        .join(Site, Site.id == TreatmentSession.site_id).where(Photo.sha256 == sha)).first()
        if row is None:
            return None
        ph, owner, label, day = row
        n_analyses = s.scalar(select(func.count(AnalysisResult.id)).where(AnalysisResult.photo_id == ph.id))
        if owner != patient.id:
            raise DuplicatePhotoError(
                f"{name!r} is already stored for another patient (photo {ph.id}). One photo cannot belong to two "
                "patients: check that you chose the right patient. Nothing was changed."
            )
        return ImportResult("duplicate", name,
                            f"{name}: already stored as photo {ph.id} ({label}, {day.isoformat()}); nothing changed",
                            self._photo_record(ph, int(n_analyses or 0)))

    def _discard_if_unreferenced(self, sha: str, rel: str) -> None:
        try:
            used = self._read(lambda s: s.scalar(select(Photo.id).where(Photo.sha256 == sha)))
        except Exception:  # database unreachable: leave the file for `db check --repair`
            return
        if used is None:
            self.files.delete(rel)

    # -- results -----------------------------------------------------------------------------
    def _add_analysis(self, s: Session, ph: Photo, result: dict[str, Any], patient_id: int) -> int:
        px = result.get("px_per_mm")
        a = AnalysisResult(photo_id=ph.id, version=str(result.get("version") or __version__),
                           px_per_mm=float(px) if isinstance(px, (int, float)) else None,
                           parameters=result.get("parameters") or {}, result=result)
        s.add(a)
        s.flush()
        self._audit(s, "analysis.save", patient_id=patient_id, entity="analysis", entity_id=a.id, photo_id=ph.id)
        return a.id

    def _patient_id_of_photo(self, s: Session, photo_id: int) -> tuple[Photo, int]:
        row = s.execute(select(Photo, Site.patient_id).join(TreatmentSession, TreatmentSession.id == Photo.session_id)
                        .join(Site, Site.id == TreatmentSession.site_id).where(Photo.id == int(photo_id))).first()
        if row is None:
            raise StoreError(f"There is no photo with id {photo_id}.")
        return row[0], row[1]

    def save_analysis(self, photo_id: int, result: Any) -> int:
        """Save an analysis (an ``Analysis`` or its ``to_dict()``) of a stored photo; returns its id."""
        d = _result_dict(result, "result")

        def tx(s: Session) -> int:
            ph, pid = self._patient_id_of_photo(s, photo_id)
            return self._add_analysis(s, ph, d, pid)

        return self._write(tx)

    def get_analysis(self, photo_id: int) -> dict[str, Any] | None:
        """The latest analysis of a photo as saved (``to_dict()`` form), or None."""
        return self._read(lambda s: s.scalar(select(AnalysisResult.result).where(AnalysisResult.photo_id == int(photo_id))
                                             .order_by(AnalysisResult.id.desc()).limit(1)))

    def list_analyses(self, photo_id: int) -> list[dict[str, Any]]:
        """Every saved analysis of a photo, oldest first, each with ``id`` and ``created_at`` added."""

        def q(s: Session) -> list[dict[str, Any]]:
            rows = s.scalars(select(AnalysisResult).where(AnalysisResult.photo_id == int(photo_id))
                             .order_by(AnalysisResult.id)).all()
            return [{"id": a.id, "created_at": a.created_at.isoformat(), "version": a.version,
                     "px_per_mm": a.px_per_mm, "parameters": a.parameters, "result": a.result} for a in rows]

        return self._read(q)

    def analyze_photo(self, photo_id: int, *, px_per_mm: float | None = None,
                      analyze: Callable[..., Any] | None = None) -> dict[str, Any]:
        """Analyse a stored photo again (e.g. with a new scale or version) and save the result."""
        return self._analyze_and_save(photo_id, px_per_mm, analyze)[1]

    def _analyze_and_save(self, photo_id: int, px_per_mm: float | None,
                          analyze: Callable[..., Any] | None) -> tuple[int, dict[str, Any]]:
        from veinscope.io import load_photo

        photo = load_photo(self.read_photo(photo_id))
        d = _result_dict((analyze or _default_analyze)(photo, px_per_mm=px_per_mm), "analysis")
        return self.save_analysis(photo_id, d), d

    def save_comparison(self, session_a: int, session_b: int, result: Any) -> int:
        """Save a comparison of two sessions of one patient (a ``Comparison`` or its dict); returns its id."""
        d = _result_dict(result, "result")

        def tx(s: Session) -> int:
            rows = s.execute(select(TreatmentSession.id, Site.patient_id).join(Site, Site.id == TreatmentSession.site_id)
                             .where(TreatmentSession.id.in_([int(session_a), int(session_b)]))).all()
            owners = dict(rows)
            for sid in (session_a, session_b):
                if int(sid) not in owners:
                    raise StoreError(f"There is no session with id {sid}.")
            if owners[int(session_a)] != owners[int(session_b)]:
                raise StoreError("Sessions of two different patients cannot be compared.")
            c = ComparisonResult(session_a_id=int(session_a), session_b_id=int(session_b),
                                 version=str(d.get("version") or __version__), parameters=d.get("parameters") or {},
                                 result=d)
            s.add(c)
            s.flush()
            self._audit(s, "comparison.save", patient_id=owners[int(session_a)], entity="comparison", entity_id=c.id)
            return c.id

        return self._write(tx)

    def get_comparison(self, session_a: int, session_b: int) -> dict[str, Any] | None:
        """The latest saved comparison of ``session_a`` (baseline) with ``session_b``, or None."""
        return self._read(lambda s: s.scalar(
            select(ComparisonResult.result).where(ComparisonResult.session_a_id == int(session_a),
                                                  ComparisonResult.session_b_id == int(session_b))
            .order_by(ComparisonResult.id.desc()).limit(1)))

    def list_comparisons(self, code: str) -> list[dict[str, Any]]:
        """Comparisons saved for a patient: ``id``, ``session_a``, ``session_b``, ``created_at``, ``result``."""

        def q(s: Session) -> list[dict[str, Any]]:
            p = self._patient(s, code)
            rows = s.scalars(select(ComparisonResult).join(TreatmentSession,
                                                           TreatmentSession.id == ComparisonResult.session_a_id)
                             .join(Site, Site.id == TreatmentSession.site_id).where(Site.patient_id == p.id)
                             .order_by(ComparisonResult.id)).all()
            return [{"id": c.id, "session_a": c.session_a_id, "session_b": c.session_b_id,
                     "created_at": c.created_at.isoformat(), "version": c.version, "result": c.result} for c in rows]

        return self._read(q)

    # -- audit -------------------------------------------------------------------------------
    def audit_log(self, *, patient_id: int | None = None, limit: int = 200) -> list[AuditRecord]:
        """Latest audit entries first (ids and counts only, no personal data)."""

        def q(s: Session) -> list[AuditRecord]:
            stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(int(limit))
            if patient_id is not None:
                stmt = stmt.where(AuditEntry.patient_id == int(patient_id))
            return [AuditRecord(a.id, a.at, a.action, a.patient_id, a.entity, a.entity_id, dict(a.details or {}))
                    for a in s.scalars(stmt).all()]

        return self._read(q)

    # -- erase -------------------------------------------------------------------------------
    def erase_patient(self, code: str) -> EraseSummary:
        """Delete a patient with all sites, sessions, photos (rows and files) and results.

        One audit entry ("patient.erase", with counts and the old surrogate id only) remains.
        Rows go first, in one transaction; files after, so a crash in between leaves only
        orphan files, which ``check(repair=True)`` removes.
        """

        def tx(s: Session) -> tuple[EraseSummary, list[tuple[str, str]]]:
            p = self._patient(s, code)
            site_ids = s.scalars(select(Site.id).where(Site.patient_id == p.id)).all()
            sess_ids = s.scalars(select(TreatmentSession.id).where(TreatmentSession.site_id.in_(site_ids))).all() \
                if site_ids else []
            photos = s.execute(select(Photo.id, Photo.sha256, Photo.stored_path)
                               .where(Photo.session_id.in_(sess_ids))).all() if sess_ids else []
            photo_ids = [r[0] for r in photos]
            n_analyses = s.scalar(select(func.count(AnalysisResult.id))
                                  .where(AnalysisResult.photo_id.in_(photo_ids))) if photo_ids else 0
            n_comp = s.scalar(select(func.count(ComparisonResult.id)).where(
                or_(ComparisonResult.session_a_id.in_(sess_ids), ComparisonResult.session_b_id.in_(sess_ids)))) \
                if sess_ids else 0
            # explicit deletes, children first (does not rely on ON DELETE CASCADE alone)
            if sess_ids:
                s.execute(delete(ComparisonResult).where(or_(ComparisonResult.session_a_id.in_(sess_ids),
                                                             ComparisonResult.session_b_id.in_(sess_ids))))
            if photo_ids:
                s.execute(delete(AnalysisResult).where(AnalysisResult.photo_id.in_(photo_ids)))
                s.execute(delete(Photo).where(Photo.id.in_(photo_ids)))
            if sess_ids:
                s.execute(delete(TreatmentSession).where(TreatmentSession.id.in_(sess_ids)))
            if site_ids:
                s.execute(delete(Site).where(Site.id.in_(site_ids)))
            s.execute(delete(Patient).where(Patient.id == p.id))
            summary = EraseSummary(p.id, len(site_ids), len(sess_ids), len(photo_ids), int(n_analyses or 0),
                                   int(n_comp or 0), 0)
            self._audit(s, "patient.erase", patient_id=p.id, entity="patient", entity_id=p.id,
                        sites=summary.sites, sessions=summary.sessions, photos=summary.photos,
                        analyses=summary.analyses, comparisons=summary.comparisons)
            return summary, [(r[1], r[2]) for r in photos]

        summary, files = self._write(tx)
        removed = 0
        for sha, rel in files:
            if sha in self.files.in_flight(grace_s=DEFAULT_GRACE_S):
                continue  # the same bytes are being imported right now (for someone else)
            used = self._read(lambda s, sha=sha: s.scalar(select(Photo.id).where(Photo.sha256 == sha)))
            if used is None and self.files.delete(rel):
                removed += 1
        self._vacuum_deleted()
        log.info("erased patient %d: %d photos, %d files removed", summary.patient_id, summary.photos, removed)
        return EraseSummary(**{**summary.__dict__, "files_removed": removed})

    # -- remove one photo ---------------------------------------------------------------------
    @staticmethod
    def comparison_uses_photo(result: dict[str, Any] | None, role: str, photo_id: int, name: str | None) -> bool:
        """Whether a saved comparison may have used photo ``photo_id`` (named ``name``) as its ``role``.

        ``role`` is "baseline" (the photo's session is the comparison's first) or "followup".
        The app records the photos a comparison used in ``result["photos"]``: their ids
        (``baseline_id``, ``followup_id``; since session 39) and file names. With an id the
        answer is exact; with a file name only, a comparison is counted as using every photo of
        that name; with neither (a comparison saved without its photos) it may have used any.
        """
        if role not in ("baseline", "followup"):
            raise ValueError(f"role must be 'baseline' or 'followup', got {role!r}")
        used = (result or {}).get("photos") if isinstance(result, dict) else None
        if not isinstance(used, dict):
            return True
        pid = used.get(f"{role}_id")
        if isinstance(pid, int) and not isinstance(pid, bool):
            return pid == int(photo_id)
        used_name = used.get(role)
        if isinstance(used_name, str):
            return used_name == name
        return True

    def remove_photo(self, photo_id: int, *, code: str | None = None) -> RemoveSummary:
        """Take one photo out of its session: its row, analyses and file, and the comparisons made with it.

        For a photo imported by mistake (the other leg, blurred, another patient's). The
        comparisons of its session that used it (:meth:`comparison_uses_photo`) are deleted, so
        that they are made again with the session's other photos; comparisons that used another
        photo of the session, the session itself (date, notes), the other photos, sessions and
        patients are left as they are. The file leaves the photo folder only when no record
        refers to its bytes and no import of the same bytes is under way. One audit entry
        ("photo.remove", ids and counts only) is written.

        Parameters
        ----------
        photo_id : int
            The photo (``PhotoRecord.id``): any integer (a NumPy integer too); not a bool, a
            float or a string.
        code : str, optional
            The patient the photo must belong to (a check against removing another patient's
            photo by a mistyped id).

        Raises
        ------
        StoreError
            No such photo, or it belongs to another patient than ``code``.
        TypeError
            ``photo_id`` is not an integer.
        """
        if isinstance(photo_id, bool) or not isinstance(photo_id, numbers.Integral):
            raise TypeError(f"photo_id must be an integer (a photo's id), got {type(photo_id).__name__} {photo_id!r}")
        photo_id = int(photo_id)
        want = _clean_text(code, "patient code", 64) if code is not None else None

        def tx(s: Session) -> tuple[RemoveSummary, str, str]:
            row = s.execute(select(Photo, Site.patient_id, Patient.code)
                            .join(TreatmentSession, TreatmentSession.id == Photo.session_id)
                            .join(Site, Site.id == TreatmentSession.site_id)
                            .join(Patient, Patient.id == Site.patient_id).where(Photo.id == photo_id)).first()
            if row is None:
                raise StoreError(f"There is no photo with id {photo_id}: nothing was removed.")
            ph, patient_id, owner = row
            if want is not None and owner != want:
                raise StoreError(f"Photo {photo_id} is not a photo of patient {want!r}: nothing was removed.")
            sess = ph.session_id
            comps = s.execute(select(ComparisonResult.id, ComparisonResult.session_a_id, ComparisonResult.result)
                              .where(or_(ComparisonResult.session_a_id == sess,
                                         ComparisonResult.session_b_id == sess))).all()
            gone = [cid for cid, a, res in comps
                    if self.comparison_uses_photo(res, "baseline" if a == sess else "followup", ph.id, ph.original_name)]
            n_analyses = s.scalar(select(func.count(AnalysisResult.id)).where(AnalysisResult.photo_id == ph.id))
            if gone:
                s.execute(delete(ComparisonResult).where(ComparisonResult.id.in_(gone)))
            s.execute(delete(AnalysisResult).where(AnalysisResult.photo_id == ph.id))
            sha, rel = ph.sha256, ph.stored_path
            s.execute(delete(Photo).where(Photo.id == ph.id))
            left = s.scalar(select(func.count(Photo.id)).where(Photo.session_id == sess))
            self._audit(s, "photo.remove", patient_id=patient_id, entity="photo", entity_id=int(photo_id),
                        session_id=sess, analyses=int(n_analyses or 0), comparisons=len(gone))
            return (RemoveSummary(int(photo_id), sess, patient_id, int(n_analyses or 0), len(gone), int(left or 0), False),
                    sha, rel)

        summary, sha, rel = self._write(tx)
        removed = False
        if sha not in self.files.in_flight(grace_s=DEFAULT_GRACE_S):
            used = self._read(lambda s: s.scalar(select(Photo.id).where(Photo.sha256 == sha)))
            removed = used is None and self.files.delete(rel)
        self._vacuum_deleted()
        log.info("removed photo %d from session %d: %d analyses, %d comparisons", summary.photo_id,
                 summary.session_id, summary.analyses, summary.comparisons)
        return RemoveSummary(**{**summary.__dict__, "file_removed": bool(removed)})

    def _vacuum_deleted(self) -> None:
        """Push deleted rows out of the SQLite write-ahead log (secure_delete zeroes the pages)."""
        if self.dialect != "sqlite":
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.rollback()
        except OperationalError:
            log.debug("checkpoint after erase skipped (database busy)")

    # -- export ------------------------------------------------------------------------------
    def export_patient(self, code: str, out: str | os.PathLike, *, include_identity: bool = False) -> ExportSummary:
        """Write a ZIP with the patient's photos (personal metadata stripped), results.json and results.csv.

        The patient appears by code only, unless ``include_identity`` adds name and date of birth.
        The ZIP is written to a temporary name and renamed, so a failed export leaves nothing.
        """
        out = Path(out)
        if out.suffix.lower() != ".zip":
            raise ValueError(f"out must be a .zip file, got {str(out)!r}")

        def q(s: Session):
            p = self._patient(s, code)
            sites = s.scalars(select(Site).where(Site.patient_id == p.id).order_by(Site.label)).all()
            body = []
            for site in sites:
                sessions = s.scalars(select(TreatmentSession).where(TreatmentSession.site_id == site.id)
                                     .order_by(TreatmentSession.session_date)).all()
                sess_out = []
                for t in sessions:
                    photos = s.scalars(select(Photo).where(Photo.session_id == t.id).order_by(Photo.id)).all()
                    ph_out = []
                    for ph in photos:
                        analyses = s.scalars(select(AnalysisResult).where(AnalysisResult.photo_id == ph.id)
                                             .order_by(AnalysisResult.id)).all()
                        ph_out.append((ph, [(a.id, a.created_at, a.result) for a in analyses]))
                    sess_out.append((t, ph_out))
                body.append((site, sess_out))
            sess_ids = [t.id for _, ss in body for t, _ in ss]
            comps = s.scalars(select(ComparisonResult).where(ComparisonResult.session_a_id.in_(sess_ids))
                              .order_by(ComparisonResult.id)).all() if sess_ids else []
            return p, body, [(c.id, c.session_a_id, c.session_b_id, c.created_at, c.result) for c in comps]

        p, body, comps = self._read(q)
        patient_json: dict[str, Any] = {"code": p.code}
        if include_identity:
            patient_json.update(name=p.name, birth_date=p.birth_date.isoformat() if p.birth_date else None)
        doc: dict[str, Any] = {
            "veinscope_version": __version__,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "notice": "VeinScope measures and documents; it does not diagnose.",
            "patient": patient_json,
            "sites": [],
            "comparisons": [],
        }
        rows: list[dict[str, Any]] = []
        n_photos = n_analyses = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for site, sessions in body:
                    site_slug = _slug(site.label)
                    site_doc = {"label": site.label, "sessions": []}
                    for t, photos in sessions:
                        sess_doc = {"session_id": t.id, "date": t.session_date.isoformat(), "sclerosant": t.sclerosant,
                                    "concentration_pct": t.concentration_pct, "volume_ml": t.volume_ml,
                                    "notes": t.notes, "photos": []}
                        for ph, analyses in photos:
                            try:
                                raw = self.files.path(ph.stored_path).read_bytes()
                            except FileNotFoundError:
                                raise StoreError(f"The file of photo {ph.id} is missing; run `veinscope db check`. "
                                                 "Nothing was exported.") from None
                            clean, ext = strip_personal_metadata(raw)
                            arc = f"photos/{site_slug}/{t.session_date.isoformat()}/photo_{ph.id}{ext}"
                            zf.writestr(arc, clean)
                            n_photos += 1
                            sess_doc["photos"].append({
                                "photo_id": ph.id, "file": arc, "sha256_original": ph.sha256,
                                "capture_time": ph.capture_time.isoformat() if ph.capture_time else None,
                                "width_px": ph.width_px, "height_px": ph.height_px,
                                "analyses": [{"analysis_id": aid, "created_at": at.isoformat(), **res}
                                             for aid, at, res in analyses],
                            })
                            for aid, _, res in analyses:
                                n_analyses += 1
                                rows.extend(_csv_rows(p.code, site.label, t.session_date, ph.id, aid, res))
                        site_doc["sessions"].append(sess_doc)
                    doc["sites"].append(site_doc)
                # the photos' original file names (which a clinic may have made from the patient's name)
                # go with the identity only, as they do for the photos themselves
                doc["comparisons"] = [{"comparison_id": cid, "session_a": a, "session_b": b,
                                       "created_at": at.isoformat(),
                                       "result": res if include_identity or not isinstance(res, dict)
                                       else {k: v for k, v in res.items() if k != "photos"}}
                                      for cid, a, b, at, res in comps]
                zf.writestr("results.json", json.dumps(doc, indent=2, ensure_ascii=False))
                zf.writestr("results.csv", _csv_text(rows))
                zf.writestr("README.txt", _EXPORT_README)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

        def audit(s: Session) -> None:
            self._audit(s, "patient.export", patient_id=p.id, entity="patient", entity_id=p.id, photos=n_photos,
                        with_identity=include_identity)

        self._write(audit)
        log.info("exported patient %d: %d photos", p.id, n_photos)
        return ExportSummary(out, n_photos, n_analyses, len(comps))

    # -- consistency -------------------------------------------------------------------------
    def check(self, *, repair: bool = False, verify_hashes: bool = True, grace_s: float = DEFAULT_GRACE_S) -> CheckReport:
        """Compare photo rows with photo files.

        With ``repair``: delete leftovers of interrupted writes and files no row refers to
        (unless an import is writing them right now), and delete rows whose file is missing
        (their analyses go with them; each deletion is audited). Damaged files are reported,
        never deleted: restore them from a backup.
        """
        in_flight = self.files.in_flight(grace_s=grace_s)
        temporaries = self.files.stale_temporaries(grace_s=grace_s)
        stored = self.files.stored_files()
        rows = self._read(lambda s: s.execute(select(Photo.id, Photo.sha256, Photo.stored_path)).all())
        referenced = {rel for _, _, rel in rows}
        missing, corrupt = [], []
        for pid, sha, rel in rows:
            if rel not in stored:
                missing.append(pid)
            elif verify_hashes and self.files.file_sha256(rel) != sha:
                corrupt.append(pid)
        orphans = sorted(rel for rel in stored if rel not in referenced
                         and rel.split("/")[-1].split(".")[0] not in in_flight)
        repaired: dict[str, int] = {}
        if repair:
            for p in temporaries:
                p.unlink(missing_ok=True)
            repaired["leftovers removed"] = len(temporaries)
            # an orphan may have been committed since we listed rows: look again before deleting
            fresh = self._read(lambda s: set(s.scalars(select(Photo.stored_path)).all()))
            n = 0
            for rel in orphans:
                if rel not in fresh and rel.split("/")[-1].split(".")[0] not in self.files.in_flight(grace_s=grace_s):
                    n += self.files.delete(rel)
            repaired["orphan files removed"] = n
            if missing:
                def tx(s: Session) -> int:
                    gone = 0
                    for pid in missing:
                        ph = s.get(Photo, pid)
                        if ph is None or self.files.path(ph.stored_path).is_file():
                            continue
                        sess = ph.session_id
                        owner = s.scalar(select(Site.patient_id).join(TreatmentSession, TreatmentSession.site_id == Site.id)
                                         .where(TreatmentSession.id == sess))
                        s.execute(delete(AnalysisResult).where(AnalysisResult.photo_id == pid))
                        s.delete(ph)
                        self._audit(s, "photo.remove_missing", patient_id=owner, entity="photo", entity_id=pid,
                                    session_id=sess)  # the others' numbers are kept (photo_numbers)
                        gone += 1
                    return gone

                repaired["rows without file removed"] = self._write(tx)
            log.info("store repaired: %s", repaired)
        return CheckReport(len(rows), len(stored), tuple(missing), tuple(corrupt), tuple(orphans),
                           tuple(p.name for p in temporaries), len(in_flight), repaired)

    # -- demo --------------------------------------------------------------------------------
    def load_demo_patient(
        self,
        folder: str | os.PathLike,
        *,
        code: str = "DEMO-0001",
        baseline_date: date | str = date(2026, 1, 5),
        analyze: bool | Callable[..., Any] = True,
    ) -> list[ImportResult]:
        """Import a folder of photos as a demo patient; running it again changes nothing.

        Layout: ``folder/demo_patient/<site>/<photo>`` (as in ``sample_images/``), or
        ``folder/<site>/<photo>``, or photos directly in ``folder`` (one site named after it).
        Files named ``<photo stem>_<anything>`` (truth masks and the like) are not photos.
        A ``<stem>_truth.json`` beside a photo may give ``px_per_mm`` (the scale) and
        ``params.days_since_baseline`` or ``session`` (the session date after ``baseline_date``);
        without it sessions follow the file order, 5 weeks apart. A photo whose sidecar says it
        shows the calibration card (``card``, as the generator's truth does) is measured on its
        card, as a practitioner's photo is: its ``px_per_mm`` is not entered as a scale by hand
        (session 38: the demo read "Scale entered by hand" where nobody entered one).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"folder must be an existing folder of photos, got {str(folder)!r}")
        root = folder / "demo_patient" if (folder / "demo_patient").is_dir() else folder
        sites = [(d.name.replace("_", " "), _photo_files(d)) for d in sorted(root.iterdir()) if d.is_dir()]
        sites = [(label, photos) for label, photos in sites if photos]
        if not sites:
            sites = [(root.name.replace("_", " "), _photo_files(root))]
        if not any(photos for _, photos in sites):
            raise ValueError(f"folder {str(folder)!r} holds no photos")
        base = parse_date(baseline_date, "baseline_date")
        if not self.has_patient(code):
            try:
                self.add_patient(code)
            except PatientExistsError:
                pass  # another process added it meanwhile
        out = []
        for label, photos in sites:
            for k, path in enumerate(photos):
                meta = _sidecar(path)
                px = meta.get("px_per_mm")
                px = float(px) if isinstance(px, (int, float)) and px > 0 and not meta.get("card") else None
                days = (meta.get("params") or {}).get("days_since_baseline")
                if not isinstance(days, int):
                    days = 35 * int(meta["session"]) if isinstance(meta.get("session"), int) else 35 * k
                day = base + timedelta(days=days)
                try:
                    out.append(self.import_photo(code, label, day, path, px_per_mm=px, analyze=analyze))
                except (PhotoError, DuplicatePhotoError) as exc:
                    out.append(ImportResult("failed", path.name, str(exc)))
        return out


_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif")


def _photo_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _PHOTO_SUFFIXES)
    stems = {p.stem for p in files}
    return [p for p in files if not any(p.stem.startswith(f"{s}_") for s in stems if s != p.stem)]


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_name(f"{path.stem}_truth.json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _default_analyze(photo, *, px_per_mm=None):
    from veinscope.pipeline import analyze

    return analyze(photo, px_per_mm=px_per_mm)


def _source_label(src) -> str:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "photo"
    return Path(src).name


def _read_source(source, original_name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = original_name or "photo"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = original_name or path.name
        if not path.exists():
            raise PhotoError(f"The file {path.name!r} does not exist. Check the path and try again.")
        if path.is_dir():
            raise PhotoError(f"{path.name!r} is a folder, not a photo. Choose a photo file.")
        data = path.read_bytes()
    else:
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")
    if not data:
        raise PhotoError(f"The file {name!r} is empty (0 bytes). Copy the photo again from the phone or camera.")
    return data, name


def _slug(text: str) -> str:
    s = "".join(c if c.isalnum() else "_" for c in text.strip().lower())
    return "_".join(filter(None, s.split("_")))[:60] or "site"


_CSV_FIELDS = ["patient_code", "site", "session_date", "photo_id", "analysis_id", "version", "px_per_mm", "class",
               "coverage_pct", "area_mm2", "length_mm", "diameter_mm_mean", "diameter_mm_median", "diameter_mm_p90",
               "segments"]


def _csv_rows(code: str, site: str, day: date, photo_id: int, analysis_id: int, res: dict) -> list[dict[str, Any]]:
    rows = []
    classes = res.get("classes") or {}
    for cls in _CLASSES:
        c = classes.get(cls)
        if not isinstance(c, dict):
            continue
        d = c.get("diameter_mm") if isinstance(c.get("diameter_mm"), dict) else {}
        rows.append({"patient_code": code, "site": site, "session_date": day.isoformat(), "photo_id": photo_id,
                     "analysis_id": analysis_id, "version": res.get("version"), "px_per_mm": res.get("px_per_mm"),
                     "class": cls, "coverage_pct": c.get("coverage_pct"), "area_mm2": c.get("area_mm2"),
                     "length_mm": c.get("length_mm"), "diameter_mm_mean": d.get("mean"),
                     "diameter_mm_median": d.get("median"), "diameter_mm_p90": d.get("p90"),
                     "segments": c.get("segments")})
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


_EXPORT_README = """VeinScope export
================
results.json  sites, sessions (date, treatment notes), photos and every saved analysis and comparison
results.csv   one row per analysis and vessel class: coverage_pct, area_mm2, length_mm, diameter_mm (mean,
              median, p90), segments; empty where the photo had no scale
photos/       the photos, picture data unchanged; GPS position, camera serial numbers, owner names,
              comments and other personal metadata removed

VeinScope measures and documents; it does not diagnose.
"""
