"""Is a wide faint vessel held to a stricter threshold than a fine one? Per-scale noise units of
the line strength, and a per-scale threshold tried on set A (issue 4, session 13).

Run:  .venv/bin/python benchmarks/bench_scale_noise.py units [--n 24] [--cache DIR] [--legs DIR]
      .venv/bin/python benchmarks/bench_scale_noise.py accuracy --unit same-p90 [--gain LO HI] -- [bench_synth_accuracy args]

``segment.detect_vessels`` holds every scale to one noise unit: the local mean of the line
strength ``q`` (the scale-normalised ridge strength times the vesselness, maximum over scales)
over the skin. For white noise the scale-normalised response falls with the scale (as
1/sigma), a bar's response at its own scale does not; so, if the photo's noise were white, a
wide faint vein would be held to a threshold set by the fine scales' noise.

``units`` measures, per photo, the noise unit of each scale relative to the finest scale's, as
the gain ``u(sigma_0) / u(sigma_k)`` that a per-scale threshold ``q / u(sigma)`` would apply
(above 1: that scale's noise is weaker than the finest's, so its vessels could be taken at a
lower strength). The unit of a scale is a quantile of ``q`` over the skin pixels (the engine's
``inner`` skin) whose best scale (``RidgeResponse.scale_px``) it is, among those with ``q > 0``:

- ``same p90`` / ``same p95``: of the bright-ridge response the engine detects on (vessels
  included: on a photo full of veins their flanks raise the coarse scales' units);
- ``opp p95``: of the *dark*-ridge response of the same signal (``black_ridges=True``, the
  opposite polarity, where vessels give nothing): the texture and camera noise alone.

On set A (generated photos, ``bench_synth_accuracy.set_a_photo``) and on the real photos of
``--legs`` (default ../shared/data/legs-dev, if present; no scale given, so the analysis's
nominal 10 px/mm scales).

``accuracy`` runs ``bench_synth_accuracy.py`` with the detection wrapped so that the line
strength is multiplied by the gain of each pixel's best scale (``--unit`` one of
``same-median``, ``same-p90``, ``same-p95``, ``opp-p95``; the gains clipped to ``--gain LO HI``,
default 1 4: only ever looser than today, the finest scale unchanged) before the ridge
non-maximum suppression, the hysteresis levels and the crest snap, while the local noise map is
still taken from the ungained strength: i.e. the hysteresis levels become ``level * noise /
gain(scale)``. The arguments after ``--`` go to ``bench_synth_accuracy.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_photo  # noqa: E402

#: gamma of the opposite-polarity response: ``analyze``'s default ``line_gamma``
LINE_GAMMA = 0.01


def _inner(skin, border_px=3):
    """The skin pixels ``detect_vessels`` measures its noise on (the engine's own helper)."""
    from veinscope.segment import _inner_skin

    return _inner_skin(np.ascontiguousarray(skin, dtype=bool), border_px)[0]


def nearest_scale(scale_px, sigmas):
    """Index of the nearest of the ascending ``sigmas`` for each scale (0 for scale 0)."""
    sigmas = np.asarray(sigmas, np.float64)
    return np.searchsorted(0.5 * (sigmas[1:] + sigmas[:-1]), scale_px, side="left")


def scale_units(q, scale_px, sigmas, where, stat, *, step=3, min_count=200):
    """Per-scale unit: ``stat`` ('median', 'mean' or 'pNN') of ``q > 0`` over ``where`` for the
    pixels whose best scale is each sigma (every ``step``-th row and column); NaN below
    ``min_count`` pixels."""
    sub = where[::step, ::step]
    qs = q[::step, ::step][sub]
    ks = nearest_scale(scale_px[::step, ::step][sub], sigmas)
    units = np.full(len(sigmas), np.nan)
    for k in range(len(sigmas)):
        v = qs[(qs > 0) & (ks == k)]
        if v.size >= min_count:
            units[k] = np.median(v) if stat == "median" else v.mean() if stat == "mean" else np.percentile(v, float(stat[1:]))
    return units


def gains_of(units, lo, hi):
    """Gain per scale bringing its unit to the finest scale's, clipped to [lo, hi]; 1 where unknown."""
    g = np.ones(len(units), np.float32)
    if np.isfinite(units[0]) and units[0] > 0:
        ok = np.isfinite(units) & (units > 0)
        g[ok] = np.clip(units[0] / units[ok], lo, hi)
    g[0] = 1.0
    return g


def units_for(ridge, skin, signal):
    """{name: gains u0/uk unclipped} for one photo's detection inputs."""
    from veinscope.vesselness import ridge_response

    inner = _inner(skin)
    q = ridge.strength * ridge.vesselness
    out = {st: scale_units(q, ridge.scale_px, ridge.sigmas_px, inner, st) for st in ("p90", "p95")}
    out = {f"same {k}": gains_of(u, 0, np.inf) for k, u in out.items()}
    rb = ridge_response(signal, sigmas_px=ridge.sigmas_px, black_ridges=True, gamma=LINE_GAMMA)
    u = scale_units(rb.strength * rb.vesselness, rb.scale_px, ridge.sigmas_px, inner, "p95")
    out["opp p95"] = gains_of(u, 0, np.inf)
    return out


def per_scale_detector(unit: str, lo: float, hi: float):
    """A stand-in for ``veinscope.pipeline.detect_vessels`` with per-scale gains (module doc)."""
    import veinscope.segment as seg
    from veinscope.vesselness import ridge_response

    source, stat = unit.split("-")

    def detect(ridge, skin, signal=None, **kw):
        inner = _inner(np.asarray(skin, bool), kw.get("border_px", 3))
        if source == "same":
            # ridge_response(weighted=True), as the pipeline calls it, has no vesselness map: its
            # strength is the line strength already
            q = ridge.strength if ridge.vesselness is None else ridge.strength * ridge.vesselness
            units = scale_units(q, ridge.scale_px, ridge.sigmas_px, inner, stat)
        else:
            rb = ridge_response(signal, sigmas_px=ridge.sigmas_px, black_ridges=True, gamma=LINE_GAMMA)
            units = scale_units(rb.strength * rb.vesselness, rb.scale_px, ridge.sigmas_px, inner, stat)
        gains = gains_of(units, lo, hi)
        gain_map = gains[nearest_scale(ridge.scale_px, ridge.sigmas_px)]
        gained = dataclasses.replace(ridge, strength=(ridge.strength * gain_map).astype(np.float32))
        local_noise = seg._local_noise

        def ungained_noise(q, where, *, cell_px):
            return local_noise(q / gain_map, where, cell_px=cell_px)

        seg._local_noise = ungained_noise
        try:
            return seg.detect_vessels(gained, skin, signal, **kw)
        finally:
            seg._local_noise = local_noise

    return detect


def _units(args) -> int:
    import veinscope
    import veinscope.pipeline as pl
    from PIL import Image

    seen = {}
    det0 = pl.detect_vessels

    def record(ridge, skin, signal=None, **kw):
        seen["units"] = units_for(ridge, np.asarray(skin, bool), signal)
        return det0(ridge, skin, signal, **kw)

    pl.detect_vessels = record
    groups: dict[str, list] = {}
    names = ("same p90", "same p95", "opp p95")
    print("| photo | unit | " + " | ".join(f"s{k}" for k in range(6)) + " |")
    print("|---|---|" + "---|" * 6)
    try:
        for i in range(args.n):
            ph = set_a_photo(i, args.seed0 + i, (1600, 1200), args.cache)
            veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
            group = "set A types 1-4" if 1 + i % 6 <= 4 else "set A types 5-6"
            for name in names:
                g = seen["units"][name]
                groups.setdefault((group, name), []).append(g)
                print(f"| {args.seed0 + i} type {1 + i % 6} {ph.px_per_mm:g} px/mm | {name} | " + " | ".join(f"{v:.2f}" for v in g) + " |")
        legs = sorted(args.legs.glob("*.jp*g")) + sorted(args.legs.glob("*.png")) if args.legs and args.legs.is_dir() else []
        for path in legs:
            veinscope.analyze(np.asarray(Image.open(path).convert("RGB")))
            group = "real normal legs" if path.name.startswith("normal") else "real legs with veins"
            for name in names:
                g = seen["units"][name]
                groups.setdefault((group, name), []).append(g)
                print(f"| {path.name} | {name} | " + " | ".join(f"{v:.2f}" for v in g) + " |")
    finally:
        pl.detect_vessels = det0
    print("\nMedian gain u(finest)/u(scale) per group (above 1: the scale's noise is weaker than the finest's)\n")
    print("| photos | unit | " + " | ".join(f"s{k}" for k in range(6)) + " |")
    print("|---|---|" + "---|" * 6)
    for (group, name), gs in groups.items():
        print(f"| {group} ({len(gs)}) | {name} | " + " | ".join(f"{statistics.median(float(g[k]) for g in gs):.2f}" for k in range(6)) + " |")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = ap.add_subparsers(dest="mode", required=True)
    u = sub.add_parser("units", help="per-scale noise units of set A and the real legs")
    u.add_argument("--n", type=int, default=24)
    u.add_argument("--seed0", type=int, default=400)
    u.add_argument("--cache", type=Path, default=None)
    u.add_argument("--legs", type=Path, default=HERE.parent.parent / "shared" / "data" / "legs-dev")
    a = sub.add_parser("accuracy", help="bench_synth_accuracy.py with a per-scale threshold")
    a.add_argument("--unit", choices=("same-median", "same-p90", "same-p95", "opp-p95"), required=True)
    a.add_argument("--gain", type=float, nargs=2, default=(1.0, 4.0), metavar=("LO", "HI"))
    args = ap.parse_args(argv)
    if args.mode == "units":
        return _units(args)
    import bench_synth_accuracy
    import veinscope.pipeline as pl

    det0 = pl.detect_vessels
    pl.detect_vessels = per_scale_detector(args.unit, *args.gain)
    try:
        return bench_synth_accuracy.main(rest)
    finally:
        pl.detect_vessels = det0


if __name__ == "__main__":
    sys.exit(main())
