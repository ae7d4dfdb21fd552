"""Why large stains read small (issue 6, session 17): the stain's colour change as compare's
relative maps see it, against the OD the generator painted and the plain OD difference.

For each pair: the generator's stain OD (captured from ``synth._stain_margin``) on the
baseline's grid; on the truth's pixels away from vessels, the median along the stain's colour
of (a) the painted OD (natural log), (b) the follow-up minus baseline OD after the light
matching (blurred 1 px), (c) compare's relative change (its chromophore maps, blurred 1 px),
(d) the change of the two skin backgrounds. (c) / (a) far below (b) / (a) means the skin
background took part of the stain.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_stain_background.py 324/1 314/2
"""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np

import veinscope.compare as C
import veinscope.synth as S
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS, OD_LUT

_cap: dict = {"render": [], "margin": []}
_render0, _margin0, _stain0 = S._render_session, S._stain_margin, C._stain


def _render(site, plan, k, hpx, hmm, size, *a, **kw):
    _cap["render"].append((k, hpx, size))
    _cap["k"] = k
    return _render0(site, plan, k, hpx, hmm, size, *a, **kw)


def _margin(stain, lit, ppm, gain0):
    out = _margin0(stain, lit, ppm, gain0)
    _cap["margin"].append((_cap["k"], stain.copy()))
    return out


def _stain(*a, **kw):
    _cap["stain_args"] = a
    return _stain0(*a, **kw)


S._render_session, S._stain_margin, C._stain = _render, _margin, _stain


def main(argv=None) -> int:
    for case in (argv if argv is not None else sys.argv[1:]):
        seed, k = (int(v) for v in case.split("/"))
        _cap["render"].clear()
        _cap["margin"].clear()
        ppm = float(np.random.default_rng(seed).uniform(8, 13))
        ser = S.generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=ppm)
        b, f = ser.photos[0], ser.photos[k]
        m, n = b.rgb.shape[:2]
        h = np.linalg.inv(np.asarray(ser.changes[k - 1]["homography_baseline_to_session"]))
        truth = cv2.warpPerspective(f.staining.astype(np.uint8), h, (n, m), flags=cv2.INTER_NEAREST) > 0
        hpx, size = next((hh, s) for kk, hh, s in _cap["render"] if kk == k)
        st = next(s for kk, s in _cap["margin"] if kk == k)
        st = cv2.warpPerspective(S._warp(st, hpx, size), h, (n, m), flags=cv2.INTER_LINEAR)
        c = C.compare(b.rgb, f.rgb, px_per_mm=ppm)
        mb, mf, aligned, valid, bv, fv = _cap["stain_args"][:6]
        away = ~cv2.dilate((bv | fv).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        t = truth & valid & away
        painted = st[..., None] * S._EPS_STAIN[None, None] * math.log(10)
        raw = cv2.GaussianBlur(OD_LUT[aligned].astype(np.float64) - OD_LUT[c.baseline_rgb].astype(np.float64), (0, 0), 1.0)
        cb, cf = mb.box((0, m, 0, n)), mf.box((0, m, 0, n))
        rel = sum(cv2.GaussianBlur(cf[q] - cb[q], (0, 0), 1.0)[..., None] * CHROMOPHORE_DIRECTIONS[q][None, None] for q in cb)
        allpx = np.argwhere(np.ones((m, n), bool))
        d_bg = (OD_LUT[aligned] - mf.o.relative_od_at(allpx).reshape(m, n, 3)) - (OD_LUT[c.baseline_rgb] - mb.o.relative_od_at(allpx).reshape(m, n, 3))
        e = S._EPS_STAIN / np.linalg.norm(S._EPS_STAIN)
        pe = painted[t] @ e
        print(f"{case}: truth {truth.sum() / ppm**2:.1f} mm2, compare {c.staining['area_mm2']} mm2; on {t.sum()} truth px away from vessels, median along the stain's colour:")
        print(f"   painted {np.median(pe):.3f}  OD difference {np.median(raw[t] @ e):.3f}  relative change {np.median(rel[t] @ e):.3f}  background change {np.median(d_bg[t] @ e):.3f}")
        q = np.percentile(pe, [0, 25, 50, 75, 100])
        for lo, hi in zip(q[:-1], q[1:]):
            s_ = (pe >= lo) & (pe <= hi)
            print(f"   painted {lo:.3f}-{hi:.3f}: relative / painted {np.median((rel[t] @ e)[s_]) / np.median(pe[s_]):.2f}, OD difference / painted {np.median((raw[t] @ e)[s_]) / np.median(pe[s_]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
