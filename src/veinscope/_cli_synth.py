"""``veinscope synth``: write a generated photo series with its truth (see :mod:`veinscope.synth`).

Files written into the output folder, for each session ``k`` (0 = baseline):

``session{k}.jpg``
    the photo (the generator's own JPEG bytes).
``session{k}_labels.png``
    uint8 class codes: 0 none, 1 red_telangiectasia, 2 blue_telangiectasia, 3 reticular, 4 over_3mm.
``session{k}_diameter_mm.tif``
    float32 visible diameter (mm) at vessel pixels, 0 elsewhere (zlib-compressed TIFF).
``session{k}_ignore.png``, ``session{k}_skin.png``, ``session{k}_staining.png``, ``session{k}_matting.png``, ``session{k}_card.png``
    masks, 0 or 255.
``session{k}_truth.json``
    ``px_per_mm`` (at the photo centre), ``homography_mm_to_px`` (skin plane mm -> photo px),
    ``truth`` (per class and total: ``length_mm``, ``area_mm2``, ``coverage_pct``),
    ``side_effects`` (staining ``area_mm2``; matting ``area_mm2``, ``patches``), ``card`` (corners
    and marker corners in px, px/mm at the card), ``centrelines`` and ``params``.
``series_truth.json``
    ``changes``: per follow-up against the baseline, ``improvement_pct`` (overall and per
    class), lengths, staining and matting, ``homography_baseline_to_session`` (baseline px ->
    session px); ``params`` of the course.
``session{k}_overlay.jpg``
    with ``--overlays``: the truth painted on the photo.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["parse_size", "run_synth", "write_series"]


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (W, H); argparse type."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (e.g. 1600x1200), got {text!r}") from None
    if not (64 <= w <= 12000 and 64 <= h <= 12000):
        raise argparse.ArgumentTypeError(f"width and height must be 64-12000 px, got {text!r}")
    return w, h


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _centrelines_json(photo) -> list[dict]:
    out = []
    for c in photo.centrelines:
        out.append(
            {
                "class": c["class"],
                "kind": c["kind"],
                "structure": c["structure"],
                "branch": c["branch"],
                "depth_mm": round(c["depth_mm"], 4),
                "points_yx": np.round(c["points_yx"], 2).tolist(),
                "diameter_mm": np.round(c["diameter_mm"], 4).tolist(),
                "physical_diameter_mm": np.round(c["physical_diameter_mm"], 4).tolist(),
                "length_mm": np.round(c["length_mm"], 6).tolist(),
                "visible": c["visible"].astype(int).tolist(),
            }
        )
    return out


def write_series(series, out: Path, *, overlays: bool = False, jpeg_quality: int = 92) -> list[Path]:
    """Write every photo of ``series`` (a :class:`veinscope.synth.SynthSeries`) and its truth
    into ``out``; return the paths written."""
    import tifffile
    from PIL import Image

    from veinscope.synth import _photo_truth_dict

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def png(arr: np.ndarray, path: Path) -> None:
        Image.fromarray(arr).save(path, optimize=True)
        written.append(path)

    for p in series.photos:
        k = p.session
        stem = out / f"session{k}"
        jpg = stem.with_suffix(".jpg")
        if p.jpeg is not None:
            jpg.write_bytes(p.jpeg)
        else:
            Image.fromarray(p.rgb).save(jpg, format="JPEG", quality=jpeg_quality)
        written.append(jpg)
        png(p.labels, out / f"session{k}_labels.png")
        tif = out / f"session{k}_diameter_mm.tif"
        tifffile.imwrite(tif, np.asarray(p.diameter_mm, np.float32), compression="zlib")
        written.append(tif)
        for name, mask in (
            ("ignore", p.ignore), ("skin", p.skin_mask), ("staining", p.staining), ("matting", p.matting),
            ("card", p.confounders["card"]),
        ):
            png((np.asarray(mask, bool) * np.uint8(255)), out / f"session{k}_{name}.png")
        truth = {"photo": jpg.name, **_photo_truth_dict(p), "centrelines": _centrelines_json(p), "params": p.params}
        path = out / f"session{k}_truth.json"
        path.write_text(json.dumps(truth, default=_json_default, separators=(",", ":")) + "\n")
        written.append(path)
        if overlays:
            ov = out / f"session{k}_overlay.jpg"
            Image.fromarray(p.truth_overlay()).save(ov, quality=88)
            written.append(ov)
    path = out / "series_truth.json"
    doc = {"photos": [f"session{p.session}.jpg" for p in series.photos], "changes": series.changes, "params": series.params}
    path.write_text(json.dumps(doc, default=_json_default, indent=1) + "\n")
    written.append(path)
    return written


def run_synth(args: argparse.Namespace) -> int:
    """Generate and write the series the parsed ``veinscope synth`` arguments ask for."""
    import sys

    from veinscope.synth import generate_series

    try:
        series = generate_series(
            seed=args.seed,
            sessions=args.sessions,
            size=args.size,
            px_per_mm=args.px_per_mm,
            skin_type=args.skin_type,
            n_vessels=args.vessels,
            jpeg_quality=args.jpeg_quality,
        )
    except (ValueError, TypeError) as exc:  # an option out of the generator's range: usage error
        print(f"veinscope synth: error: {exc}", file=sys.stderr)
        return 2
    written = write_series(series, args.out, overlays=args.overlays)
    for p in series.photos:
        t = p.truth_figures()["total"]
        print(
            f"session {p.session}: {p.rgb.shape[1]}x{p.rgb.shape[0]} px, {p.px_per_mm:.2f} px/mm, "
            f"vessels {t['length_mm']:.0f} mm, coverage {t['coverage_pct']:.2f} %"
            + ("" if p.card is None else ", card in view")
        )
    for c in series.changes:
        imp = c["improvement_pct"]["total"]
        print(
            f"session {c['session']} vs baseline: improvement "
            + ("n/a" if imp is None or not math.isfinite(imp) else f"{imp:.0f} %")
            + f", staining {c['staining']['area_mm2']:.0f} mm2, matting {c['matting']['area_mm2']:.0f} mm2"
        )
    print(f"wrote {len(written)} files into {args.out}")
    return 0
