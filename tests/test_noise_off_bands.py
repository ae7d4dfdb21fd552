"""detect_vessels(noise_off_bands=True): the texture noise measured again off the vessels found.

The hysteresis levels are multiples of the skin texture's line strength, the mean over cells
of 16-64 px with a 5 x 5-cell median. Where vessels are dense, their own ridge strength is most
of every cell's mean and the levels rise with it: a faint vessel between strong ones is then
held to a level set by its neighbours. The second pass measures the texture off the bands the
first pass keeps.
"""

import numpy as np
import pytest

from veinscope.segment import detect_vessels
from veinscope.vesselness import ridge_response


def _lines(*, faint_amp: float, strong: bool = True, spot_amp: float = 0.0, seed: int = 1):
    """Noise (sd 0.02) with horizontal Gaussian lines (sd 1 px) of 0.5 every 16 px (none at row
    124) and a faint one of ``faint_amp`` at row 124, ``spot_amp`` along its columns 110-129."""
    rng = np.random.default_rng(seed)
    m = n = 240
    sig = rng.normal(0.0, 0.02, (m, n)).astype(np.float32)
    rows = np.arange(m, dtype=np.float32)[:, None]
    if strong:
        for y0 in range(12, 236, 16):
            if y0 != 124:
                sig += (0.5 * np.exp(-0.5 * (rows - y0) ** 2)).astype(np.float32)
    amp = np.full(n, faint_amp, np.float32)
    amp[110:130] = max(spot_amp, faint_amp)
    sig += (amp[None, :] * np.exp(-0.5 * (rows - 124) ** 2)).astype(np.float32)
    return sig


def _detect(sig, flag):
    ridge = ridge_response(sig, sigmas_px=(1.0, 1.5, 2.0), black_ridges=False, gamma=0.01, weighted=True)
    skin = np.ones(sig.shape, bool)
    return detect_vessels(ridge, skin, sig, high_noise=5.0, low_noise=3.0, min_length_px=10, min_piece_px=10,
                          noise_cell_px=16, noise_off_bands=flag)  # fmt: skip


def _on_row(det, y0):
    return int(np.count_nonzero(np.abs(det.points_yx[:, 0] - y0) <= 1))


def test_a_faint_vessel_between_dense_strong_ones_is_followed_off_their_noise():
    """Strong for 20 px, faint on either side: the first pass keeps the strong stretch only (its
    neighbours set the low level), the second follows the faint vessel along its band."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    one, two = _detect(sig, False), _detect(sig, True)
    assert 10 <= _on_row(one, 124) <= 40  # the strong stretch
    assert _on_row(two, 124) >= 200  # most of its 240 px
    assert two.noise < 0.5 * one.noise
    # nothing else is added: the strong lines' points are the same, no texture point appears
    rest_one = one.points_yx[np.abs(one.points_yx[:, 0] - 124) > 1]
    rest_two = two.points_yx[np.abs(two.points_yx[:, 0] - 124) > 1]
    np.testing.assert_array_equal(rest_one, rest_two)


def test_the_strong_point_a_band_must_reach_stays_the_first_passs():
    """The same faint vessel without its strong stretch: it passes the second pass's low level
    all along, but never the first pass's high level, so it is not a vessel either way."""
    sig = _lines(faint_amp=0.12)
    assert _on_row(_detect(sig, False), 124) == 0
    assert _on_row(_detect(sig, True), 124) == 0


def test_a_vessel_at_the_noise_is_not_found_either_way():
    sig = _lines(faint_amp=0.03, spot_amp=0.5)
    assert _on_row(_detect(sig, True), 124) <= 40


def test_without_a_band_kept_the_second_pass_changes_nothing():
    """Plain texture: no band is kept in the first pass, so there is no second one and the
    detection is the same to the bit."""
    sig = _lines(faint_amp=0.0, strong=False)
    one, two = _detect(sig, False), _detect(sig, True)
    assert one.noise == two.noise
    np.testing.assert_array_equal(one.points_yx, two.points_yx)
    np.testing.assert_array_equal(one.segment, two.segment)


def test_a_lone_vessel_barely_moves_the_noise():
    """Where vessels are sparse the cells' median already stands for the texture: one line
    found either way, the noise unit within 10 %."""
    sig = _lines(faint_amp=0.09, strong=False)
    one, two = _detect(sig, False), _detect(sig, True)
    assert _on_row(one, 124) >= 200 and _on_row(two, 124) >= 200
    assert two.noise == pytest.approx(one.noise, rel=0.1)


def test_analyze_records_the_option_and_leaves_it_off_by_default():
    import veinscope

    rng = np.random.default_rng(0)
    rgb = np.full((96, 96, 3), (200, 150, 130), np.uint8)
    rgb[40:44, :] = (170, 120, 130)
    rgb = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    assert veinscope.analyze(rgb, px_per_mm=10.0).params["noise_off_bands"] is False
    assert veinscope.analyze(rgb, px_per_mm=10.0, noise_off_bands=True).params["noise_off_bands"] is True
