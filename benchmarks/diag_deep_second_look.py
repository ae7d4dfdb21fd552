"""What the deep pass's second look (``analyze(deep_veins_hold_min_scale_mm=...)``) adds, piece by
piece (issues 4 and 6, diagnosis only): each piece's gate features (``segment._second_look_gate``:
the spread of its red profile, its ΔE00 and red share, the red share on each side),
whether it passes, and against the truth (generated photos) the share of its points within
max(3 px, half its width) of a true vessel, the true class and diameter there and the engine's::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_deep_second_look.py A402 A403 S300 Lveins_01

``A<seed>``: set A's photo (1600 x 1200, seeds 400-423; 600-611 set B); ``S<seed>``: a series'
baseline at 2400 x 1800 (``--size``); ``L<name>``: a legs-dev photo (no truth, nominal scale).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(Path(__file__).parent))
LEGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "legs-dev"
_REC: list = []


class _Catch(logging.Handler):
    def emit(self, record):
        if hasattr(record, "deep_second_look"):
            _REC.append(record.deep_second_look)


def report(tag, rgb, ppm, labels=None, diam=None, hold_mm=0.25):
    from veinscope.pipeline import analyze

    _REC.clear()
    a = analyze(rgb, px_per_mm=ppm, deep_veins_hold_min_scale_mm=hold_mm)
    if not _REC:
        print(tag, "no second look")
        return []
    feats, p, piece, step = _REC[-1]
    near = None if labels is None else distance_transform_edt(labels == 0)
    m, n = rgb.shape[:2]
    rows = []
    for q, f in feats.items():
        pts = np.minimum(p[piece == q] * step + (step - 1) // 2, (m - 1, n - 1))
        r = {"tag": tag, "piece": int(q), "passes": f["passes"], "points": int(pts.shape[0]),
             "y": int(np.median(pts[:, 0])), "x": int(np.median(pts[:, 1])),
             "width_mm": f["width"] * step / (ppm or 10.0), "courses": f["n"] / max(f["width"], 1e-9),
             "spread": f["spread"], "delta_e": f["delta_e"], "red_share": f["red_share"],
             "side_share": list(f["side_share"]),
             "labelled": float((a.labels[pts[:, 0], pts[:, 1]] > 0).mean())}
        if near is not None:
            r["on_truth"] = float((near[pts[:, 0], pts[:, 1]] <= max(3.0, 0.5 * f["width"] * step)).mean())
            lab = labels[pts[:, 0], pts[:, 1]]
            r["true_class"] = int(np.bincount(lab, minlength=5)[1:].argmax() + 1) if (lab > 0).any() else 0
            if diam is not None and (lab > 0).any():
                r["true_mm"] = float(np.median(diam[pts[:, 0], pts[:, 1]][lab > 0]))
                ad = a.diameter_mm[pts[:, 0], pts[:, 1]][lab > 0]
                r["engine_mm"] = float(np.nanmedian(ad)) if np.isfinite(ad).any() else None
        rows.append(r)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else ([round(float(x), 2) for x in v] if isinstance(v, list) else v)
                          for k, v in r.items()}), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="+")
    ap.add_argument("--size", type=int, nargs=2, default=(2400, 1800))
    ap.add_argument("--hold-mm", type=float, default=0.25)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import veinscope

    lg = logging.getLogger("veinscope.segment")
    lg.setLevel(logging.DEBUG)
    lg.addHandler(_Catch())
    veinscope.warmup()
    rows = []
    for w in args.what:
        if w.startswith("A"):
            from bench_synth_accuracy import set_a_photo

            seed = int(w[1:])
            ph = set_a_photo(seed - (600 if seed >= 600 else 400), seed, (1600, 1200))
            rows += report(w, ph.rgb, ph.px_per_mm, ph.labels, ph.diameter_mm, args.hold_mm)
        elif w.startswith("S"):
            from bench_compare import benchmark_series

            b = benchmark_series(int(w[1:]), tuple(args.size)).photos[0]
            rows += report(w, b.rgb, float(b.px_per_mm), b.labels, b.diameter_mm, args.hold_mm)
        elif w.startswith("L"):
            from PIL import Image

            path = sorted(LEGS.glob(f"{w[1:]}*"))[0]
            rows += report(w, np.asarray(Image.open(path).convert("RGB")), None, hold_mm=args.hold_mm)
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
