"""Command line: ``veinscope SUBCOMMAND`` (also ``python -m veinscope``).

Exit codes: 0 ok, 1 failure (a photo could not be analysed), 2 usage error.
Heavy imports happen after argument parsing so that ``--help`` is fast.
"""

from __future__ import annotations

import argparse
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
    a.add_argument("photos", nargs="+", metavar="PHOTO", help="photo file(s): JPEG, PNG, TIFF, WebP, BMP")
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
    return p


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value < 1e4):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels per millimetre, got {text!r}")
    return value


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
    if args.command == "analyze":
        from veinscope._cli_analyze import run_analyze

        return run_analyze(args)
    if args.command == "vesselmap":
        from veinscope._cli_vesselmap import run_vesselmap

        return run_vesselmap(args)
    parser.print_help()
    return 2
