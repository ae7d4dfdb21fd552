"""The baseline's centrelines are compared over the registration's overlap: a vessel in a band the
overlap leaves out (as a card's 4 mm margin for the registration's landmarks does on whole-leg
photos) is not compared (issue 6, session 38, helper cov38). Kept from tests/test_compare_skin_overlap.py
when ``compare(fading_skin_overlap)``, which compared such a band, was removed (session 39, prune39).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.test_compare import PPM, _noise, _one_of_two_bars_cleared, _u8
from veinscope.compare import CHANGE_CODES, compare
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


def test_a_vessel_outside_the_registrations_overlap_is_not_compared(banded):
    b, f, reg = banded
    c = compare(b, f, px_per_mm=PPM, registration=reg)
    assert c.lengths_px["not_compared"] > 20 * PPM  # the cleared bar (24 mm)
    assert c.improvement_pct == pytest.approx(0.0, abs=5.0)  # the kept bar alone
    assert (c.change_map[80, 60:260] == CHANGE_CODES["not_compared"]).mean() > 0.9
