"""Glue between the Streamlit app and the library (this module never imports streamlit).

The app (``app.py``) keeps to widgets and display; every step it takes is one call here:
opening the store and loading the demo patient, importing uploads, the overlay of a stored
photo, the comparison of two sessions, the progress table of a site and its exports.

Pictures the store does not keep (the class masks behind an overlay, the change map and the
aligned follow-up of a comparison) are kept in ``<data dir>/derived/`` so that a photo is
analysed once and two sessions are compared once, also across restarts of the app. Everything
stays in the data folder on this computer; nothing is logged about patients.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from veinscope.report.pdf import IMPROVEMENT_NOTE

__all__ = [
    "CLASSES",
    "CLASS_INFO",
    "CompareView",
    "DEMO_CODE",
    "DISPLAY_SIDE_PX",
    "DerivedCache",
    "IMPROVEMENT_NOTE",
    "MAX_UPLOAD_MB",
    "NotComparable",
    "PHOTO_TYPES",
    "PhotoView",
    "UploadOutcome",
    "baseline_photos_note",
    "cached_comparison",
    "calibration_status",
    "check_upload",
    "class_table",
    "compare_sessions",
    "compare_wait_note",
    "comparison_class_table",
    "comparison_summary",
    "demo_folder",
    "erase_patient",
    "import_uploads",
    "load_demo",
    "missing_comparisons",
    "mixed_baselines",
    "open_app_store",
    "overlay_image",
    "overlay_jpeg",
    "photo_record",
    "photo_view",
    "progress_chart_png",
    "progress_csv",
    "progress_rows",
    "progress_table",
    "registration_status",
    "remove_photo",
    "session_photo",
    "sessions_without_photos",
    "site_report_pdf",
    "swipe_image",
    "trace",
]

log = logging.getLogger(__name__)

DEMO_CODE = "DEMO-0001"
#: Largest photo the app accepts, in megabytes (also ``server.maxUploadSize`` in .streamlit/config.toml).
MAX_UPLOAD_MB = 50
#: File types the uploader offers (HEIC/HEIF straight from an iPhone).
PHOTO_TYPES = ("jpg", "jpeg", "heic", "heif", "png", "tif", "tiff", "webp", "bmp")
#: Long side of pictures sent to the browser (the full photo stays on disk). At most Streamlit's
#: widest image (1460 px), so that the JPEG made here is sent as it is, not decoded and re-encoded.
DISPLAY_SIDE_PX = 1400
#: Photos whose photo, masks and figures stay in memory after import (the one just imported is shown at once).
RECENT_VIEWS = 2

CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm")
#: Plain name and meaning of each vessel class, for tables and reports.
CLASS_INFO = {
    "red_telangiectasia": ("Red thread veins", "red spider/thread veins under 1 mm wide (in the skin)"),
    "blue_telangiectasia": ("Blue thread veins", "blue/purple thread veins under 1 mm wide (in the skin)"),
    "reticular": ("Reticular veins", "blue-green feeder veins 1-3 mm wide, just under the skin"),
    "over_3mm": ("Over 3 mm", "veins wider than 3 mm: not for microsclerotherapy; consider referral"),
    "total": ("All vessels", "all vessels found on the skin"),
}


#: Environment variable naming a file that :func:`trace` appends timing marks to (unset: no marks).
TRACE_ENV = "VEINSCOPE_APP_TRACE"


def trace(event: str) -> None:
    """Append ``<unix time, s> <event>\t<process user CPU s> <process system CPU s> <thread CPU s>
    <page faults>`` to the file in
    ``$VEINSCOPE_APP_TRACE`` (nothing when unset).

    For timing the app step by step against the browser's clock (same machine, same wall clock);
    the CPU times (the whole server process, and the calling thread) show whether a slow step
    waited for the cores or worked. ``event`` is a fixed step name: never a file name, patient
    code or figure.
    """
    path = os.environ.get(TRACE_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                import resource  # Unix; only when tracing

                cpu, faults = os.times(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                f.write(f"{time.time():.4f} {event}\t{cpu.user:.3f} {cpu.system:.3f} {time.thread_time():.3f} {faults}\n")
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# store and demo patient
def open_app_store(location: str | os.PathLike | None = None):
    """The patient store the app uses: ``$VEINSCOPE_DATABASE_URL``, else SQLite in ``$VEINSCOPE_DATA_DIR``."""
    from veinscope.store import open_store

    return open_store(location)


def demo_folder(app_dir: str | os.PathLike | None = None) -> Path | None:
    """Folder of the demo patient's photos (``sample_images/demo_patient``), or None when absent."""
    env = os.environ.get("VEINSCOPE_DEMO_DIR")
    candidates = [Path(env)] if env else []
    if app_dir is not None:
        candidates.append(Path(app_dir) / "sample_images" / "demo_patient")
    candidates.append(Path.cwd() / "sample_images" / "demo_patient")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def load_demo(store, folder: str | os.PathLike, cache: DerivedCache,
              progress: Callable[[int, Any], None] | None = None) -> list:
    """Load the demo patient (idempotent: photos already stored are left alone).

    A demo folder without photos loads nothing (logged): the app starts without the demo patient.
    """
    folder = Path(folder)
    if not any(p.suffix.lower().lstrip(".") in PHOTO_TYPES for p in folder.rglob("*") if p.is_file()):
        log.warning("the demo folder holds no photos: no demo patient")
        return []
    results = store.load_demo_patient(folder, code=DEMO_CODE, analyze=cache.analyzer())
    if progress is not None:
        for i, r in enumerate(results):
            progress(i, r)
    return results


# ----------------------------------------------------------------------------------------------
# derived pictures kept beside the store
class DerivedCache:
    """Class masks and comparison pictures kept in ``<data dir>/derived`` (keyed by content).

    Masks are written in a background thread (an import does not wait for the disk); reading a
    mask that is still being written waits for it, and :meth:`flush` waits for all. The last
    photos imported are also kept in memory (:meth:`remember`, :meth:`recent`), so the overlay
    of a photo just analysed is shown without decoding it and reading its masks again.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only, as the photo folder
        self._lock = threading.Lock()
        self._pending: dict[str, Future] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._display_pool: ThreadPoolExecutor | None = None
        self._views: OrderedDict[int, PhotoView] = OrderedDict()

    @classmethod
    def for_store(cls, store) -> DerivedCache:
        return cls(Path(store.data_dir) / "derived")

    @staticmethod
    def rgb_key(rgb: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(str(rgb.shape).encode())
        h.update(np.ascontiguousarray(rgb).data)
        return h.hexdigest()[:32]

    def _write(self, path: Path, data: bytes) -> None:
        """``data`` in ``path`` at once (a temporary file renamed; removed when writing fails, e.g. a
        full disk), readable by the owner only (0600, as the photos: pictures of a patient's skin)."""
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- class masks ---------------------------------------------------------------------------
    @staticmethod
    def _encode_masks(labels: np.ndarray, skin: np.ndarray) -> bytes:
        """Labels (codes 0-127) and skin packed in one 8-bit PNG (zlib level 1): 0.1 s for 12 MP."""
        import cv2

        packed = np.asarray(labels, dtype=np.uint8) | (np.asarray(skin, dtype=bool).view(np.uint8) << 7)
        ok, buf = cv2.imencode(".png", packed, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
        if not ok:  # pragma: no cover - only on a broken OpenCV build
            raise OSError("the PNG encoder failed")
        return buf.tobytes()

    def _save_now(self, key: str, labels: np.ndarray, skin: np.ndarray) -> None:
        try:
            self._write(self.root / f"masks_{key}.png", self._encode_masks(labels, skin))
        except Exception as exc:  # the photo is then simply analysed again when viewed
            log.warning("class masks could not be kept (%s)", type(exc).__name__)

    def save_masks(self, key: str, labels: np.ndarray, skin: np.ndarray) -> None:
        """Keep the class masks under ``key`` (written in the background; the arrays are not modified)."""
        if labels.shape != skin.shape or (labels.size and int(labels.max()) > 127):
            raise ValueError(f"labels (codes 0-127) and skin must have one shape, got {labels.shape} and {skin.shape}")
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veinscope-masks")
            fut = self._writer.submit(self._save_now, key, labels, skin)
            self._pending[key] = fut
        fut.add_done_callback(lambda f, k=key: self._done(k, f))

    def save_masks_of(self, rgb: np.ndarray, labels: np.ndarray, skin: np.ndarray) -> None:
        """Keep the masks of photo ``rgb``: its key (a hash of 36 MB for 12 MP) is computed in the background too."""
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veinscope-masks")
            fut = self._writer.submit(lambda: self._save_now(self.rgb_key(rgb), labels, skin))
            self._pending[f"rgb:{id(rgb)}"] = fut
        fut.add_done_callback(lambda f, k=f"rgb:{id(rgb)}": self._done(k, f))

    def _background(self) -> ThreadPoolExecutor:
        """A thread for display work done while the store writes (not the mask writer's queue)."""
        with self._lock:
            if self._display_pool is None:
                self._display_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veinscope-display")
            return self._display_pool

    def _done(self, key: str, fut: Future) -> None:
        with self._lock:
            if self._pending.get(key) is fut:
                del self._pending[key]

    def flush(self) -> None:
        """Wait until every mask handed to :meth:`save_masks` is on disk."""
        with self._lock:
            pending = list(self._pending.values())
        for fut in pending:
            fut.result()

    def load_masks(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The class masks kept under ``key`` (labels uint8, skin bool), or None (then: analyse again)."""
        import cv2

        self.flush()  # a mask of this photo may still be on its way to the disk
        path = self.root / f"masks_{key}.png"
        if path.is_file():
            try:
                packed = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
                if packed is not None and packed.ndim == 2 and packed.dtype == np.uint8:
                    return packed & np.uint8(127), packed >= 128
            except (OSError, cv2.error):
                pass
            return None  # damaged: analyse again
        legacy = self.root / f"masks_{key}.npz"  # written by earlier versions
        if not legacy.is_file():
            return None
        try:
            with np.load(legacy) as z:
                return z["labels"], z["skin"]
        except Exception:  # damaged: analyse again
            return None

    def drop_masks(self, key: str) -> None:
        self.flush()
        for suffix in (".png", ".npz"):
            (self.root / f"masks_{key}{suffix}").unlink(missing_ok=True)

    # -- photos just imported ------------------------------------------------------------------
    def remember(self, view: PhotoView) -> None:
        """Keep ``view`` in memory (the last :data:`RECENT_VIEWS` photos)."""
        with self._lock:
            self._views[view.photo_id] = view
            self._views.move_to_end(view.photo_id)
            while len(self._views) > RECENT_VIEWS:
                self._views.popitem(last=False)

    def recent(self, photo_id: int) -> PhotoView | None:
        with self._lock:
            return self._views.get(photo_id)

    def forget(self, photo_ids: Iterable[int] | None = None) -> None:
        """Drop photos from memory (all when ``photo_ids`` is None)."""
        with self._lock:
            if photo_ids is None:
                self._views.clear()
            else:
                for pid in photo_ids:
                    self._views.pop(pid, None)

    def analyzer(self, keep: dict | None = None) -> Callable[..., Any]:
        """``analyze(photo, px_per_mm=...)`` that also keeps the class masks for overlays.

        With ``keep`` (a dict), the photo, its analysis and masks are also put there
        (``keep["photo"]``, ``keep["analysis"]``) for the caller to show at once.
        """

        def run(photo, *, px_per_mm=None):
            from veinscope.errors import VeinScopeError
            from veinscope.pipeline import analyze

            trace("analyze start")
            try:
                a = analyze(photo, px_per_mm=px_per_mm)
            except VeinScopeError:  # a photo problem the store reports itself ("not analysed: ...")
                raise
            except Exception:  # a fault of the analysis, not of the photo: the upload's message says so
                if keep is not None:
                    keep["analysis_failed"] = True
                raise
            trace("analyze end")
            if keep is not None:
                keep["analysed"] = True
            rgb = getattr(photo, "rgb", None)
            if rgb is not None and a.labels.shape == rgb.shape[:2]:
                if keep is not None:  # the display-sized copy is made while the store saves the photo
                    keep.update(photo=photo, analysis=a,
                                display=self._background().submit(_display_base, rgb, a.labels, a.skin,
                                                                  DISPLAY_SIDE_PX))
                self.save_masks_of(rgb, a.labels, a.skin)
            return a

        return run

    def folder(self, name: str) -> Path:
        return self.root / name

    def clear(self) -> None:
        self.flush()
        self.forget()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)


def erase_patient(store, cache: DerivedCache, code: str):
    """Erase a patient from the store *and* the pictures the app derived from their photos.

    The class masks and the comparison pictures (which show the photos) in ``<data dir>/derived``
    go first (after any mask still being written), and the photos kept in memory, then
    :meth:`Store.erase_patient` removes records and photo files.
    """
    _drop_derived(store, cache, store.list_photos(code=code))
    return store.erase_patient(code)


def _drop_derived(store, cache: DerivedCache, records) -> None:
    """What the app derived from photos ``records``: the photos kept in memory, their class masks
    and every comparison picture made with them (kept pictures and refusals, ``cmp_*``)."""
    from veinscope.io import load_photo

    cache.flush()
    records = list(records)
    cache.forget([rec.id for rec in records])
    for rec in records:
        try:
            cache.drop_masks(cache.rgb_key(load_photo(store.read_photo(rec.id)).rgb))
        except Exception:  # a missing or damaged photo file has no masks to find
            pass
        for d in cache.root.glob(f"cmp_*{rec.sha256[:20]}*"):
            shutil.rmtree(d, ignore_errors=True)


def remove_photo(store, cache: DerivedCache, photo_id: int, *, code: str | None = None):
    """Take one photo out of its session, with everything the app derived from it.

    The photo's class masks and every comparison picture made with it (kept pictures and
    refusals, ``<data dir>/derived/cmp_*``) go first, and the photo kept in memory; then
    :meth:`Store.remove_photo` removes its record, analyses, file and the saved comparisons
    that used it. Comparisons of the session made with its other photos stay; the next
    comparison of the session is made with them (:func:`compare_sessions`).
    Returns the store's :class:`~veinscope.store.RemoveSummary`.
    """
    rec = store.get_photo(photo_id)  # unknown id: StoreError before anything is touched
    if code is not None and rec.id not in {p.id for p in store.list_photos(code=code)}:
        from veinscope.store import StoreError

        raise StoreError(f"Photo {photo_id} is not a photo of patient {code!r}: nothing was removed.")
    _drop_derived(store, cache, [rec])
    return store.remove_photo(rec.id, code=code)


# ----------------------------------------------------------------------------------------------
# uploads
def check_upload(name: str, size_bytes: int, *, max_mb: float = MAX_UPLOAD_MB) -> str | None:
    """A message when an upload cannot be taken (too large, empty, wrong type), else None."""
    ext = Path(name or "").suffix.lower().lstrip(".")
    if size_bytes <= 0:
        return f"{name}: the file is empty. Copy the photo again from the phone or camera."
    if size_bytes > max_mb * 1024 * 1024:
        return (f"{name}: {size_bytes / 1024 / 1024:.0f} MB is more than the {max_mb:.0f} MB limit. "
                "Send the photo from the phone at 'actual size' (not a video or a RAW file).")
    if ext not in PHOTO_TYPES:
        return (f"{name}: .{ext or '?'} files are not photos VeinScope reads. "
                "Use JPEG or HEIC straight from the phone (PNG, TIFF, WebP and BMP also work).")
    return None


@dataclass(frozen=True)
class UploadOutcome:
    name: str
    ok: bool
    message: str
    photo_id: int | None = None
    #: what the analysis found wrong with the photo (too dark, blurred, too far...), to show at once:
    #: a green "imported" hid them until the photo was chosen below (the scale's absence is left out:
    #: the calibration status says it)
    warnings: tuple[str, ...] = ()


def _photo_warnings(analysis) -> tuple[str, ...]:
    """The analysis' warnings worth showing at import (not the missing scale)."""
    return tuple(w for w in getattr(analysis, "warnings", ()) or () if not w.startswith("No scale"))


def import_uploads(store, cache: DerivedCache, code: str, site: str, session_date: date | str,
                   files: Iterable[tuple[str, bytes]], *, px_per_mm: float | None = None,
                   progress: Callable[[int, UploadOutcome], None] | None = None) -> list[UploadOutcome]:
    """Import uploaded photos ``(name, bytes)`` into a session; each is analysed once.

    Never raises for a bad photo: the outcome carries the message to show.
    """
    from veinscope.errors import VeinScopeError
    from veinscope.store import StoreError

    out = []
    for i, (name, data) in enumerate(files):
        problem = check_upload(name, len(data))
        if problem is not None:
            res = UploadOutcome(name, False, problem)
        else:
            try:
                kept: dict[str, Any] = {}
                trace("import start")
                r = store.import_photo(code, site, session_date, data, original_name=name, px_per_mm=px_per_mm,
                                       analyze=cache.analyzer(kept))
                res = UploadOutcome(name, r.ok, r.message, r.photo.id if r.photo is not None else None,
                                    _photo_warnings(kept.get("analysis")) if r.ok else ())
                trace("import stored")
                if res.ok and res.photo_id is not None and kept:
                    _remember_import(store, cache, res.photo_id, name, kept)
                trace("import end")
            except (VeinScopeError, StoreError, ValueError) as exc:
                res = UploadOutcome(name, False, str(exc))
            except Exception as exc:  # never a traceback in front of the practitioner
                log.error("upload import failed (%s)", type(exc).__name__)  # no file names: they may identify
                res = UploadOutcome(name, False, _import_failure_message(name, kept))
        out.append(res)
        if progress is not None:
            progress(i, res)
    return out


def _import_failure_message(name: str, kept: dict) -> str:
    """What to tell the practitioner when an import failed unexpectedly, by how far it got.

    The store analyses a photo before it saves anything, so an analysis that fails leaves this
    photo out and everything saved before as it was. Until session 32 every such failure read
    "could not be read as a photo", even when the photo was read and the analysis failed.
    """
    unchanged = "The photo was not kept; the photos and figures already saved are unchanged."
    if kept.get("analysis_failed"):
        return (f"{name}: the photo was read, but VeinScope's analysis of it failed (a fault in "
                f"VeinScope, not in the photo). {unchanged} Try importing it again; if it fails again, "
                "keep the photo and report the problem to whoever looks after VeinScope (the app's log "
                "names the error).")
    if kept.get("analysed"):
        return (f"{name}: the photo was read and analysed, but saving it failed. The photos and figures "
                "already saved are unchanged. Try importing it again (a photo already kept is recognised, "
                "not kept twice); if it fails again, report the problem to whoever looks after VeinScope "
                "(the app's log names the error).")
    return (f"{name}: this file could not be read as a photo. "
            "Use a JPEG or HEIC straight from the phone.")


def _remember_import(store, cache: DerivedCache, photo_id: int, name: str, kept: dict) -> None:
    """Keep the photo just imported in memory: its overlay is then shown without decoding it again."""
    figures = store.get_analysis(photo_id)
    a, photo = kept["analysis"], kept["photo"]
    if figures is not None:
        view = PhotoView(photo_id, name, photo.rgb, a.labels, a.skin, figures, analysed_now=True, analysis=a)
        display = kept["display"]

        def first_overlay() -> bytes:  # after the display copy, in the same thread
            view._display[("whole", DISPLAY_SIDE_PX)] = display.result()
            return _overlay_jpeg_now(view)

        # the overlay first shown (all classes, whole photo) is made while the page is laid out
        view._display[_FIRST_OVERLAY] = cache._background().submit(first_overlay)
        cache.remember(view)


# ----------------------------------------------------------------------------------------------
# one photo: figures, calibration, overlay
@dataclass(frozen=True)
class _StoredAnalysis:
    """What :func:`veinscope.report.overlay.render_overlay` needs, from stored figures and masks."""

    labels: np.ndarray
    skin: np.ndarray
    figures: dict
    px_per_mm: float | None

    def to_dict(self) -> dict:
        return self.figures


@dataclass(frozen=True)
class PhotoView:
    photo_id: int
    name: str
    rgb: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    skin: np.ndarray = field(repr=False)
    figures: dict = field(repr=False)
    analysed_now: bool = False
    #: the whole :class:`~veinscope.measure.Analysis` of a photo just imported (None otherwise): a
    #: comparison made while it is in memory does not analyse the photo again
    analysis: Any = field(default=None, repr=False, compare=False)
    #: display-sized copies (made once, on the first overlay of the whole photo)
    _display: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def px_per_mm(self) -> float | None:
        v = self.figures.get("px_per_mm")
        return float(v) if isinstance(v, (int, float)) else None


def _given_scale(figures: dict | None) -> float | None:
    """The scale typed for a photo (None when it came from the card or was absent)."""
    if not figures:
        return None
    params = figures.get("parameters") or {}
    if params.get("scale_source") == "card":
        return None
    v = figures.get("px_per_mm")
    return float(v) if isinstance(v, (int, float)) else None


def photo_record(store, photo_id: int | None):
    """The stored photo's record, or None (no id, or the photo was erased meanwhile)."""
    from veinscope.store import StoreError

    if photo_id is None:
        return None
    try:
        return store.get_photo(photo_id)
    except StoreError:  # erased meanwhile: nothing to focus on
        return None


def photo_view(store, cache: DerivedCache, photo_id: int) -> PhotoView:
    """The photo, its class masks and saved figures; analyses only when nothing was kept."""
    from veinscope.io import load_photo

    view = cache.recent(photo_id)
    if view is not None:  # just imported: photo, masks and figures are in memory
        return view
    rec = store.get_photo(photo_id)
    photo = load_photo(store.read_photo(photo_id))
    figures = store.get_analysis(photo_id)
    key = cache.rgb_key(photo.rgb)
    masks = cache.load_masks(key)
    analysed_now = False
    if masks is None or figures is None:
        a = cache.analyzer()(photo, px_per_mm=_given_scale(figures))
        masks = (a.labels, a.skin)
        if figures is None:
            figures = a.to_dict()
            store.save_analysis(photo_id, figures)
        analysed_now = True
    return PhotoView(photo_id, rec.original_name or f"photo {photo_id}", photo.rgb, masks[0], masks[1], figures,
                     analysed_now)


def _resize(img: np.ndarray, size_wh: tuple[int, int], *, labels: bool = False) -> np.ndarray:
    """Shrink a picture to ``size_wh`` (area averaging; class labels: spread, then nearest)."""
    import cv2

    if labels:
        f = max(1, int(round(img.shape[1] / size_wh[0])))
        if f > 1:  # keep thin vessels visible: spread each class before dropping pixels
            img = cv2.dilate(img, np.ones((f, f), np.uint8))
        return cv2.resize(img, size_wh, interpolation=cv2.INTER_NEAREST)
    # halve first while the picture is twice the size: OpenCV's fast path for whole factors
    while img.shape[1] >= 2 * size_wh[0] and img.shape[0] >= 2 * size_wh[1]:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (img.shape[1], img.shape[0]) == tuple(size_wh):
        return img
    return cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)


def _display_size(h: int, w: int, max_side_px: int) -> tuple[int, int] | None:
    """(width, height) no larger than ``max_side_px``, or None when the picture is small enough."""
    f = max_side_px / max(h, w)
    if f >= 1.0:
        return None
    return max(1, int(round(w * f))), max(1, int(round(h * f)))


def _display_base(rgb: np.ndarray, labels: np.ndarray, skin: np.ndarray, max_side_px: int):
    """(rgb, labels, skin) of the whole photo shrunk to ``max_side_px`` (the arrays as they are when small)."""
    size = _display_size(*labels.shape, max_side_px)
    if size is None:
        return rgb, labels, skin
    return (_resize(rgb, size), _resize(np.ascontiguousarray(labels), size, labels=True),
            _resize(np.ascontiguousarray(skin, dtype=bool).view(np.uint8), size, labels=True) > 0)


def _region(view: PhotoView, zoom: float, centre_frac: tuple[float, float], max_side_px: int):
    """(rgb, labels, skin) of the region shown, no larger than ``max_side_px`` (cached for the whole photo)."""
    m, n = view.labels.shape
    if zoom == 1.0:
        key = ("whole", max_side_px)
        have = view._display.get(key)
        if have is None:
            have = view._display[key] = _display_base(view.rgb, view.labels, view.skin, max_side_px)
        return have
    h, w = int(round(m / zoom)), int(round(n / zoom))
    cx = min(max(float(centre_frac[0]), 0.0), 1.0) * n
    cy = min(max(float(centre_frac[1]), 0.0), 1.0) * m
    x0 = int(min(max(cx - w / 2, 0), n - w))
    y0 = int(min(max(cy - h / 2, 0), m - h))
    rgb = view.rgb[y0:y0 + h, x0:x0 + w]
    labels = view.labels[y0:y0 + h, x0:x0 + w]
    skin = view.skin[y0:y0 + h, x0:x0 + w]
    size = _display_size(h, w, max_side_px)
    if size is not None:
        rgb = _resize(rgb, size)
        labels = _resize(np.ascontiguousarray(labels), size, labels=True)
        skin = _resize(np.ascontiguousarray(skin, dtype=bool).view(np.uint8), size, labels=True) > 0
    return rgb, labels, skin


def overlay_image(view: PhotoView, *, classes: Sequence[str] = CLASSES, zoom: float = 1.0,
                  centre_frac: tuple[float, float] = (0.5, 0.5), max_side_px: int = DISPLAY_SIDE_PX) -> np.ndarray:
    """The overlay of the chosen classes on a region of the photo (zoom >= 1 around ``centre_frac`` (x, y)).

    The browser gets a display-sized picture: the whole photo shrunk to ``max_side_px`` (made
    once per photo), or, zoomed in, the region cut from the full-resolution photo (shrunk only
    when still larger than ``max_side_px``). Returns an (H, W, 3) uint8 picture: the photo part
    no larger than ``max_side_px``, the legend strip beneath it (W wide, so Streamlit still sends
    it unchanged). The view's arrays are not modified (the display-sized copy is kept with it).
    """
    from veinscope.report.overlay import render_overlay
    from veinscope.segment import CLASS_CODES

    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise ValueError(f"classes must be among {CLASSES}, got {sorted(unknown)}")
    if not (1.0 <= zoom <= 16.0):
        raise ValueError(f"zoom must be between 1 and 16, got {zoom!r}")
    rgb, labels, skin = _region(view, float(zoom), centre_frac, max_side_px)
    keep = np.zeros(256, np.uint8)
    for name in classes:
        keep[CLASS_CODES[name]] = CLASS_CODES[name]
    stub = _StoredAnalysis(keep[labels], skin, view.figures, view.px_per_mm)
    return render_overlay(rgb, stub)


#: Key of the overlay made ahead for a photo just imported (all classes, whole photo, default size and quality).
_FIRST_OVERLAY = ("jpeg", CLASSES, DISPLAY_SIDE_PX, 90)


def overlay_jpeg(view: PhotoView, *, classes: Sequence[str] = CLASSES, zoom: float = 1.0,
                 centre_frac: tuple[float, float] = (0.5, 0.5), max_side_px: int = DISPLAY_SIDE_PX,
                 quality: int = 90) -> bytes:
    """:func:`overlay_image` as JPEG bytes, ready for the browser (Streamlit sends them unchanged).

    For a photo just imported, the first overlay shown (all classes, whole photo) was made in the
    background while the page was laid out: it is taken from there.
    """
    ahead = view._display.get(_FIRST_OVERLAY)
    if ahead is not None and zoom == 1.0 and (tuple(classes), max_side_px, quality) == _FIRST_OVERLAY[1:]:
        try:
            return ahead.result()
        except Exception as exc:  # made here instead
            log.warning("the overlay of an imported photo was not made ahead (%s)", type(exc).__name__)
            view._display.pop(_FIRST_OVERLAY, None)
    return _overlay_jpeg_now(view, classes=classes, zoom=zoom, centre_frac=centre_frac, max_side_px=max_side_px,
                             quality=quality)


def _overlay_jpeg_now(view: PhotoView, *, classes: Sequence[str] = CLASSES, zoom: float = 1.0,
                      centre_frac: tuple[float, float] = (0.5, 0.5), max_side_px: int = DISPLAY_SIDE_PX,
                      quality: int = 90) -> bytes:
    import cv2

    img = overlay_image(view, classes=classes, zoom=zoom, centre_frac=centre_frac, max_side_px=max_side_px)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - only on a broken OpenCV build
        raise OSError("the JPEG encoder failed")
    return buf.tobytes()


def _num(v, nd=2):
    return None if not isinstance(v, (int, float)) else round(float(v), nd)


def class_table(figures: dict) -> list[dict[str, Any]]:
    """One row per vessel class: plain name, meaning, and the figures with their units."""
    classes = figures.get("classes") or {}
    rows = []
    for cls in (*CLASSES, "total"):
        c = classes.get(cls) or {}
        d = c.get("diameter_mm") if isinstance(c.get("diameter_mm"), dict) else {}
        name, meaning = CLASS_INFO[cls]
        rows.append({
            "vessels": name,
            "coverage (% of skin)": _num(c.get("coverage_pct"), 3),
            "length (mm)": _num(c.get("length_mm"), 1),
            "area (mm²)": _num(c.get("area_mm2"), 1),
            "diameter mean (mm)": _num(d.get("mean"), 2),
            "diameter p90 (mm)": _num(d.get("p90"), 2),
            "count (segments)": c.get("segments"),
            "what it means": meaning,
        })
    return rows


def calibration_status(figures: dict) -> tuple[str, list[str]]:
    """(level, lines): level ``ok`` / ``warning`` / ``error``; lines in plain words with the fix."""
    params = figures.get("parameters") or {}
    intake = params.get("intake") or {}
    px = figures.get("px_per_mm")
    source = params.get("scale_source")
    lines = []
    if isinstance(px, (int, float)) and source == "card":
        card = intake.get("card") or {}
        tilt = card.get("tilt_deg")
        lines.append(f"Calibration card found: scale {px:.1f} px/mm"
                     + (f", card tilted {tilt:.0f}°" if isinstance(tilt, (int, float)) else "") + ".")
        level = "ok"
    elif isinstance(px, (int, float)):
        lines.append(f"Scale entered by hand: {px:.1f} px/mm.")
        level = "ok"
    else:
        lines.append("No scale: no calibration card was found and none was entered, so sizes are in pixels only. "
                     "Put the printed card flat on the skin beside the treated area, or enter the scale.")
        level = "error"
    if isinstance(px, (int, float)) and px < 6:
        level = "warning"
    warns = [w for w in figures.get("warnings") or [] if not w.startswith("No scale was given")]
    if warns and level == "ok":
        level = "warning"
    lines.extend(warns)
    return level, lines


# ----------------------------------------------------------------------------------------------
# sessions and comparisons
def session_photo(store, session_id: int):
    """The photo that stands for a session in comparisons (the first one imported), or None."""
    photos = store.list_photos(session_id=session_id)
    return min(photos, key=lambda p: p.id) if photos else None


class NotComparable(Exception):
    """The two sessions cannot be compared; the message says why in plain words."""


@dataclass(frozen=True)
class CompareView:
    figures: dict = field(repr=False)
    change_map_png: bytes = field(repr=False)
    side_by_side_png: bytes = field(repr=False)
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    computed_now: bool = False


def _png(img: np.ndarray) -> bytes:
    from veinscope.report.overlay import encode_png  # up filter, deflate level 1 (ISA-L): fast, lossless

    return encode_png(img)


def _from_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _photo_pairs(store, session_a: int, session_b: int) -> list[tuple[Any, Any]]:
    """The photo pairs that may stand for two sessions in a comparison, in the order they are tried.

    The first photo imported in each session first (:func:`session_photo`); then the baseline's
    first photo with the follow-up's later photos, then the baseline's later photos. A pair
    refused as not the same skin gives way to the next: a follow-up photo of the other leg,
    followed by the right one imported into the same session, is compared with the right one
    (until session 38 the first photo was compared for ever and refused for ever; since session
    39 a wrong photo can also be taken out: :func:`remove_photo`).
    """
    pas = sorted(store.list_photos(session_id=session_a), key=lambda p: p.id)
    pbs = sorted(store.list_photos(session_id=session_b), key=lambda p: p.id)
    return [(pa, pb) for pa in pas for pb in pbs]


def _pair_folder(cache: DerivedCache, pa, pb) -> Path:
    return cache.folder(f"cmp_{pa.sha256[:20]}_{pb.sha256[:20]}")


def _pair_refusal(cache: DerivedCache, pa, pb) -> str | None:
    try:
        return (_pair_folder(cache, pa, pb) / "refused.txt").read_text()
    except OSError:
        return None


def cached_comparison(store, cache: DerivedCache, session_a: int, session_b: int) -> CompareView | None:
    """The comparison of two sessions if it was computed before (no computing here).

    Pairs of photos refused as not comparable are passed over (:func:`_photo_pairs`).
    """
    for pa, pb in _photo_pairs(store, session_a, session_b):
        d = _pair_folder(cache, pa, pb)
        try:
            figures = json.loads((d / "comparison.json").read_text())
            return CompareView(figures, (d / "change_map.png").read_bytes(), (d / "side_by_side.png").read_bytes(),
                               _from_png((d / "before.png").read_bytes()), _from_png((d / "after.png").read_bytes()))
        except (OSError, ValueError):
            if _pair_refusal(cache, pa, pb) is None:
                return None
    return None


def refused_comparison(store, cache: DerivedCache, session_a: int, session_b: int) -> str | None:
    """The message with which the photos of two sessions were refused as not comparable, if every pair was."""
    first = None
    for pa, pb in _photo_pairs(store, session_a, session_b):
        why = _pair_refusal(cache, pa, pb)
        if why is None:
            return None
        first = first or why
    return first


def compare_sessions(store, cache: DerivedCache, session_a: int, session_b: int, *,
                     quick_check: bool = True) -> CompareView:
    """Compare session ``b`` (follow-up) with ``a`` (baseline) of the same site; kept once computed.

    The photo pairs are tried in :func:`_photo_pairs`' order until one is compared. With
    ``quick_check`` (the default) and more than one pair to try, each pair is first aligned alone (:func:`_quick_refusal`:
    :func:`veinscope.register.register` on the two photos and the baseline's kept skin mask,
    about 1-2 s for 12 MP) and refused there when the photos do not show the same skin,
    instead of after both photos were analysed again (the full comparison, 10-30 s); each
    photo is decoded once for all its pairs. A pair the check passes is compared exactly as
    without it (the same figures). Until session 39 a session of 2 photos against one of 3,
    some of the other leg, took minutes before the right pair was reached.

    Raises
    ------
    NotComparable
        Different sites, a session without photos, or photos that do not show the same skin
        (every pair of their photos, :func:`_photo_pairs`).
    """
    sa, sb = store.get_session(session_a), store.get_session(session_b)
    if sa.patient_id != sb.patient_id or sa.site_id != sb.site_id:
        raise NotComparable("These two sessions are of different sites: only photos of the same site can be compared.")
    if sa.id == sb.id:
        raise NotComparable("Choose two different sessions.")
    if sb.session_date < sa.session_date:
        sa, sb = sb, sa
    have = cached_comparison(store, cache, sa.id, sb.id)
    if have is not None:
        if store.get_comparison(sa.id, sb.id) is None:
            # kept pictures of a pair whose saved figures went with a photo of the same file name
            # (Store.remove_photo drops a comparison recorded by name only for every photo of that name)
            store.save_comparison(sa.id, sb.id, have.figures)
        return have
    pairs = _photo_pairs(store, sa.id, sb.id)
    if not pairs:
        raise NotComparable("One of the sessions has no photo yet: add a photo to it first.")
    refusals = []
    decoded: dict[int, Any] = {}  # photo id -> Photo, decoded once for all the pairs it is in
    for pa, pb in pairs:
        why = _pair_refusal(cache, pa, pb)
        if why is None and quick_check and len(pairs) > 1:  # one pair: nothing else to try, nothing to gain
            why = _quick_refusal(store, cache, pa, pb, decoded)
            if why is not None:
                _keep_refusal(cache, pa, pb, why)
        if why is None:
            try:
                return _compare_photos(store, cache, sa, sb, pa, pb, decoded=decoded)
            except NotComparable as exc:
                why = str(exc)
        refusals.append(why)
    raise NotComparable(_refusal_message(refusals[0], sa, sb, len(pairs)))


def compare_wait_note(store, session_a: int, session_b: int) -> str:
    """What the Compare page says before comparing two sessions: what it does and how long it takes.

    Measured in session 39 (BENCHMARKS.md, ``bench_compare_refusals.py``) at a load average of 9-11
    on 2 cores: one comparison 8-10 s for the demo's 2400 x 1800 photos and 27 s for 12 MP, a pair
    of photos of different places refused in 1.2-1.7 s (3.7 s for 2400 x 1800 before session 39,
    when every refusal was a whole comparison).
    """
    n_a = len(store.list_photos(session_id=session_a))
    n_b = len(store.list_photos(session_id=session_b))
    text = ("Comparing aligns the later photo onto the first and measures what changed (about 10-30 s for phone "
            "photos, longer while the computer is busy).")
    if n_a * n_b > 1:
        text += (f" These sessions hold {n_a} and {n_b} photos: the first imported of each are tried first; a pair "
                 "that does not show the same skin is set aside after a few seconds and the next pair is tried.")
    return text


def _decoded(store, photo_id: int, decoded: dict[int, Any] | None):
    """The stored photo decoded (:func:`veinscope.io.load_photo` of its bytes), once per ``decoded`` memo."""
    from veinscope.io import load_photo

    if decoded is not None and photo_id in decoded:
        return decoded[photo_id]
    photo = load_photo(store.read_photo(photo_id))
    if decoded is not None:
        decoded[photo_id] = photo
    return photo


def _keep_refusal(cache: DerivedCache, pa, pb, why: str) -> None:
    d = _pair_folder(cache, pa, pb)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only, as the pictures beside it
    cache._write(d / "refused.txt", why.encode())  # not offered again for the same two photos


def _kept_skin(cache: DerivedCache, kept, rgb: np.ndarray) -> np.ndarray | None:
    """The skin mask of a photo's analysis: from memory, else the masks kept at import (None when neither)."""
    if kept is not None:
        return kept.skin
    masks = cache.load_masks(cache.rgb_key(rgb))
    return None if masks is None or masks[1].shape != rgb.shape[:2] else masks[1]


def _quick_refusal(store, cache: DerivedCache, pa, pb, decoded: dict[int, Any] | None = None) -> str | None:
    """Why photos ``pa`` (baseline) and ``pb`` cannot be compared, found by aligning them alone; None when they align.

    The alignment :func:`veinscope.compare.compare` makes first (:func:`veinscope.register.register`
    at its working size of 1000 px, with the baseline's skin mask kept at import and the scale of
    its analysis), without the two analyses the comparison makes before it (each 2-10 s): a photo
    of another leg is refused at the cost of the alignment alone. Anything but a refusal of the
    alignment (a photo problem, a fault) is left to the full comparison.
    """
    from veinscope.errors import RegistrationError
    from veinscope.register import register

    try:
        kept_a, kept_b = cache.recent(pa.id), cache.recent(pb.id)
        b = kept_a.rgb if kept_a is not None else _decoded(store, pa.id, decoded).rgb
        f = kept_b.rgb if kept_b is not None else _decoded(store, pb.id, decoded).rgb
        px = (store.get_analysis(pa.id) or {}).get("px_per_mm")
        px = float(px) if isinstance(px, (int, float)) and px > 0 else None
        fig_b = store.get_analysis(pb.id) or {}
        if px is None and isinstance(fig_b.get("px_per_mm"), (int, float)) and _given_scale(fig_b) is None:
            # a baseline without a scale, a follow-up with the card: compare carries the follow-up's card
            # back and aligns on the follow-up's skin mask (its analysis), not the baseline's
            skin_b, skin_f = None, _kept_skin(cache, kept_b, f)
            if skin_f is None:
                return None
        else:
            skin_b, skin_f = _kept_skin(cache, kept_a, b), None
        register(b, f, px_per_mm=px, baseline_skin=skin_b, followup_skin=skin_f)
    except RegistrationError as exc:
        return str(exc)
    except Exception as exc:  # left to the full comparison, which says what is wrong
        log.debug("quick same-site check skipped (%s)", type(exc).__name__)
    return None


def _refusal_message(why: str, sa, sb, n_pairs: int) -> str:
    """What to tell the practitioner when the photos of two sessions were refused, and what to do in the app."""
    why = why.removeprefix("These photos cannot be compared: ")
    what = "These photos cannot be compared" if n_pairs == 1 else f"None of the {n_pairs} pairs of photos can be compared"
    return (f"{what}: {why} If a photo of the wrong place was imported, import the right photo into the same "
            f"session (same date, {sb.session_date.isoformat()}, or {sa.session_date.isoformat()} for the "
            "baseline): it is compared instead.")


def _compare_photos(store, cache: DerivedCache, sa, sb, pa, pb, *, decoded: dict[int, Any] | None = None) -> CompareView:
    """Compare photo ``pb`` of session ``sb`` with photo ``pa`` of session ``sa``; kept, or refused and kept so."""
    from veinscope.compare import compare
    from veinscope.errors import VeinScopeError
    from veinscope.report.change_map import render_change_map, render_side_by_side

    base_fig = store.get_analysis(pa.id)
    # photos imported in this run of the app are in memory with their analyses: not decoded or analysed again
    kept_a, kept_b = cache.recent(pa.id), cache.recent(pb.id)
    base_a = kept_a.analysis if kept_a is not None else None
    follow_a = kept_b.analysis if kept_b is not None else None
    base_scale = base_a.px_per_mm if base_a is not None else (base_fig or {}).get("px_per_mm")
    if follow_a is not None and (base_scale is not None or follow_a.px_per_mm is None):
        # the baseline has a scale: compare measures the follow-up at it, carried over by the
        # alignment, and analyses it again there. Its own analysis (at its own card's scale) is
        # not given, or the figures would depend on whether it was imported in this run
        # (0.3-0.4 points of improvement on the demo pairs). Neither photo has a scale: compare
        # analyses the follow-up itself (the same call), after the alignment found on the
        # photos alone; given the analysis, register aligns on its skin mask instead and the
        # figures moved with it (veins_01 against a moved copy of itself: 6.74 % and no
        # matting against compare's 6.25 % and a 2 029 px² patch; BENCHMARKS.md, session 33)
        follow_a = None
    try:
        c = compare(kept_a.rgb if kept_a is not None else _decoded(store, pa.id, decoded),
                    kept_b.rgb if kept_b is not None else _decoded(store, pb.id, decoded),
                    px_per_mm=_given_scale(base_fig), baseline_analysis=base_a, followup_analysis=follow_a)
    except VeinScopeError as exc:  # RegistrationError and photo problems: plain-language messages
        _keep_refusal(cache, pa, pb, str(exc))
        raise NotComparable(str(exc)) from None
    figures = c.to_dict()
    # the photos compared, by name (shown) and id (exact: Store.remove_photo drops the comparisons of a photo removed)
    figures["photos"] = {"baseline": pa.original_name, "followup": pb.original_name,
                         "baseline_id": pa.id, "followup_id": pb.id}
    store.save_comparison(sa.id, sb.id, figures)
    cm = render_change_map(c)
    # titled with the session dates (the photos reach compare as bytes or arrays, named 'photo')
    sbs = render_side_by_side(dataclasses.replace(c, names=(sa.session_date.isoformat(), sb.session_date.isoformat())))
    before, after = c.baseline_rgb, c.aligned_rgb
    f = min(1.0, DISPLAY_SIDE_PX / max(before.shape[:2]))
    if f < 1.0:
        size = (int(round(before.shape[1] * f)), int(round(before.shape[0] * f)))
        before, after = _resize(before, size), _resize(after, size)
    d = _pair_folder(cache, pa, pb)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only (pictures of the patient's skin)
    cm_png, sbs_png = _png(cm), _png(sbs)  # encoded once: kept and shown
    for name, data in (("change_map.png", cm_png), ("side_by_side.png", sbs_png), ("before.png", _png(before)),
                       ("after.png", _png(after))):
        cache._write(d / name, data)
    cache._write(d / "comparison.json", json.dumps(figures).encode())  # written last: marks the set complete
    return CompareView(figures, cm_png, sbs_png, before, after, computed_now=True)


def swipe_image(before: np.ndarray, after: np.ndarray, split_frac: float) -> np.ndarray:
    """Before on the left of ``split_frac`` (0-1 of the width), after on the right, with a white line."""
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {before.shape} and {after.shape}")
    split_frac = min(max(float(split_frac), 0.0), 1.0)
    out = np.array(after, copy=True)
    x = int(round(split_frac * before.shape[1]))
    out[:, :x] = before[:, :x]
    lo, hi = max(0, x - 2), min(before.shape[1], x + 2)
    out[:, lo:hi] = 255
    return out


def _patches_sentence(block, what: str, none: str) -> str:
    """'<what>: N patch(es), A mm² in all.' from a comparison's staining or matting block."""
    block = block or {}
    n = block.get("patches")
    if not n:
        return none
    area = block.get("area_mm2")
    return f"{what}: {n} patch{'es' if n != 1 else ''}" + (f", {area:.0f} mm² in all." if isinstance(area, (int, float)) else ".")


def side_effect_metric(figures: dict, kind: str) -> tuple[str, str]:
    """(value, caption) of the Compare page's staining or matting metric (``kind``).

    The area in mm² with a scale, else in px² (a comparison without any scale used to show "-"
    above "1 patch(es), marked S1, S2..."); the caption counts the patches as they are marked.
    """
    if kind not in ("staining", "matting"):
        raise ValueError(f"kind must be 'staining' or 'matting', got {kind!r}")
    block = figures.get(kind) or {}
    n = block.get("patches") or 0
    mm2, px2 = block.get("area_mm2"), block.get("area_px2")
    if isinstance(mm2, (int, float)):
        value = f"{mm2:.0f} mm²" if mm2 >= 1 or mm2 == 0 else f"{mm2:.1f} mm²"
    elif isinstance(px2, (int, float)):
        value = f"{px2:.0f} px²"
    else:
        value = "-"
    letter = "S" if kind == "staining" else "M"
    if not n:
        caption = "none found"
    elif n == 1:
        caption = f"1 patch, marked {letter}1 on the change map"
    else:
        caption = f"{n} patches, marked {letter}1-{letter}{n} on the change map"
    if value.endswith("px²"):
        caption += " (no scale: area in pixels)"
    return value, caption


def side_by_side_caption(figures: dict) -> str:
    """The caption under the before / after pair: the grid is 1 cm only with a scale."""
    grid = ("Grid: 1 cm." if isinstance(figures.get("px_per_mm"), (int, float))
            else "The grid only helps find the same place (no scale: its squares are not 1 cm).")
    return ("Left: before. Right: after, aligned onto the first photo and with its light matched "
            f"(grey: not in the later photo). {grid}")


def comparison_class_table(figures: dict) -> list[dict[str, Any]]:
    """Compare's Figures tab: per class, the improvement (%) and the baseline length (mm), one decimal each.

    Until session 38 the page showed the length with three decimals (93.615 mm) beside improvements
    with one: a precision the photos do not have.
    """
    by = figures.get("improvement_by_class") or {}
    base_mm = (figures.get("lengths") or {}).get("by_class_mm") or {}
    return [{"vessels": CLASS_INFO[c][0], "improvement (%)": _num(by.get(c), 1),
             "baseline length (mm)": _num((base_mm.get(c) or {}).get("baseline"), 1)} for c in CLASSES]


def comparison_summary(figures: dict) -> list[str]:
    """The comparison in plain sentences (for the app and the patient report)."""
    out = []
    imp = figures.get("improvement_pct")
    if isinstance(imp, (int, float)):
        out.append(f"{imp:.0f} % of the vessel length seen at the first session is no longer visible "
                   f"({figures.get('grade_text') or 'grade not available'}).")
    else:
        out.append("No improvement figure: no treated vessel was found in the baseline photo in the part both photos show.")
    out.append(_patches_sentence(figures.get("staining"), "Brownish staining", "No staining (brown marks) was found."))
    out.append(_patches_sentence(figures.get("matting"), "Matting (a blush of new very fine red vessels)",
                                 "No matting (new fine red vessels) was found."))
    nv = figures.get("new_vessels") or {}
    if nv.get("count"):
        ln = nv.get("length_mm")
        out.append(f"{nv['count']} vessel(s) not seen before" + (f" ({ln:.0f} mm)" if isinstance(ln, (int, float)) else "")
                   + ": new veins elsewhere are disease progression, not a failure of treatment.")
    return out


def registration_status(figures: dict) -> tuple[str, str]:
    """(level, sentence) on how well the follow-up was aligned to the baseline."""
    reg = figures.get("registration") or {}
    res = reg.get("residual_mm")
    ov = reg.get("overlap_frac")
    parts = []
    if isinstance(res, (int, float)):
        parts.append(f"photos aligned to within {res:.2f} mm")
    elif isinstance(reg.get("residual_px"), (int, float)):
        parts.append(f"photos aligned to within {reg['residual_px']:.1f} px")
    if isinstance(ov, (int, float)):
        parts.append(f"{100 * ov:.0f} % of the baseline skin is in both photos")
    level = "ok"
    if isinstance(res, (int, float)) and res > 0.5:
        level = "warning"
    if isinstance(ov, (int, float)) and ov < 0.5:
        level = "warning"
    text = ("Alignment: " + "; ".join(parts) + ".") if parts else "Alignment quality not available."
    return level, text


# ----------------------------------------------------------------------------------------------
# progress of a site
def _compared_pair(store, cache: DerivedCache | None, session_a: int, session_b: int):
    """The photos ``(baseline, follow-up)`` whose comparison of two sessions ``cache`` keeps, or None
    (the pair :func:`cached_comparison` reads)."""
    if cache is None:
        return None
    for pa, pb in _photo_pairs(store, session_a, session_b):
        if (_pair_folder(cache, pa, pb) / "comparison.json").is_file():
            return pa, pb
        if _pair_refusal(cache, pa, pb) is None:
            return None
    return None


def _compared_photo(store, session_id: int, comparison: dict | None, *, role: str = "followup", pair=None):
    """The photo of a session its comparison with the first used (by its file name), else :func:`session_photo`.

    A later photo stands in when the first was refused (:func:`_photo_pairs`): the row's lengths are then
    that photo's, not those of the photo of the wrong place. ``role``: "followup", or "baseline" for the
    first session (its later photo stands in when its first was of the wrong place; review rev38).
    Photos of one session may share a file name (a phone's browser names every upload "image.jpg"):
    then the photo of ``pair`` (:func:`_compared_pair`) if it has that name, else the first imported.
    """
    photos = (comparison or {}).get("photos") or {}
    used_id = photos.get(f"{role}_id")
    if isinstance(used_id, int) and not isinstance(used_id, bool):  # recorded since session 39: exact
        p = next((p for p in store.list_photos(session_id=session_id) if p.id == used_id), None)
        if p is not None:
            return p
    used = photos.get(role)
    if used:
        named = [p for p in sorted(store.list_photos(session_id=session_id), key=lambda p: p.id) if p.original_name == used]
        kept = None if pair is None else pair[0 if role == "baseline" else 1]
        for p in named:
            if kept is not None and p.id == kept.id:
                return p
        if named:
            return named[0]
    return session_photo(store, session_id)


def progress_rows(store, code: str, site: str, *, cache: DerivedCache | None = None) -> list[dict[str, Any]]:
    """One row per session of a site, oldest first: date, figures of its photo, change vs the first session.

    Change figures (``improvement_pct``, per class, ``staining_mm2``, ``matting_mm2``) are
    those of comparisons already saved; None where the comparison was not made yet. With
    ``cache``, a session whose photos were refused as not comparable has the message in ``refused``.

    Each compared row names the first session's photo its comparison used: ``baseline_photo_id``,
    ``baseline_photo`` (file name), ``baseline_photo_number`` (1, 2, ... in the order the first
    session's photos were added, a removed photo keeping its number: ``Store.photo_numbers``) and
    ``baseline_length_mm`` (that photo's total vessel length).
    Follow-ups compared with different photos of the first session (one refused or removed, the
    right one imported later) are each measured against their own; the first session's row shows
    the photo of its first comparison (:func:`baseline_photos_note` says which is which). Until
    session 39 every follow-up was shown as if against that one.
    """
    sessions = store.list_sessions(code, site)
    saved = {(c["session_a"], c["session_b"]): c["result"] for c in store.list_comparisons(code)}
    rows = []
    base = sessions[0] if sessions else None
    # the baseline's photo its comparisons used (the first saved one's): its later photo when the first was refused
    first = next((s for s in sessions[1:] if (base.id, s.id) in saved), None) if base else None
    base_cmp = saved[(base.id, first.id)] if first is not None else None
    lengths: dict[int, Any] = {}
    # the first session's photos numbered in the order they were added, a removed photo keeping its
    # number (the PDF names a photo so: no file names; an earlier report's "photo 2" stays photo 2)
    number = store.photo_numbers(base.id) if base is not None else {}

    def total_length(photo_id: int):
        if photo_id not in lengths:
            lengths[photo_id] = (((store.get_analysis(photo_id) or {}).get("classes") or {}).get("total") or {}).get("length_mm")
        return lengths[photo_id]

    for s in sessions:
        cmp_ = saved.get((base.id, s.id)) if base is not None and s.id != base.id else None
        b_photo = None
        if s is base:
            p = _compared_photo(store, s.id, base_cmp, role="baseline",
                                pair=None if first is None else _compared_pair(store, cache, base.id, first.id))
            b_photo = p
        else:
            pair = None if cmp_ is None else _compared_pair(store, cache, base.id, s.id)
            p = _compared_photo(store, s.id, cmp_, pair=pair)
            if cmp_ is not None:
                b_photo = _compared_photo(store, base.id, cmp_, role="baseline", pair=pair)
        fig = store.get_analysis(p.id) if p is not None else None
        classes = (fig or {}).get("classes") or {}
        row: dict[str, Any] = {"session_id": s.id, "session_date": s.session_date.isoformat(),
                               "photo_id": None if p is None else p.id,
                               "px_per_mm": None if fig is None else fig.get("px_per_mm")}
        for cls in (*CLASSES, "total"):
            row[f"{cls}_length_mm"] = (classes.get(cls) or {}).get("length_mm")
        row["total_coverage_pct"] = (classes.get("total") or {}).get("coverage_pct")
        if s is base:
            row.update(improvement_pct=0.0, grade=None, staining_mm2=0.0, matting_mm2=0.0, compared=True)
            for cls in CLASSES:
                row[f"{cls}_improvement_pct"] = 0.0
        elif cmp_ is not None:
            row.update(improvement_pct=cmp_.get("improvement_pct"), grade=cmp_.get("grade"),
                       staining_mm2=(cmp_.get("staining") or {}).get("area_mm2"),
                       matting_mm2=(cmp_.get("matting") or {}).get("area_mm2"), compared=True)
            for cls in CLASSES:
                row[f"{cls}_improvement_pct"] = (cmp_.get("improvement_by_class") or {}).get(cls)
        else:
            row.update(improvement_pct=None, grade=None, staining_mm2=None, matting_mm2=None, compared=False)
            if cache is not None and base is not None:
                row["refused"] = refused_comparison(store, cache, base.id, s.id)
            for cls in CLASSES:
                row[f"{cls}_improvement_pct"] = None
        row["baseline_photo_id"] = None if b_photo is None else b_photo.id
        row["baseline_photo"] = None if b_photo is None else (b_photo.original_name or f"photo {b_photo.id}")
        row["baseline_photo_number"] = None if b_photo is None else number.get(b_photo.id)
        row["baseline_length_mm"] = None if b_photo is None else total_length(b_photo.id)
        rows.append(row)
    return rows


def _baseline_label(row: dict[str, Any]) -> str | None:
    """'<file name> (photo N, 512 mm of vessels)': the first-session photo a row was compared with
    (N: its number in the first session, as the PDF names it)."""
    if row.get("baseline_photo_id") is None:
        return None
    ln = row.get("baseline_length_mm")
    n = row.get("baseline_photo_number")
    return (f"{row.get('baseline_photo')} (photo {n if n is not None else '?'}"
            + (f", {ln:.0f} mm of vessels)" if isinstance(ln, (int, float)) else ")"))


def mixed_baselines(rows: list[dict[str, Any]]) -> bool:
    """Whether the follow-ups of a site were compared with different photos of the first session."""
    return len({r["baseline_photo_id"] for r in rows if r.get("baseline_photo_id") is not None}) > 1


def baseline_photos_note(rows: list[dict[str, Any]]) -> str | None:
    """A sentence naming the first-session photo each follow-up was compared with, when they differ (else None)."""
    if not rows or not mixed_baselines(rows):
        return None
    first = rows[0]
    parts = [f"{r['session_date']} with {_baseline_label(r)}" for r in rows[1:] if r.get("baseline_photo_id") is not None]
    return (f"The later sessions were compared with different photos of the first session ({first['session_date']}): "
            + "; ".join(parts) + ". Each improvement is measured against the photo named; the first session's "
            f"row shows {_baseline_label(first)}.")


def progress_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The progress rows for display: plain column names with units, sensible rounding.

    When the follow-ups were compared with different photos of the first session
    (:func:`mixed_baselines`), a last column names the one each row was compared with.
    """
    mixed = mixed_baselines(rows)
    out = []
    for r in rows:
        d = {"session": r["session_date"],
             "vessel length (mm)": _num(r.get("total_length_mm"), 0),
             "coverage (% of skin)": _num(r.get("total_coverage_pct"), 2),
             "improvement (%)": _num(r.get("improvement_pct"), 0),
             "grade (0-3)": r.get("grade"),
             "staining (mm²)": _num(r.get("staining_mm2"), 0),
             "matting (mm²)": _num(r.get("matting_mm2"), 0)}
        if mixed:
            d["compared with (first-session photo)"] = _baseline_label(r)
        out.append(d)
    return out


def missing_comparisons(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(baseline session, follow-up session) pairs of a progress table not compared yet.

    A session left without photos (every photo removed, :func:`remove_photo`) has nothing to
    compare: its pairs are not listed (:func:`sessions_without_photos` names them), or Progress
    and Export would offer to compare them for ever (review rev39).
    """
    if not rows or rows[0].get("photo_id") is None:
        return []
    return [(rows[0]["session_id"], r["session_id"]) for r in rows[1:]
            if not r["compared"] and not r.get("refused") and r.get("photo_id") is not None]


def sessions_without_photos(rows: list[dict[str, Any]]) -> list[str]:
    """The dates of the sessions of a progress table that hold no photo (all removed)."""
    return [r["session_date"] for r in rows if r.get("photo_id") is None]


def progress_csv(code: str, site: str, rows: list[dict[str, Any]]) -> bytes:
    """The progress table as CSV (keys keep their unit suffix; empty where not available)."""
    buf = io.StringIO()
    if rows:
        # not 'baseline_photo' (a file name can identify the patient; its id and number are kept)
        fields = ["patient_code", "site", *(k for k in rows[0].keys() if k != "baseline_photo")]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")  # not 'refused'
        w.writeheader()
        for r in rows:
            w.writerow({"patient_code": code, "site": site, **{k: ("" if v is None else v) for k, v in r.items()}})
    return buf.getvalue().encode()


# ----------------------------------------------------------------------------------------------
# exports
def progress_chart_png(rows: list[dict[str, Any]], *, title: str = "") -> bytes:
    """The progress chart of a site as PNG bytes (matplotlib Agg, offline)."""
    from veinscope.report.charts import figure_png, progress_figure

    return figure_png(progress_figure(rows, title=title))


def site_report_pdf(store, cache: DerivedCache, code: str, site: str) -> bytes:
    """The patient PDF of one site: figures, progress chart and before/after of every comparison made."""
    from veinscope.report.pdf import BeforeAfter, patient_report

    rows = progress_rows(store, code, site, cache=cache)
    if not rows:
        raise ValueError(f"site {site!r} has no sessions yet")
    pairs = []
    base = rows[0]
    done = [r for r in rows[1:] if r["compared"]]
    for r in done[-2:]:  # the latest two follow-ups: enough to show, short enough to read
        view = cached_comparison(store, cache, base["session_id"], r["session_id"])
        if view is not None:
            pairs.append(BeforeAfter(base["session_date"], r["session_date"], view.side_by_side_png,
                                     comparison_summary(view.figures), view.change_map_png))
    chart = progress_chart_png(rows, title=f"{code} - {site}") if len(rows) > 1 else None
    return patient_report(patient_code=code, site=site, rows=rows, pairs=pairs, chart_png=chart)
