"""The OpenCV/Numba grid helpers against SciPy's reference implementations."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from veinscope._grid import fill_holes, keep_large_filled, median_filter, nearest_fill


def test_nearest_fill_takes_a_nearest_valid_cell(rng):
    g = rng.random((20, 30)).astype(np.float32)
    valid = rng.random((20, 30)) > 0.7
    out = nearest_fill(g, valid)
    np.testing.assert_array_equal(out[valid], g[valid])
    dist = ndi.distance_transform_edt(~valid)
    vy, vx = np.nonzero(valid)
    for y, x in zip(*np.nonzero(~valid)):
        d2 = (vy - y) ** 2 + (vx - x) ** 2
        nearest = np.flatnonzero(d2 == d2.min())
        assert out[y, x] in g[vy[nearest], vx[nearest]]
        assert np.sqrt(d2.min()) == pytest.approx(dist[y, x])


@pytest.mark.parametrize("shape,size", [((17, 23), 5), ((12, 9, 3), 7), ((3, 4), 5)])
def test_median_filter_matches_scipy(rng, shape, size):
    g = rng.random(shape).astype(np.float32)
    ref = ndi.median_filter(g, size=(size, size) + (1,) * (g.ndim - 2), mode="nearest")
    np.testing.assert_array_equal(median_filter(g, size), ref)


def test_fill_holes_and_small_regions(rng):
    m = rng.random((80, 80)) > 0.45
    np.testing.assert_array_equal(fill_holes(m), ndi.binary_fill_holes(m))
    big = np.zeros((100, 100), bool)
    big[10:60, 10:60] = True
    big[30:35, 30:35] = False  # a hole
    big[80:83, 80:83] = True  # a speck, 9 px < 0.1 of the big region
    out = keep_large_filled(big, min_frac_of_largest=0.1, min_frac_of_image=0.002)
    assert out[32, 32] and out[10, 10] and not out[81, 81]
    assert not keep_large_filled(np.zeros((5, 5), bool), min_frac_of_largest=0.1, min_frac_of_image=0.0).any()
