"""Lone short chains judged a-contrario against the photo's own skin texture
(measure._texture_nfa, analyze(short_chain_nfa=))."""

from __future__ import annotations

import numpy as np
import pytest

import veinscope
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS
from veinscope.measure import _texture_nfa, chain_delta_e

from tests.test_pipeline import _bar, _render

VEN = np.asarray(CHROMOPHORE_DIRECTIONS["venous"])


def _skin(rng, shape=(200, 260), grain=3.0):
    """Skin-coloured photo with a blotchy texture (smoothed noise, a few px across)."""
    from scipy import ndimage as ndi

    base = np.array([205.0, 160.0, 145.0])
    tex = ndi.gaussian_filter(rng.normal(0, 1, shape), 1.5)
    tex *= grain / tex.std()
    return np.clip(base + tex[..., None] * np.array([1.0, 1.1, 1.1]), 0, 255)


def _chain(y, x0, length, seg=0):
    pts = np.array([[y, x] for x in range(x0, x0 + length)], np.int64)
    return pts, np.tile([1.0, 0.0], (length, 1)), np.full(length, 2.0), np.full(length, seg)


def _judge(rgb, chains, *, lone_px=0.0, max_width_px=np.inf, max_px=40):
    pts = np.concatenate([c[0] for c in chains])
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    pts, nrm, w, seg = (np.concatenate([c[i] for c in chains])[order] for i in range(4))
    skin = np.ones(rgb.shape[:2], bool)
    acc = np.ones(pts.shape[0], bool)
    de = chain_delta_e(rgb.round().astype(np.uint8), pts, nrm, w, seg, acc, skin)
    out = _texture_nfa(rgb.round().astype(np.uint8), pts, nrm, w, seg, acc, acc, skin, de, max_px=max_px, nfa=1.0,
                       lone_px=lone_px, max_width_px=max_width_px)  # fmt: skip
    return de, out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_texture_is_dropped_and_a_faint_vessel_kept(seed):
    rng = np.random.default_rng(seed)
    rgb = _skin(rng)
    # chains 0-11 on bare texture (each as different from its skin as the texture makes at
    # random: with 13 chains tested, one is dropped when over 1 in 13 random copies match it,
    # 12 in 13 of them on average); chain 12 along a line darkened by 4-5 % (ΔE00 over 2)
    rgb[169:172, 40:70] *= np.array([0.96, 0.95, 0.95])
    chains = [_chain(20 + 25 * (i // 3), 10 + 85 * (i % 3), 30, i) for i in range(12)] + [_chain(170, 40, 30, 12)]
    de, out = _judge(rgb, chains)
    assert de[12] > 2.0 and 12 not in out
    assert len(out) >= 8


def test_a_chain_no_different_from_its_skin_is_dropped():
    rng = np.random.default_rng(6)
    rgb = _skin(rng)
    rgb[30:70, 20:110] = rgb[30:70, 20:110].mean(axis=(0, 1))  # a flat patch: ΔE00 0
    assert _judge(rgb, [_chain(50, 40, 30, 0)])[1] == [0]


def test_only_lone_thin_short_chains_are_tested():
    rng = np.random.default_rng(4)
    rgb = _skin(rng)
    rgb[30:70, 20:110] = rgb[30:70, 20:110].mean(axis=(0, 1))  # chain 0 on flat skin: dropped when tested
    # a chain with a neighbour 5 px away is not tested at lone_px 10, tested at 3
    chains = [_chain(50, 40, 30, 0), _chain(55, 75, 20, 1)]
    assert 0 not in _judge(rgb, chains, lone_px=10.0)[1]
    assert 0 in _judge(rgb, chains, lone_px=3.0)[1]
    # too long, or too wide: not tested
    assert _judge(rgb, [_chain(50, 40, 30, 0)])[1] == [0]
    assert _judge(rgb, [_chain(50, 40, 30, 0)], max_px=20)[1] == []
    assert _judge(rgb, [_chain(50, 40, 30, 0)], max_width_px=2.0)[1] == []


def test_the_judgement_is_repeatable_and_leaves_its_inputs():
    rng = np.random.default_rng(5)
    rgb = _skin(rng).round().astype(np.uint8)
    before = rgb.copy()
    a = _judge(rgb.astype(np.float64), [_chain(50, 40, 30, 0), _chain(120, 100, 25, 1)])
    b = _judge(rgb.astype(np.float64), [_chain(50, 40, 30, 0), _chain(120, 100, 25, 1)])
    assert a == b
    assert np.array_equal(rgb, before)


@pytest.mark.parametrize("seed", [1, 2])
def test_analyze_keeps_a_short_vein_and_records_the_option(seed):
    rng = np.random.default_rng(seed)
    shape = (240, 320)
    vein = _bar(shape, (120, 140), (122, 175), 5.0, 0.25)  # a 3.5 mm, 0.5 mm wide blue vessel alone
    rgb = _render([(VEN, vein)], rng, noise=2.0)
    off = veinscope.analyze(rgb, px_per_mm=10.0)
    on = veinscope.analyze(rgb, px_per_mm=10.0, short_chain_nfa=1.0)
    assert off.params["short_chain_nfa"] is None and on.params["short_chain_nfa"] == 1.0
    px = vein > 0.12
    assert (off.labels[px] > 0).mean() > 0.8
    assert np.array_equal(on.labels[px], off.labels[px])
    # the rule only removes chains
    assert not ((on.labels > 0) & (off.labels == 0)).any()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_short_chain_nfa_is_validated(bad):
    with pytest.raises(ValueError, match="short_chain_nfa"):
        veinscope.analyze(np.full((64, 64, 3), 180, np.uint8), px_per_mm=10.0, short_chain_nfa=bad)
