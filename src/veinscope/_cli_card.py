"""``veinscope card``: write the printable calibration card (PDF, 100 % scale, with instructions)."""

from __future__ import annotations

import sys

__all__ = ["add_card_parser", "run_card"]


def add_card_parser(sub) -> None:
    k = sub.add_parser(
        "card",
        help="write the printable calibration card (PDF)",
        description="Writes a PDF with the VeinScope scale card (credit-card size, ArUco markers, grey and colour "
        "patches, a millimetre ruler) and printing instructions. Print it at 100 % ('Actual size').",
    )
    from pathlib import Path

    k.add_argument("--out", required=True, type=Path, metavar="FILE", help="output PDF file, e.g. card.pdf")
    k.add_argument("--page", choices=("A4", "Letter"), default="A4", help="paper size (default A4)")
    k.add_argument("--copies", type=int, choices=range(1, 5), default=2, metavar="N", help="cards on the page, 1-4 (default 2)")


def run_card(args) -> int:
    from veinscope.calibrate import write_card_pdf

    out = args.out
    if out.suffix.lower() != ".pdf":
        print(f"error: the card is written as a PDF; give a file name ending in .pdf (got {out.name!r}).", file=sys.stderr)
        return 2
    try:
        path = write_card_pdf(out, page=args.page, copies=args.copies)
    except OSError as exc:
        print(f"error: could not write {out} ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    print(f"card written to {path}: print it at 100 % ('Actual size'), then check that the ruler measures 40 mm.")
    return 0
