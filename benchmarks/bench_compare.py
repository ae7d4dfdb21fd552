"""Session comparison accuracy on follow-ups with exact truth (issue 6).

Two sources of sessions:

* ``--source sim`` (default): ``tests/_followup.py``: a generated scene, the baseline a crop of
  it, the follow-up the same scene after treatment (chosen vessels erased or faded, brown
  staining bands along cleared vessels, matting patches next to treated ones), another light
  and white balance, a random homography (rotation up to 15 degrees, shift, scale, slight
  perspective), noise and JPEG. Half the sessions have staining, half matting, independently,
  so the false-alarm rate is measured on the others.
* ``--source series``: ``veinscope.synth.generate_series`` (the generator's own sessions with
  new pose, light, fading, staining, matting and the true homography).

Figures: |improvement - truth| (points), staining and matting area error (%), false alarms
(staining / matting reported on sessions without any), registration residual, time.

    .venv/bin/python benchmarks/bench_compare.py --n 20
    .venv/bin/python benchmarks/bench_compare.py --source series --n 8
    .venv/bin/python benchmarks/bench_compare.py --big --runs 5   # one 12 MP pair, timing only
    .venv/bin/python benchmarks/bench_compare.py --source series --n 12 --set level_rates=0.04,0.01
        # the change figures with an engine variant (analyze's keyword for both photos)
    .venv/bin/python benchmarks/bench_compare.py --source series --n 12 --set-baseline level_rates=0.04,0.01
        # the same for the baseline only (the follow-up read by the default engine)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_synth_accuracy import analyze_options  # noqa: E402
from tests._followup import followup_frame, make_session, true_residual_px  # noqa: E402
from veinscope.compare import compare  # noqa: E402
from veinscope.errors import RegistrationError  # noqa: E402


def compare_pair(b, f, ppm, opts=None, b_opts=None, c_opts=None, baseline_ppm=None):
    """``compare`` for one pair of the benchmark: ``opts`` analyze options for both photos;
    ``b_opts`` analyze options for the baseline only, over ``opts`` (the baseline is analysed
    here and given to ``compare``, the follow-up analysed by ``compare`` with ``opts``);
    ``c_opts`` compare keywords."""
    kw = dict(c_opts or {})
    if b_opts or baseline_ppm is not None:
        from veinscope.pipeline import analyze

        kw["baseline_analysis"] = analyze(b, px_per_mm=ppm if baseline_ppm is None else baseline_ppm, **{**(opts or {}), **(b_opts or {})})
    return compare(b, f, px_per_mm=ppm, analyze_options=opts or None, **kw)


def _sim_cases(n, seed0, size):
    for i in range(n):
        seed = seed0 + i
        rng = np.random.default_rng(seed)
        ppm = float(rng.uniform(8.0, 13.0))
        s = make_session(
            seed=seed, size=size, px_per_mm=ppm, skin_type=int(rng.integers(1, 5)), n_vessels=int(rng.integers(5, 9)),
            clear_frac=float(rng.uniform(0.15, 0.85)), stain=int(i % 2 == 0), matting=int((i // 2) % 2 == 0),
        )
        frame = followup_frame(s)
        truth = {
            "improvement_pct": s.truth["improvement_pct"],
            "stain_mm2": float((s.stain_mask & frame).sum()) / ppm**2,
            "matting_mm2": float((s.matting_mask & frame).sum()) / ppm**2,
        }
        yield seed, s.baseline_rgb, s.followup_rgb, ppm, truth, s


def benchmark_series(seed, size=(800, 600), sessions=3, skin_type=None):
    """The series ``--source series`` reads for ``seed``: its scale drawn from the seed."""
    from veinscope.synth import generate_series

    return generate_series(seed=seed, sessions=sessions, size=size, px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)),
                           skin_type=skin_type)


def mask_on_baseline(ser, k, mask):
    """Session ``k``'s truth ``mask`` seen on the baseline's grid (the generator's own figures
    count the whole session photo, also what the baseline does not show); all False for None."""
    b = ser.photos[0]
    m, n = b.rgb.shape[:2]
    if mask is None:
        return np.zeros((m, n), bool)
    h_s2b = np.linalg.inv(np.asarray(ser.changes[k - 1]["homography_baseline_to_session"]))
    return cv2.warpPerspective(mask.astype(np.uint8), h_s2b, (n, m), flags=cv2.INTER_NEAREST) > 0


def area_on_baseline_mm2(ser, k, mask, *, both_skin=True):
    """Session ``k``'s staining / matting truth ``mask`` as an area (mm²) on the baseline's grid
    at the baseline's scale, counted on the skin both photos show (the follow-up's mask is its
    skin already; here the baseline's skin: not its card, not its background), as the generator
    counts the improvement's baseline length ("inside both photos"): what the baseline photo
    does not show cannot be judged new since it (session 38; helper mat38 found 5.5 % of the
    whole-leg photos' matting truth and 7.7 % of their staining there, under 1 % on the crops).
    ``both_skin=False``: the baseline's whole frame, the card's place too (the figure before
    session 38, kept in the rows as ``*_truth_frame``)."""
    on = mask_on_baseline(ser, k, mask)
    if both_skin:
        on &= ser.photos[0].skin_mask
    return float(on.sum()) / float(ser.photos[0].px_per_mm) ** 2


def _series_cases(n, seed0, size, sessions, skin_type=None):
    for i in range(n):
        seed = seed0 + i
        ser = benchmark_series(seed, size, sessions, skin_type)
        b = ser.photos[0]
        for k in range(1, len(ser.photos)):
            ch = ser.changes[k - 1]
            f = ser.photos[k]

            def on_baseline(mask, *, both_skin=True):
                return area_on_baseline_mm2(ser, k, mask, both_skin=both_skin)

            truth = {
                "improvement_pct": ch["improvement_pct"]["total"],
                "stain_mm2": on_baseline(f.staining),
                "matting_mm2": on_baseline(f.matting),
                "stain_mm2_baseline_frame": on_baseline(f.staining, both_skin=False),
                "matting_mm2_baseline_frame": on_baseline(f.matting, both_skin=False),
                "stain_mm2_whole_photo": ch["staining"]["area_mm2"],
                "matting_mm2_whole_photo": ch["matting"]["area_mm2"],
                "skin_type": int(ser.params["skin_type"]),
            }
            yield f"{seed}/{k}", b.rgb, ser.photos[k].rgb, float(b.px_per_mm), truth, (ser, k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["sim", "series"], default="sim")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"))
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--big", action="store_true", help="time one 12 MP pair instead")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of the 12 MP pair (--big)")
    ap.add_argument("--paint-links", type=int, choices=[0, 1], default=None,
                    help="analyze(paint_links=...) for both photos (default: the engine's default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an analyze option for both photos (repeatable; true/false/none or a number), "
                    "to measure an engine variant on the change figures")
    ap.add_argument("--set-baseline", action="append", default=[], metavar="KEY=VALUE",
                    help="an analyze option for the baseline photo only, over --set (repeatable): the baseline "
                    "analysed with it and given to compare, the follow-up read as --set has it")
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a compare keyword (repeatable; true/false/none or a number), e.g. matting_vessel_ends=false")
    ap.add_argument("--scale-factor", type=float, default=1.0, metavar="F",
                    help="enter the scale as the true px/mm times F (0.99, 1.01: a card or a hand-entered scale "
                    "off by 1 %%); the truth's areas stay at the true scale")
    ap.add_argument("--baseline-true-scale", action="store_true",
                    help="with --scale-factor: the baseline analysed at the true scale and given to compare "
                    "(what of the change with the scale the baseline's own analysis makes)")
    ap.add_argument("--skin-type", type=int, choices=range(1, 7), default=None, metavar="T",
                    help="--source series: every series on skin type T (1-6) instead of the generator's draw "
                    "(the draw gives type 6 to 9 %% of series: one among seeds 300-333, 313)")
    ap.add_argument("--json", metavar="PATH", help="write the per-pair rows to PATH")
    args = ap.parse_args(argv)
    import veinscope

    veinscope.warmup()
    if args.big:
        return _big(args.runs, analyze_options(args.compare_set))
    cases = _sim_cases(args.n, args.seed0, tuple(args.size)) if args.source == "sim" else _series_cases(args.n, args.seed0, tuple(args.size), args.sessions, args.skin_type)
    opts = {} if args.paint_links is None else {"paint_links": bool(args.paint_links)}
    opts.update(analyze_options(args.set))
    opts = opts or None
    b_opts = analyze_options(args.set_baseline) or None
    c_opts = analyze_options(args.compare_set)
    rows = []
    print(f"{'case':>8} {'ppm':>5} {'imp':>6} {'truth':>6} {'err':>6} | {'stain':>6} {'truth':>6} | {'matt':>6} {'truth':>6} | {'new':>3} {'res mm':>7} {'s':>5}")
    for case, b, f, ppm, truth, extra in cases:
        t0 = time.perf_counter()
        try:
            c = compare_pair(b, f, ppm * args.scale_factor, opts, b_opts, c_opts, baseline_ppm=ppm if args.baseline_true_scale else None)
        except RegistrationError as exc:
            print(f"{case!s:>8} refused: {exc}")
            rows.append({"case": case, "refused": True})
            continue
        dt = time.perf_counter() - t0
        d = c.to_dict()
        res = None
        if args.source == "sim":
            res = float(np.median(true_residual_px(extra, c.registration))) / ppm
        else:
            ser, k = extra
            hb2s = np.asarray(ser.changes[k - 1]["homography_baseline_to_session"])
            m, n = b.shape[:2]
            yy, xx = np.mgrid[6:m:12, 6:n:12]
            xy = np.c_[xx.ravel(), yy.ravel()].astype(float)
            sel = c.registration.overlap[yy.ravel(), xx.ravel()]
            est = c.registration.followup_xy(xy[sel])
            q = np.c_[xy[sel], np.ones(sel.sum())] @ hb2s.T
            tru = q[:, :2] / q[:, 2:3]
            res = float(np.median(np.hypot(*(est - tru).T))) / float(ser.photos[k].px_per_mm)
        r = {
            "case": case, "refused": False, "imp": c.improvement_pct, "imp_truth": truth["improvement_pct"],
            "stain": d["staining"]["area_mm2"], "stain_truth": truth["stain_mm2"],
            "matt": d["matting"]["area_mm2"], "matt_truth": truth["matting_mm2"],
            "stain_truth_frame": truth.get("stain_mm2_baseline_frame"), "matt_truth_frame": truth.get("matting_mm2_baseline_frame"),
            "new": d["new_vessels"]["count"], "res": res, "s": dt, "skin_type": truth.get("skin_type"),
            "baseline_found_mm": c.lengths_px["baseline"] / (ppm * args.scale_factor),  # compare's baseline length (mm)
        }
        rows.append(r)
        f1 = (lambda v: "  -" if v is None else f"{v:6.1f}")
        err = None if r["imp"] is None or r["imp_truth"] is None else r["imp"] - r["imp_truth"]
        print(f"{case!s:>8} {ppm:5.1f} {f1(r['imp'])} {f1(r['imp_truth'])} {f1(err)} | {f1(r['stain'])} {f1(r['stain_truth'])} | {f1(r['matt'])} {f1(r['matt_truth'])} | {r['new']:3d} {res:7.4f} {dt:5.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    ok = [r for r in rows if not r["refused"]]
    print(f"\ncases {len(rows)}, refused {len(rows) - len(ok)}")
    errs = [abs(r["imp"] - r["imp_truth"]) for r in ok if r["imp"] is not None and r["imp_truth"] is not None]
    if errs:
        print(f"improvement |error|: median {np.median(errs):.1f} points, p90 {np.percentile(errs, 90):.1f}, max {max(errs):.1f} (n={len(errs)}); within 5 points: {sum(e <= 5 for e in errs)}/{len(errs)}")
    by_type = {}
    for r in ok:
        if r["skin_type"] is not None and r["imp_truth"] is not None:
            # None: no improvement measured (no or too little baseline vessel found) where the truth has one
            by_type.setdefault(r["skin_type"], []).append(None if r["imp"] is None else abs(r["imp"] - r["imp_truth"]))
    if by_type:
        def _type_row(t, v):
            e = [x for x in v if x is not None]
            med = f"median {np.median(e):.1f} ({sum(x <= 5 for x in e)}/{len(v)} within 5)" if e else f"(0/{len(v)} within 5)"
            return f"type {t}: {med}" + (f", {len(v) - len(e)} not measured" if len(e) < len(v) else "")
        print("improvement |error| by skin type: " + "; ".join(_type_row(t, v) for t, v in sorted(by_type.items())))
    unmeasured = sum(r["imp"] is None and r["imp_truth"] is not None for r in ok)
    if unmeasured:
        print(f"improvement not measured where the truth has one (no baseline vessel found, or less than compare's "
              f"min_baseline_mm): {unmeasured} pairs, left out of the median above")
    st = [abs(r["stain"] - r["stain_truth"]) / r["stain_truth"] * 100 for r in ok if r["stain_truth"] > 1.0]
    if st:
        print(f"staining area |error| where present: median {np.median(st):.1f} %, max {max(st):.1f} % (n={len(st)})")
    mt = [abs(r["matt"] - r["matt_truth"]) / r["matt_truth"] * 100 for r in ok if r["matt_truth"] > 1.0]
    if mt:
        print(f"matting area |error| where present: median {np.median(mt):.1f} %, max {max(mt):.1f} % (n={len(mt)})")
    for key, name in (("stain", "staining"), ("matt", "matting")):
        fr = [abs(r[key] - r[f"{key}_truth_frame"]) / r[f"{key}_truth_frame"] * 100
              for r in ok if r.get(f"{key}_truth_frame") is not None and r[f"{key}_truth_frame"] > 1.0]
        if fr:
            print(f"  ({name} against the truth on the baseline's whole frame, its card's place too, as before "
                  f"session 38: median {np.median(fr):.1f} %, n={len(fr)})")
    no_st = [r for r in ok if r["stain_truth"] <= 0.0]
    no_mt = [r for r in ok if r["matt_truth"] <= 0.0]
    if no_st:
        print(f"staining false alarms (reported on sessions without staining): {sum((r['stain'] or 0) > 0 for r in no_st)}/{len(no_st)}")
    if no_mt:
        print(f"matting false alarms (reported on sessions without matting): {sum((r['matt'] or 0) > 0 for r in no_mt)}/{len(no_mt)}")
    print(f"registration residual (true, median over the overlap): median {np.median([r['res'] for r in ok]):.4f} mm, worst {max(r['res'] for r in ok):.4f} mm")
    print(f"compare time per pair: median {np.median([r['s'] for r in ok]):.2f} s")
    return 0


def _big(runs: int, c_opts: dict | None = None) -> int:
    """One 12 MP pair (4000 x 3000, 12 px/mm), warm: (a) ``compare`` given both photos'
    ``Analysis`` (as the app and ``track`` have them; with the ``--compare-set`` keywords
    ``c_opts``), (b) ``veinscope compare`` end to end
    (JPEG in, both analyses, the three output files). Medians of ``runs``; wall and CPU
    seconds (the CPU share tells how much a busy machine inflated the wall time) and the load
    average."""
    import os
    import tempfile

    from PIL import Image

    from veinscope import analyze
    from veinscope.cli import main as cli_main

    cache = Path(tempfile.gettempdir()) / "veinscope_bench_12mp_seed11.npz"
    if cache.exists():
        d = np.load(cache)
        b_rgb, f_rgb = d["b"], d["f"]
    else:
        s = make_session(seed=11, size=(4000, 3000), px_per_mm=12.0, n_vessels=14, stain=1, matting=1, margin_px=500)
        b_rgb, f_rgb = s.baseline_rgb, s.followup_rgb
        np.savez(cache, b=b_rgb, f=f_rgb)
    a_b = analyze(b_rgb, px_per_mm=12.0)
    c_opts = dict(c_opts or {})
    c = compare(b_rgb, f_rgb, px_per_mm=12.0, baseline_analysis=a_b, **c_opts)  # warm-up; the follow-up's scale
    a_f = analyze(f_rgb, px_per_mm=12.0 / c.params["followup_scale"])

    def timed(fn):
        walls, cpus, out = [], [], None
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return float(np.median(walls)), float(np.median(cpus)), out

    load0 = os.getloadavg()[0]
    w_a, c_a, ca = timed(lambda: compare(b_rgb, f_rgb, px_per_mm=12.0, baseline_analysis=a_b, followup_analysis=a_f, **c_opts))
    print(f"(a) compare with both analyses given: median {w_a:.2f} s wall, {c_a:.2f} s CPU over {runs} runs; "
          f"stages of the last run {ca.params['seconds']}")
    with tempfile.TemporaryDirectory() as tmp:
        bp, fp = Path(tmp) / "baseline.jpg", Path(tmp) / "followup.jpg"
        Image.fromarray(b_rgb).save(bp, quality=95)
        Image.fromarray(f_rgb).save(fp, quality=95)
        argv = ["compare", str(bp), str(fp), "--out", str(Path(tmp) / "out"), "--px-per-mm", "12"]
        cli_main(argv)  # warm-up
        w_b, c_b, _ = timed(lambda: cli_main(argv))
    print(f"(b) veinscope compare end to end (JPEG in, two analyses, three files out): median {w_b:.2f} s wall, {c_b:.2f} s CPU")
    print(f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; figures "
          f"improvement {ca.improvement_pct:.1f} %, staining {ca.staining['area_mm2']} mm2, matting {ca.matting['area_mm2']} mm2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
