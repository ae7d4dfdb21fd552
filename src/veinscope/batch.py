"""Many photos at once: parallel, resumable batch analysis with a CSV summary.

>>> from veinscope.batch import collect_photos, run_batch          # doctest: +SKIP
>>> report = run_batch(collect_photos(["clinic/2026-03/"]), "out/", jobs=2, px_per_mm=10)
>>> report.counts                                                  # doctest: +SKIP
{'done': 97, 'skipped': 0, 'failed': 3}

Design
------
* Each photo is analysed by :func:`analyse_bytes` in a worker: the photo's bytes go in, the
  encoded output files (the ``veinscope analyze`` contract, written by
  :func:`veinscope._cli_analyze.write_analysis`) and a summary row come back. Workers never
  touch the output folder, so the same task runs in local processes
  (:class:`concurrent.futures.ProcessPoolExecutor`, ``spawn`` context: Numba's threading layer
  does not survive ``fork``) or on a Dask distributed cluster without a shared file system.
* Each worker warms up once (:func:`veinscope.warmup`) with Numba, OpenCV and BLAS limited to
  ``cores // jobs`` threads, so ``jobs`` processes do not oversubscribe the machine.
* ``DIR/manifest.jsonl`` is the commit log: one JSON line per finished photo (appended and
  flushed only after its files are in place). A re-run skips a photo whose last record is
  ``done`` with the same content hash (SHA-256 of the file), the same veinscope version and the
  same ``px_per_mm``, and whose ``analysis.json`` is still there. Failed photos are tried again.
* One photo failing (unreadable, not a photo, out of memory, a crashed worker) is recorded
  with its reason; the others go on.
* ``DIR/summary.csv`` has one row per photo in the manifest; column names keep their units
  (``total_length_mm``, ``total_coverage_pct``, ...).

The library prints nothing: progress is reported through the ``progress`` callback.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from veinscope._version import __version__

__all__ = [
    "BatchItem",
    "BatchOutcome",
    "BatchReport",
    "PHOTO_SUFFIXES",
    "ReanalysisOutcome",
    "SUMMARY_COLUMNS",
    "analyse_bytes",
    "collect_photos",
    "plan_batch",
    "read_manifest",
    "reanalyze_store",
    "run_batch",
    "run_tasks",
    "summary_row",
    "write_summary",
]

log = logging.getLogger(__name__)

#: File endings taken as photos when a folder is given.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".bmp")
MANIFEST = "manifest.jsonl"
SUMMARY = "summary.csv"

_CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm", "total")
_CLASS_FIELDS = (
    "length_mm", "area_mm2", "coverage_pct",
    "diameter_mean_mm", "diameter_median_mm", "diameter_p90_mm", "segments",
    "length_px", "area_px2",
)
#: Columns of ``summary.csv``: the photo, the run, then per class (and ``total``) the figures
#: with their unit in the name (``*_mm``, ``*_mm2``, ``*_pct``, ``*_px``, ``*_px2``).
SUMMARY_COLUMNS = (
    "photo", "output", "status", "error", "sha256", "version", "px_per_mm", "scale_source",
    "width_px", "height_px", "skin_area_mm2", "skin_area_px2", "seconds", "n_warnings", "warnings",
) + tuple(f"{c}_{f}" for c in _CLASSES for f in _CLASS_FIELDS)


# --------------------------------------------------------------------------- collecting photos
def collect_photos(specs: str | os.PathLike | Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """Photo files named by folders, glob patterns or files, sorted, without duplicates.

    Parameters
    ----------
    specs : path, glob pattern or a list of them
        A folder gives its files ending in :data:`PHOTO_SUFFIXES` (case-insensitive; with
        ``recursive``, also in sub-folders); a pattern (``*``, ``?``, ``[``; ``**`` for any
        depth) gives the files it matches; a file is taken as it is.
    recursive : bool
        Look into sub-folders of the folders given.

    Raises
    ------
    FileNotFoundError
        When a path that is not a pattern does not exist.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    found: dict[Path, None] = {}
    for spec in specs:
        text = os.fspath(spec)
        if any(ch in text for ch in "*?["):
            for m in sorted(glob.glob(text, recursive=True)):
                p = Path(m)
                if p.is_file():
                    found.setdefault(p.resolve(), None)
            continue
        p = Path(text)
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.iterdir()
            for f in sorted(walker):
                if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES and not f.name.startswith("."):
                    found.setdefault(f.resolve(), None)
        elif p.is_file():
            found.setdefault(p.resolve(), None)
        else:
            raise FileNotFoundError(f"No such file or folder: {text}")
    return sorted(found)


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch.

    Attributes
    ----------
    path : Path
        The photo file.
    output : str
        Its output sub-folder, relative to the batch folder (``/``-separated).
    sha256 : str
        Hex digest of the file's bytes ("" when the file could not be read).
    size_bytes : int
    error : str or None
        Why the file could not even be read (it is then reported as failed).
    """

    path: Path
    output: str
    sha256: str
    size_bytes: int = 0
    error: str | None = None


def _output_names(paths: Sequence[Path]) -> list[str]:
    """Output sub-folder per photo: its path relative to the photos' common folder, without the
    suffix; with the suffix when two photos would otherwise share a folder (``leg.jpg``, ``leg.png``)."""
    if not paths:
        return []
    base = Path(os.path.commonpath([str(p.parent) for p in paths]))
    rel = [p.relative_to(base) for p in paths]
    stems = [r.with_suffix("").as_posix() for r in rel]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [s if seen[s] == 1 else r.as_posix() for s, r in zip(stems, rel)]


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def plan_batch(photos: Sequence[str | os.PathLike]) -> list[BatchItem]:
    """Name each photo's output folder and hash its content (read errors are kept, not raised)."""
    paths = [Path(p) for p in photos]
    items = []
    for path, out in zip(paths, _output_names(paths)):
        try:
            sha, n = _sha256_file(path)
        except OSError as exc:
            items.append(BatchItem(path, out, "", 0, f"The file could not be read ({exc.strerror or exc})."))
            continue
        items.append(BatchItem(path, out, sha, n))
    return items


def read_manifest(out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The last record of each output folder in ``out_dir/manifest.jsonl`` (torn lines ignored)."""
    path = Path(out_dir) / MANIFEST
    records: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash: that photo is simply done again
        if isinstance(rec, dict) and isinstance(rec.get("output"), str):
            records[rec["output"]] = rec
    return records


def _is_done(rec: dict[str, Any] | None, item: BatchItem, px_per_mm: float | None, out_dir: Path) -> bool:
    return bool(
        rec is not None
        and rec.get("status") == "done"
        and rec.get("sha256") == item.sha256
        and rec.get("version") == __version__
        and rec.get("requested_px_per_mm") == px_per_mm
        and (out_dir / item.output / "analysis.json").is_file()
    )


# --------------------------------------------------------------------------- the worker side
def _limit_threads(threads: int) -> None:
    """Cap Numba, OpenCV and BLAS threads in this process (call before heavy imports)."""
    threads = max(1, int(threads))
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


def init_worker(threads: int) -> None:
    """Process-pool initialiser: limit threads, then compile or load every kernel once.

    A failing warm-up is logged, not raised: an initialiser that raises breaks the whole pool,
    whereas each photo's analysis then reports the actual error as that photo's failure.
    """
    _limit_threads(threads)
    _warmup()


def _warmup() -> None:
    try:
        from veinscope.pipeline import warmup

        seconds = warmup()
    except Exception:
        log.exception("warm-up failed in process %d; each photo will report the error", os.getpid())
        return
    log.debug("process %d warmed up in %.2f s", os.getpid(), seconds)


def summary_row(analysis: dict[str, Any]) -> dict[str, Any]:
    """The figure columns of ``summary.csv`` from an ``analysis.json`` dict."""
    params = analysis.get("parameters") or {}
    photo = analysis.get("photo") or {}
    warnings = list(analysis.get("warnings") or ())
    row: dict[str, Any] = {
        "version": analysis.get("version"),
        "px_per_mm": analysis.get("px_per_mm"),
        "scale_source": params.get("scale_source"),
        "width_px": photo.get("width_px"),
        "height_px": photo.get("height_px"),
        "skin_area_mm2": analysis.get("skin_area_mm2"),
        "skin_area_px2": analysis.get("skin_area_px2"),
        "n_warnings": len(warnings),
        "warnings": " | ".join(warnings),
    }
    classes = analysis.get("classes") or {}
    for c in _CLASSES:
        fig = classes.get(c) or {}
        dmm = fig.get("diameter_mm") or {}
        row.update({
            f"{c}_length_mm": fig.get("length_mm"),
            f"{c}_area_mm2": fig.get("area_mm2"),
            f"{c}_coverage_pct": fig.get("coverage_pct"),
            f"{c}_diameter_mean_mm": dmm.get("mean"),
            f"{c}_diameter_median_mm": dmm.get("median"),
            f"{c}_diameter_p90_mm": dmm.get("p90"),
            f"{c}_segments": fig.get("segments"),
            f"{c}_length_px": fig.get("length_px"),
            f"{c}_area_px2": fig.get("area_px2"),
        })
    return row


def analyse_bytes(
    data: bytes, name: str, *, px_per_mm: float | None = None, files: bool = True, filename: str | None = None
) -> dict[str, Any]:
    """Analyse one photo given as bytes; never raises for a bad photo.

    Parameters
    ----------
    data : bytes
        The photo file's content.
    name : str
        Photo name recorded in the analysis (the file stem).
    px_per_mm : float, optional
        Scale at the skin; without it the card in the photo is used when found.
    files : bool
        Also return the encoded output files (``analysis.json``, ``labels.png``,
        ``diameter_mm.tif``, ``overlay.png``).
    filename : str, optional
        The file's name, used in error messages (default ``name``).

    Returns
    -------
    dict
        ``ok`` (bool), ``seconds``, ``pid``; when ok: ``analysis`` (the ``analysis.json``
        dict), ``summary`` (:func:`summary_row`), ``version`` and, with ``files``, ``files``
        (file name -> bytes); otherwise ``error`` (a message a practitioner understands).
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"ok": False, "pid": os.getpid()}
    try:
        from veinscope.errors import VeinScopeError
        from veinscope.io import load_photo
        from veinscope.pipeline import analyze

        try:
            photo = dataclasses.replace(load_photo(bytes(data)), name=name)
            result = analyze(photo, px_per_mm=px_per_mm)
            d = result.to_dict()
            out.update(ok=True, analysis=d, summary=summary_row(d), version=result.version)
            if files:
                from veinscope._cli_analyze import encode_analysis

                out["files"] = encode_analysis(result, photo.rgb, figures=d)  # in memory: the parent writes them
        except VeinScopeError as exc:
            msg = str(exc)
            # loaded from bytes, the photo is called 'photo' in messages: name the file instead
            msg = msg.replace("'photo'", repr(filename or name))
            out["error"] = msg
        except MemoryError:
            out["error"] = "There was not enough memory to analyse this photo. Run fewer jobs at once (-j)."
    except Exception as exc:  # one photo must never stop a batch; the reason is kept
        log.exception("unexpected error analysing %s", name)
        out.update(ok=False, error=f"Unexpected error ({type(exc).__name__}: {exc}). Please report it.")
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


# --------------------------------------------------------------------------- executors
class _ImmediateFuture:
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict):
        self._value = fn(*args, **kwargs)

    def result(self) -> Any:
        return self._value


class _SerialBackend:
    """In this process, one photo at a time (``jobs=1``)."""

    workers = 1

    def __init__(self, threads: int | None):
        self._threads = threads
        self._warm = False

    def submit(self, fn, *args, **kwargs):
        if not self._warm:
            if self._threads:
                import numba

                numba.set_num_threads(min(self._threads, numba.config.NUMBA_NUM_THREADS))
            _warmup()
            self._warm = True
        return _ImmediateFuture(fn, args, kwargs)

    def wait(self, pending):
        return set(pending), set()

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


class _ProcessBackend:
    """Local worker processes started with ``spawn``, each warmed up once."""

    def __init__(self, jobs: int, threads: int):
        self.workers = jobs
        self._threads = threads
        self._pool = self._new_pool()

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self._threads,),
        )

    def submit(self, fn, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def wait(self, pending):
        from concurrent.futures import FIRST_COMPLETED, wait

        done, rest = wait(pending, return_when=FIRST_COMPLETED)
        return done, rest

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _DaskBackend:
    """Workers of a Dask distributed cluster (``pip install 'veinscope[dask]'``)."""

    def __init__(self, scheduler: Any):
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                "Running on a Dask cluster needs the optional extra: pip install 'veinscope[dask]'"
            ) from None
        self._own = not hasattr(scheduler, "submit")
        self._client = Client(scheduler) if self._own else scheduler
        info = self._client.scheduler_info(n_workers=-1) if _accepts_n_workers(self._client) else self._client.scheduler_info()
        workers = info.get("workers", {})
        if not workers:
            raise RuntimeError(f"The Dask cluster at {scheduler!r} has no workers.")
        self.workers = sum(max(1, int(w.get("nthreads", 1))) for w in workers.values())
        # Numba threads per worker process: the host's cores shared among its worker processes.
        by_host: dict[str, list[str]] = {}
        for addr, w in workers.items():
            by_host.setdefault(str(w.get("host", addr)), []).append(addr)
        for addrs in by_host.values():
            self._client.run(_dask_init_worker, len(addrs), workers=addrs)

    def submit(self, fn, data, *args, **kwargs):
        [remote] = self._client.scatter([data], hash=False)
        return self._client.submit(fn, remote, *args, pure=False, **kwargs)

    def wait(self, pending):
        from distributed import wait

        res = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def restart(self) -> None:
        pass  # the scheduler replaces lost workers itself

    def close(self) -> None:
        if self._own:
            self._client.close()


def _accepts_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _dask_init_worker(processes_on_host: int) -> None:
    threads = max(1, (os.cpu_count() or 1) // max(1, processes_on_host))
    init_worker(threads)


def _make_backend(jobs: int | None, scheduler: Any):
    if scheduler is not None:
        return _DaskBackend(scheduler)
    cores = os.cpu_count() or 1
    jobs = cores if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs!r}")
    threads = max(1, cores // jobs)
    return _SerialBackend(None) if jobs == 1 else _ProcessBackend(jobs, threads)


def run_tasks(
    tasks: Iterable[tuple[Any, tuple, dict]],
    *,
    jobs: int | None = None,
    scheduler: Any = None,
    fn: Callable[..., dict[str, Any]] = analyse_bytes,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Run ``fn`` (:func:`analyse_bytes`) on ``(key, args, kwargs)`` tasks; yield ``(key, result)`` as they finish.

    ``args`` are ``(data, name)``. At most twice as many tasks as workers are in flight, so the
    photos' bytes are read only as they are needed. A worker process that dies (out of memory,
    a crash) turns the photos then in flight into failures (tried again on the next run: which
    of them killed it cannot be told) and a fresh pool takes over the rest.
    """
    from concurrent.futures import BrokenExecutor

    backend = _make_backend(jobs, scheduler)
    window = 2 * max(1, backend.workers)

    def submit(args: tuple, kwargs: dict):
        try:
            return backend.submit(fn, *args, **kwargs)
        except BrokenExecutor:  # the pool died since the last completion was seen
            backend.restart()
            return backend.submit(fn, *args, **kwargs)

    it = iter(tasks)
    pending: dict[Any, Any] = {}
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    key, args, kwargs = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[submit(args, kwargs)] = key
            if not pending:
                break
            done, _ = backend.wait(set(pending))
            broken = False
            for fut in done:
                key = pending.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # BrokenProcessPool, a killed Dask worker, ...
                    broken = broken or isinstance(exc, BrokenExecutor)
                    res = {"ok": False, "seconds": None, "error": (
                        "The analysis process stopped unexpectedly (often: not enough memory for this photo); "
                        f"it will be tried again on the next run ({type(exc).__name__})."
                    )}
                yield key, res
            if broken and isinstance(backend, _ProcessBackend):
                lost = list(pending.items())
                pending.clear()
                backend.restart()
                for fut, key in lost:  # photos in flight in the dead pool
                    try:
                        res = fut.result(timeout=0)
                    except Exception:
                        res = {"ok": False, "seconds": None, "error": (
                            "The analysis process stopped unexpectedly while this photo was queued; "
                            "it will be tried again on the next run."
                        )}
                    yield key, res
    finally:
        backend.close()


# --------------------------------------------------------------------------- the batch
@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one photo: ``status`` is ``"done"``, ``"skipped"`` (already done) or ``"failed"``."""

    item: BatchItem
    status: str
    error: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class BatchReport:
    """The result of :func:`run_batch`.

    Attributes
    ----------
    out_dir : Path
    outcomes : tuple of BatchOutcome
        One per photo, in the order given.
    seconds : float
        Wall time of the run, including starting and warming up the workers.
    workers : int or None
        Local worker processes used (None on a Dask cluster, 0 when nothing was to do).
    summary_csv : Path
    """

    out_dir: Path
    outcomes: tuple[BatchOutcome, ...]
    seconds: float
    workers: int | None
    summary_csv: Path
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Photos ``done`` (analysed now), ``skipped`` (done before) and ``failed``."""
        c = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            c[o.status] += 1
        return c

    @property
    def failed(self) -> list[BatchOutcome]:
        """The outcomes of the photos that failed, with their reasons."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def photos_per_s(self) -> float | None:
        """Photos analysed (not skipped) per second of wall time."""
        n = self.counts["done"]
        return n / self.seconds if n and self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the run (counts, time, photos/s, failures and their reasons)."""
        return {
            "out_dir": str(self.out_dir),
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "photos_per_s": None if self.photos_per_s is None else round(self.photos_per_s, 4),
            "workers": self.workers,
            "summary_csv": str(self.summary_csv),
            "failed": [{"photo": str(o.item.path), "error": o.error} for o in self.failed],
            "parameters": self.params,
            "version": __version__,
        }


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _append_manifest(out_dir: Path, record: dict[str, Any]) -> None:
    with open(out_dir / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_summary(out_dir: str | os.PathLike) -> Path:
    """(Re)write ``out_dir/summary.csv`` from the manifest: one row per photo, figures with units."""
    out_dir = Path(out_dir)
    records = read_manifest(out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for output in sorted(records):
        rec = records[output]
        row = {k: "" for k in SUMMARY_COLUMNS}
        row.update({k: v for k, v in (rec.get("summary") or {}).items() if v is not None})
        row.update(photo=rec.get("photo", ""), output=output, status=rec.get("status", ""),
                   error=rec.get("error") or "", sha256=rec.get("sha256", ""),
                   seconds="" if rec.get("seconds") is None else rec["seconds"])
        w.writerow(row)
    path = out_dir / SUMMARY
    _atomic_write(path, buf.getvalue().encode("utf-8"))
    return path


def run_batch(
    photos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    jobs: int | None = None,
    px_per_mm: float | None = None,
    scheduler: Any = None,
    progress: Callable[[BatchOutcome], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """Analyse many photos in parallel into ``out_dir``, skipping those already done.

    Parameters
    ----------
    photos : sequence of paths
        Photo files (see :func:`collect_photos`).
    out_dir : path
        Output folder: ``<photo>/`` (``analysis.json``, ``labels.png``, ``diameter_mm.tif``,
        ``overlay.png``) per photo, ``manifest.jsonl`` and ``summary.csv``.
    jobs : int, optional
        Worker processes (default: the number of cores); 1 analyses in this process.
    px_per_mm : float, optional
        Scale at the skin for every photo; without it each photo's card is used when found.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (or a client) to run on instead of local processes.
    progress : callable, optional
        Called with each :class:`BatchOutcome` as it is known (skipped ones first).
    on_start : callable, optional
        Called once with ``(photos to analyse, photos skipped)`` before the work starts.

    Returns
    -------
    BatchReport
    """
    t0 = time.perf_counter()
    if px_per_mm is not None and not (isinstance(px_per_mm, (int, float)) and 0 < px_per_mm < 1e4):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    px_per_mm = None if px_per_mm is None else float(px_per_mm)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = plan_batch(photos)
    manifest = read_manifest(out_dir)
    outcomes: dict[int, BatchOutcome] = {}
    todo: list[int] = []
    for i, item in enumerate(items):
        if _is_done(manifest.get(item.output), item, px_per_mm, out_dir):
            outcomes[i] = BatchOutcome(item, "skipped")
        else:
            todo.append(i)
    if on_start is not None:
        on_start(len(todo), len(outcomes))
    if progress is not None:
        for o in outcomes.values():
            progress(o)

    def finish(i: int, res: dict[str, Any]) -> None:
        item = items[i]
        record: dict[str, Any] = {
            "photo": str(item.path), "output": item.output, "sha256": item.sha256,
            "size_bytes": item.size_bytes, "requested_px_per_mm": px_per_mm,
            "seconds": res.get("seconds"), "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if res.get("ok"):
            try:
                dest = out_dir / item.output
                dest.mkdir(parents=True, exist_ok=True)
                files = res.get("files") or {}
                for fname in sorted(files, key=lambda f: f == "analysis.json"):  # analysis.json last
                    _atomic_write(dest / fname, files[fname])
                record.update(status="done", version=res.get("version"), summary=res.get("summary"))
            except OSError as exc:
                record.update(status="failed", version=res.get("version"),
                              error=f"The results could not be written to {out_dir / item.output} ({exc.strerror or exc}).")
        else:
            record.update(status="failed", version=__version__, error=res.get("error") or "unknown error")
        if record.get("version") not in (None, __version__):
            log.warning("%s was analysed by veinscope %s on a worker (this is %s)", item.path, record["version"], __version__)
        _append_manifest(out_dir, record)
        outcome = BatchOutcome(item, record["status"], record.get("error"), res.get("seconds"))
        outcomes[i] = outcome
        if progress is not None:
            progress(outcome)

    runnable = []
    for i in todo:
        if items[i].error is not None:
            finish(i, {"ok": False, "error": items[i].error})
        else:
            runnable.append(i)

    def tasks() -> Iterator[tuple[int, tuple, dict]]:
        for i in runnable:
            item = items[i]
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                finish(i, {"ok": False, "error": f"The file could not be read ({exc.strerror or exc})."})
                continue
            if hashlib.sha256(data).hexdigest() != item.sha256:
                # changed since it was hashed: analyse what is there now, under its new hash
                items[i] = dataclasses.replace(item, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
            yield i, (data, item.path.stem), {"px_per_mm": px_per_mm, "filename": item.path.name}

    workers: int | None = 0
    if runnable:
        backend_jobs = jobs
        if scheduler is None and jobs is None:
            backend_jobs = min(os.cpu_count() or 1, len(runnable))
        elif scheduler is None:
            backend_jobs = max(1, min(int(jobs), len(runnable)))
        workers = backend_jobs if scheduler is None else None
        for i, res in run_tasks(tasks(), jobs=backend_jobs, scheduler=scheduler):
            finish(i, res)
    summary = write_summary(out_dir)
    report = BatchReport(
        out_dir=out_dir,
        outcomes=tuple(outcomes[i] for i in range(len(items))),
        seconds=time.perf_counter() - t0,
        workers=workers,
        summary_csv=summary,
        params={"px_per_mm": px_per_mm, "jobs": jobs, "scheduler": None if scheduler is None else str(scheduler)},
    )
    log.info("batch: %s in %.1f s", report.counts, report.seconds)
    return report


# --------------------------------------------------------------------------- the records store
@dataclass(frozen=True)
class ReanalysisOutcome:
    """One stored photo: ``status`` ``"done"`` (new analysis saved), ``"skipped"`` (already
    analysed by this version) or ``"failed"``."""

    photo_id: int
    status: str
    analysis_id: int | None = None
    previous_version: str | None = None
    px_per_mm: float | None = None
    error: str | None = None
    seconds: float | None = None


def _scale_for_reanalysis(previous: dict[str, Any] | None) -> float | None:
    """The scale to analyse a stored photo with again: the one entered by hand (or measured on a
    ruler) last time; None when it came from the card (found again) or there was none."""
    if not previous:
        return None
    source = (previous.get("parameters") or {}).get("scale_source")
    px = previous.get("px_per_mm")
    if source in ("manual", "ruler") and isinstance(px, (int, float)) and px > 0:
        return float(px)
    return None


def reanalyze_store(
    store: Any,
    *,
    code: str | None = None,
    force: bool = False,
    jobs: int | None = None,
    scheduler: Any = None,
    progress: Callable[[ReanalysisOutcome], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> list[ReanalysisOutcome]:
    """Analyse the stored photos again with this veinscope version and save the new analyses.

    The earlier analyses are kept (each records its version and parameters). A photo whose
    latest analysis is already by this version is skipped unless ``force``, so an interrupted
    run simply continues. A scale entered by hand is used again; a card is looked for again.

    Parameters
    ----------
    store : veinscope.store.Store
    code : str, optional
        Only this patient's photos.
    force : bool
        Also photos already analysed by this version.
    jobs, scheduler, progress, on_start
        As in :func:`run_batch`.

    Returns
    -------
    list of ReanalysisOutcome, in the store's order.
    """
    records = store.list_photos(code=code)
    outcomes: dict[int, ReanalysisOutcome] = {}
    plan: list[tuple[int, str | None, float | None]] = []
    for rec in records:
        prev = store.get_analysis(rec.id)
        prev_version = None if not prev else prev.get("version")
        if prev_version == __version__ and not force:
            outcomes[rec.id] = ReanalysisOutcome(rec.id, "skipped", previous_version=prev_version)
        else:
            plan.append((rec.id, prev_version, _scale_for_reanalysis(prev)))
    if on_start is not None:
        on_start(len(plan), len(outcomes))
    if progress is not None:
        for o in outcomes.values():
            progress(o)
    meta = {pid: (prev_version, ppm) for pid, prev_version, ppm in plan}
    filenames = {rec.id: rec.original_name or f"photo {rec.id}" for rec in records}
    names = {pid: Path(f).stem for pid, f in filenames.items()}

    def finish(pid: int, res: dict[str, Any]) -> None:
        prev_version, ppm = meta[pid]
        aid = None
        error = res.get("error")
        if res.get("ok"):
            try:
                aid = store.save_analysis(pid, res["analysis"])
            except Exception as exc:  # a store error must not lose the other photos' work
                error = f"The new analysis could not be saved ({exc})."
        o = ReanalysisOutcome(pid, "done" if aid is not None else "failed", aid, prev_version, ppm,
                              None if aid is not None else (error or "unknown error"), res.get("seconds"))
        outcomes[pid] = o
        if progress is not None:
            progress(o)

    def tasks() -> Iterator[tuple[int, tuple, dict]]:
        for pid, _, ppm in plan:
            try:
                data = store.read_photo(pid)
            except Exception as exc:
                finish(pid, {"ok": False, "error": str(exc)})
                continue
            yield pid, (data, names[pid]), {"px_per_mm": ppm, "files": False, "filename": filenames[pid]}

    if plan:
        n_jobs = jobs if scheduler is not None or jobs is not None else min(os.cpu_count() or 1, len(plan))
        if scheduler is None:
            n_jobs = max(1, min(int(n_jobs), len(plan)))
        for pid, res in run_tasks(tasks(), jobs=n_jobs, scheduler=scheduler):
            finish(pid, res)
    return [outcomes[rec.id] for rec in records if rec.id in outcomes]
