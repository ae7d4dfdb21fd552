"""Faint wide veins and an oriented, elongated line filter, measured as a detector (issue 4, session 14).

Run:  .venv/bin/python benchmarks/bench_oriented_lines.py detector [--n 24] [--cache DIR] [--variants main,e1,e3,...]
      .venv/bin/python benchmarks/bench_oriented_lines.py units [--n 24] [--cache DIR]
      .venv/bin/python benchmarks/bench_oriented_lines.py accuracy --variant NAME -- [bench_synth_accuracy args]

The engine's ridge filter (``vesselness.ridge_response``) is the Hessian of an isotropic
Gaussian: along a vessel it averages over about one sigma, so a faint straight vein's response
is as noisy as a blob's. The classic matched / line filter for faint vessels (Chaudhuri et al.
1989, doi:10.1109/42.34715; Soares et al. 2006, doi:10.1109/TMI.2006.879967; the oriented
anisotropic Gaussian derivative, Geusebroek et al. 2002, doi:10.1007/3-540-47969-4_7) takes the
second derivative across the vessel of a Gaussian elongated along it (``sigma_along =
elongation * sigma``) at ``n_orient`` orientations and keeps the largest: on a straight line its
response is the Hessian's, on white noise it falls by about ``1 / sqrt(elongation)``.

:func:`oriented_response` is that filter for the coarse scales (``sigma >= split_px``; each on
the image halved with ``cv2.pyrDown`` while the scale still spans ``MIN_LEVEL_SIGMA`` level
pixels, as the engine's pyramid), merged with the engine's own Hessian response of the fine
scales (per pixel the larger line strength ``q = strength * vesselness``, with its direction and
scale). Its line-likeness (the ``vesselness`` that ``detect_vessels`` multiplies into ``q``) is
either Frangi's measure on the pair (best orientation, the one across it), ``line_from="own"``,
or the Hessian's vesselness at the same scale, ``line_from="hessian"``. ``elongation=1`` is the
control: the same machinery with a round kernel.

``detector`` (session 11's measure): on set A's photos (``bench_synth_accuracy.set_a_photo``,
the true scale given), the detection signal is taken from ``analyze``'s call of
``detect_vessels`` and each variant's ridge response goes through the engine's own
``detect_vessels`` (its noise unit, non-maximum suppression, symmetric-profile test, crest snap)
at one level ``t`` noise units (low = high = t, no band length, pieces of 1 px) and at the
engine's default settings. Reported: the share of the visible true length (vessels >= 0.2 mm)
reached (a candidate within 2.5 px) by group, against the number of candidate pixels more than
5 px from any true vessel or ``ignore`` pixel (off truth). A better detector reaches more
faint length at the same number of off-truth pixels.

``accuracy``: ``bench_synth_accuracy.py`` with ``analyze``'s ridge filter replaced by a variant's.

``units``: why. The coarse response's quantiles over skin away from the truth, elongated /
round (white noise: about 1 / sqrt(elongation)); the share of the engine's off-truth
candidates at the low level whose best scale is a coarse one; and, on the visible true
centrelines, the ratio of the elongated to the round filter's line strength.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import veinscope.vesselness as _vs  # noqa: E402
from bench_synth_accuracy import set_a_photo  # noqa: E402

#: the engine's Hessian ridge filter (kept here: ``accuracy`` replaces the module's attribute)
ridge_response = _vs.ridge_response

#: analyze's default line_gamma and Frangi's beta (the engine's ridge_response call)
LINE_GAMMA = 0.01
BETA = 0.5
#: a coarse scale goes to the pyramid level where it still spans this many level pixels
MIN_LEVEL_SIGMA = 1.5
#: blur (level pixels) that cv2.pyrDown leaves in a level: its 5-tap kernel has sigma 1 input
#: pixel, so after l halvings sqrt(sum 4**k / 4**l) -> sqrt(1/3)
PYR_BLUR = math.sqrt(1.0 / 3.0)
LEVELS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
VARIANTS = {
    "main": None,
    "e1": dict(elongation=1.0),
    "e1.5": dict(elongation=1.5, n_orient=16),
    "e2": dict(elongation=2.0),
    "e2-k16": dict(elongation=2.0, n_orient=16),
    "e3": dict(elongation=3.0),
    "e4": dict(elongation=4.0),
    "e1-hess": dict(elongation=1.0, line_from="hessian"),
    "e2-hess": dict(elongation=2.0, line_from="hessian"),
    "e3-hess": dict(elongation=3.0, line_from="hessian"),
    "gain-iso": dict(gain=True, elongation=None),
    "gain-e2": dict(gain=True, elongation=2.0),
    "gain-e3": dict(gain=True, elongation=3.0),
    "gain-e2-hess": dict(gain=True, elongation=2.0, line_from="hessian"),
    "gain-e3-hess": dict(gain=True, elongation=3.0, line_from="hessian"),
}


def line_kernel(sigma_across: float, sigma_along: float, theta: float, radius: int) -> np.ndarray:
    """(2r+1, 2r+1) float32: minus the second derivative across ``theta`` (the normal, radians from
    the x axis) of a unit-sum anisotropic Gaussian, with zero sum and unit response to ``-u**2 / 2``
    (so a bright ridge gives a positive value equal to its curvature across)."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u = x * c + y * s
    v = -x * s + y * c
    g = np.exp(-0.5 * (u / sigma_across) ** 2 - 0.5 * (v / sigma_along) ** 2)
    g /= g.sum()
    k = (u**2 / sigma_across**4 - 1.0 / sigma_across**2) * g
    k -= g * k.sum()
    k *= 2.0 / float((k * u**2).sum())
    return (-k).astype(np.float32)


def _level_of(sigma: float) -> int:
    level = 0
    while level < 6 and sigma / 2 ** (level + 1) >= MIN_LEVEL_SIGMA:
        level += 1
    return level


def oriented_scale(image, sigma_px: float, *, elongation: float, n_orient: int = 12, line_from: str = "own"):
    """Oriented line response of one scale at full resolution: (strength, line-likeness, normal_y,
    normal_x), each (M, N) float32. ``strength`` = ``sigma**2`` x the largest over orientations of
    minus the across second derivative (0 where none is positive)."""
    import cv2

    img = np.ascontiguousarray(image, dtype=np.float32)
    m, n = img.shape
    level = _level_of(sigma_px)
    lim = img
    for _ in range(level):
        lim = cv2.pyrDown(lim, borderType=cv2.BORDER_REFLECT)
    s_l = sigma_px / 2**level
    pre = PYR_BLUR if level else 0.0
    sa = math.sqrt(max(s_l**2 - pre**2, 0.25))
    sb = math.sqrt(max((elongation * s_l) ** 2 - pre**2, 0.25))
    radius = int(math.ceil(3.0 * max(sa, sb)))
    resp = np.empty((n_orient,) + lim.shape, np.float32)
    for k in range(n_orient):
        ker = line_kernel(sa, sb, math.pi * k / n_orient, radius)
        resp[k] = s_l**2 * cv2.filter2D(lim, cv2.CV_32F, ker, borderType=cv2.BORDER_REFLECT)
    best = np.argmax(resp, axis=0)
    rmax = np.take_along_axis(resp, best[None], 0)[0]
    rperp = np.take_along_axis(resp, ((best + n_orient // 2) % n_orient)[None], 0)[0]
    rm = np.take_along_axis(resp, ((best - 1) % n_orient)[None], 0)[0]
    rp = np.take_along_axis(resp, ((best + 1) % n_orient)[None], 0)[0]
    del resp
    den = rm - 2 * rmax + rp
    off = np.clip(np.where(den < 0, 0.5 * (rm - rp) / np.where(den < 0, den, -1.0), 0.0), -0.5, 0.5)
    theta = (best + off) * (math.pi / n_orient)
    # the peak between the orientations, from a Gaussian through the three (a parabola through
    # their logarithms; a line halfway between two orientations loses 7-9 % at elongation 3 and 12
    # orientations without it)
    tiny = np.float32(1e-30)
    ok = (rm > 0) & (rp > 0) & (rmax > 0)
    lm, l0, lp = (np.log(np.maximum(a, tiny)) for a in (rm, rmax, rp))
    lden = lm - 2 * l0 + lp
    loff = np.clip(np.where(ok & (lden < 0), 0.5 * (lm - lp) / np.where(lden < 0, lden, -1.0), 0.0), -0.5, 0.5)
    rmax = np.where(ok, np.exp(l0 - 0.25 * (lm - lp) * loff), rmax).astype(np.float32)
    pos = rmax > 0
    # where the best response is tiny the ratio and its square overflow float32 to inf, and
    # exp(-inf) = 0: no line there, as intended (newer numpy warns of the overflow)
    with np.errstate(over="ignore", divide="ignore"):
        rb2 = (rperp / np.where(pos, rmax, 1.0)) ** 2
        s2 = rmax**2 + rperp**2
        line = np.where(pos, np.exp(-rb2 / (2 * BETA**2)) * (1 - np.exp(-s2 / (2 * LINE_GAMMA**2))), 0).astype(np.float32)
    rmax = np.where(pos, rmax, 0).astype(np.float32)
    c2 = (np.cos(2 * theta) * rmax).astype(np.float32)
    s2a = (np.sin(2 * theta) * rmax).astype(np.float32)
    f = 2.0**level
    inv = np.array([[1.0 / f, 0, 0], [0, 1.0 / f, 0]])

    def up(a):  # level pixel i sits on full-resolution pixel 2**level * i (pyrDown keeps even ones)
        if level == 0:
            return a
        return cv2.warpAffine(a, inv, (n, m), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)

    strength, c2, s2a = up(rmax), up(c2), up(s2a)
    if line_from == "hessian":
        line = ridge_response(img, sigmas_px=[sigma_px], black_ridges=False, gamma=LINE_GAMMA).vesselness
    elif line_from == "own":
        line = up(line)
    else:
        raise ValueError(f"line_from must be 'own' or 'hessian', got {line_from!r}")
    ang = 0.5 * np.arctan2(s2a, c2)
    ny, nx = np.sin(ang).astype(np.float32), np.cos(ang).astype(np.float32)
    flip = nx < 0
    ny[flip] *= -1
    nx[flip] *= -1
    return strength, line, ny, nx


def _merge(ridge, strength, line, ny, nx, sigma_px, gain=1.0):
    """``ridge`` with the pixels where ``gain * strength * line`` beats its ``q`` replaced (copies;
    ``sigma_px`` a number or a map)."""
    from veinscope.vesselness import RidgeResponse

    better = gain * strength * line > ridge.strength * ridge.vesselness
    out = {}
    for name, new in (("strength", gain * strength), ("vesselness", line), ("normal_y", ny), ("normal_x", nx),
                      ("scale_px", np.float32(sigma_px))):  # fmt: skip
        out[name] = np.where(better, new, getattr(ridge, name)).astype(np.float32)
    return RidgeResponse(sigmas_px=ridge.sigmas_px, **out)


def oriented_response(signal, sigmas_px, *, elongation=3.0, n_orient=12, split_px=2.2, line_from="own", gain=False,
                      skin=None, gain_quantile=0.95, gain_clip=(1.0, 4.0)):  # fmt: skip
    """The engine's Hessian response for the scales under ``split_px``, the oriented filter for the
    others (``elongation=None``: the Hessian for them too), as a ``RidgeResponse`` for
    ``segment.detect_vessels``.

    ``gain``: the coarse scales are held to their own noise: their strength is multiplied by
    ``quantile(q_fine) / quantile(q_coarse)`` over ``skin`` (clipped to ``gain_clip``), as session
    13's per-scale unit. Returns ``(RidgeResponse, gain)``.
    """
    from veinscope.vesselness import RidgeResponse

    sig = np.ascontiguousarray(signal, dtype=np.float32)
    sigmas = tuple(float(s) for s in sigmas_px)
    fine = [s for s in sigmas if s < split_px]
    coarse = [s for s in sigmas if s >= split_px]
    if not fine or not coarse:
        raise ValueError(f"split_px must fall inside sigmas_px, got {split_px!r} for {sigmas!r}")
    base = ridge_response(sig, sigmas_px=fine, black_ridges=False, gamma=LINE_GAMMA)
    zero = np.zeros(sig.shape, np.float32)
    cr = RidgeResponse(vesselness=zero, strength=zero, scale_px=zero, normal_y=zero, normal_x=zero, sigmas_px=sigmas)
    if elongation is None:
        cr = ridge_response(sig, sigmas_px=coarse, black_ridges=False, gamma=LINE_GAMMA)
    else:
        for s in coarse:
            cr = _merge(cr, *oriented_scale(sig, s, elongation=elongation, n_orient=n_orient, line_from=line_from), s)
    g = 1.0
    if gain:
        qf = (base.strength * base.vesselness)[skin]
        qc = (cr.strength * cr.vesselness)[skin]
        g = float(np.clip(np.quantile(qf, gain_quantile) / max(float(np.quantile(qc, gain_quantile)), 1e-12), *gain_clip))
    merged = _merge(base, cr.strength, cr.vesselness, cr.normal_y, cr.normal_x, cr.scale_px, gain=g)
    fields = ("vesselness", "strength", "scale_px", "normal_y", "normal_x")
    return RidgeResponse(sigmas_px=sigmas, **{f: getattr(merged, f) for f in fields}), g


class _Tap:
    """Records the detection signal, skin and settings of analyze's detect_vessels call."""

    def __init__(self):
        import veinscope.pipeline as pl

        self.pl, self.det0, self.seen = pl, pl.detect_vessels, {}
        pl.detect_vessels = self._detect

    def _detect(self, ridge, skin, signal=None, **kw):
        self.seen.update(signal=signal.copy(), skin=skin, kw=dict(kw))
        return self.det0(ridge, skin, signal, **kw)

    def close(self):
        self.pl.detect_vessels = self.det0


def _analysed(tap, args):
    """Set A's photos one by one, analysed through ``tap``: (i, seed, photo, analysis, detection
    signal, skin, detect_vessels' settings)."""
    import veinscope

    for i in range(args.n):
        seed = args.seed0 + i
        photo = set_a_photo(i, seed, (1600, 1200), args.cache)
        tap.seen.clear()
        a = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm)
        yield i, seed, photo, a, tap.seen["signal"], tap.seen["skin"], tap.seen["kw"]


def _truth_points(photo, shape):
    """(K, 5): row, col, length mm, ΔE00, class code of the visible true centreline points >= 0.2 mm."""
    rows = []
    for c in photo.centrelines:
        v = c["visible"] & (c["diameter_mm"] >= 0.2)
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        ok = (y >= 0) & (y < shape[0]) & (x >= 0) & (x < shape[1])
        code = {"red_telangiectasia": 1, "blue_telangiectasia": 2, "reticular": 3}.get(c["class"], 4)
        rows.append(np.c_[y[ok], x[ok], c["length_mm"][v][ok], c["delta_e"][v][ok], np.full(ok.sum(), code)])
    return np.concatenate(rows) if rows else np.zeros((0, 5))


GROUPS = {
    "reticular <5": lambda p: (p[:, 4] == 3) & (p[:, 3] < 5),
    "blue <5": lambda p: (p[:, 4] == 2) & (p[:, 3] < 5),
    "all <5": lambda p: p[:, 3] < 5,
    "all >=5": lambda p: p[:, 3] >= 5,
}


def _response(name, sig, sigmas, skin):
    opt = VARIANTS[name]
    if opt is None:
        return ridge_response(sig, sigmas_px=sigmas, black_ridges=False, gamma=LINE_GAMMA)
    return oriented_response(sig, sigmas, skin=skin, **opt)[0]


def detector(args) -> int:
    from scipy.ndimage import distance_transform_edt

    import veinscope

    names = args.variants.split(",")
    for v in names:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    veinscope.warmup()
    tap = _Tap()
    acc = {}
    try:
        for i, seed, photo, a, sig, skin, kw in _analysed(tap, args):
            d_off = distance_transform_edt(~((photo.labels > 0) | photo.ignore))
            pts = _truth_points(photo, sig.shape)
            iy, ix = pts[:, 0].astype(int), pts[:, 1].astype(int)
            group = "types 5-6" if i % 6 >= 4 else "types 1-4"
            for name in names:
                ridge = _response(name, sig, a.params["sigmas_px"], skin)
                for t in LEVELS + ("default",):
                    kk = dict(kw, consume=False)
                    if t != "default":
                        kk.update(min_length_px=0.0, min_piece_px=1, high_noise=t, low_noise=t, long_length_px=None)
                    det = tap.det0(ridge, skin, sig, **kk)
                    p = det.points_yx
                    free = np.ones(sig.shape, bool)
                    free[p[:, 0], p[:, 1]] = False
                    reach = distance_transform_edt(free)[iy, ix] <= 2.5
                    off = int((d_off[p[:, 0], p[:, 1]] > 5).sum())
                    for key in ((name, "all", t), (name, group, t)):
                        cell = acc.setdefault(key, {"off": 0, **{g: [0.0, 0.0] for g in GROUPS}})
                        cell["off"] += off
                        for g, sel in GROUPS.items():
                            s = sel(pts)
                            cell[g][0] += pts[s, 2].sum()
                            cell[g][1] += pts[s & reach, 2].sum()
            print(f"seed {seed}", flush=True)
    finally:
        tap.close()
    for grp in ("all", "types 1-4", "types 5-6"):
        if (names[0], grp, LEVELS[0]) not in acc:
            continue  # no photo of these types among the --n photos
        print(f"\nPhotos: {grp}. Share of the visible true length reached (candidate within 2.5 px) / off-truth candidate pixels\n")
        print("| variant | level (noise units) | off-truth px | " + " | ".join(GROUPS) + " |")
        print("|---|---|---|" + "---|" * len(GROUPS))
        for name in names:
            for t in LEVELS + ("default",):
                c = acc[(name, grp, t)]
                print(f"| {name} | {t} | {c['off']} | " + " | ".join(f"{c[g][1] / max(c[g][0], 1e-9):.3f}" for g in GROUPS) + " |")
    return 0


def units(args) -> int:
    import cv2
    from scipy.ndimage import distance_transform_edt

    import veinscope

    def coarse_q(img, coarse, e, line_from="own"):
        q = np.zeros(img.shape, np.float32)
        for s in coarse:
            st, ln, _, _ = oriented_scale(img, s, elongation=e, line_from=line_from)
            np.maximum(q, st * ln, out=q)
        return q

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.01, (1200, 1600)).astype(np.float32)
    inner = np.zeros(noise.shape, bool)
    inner[100:-100, 100:-100] = True
    print("| image | coarse scales (px) | e3 / e1 p95 (own) | p99 (own) | e3 / e1 p95 (Hessian line-likeness) | p99 |")
    print("|---|---|---|---|---|---|")
    for coarse in ((2.95, 5.08, 8.73), (4.26, 8.8, 18.2)):
        r = []
        for lf in ("own", "hessian"):
            q1, q3 = coarse_q(noise, coarse, 1.0, lf)[inner], coarse_q(noise, coarse, 3.0, lf)[inner]
            r += [np.percentile(q3, 95) / np.percentile(q1, 95), np.percentile(q3, 99) / np.percentile(q1, 99)]
        print(f"| white noise | {coarse} | " + " | ".join(f"{v:.2f}" for v in r) + " |")
    veinscope.warmup()
    tap = _Tap()
    total = [0, 0]
    ratios = {}
    try:
        for i, seed, photo, a, sig, skin, kw in _analysed(tap, args):
            sigmas = a.params["sigmas_px"]
            coarse = [s for s in sigmas if s >= 2.2]
            away = cv2.dilate(((photo.labels > 0) | photo.ignore).astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
            away &= cv2.erode(skin.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
            r = []
            qs = {}
            for lf in ("own", "hessian"):
                q1, q3 = coarse_q(sig, coarse, 1.0, lf), coarse_q(sig, coarse, 3.0, lf)
                qs[lf] = (q1, q3)
                r += [np.percentile(q3[away], 95) / np.percentile(q1[away], 95), np.percentile(q3[away], 99) / np.percentile(q1[away], 99)]
            ridge = ridge_response(sig, sigmas_px=sigmas, black_ridges=False, gamma=LINE_GAMMA)
            det = tap.det0(ridge, skin, sig, **dict(kw, consume=False, min_length_px=0.0, min_piece_px=1,
                                                    high_noise=kw["low_noise"], long_length_px=None))  # fmt: skip
            ys, xs = det.points_yx.T
            d_off = distance_transform_edt(~((photo.labels > 0) | photo.ignore))[ys, xs] > 5
            n_off, n_coarse = int(d_off.sum()), int((d_off & (det.scale_px >= 2.2)).sum())
            total[0] += n_off
            total[1] += n_coarse
            pts = _truth_points(photo, sig.shape)
            iy, ix = pts[:, 0].astype(int), pts[:, 1].astype(int)
            k5 = np.ones((5, 5), np.uint8)
            for lf, (q1, q3) in qs.items():
                m1, m3 = cv2.dilate(q1, k5)[iy, ix], cv2.dilate(q3, k5)[iy, ix]
                for g, sel in (("reticular <5", (pts[:, 4] == 3) & (pts[:, 3] < 5)), ("over 3 mm <5", (pts[:, 4] == 4) & (pts[:, 3] < 5))):
                    s = sel & (m1 > 0)
                    ratios.setdefault((lf, g), []).append(m3[s] / m1[s])
            print(f"| seed {seed}, type {1 + i % 6} | {[round(s, 2) for s in coarse]} | " + " | ".join(f"{v:.2f}" for v in r)
                  + f" | off-truth candidates at the low level {n_off}, coarse-scale share {n_coarse / max(n_off, 1):.2f} |", flush=True)
    finally:
        tap.close()
    print(f"\nOff-truth candidates at the low level, pooled: {total[0]}, at a coarse scale (>= 2.2 px): {total[1] / max(total[0], 1):.3f}")
    print("\nOn the visible true centrelines (max within 2 px), coarse line strength e3 / e1, median:")
    for (lf, g), v in ratios.items():
        v = np.concatenate(v) if v else np.zeros(0)
        print(f"  line-likeness {lf}, {g}: {np.median(v):.3f} ({v.size} points)")
    return 0


def accuracy(variant: str, rest: list[str]) -> int:
    """``bench_synth_accuracy.py`` (arguments ``rest``) with analyze's ridge filter replaced by
    ``variant``'s response (the skin for the gain taken as the pixels where the signal is not 0:
    analyze zeroes the signal off the skin)."""
    import bench_synth_accuracy

    opt = VARIANTS[variant]

    def patched(image, *, sigmas_px, black_ridges=True, **kw):
        if opt is None or black_ridges:
            return ridge_response(image, sigmas_px=sigmas_px, black_ridges=black_ridges, **kw)
        return oriented_response(image, sigmas_px, skin=np.asarray(image) != 0, **opt)[0]

    _vs.ridge_response = patched
    try:
        return bench_synth_accuracy.main(rest)
    finally:
        _vs.ridge_response = ridge_response


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["accuracy"]:
        rest = argv[argv.index("--") + 1 :] if "--" in argv else []
        head = argv[: argv.index("--")] if "--" in argv else argv
        ap = argparse.ArgumentParser(description="bench_synth_accuracy.py with a variant's ridge filter")
        ap.add_argument("command")
        ap.add_argument("--variant", required=True, choices=tuple(VARIANTS))
        return accuracy(ap.parse_args(head).variant, rest)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("detector", "units"))
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed0", type=int, default=400)
    ap.add_argument("--cache", type=Path, default=None, help="keep the generated photos here")
    ap.add_argument("--variants", default="main,e1,e2,e3", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = ap.parse_args(argv)
    return detector(args) if args.command == "detector" else units(args)


if __name__ == "__main__":
    sys.exit(main())
