"""Registration accuracy on simulated follow-ups with a known homography (issue 6).

Each session: a generated leg photo (``veinscope.synth``) is the scene; the baseline is a crop,
the follow-up the same scene after treatment (vessels cleared or faded, staining, matting),
under another light and white balance, seen through a random homography (rotation up to
``--max-rot`` degrees, shift up to 6 %, scale +-6 %, slight perspective), with sensor noise
and JPEG. The residual is the distance between the estimated and the true mapping on a grid of
baseline pixels in the overlap, in mm. Different-site pairs (two different scenes) must be
refused.

    .venv/bin/python benchmarks/bench_register.py --n 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._followup import make_session, true_residual_px  # noqa: E402
from veinscope.errors import RegistrationError  # noqa: E402
from veinscope.register import register  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"))
    ap.add_argument("--max-rot", type=float, default=15.0)
    ap.add_argument("--seed0", type=int, default=200)
    args = ap.parse_args(argv)
    rows = []
    sessions = []
    for i in range(args.n):
        seed = args.seed0 + i
        rng = np.random.default_rng(seed)
        ppm = float(rng.uniform(7.0, 14.0))
        st = int(rng.integers(1, 6))
        s = make_session(seed=seed, size=tuple(args.size), px_per_mm=ppm, skin_type=st, clear_frac=float(rng.uniform(0.2, 0.8)),
                         stain=int(rng.integers(0, 2)), matting=int(rng.integers(0, 2)), max_rot_deg=args.max_rot)
        sessions.append(s)
        t0 = time.perf_counter()
        try:
            reg = register(s.baseline_rgb, s.followup_rgb, px_per_mm=ppm)
        except RegistrationError as exc:
            rows.append((seed, ppm, st, None, None, None, None, time.perf_counter() - t0, str(exc)[:60]))
            continue
        dt = time.perf_counter() - t0
        err = true_residual_px(s, reg) / ppm
        rows.append((seed, ppm, st, float(np.median(err)), float(np.percentile(err, 95)), reg.residual_mm, reg.overlap_frac, dt, "+".join(reg.methods)))
    print(f"{'seed':>5} {'px/mm':>6} {'skin':>4} {'median mm':>10} {'p95 mm':>8} {'est mm':>7} {'overlap':>7} {'s':>5}  methods")
    for r in rows:
        seed, ppm, st, med, p95, est, ov, dt, meth = r
        f = (lambda v, k=3: "   -" if v is None else f"{v:.{k}f}")
        print(f"{seed:5d} {ppm:6.2f} {st:4d} {f(med):>10} {f(p95):>8} {f(est):>7} {f(ov, 2):>7} {dt:5.2f}  {meth}")
    meds = [r[3] for r in rows if r[3] is not None]
    failed = sum(r[3] is None for r in rows)
    print(f"\nsame-site pairs: {len(rows)}, refused {failed}")
    if meds:
        print(f"median residual over pairs: {np.median(meds):.4f} mm (worst pair median {max(meds):.4f} mm, worst p95 {max(r[4] for r in rows if r[4] is not None):.4f} mm)")
        print(f"pairs with median residual <= 0.2 mm: {sum(m <= 0.2 for m in meds)}/{len(rows)}")
    print(f"registration time: median {np.median([r[7] for r in rows]):.2f} s")
    # different sites: baseline of one scene vs follow-up of another
    refused = 0
    n_diff = 0
    for i in range(0, len(sessions) - 1, 1):
        a, b = sessions[i], sessions[i + 1]
        n_diff += 1
        try:
            register(a.baseline_rgb, b.followup_rgb, px_per_mm=a.px_per_mm)
        except RegistrationError:
            refused += 1
    print(f"different-site pairs refused: {refused}/{n_diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
