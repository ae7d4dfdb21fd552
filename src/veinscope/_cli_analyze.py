"""``veinscope analyze``: the output contract (analysis.json, labels.png, diameter_mm.tif, overlay.png)."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

__all__ = ["encode_analysis", "run_analyze", "write_analysis"]

log = logging.getLogger(__name__)


def _tiff_float32(arr: np.ndarray) -> bytes:
    """Single-page float32 TIFF, zlib level 1 (the map is mostly zeros: 0.1 s for 12 MP)."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(arr, dtype=np.float32), compression="zlib",
                     compressionargs={"level": 1})
    return buf.getvalue()


def encode_analysis(analysis, rgb) -> dict[str, bytes]:
    """The four files of the analyze contract, encoded in memory (file name -> bytes).

    ``analysis.json`` (the figures), ``labels.png`` (8-bit grey, class codes 0-4),
    ``diameter_mm.tif`` (float32, mm at vessel pixels, 0 elsewhere) and ``overlay.png``
    (RGB, the size of the photo). ``analysis.json`` comes last: writers put it in place last,
    so that its presence marks a complete set.
    """
    from veinscope.report.overlay import encode_png, render_overlay

    files = {
        "labels.png": encode_png(np.asarray(analysis.labels, dtype=np.uint8)),
        "diameter_mm.tif": _tiff_float32(analysis.diameter_mm),
        "overlay.png": encode_png(render_overlay(rgb, analysis)),
        "analysis.json": (json.dumps(analysis.to_dict(), indent=2) + "\n").encode(),
    }
    return files


def write_analysis(analysis, rgb, out_dir: Path) -> None:
    """Write the four files of the analyze contract into ``out_dir`` (created if needed).

    Each file is written under a temporary name and renamed into place; ``analysis.json`` last.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in encode_analysis(analysis, rgb).items():
        _atomic_bytes(out_dir / name, data)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def run_analyze(args) -> int:
    from veinscope.errors import VeinScopeError
    from veinscope.io import load_photo
    from veinscope.pipeline import analyze

    photos = [Path(p) for p in args.photos]
    stems = [p.stem for p in photos]
    several = len(photos) > 1
    if several and len(set(stems)) != len(stems):
        print("error: several photos have the same file name; give them different names.", file=sys.stderr)
        return 2
    failed = 0
    for path in photos:
        out_dir = args.out / path.stem if several else args.out
        try:
            photo = load_photo(path)
            result = analyze(photo, px_per_mm=args.px_per_mm)
            write_analysis(result, photo.rgb, out_dir)
        except VeinScopeError as exc:
            failed += 1
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failed += 1
            print(f"{path.name}: could not write the results to {out_dir} ({exc.strerror or exc}).", file=sys.stderr)
            continue
        tot = result.to_dict()["classes"]["total"]
        unit = f"{tot['length_mm']:.1f} mm" if tot["length_mm"] is not None else f"{tot['length_px']:.0f} px"
        print(f"{path.name}: {tot['segments']} vessel segments, length {unit}, coverage {tot['coverage_pct']:.2f} % -> {out_dir}")
        for w in result.warnings:
            print(f"  warning: {w}")
    return 1 if failed else 0
