"""Command line: ``veinscope SUBCOMMAND`` (also ``python -m veinscope``).

Exit codes: 0 ok, 1 failure (a photo could not be analysed), 2 usage error.
Heavy imports happen after argument parsing so that ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import sys
from pathlib import Path

from veinscope._version import __version__

__all__ = ["main"]

log = logging.getLogger("veinscope")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="veinscope",
        description="Measure thread veins and reticular veins in leg photos.",
    )
    p.add_argument("--version", action="version", version=f"veinscope {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser(
        "analyze",
        help="find, classify and measure veins in one or more photos",
        description="Writes analysis.json, labels.png, diameter_mm.tif and overlay.png into --out "
        "(one sub-folder per photo when several photos are given).",
    )
    a.add_argument("photos", nargs="+", metavar="PHOTO", help="photo file(s): JPEG, PNG, TIFF, WebP, HEIC, BMP")
    a.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    a.add_argument(
        "--px-per-mm",
        type=_positive_float,
        default=None,
        metavar="X",
        help="scale of the photo at the skin, in pixels per millimetre (without it, results are in pixels)",
    )

    v = sub.add_parser(
        "vesselmap",
        help="generic vessel map of any image (retina, microscopy)",
        description="Writes DIR/<stem>_score.png (16-bit, higher = more vessel) and DIR/<stem>_mask.png (0/255).",
    )
    v.add_argument("images", nargs="+", metavar="IMAGE")
    v.add_argument("--out", required=True, type=Path, metavar="DIR")
    v.add_argument("--fov", type=Path, default=None, metavar="MASK", help="field-of-view mask (non-zero inside), applied to every image")
    v.add_argument("--bright", action="store_true", help="vessels are brighter than the background (fluorescence)")

    c = sub.add_parser(
        "compare",
        help="compare a follow-up photo of a treated site with its baseline",
        description="Aligns FOLLOWUP onto BASELINE and writes comparison.json (improvement, staining, matting, "
        "new vessels, registration quality), change_map.png and side_by_side.png into --out.",
    )
    c.add_argument("baseline", metavar="BASELINE", help="baseline photo (before treatment)")
    c.add_argument("followup", metavar="FOLLOWUP", help="follow-up photo of the same site")
    c.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    c.add_argument("--px-per-mm", type=_positive_float, default=None, metavar="X", help="scale of the baseline photo at the skin, pixels per millimetre")
    t = sub.add_parser(
        "track",
        help="compare every later session with the first one (time series)",
        description="Compares each PHOTO with the first; writes DIR/<stem>/ per session and DIR/track.csv, DIR/track.json.",
    )
    t.add_argument("photos", nargs="+", metavar="PHOTO", help="the baseline photo first, then the follow-ups in order")
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    t.add_argument("--px-per-mm", type=_positive_float, default=None, metavar="X", help="scale of the baseline photo at the skin, pixels per millimetre")

    g = sub.add_parser(
        "synth",
        help="generate synthetic leg photos of a treatment course with exact truth",
        description="Writes DIR/session{k}.jpg and its truth (labels, diameters, masks, JSON) for each session k "
        "(0 = baseline) and DIR/series_truth.json (improvement, staining, matting, homographies); see README.",
    )
    g.add_argument("--seed", type=int, required=True, metavar="N", help="random seed (same seed and options, same files)")
    g.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    g.add_argument("--sessions", type=int, default=1, choices=range(1, 9), metavar="K", help="number of sessions 1-8 (default 1)")
    g.add_argument("--size", type=_synth_size, default=(4032, 3024), metavar="WxH", help="photo size in px (default 4032x3024, 12 MP)")
    g.add_argument("--px-per-mm", type=_positive_float, default=None, metavar="X", help="scale at the baseline photo's centre (default: drawn, 6-15)")
    g.add_argument("--skin-type", type=int, choices=range(1, 7), default=None, metavar="T", help="Fitzpatrick skin type 1-6 (default: drawn)")
    g.add_argument("--vessels", type=int, default=None, metavar="V", help="number of vessel structures (default: drawn)")
    g.add_argument("--jpeg-quality", type=int, default=92, metavar="Q", help="JPEG quality 1-100 (default 92)")
    g.add_argument("--overlays", action="store_true", help="also write session{k}_overlay.jpg with the truth painted on")

    from veinscope._cli_card import add_card_parser

    add_card_parser(sub)

    from veinscope._cli_store import add_store_parsers

    add_store_parsers(sub)

    from veinscope._cli_batch import add_batch_parsers

    add_batch_parsers(sub)
    return p


def _synth_size(text: str) -> tuple[int, int]:
    from veinscope._cli_synth import parse_size

    return parse_size(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value < 1e4):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels per millimetre, got {text!r}")
    return value


def _fast_exit() -> None:
    """Run as the process's command line (``argv`` not given), the process ends with the
    command. At exit the interpreter runs full garbage collections over every object still
    alive: about 125 000 of Numba, NumPy and SciPy after an analysis, about 0.3 s on a 2-core
    machine (BENCHMARKS.md, start-up). Freezing them first (``gc.freeze``, at exit, after the
    command's files are written and closed) skips those passes; objects outside reference
    cycles are still freed as the modules are torn down, the rest is returned to the system
    with the process. In-process callers (tests, other programs) pass ``argv`` and are left
    alone."""
    atexit.register(gc.freeze)


#: Commands that analyse photos (image-sized arrays allocated and freed many times).
_ANALYSING = frozenset({"analyze", "batch", "reanalyze", "compare", "track", "vesselmap"})


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:
        _fast_exit()
        if args.command in _ANALYSING:
            from veinscope._memory import retain_freed_memory

            retain_freed_memory()  # the process ends with the command: reuse freed image memory
            from veinscope._numba_start import start_numba

            start_numba()  # Numba's start without scipy.linalg's import (0.14 s)
    if args.command == "analyze":
        from veinscope._cli_analyze import run_analyze

        return run_analyze(args)
    if args.command == "vesselmap":
        from veinscope._cli_vesselmap import run_vesselmap

        return run_vesselmap(args)
    if args.command in ("compare", "track"):
        from veinscope._cli_compare import run_compare, run_track

        return run_compare(args) if args.command == "compare" else run_track(args)
    if args.command == "synth":
        from veinscope._cli_synth import run_synth

        return run_synth(args)
    if args.command == "card":
        from veinscope._cli_card import run_card

        return run_card(args)
    if args.command in ("batch", "reanalyze"):
        from veinscope._cli_batch import run_batch_command

        return run_batch_command(args)
    from veinscope._cli_store import STORE_COMMANDS, run_store

    if args.command in STORE_COMMANDS:
        return run_store(args)
    parser.print_help()
    return 2
