"""``veinscope compare`` and ``veinscope track``: the session-comparison output contract.

``compare BASELINE FOLLOWUP --out DIR`` writes ``comparison.json``, ``change_map.png`` and
``side_by_side.png``. ``track PHOTO1 PHOTO2 ... --out DIR`` compares every later session with
the first and writes ``DIR/<stem>/`` with those three files per session, plus the time series
``DIR/track.csv`` and ``DIR/track.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import numpy as np

__all__ = ["run_compare", "run_track", "write_comparison"]

log = logging.getLogger(__name__)


def write_comparison(comparison, out_dir: Path) -> None:
    """Write ``comparison.json``, ``change_map.png`` and ``side_by_side.png`` into ``out_dir``."""
    from PIL import Image

    from veinscope.report.change_map import render_change_map, render_side_by_side

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_bytes(out_dir / "comparison.json", (json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n").encode())
    Image.fromarray(render_change_map(comparison)).save(out_dir / "change_map.png", compress_level=3)
    Image.fromarray(render_side_by_side(comparison)).save(out_dir / "side_by_side.png", compress_level=3)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _summary(c) -> str:
    d = c.to_dict()
    imp = "not computed" if c.improvement_pct is None else f"{c.improvement_pct:.0f} % (grade {c.grade}: {d['grade_text']})"
    st, mt, nv = d["staining"], d["matting"], d["new_vessels"]

    def area(b):
        return f"{b['area_mm2']:.1f} mm²" if b["area_mm2"] is not None else f"{b['area_px2']} px²"

    parts = [
        f"improvement {imp}",
        "staining " + (f"{st['patches']} patch(es), {area(st)}" if st["patches"] else "none"),
        "matting " + (f"{mt['patches']} patch(es), {area(mt)}" if mt["patches"] else "none"),
        "new vessels elsewhere " + (str(nv["count"]) if nv["count"] else "none"),
    ]
    res, res_px = d["registration"]["residual_mm"], d["registration"]["residual_px"]
    parts.append(
        f"alignment residual {res:.2f} mm" if res is not None else (f"alignment residual {res_px:.1f} px" if res_px is not None else "alignment residual not measured")
    )
    return "; ".join(parts)


def _load(path: Path):
    from veinscope.io import load_photo

    return load_photo(path)


def run_compare(args) -> int:
    from veinscope.compare import compare
    from veinscope.errors import VeinScopeError

    base, fu = Path(args.baseline), Path(args.followup)
    try:
        b = _load(base)
        f = _load(fu)
        c = compare(b, f, px_per_mm=args.px_per_mm)
        write_comparison(c, args.out)
    except VeinScopeError as exc:
        print(f"{fu.name} vs {base.name}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"could not write the results to {args.out} ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    print(f"{fu.name} vs {base.name}: {_summary(c)} -> {args.out}")
    for w in c.warnings:
        print(f"  warning: {w}")
    return 0


_CSV_FIELDS = [
    "session",
    "photo",
    "improvement_pct",
    "grade",
    "visible_length_mm",
    "baseline_length_mm",
    "staining_area_mm2",
    "staining_delta_e00",
    "matting_area_mm2",
    "matting_patches",
    "new_vessels",
    "new_vessel_length_mm",
    "residual_mm",
    "overlap_frac",
    "status",
]


def run_track(args) -> int:
    from veinscope.compare import compare
    from veinscope.errors import VeinScopeError
    from veinscope.pipeline import analyze

    photos = [Path(p) for p in args.photos]
    stems = [p.stem for p in photos]
    if len(photos) < 2:
        print("error: give at least two photos (the first is the baseline).", file=sys.stderr)
        return 2
    if len(set(stems)) != len(stems):
        print("error: several photos have the same file name; give them different names.", file=sys.stderr)
        return 2
    try:
        b = _load(photos[0])
        a_b = analyze(b, px_per_mm=args.px_per_mm)
    except VeinScopeError as exc:
        print(f"{photos[0].name}: {exc}", file=sys.stderr)
        return 1
    rows = []
    failed = 0
    for i, path in enumerate(photos[1:], start=1):
        row = dict.fromkeys(_CSV_FIELDS)
        row.update(session=i, photo=path.name)
        try:
            c = compare(b, _load(path), px_per_mm=args.px_per_mm, baseline_analysis=a_b)
            write_comparison(c, args.out / path.stem)
        except VeinScopeError as exc:
            failed += 1
            row["status"] = f"not compared: {exc}"
            rows.append(row)
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failed += 1
            print(f"{path.name}: could not write the results ({exc.strerror or exc}).", file=sys.stderr)
            row["status"] = "not written"
            rows.append(row)
            continue
        d = c.to_dict()
        row.update(
            improvement_pct=d["improvement_pct"],
            grade=d["grade"],
            visible_length_mm=d["lengths"]["visible_mm"],
            baseline_length_mm=d["lengths"]["baseline_mm"],
            staining_area_mm2=d["staining"]["area_mm2"],
            staining_delta_e00=d["staining"]["delta_e00"],
            matting_area_mm2=d["matting"]["area_mm2"],
            matting_patches=d["matting"]["patches"],
            new_vessels=d["new_vessels"]["count"],
            new_vessel_length_mm=d["new_vessels"]["length_mm"],
            residual_mm=d["registration"]["residual_mm"],
            overlap_frac=d["registration"]["overlap_frac"],
            status="ok",
        )
        rows.append(row)
        print(f"session {i} {path.name}: {_summary(c)}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "track.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=_CSV_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        from veinscope._version import __version__

        # the scale every comparison used: the baseline's (given, or from its card), not only the option
        series = {"baseline": photos[0].name, "px_per_mm": a_b.px_per_mm,
                  "scale_source": a_b.params.get("scale_source"), "sessions": rows, "version": __version__}
        _atomic_bytes(args.out / "track.json", (json.dumps(series, indent=2, default=_json_default) + "\n").encode())
    except OSError as exc:
        print(f"could not write the time series to {args.out} ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    print(f"time series -> {args.out / 'track.csv'}")
    return 1 if failed else 0


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
