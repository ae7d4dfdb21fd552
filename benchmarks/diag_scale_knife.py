"""Which analysis stage moves when the entered scale moves by a hair (issues 4 and 6, session 31).

Each development series' baseline photo (``generate_series``, 800 x 600, as
``bench_compare.py --source series``) is analysed at its true px/mm and at px/mm x F (default
1.001). Per baseline: painted vessel pixels at both scales, the pixels painted at one scale only
and their largest connected pieces, and the first stage whose output differs (the points of
the detection after ``detect_vessels`` (also the deep pass's own call), ``reach_end_faces``,
``extend_ends`` and ``add_deep_veins``), the stage that grew the difference of point counts
most (the amplifier) and the skin background's cell at both scales. With ``--set KEY=VALUE``
(repeatable) an analyze option for both analyses (e.g. ``tail_probe_nfa=none``).

    .venv/bin/python benchmarks/diag_scale_knife.py --n 12
    .venv/bin/python benchmarks/diag_scale_knife.py --n 12 --set tail_probe_nfa=none --factor 0.999
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_synth_accuracy import analyze_options  # noqa: E402

# the stages watched: (module, function); their output points are compared
STAGES = (("veinscope.segment", "detect_vessels"), ("veinscope.extend", "reach_end_faces"),
          ("veinscope.extend", "extend_ends"), ("veinscope.segment", "add_deep_veins"))


def watched(log: list):
    """Wrap the stages (module attributes, read by ``analyze`` at call time) so that each call
    appends ``(name, points)`` to ``log``; returns the undo list."""
    undo = []
    for mod, name in STAGES:
        m = importlib.import_module(mod)
        f = getattr(m, name)

        def g(*a, _f=f, _name=name, **k):
            r = _f(*a, **k)
            pts = np.ascontiguousarray(r.points_yx)
            log.append((_name, int(pts.shape[0]), hash(pts.tobytes())))
            return r

        setattr(m, name, g)
        undo.append((m, name, f))
        pipeline = importlib.import_module("veinscope.pipeline")
        if getattr(pipeline, name, None) is f:  # imported into the pipeline's namespace at its import
            setattr(pipeline, name, g)
            undo.append((pipeline, name, f))
    return undo


def one(rgb, ppm, factor, opts):
    """Both analyses and their stage logs: ``((a0, log0), (a1, log1))``."""
    from veinscope.pipeline import analyze

    out = []
    for s in (1.0, factor):
        log: list = []
        undo = watched(log)
        try:
            a = analyze(rgb, px_per_mm=ppm * s, **opts)
        finally:
            for m, name, f in undo:
                setattr(m, name, f)
        out.append((a, log))
    return out


def first_difference(log0, log1) -> str:
    """The first stage whose points differ, with its point counts (``-`` if none)."""
    for (n0, p0, h0), (n1, p1, h1) in zip(log0, log1):
        if n0 != n1:
            return f"{n0} (call order)"
        if h0 != h1:
            return f"{n0} {p0}->{p1} points"
    return "-" if len(log0) == len(log1) else "stage calls differ"


def amplifier(log0, log1, *, min_points: int = 20) -> str:
    """The stage that grew the difference of the two runs' point counts most, and by how much
    (``-`` under ``min_points``). The deep pass's own ``detect_vessels`` (on the red channel,
    every call after the first) is left out: its points are not the detection's."""
    def main_chain(log):
        return [e for i, e in enumerate(log) if e[0] != "detect_vessels" or i == 0]

    best, gain, prev = "-", min_points - 1, 0
    for (n0, p0, _), (_, p1, _) in zip(main_chain(log0), main_chain(log1)):
        d = abs(p0 - p1)
        if d - prev > gain:
            best, gain = f"{n0} +{d - prev}", d - prev
        prev = d
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="series (seeds seed0 .. seed0 + n - 1)")
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--factor", type=float, default=1.001, help="the second analysis' px/mm over the true one")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an analyze option for both analyses")
    args = ap.parse_args(argv)
    opts = analyze_options(args.set)
    from veinscope.synth import generate_series

    print(f"{'seed':>5} {'ppm':>7} {'cell':>9} {'px x1':>7} {'px xF':>7} {'differ':>7}  largest pieces (px, y, x)   first stage moved / amplifier")
    moved = 0
    for seed in range(args.seed0, args.seed0 + args.n):
        ser = generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)))
        rgb, ppm = ser.photos[0].rgb, float(ser.photos[0].px_per_mm)
        (a0, log0), (a1, log1) = one(rgb, ppm, args.factor, opts)
        d = (a0.labels > 0) != (a1.labels > 0)
        k, _, st, _ = cv2.connectedComponentsWithStats(d.astype(np.uint8))
        big = sorted(((int(st[i, 4]), int(st[i, 1]), int(st[i, 0])) for i in range(1, k)), reverse=True)[:2]
        # the skin background's cell (chromophores.skin_optics: background_px / 8, rounded)
        cells = [int(round(a.params["background_px"] / 8.0)) for a in (a0, a1)]
        moved += int(d.sum()) > 500
        print(f"{seed:>5} {ppm:>7.4f} {cells[0]:>4}/{cells[1]:<4} {int((a0.labels > 0).sum()):>7} {int((a1.labels > 0).sum()):>7} "
              f"{int(d.sum()):>7}  {str(big):<27} {first_difference(log0, log1)} / {amplifier(log0, log1)}", flush=True)
    print(f"baselines with over 500 px painted at one scale only: {moved}/{args.n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
