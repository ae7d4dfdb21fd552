"""The change map's patch labels: beside their patch, inside the picture, never on each other."""

import numpy as np
import pytest

from veinscope.report.change_map import _place_labels


def _rect(spot, size):
    (x, y), (w, h) = spot, size
    return x, y, x + w, y + h


def _overlap(a, b):
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowded_stains_get_labels_that_do_not_overlap(seed):
    # a dozen small stains within a few label-widths of each other, as along a treated vessel's band
    rng = np.random.default_rng(seed)
    shape = (1200, 1600)
    cy, cx = 600, 800
    patches = []
    for _ in range(12):
        y, x = cy + rng.uniform(-60, 60), cx + rng.uniform(-90, 90)
        patches.append((y, x, y + rng.uniform(4, 20), x + rng.uniform(4, 20)))
    sizes = [(44, 30)] * len(patches)
    spots = _place_labels(patches, sizes, shape)
    rects = [_rect(s, z) for s, z in zip(spots, sizes)]
    for i in range(len(rects)):
        x0, y0, x1, y1 = rects[i]
        assert 0 <= x0 and x1 <= shape[1] and 0 <= y0 and y1 <= shape[0]
        for j in range(i):
            assert _overlap(rects[i], rects[j]) == 0, (i, j, rects[i], rects[j])
    # each label stays near its own patch: within a few label heights of the patch's box
    for (y0, x0, y1, x1), (lx0, ly0, lx1, ly1) in zip(patches, rects):
        dx = max(0, x0 - lx1, lx0 - x1)
        dy = max(0, y0 - ly1, ly0 - y1)
        assert max(dx, dy) <= 4 * 30 + 10


def test_a_lone_patch_is_labelled_at_its_upper_right_and_kept_inside_at_the_edge():
    (tx, ty), = _place_labels([(100.0, 200.0, 120.0, 230.0)], [(40, 20)], (400, 600), gap=2)
    assert (tx, ty) == (232, 80)
    # at the picture's right edge the label moves inside, still clear of the picture's border
    (tx, ty), = _place_labels([(100.0, 570.0, 120.0, 598.0)], [(40, 20)], (400, 600), gap=2)
    assert tx + 40 <= 600 and tx >= 0


def test_a_label_keeps_off_the_vessels_the_map_draws():
    # a vessel runs through the lone patch's upper-right spot, where its label would go first
    shape = (400, 600)
    busy = np.zeros(shape, bool)
    busy[60:100, 225:290] = True  # a thick vessel across the upper right of the patch
    busy[100:120, 200:230] = True  # the patch itself
    (tx, ty), = _place_labels([(100.0, 200.0, 120.0, 230.0)], [(40, 20)], shape, gap=2, busy=busy)
    assert not busy[ty:ty + 20, tx:tx + 40].any()
    assert max(0, 200 - (tx + 40), tx - 230) <= 4 * 22 and max(0, 100 - (ty + 20), ty - 120) <= 4 * 22  # still near
    # labels still never sit on each other: two patches side by side in a busy picture
    busy2 = np.ones(shape, bool)
    busy2[:, 400:] = False
    spots = _place_labels([(100.0, 200.0, 120.0, 230.0), (100.0, 236.0, 120.0, 266.0)], [(40, 20)] * 2, shape, busy=busy2)
    assert _overlap(_rect(spots[0], (40, 20)), _rect(spots[1], (40, 20))) == 0
