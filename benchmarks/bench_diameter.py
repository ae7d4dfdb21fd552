"""Accuracy and speed of :func:`veinscope.diameter.profile_diameters` on analytic truth.

Scenes: straight bars, circular arcs and sinusoids of known visible width, drawn anti-aliased
(exact area coverage from 8 x 8 supersampling of the pixels crossed by an edge), blurred with a
Gaussian PSF (``scipy.ndimage.gaussian_filter``), plus white Gaussian noise of standard deviation
``contrast / snr`` per pixel. The fit is fed the way the engine feeds it: centreline points from
``skimage.morphology.skeletonize`` of a thresholded detection (Gaussian-smoothed image > 0.2 x
the lowest contrast of the scene), normals from the Hessian eigenvector at the scale (of 8) with the largest
scale-normalised ridge response. The PSF is not given (``profile_diameters`` estimates it)
except in ``isolated-psf``. Each vessel counts where the amplitude prior was used ("prior %").
Points within 2 widths + 4 px of a vessel's end, or more than max(2, w/2) px from the true
centreline (skeleton spurs), are left out.

Scene kinds (640 x 640 px; bars, arcs and sinusoids at random angles and positions)
-----------
neighbours   : a wide vessel (8-30 px) with two thin ones (1.5-6 px) running beside it, gaps
               of 6 px + 4 PSF sigma plus 0-20 px, one contrast per scene (a vessel tree at one
               depth): the amplitude prior of thin vessels is available and right.
isolated     : every vessel of a scene has the same width (1.5-30 px): thin vessels have no
               wider neighbour, and scenes with thin vessels only cannot tell the PSF.
isolated-psf : the same scenes with the true effective PSF given (as when it is measured on
               the calibration card).
varied       : like neighbours, but each vessel's contrast is drawn from 0.6-1.4 x: the
               borrowed amplitude is wrong by up to a factor 2.3.
mixed        : (not in the default set) 4-6 vessels of random widths placed at random.

Usage::

    python benchmarks/bench_diameter.py                    # accuracy tables, SNR 20, all kinds
    python benchmarks/bench_diameter.py --snr 10 --kinds neighbours,isolated-psf
    python benchmarks/bench_diameter.py --timing           # K = 100,000 on a 12 MP scene
    python benchmarks/bench_diameter.py --real             # legs-dev photos via the engine
    python benchmarks/bench_diameter.py --pool 0           # single profiles only (before pooling)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.morphology import remove_small_objects, skeletonize

from veinscope.diameter import profile_diameters

WIDTHS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 30.0)
PSFS = (0.5, 1.0, 1.5)
SPACING = 0.05  # polyline vertex spacing (px)
SUPER = 8
HESSIAN_SCALES = (1.0, 1.5, 2.0, 3.0, 4.5, 6.5, 9.0, 12.0)


@dataclass
class Vessel:
    xy: np.ndarray  # (V, 2) dense polyline (row, col)
    width: float
    contrast: float
    shape: str
    offset: float = 0.0  # signed distance from vessel 0 when placed beside it


def _polyline(shape: str, centre, angle, length, width, rng) -> np.ndarray:
    n = max(int(length / SPACING), 2)
    u = np.linspace(-0.5, 0.5, n) * length
    if shape == "bar":
        a, b = u, np.zeros_like(u)
    elif shape == "arc":
        radius = rng.uniform(max(40.0, 2.5 * width), max(120.0, 5 * width))
        phi = u / radius
        a, b = radius * np.sin(phi), radius * (1 - np.cos(phi))
    else:  # sinusoid, curvature radius >= ~2.5 widths
        lam = rng.uniform(120.0, 220.0)
        amp = min(rng.uniform(6.0, 18.0), lam**2 / (4 * math.pi**2 * max(2.5 * width, 25.0)))
        # re-parameterise by arc length
        xs = np.linspace(-0.6, 0.6, 8 * n) * length
        ys = amp * np.sin(2 * math.pi * xs / lam)
        arc = np.concatenate([[0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
        arc -= arc[np.searchsorted(xs, 0.0)]
        a, b = np.interp(u, arc, xs), np.interp(u, arc, ys)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([centre[0] + a * sa + b * ca, centre[1] + a * ca - b * sa], axis=1)


def _resample(xy: np.ndarray) -> np.ndarray:
    """Polyline resampled at SPACING px along its length."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    u = np.arange(0.0, arc[-1], SPACING)
    return np.stack([np.interp(u, arc, xy[:, 0]), np.interp(u, arc, xy[:, 1])], 1)


def _beside(rng, trunk: Vessel, w: float, offset: float) -> np.ndarray | None:
    """A vessel running beside ``trunk`` at ``offset`` px (signed) from its centreline, over a
    random 60-100 % of its length; None where the offset curve would fold (concave side)."""
    xy = trunk.xy
    tan = np.gradient(xy, axis=0)
    tan /= np.hypot(tan[:, 0], tan[:, 1])[:, None]
    nrm = np.stack([tan[:, 1], -tan[:, 0]], 1)
    off = xy + offset * nrm
    frac = rng.uniform(0.6, 1.0)
    n = len(off)
    a = int(rng.uniform(0, 1 - frac) * n)
    off = _resample(off[a : a + int(frac * n)])
    d, _ = cKDTree(xy).query(off[:: max(1, int(1 / SPACING))], k=1)
    if d.min() < abs(offset) - 0.5 or len(off) < 100 / SPACING:
        return None
    step = int(2 / SPACING)  # curvature radius >= 30 px (a concave-side offset can be too tight)
    ang = np.unwrap(np.arctan2(*np.diff(off[::step], axis=0).T))
    if np.abs(np.diff(ang)).max(initial=0.0) > 2.0 / 30.0:
        return None
    return off


def make_scene(rng, size, widths, contrasts, psf, snr, shapes=None, beside_gap=None):
    """Return (noisy image, vessels). Vessels are placed without touching: edge-to-edge gaps of
    at least 12 px + 6 PSF sigma. With ``beside_gap``, vessels 1.. run beside vessel 0 (thin
    vessels along a wider one) with gaps of 6 px + 4 PSF sigma plus up to ``beside_gap`` px."""
    vessels: list[Vessel] = []
    trees: list[cKDTree] = []
    gap = (6 + 4 * psf) if beside_gap is not None else (12 + 6 * psf)
    for i, w in enumerate(widths):
        for _attempt in range(200):
            if beside_gap is not None and i > 0 and _attempt < 100:
                trunk = vessels[0]
                side = 1.0 if (i + _attempt) % 2 else -1.0
                base = 0.5 * (w + trunk.width) + gap
                # beyond the thin vessels already on that side
                for v in vessels[1:]:
                    base = max(base, v.offset * side + 0.5 * (w + v.width) + gap if v.offset * side > 0 else base)
                xy = _beside(rng, trunk, w, side * (base + rng.uniform(0, beside_gap)))
                if xy is None or xy.min() < w + 10 or xy.max() > size - w - 10:
                    continue
                shape = trunk.shape
                offset = float(side * np.median(cKDTree(trunk.xy).query(xy[::20])[0]))
            else:
                shape = shapes[i] if shapes is not None else rng.choice(["bar", "arc", "sine"])
                length = rng.uniform(max(140.0, 6 * w + 80), max(220.0, 8 * w + 120))
                length = min(length, 0.8 * size)
                centre = rng.uniform(0.5 * length / 1.5 + 10, size - 0.5 * length / 1.5 - 10, 2)
                xy = _polyline(shape, centre, rng.uniform(0, math.pi), length, w, rng)
                offset = 0.0
                if xy.min() < w + 10 or xy.max() > size - w - 10:
                    continue
            clear = True
            for t, v in zip(trees, vessels):
                d, _ = t.query(xy[:: max(1, int(1 / SPACING))], k=1)
                if d.min() < 0.5 * (w + v.width) + gap - 0.5:
                    clear = False
                    break
            if clear:
                vessels.append(Vessel(xy, float(w), float(contrasts[i]), str(shape), offset))
                trees.append(cKDTree(xy))
                break
    # each vessel drawn on its own (a pixel's nearest centreline may belong to a neighbour)
    img = np.zeros((size, size))
    off = (np.arange(SUPER) + 0.5) / SUPER - 0.5
    oy, ox = np.meshgrid(off, off, indexing="ij")
    sub_off = np.stack([oy.ravel(), ox.ravel()], 1)
    for v in vessels:
        hw = v.width / 2
        y0, x0 = np.floor(v.xy.min(0) - hw - 2).astype(int)
        y1, x1 = np.ceil(v.xy.max(0) + hw + 2).astype(int)
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, size - 1), min(x1, size - 1)
        yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        centres = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
        tree = cKDTree(v.xy)
        d, _ = tree.query(centres, k=1, distance_upper_bound=hw + 1.0)
        cov = (d <= hw - 0.75).astype(float)
        edge = np.flatnonzero(np.abs(d - hw) < 0.75)
        sub = (centres[edge][:, None, :] + sub_off[None]).reshape(-1, 2)
        ds, _ = tree.query(sub, k=1)
        cov[edge] = (ds <= hw).reshape(len(edge), -1).mean(1)
        patch = img[y0 : y1 + 1, x0 : x1 + 1]
        np.maximum(patch, cov.reshape(patch.shape) * v.contrast, out=patch)
    img = ndi.gaussian_filter(img, psf, mode="nearest", truncate=5.0)
    img += rng.normal(0.0, 1.0 / snr, img.shape)
    return img.astype(np.float32), vessels


def centreline_and_normals(img, threshold):
    """Skeleton of (smoothed image > threshold) and Hessian normals at the best scale."""
    smooth = ndi.gaussian_filter(img.astype(np.float64), 1.0)
    mask = remove_small_objects(smooth > threshold, max_size=30)
    skel = skeletonize(mask)
    pts = np.argwhere(skel).astype(np.float64)
    iy, ix = pts[:, 0].astype(int), pts[:, 1].astype(int)
    best = np.full(len(pts), -np.inf)
    normals = np.zeros((len(pts), 2))
    for s in HESSIAN_SCALES:
        f = img.astype(np.float64)
        hyy = ndi.gaussian_filter(f, s, order=(2, 0))[iy, ix]
        hxx = ndi.gaussian_filter(f, s, order=(0, 2))[iy, ix]
        hxy = ndi.gaussian_filter(f, s, order=(1, 1))[iy, ix]
        # smallest eigenvalue (bright ridge: strongly negative) and its eigenvector
        tr = 0.5 * (hyy + hxx)
        det = np.sqrt(0.25 * (hyy - hxx) ** 2 + hxy**2)
        lam = tr - det
        resp = -(s**2) * lam
        vy = lam - hxx
        vx = hxy
        nrm = np.hypot(vy, vx)
        small = nrm < 1e-12
        vy = np.where(small, 1.0, vy)
        vx = np.where(small, 0.0, vx)
        nrm = np.hypot(vy, vx)
        upd = resp > best
        best[upd] = resp[upd]
        normals[upd] = np.stack([vy / nrm, vx / nrm], 1)[upd]
    return pts, normals


def truth_for_points(pts, vessels):
    """Width, signed tilt-free distance and keep-flag of each detected point."""
    allxy = np.concatenate([v.xy for v in vessels])
    owner = np.concatenate([np.full(len(v.xy), i) for i, v in enumerate(vessels)])
    pos = np.concatenate([np.arange(len(v.xy)) * SPACING for v in vessels])
    length = np.array([(len(v.xy) - 1) * SPACING for v in vessels])
    d, j = cKDTree(allxy).query(pts, k=1)
    o = owner[j]
    w = np.array([v.width for v in vessels])[o]
    margin = 2 * w + 4
    keep = (d <= np.maximum(2.0, w / 2)) & (pos[j] >= margin) & (pos[j] <= length[o] - margin)
    shape = np.array([v.shape for v in vessels])[o]
    return w, keep, shape, d


THIN = (1.5, 2.0, 3.0, 4.0, 6.0)
KIND_STREAM = {"neighbours": 0, "varied": 0, "isolated": 1, "isolated-psf": 1, "mixed": 2}
TRUNK = (8.0, 12.0, 16.0, 20.0, 30.0)


def effective_psf(psf: float) -> float:
    """Sigma of the blur actually applied: scipy's sampled Gaussian kernel (truncate 5) and the
    1 px pixel box (variance 1/12) of the anti-aliased drawing."""
    r = int(5.0 * psf + 0.5)
    x = np.arange(-r, r + 1.0)
    k = np.exp(-0.5 * (x / psf) ** 2)
    k /= k.sum()
    return float(np.sqrt((k * x * x).sum() + 1.0 / 12.0))


def scene_spec(kind, sc, rng):
    """Widths, contrasts and placement of scene ``sc`` of a kind."""
    if kind in ("neighbours", "varied"):
        trunk = TRUNK[sc % len(TRUNK)]
        widths = [trunk] + [THIN[(sc + i) % len(THIN)] for i in range(2)]
        near = 20.0
    elif kind in ("isolated", "isolated-psf"):
        w0 = WIDTHS[sc % len(WIDTHS)]
        widths = [w0] * (6 if w0 < 12 else 4 if w0 < 20 else 3)
        near = None
    else:  # mixed
        widths = list(rng.choice(WIDTHS, 6))
        widths = widths[: 4 if max(widths) >= 20 else 6]
        near = None
    contrasts = rng.uniform(0.6, 1.4, len(widths)) if kind == "varied" else np.ones(len(widths))
    return widths, contrasts, near


def run_accuracy(kinds, snr, seed, scenes_per_psf, size, fit_kw=None):
    rows = []
    for kind in kinds:
        # the same scenes for isolated and isolated-psf
        rng = np.random.default_rng([seed, KIND_STREAM[kind]])
        for psf in PSFS:
            for sc in range(scenes_per_psf):
                widths, contrasts, near = scene_spec(kind, sc, rng)
                img, vessels = make_scene(rng, size, widths, contrasts, psf, snr, beside_gap=near)
                pts, normals = centreline_and_normals(img, 0.2 * float(np.min(contrasts)))
                if len(pts) == 0:
                    continue
                w, keep, shape, _ = truth_for_points(pts, vessels)
                given = effective_psf(psf) if kind == "isolated-psf" else None
                est = profile_diameters(img, pts, normals, max_width_px=40.0, psf_sigma_px=given, **(fit_kw or {}))
                for i in np.flatnonzero(keep):
                    rows.append((kind, psf, w[i], shape[i], est.width_px[i], est.ok[i], est.prior_driven[i], est.psf_sigma_px,
                                 est.pooled[i]))
    return rows


def table(rows, kind, by_psf):
    sel = [r for r in rows if r[0] == kind]
    out = []
    head = ("| width px | PSF sigma | points | ok % | prior % | pooled % | median abs err | p90 abs err | "
            "bias (median) | bias (mean) |")
    out.append(head)
    out.append("|" + "---|" * 10)
    psfs = PSFS if by_psf else (None,)
    for w in WIDTHS:
        for psf in psfs:
            rr = [r for r in sel if r[2] == w and (psf is None or r[1] == psf)]
            if not rr:
                continue
            est = np.array([r[4] for r in rr], float)
            ok = np.array([r[5] for r in rr], bool)
            pri = np.array([r[6] for r in rr], bool)
            poo = np.array([r[8] for r in rr], bool)
            err = est[ok] - w
            if err.size == 0:
                continue
            ps = "0.5-1.5" if psf is None else f"{psf:g}"
            out.append(
                f"| {w:g} | {ps} | {len(rr)} | {100 * ok.mean():.0f} | {100 * pri[ok].mean():.0f} | {100 * poo[ok].mean():.0f} | "
                f"{np.median(np.abs(err)):.3f} | {np.percentile(np.abs(err), 90):.3f} | "
                f"{np.median(err):+.3f} | {np.mean(err):+.3f} |"
            )
    return "\n".join(out)


def psf_summary(rows, kind):
    out = []
    for psf in PSFS:
        s = np.array([r[7] for r in rows if r[0] == kind and r[1] == psf])
        if s.size:
            out.append(
                f"sigma {psf:g} (effective {effective_psf(psf):.2f}): used {np.median(np.unique(s)):.2f} "
                f"(range {s.min():.2f}-{s.max():.2f})"
            )
    return "; ".join(out)


def run_timing(seed, k_target=100_000, repeats=7):
    """K = 100,000 points on a 3000 x 4000 (12 MP) float32 contrast map: 24 tiles of 640 x 640
    'neighbours' scenes (PSF sigma 1 px, SNR 20); the detected points (about 18,000) are
    repeated with +-0.3 px jitter up to K. One thread (the kernels are serial); the configurations
    alternate within each of the ``repeats`` rounds."""
    rng = np.random.default_rng([seed, 99])
    m, n = 3000, 4000
    img = np.zeros((m, n), np.float32)
    pts_all, nrm_all = [], []
    sc = 0
    for y0 in range(0, m - 639, 640):
        for x0 in range(0, n - 639, 640):
            widths, contrasts, near = scene_spec("neighbours", sc, rng)
            tile, _ = make_scene(rng, 640, widths, contrasts, 1.0, 20.0, beside_gap=near)
            img[y0 : y0 + 640, x0 : x0 + 640] = tile
            p, nn = centreline_and_normals(tile, 0.2)
            pts_all.append(p + [y0, x0])
            nrm_all.append(nn)
            sc += 1
    pts = np.concatenate(pts_all)
    nrm = np.concatenate(nrm_all)
    order = np.argsort(pts[:, 0] * n + pts[:, 1], kind="stable")  # raster order, as from a skeleton
    idx = np.tile(order, int(math.ceil(k_target / len(pts))))[:k_target]
    P = pts[idx] + rng.uniform(-0.3, 0.3, (k_target, 2))
    N = nrm[idx]
    profile_diameters(img[:64, :64], P[:2] % 60, N[:2])  # compile or load the cache
    res = {}
    configs = (
        ("PSF estimated", {}),
        ("PSF given (1.04 px)", {"psf_sigma_px": 1.04}),
        ("PSF estimated, no pooling (pool_half_len_px=0: single profiles only, as before pooling)", {"pool_half_len_px": 0.0}),
        ("PSF given (1.04 px), no pooling", {"psf_sigma_px": 1.04, "pool_half_len_px": 0.0}),
    )
    # the configurations alternate within each repeat, so that a change of the machine's load
    # affects them alike
    times = {label: ([], []) for label, _ in configs}
    last = {}
    for _ in range(repeats):
        for label, kw in configs:
            t, c = time.perf_counter(), time.process_time()
            last[label] = profile_diameters(img, P, N, max_width_px=40.0, **kw)
            times[label][0].append(time.perf_counter() - t)
            times[label][1].append(time.process_time() - c)
    res = {}
    for label, _ in configs:
        est = last[label]
        wall, cpu = times[label]
        res[label] = (wall, cpu, float(est.ok.mean()), float(est.prior_driven.mean()), float(est.pooled.mean()))
    return (m, n, len(pts), k_target), res


def run_real(repeats=5):
    """Real photos (../shared/data/legs-dev, local evaluation only): the contrast map, points and
    normals the current engine (veinscope.pipeline.analyze at 10 px/mm) hands to
    profile_diameters are captured and the call is timed again. No truth: ok rate, PSF, widths."""
    import glob

    from veinscope import diameter as dmod
    from veinscope import pipeline
    from veinscope.io import load_photo

    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "legs-dev", "veins_*")))
    if not files:
        print("skipped: ../shared/data/legs-dev is not here")
        return []
    captured = {}
    original = dmod.profile_diameters

    def spy(contrast, points, normals, **kw):
        captured["args"] = (np.array(contrast), np.array(points), np.array(normals), kw)
        return original(contrast, points, normals, **kw)

    dmod.profile_diameters = spy
    rows = []
    try:
        for f in files:
            captured.clear()
            pipeline.analyze(load_photo(f), px_per_mm=10.0)
            if "args" not in captured:
                continue
            c, p, nrm, kw = captured["args"]
            variants = {}
            for name, extra in (("engine", {}), ("no pooling", {"pool_half_len_px": 0.0}),
                                ("PSF estimated", {"psf_sigma_px": None})):
                cpu = []
                for _ in range(repeats):
                    t = time.process_time()
                    est = original(c, p, nrm, **{**kw, **extra})
                    cpu.append(time.process_time() - t)
                variants[name] = (float(np.median(cpu)), est)
            cpu, est = variants["engine"]
            w = est.width_px[est.ok]
            cpu0, est0 = variants["no pooling"]
            w0 = est0.width_px[est0.ok]
            _, est_s = variants["PSF estimated"]
            ws = est_s.width_px[est_s.ok]
            rows.append((os.path.basename(f), c.shape, len(p), kw.get("max_width_px"), cpu, cpu0,
                         float(est.ok.mean()), float(est0.ok.mean()), float(est.pooled.mean()),
                         float(np.median(w)) if w.size else float("nan"), float(np.median(w0)) if w0.size else float("nan"),
                         est_s.psf_sigma_px, est_s.params.get("psf_source"), est_s.params.get("psf_pooled_se_px"),
                         float(est_s.ok.mean()), float(np.median(ws)) if ws.size else float("nan")))
    finally:
        dmod.profile_diameters = original
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snr", type=float, default=20.0, help="contrast / noise sd per pixel (default 20)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--scenes", type=int, default=20, help="scenes per PSF and kind (default 20)")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--kinds", default="neighbours,isolated,isolated-psf,varied")
    ap.add_argument("--by-psf", action="store_true", help="one row per width and PSF")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--real", action="store_true", help="legs-dev photos through the current engine")
    ap.add_argument("--pool", type=float, default=None,
                    help="pool_half_len_px passed to profile_diameters (default: its own; 0 = no pooling)")
    args = ap.parse_args(argv)
    if args.real:
        print("| photo | size | points | CPU s, pooled / single only | ok %, pooled / single only | pooled % | "
              "median width px, pooled / single only | PSF estimated instead of 0.8: sigma px (source, se) | ok % | median width px |")
        print("|" + "---|" * 10)
        for (name, shape, k, wmax, cpu, cpu0, okf, okf0, pof, wm, wm0, s_est, src, se, ok_s, wm_s) in run_real():
            se_txt = "-" if se is None else f"{se:.3f}"
            print(f"| {name} | {shape[1]} x {shape[0]} | {k} | {cpu:.3f} / {cpu0:.3f} | {100 * okf:.0f} / {100 * okf0:.0f} | "
                  f"{100 * pof:.0f} | {wm:.2f} / {wm0:.2f} | {s_est:.2f} ({src or 'default'}, {se_txt}) | {100 * ok_s:.0f} | {wm_s:.2f} |")
        return 0
    if args.timing:
        (m, n, k0, k), res = run_timing(args.seed)
        load = os.getloadavg()[0]
        print(f"image {m} x {n} float32, {k0} skeleton points repeated (+-0.3 px jitter) to K = {k}, one thread, "
              f"{os.cpu_count()} CPUs, 1-min load average {load:.1f} at the end")
        for label, (wall, cpu, okf, prf, pof) in res.items():
            print(
                f"- {label}: wall median {np.median(wall):.3f} s (min {min(wall):.3f}), CPU median "
                f"{np.median(cpu):.3f} s (min {min(cpu):.3f}) over {len(wall)} runs; ok {100 * okf:.1f} %, "
                f"prior-driven {100 * prf:.1f} %, pooled {100 * pof:.1f} %"
            )
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    t = time.perf_counter()
    fit_kw = {} if args.pool is None else {"pool_half_len_px": args.pool}
    rows = run_accuracy(kinds, args.snr, args.seed, args.scenes, args.size, fit_kw)
    print(f"SNR {args.snr:g} (contrast / noise sd per pixel), seed {args.seed}, {args.scenes} scenes per PSF, "
          f"{time.perf_counter() - t:.0f} s")
    for kind in kinds:
        print(f"\n### {kind}\n")
        print("PSF: " + psf_summary(rows, kind) + "\n")
        print(table(rows, kind, False))
        if args.by_psf:
            print()
            print(table(rows, kind, True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
