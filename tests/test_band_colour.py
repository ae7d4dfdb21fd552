"""The colour reading of dropped bands in benchmarks/bench_band_colour.py (issue 4, session 14)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _chain(xs, y, scale):
    return SimpleNamespace(
        points_yx=np.stack([np.full(xs.size, y), xs], 1).astype(np.int32),
        segment=np.zeros(xs.size, np.int32),
        normals_yx=np.tile(np.array([1.0, 0.0], np.float32), (xs.size, 1)),
        scale_px=np.full(xs.size, scale, np.float32),
        n_segments=1,
    )


def test_chain_colour_is_the_lines_delta_e_and_the_copies_spread():
    from bench_band_colour import chain_colour

    from veinscope.colour import delta_e00

    skin_rgb, vessel = np.array([205.0, 160.0, 140.0]), np.array([196.0, 146.0, 140.0])
    rgb = np.empty((80, 120, 3), np.uint8)
    rgb[:] = skin_rgb
    rgb[39:42, 20:-20] = vessel
    det = _chain(np.arange(25, 95), 40, 1.5)  # width 2 x scale = 3 px
    de, spread = chain_colour(rgb, det, np.ones((80, 120), bool))
    assert de[0] == pytest.approx(float(delta_e00(vessel, skin_rgb)), abs=0.05)
    assert spread[0] == pytest.approx(0.0, abs=1e-6)  # uniform skin: the copies agree
    # stripes of skin texture across the copies: the copies spread, the line's difference does not change much
    rows = np.random.default_rng(0).normal(0.0, 6.0, (80, 1, 1))
    rgb2 = np.clip(np.broadcast_to(skin_rgb + rows, rgb.shape), 0, 255).round().astype(np.uint8)
    rgb2[39:42, 20:-20] = vessel
    de2, spread2 = chain_colour(rgb2, det, np.ones((80, 120), bool))
    assert spread2[0] > 0.5
    assert de2[0] == pytest.approx(de[0], abs=2.0)
    # no skin beside it: not judged
    de3, spread3 = chain_colour(rgb, det, np.zeros((80, 120), bool))
    assert np.isnan(de3[0]) and np.isnan(spread3[0])
