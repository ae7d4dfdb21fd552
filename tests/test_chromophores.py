import numba
import numpy as np
import pytest

from veinscope._kernels.chroma import add_upsampled, project_relative_od
from veinscope.chromophores import (
    CHROMOPHORE_DIRECTIONS,
    OD_LUT,
    _bilinear_index,
    optical_density,
    skin_optics,
    unmix,
)


def _reference_project(rgb, bg_coarse, weights, cell):
    """Slow reference: OD per pixel minus a bilinear upsampling done with scipy."""
    from scipy import ndimage as ndi

    m, n = rgb.shape[:2]
    gm, gn = bg_coarse.shape[:2]
    yy = np.clip((np.arange(m) + 0.5) / cell - 0.5, 0, gm - 1)
    xx = np.clip((np.arange(n) + 0.5) / cell - 0.5, 0, gn - 1)
    Y, X = np.meshgrid(yy, xx, indexing="ij")
    bg = np.stack([ndi.map_coordinates(bg_coarse[..., c].astype(np.float64), [Y, X], order=1) for c in range(3)], -1)
    d = OD_LUT[rgb].astype(np.float64) - bg
    return np.einsum("kc,mnc->kmn", weights, d)


@pytest.mark.parametrize("shape, cell", [((37, 53), 8), ((8, 9), 9), ((1, 1), 1), ((64, 20), 1), ((30, 31), 4)])
def test_projection_kernel_matches_reference(rng, shape, cell):
    coarse = (-(-shape[0] // cell), -(-shape[1] // cell))
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    bg = rng.random(coarse + (3,)).astype(np.float32)
    w = rng.normal(size=(2, 3)).astype(np.float32)
    out = np.empty((2,) + shape, np.float32)
    y0, wy = _bilinear_index(shape[0], coarse[0], cell)
    x0, wx = _bilinear_index(shape[1], coarse[1], cell)
    project_relative_od(rgb, OD_LUT, bg, y0, wy, x0, wx, w, out)
    np.testing.assert_allclose(out, _reference_project(rgb, bg, w, cell), atol=2e-4)


@numba.njit
def _project_per_pixel(rgb, od_lut, bg, y0, wy, x0, wx, weights, out):
    """The kernel as it was before rows began to share the interpolation along x: every pixel
    interpolates its background from the four coarse neighbours (reference for bit-identical
    results; the same operations in the same order, compiled the same way)."""
    nbx = bg.shape[1]
    nby = bg.shape[0]
    for i in range(rgb.shape[0]):
        ya = y0[i]
        yb = min(ya + 1, nby - 1)
        fy = wy[i]
        row = rgb[i]
        bga = bg[ya]
        bgb = bg[yb]
        for j in range(rgb.shape[1]):
            xa = x0[j]
            xb = min(xa + 1, nbx - 1)
            fx = wx[j]
            px = row[j]
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            for c in range(3):
                top = bga[xa, c] * (1.0 - fx) + bga[xb, c] * fx
                bot = bgb[xa, c] * (1.0 - fx) + bgb[xb, c] * fx
                b = top * (1.0 - fy) + bot * fy
                d = od_lut[px[c]] - b
                if c == 0:
                    d0 = d
                elif c == 1:
                    d1 = d
                else:
                    d2 = d
            for k in range(weights.shape[0]):
                out[k, i, j] = weights[k, 0] * d0 + weights[k, 1] * d1 + weights[k, 2] * d2
    return out


@pytest.mark.parametrize("shape, cell", [((37, 53), 8), ((8, 9), 9), ((1, 1), 1), ((64, 20), 1), ((30, 31), 4),
                                         ((200, 7), 3), ((131, 90), 40)])
@pytest.mark.parametrize("parallel", [False, True])
def test_projection_kernel_is_bit_exact(rng, shape, cell, parallel):
    """Bit-identical to the same formula evaluated pixel by pixel (:func:`_project_per_pixel`; rows sharing a band of cells
    reuse the interpolation along x; bands run in parallel; a photo's sub-window as compare
    passes it), with one thread or several."""
    coarse = (-(-shape[0] // cell), -(-shape[1] // cell))
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    bg = rng.random(coarse + (3,)).astype(np.float32)
    w = rng.normal(size=(3, 3)).astype(np.float32)
    y0, wy = _bilinear_index(shape[0], coarse[0], cell)
    x0, wx = _bilinear_index(shape[1], coarse[1], cell)
    threads = numba.get_num_threads()
    numba.set_num_threads(threads if parallel else 1)
    try:
        out = np.empty((3,) + shape, np.float32)
        project_relative_od(rgb, OD_LUT, bg, y0, wy, x0, wx, w, out)
        sub = (slice(shape[0] // 3, shape[0]), slice(shape[1] // 2, shape[1]))
        part = np.empty((3,) + rgb[sub].shape[:2], np.float32)
        project_relative_od(np.ascontiguousarray(rgb[sub]), OD_LUT, bg, np.ascontiguousarray(y0[sub[0]]),
                            np.ascontiguousarray(wy[sub[0]]), np.ascontiguousarray(x0[sub[1]]),
                            np.ascontiguousarray(wx[sub[1]]), w, part)
    finally:
        numba.set_num_threads(threads)
    want = np.empty_like(out)
    _project_per_pixel(rgb, OD_LUT, bg, y0, wy, x0, wx, w, want)
    assert np.array_equal(out, want)
    assert np.array_equal(part, out[:, sub[0], sub[1]])


@pytest.mark.parametrize("shape, cell", [((37, 53), 8), ((8, 9), 9), ((1, 1), 1), ((64, 20), 1), ((300, 7), 3),
                                         ((131, 90), 40)])
@pytest.mark.parametrize("parallel", [False, True])
def test_adding_the_upsampled_background_is_bit_exact(rng, shape, cell, parallel):
    """``add_upsampled`` (the analysis adds the skin's background OD back before measuring
    widths) gives the NumPy row-block form's float32 result to the bit, with any thread count,
    and agrees with an independent bilinear upsampling (scipy) to float32 rounding."""
    from scipy import ndimage as ndi

    coarse_shape = (-(-shape[0] // cell), -(-shape[1] // cell))
    coarse = rng.normal(size=coarse_shape).astype(np.float32)
    signal = rng.normal(size=shape).astype(np.float32)
    y0, wy = _bilinear_index(shape[0], coarse_shape[0], cell)
    x0, wx = _bilinear_index(shape[1], coarse_shape[1], cell)
    x1 = np.minimum(x0 + 1, coarse_shape[1] - 1)
    y1 = np.minimum(y0 + 1, coarse_shape[0] - 1)
    want = signal.copy()
    for r0 in range(0, shape[0], 256):  # the form analyze used before (pipeline._add_background)
        r = slice(r0, min(shape[0], r0 + 256))
        rows = coarse[y0[r]] * (1 - wy[r, None]) + coarse[y1[r]] * wy[r, None]
        want[r] += rows[:, x0] * (1 - wx) + rows[:, x1] * wx
    got = signal.copy()
    threads = numba.get_num_threads()
    numba.set_num_threads(threads if parallel else 1)
    try:
        add_upsampled(got, coarse, y0, wy, x0, wx)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(got, want)
    yy = np.clip((np.arange(shape[0]) + 0.5) / cell - 0.5, 0, coarse_shape[0] - 1)
    xx = np.clip((np.arange(shape[1]) + 0.5) / cell - 0.5, 0, coarse_shape[1] - 1)
    Y, X = np.meshgrid(yy, xx, indexing="ij")
    up = ndi.map_coordinates(coarse.astype(np.float64), [Y, X], order=1)
    np.testing.assert_allclose(got, signal + up, atol=2e-6)


@pytest.mark.parametrize("shape, cell", [((37, 53), 8), ((5, 5), 7), ((1, 1), 1), ((16, 16), 4)])
def test_block_sums_match_reference(rng, shape, cell):
    from veinscope._kernels.chroma import block_sum, block_sum_od

    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    mask = rng.random(shape) > 0.3
    gm, gn = -(-shape[0] // cell), -(-shape[1] // cell)
    tot, cnt = np.empty((gm, gn, 3)), np.empty((gm, gn))
    block_sum_od(rgb, mask, OD_LUT, cell, tot, cnt)
    img = rng.random(shape).astype(np.float32)
    tot1, cnt1 = np.empty((gm, gn)), np.empty((gm, gn))
    block_sum(img, mask, cell, tot1, cnt1)
    od = OD_LUT[rgb].astype(np.float64)
    for gi in range(gm):
        for gj in range(gn):
            sl = (slice(gi * cell, (gi + 1) * cell), slice(gj * cell, (gj + 1) * cell))
            mk = mask[sl]
            assert cnt[gi, gj] == mk.sum() == cnt1[gi, gj]
            np.testing.assert_allclose(tot[gi, gj], od[sl][mk].sum(axis=0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(tot1[gi, gj], img[sl][mk].sum(), rtol=1e-5, atol=1e-6)


def test_optical_density_values():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [128, 128, 128]]], np.uint8)
    od = optical_density(rgb)
    assert od[0, 0].max() == 0
    assert np.all(od[0, 1] > 6)
    np.testing.assert_allclose(od[0, 2], -np.log(((128 / 255 + 0.055) / 1.055) ** 2.4), rtol=1e-5)


def test_unmix_recovers_pure_chromophores():
    for i, name in enumerate(("haemoglobin", "venous", "melanin")):
        c = unmix(0.3 * CHROMOPHORE_DIRECTIONS[name])
        expected = np.zeros(3)
        expected[i] = 0.3
        np.testing.assert_allclose(c, expected, atol=1e-6)


def _skin_with(colour_od, rng):
    """Uniform skin with a stripe whose relative OD is ``colour_od``."""
    skin_rgb = np.array([205.0, 160.0, 140.0])
    lin = ((skin_rgb / 255 + 0.055) / 1.055) ** 2.4
    stripe_lin = lin * np.exp(-np.asarray(colour_od))
    stripe = 255 * (1.055 * stripe_lin ** (1 / 2.4) - 0.055)
    img = np.tile(skin_rgb, (120, 160, 1))
    img[55:65] = stripe
    return np.clip(img + rng.normal(0, 0.5, img.shape), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["haemoglobin", "venous", "melanin"])
def test_maps_tell_chromophores_apart(rng, name):
    img = _skin_with(0.4 * CHROMOPHORE_DIRECTIONS[name], rng)
    optics = skin_optics(img, background_px=60)
    maps = optics.chromophore_maps()
    stripe = {k: float(np.median(v[57:63, 20:140])) for k, v in maps.items()}
    assert stripe[name] == pytest.approx(0.4, abs=0.06)
    for other in set(stripe) - {name}:
        assert abs(stripe[other]) < 0.06
    # the detection signal responds to blood of both kinds (melanin is rejected later by colour)
    sig = float(np.median(optics.vessel_signal()[57:63, 20:140]))
    assert sig > 0.3
    # background away from the stripe is ~0
    assert abs(float(np.median(optics.vessel_signal()[:30]))) < 0.02


def test_input_not_modified_and_bad_args(rng):
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = img.copy()
    skin_optics(img, background_px=30).vessel_signal()
    np.testing.assert_array_equal(img, before)
    with pytest.raises(ValueError, match="background_px"):
        skin_optics(img, background_px=1)
    with pytest.raises(ValueError, match="rgb"):
        skin_optics(img[..., 0], background_px=30)
    with pytest.raises(TypeError, match="uint8"):
        skin_optics(img.astype(np.float32), background_px=30)
    with pytest.raises(ValueError, match="skin"):
        skin_optics(img, skin=np.ones((3, 3), bool), background_px=30)


def _noisy_skin(rng, sd_rgb, shape=(384, 512)):
    base = np.array([200.0, 150.0, 130.0])
    img = base + rng.normal(0, 1, shape + (3,)) * np.asarray(sd_rgb, float)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def test_matched_weights_follow_the_channel_noise(rng):
    from veinscope.chromophores import VESSEL_DIRECTION, matched_vessel_weights, skin_optics

    skin = np.ones((384, 512), bool)
    # noise of equal OD variance in every channel: the plain vessel direction
    base = np.array([200.0, 150.0, 130.0])
    flat = skin_optics(_noisy_skin(rng, base * 0.02), skin=skin, background_px=60)
    w = matched_vessel_weights(flat, skin)
    assert float(w @ VESSEL_DIRECTION) == pytest.approx(1.0, abs=1e-5)  # unit gain for a vessel
    np.testing.assert_allclose(w, VESSEL_DIRECTION, atol=0.06)
    # a blue channel four times noisier (dark skin: little blue light): less weight on blue,
    # still unit gain, and less noise in the signal than the plain direction gives
    rgb = _noisy_skin(rng, base * 0.02 * np.array([1.0, 1.0, 4.0]))
    opt = skin_optics(rgb, skin=skin, background_px=60)
    w2 = matched_vessel_weights(opt, skin)
    assert float(w2 @ VESSEL_DIRECTION) == pytest.approx(1.0, abs=1e-5)
    assert w2[2] < 0.25 * VESSEL_DIRECTION[2] and w2[0] > VESSEL_DIRECTION[0] and w2[1] > VESSEL_DIRECTION[1]
    assert np.all(w2 >= 0)
    assert opt.project(w2)[skin].std() < 0.8 * opt.project(VESSEL_DIRECTION)[skin].std()


def test_matched_weights_fall_back_without_enough_skin(rng):
    from veinscope.chromophores import VESSEL_DIRECTION, matched_vessel_weights, skin_optics

    rgb = _noisy_skin(rng, (3, 3, 12))
    skin = np.zeros(rgb.shape[:2], bool)
    skin[:70, :70] = True  # one whole 64-px block only
    w = matched_vessel_weights(skin_optics(rgb, skin=skin, background_px=60), skin)
    np.testing.assert_allclose(w, VESSEL_DIRECTION.astype(np.float32))
