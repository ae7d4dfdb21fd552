"""compare's fused whole-photo mask kernels (``veinscope._kernels.masks``) against the NumPy and
OpenCV expressions they replace: the same values to the bit, on random data, borders, constant
and tiny images."""

import cv2
import numpy as np
import pytest

from veinscope._kernels.masks import best_of_3x3, clipped_low, followup_code, max_at_points, unpack_code
from veinscope.compare import _disc


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 97), (257, 130)])
def test_followup_code_and_unpack_match_numpy(rng, shape):
    labels = rng.integers(0, 5, shape).astype(np.uint8)
    diam = rng.uniform(0.0, 8.0, shape).astype(np.float32)
    diam[rng.random(shape) < 0.2] = 0.0
    for scale, ppm in ((1.0, 12.0), (1.1734, 10.0), (0.9, 8.3)):
        max_px = 0.3 * ppm
        # values straddling the limit, where float32 and float64 comparisons could differ
        diam.flat[:: max(1, diam.size // 7)] = np.float32(max_px) / np.float32(scale)
        fine = ((labels == 1) | (labels == 2)) & (diam > 0) & (diam * np.float32(scale) <= max_px)
        want = labels + np.uint8(1)
        want[fine] += np.uint8(8)
        got = np.empty(shape, np.uint8)
        followup_code(labels, diam, np.float32(scale), np.float32(max_px), got)
        assert np.array_equal(got, want)
        # the warp leaves 0 outside the follow-up
        code = got.copy()
        code[rng.random(shape) < 0.3] = 0
        valid, ffine, flab = np.empty(shape, bool), np.empty(shape, bool), np.empty(shape, np.uint8)
        unpack_code(code, valid, ffine, flab)
        assert np.array_equal(valid, code > 0)
        assert np.array_equal(ffine, code >= 8)
        assert np.array_equal(flab, np.subtract(code & np.uint8(7), np.uint8(1), where=code > 0, out=np.zeros_like(code)))


@pytest.mark.parametrize("code", [1, 32, 63])
def test_clipped_low_matches_numpy(rng, code):
    rgb = rng.integers(0, 256, (41, 67, 3)).astype(np.uint8)
    rgb[::3, ::2, 1] = rng.integers(0, code + 2, rgb[::3, ::2, 1].shape)  # near the limits
    rgb[::2, ::3, 0] = 4 * code - 1 + rng.integers(0, 3, rgb[::2, ::3, 0].shape)
    want = (np.minimum(rgb[..., 1], rgb[..., 2]) < code) & (rgb[..., 0] >= 4 * code)
    got = np.empty(rgb.shape[:2], bool)
    assert clipped_low(rgb, code, got) == int(want.sum())
    assert np.array_equal(got, want)
    flat = np.full((3, 4, 3), 200, np.uint8)
    assert clipped_low(flat, code, got[:3, :4]) == 0 and not got[:3, :4].any()


@pytest.mark.parametrize("r", [1, 2, 4])
def test_max_at_points_is_the_dilation_read_at_the_points(rng, r):
    for shape in ((1, 1), (5, 3), (40, 70)):
        img = rng.normal(size=shape).astype(np.float32)
        img[0, :] = 5.0  # a bright edge row: the border must not count
        ker = _disc(r)
        ys, xs = np.divmod(np.arange(img.size, dtype=np.int64), shape[1])  # every pixel, borders included
        got = np.empty(ys.size, np.float32)
        max_at_points(img, ys, xs, ker, got)
        assert np.array_equal(got, cv2.dilate(img, ker)[ys, xs])
    const = np.full((6, 6), 0.25, np.float32)
    got = np.empty(2, np.float32)
    max_at_points(const, np.array([0, 5], np.int64), np.array([5, 0], np.int64), _disc(2), got)
    assert np.array_equal(got, [0.25, 0.25])


def test_best_of_3x3_matches_the_numpy_search(rng):
    for shape in ((1, 1), (2, 3), (30, 50)):
        img = rng.normal(size=shape).astype(np.float32)
        img[rng.random(shape) < 0.3] = 0.5  # ties: the first strictly greater wins
        h, w = shape
        qy, qx = np.divmod(np.arange(img.size, dtype=np.int64), w)
        by, bx = qy.copy(), qx.copy()
        best = img[qy, qx].copy()
        for yy in [np.clip(qy + d, 0, h - 1) for d in (-1, 0, 1)]:
            for xx in [np.clip(qx + d, 0, w - 1) for d in (-1, 0, 1)]:
                v = img[yy, xx]
                better = v > best
                best[better] = v[better]
                by[better] = yy[better]
                bx[better] = xx[better]
        gy, gx = np.empty_like(qy), np.empty_like(qx)
        best_of_3x3(img, qy, qx, gy, gx)
        assert np.array_equal(gy, by) and np.array_equal(gx, bx)
