"""``compare(fading_chroma=True)``: the centrelines read with the chroma detail 4:2:0 subsampling
took put back from the luma, in both photos (issue 6, session 37).

Analytic pairs on the pink test skin at 10 px/mm, both photos through a JPEG round trip at
quality 92 with 4:2:0 chroma (the generated series' and most phones' encoding): a strong
reference bar kept as it is, a faint fine red bar (2 px) that keeps half of its optical density
in the follow-up, and one that vanishes. Without the JPEG the half-kept bar's follow-up reads
ΔE00 ~4.0 (baseline ~8.1); through it ~2.6 (baseline ~5.8: its redness averaged over 2 x 2
pixels), under a threshold of 3.0, so it reads cleared; with the chroma put back ~3.8 (baseline
~7.6) and it persists (BENCHMARKS.md, session 37, helper both37).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.test_compare import PPM, _bar, _faded, _noise, _skin, _u8
from veinscope.compare import _chroma_from_luma, compare

_RED = _faded((170, 95, 115), 0.3)  # a faint red telangiectasia on the test skin
_THR = 3.0  # min_delta_e: between the half-kept bar's follow-up ΔE00 through the JPEG and without it


def _jpeg(rgb: np.ndarray, sampling: int = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _pair(keep: float = 0.5, jpeg: bool = True):
    """Reference bar (row 60, 4 px) in both photos; faint fine red bars (2 px) at rows 121
    (keeping ``keep`` of its OD in the follow-up) and 181 (gone in the follow-up)."""
    b = _skin()
    f = b.copy()
    _bar(b, 60, 40, 280, (150, 100, 140), width=4)
    _bar(f, 60, 40, 280, (150, 100, 140), width=4)
    _bar(b, 121, 40, 280, _RED, width=2)
    _bar(b, 181, 40, 280, _RED, width=2)
    if keep > 0:
        _bar(f, 121, 40, 280, _faded(_RED, keep), width=2)
    b, f = _u8(_noise(b, 1)), _u8(_noise(f, 2))
    return (_jpeg(b), _jpeg(f)) if jpeg else (b, f)


def _status(c, y):
    (v,) = [v for v in c.vessels if abs(v["centre_yx"][0] - y) <= 5]
    return v["status"]


@pytest.fixture(scope="module")
def half_kept():
    return _pair(0.5)


@pytest.mark.parametrize("chroma", [False, True])
def test_a_faint_fine_red_vessel_kept_at_half_its_contrast_in_a_jpeg_persists_with_its_chroma_put_back(half_kept, chroma):
    c = compare(*half_kept, px_per_mm=PPM, min_delta_e=_THR, fading_chroma=chroma)
    assert c.params["fading_chroma"] is chroma
    assert _status(c, 60) == "persisting"
    assert _status(c, 181) == "cleared"
    # read as it is, the JPEG's halved chroma takes the kept vessel under the threshold
    assert _status(c, 121) == ("persisting" if chroma else "cleared")
    # truth 33.3 %: with the chroma put back ~40, as it is ~59
    assert c.improvement_pct == pytest.approx(100.0 / 3.0, abs=8.0) if chroma else c.improvement_pct > 50.0


def test_the_half_kept_vessel_persists_without_the_jpeg_either_way():
    # the truth the option restores: without the round trip the kept bar is above the threshold
    b, f = _pair(0.5, jpeg=False)
    for chroma in (False, True):
        assert _status(compare(b, f, px_per_mm=PPM, min_delta_e=_THR, fading_chroma=chroma), 121) == "persisting"


def test_vanished_faint_vessels_read_cleared_with_the_chroma_put_back():
    b, f = _pair(0.0)
    c = compare(b, f, px_per_mm=PPM, min_delta_e=_THR, fading_chroma=True)
    assert _status(c, 121) == _status(c, 181) == "cleared"
    assert _status(c, 60) == "persisting"
    assert c.improvement_pct == pytest.approx(200.0 / 3.0, abs=5.0)


def test_fading_chroma_is_off_by_default(half_kept):
    assert compare(*half_kept, px_per_mm=PPM).params["fading_chroma"] is False


def _centre_colour(rgb, row=121):
    """Mean relative sRGB of the bar's two rows against the skin 10-15 px above it."""
    v = rgb.astype(np.float64)
    return v[row - 1 : row + 1, 60:260].mean(axis=(0, 1)) - v[row - 15 : row - 10, 60:260].mean(axis=(0, 1))


def test_chroma_from_luma_puts_back_the_redness_420_took_and_keeps_whole_chroma():
    b, _ = _pair(0.5, jpeg=False)
    truth = _centre_colour(b)
    j420 = _jpeg(b)
    j444 = _jpeg(b, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)
    red = lambda c: c[0] - c[1]  # noqa: E731 - red minus green: the vessel's redness
    # the round trip's loss: the centre's redness about halved (the chroma averaged over 2 x 2
    # pixels, and quantised: about half of its integral across the bar is gone at quality 92)
    assert red(_centre_colour(j420)) < 0.6 * red(truth)
    # part of it put back at the centre (~3.8 -> ~4.9 of ~7.7)
    assert red(_centre_colour(_chroma_from_luma(j420))) > red(_centre_colour(j420)) + 0.1 * red(truth)
    # a photo whose chroma is whole keeps its colour (the rule adds nothing that is not lost)
    assert red(_centre_colour(_chroma_from_luma(j444))) == pytest.approx(red(_centre_colour(j444)), rel=0.15)
    # shape, dtype, the input untouched, the luma kept within the rounding
    before = j420.copy()
    out = _chroma_from_luma(j420)
    assert out.shape == j420.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(j420, before)
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(out.astype(np.float64) @ luma - j420.astype(np.float64) @ luma).max() < 3.0
