"""Simulated follow-up sessions with exact truth, for the registration and comparison tests.

A generated leg photo (``veinscope.synth.generate_photo``) is the *scene*, larger than the
photos. The baseline photo is a crop of it; the follow-up photo is the same scene after
treatment (chosen vessels erased or faded, brown staining bands, matting patches), under a
different light and white balance, seen through a known homography (shift, rotation, scale,
slight perspective), with fresh sensor noise and a JPEG round trip. Every truth is known:
the follow-up -> baseline homography, the cleared and persisting vessel length per class,
the staining and matting masks in the baseline frame.

Used by ``tests/test_register.py``, ``tests/test_compare.py`` and the benchmarks
``bench_register.py`` / ``bench_compare.py`` until the generator has sessions of its own.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from veinscope.synth import CLASSES, _join_blush, generate_photo

_SRGB = np.arange(256, dtype=np.float64) / 255.0
_LIN_LUT = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4).astype(np.float32)
_EPS_STAIN = np.array([1.00, 1.35, 1.75], np.float32)  # haemosiderin / melanin-like brown, per unit red OD
_EPS_HB = np.array([0.05, 1.00, 0.75], np.float32)  # shallow oxygenated blood (fine red vessels)
_EPS_BLUSH = np.array([0.04, 0.26, 0.17], np.float32)  # diffuse dermal redness


def to_linear(rgb: np.ndarray) -> np.ndarray:
    return _LIN_LUT[rgb]


def to_srgb8(lin: np.ndarray) -> np.ndarray:
    x = np.clip(lin, 0.0, 1.0)
    s = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(s * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Session:
    baseline_rgb: np.ndarray
    followup_rgb: np.ndarray
    px_per_mm: float
    h_true: np.ndarray  # follow-up px -> baseline px
    truth: dict = field(default_factory=dict)
    stain_mask: np.ndarray | None = None  # baseline frame
    matting_mask: np.ndarray | None = None  # baseline frame
    scene: object = None

    def true_followup_xy(self, xy_baseline: np.ndarray) -> np.ndarray:
        hi = np.linalg.inv(self.h_true)
        q = np.c_[xy_baseline, np.ones(len(xy_baseline))] @ hi.T
        return q[:, :2] / q[:, 2:3]


def random_homography(rng, size_wh, *, max_rot_deg=15.0, max_shift_frac=0.06, max_scale=0.06, max_persp=4e-5):
    """A follow-up camera: rotation about the centre, shift, scale and slight perspective."""
    w, h = size_wh
    th = math.radians(rng.uniform(-max_rot_deg, max_rot_deg))
    s = 1.0 + rng.uniform(-max_scale, max_scale)
    tx, ty = rng.uniform(-max_shift_frac, max_shift_frac, 2) * (w, h)
    px, py = rng.uniform(-max_persp, max_persp, 2)
    c = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], float)
    r = np.array([[s * math.cos(th), -s * math.sin(th), 0], [s * math.sin(th), s * math.cos(th), 0], [0, 0, 1]])
    p = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]])
    t = np.array([[1, 0, w / 2 + tx], [0, 1, h / 2 + ty], [0, 0, 1]])
    return t @ p @ r @ c  # baseline-view coords -> follow-up coords


def make_session(
    *,
    seed: int,
    size=(640, 480),
    px_per_mm: float = 10.0,
    skin_type: int | None = 2,
    n_vessels: int = 6,
    clear_frac: float = 0.5,
    fade_frac: float = 0.25,
    fade_to: float = 0.7,
    stain: int = 0,
    matting: int = 0,
    matting_on_stain: bool = False,
    matting_od: tuple[float, float] = (0.18, 0.26),
    matting_blush_truth: bool = True,
    stain_od: tuple[float, float] = (0.10, 0.15),
    warp: bool = True,
    light: bool = True,
    max_rot_deg: float = 15.0,
    margin_px: int | None = None,
    jpeg_quality: int | None = 90,
    scene=None,
) -> Session:
    """One baseline/follow-up pair with exact truth (see the module docstring).

    Matting is painted next to a treated vessel and, by default, its truth leaves out the
    stains (``avoid``). With ``matting_on_stain`` (and ``stain >= 1``) the matting patches lie on
    the stains instead, centred 0.5-2 mm from a stained stretch of the vessel, as in real
    treatment and the generator's series (matting and staining both near the treated vessel):
    their truth is the whole patch, the stained part included. ``matting_od``: the range of the
    fine vessels' optical density (green channel); about half the default gives the series'
    faint matting (ΔE00 about 2.5-4 along its vessels); ``stain_od``: the stains' peak optical
    density (red channel; the generator's series reach 0.2). ``matting_blush_truth``: the
    matting truth marks, as the generator's does, the patch's visible blush besides its visible
    vessels' reach (session 36); False gives the reach only (the truth before); the photos are
    the same either way."""
    rng = np.random.default_rng(seed + 7919)
    w, h = size
    if margin_px is None:
        margin_px = int(0.22 * max(w, h)) if warp else 0
    mg = margin_px
    if scene is None:
        scene = generate_photo(seed=seed, size=(w + 2 * mg, h + 2 * mg), px_per_mm=px_per_mm, skin_type=skin_type, n_vessels=n_vessels, jpeg_quality=92, card=False, tilt_deg=0.0)
    ppm = scene.px_per_mm
    cm, cn = scene.rgb.shape[:2]
    baseline = np.ascontiguousarray(scene.rgb[mg : mg + h, mg : mg + w])

    g_view = random_homography(rng, (w, h), max_rot_deg=max_rot_deg) if warp else np.eye(3)
    to_view = np.array([[1, 0, -mg], [0, 1, -mg], [0, 0, 1]], float)  # scene -> baseline view
    g = g_view @ to_view  # scene -> follow-up
    h_true = np.linalg.inv(g_view)  # follow-up -> baseline

    # ---- which structures are cleared / faded ----------------------------------------------------
    structs = sorted({c["structure"] for c in scene.centrelines})
    # only structures that show in the baseline view count
    def in_view(c):
        p = c["points_yx"]
        return (p[:, 0] >= mg) & (p[:, 0] < mg + h) & (p[:, 1] >= mg) & (p[:, 1] < mg + w)

    vis_len = {s: 0.0 for s in structs}
    for c in scene.centrelines:
        vis_len[c["structure"]] += float(np.sum(c["length_mm"][c["visible"] & in_view(c)]))
    shown = [s for s in structs if vis_len[s] > 0]
    order = list(rng.permutation(shown))
    total_len = sum(vis_len[s] for s in shown)
    cleared, acc = [], 0.0
    for s in order:  # clear structures until about clear_frac of the visible length is gone
        if acc >= clear_frac * total_len:
            break
        if acc + vis_len[s] > (clear_frac + 0.2) * total_len and acc > 0:
            continue
        cleared.append(int(s))
        acc += vis_len[s]
    rest = [int(s) for s in order if int(s) not in cleared]
    faded = rest[: int(round(fade_frac * len(rest)))]

    lin = to_linear(scene.rgb).astype(np.float32)
    od = -np.log10(np.maximum(lin, 1e-4))
    od0 = od
    for s, amount in [(s, 1.0) for s in cleared] + [(s, 1.0 - fade_to) for s in faded]:
        mask = _structure_mask(scene, s, (cm, cn))
        od = _remove_vessel(od, mask, amount, scene.skin_mask)
    # a faded vessel persists where a careful observer still sees it: the generator's
    # visibility rule (ΔE00 >= 2 against the skin around it and >= 1.5 x the texture's; the
    # texture's part does not bind on these scenes), its ΔE scaled by how much the fading
    # lowered the colour difference at each point
    fade_de = {int(s): _faded_delta_e_ratio(od0, scene, int(s), 1.0 - fade_to) for s in faded}

    # ---- staining along cleared vessels, matting next to treated vessels ----------------------------
    stain_mask = np.zeros((cm, cn), bool)
    matting_mask = np.zeros((cm, cn), bool)
    treated = cleared + faded
    runs = []
    for i in range(stain):
        s = cleared[i % len(cleared)] if cleared else treated[i % len(treated)]
        od, m_, run = _paint_stain(od, scene, s, rng, ppm, mg, (h, w), amp_od=stain_od)
        stain_mask |= m_
        runs.append((s, run))
    for i in range(matting):
        if matting_on_stain and runs:
            s, run = runs[i % len(runs)]
            at = run[int(rng.integers(len(run) // 4, max(len(run) // 4 + 1, 3 * len(run) // 4)))]
            od, m_ = _paint_matting(od, scene, s, rng, ppm, mg, (h, w), avoid=np.zeros_like(stain_mask), at=at, off_mm=(0.5, 2.0), amp_od=matting_od, blush_truth=matting_blush_truth)
        else:
            s = treated[(i + 1) % len(treated)]
            od, m_ = _paint_matting(od, scene, s, rng, ppm, mg, (h, w), avoid=stain_mask, amp_od=matting_od, blush_truth=matting_blush_truth)
        matting_mask |= m_
    lin = np.power(10.0, -od).astype(np.float32)

    # ---- light and white balance -----------------------------------------------------------
    if light:
        gains = np.array([rng.uniform(0.8, 1.15), 1.0, rng.uniform(0.8, 1.15)], np.float32) * rng.uniform(0.75, 1.25)
        yy, xx = np.mgrid[0:cm, 0:cn].astype(np.float32)
        ang = rng.uniform(0, 2 * math.pi)
        ramp = 1.0 + rng.uniform(0.05, 0.2) * ((xx - cn / 2) * math.cos(ang) + (yy - cm / 2) * math.sin(ang)) / max(cm, cn)
        lin = lin * gains[None, None, :] * ramp[..., None]
    else:
        gains = np.ones(3, np.float32)

    # ---- the follow-up camera ---------------------------------------------------------------
    fu = cv2.warpPerspective(lin, g, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=(0.02, 0.02, 0.025))
    fu = fu + rng.normal(0.0, 0.004, fu.shape).astype(np.float32) * np.sqrt(np.clip(fu, 0, 1) + 0.01)
    fu8 = to_srgb8(fu)
    if jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(fu8).save(buf, format="JPEG", quality=jpeg_quality)
        fu8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()

    # ---- truth in the baseline frame, restricted to what both photos show ---------------------
    def in_followup(pts_yx_scene):
        xy = np.c_[pts_yx_scene[:, 1], pts_yx_scene[:, 0], np.ones(len(pts_yx_scene))] @ g.T
        xy = xy[:, :2] / xy[:, 2:3]
        return (xy[:, 0] >= 8) & (xy[:, 0] < w - 8) & (xy[:, 1] >= 8) & (xy[:, 1] < h - 8)

    base_len = dict.fromkeys(CLASSES, 0.0)
    gone_len = dict.fromkeys(CLASSES, 0.0)
    for c in scene.centrelines:
        sel = c["visible"] & in_view(c) & in_followup(c["points_yx"])
        base_len[c["class"]] += float(np.sum(c["length_mm"][sel]))
        if c["structure"] in cleared:
            gone = sel
        elif c["structure"] in fade_de:
            ratio = fade_de[c["structure"]](c["points_yx"])
            gone = sel & (c["delta_e"] * ratio < _DELTA_E_VISIBLE)
        else:
            continue
        gone_len[c["class"]] += float(np.sum(c["length_mm"][gone]))
    tot = sum(base_len.values())
    truth = {
        "improvement_pct": 100.0 * sum(gone_len.values()) / tot if tot else None,
        "improvement_by_class": {k: (100.0 * gone_len[k] / base_len[k] if base_len[k] > 0 else None) for k in CLASSES},
        "baseline_length_mm": tot,
        "cleared_structures": cleared,
        "faded_structures": faded,
        "gains": [float(v) for v in gains],
        "mg": mg,
    }
    crop = (slice(mg, mg + h), slice(mg, mg + w))
    sm = stain_mask[crop]
    mm = matting_mask[crop]
    truth["stain_area_mm2"] = float(sm.sum()) / ppm**2
    truth["matting_area_mm2"] = float(mm.sum()) / ppm**2
    return Session(baseline, fu8, ppm, h_true, truth, sm, mm, scene)


#: The generator's least perceptible ΔE00 (``veinscope.synth``).
_DELTA_E_VISIBLE = 2.0


def _faded_delta_e_ratio(od: np.ndarray, scene, s: int, amount: float):
    """A function of centreline points (K, 2) (y, x) giving, per point, the ratio of the colour
    difference (CIEDE2000) between structure ``s`` and the skin around it after ``amount`` of its
    OD is taken away to the one before (the vessel's OD from :func:`_remove_vessel`)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    mask = _structure_mask(scene, s, od.shape[:2])
    bg = _remove_vessel(od, mask, 1.0, scene.skin_mask)
    # smoothed a little: the centre pixel of a rendered, compressed photo is noisy
    sm = (lambda a: cv2.GaussianBlur(a, (0, 0), 1.0))
    v = sm(od - bg)
    b = sm(bg)

    def ratio(pts_yx):
        iy = np.clip(np.round(pts_yx[:, 0]).astype(int), 0, od.shape[0] - 1)
        ix = np.clip(np.round(pts_yx[:, 1]).astype(int), 0, od.shape[1] - 1)
        bb, vv = b[iy, ix].astype(np.float64), np.maximum(v[iy, ix], 0.0).astype(np.float64)
        def lab_of(f):
            x = np.clip(np.power(10.0, -(bb + f * vv)), 0.0, 1.0)
            srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
            return rgb2lab(srgb[None])[0]

        lab = [lab_of(f) for f in (0.0, 1.0, 1.0 - amount)]
        before = deltaE_ciede2000(lab[0], lab[1])
        after = deltaE_ciede2000(lab[0], lab[2])
        return np.where(before > 1e-3, after / np.maximum(before, 1e-3), 1.0 - amount)

    return ratio


def _structure_mask(scene, s: int, shape) -> np.ndarray:
    ppm = scene.px_per_mm
    mask = np.zeros(shape, np.uint8)
    blur = float(scene.params["structures"][s]["blur_sigma_mm"]) if s < len(scene.params["structures"]) else 0.2
    for c in scene.centrelines:
        if c["structure"] != s:
            continue
        pts = c["points_yx"]
        r = 0.5 * np.asarray(c["physical_diameter_mm"]) * ppm + 2.5 * blur * ppm + 2.0
        for (y, x), rr in zip(pts[::1], r):
            cv2.circle(mask, (int(round(x)), int(round(y))), int(math.ceil(rr)), 1, -1)
    return mask > 0


def _remove_vessel(od: np.ndarray, mask: np.ndarray, amount: float, skin: np.ndarray | None = None) -> np.ndarray:
    """Subtract ``amount`` of a vessel's OD (vessel-free skin estimated by inpainting).

    The skin under the mask is a normalised convolution of the skin around it, on ``skin``
    only: a vessel's mask reaches past the leg's edge, and the background there is much
    lighter than skin (its estimate painted white blotches along the edge). Where the
    mask is wider than the filter reaches (the hub of a spider, a wide vein), the filter's
    weight of skin falls towards zero and the estimate with it (OD 0 is white): there the
    estimate is taken from a filter twice, four times ... as wide, until it holds enough
    skin. The box holds the skin those filters read.
    """
    if skin is not None:
        mask = mask & skin
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return od
    sig = max(3.0, 0.6 * float(cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5).max()) + 2.0)
    pad = max(12, int(math.ceil(3.0 * sig)))
    y0, y1 = max(0, ys.min() - pad), min(od.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(od.shape[1], xs.max() + pad + 1)
    sub = od[y0:y1, x0:x1]
    m = mask[y0:y1, x0:x1].astype(np.float32)
    keep = 1.0 - m
    if skin is not None:
        keep *= skin[y0:y1, x0:x1]
    out = od.copy()
    # vessel-free skin: normalised convolution of the skin around the mask, from a wider
    # filter where the narrower one holds less than 5 % skin
    est = np.zeros(sub.shape, np.float32)
    todo = np.ones(sub.shape[:2], bool)
    s_ = sig
    while True:
        den = cv2.GaussianBlur(keep, (0, 0), s_)
        ok = todo & (den >= 0.05)
        last = s_ > 4.0 * max(sub.shape[:2])
        if last:
            ok = todo
        for ch in range(3):
            e = cv2.GaussianBlur(sub[..., ch] * keep, (0, 0), s_) / np.maximum(den, 1e-6)
            est[..., ch][ok] = e[ok]
        todo &= ~ok
        if not todo.any() or last:
            break
        s_ *= 2.0
    for ch in range(3):
        vessel = np.maximum(sub[..., ch] - est[..., ch], 0.0)
        vessel = cv2.GaussianBlur(vessel, (0, 0), 0.5) * m
        out[y0:y1, x0:x1, ch] = sub[..., ch] - amount * vessel
    return out


def _pick_run(scene, s, rng, ppm, mg, hw, length_mm):
    """A stretch of the structure's centreline inside the baseline view, ``length_mm`` long."""
    h, w = hw
    best = None
    for c in scene.centrelines:
        if c["structure"] != s:
            continue
        p = c["points_yx"]
        inside = (p[:, 0] >= mg + 20) & (p[:, 0] < mg + h - 20) & (p[:, 1] >= mg + 20) & (p[:, 1] < mg + w - 20)
        if best is None or inside.sum() > best[1].sum():
            best = (p, inside)
    p, inside = best
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        idx = np.arange(len(p))
    step = np.median(np.hypot(*np.diff(p, axis=0).T)) if len(p) > 1 else 1.0
    n = max(2, int(length_mm * ppm / max(step, 1e-3)))
    start = int(rng.integers(idx[0], max(idx[0] + 1, idx[-1] - n + 1)))
    return p[start : min(start + n, idx[-1] + 1)]


def _paint_stain(od, scene, s, rng, ppm, mg, hw, *, amp_od=(0.10, 0.15)):
    run = _pick_run(scene, s, rng, ppm, mg, hw, rng.uniform(8, 14))
    width_mm = rng.uniform(2.0, 3.2)
    amp = rng.uniform(*amp_od)
    img = np.full(od.shape[:2], 255, np.uint8)
    cv2.polylines(img, [np.round(run[:, ::-1]).astype(np.int32)], False, 0, 1)
    d = cv2.distanceTransform(img, cv2.DIST_L2, 5)
    prof = np.clip(0.5 + (0.5 * width_mm * ppm - d) / 3.0, 0.0, 1.0).astype(np.float32)
    # patchy along its length, as haemosiderin is
    patch = cv2.GaussianBlur(rng.normal(0, 1, od.shape[:2]).astype(np.float32), (0, 0), 1.5 * ppm)
    patch = 1.0 + 0.15 * patch / (patch.std() + 1e-6)
    od = od + (amp * prof * patch)[..., None] * _EPS_STAIN
    return od, d <= 0.5 * width_mm * ppm, run


def _paint_matting(od, scene, s, rng, ppm, mg, hw, avoid, *, at=None, off_mm=(3.5, 5.0), amp_od=(0.18, 0.26), blush_truth=True):
    """A matting patch centred ``off_mm`` from a point of the structure ``s`` (``at``, scene
    (y, x), or a point picked on it); its truth leaves out ``avoid``. ``blush_truth``: the truth
    also marks the visible blush (:func:`_blush_seen`); False gives the truth before session 36
    (the visible vessels' reach only)."""
    od_before = od
    if at is None:
        run = _pick_run(scene, s, rng, ppm, mg, hw, 2.0)
        at = run[len(run) // 2]
    p = at
    ang = rng.uniform(0, 2 * math.pi)
    off = rng.uniform(*off_mm) * ppm
    cy, cx = p[0] + off * math.sin(ang), p[1] + off * math.cos(ang)
    h, w = hw
    cy = float(np.clip(cy, mg + 40, mg + h - 40))
    cx = float(np.clip(cx, mg + 40, mg + w - 40))
    a, b = rng.uniform(2.5, 4.0) * ppm, rng.uniform(1.8, 3.0) * ppm
    th = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0 : od.shape[0], 0 : od.shape[1]].astype(np.float32)
    u = (xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)
    v = -(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    inside = r <= 1.0
    # a mesh of fine (0.1-0.15 mm) red vessels plus a faint blush, inside the ellipse
    lines = np.zeros(od.shape[:2], np.float32)
    for _ in range(int(10 + 4 * a * b / ppm**2)):
        y, x = cy + rng.uniform(-b, b), cx + rng.uniform(-a, a)
        heading = rng.uniform(0, 2 * math.pi)
        pts = []
        for _k in range(int(rng.uniform(1.5, 4.0) * ppm)):
            heading += rng.normal(0, 0.35)
            y += math.sin(heading)
            x += math.cos(heading)
            pts.append((x, y))
        cv2.polylines(lines, [np.round(np.array(pts)).astype(np.int32)], False, 1.0, 1)
    lines = cv2.GaussianBlur(lines, (0, 0), 0.6) * 1.6
    soft = np.clip(0.5 + (1.0 - r) * 6.0, 0.0, 1.0).astype(np.float32)
    # none painted where its truth leaves it out (before session 18 the vessels were painted on
    # the stains too and only the truth left them out: matting found there was counted as wrong)
    soft *= ~avoid
    amp = rng.uniform(*amp_od)
    od = od + (amp * np.minimum(lines, 1.0) * soft)[..., None] * _EPS_HB + (0.35 * soft)[..., None] * _EPS_BLUSH
    # truth as the generator's matting truth: within 0.75 mm of its visible fine vessels (the
    # vessels drawn inside the ellipse) and, since session 36 as the generator since session 35,
    # where the patch's redness read over 1 mm (blush and vessels together) passes the
    # visibility test against the skin under it (a spot apart from the vessels' reach from that
    # reach's disc up), closed and filled
    from scipy import ndimage as ndi

    seen = (np.minimum(lines, 1.0) * soft) >= 0.3
    rr = max(1, int(round(0.75 * ppm)))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rr + 1, 2 * rr + 1))
    mm_ = cv2.dilate(seen.astype(np.uint8), ker)
    if blush_truth:
        vessels = amp * np.minimum(lines, 1.0) * soft
        blush_seen = _blush_seen(od_before, 0.35 * soft, vessels, ppm) & scene.skin_mask & ~avoid
        _join_blush(mm_, blush_seen, rr)
    mm_ = cv2.morphologyEx(mm_, cv2.MORPH_CLOSE, ker)
    return od, ndi.binary_fill_holes(mm_.astype(bool)) & ~avoid


def _blush_seen(od_skin: np.ndarray, blush: np.ndarray, vessels_od: np.ndarray, ppm: float) -> np.ndarray:
    """Where a matting patch's redness read over 1 mm is visible: the generator's own test
    (``veinscope.synth._matting_margin``: the blush, in units of the generator's diffuse blood,
    and the fine vessels' OD ``vessels_od`` (green channel, x ``_EPS_HB``), averaged as light
    over a Gaussian of 1 mm, ΔE00 against the skin under it smoothed over 1 mm of at least 2 and
    1.5 x the skin texture's RMS variation), on the simulator's skin ``od_skin`` (the scene's
    OD before the patch, (M, N, 3)), taken as the texture at full resolution and exposure 1."""
    from veinscope import synth

    assert np.array_equal(_EPS_BLUSH, synth._EPS_BLOOD)
    texture = np.ascontiguousarray(np.moveaxis(np.power(10.0, -od_skin), -1, 0), dtype=np.float32)
    lit = {"texture": texture, "texture_stride": 1}
    lit["texture_rms"] = synth._texture_threshold(texture, ppm, 1, 1.0)
    skin = synth._skin_over_1mm(lit, ppm, 1.0)
    m_idx = np.flatnonzero(vessels_od > 0)
    m_val = (vessels_od.ravel()[m_idx, None] * _EPS_HB[None, :]).astype(np.float32)
    return synth._matting_margin(blush.astype(np.float32), m_idx, m_val, skin, lit, ppm) > 0


def moved_copy(rgb: np.ndarray, *, deg: float = 3.0, scale: float = 0.97, gains=(1.05, 1.0, 0.96), quality: int = 90) -> np.ndarray:
    """A follow-up photo in which nothing changed: ``rgb`` rotated ``deg`` about its centre,
    scaled, relit by per-channel ``gains`` (R, G, B) and saved again as a JPEG (PIL's 4:2:0
    chroma, as a messaging app sends it), decoded back to (M, N, 3) uint8."""
    h, w = rgb.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), deg, scale)
    out = cv2.warpAffine(np.ascontiguousarray(rgb), M, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def true_residual_px(session: Session, reg, *, step: int = 12) -> np.ndarray:
    """Distances (baseline px) between the registration's and the true mapping, on a grid of
    baseline pixels inside the registration's overlap."""
    m, n = session.baseline_rgb.shape[:2]
    yy, xx = np.mgrid[step // 2 : m : step, step // 2 : n : step]
    xy = np.c_[xx.ravel(), yy.ravel()].astype(float)
    sel = reg.overlap[yy.ravel(), xx.ravel()]
    est = reg.followup_xy(xy[sel])
    # back to the baseline frame through the true homography
    q = np.c_[est, np.ones(len(est))] @ session.h_true.T
    back = q[:, :2] / q[:, 2:3]
    return np.hypot(*(back - xy[sel]).T)


def followup_frame(session: Session, *, margin_px: int = 2) -> np.ndarray:
    """Baseline pixels that the follow-up photo shows (true homography)."""
    m, n = session.baseline_rgb.shape[:2]
    fm, fn = session.followup_rgb.shape[:2]
    ones = np.zeros((fm, fn), np.uint8)
    ones[margin_px : fm - margin_px, margin_px : fn - margin_px] = 1
    return cv2.warpPerspective(ones, session.h_true, (n, m), flags=cv2.INTER_NEAREST) > 0
