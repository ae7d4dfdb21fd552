"""The detection signal and JPEG 4:2:0 chroma (issue 4, session 13; benchmarks/bench_fine_luma.py).

The benchmark splits a vessel's OD change into the part JPEG stores at full resolution (an equal
change of the encoded R', G', B': Y') and the part it halves (no Y': Cb, Cr), and found the
engine's detection weights read the vessel direction wholly through the first. These tests hold
the split to what libjpeg actually does to a one-pixel line, and the engine's weights to their
luma lean on a generated photo.
"""

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_fine_luma import LUMA, _encoded_per_od, luma_split, luma_weights  # noqa: E402

SKIN = np.array([205.0, 155.0, 125.0])


def test_split_is_luma_and_chroma():
    from veinscope.chromophores import VESSEL_DIRECTION

    d = VESSEL_DIRECTION.astype(np.float64)
    d_l, d_c = luma_split(d, SKIN)
    j = _encoded_per_od(SKIN)
    np.testing.assert_allclose(d_l + d_c, d)
    e_l = j * d_l  # an equal encoded change in R', G', B'
    np.testing.assert_allclose(e_l, e_l[0])
    assert abs(LUMA @ (j * d_c)) < 1e-12  # the rest carries no Y'
    w = luma_weights(SKIN, d)
    assert abs(w @ d - 1) < 1e-12 and abs(w @ d_c) < 1e-12


def _line_kept(od_change, quality=92):
    """Share of a one-pixel vertical line's relative OD (projected on its own direction) that a
    JPEG 4:2:0 round trip keeps, median over the line."""
    from veinscope.chromophores import OD_LUT

    base = np.tile(SKIN, (64, 64, 1))
    od = OD_LUT[base.astype(np.uint8)].astype(np.float64)
    dirn = np.asarray(od_change, dtype=np.float64)
    line = od.copy()
    line[:, 31] += dirn
    img = np.clip(np.round(255 * _to_srgb(np.exp(-line))), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        out = np.asarray(im.convert("RGB"))
    rel = OD_LUT[out].astype(np.float64) - OD_LUT[img[:, 20:21]].astype(np.float64)
    ref = OD_LUT[img[:, 31]].astype(np.float64) - OD_LUT[img[:, 20]].astype(np.float64)
    u = dirn / np.linalg.norm(dirn)
    return float(np.median((rel[8:-8, 31] @ u) / (ref[8:-8] @ u)))


def _to_srgb(lin):
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def test_libjpeg_keeps_the_luma_part_and_halves_the_chroma_part():
    from veinscope.chromophores import VESSEL_DIRECTION

    d = 0.25 * VESSEL_DIRECTION.astype(np.float64)
    d_l, d_c = luma_split(d, SKIN)
    assert _line_kept(d_l) > 0.8
    assert _line_kept(d_c * (np.linalg.norm(d_l) / np.linalg.norm(d_c))) < 0.6


def test_engine_weights_read_the_vessel_through_luma():
    from veinscope.chromophores import VESSEL_DIRECTION, matched_vessel_weights, skin_optics
    from veinscope.synth import generate_photo

    d = VESSEL_DIRECTION.astype(np.float64)
    for seed, skin_type in ((31, 2), (32, 5)):
        ph = generate_photo(seed=seed, size=(640, 480), px_per_mm=10.0, skin_type=skin_type)
        optics = skin_optics(ph.rgb, skin=ph.skin_mask, background_px=64)
        w = matched_vessel_weights(optics, ph.skin_mask).astype(np.float64)
        skin_rgb = np.median(ph.rgb[ph.skin_mask], axis=0)
        # w . d = 1; nearly all of it (or more) comes from the part 4:2:0 keeps
        assert w @ luma_split(d, skin_rgb)[0] >= 0.95
