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
    off = veinscope.analyze(rgb, px_per_mm=10.0, short_chain_nfa=None)
    on = veinscope.analyze(rgb, px_per_mm=10.0)  # on by default
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


def _reference_texture_nfa(rgb, pts, normals_yx, width, segment, judged, occupied, skin, de, *, max_px, nfa,
                           lone_px=0.0, max_width_px=np.inf, n_copies=200, seed=0, n_offsets=2):  # fmt: skip
    """The first version of ``_texture_nfa`` (session 30, helper tex30): an owner map, a chain's
    copies measured through :func:`chain_delta_e`, chain by chain. Returns {chain: (ΔE00, copies
    at least as different, copies measured)} and the chains dropped."""
    import math

    import cv2

    seg = np.asarray(segment)
    count = np.bincount(seg[judged], minlength=int(seg.max()) + 1)
    tested = [c for c, v in de.items() if np.isfinite(v) and 0 < count[c] <= max_px]
    w_all = np.asarray(width, np.float64)
    wf = [w_all[judged & (seg == c)] for c in tested]
    tested = [c for c, v in zip(tested, wf) if not np.isfinite(v).any() or float(np.median(v[np.isfinite(v)])) < max_width_px]
    m, n = skin.shape
    if lone_px > 0:
        owner = np.full((m, n), -1, np.int64)
        owner[pts[occupied, 0], pts[occupied, 1]] = seg[occupied]
        r = int(math.ceil(lone_px))
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        lone = []
        for c in tested:
            p = pts[occupied & (seg == c)]
            y0, x0 = max(0, int(p[:, 0].min()) - r), max(0, int(p[:, 1].min()) - r)
            y1, x1 = min(m, int(p[:, 0].max()) + r + 1), min(n, int(p[:, 1].max()) + r + 1)
            own = np.zeros((y1 - y0, x1 - x0), np.uint8)
            own[p[:, 0] - y0, p[:, 1] - x0] = 1
            o = owner[y0:y1, x0:x1][cv2.dilate(own, disc) > 0]
            if not ((o >= 0) & (o != c)).any():
                lone.append(c)
        tested = lone
    free = skin.copy()
    occ = np.zeros((m, n), np.uint8)
    occ[pts[occupied, 0], pts[occupied, 1]] = 1
    free &= cv2.dilate(occ, np.ones((7, 7), np.uint8)) == 0
    rng = np.random.default_rng(seed)
    k = max(n_copies, int(math.ceil(4 * len(tested) / nfa)))
    info, out = {}, []
    for c in tested:
        sel = np.flatnonzero(judged & (seg == c))
        p = pts[sel].astype(np.int64)
        lo, hi = p.min(0), p.max(0)
        dy = rng.integers(-lo[0], m - hi[0], size=3 * k)
        dx = rng.integers(-lo[1], n - hi[1], size=3 * k)
        ok = free[p[None, :, 0] + dy[:, None], p[None, :, 1] + dx[:, None]].all(axis=1)
        dy, dx = dy[ok][:k], dx[ok][:k]
        if dy.size < k // 2:
            continue
        moved = np.concatenate([p + np.array([a, b]) for a, b in zip(dy, dx)])
        ids = np.repeat(np.arange(dy.size), sel.size)
        d0 = chain_delta_e(rgb, moved, np.tile(normals_yx[sel], (dy.size, 1)), np.tile(w_all[sel], dy.size), ids,
                           np.ones(ids.size, bool), skin, n_offsets=n_offsets)  # fmt: skip
        null = np.array([v for v in d0.values() if np.isfinite(v)])
        own = chain_delta_e(rgb, p, normals_yx[sel], w_all[sel], np.zeros(sel.size, np.int64), np.ones(sel.size, bool),
                            skin, n_offsets=n_offsets).get(0, np.nan)  # fmt: skip
        if null.size < k // 2 or not np.isfinite(own):
            continue
        hits = int((null >= own).sum())
        info[c] = (own, hits, null.size)
        if len(tested) * (1 + hits) / (1 + null.size) >= nfa:
            out.append(c)
    return info, out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_compiled_copies_equal_the_reference(seed):
    """The compiled sampling (fixed pixels taken once with their multiplicity, half-integer
    offsets rounded per move) gives the reference's counts and decisions exactly: random
    normals and widths, axis-aligned normals with half-integer offsets, chains at the border,
    part of the photo off skin, neighbours within lone_px."""
    rng = np.random.default_rng(seed)
    rgb = _skin(rng, grain=4.0).round().astype(np.uint8)
    m, n = rgb.shape[:2]
    skin = np.ones((m, n), bool)
    skin[:, : 20 + 10 * seed] = False
    chains = []
    for i in range(14):
        ln = int(rng.integers(6, 30))
        y, x0 = int(rng.integers(0, m)), int(rng.integers(0, n - ln))
        pts, nrm, w, seg = _chain(y, x0, ln, i)
        if i % 3 == 0:  # a slanted chain, random normals and widths
            ang = rng.uniform(0, np.pi, ln)
            nrm = np.stack([np.cos(ang), np.sin(ang)], 1)
            w = rng.uniform(1.0, 6.0, ln)
            w[0] = np.nan
        elif i % 3 == 1:  # axis-aligned, widths 3: offsets 1.5 + ..., half-integers
            w = np.full(ln, 3.0)
        chains.append((pts, nrm, w, seg))
    pts = np.concatenate([c[0] for c in chains])
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    pts, nrm, w, seg = (np.concatenate([c[i] for c in chains])[order] for i in range(4))
    judged = skin[pts[:, 0], pts[:, 1]] & (rng.random(pts.shape[0]) < 0.9)
    occupied = judged | (rng.random(pts.shape[0]) < 0.5)
    de = chain_delta_e(rgb, pts, nrm, w, seg, judged, skin)
    for lone_px, max_width_px in [(0.0, np.inf), (8.0, 5.0)]:
        kw = dict(max_px=40, nfa=1.0, lone_px=lone_px, max_width_px=max_width_px)
        ref_info, ref_out = _reference_texture_nfa(rgb, pts, nrm, w, seg, judged, occupied, skin, de, **kw)
        info = {}
        out = _texture_nfa(rgb, pts, nrm, w, seg, judged, occupied, skin, de, info=info, **kw)
        assert ref_info, "nothing judged: the test would test nothing"
        assert sorted(out) == sorted(ref_out)
        assert {c: v[1:3] for c, v in info.items()} == {c: v[1:] for c, v in ref_info.items()}
        # (CIELAB of the copies converted in one batch: equal to the last bits)
        assert {c: v[0] for c, v in info.items()} == pytest.approx({c: v[0] for c, v in ref_info.items()}, rel=1e-12)


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_copies_across_an_edge_are_left_out_of_the_null(seed):
    """Skin in bands 10 % darker every 40 rows (edges, like a finger on a leg): copies of a
    chain that land across an edge differ from the median of their sides (halfway between the
    two surfaces) as much as a faint line does. Counted, they drop the line (and everything);
    left out (``symmetric_null``), the line is kept."""
    rng = np.random.default_rng(seed)
    rgb = _skin(rng)
    rgb[(np.arange(200) // 40) % 2 == 1] *= 0.9
    rgb[179:182, 40:70] *= np.array([0.96, 0.95, 0.95])  # a faint line in the middle of a band
    chains = [_chain(20 + 40 * (i // 3), 10 + 85 * (i % 3), 30, i) for i in range(12)] + [_chain(180, 40, 30, 12)]
    pts = np.concatenate([c[0] for c in chains])
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    pts, nrm, w, seg = (np.concatenate([c[i] for c in chains])[order] for i in range(4))
    skin = np.ones(rgb.shape[:2], bool)
    acc = np.ones(pts.shape[0], bool)
    im = rgb.round().astype(np.uint8)
    de = chain_delta_e(im, pts, nrm, w, seg, acc, skin)
    counted = _texture_nfa(im, pts, nrm, w, seg, acc, acc, skin, de, max_px=40, nfa=1.0)
    left_out = _texture_nfa(im, pts, nrm, w, seg, acc, acc, skin, de, max_px=40, nfa=1.0, symmetric_null=True)
    assert de[12] > 2.0
    assert 12 in counted and 12 not in left_out
