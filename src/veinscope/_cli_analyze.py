"""``veinscope analyze``: the output contract (analysis.json, labels.png, diameter_mm.tif, overlay.png)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

__all__ = ["run_analyze", "write_analysis"]

log = logging.getLogger(__name__)


def write_analysis(analysis, rgb, out_dir: Path) -> None:
    """Write the four files of the analyze contract into ``out_dir`` (created if needed)."""
    import tifffile
    from PIL import Image

    from veinscope.report.overlay import render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_bytes(out_dir / "analysis.json", (json.dumps(analysis.to_dict(), indent=2) + "\n").encode())
    Image.fromarray(analysis.labels, mode="L").save(out_dir / "labels.png", compress_level=1)
    tifffile.imwrite(out_dir / "diameter_mm.tif", np.ascontiguousarray(analysis.diameter_mm, dtype=np.float32), compression="zlib")
    # fast PNG compression: level 1 is ~5x faster than the default for ~15 % more bytes
    Image.fromarray(render_overlay(rgb, analysis)).save(out_dir / "overlay.png", compress_level=1)


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
