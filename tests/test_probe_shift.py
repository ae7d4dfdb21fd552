"""The tail probe from starts shifted across the way (``extend_ends(probe_shift_px=...)``,
``analyze(tail_probe_shift_mm=...)``): its statistic, its null and its steadiness when the
place it starts from moves by a pixel (issues 4 and 6, session 32, helper "knife32")."""

import math

import numpy as np
import pytest

import veinscope
from veinscope.extend import extend_ends

from .test_extend import WINDOW, M, N, _chain, _reach, _short_bar_in_texture, _turning_line

OFFS = np.linspace(-1.5, 1.5, 9)


def _faint_line(seed, contrast=0.08):
    """A faint horizontal line 2 px wide (rows 49-50) on Gaussian pixel noise."""
    rng = np.random.default_rng(seed)
    sig = rng.normal(0.0, 0.1, (100, 160)).astype(np.float32)
    sig[49:51, 20:150] += contrast
    return sig, np.ones(sig.shape, np.uint8)


def test_the_shifted_probe_is_the_largest_over_its_starts_and_the_old_one_without_shifts():
    from veinscope._kernels.track import _fan_best, _fan_best_off

    sig, skin = _faint_line(0)
    hws = np.array([1.0, 0.75])
    for y in (48.0, 49.5, 50.25, 51.5):
        one = _fan_best(sig, skin, y, 30.0, 0.0, 1.0, hws, 22)
        assert _fan_best_off(sig, skin, y, 30.0, 0.0, 1.0, hws, 22, np.zeros(1)) == (*one, 0.0)
        v, dy, dx, h, o = _fan_best_off(sig, skin, y, 30.0, 0.0, 1.0, hws, 22, OFFS)
        each = [_fan_best(sig, skin, y + s, 30.0, 0.0, 1.0, hws, 22)[0] for s in OFFS]  # across (0, 1): down
        assert v == max(each) and o == OFFS[int(np.argmax(each))]


@pytest.mark.parametrize("seed", range(4))
def test_the_shifted_probe_barely_moves_when_its_start_moves_by_a_pixel(seed):
    # the probe's value from starts 0 to 1 px across the line: a single start's falls by half as
    # the start leaves the line; the largest over starts spread 1.5 px either side moves far less
    from veinscope._kernels.track import _fan_best, _fan_best_off

    sig, skin = _faint_line(seed)
    hws = np.array([1.0, 0.75])
    ys = 49.5 + np.arange(0.0, 1.01, 0.25)
    one = np.array([_fan_best(sig, skin, y, 30.0, 0.0, 1.0, hws, 22)[0] for y in ys])
    shifted = np.array([_fan_best_off(sig, skin, y, 30.0, 0.0, 1.0, hws, 22, OFFS)[0] for y in ys])
    assert np.ptp(shifted) < 0.5 * np.ptp(one)
    assert shifted.min() > 0.8 * one.max()


def test_the_shifted_probes_null_is_its_statistic_on_the_skin_off_the_chains():
    # probe_nulls with shifts against a plain loop over _fan_best_off: the starts near a
    # centreline (now also within the shifts' reach) left out, the median and 1.4826 MAD of the rest
    from veinscope._kernels.track import _fan_best_off, probe_nulls

    rng = np.random.default_rng(7)
    sig = rng.normal(0.0, 0.1, (M, N)).astype(np.float32)
    skin = np.ones((M, N), np.uint8)
    det = _chain(40, 101)
    ys = det.points_yx[:, 0].astype(np.int64)
    xs = det.points_yx[:, 1].astype(np.int64)
    seg = det.segment.astype(np.int64)
    sy, sx, ang = rng.uniform(20, M - 20, 300), rng.uniform(20, N - 20, 300), rng.uniform(0, math.pi, 300)
    hw_vals = np.array([0.75, 2.0])
    length = 12
    med, sp = np.full(2, np.nan), np.full(2, np.nan)
    probe_nulls(sig, skin, ys, xs, seg, N, sy, sx, np.sin(ang), np.cos(ang), hw_vals, length, med, sp, OFFS)
    for h, hw in enumerate(hw_vals):
        reach = int(math.ceil(hw + 2 * max(2 * hw, 2.0) + 1.5)) + 1 + length
        far = ~((np.abs(np.round(sy)[:, None] - ys[None]) <= reach) & (np.abs(np.round(sx)[:, None] - xs[None]) <= reach)).any(1)
        hws = np.array([hw, min(hw, 0.75)])
        v = np.array([_fan_best_off(sig, skin, sy[i], sx[i], math.sin(ang[i]), math.cos(ang[i]), hws, length, OFFS)[0]
                      for i in np.flatnonzero(far)])  # fmt: skip
        assert 16 <= v.size < 300
        np.testing.assert_allclose(med[h], np.median(v), rtol=1e-9)
        np.testing.assert_allclose(sp[h], 1.4826 * np.median(np.abs(v - np.median(v))), rtol=1e-9)


KW = dict(max_length_px=150, window_px=WINDOW, long_window_px=3 * WINDOW, probe_px=2 * WINDOW, probe_nfa=1.0)


def test_no_shift_is_the_single_start():
    sig, _ = _turning_line(0, 0.2, 40.0)
    a = extend_ends(_chain(40, 101), sig, np.ones((M, N), bool), **KW)
    b = extend_ends(_chain(40, 101), sig, np.ones((M, N), bool), probe_shift_px=0.0, **KW)
    np.testing.assert_array_equal(a.points_yx, b.points_yx)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_the_shifted_probe_still_finds_a_faint_continuation(seed):
    # test_extend's turning line (a fine faint line on from the bar's end, 40 degrees off), the
    # probe's starts spread a pixel either side: still followed to the image's edge, on the line
    sig, (dy, dx) = _turning_line(seed, 0.2, 40.0)
    on = extend_ends(_chain(40, 101), sig, np.ones((M, N), bool), probe_shift_px=1.0, **KW)
    reach, added = _reach(on)
    assert reach >= 145
    rel = added.astype(float) - np.array([60 + 0.5, 100.0])
    far = rel[:, 1] > 2
    assert np.all(np.abs(rel[far, 0] * dx - rel[far, 1] * dy) <= 2.5)


@pytest.mark.parametrize("seed", range(6))
def test_noise_alone_does_not_carry_a_shifted_probe(seed):
    # its null is taken with the same shifts: the skin's texture alone carries no probe either
    sig = _short_bar_in_texture(seed)
    out = extend_ends(_chain(40, 101), sig, np.ones((M, N), bool), probe_shift_px=1.0, **KW)
    reach, _ = _reach(out)
    assert reach <= 100 + WINDOW // 2


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1"])
def test_a_bad_probe_shift_is_refused(bad):
    with pytest.raises(ValueError, match="tail_probe_shift_mm"):
        veinscope.analyze(np.zeros((64, 64, 3), np.uint8), px_per_mm=10.0, tail_probe_shift_mm=bad)
    with pytest.raises(ValueError, match="probe_shift_px"):
        extend_ends(_chain(40, 101), np.zeros((M, N), np.float32), np.ones((M, N), bool), max_length_px=10,
                    probe_px=20, probe_shift_px=bad)  # fmt: skip
