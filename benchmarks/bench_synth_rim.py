"""Is the skin mask where set A's wide veins at the leg's rim are lost? (issue 4, session 16)

Run:  .venv/bin/python benchmarks/bench_synth_rim.py --variant truth_skin|truth_skin_no_rule|no_rule wide [bench_synth_wide.py options]
      .venv/bin/python benchmarks/bench_synth_rim.py --variant truth_skin|truth_skin_no_rule|no_rule accuracy [bench_synth_accuracy.py options]
      .venv/bin/python benchmarks/bench_synth_rim.py --veins 403 [--cache DIR]

A diagnostic bound, not a method: ``truth_skin`` hands the engine the generator's true skin mask
(in place of ``fill_vessel_gaps``' result, the card still excluded), ``truth_skin_no_rule`` also
turns off session 13's outline rule (``detect_vessels``' profile points may lie off the skin),
``no_rule`` turns the rule off with the engine's own skin mask.
What the engine still misses then is not the skin mask's loss. ``--veins SEED`` lists the photo's
over-3-mm veins: visible length, true width, contrast (ΔE00) and how far the centreline lies from
the true and the engine's skin outline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_synth_accuracy as bsa  # noqa: E402


def _patch(variant: str) -> None:
    import veinscope.pipeline as pl
    import veinscope.segment as sg
    import veinscope.synth as sy

    current: dict = {}
    photo0 = bsa.set_a_photo

    def photo(*a, **kw):
        current["photo"] = p = photo0(*a, **kw)
        return p

    bsa.set_a_photo = photo  # set_a_analysed looks it up at call time
    generate0 = sy.generate_photo

    def generate(*a, **kw):
        current["photo"] = p = generate0(*a, **kw)
        return p

    sy.generate_photo = generate  # bench_synth_accuracy.main imports it at call time
    fill0 = pl.fill_vessel_gaps

    def fill(skin, width_px, *, exclude=None, **kw):
        p = current.get("photo")
        if p is None or p.skin_mask.shape != np.shape(skin):
            return fill0(skin, width_px, exclude=exclude, **kw)
        out = p.skin_mask.copy()
        if exclude is not None:
            out &= ~np.asarray(exclude, bool)
        return out

    if variant != "no_rule":
        pl.fill_vessel_gaps = fill
    if variant in ("truth_skin_no_rule", "no_rule"):
        sg._without_holes = lambda mask: np.ones(mask.shape, bool)


def veins(seed: int, cache: Path | None, size=(1600, 1200)) -> None:
    from scipy.ndimage import distance_transform_edt

    import inspect

    from veinscope.pipeline import analyze
    from veinscope.segment import fill_vessel_gaps, skin_mask

    p = bsa.set_a_photo(seed - 400, seed, size, cache)
    max_d = inspect.signature(analyze).parameters["max_diameter_mm"].default  # analyze's own closing width
    skin = fill_vessel_gaps(skin_mask(p.rgb), max_d * p.px_per_mm)
    dt_true, dt_eng = distance_transform_edt(p.skin_mask), distance_transform_edt(skin)
    print(f"photo {seed}: {p.px_per_mm:.0f} px/mm; over-3-mm truth pixels {np.count_nonzero(p.labels == 4)}, "
          f"off the engine's skin {np.count_nonzero((p.labels == 4) & ~skin)}")
    print("| visible mm | d px | ΔE00 median | centre to true outline px (median) | to engine outline px | share within d/2 of the true outline |")
    print("|---|---|---|---|---|---|")
    for c in p.centrelines:
        v = c["visible"]
        if c["class"] != "over_3mm" or not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        y, x = y.clip(0, p.labels.shape[0] - 1), x.clip(0, p.labels.shape[1] - 1)
        d = c["diameter_mm"][v] * p.px_per_mm
        near = float(np.sum(c["length_mm"][v] * (dt_true[y, x] <= d / 2)) / c["length_mm"][v].sum())
        print(f"| {c['length_mm'][v].sum():.1f} | {np.median(d):.0f} | {np.median(c['delta_e'][v]):.1f} | "
              f"{np.median(dt_true[y, x]):.0f} | {np.median(dt_eng[y, x]):.0f} | {near:.2f} |")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("truth_skin", "truth_skin_no_rule", "no_rule"))
    ap.add_argument("--veins", type=int, default=None, help="list this set A photo's over-3-mm veins")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("script", nargs="?", choices=("wide", "accuracy"))
    args, rest = ap.parse_known_args(argv)
    if args.veins is not None:
        veins(args.veins, args.cache)
        return 0
    if args.variant is None or args.script is None:
        ap.error("--variant and a script (wide or accuracy) are needed")
    _patch(args.variant)
    if args.cache is not None:
        rest = [*rest, "--cache", str(args.cache)]
    if args.script == "wide":
        import bench_synth_wide

        return bench_synth_wide.main(rest)
    return bsa.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
