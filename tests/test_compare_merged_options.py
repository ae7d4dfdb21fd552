"""Session 37's two compare options merged into one ``_fading`` call (stl37's
``stain_blood_margin``, both37's ``fading_chroma``): each reaches it, together and apart
(review rev37; a regression guard for the merge, which kept both keywords)."""

from __future__ import annotations

import pytest

import veinscope.compare as C
from tests.test_compare import PPM
from tests.test_compare_chroma import _pair


@pytest.fixture(scope="module")
def pair():
    return _pair(0.5)


@pytest.mark.parametrize("margin, chroma", [(0.0, False), (1.0, True), (2.5, False), (0.0, True)])
def test_stain_blood_margin_and_fading_chroma_both_reach_fading(monkeypatch, pair, margin, chroma):
    seen = {}
    fading = C._fading

    def spy(*a, **kw):
        seen.update(kw)
        return fading(*a, **kw)

    monkeypatch.setattr(C, "_fading", spy)
    c = C.compare(*pair, px_per_mm=PPM, stain_blood_margin=margin, fading_chroma=chroma)
    assert seen["stain_margin"] == margin and isinstance(seen["stain_margin"], float)
    assert (seen["chroma_maps"] is not None) is chroma
    assert c.params["stain_blood_margin"] == margin and c.params["fading_chroma"] is chroma
