"""How strongly the engine's detection sees the truth's vessels, by skin type and contrast (issue 4).

Run:  .venv/bin/python benchmarks/bench_dark_strength.py [--n 24] [--seed0 400] [--types 5 6] [--cache DIR]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6, the
rotating scales), the engine given the true scale. For each photo the detection signal is built as
``veinscope.analyze`` builds it (the engine's skin mask, ``skin_optics``, ``matched_vessel_weights``,
``ridge_response`` weighted by the vesselness) and the line strength ``q`` is divided by the engine's
local noise unit (``segment._local_noise``, the map the hysteresis levels are multiples of: low 3,
high 5). At every visible true centreline point of a vessel >= 0.2 mm the 3 x 3 maximum of that ratio
is read; the table gives its quartiles by skin group (types 1-4, 5-6), class and the truth's contrast
band (ΔE00 at the vessel's centre), with the share of the length at or above the low level and the
share painted. Tells whether a faint vessel is lost because the photo's signal at its contrast is
weak in noise units (detection) or after it was detected. Session 21: on types 5-6 a red vessel of
ΔE00 5-10 reads a median 3.9 units, against 8.7 on types 1-4.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_arguments, set_a_start, set_a_photo  # noqa: E402

BANDS = (("2-3", 2.0, 3.0), ("3-5", 3.0, 5.0), ("5-10", 5.0, 10.0), (">=10", 10.0, np.inf))
NAMES = {"red_telangiectasia": "red", "blue_telangiectasia": "blue", "reticular": "reticular", "over_3mm": "over 3 mm"}


def strength_in_noise_units(photo, analysis) -> np.ndarray:
    """(M, N) float32: the engine's line strength over its local noise unit, 3 x 3 maximum."""
    import cv2

    from veinscope.chromophores import matched_vessel_weights, skin_optics
    from veinscope.segment import _inner_skin, _local_noise
    from veinscope.vesselness import ridge_response

    p = analysis.params
    skin = analysis.skin
    optics = skin_optics(photo.rgb, skin=skin, background_px=p["background_px"])
    signal = optics.project(matched_vessel_weights(optics, skin))
    signal[~skin] = 0.0
    q = ridge_response(signal, sigmas_px=tuple(p["sigmas_px"]), black_ridges=False, gamma=p["line_gamma"], weighted=True).strength
    inner, _ = _inner_skin(skin, 3)
    cell = max(16, int(round(p["background_px"] / 4)))
    noise = _local_noise(q, inner, cell_px=cell)
    m, n = q.shape
    # the noise grid's cell centres, bilinear, as detect_vessels reads it
    ys = (np.arange(m, dtype=np.float32) + 0.5) / cell - 0.5
    xs = (np.arange(n, dtype=np.float32) + 0.5) / cell - 0.5
    full = cv2.remap(noise, *np.meshgrid(xs, ys), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.dilate(q, np.ones((3, 3), np.uint8)) / np.maximum(full, 1e-9)


def collect(photo, analysis, ratio, rows, group) -> None:
    """Append (group, class, band, ratio, length, painted) for each visible true centreline point."""
    m, n = ratio.shape
    painted = analysis.labels > 0
    for c in photo.centrelines:
        v = c["visible"] & (c["diameter_mm"] >= 0.2)
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        ok = (y >= 0) & (y < m) & (x >= 0) & (x < n)
        y, x, de, ll = y[ok], x[ok], c["delta_e"][v][ok], c["length_mm"][v][ok]
        for name, lo, hi in BANDS:
            s = (de >= lo) & (de < hi)
            if s.any():
                rows.setdefault((group, NAMES[c["class"]], name), []).append(np.c_[ratio[y[s], x[s]], ll[s], painted[y[s], x[s]]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    args, (w, h), kw = set_a_start(ap, argv)
    import veinscope

    rows = {}
    for i in range(args.n):
        skin_type = 1 + i % 6
        if args.types and skin_type not in args.types:
            continue
        seed = args.seed0 + i
        photo = set_a_photo(i, seed, (w, h), args.cache)
        a = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw)
        collect(photo, a, strength_in_noise_units(photo, a), rows, "5-6" if skin_type >= 5 else "1-4")
        print(f"seed {seed} type {skin_type}: noise unit {a.params['noise']:.4f}", flush=True)
    print("\n| skin types | class | ΔE00 | visible mm | strength / noise unit p25 / p50 / p75 | length >= low (3) | painted |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(rows):
        r = np.concatenate(rows[key])
        q, ll, hit = r[:, 0], r[:, 1], r[:, 2] > 0
        print(f"| {key[0]} | {key[1]} | {key[2]} | {ll.sum():.0f} | {np.percentile(q, 25):.2f} / {np.median(q):.2f} / "
              f"{np.percentile(q, 75):.2f} | {ll[q >= 3].sum() / ll.sum():.2f} | {ll[hit].sum() / ll.sum():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
