"""``veinscope batch`` and ``veinscope reanalyze``: many photos in parallel, resumable.

Only argparse is imported at module level (``--help`` stays fast). Exit codes: 0 every photo
done (or already done), 1 at least one photo failed (the others are done), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["BATCH_COMMANDS", "add_batch_parsers", "run_batch_command"]

BATCH_COMMANDS = ("batch", "reanalyze")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of worker processes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 worker process, got {text!r}")
    return value


def _px_per_mm(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0 < value < 1e4):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels per millimetre, got {text!r}")
    return value


def add_batch_parsers(sub) -> None:
    """Add ``batch`` and ``reanalyze`` to the main parser's subparsers."""
    run = argparse.ArgumentParser(add_help=False)
    g = run.add_argument_group("where the work runs")
    g.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N",
                   help="worker processes (default: one per core); 1 works in this process")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 "
                        "(needs pip install 'veinscope[dask]'); -j is then ignored")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    b = sub.add_parser(
        "batch",
        parents=[run],
        help="analyse many photos in parallel (resumable), with a CSV summary",
        description="Analyses every photo into DIR/<photo>/ (analysis.json, labels.png, diameter_mm.tif, "
        "overlay.png) and writes DIR/summary.csv (one row per photo; column names carry the unit, e.g. "
        "total_length_mm, total_coverage_pct) and DIR/manifest.jsonl. Run it again to continue: photos "
        "already done (same content, same veinscope version, same scale) are skipped; failed ones are "
        "tried again.",
    )
    b.add_argument("photos", nargs="+", metavar="FOLDER_OR_GLOB",
                   help="folder(s) of photos, glob pattern(s) such as 'clinic/**/*.jpg' (quoted), or files")
    b.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    b.add_argument("-r", "--recursive", action="store_true", help="also take photos in sub-folders of a folder")
    b.add_argument("--px-per-mm", type=_px_per_mm, default=None, metavar="X",
                   help="scale at the skin for every photo, px per mm (default: the card in each photo, if any)")

    r = sub.add_parser(
        "reanalyze",
        parents=[run],
        help="analyse the photos in the patient records again with this version",
        description="Analyses every stored photo whose latest analysis is by another veinscope version "
        "and saves the new analysis beside the old ones (each records its version and parameters). "
        "A scale entered by hand is used again; the card is looked for again. Resumable.",
    )
    r.add_argument("--patient", default=None, metavar="CODE", help="only this patient's photos")
    r.add_argument("--force", action="store_true", help="also photos already analysed by this version")
    r.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="data folder (default: $VEINSCOPE_DATA_DIR or the user data folder)")
    r.add_argument("--database-url", default=None, metavar="URL",
                   help="database (default: $VEINSCOPE_DATABASE_URL, else SQLite in the data folder)")


class _Bar:
    """A tqdm progress bar on stderr (shown on a terminal only), or nothing."""

    def __init__(self, enabled: bool, unit: str = "photo"):
        self._enabled = enabled
        self._unit = unit
        self._bar = None

    def start(self, todo: int, skipped: int) -> None:
        if skipped:
            print(f"{skipped} photo(s) already done with this version: skipped.", file=sys.stderr)
        if self._enabled and todo:
            from tqdm import tqdm

            self._bar = tqdm(total=todo, unit=self._unit, file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(self, status: str, label: str, error: str | None) -> None:
        if status == "skipped":
            return
        if status == "failed":
            msg = f"{label}: FAILED: {error}"
            if self._bar is not None:
                self._bar.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr)
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_batch_command(args) -> int:
    if args.command == "batch":
        return _run_batch(args)
    return _run_reanalyze(args)


def _run_batch(args) -> int:
    from veinscope.batch import collect_photos, run_batch

    try:
        photos = collect_photos(args.photos, recursive=args.recursive)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    photos = [p for p in photos if out not in p.parents]  # never our own outputs
    if not photos:
        print("error: no photos found (looked for " + ", ".join(args.photos) + ").", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file, not a folder.", file=sys.stderr)
        return 2
    above = next((p for p in args.out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        print(f"error: --out {args.out} cannot be made: {above} is a file, not a folder. Give a folder path whose "
              "parts are folders (or do not exist yet).", file=sys.stderr)
        return 2
    bar = _Bar(not args.no_progress)
    try:
        report = run_batch(
            photos, args.out, jobs=args.jobs, px_per_mm=args.px_per_mm, scheduler=args.scheduler,
            on_start=bar.start, progress=lambda o: bar.update(o.status, str(o.item.path), o.error),
        )
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output folder or its files cannot be created or written
        where = exc.filename or args.out
        print(f"error: could not create or write {where} ({exc.strerror or exc}). Check --out: every folder in it "
              "must exist or be creatable, and be writable.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print("\ninterrupted: the photos finished so far are kept; run the same command again to continue.",
              file=sys.stderr)
        return 130
    finally:
        bar.close()
    c = report.counts
    rate = "" if report.photos_per_s is None else f", {report.photos_per_s:.2f} photos/s"
    print(f"{c['done']} analysed, {c['skipped']} already done, {c['failed']} failed in "
          f"{report.seconds:.1f} s{rate} -> {report.summary_csv}")
    return 1 if c["failed"] else 0


def _run_reanalyze(args) -> int:
    from veinscope.batch import reanalyze_store
    from veinscope.store import StoreError, open_store

    bar = _Bar(not args.no_progress)
    try:
        with open_store(args.database_url, data_dir=args.data_dir) as store:
            outcomes = reanalyze_store(
                store, code=args.patient, force=args.force, jobs=args.jobs, scheduler=args.scheduler,
                on_start=bar.start, progress=lambda o: bar.update(o.status, f"photo {o.photo_id}", o.error),
            )
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("\ninterrupted: the analyses saved so far are kept; run the same command again to continue.",
              file=sys.stderr)
        return 130
    finally:
        bar.close()
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    from veinscope._version import __version__

    print(f"{done} photo(s) analysed again with veinscope {__version__}, {skipped} already up to date, {failed} failed.")
    return 1 if failed else 0
