"""A clean, strong vein on flat skin should come out as one vessel over its whole length (issue 4).

Analytic bars, straight and gently curved (a half sine 3 mm high over 30 mm), of the colour of a
blue-green reticular vein (venous OD 0.25) on flat skin with camera noise only. Session 18
(helper "bar") found a 1.5 mm bar in 3-5 pieces and traced it: ``ridge_response`` kept, per
pixel, the scale (and normal) where the *vesselness* peaked, but with the engine's small
``line_gamma`` the vesselness of a clean line saturates at 0.9999-1.0000 at every scale that sees
it, so the scale was picked among 1.9-25 px by noise; ``centreline_candidates``' symmetric
profile test then looks for the skin ``2 scale + 1`` px from the crest and, at a small scale,
found the vein itself on one side and dropped the point. Session 19 (helper "scale"): among
scales whose vesselness is saturated (``SATURATED_VESSELNESS``) the scale-normalised strength
now chooses (Lindeberg 1998), and the crest is one chain. The session also found that most of
the "pieces" session 18 counted were not breaks of the crest but short spurs at the bar's
*square* ends (the ridge forks to the end's corners, as a rectangle's medial axis does), on main
as with the fix: a separate defect, pinned as strict xfails until session 20 (helper "crest"):
the crest's chain stopped 3-21 px before the bar's end, where the filter's answer at the bar's
scale falls, and the forks came out as chains of their own. Each chain is now carried on to its
vessel's end face (``veinscope.extend.reach_end_faces``: where the contrast across falls to half
the vessel's own) and the short chains inside a face's last width are dropped, as the classical
pruning of a medial axis drops a branch shorter than the shape is wide.
"""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

import veinscope
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

from .test_pipeline import _render

LENGTH_MM = 30.0


def _bar_photo(width_mm, ppm, curved, seed=0, od=0.25):
    """A 40 x 40 mm photo with one bar from x = 5 mm to 35 mm; returns it and the true centreline."""
    m = n = int(40 * ppm)
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    x0, x1 = 5 * ppm, (5 + LENGTH_MM) * ppm
    xs = np.linspace(x0, x1, 4000)
    ys = m / 2 + (3 * ppm if curved else 0.0) * np.sin(np.pi * (xs - x0) / (x1 - x0))
    d, i = cKDTree(np.c_[ys, xs]).query(np.c_[yy.ravel(), xx.ravel()])
    d, i = d.reshape(m, n), i.reshape(m, n)
    beyond = ((i == 0) & (xx < x0)) | ((i == xs.size - 1) & (xx > x1))  # square ends
    inside = np.clip(width_mm * ppm / 2 - d + 0.5, 0, 1) * ~beyond
    rgb = _render([(CHROMOPHORE_DIRECTIONS["venous"], od * ndi.gaussian_filter(inside, 0.8))], np.random.default_rng(seed))
    return rgb, ys, xs


def _found(width_mm, ppm, curved):
    rgb, ys, xs = _bar_photo(width_mm, ppm, curved)
    a = veinscope.analyze(rgb, px_per_mm=ppm, extend_ends_mm=None)  # the detection itself, no tracker
    lab = a.labels > 0
    hit = lab[np.round(ys).astype(int), np.round(xs).astype(int)]
    cols = np.flatnonzero(lab.any(axis=0))
    past = ((xs[0] - cols.min()) / ppm, (cols.max() - xs[-1]) / ppm)  # painted beyond each end, mm
    return a, float(hit.mean()), past


_CASES = [(p, c) for p in (8.0, 10.0, 12.0) for c in (False, True)]
_IDS = [f"{p:g}-{'curved' if c else 'straight'}" for p, c in _CASES]


@pytest.mark.parametrize(("ppm", "curved"), _CASES, ids=_IDS)
def test_a_clean_reticular_vein_is_one_chain_along_its_crest(ppm, curved):
    # on main before session 19 the curved bar at 10 px/mm came in 5 pieces along its crest
    # (the longest 12.2 mm of 30.7): one chain now, within a few mm of each end
    a, covered, past = _found(1.5, ppm, curved)
    true_mm = LENGTH_MM * (1.024 if curved else 1.0)  # the half sine's arc length
    longest = max(a.vessels, key=lambda r: r["length_mm"])
    assert longest["class"] == "reticular"
    assert longest["length_mm"] >= 0.85 * true_mm, [(r["class"], round(r["length_mm"], 1)) for r in a.vessels]
    assert covered >= 0.95
    assert all(p <= 1.5 * 0.8 for p in past), past


@pytest.mark.parametrize(("ppm", "curved"), _CASES, ids=_IDS)
def test_a_clean_reticular_vein_is_one_vessel_end_to_end(ppm, curved):
    # before session 20 five of the six came out with 1-2 mm vessels at the square ends (the
    # medial axis's forks; only the straight bar at 12 px/mm without, by luck of seed 0)
    a, covered, past = _found(1.5, ppm, curved)
    assert len(a.vessels) == 1, [(r["class"], round(r["length_mm"], 1)) for r in a.vessels]
    assert a.vessels[0]["class"] == "reticular"
    assert covered >= 0.95
    # the painted vein ends within a width of each true end: its centreline within about half
    # a width, plus the disc painted at the end point
    assert all(-0.1 < p <= 1.5 * 0.8 for p in past), past


def test_a_clean_fine_vessel_stays_one_vessel():
    a, covered, past = _found(0.3, 10.0, True)
    assert len(a.vessels) == 1 and covered >= 0.95
    assert all(-0.1 < p <= 0.4 for p in past), past


@pytest.mark.xfail(strict=False, reason="wide bars: split into 1-11 pieces before session 19, 1-4 after, 1-3 after session 20 "
                   "(the curved 2.5 mm bar at 10 px/mm: 3 pieces along the crest; the other three whole; BENCHMARKS.md, sessions 18-20)")
@pytest.mark.parametrize("width_mm", [2.5, 4.0])
@pytest.mark.parametrize("curved", [False, True], ids=["straight", "curved"])
def test_a_clean_wide_vein_is_one_vessel(width_mm, curved):
    a, covered, _ = _found(width_mm, 10.0, curved)
    assert len(a.vessels) == 1 and covered >= 0.95
    assert a.vessels[0]["length_mm"] <= 1.1 * LENGTH_MM * (1.03 if curved else 1.0)


def test_the_ridge_scale_is_the_strength_s_not_the_saturated_vesselness_s():
    # a clean 15 px bar: the vesselness is ~1 at 3.6-25 px alike; the scale must be the one
    # where the scale-normalised strength peaks, about the half-width (7.5 px), all along it
    from veinscope.vesselness import ridge_response

    img = np.zeros((120, 300), np.float32)
    img[53:68, 30:270] = 0.25
    img = ndi.gaussian_filter(img, 0.8) + np.random.default_rng(0).normal(0, 0.002, img.shape).astype(np.float32)
    sig = np.geomspace(1.0, 25.0, 6)
    rr = ridge_response(img, sigmas_px=sig, black_ridges=False, gamma=0.01)
    centre = rr.scale_px[58:63, 60:240]
    near = sig[np.argmin(np.abs(np.log(sig / 7.5)))]
    assert np.mean(np.isclose(centre, near, rtol=1e-3)) > 0.95, np.unique(centre, return_counts=True)
    assert math.isclose(float(np.median(rr.vesselness[58:63, 60:240])), 1.0, abs_tol=0.01)
