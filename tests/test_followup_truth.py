"""The simulated follow-ups' matting truth (``tests/_followup.py``) follows the generator's rule
(issue 6): within 0.75 mm of the patch's visible fine vessels and where its redness read over
1 mm passes the visibility test (``veinscope.synth._matting_margin``), a spot of blush apart
from the vessels' reach counting from that reach's disc up."""

import numpy as np

from tests._followup import _EPS_BLUSH, _blush_seen, _join_blush, make_session

PPM = 10.0


def _skin_od(shape=(160, 200), seed=0):
    rng = np.random.default_rng(seed)
    base = -np.log10(np.array([0.62, 0.45, 0.38], np.float32))  # light skin, linear RGB
    return (base[None, None, :] + rng.normal(0.0, 0.004, shape + (3,))).astype(np.float32)


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)


def test_a_visible_blush_is_seen_and_a_faint_one_is_not():
    od = _skin_od()
    disc = _disc(od.shape[:2], 80, 100, 30)  # 3 mm radius, no fine vessels
    none = np.zeros(od.shape[:2], np.float32)
    seen = _blush_seen(od, 0.35 * disc, none, PPM)  # the simulation's blush: ΔE00 well over 2
    assert seen[disc > 0].mean() > 0.9
    assert not seen[_disc(od.shape[:2], 80, 100, 30 + 2 * PPM) == 0].any()  # the 1 mm reading's spill only
    assert not _blush_seen(od, 0.02 * disc, none, PPM).any()  # ΔE00 under 2: nobody marks it
    # fine vessels add their redness to the reading: a blush under the test alone passes with them
    faint = 0.06 * disc
    assert not _blush_seen(od, faint, none, PPM)[80, 100]
    mesh = np.zeros_like(disc)
    mesh[::3, :] = 0.3 * disc[::3, :]
    assert _blush_seen(od, faint, mesh, PPM)[80, 100]
    assert np.array_equal(_EPS_BLUSH, np.array([0.04, 0.26, 0.17], np.float32))


def test_blush_pieces_join_the_reach_as_the_generator_joins_them():
    r = 7  # 0.75 mm at 10 px/mm
    reach = np.zeros((100, 160), np.uint8)
    reach[40:60, 20:40] = 1
    blush = np.zeros((100, 160), bool)
    blush[45:55, 38:50] = True  # touches the reach
    blush[10:22, 100:113] = True  # apart, 156 px >= pi r² (154)
    blush[80:85, 100:105] = True  # apart, a speck
    out = reach.copy()
    _join_blush(out, blush, r)
    assert out[50, 45] and out[15, 105] and not out[82, 102]
    assert out[reach > 0].all()


def test_the_blush_truth_holds_the_old_one_and_the_photos_do_not_change():
    kw = dict(seed=21, size=(560, 420), stain=1, matting=1)  # tests/test_register.py's session
    old = make_session(matting_blush_truth=False, **kw)
    new = make_session(**kw)
    assert np.array_equal(old.baseline_rgb, new.baseline_rgb) and np.array_equal(old.followup_rgb, new.followup_rgb)
    assert (old.matting_mask <= new.matting_mask).all()
    # its patch's blush reaches past its vessels' reach: 45.2 -> 46.3 mm² (session 36)
    assert new.truth["matting_area_mm2"] > old.truth["matting_area_mm2"] + 0.5
    assert not (new.matting_mask & new.stain_mask).any()  # the truth still leaves out the stain
