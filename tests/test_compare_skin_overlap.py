"""``compare(fading_skin_overlap=True)``: the baseline's centrelines compared over the skin both
photos' analyses show, at full resolution, not the registration's working-resolution overlap,
which leaves the cards out with a 4 mm margin for its landmarks (issue 6, session 38, helper
cov38).

On whole-leg photos the follow-up's card, placed elsewhere at each visit, took a band about
4.7 mm wide round it out of the compared baseline (the skin is in plain view in both photos and
the change truth counts its vessels). Here the registration's overlap is given without a band
across one of two bars, as a card's margin would take it: without the option that bar is not
compared, with it the bar is compared and read (cleared, as it is).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.test_compare import PPM, _noise, _one_of_two_bars_cleared, _u8
from veinscope.compare import CHANGE_CODES, _skin_overlap, compare
from veinscope.register import register


@pytest.fixture(scope="module")
def banded():
    """Two equal bars at baseline (rows 80 and 170), the follow-up keeping the lower one; the
    registration's overlap without rows 60-100 (the cleared bar's place)."""
    base, fu = _one_of_two_bars_cleared()
    b, f = _u8(_noise(base, 1)), _u8(_noise(fu, 2))
    reg = register(b, f, px_per_mm=PPM)
    overlap = reg.overlap.copy()
    overlap[60:100] = False
    return b, f, dataclasses.replace(reg, overlap=overlap)


def test_a_vessel_outside_the_registrations_overlap_is_not_compared_without_the_option(banded):
    b, f, reg = banded
    c = compare(b, f, px_per_mm=PPM, registration=reg)
    assert c.params["fading_skin_overlap"] is False
    assert c.lengths_px["not_compared"] > 20 * PPM  # the cleared bar (24 mm)
    assert c.improvement_pct == pytest.approx(0.0, abs=5.0)  # the kept bar alone
    assert (c.change_map[80, 60:260] == CHANGE_CODES["not_compared"]).mean() > 0.9


def test_the_skin_both_analyses_show_is_compared_with_the_option(banded):
    b, f, reg = banded
    c = compare(b, f, px_per_mm=PPM, registration=reg, fading_skin_overlap=True)
    assert c.params["fading_skin_overlap"] is True
    assert c.lengths_px["not_compared"] < 2 * PPM  # a bar's ends at most
    assert c.improvement_pct == pytest.approx(50.0, abs=5.0)
    assert (c.change_map[80, 60:260] == CHANGE_CODES["cleared"]).mean() > 0.9
    # staining, matting and new vessels keep the registration's overlap: the band stays not
    # compared off the vessel
    assert (c.change_map[70, 60:260] == CHANGE_CODES["not_compared"]).mean() > 0.9


def test_the_option_leaves_a_pair_without_the_band_as_it_was(banded):
    b, f, reg = banded
    full = dataclasses.replace(reg, overlap=register(b, f, px_per_mm=PPM).overlap)
    off = compare(b, f, px_per_mm=PPM, registration=full)
    on = compare(b, f, px_per_mm=PPM, registration=full, fading_skin_overlap=True)
    assert on.improvement_pct == pytest.approx(off.improvement_pct, abs=2.0)
    assert on.improvement_pct == pytest.approx(50.0, abs=5.0)


def test_skin_overlap_is_both_skins_within_the_frame_eroded():
    class Identity:
        def warp(self, image, *, interpolation="linear", fill=0):
            assert interpolation == "nearest" and fill == 0
            return np.asarray(image).copy()

    b_skin = np.ones((40, 50), bool)
    b_skin[:, :5] = False
    f_skin = np.ones((40, 50), bool)
    f_skin[10:20, 20:30] = False  # the follow-up's card, left out by its analysis
    valid = np.ones((40, 50), bool)
    valid[35:] = False  # outside the follow-up photo
    both = b_skin & f_skin & valid
    got0 = _skin_overlap(b_skin, f_skin, valid, Identity(), 0)
    np.testing.assert_array_equal(got0, both)
    got = _skin_overlap(b_skin, f_skin, valid, Identity(), 2)
    assert got.dtype == bool and got.shape == (40, 50)
    assert not got[:, :7].any() and not got[33:].any() and not got[8:22, 20:30].any() and not got[10:20, 18:32].any()
    assert got[25, 25] and got[5, 40] and not got[0].any()  # the photo's edge is background
    assert not (got & ~both).any()
    assert b_skin.sum() == 40 * 45 and f_skin.sum() == 40 * 50 - 100  # inputs untouched
