"""The skin mask (``veinscope.segment.skin_mask``): backgrounds whose colour passes the broad
skin prior (a light wooden floor, a beige wall, grey tiles under a warm light) stay out."""

import cv2
import numpy as np
import pytest

from veinscope.segment import _two_clusters, skin_mask
from veinscope.synth import generate_photo


def _wood_floor(shape, rng, lab=(74.0, 3.5, 13.0), angle_deg=20.0, period_px=9.0):
    """A light, warm wooden floor: grain stripes at one angle (warped), fine noise; its
    chrominance (YCrCb Cr about 139) lies inside the skin prior, its redness a* is low."""
    m, n = shape
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float32)
    t = np.deg2rad(angle_deg)
    warp = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 6.0)
    grain = np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t) + warp * (4.0 / warp.std())) / period_px)
    fine = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 0.8)
    lab_img = np.stack([lab[0] + 5.0 * grain + 1.5 * fine, lab[1] + 0.6 * grain, lab[2] + 1.5 * grain], axis=-1)
    rgb = cv2.cvtColor(lab_img.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _leg_on(background, seed, skin_type):
    """A generated leg photo (no card) with its background replaced by ``background``."""
    ph = generate_photo(seed=seed, size=(480, 360), px_per_mm=5.0, skin_type=skin_type, card=False)
    alpha = cv2.GaussianBlur(ph.skin_mask.astype(np.float32), (0, 0), 1.0)[..., None]
    rgb = np.clip(alpha * ph.rgb + (1 - alpha) * background(ph.rgb.shape[:2], np.random.default_rng(seed)) + 0.5, 0, 255)
    return rgb.astype(np.uint8), ph.skin_mask


@pytest.mark.parametrize(("seed", "skin_type"), [(2, 2), (3, 3), (5, 5), (7, 2)])
def test_a_skin_coloured_wooden_floor_is_left_out_and_the_leg_kept(seed, skin_type):
    rgb, truth = _leg_on(_wood_floor, seed, skin_type)
    assert 0.05 < 1 - truth.mean() < 0.25  # a strip of floor beside the leg
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    assert np.median(ycc[..., 1][~truth]) >= 133  # the floor passes the broad prior: the old mask took it
    before = rgb.copy()
    skin = skin_mask(rgb)
    assert np.array_equal(rgb, before)
    assert np.count_nonzero(skin & truth) >= 0.99 * np.count_nonzero(truth)
    assert np.count_nonzero(skin & ~truth) <= 0.03 * np.count_nonzero(~truth)


def test_a_small_bright_red_cluster_is_clothing_not_the_background():
    # the redder of two clusters is taken for the skin only when it is a large share of the
    # prior: a red garment (a* about 45) beside the leg must not push the leg out
    def red_cloth(shape, rng):
        lab = np.empty(shape + (3,), np.float32)
        lab[:] = (45.0, 45.0, 25.0)
        lab[..., 0] += cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 2.0) * 8
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)

    rgb, truth = _leg_on(red_cloth, 3, 3)
    skin = skin_mask(rgb)
    assert np.count_nonzero(skin & truth) >= 0.99 * np.count_nonzero(truth)


def test_two_clusters_finds_a_small_second_cluster():
    rng = np.random.default_rng(0)
    skin = rng.normal((12.0, 12.0), (2.0, 2.5), (9000, 2))
    floor = rng.normal((3.5, 13.0), (0.7, 1.2), (1000, 2))
    w, means, covs = _two_clusters(np.concatenate([skin, floor]))
    lo = int(np.argmin(means[:, 0]))
    assert w[lo] == pytest.approx(0.1, abs=0.02)
    np.testing.assert_allclose(means[lo], (3.5, 13.0), atol=0.3)
    np.testing.assert_allclose(means[1 - lo], (12.0, 12.0), atol=0.3)
    np.testing.assert_allclose(np.sqrt(np.diag(covs[1 - lo])), (2.0, 2.5), atol=0.3)
    # deterministic, and the order of the points does not matter
    w2, means2, _ = _two_clusters(np.concatenate([floor, skin]))
    np.testing.assert_allclose(np.sort(means2[:, 0]), np.sort(means[:, 0]), atol=1e-9)


def test_uniform_skin_is_one_cluster_and_the_mask_is_whole():
    rng = np.random.default_rng(1)
    img = np.empty((240, 320, 3), np.float32)
    img[:] = (205, 150, 135)
    img += rng.normal(0, 3, img.shape)
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    assert skin_mask(rgb).mean() > 0.98


def _lab_u8(lab):
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def test_pale_skin_in_front_of_a_redder_wall_is_kept():
    # pale skin (a* 7) across the middle, a terracotta wall (a* 26, a third of the photo) above
    # and below it: the skin is the less red, separated cluster, but it is at the centre, not
    # around the border, so it is not taken for a neutral background
    rng = np.random.default_rng(4)
    m, n = 240, 320
    lab = np.empty((m, n, 3), np.float32)
    lab[:] = (52.0, 26.0, 26.0)
    band = np.zeros((m, n), bool)
    band[45:195] = True
    lab[band] = (72.0, 7.0, 12.0)
    lab[..., 0] += cv2.GaussianBlur(rng.normal(0, 1, (m, n)).astype(np.float32), (0, 0), 1.5) * 6
    rgb = _lab_u8(lab)
    cr = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1]
    assert 133 <= np.median(cr[~band]) <= 180 and 133 <= np.median(cr[band])  # both pass the prior
    skin = skin_mask(rgb)
    assert np.count_nonzero(skin & band) >= 0.95 * np.count_nonzero(band)
