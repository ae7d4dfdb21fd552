"""The hysteresis levels at the skin's own false-alarm rates (``analyze(level_rates=...)``, session 32).

The engine's levels are fixed multiples (3 and 5) of the skin's local mean line strength. How
often skin passes them depends on the strength's distribution: heavy-tailed texture (light skin)
passes 5 units far more often than near-Gaussian camera noise (dark skin). ``_rate_levels`` lowers
each level to the skin's quantile at a given share of its pixels, never raising it.
"""

import numpy as np
import pytest

from veinscope.segment import _rate_levels


def _strength(kind, shape=(256, 256), seed=0):
    rng = np.random.default_rng(seed)
    if kind == "noise":  # |Gaussian|: light-tailed, P(z >= 5 mean) ~ 1e-4
        q = np.abs(rng.normal(0, 1, shape))
    else:  # lognormal texture: heavy-tailed, P(z >= 5 mean) ~ 4 %
        q = rng.lognormal(0, 1.4, shape)
    return (q / q.mean()).astype(np.float32)


def test_light_tailed_skin_gets_lower_levels_at_the_same_rates():
    q = _strength("noise")
    inner = np.ones(q.shape, bool)
    unit = np.ones((4, 4), np.float32)  # cells of 64 px, unit 1 everywhere
    low, high = _rate_levels(q, inner, unit, 64, 3.0, 5.0, (0.04, 0.01), stride=1)
    z = q.ravel()
    assert low == pytest.approx(np.quantile(z, 0.96), rel=1e-6)
    assert high == pytest.approx(np.quantile(z, 0.99), rel=1e-6)
    assert low < 3.0 and high < 5.0
    assert np.mean(z >= high) == pytest.approx(0.01, abs=0.002)


def test_heavy_tailed_skin_keeps_the_fixed_levels():
    q = _strength("texture")
    assert np.mean(q >= 5) > 0.01 and np.mean(q >= 3) > 0.04  # passes the fixed levels more often
    low, high = _rate_levels(q, np.ones(q.shape, bool), np.ones((4, 4), np.float32), 64, 3.0, 5.0, (0.04, 0.01),
                             stride=1)  # fmt: skip
    assert (low, high) == (3.0, 5.0)  # never raised


def test_levels_are_read_in_local_units_and_low_stays_under_high():
    q = _strength("noise")
    unit = np.full((4, 4), 2.0, np.float32)
    low, high = _rate_levels(q * 2.0, np.ones(q.shape, bool), unit, 64, 3.0, 5.0, (0.04, 0.01), stride=1)
    ref = _rate_levels(q, np.ones(q.shape, bool), unit / 2.0, 64, 3.0, 5.0, (0.04, 0.01), stride=1)
    assert (low, high) == pytest.approx(ref, rel=1e-5)
    lo2, hi2 = _rate_levels(q, np.ones(q.shape, bool), np.ones((4, 4), np.float32), 64, 3.0, 5.0, (0.001, 0.2),
                            stride=1)  # fmt: skip
    assert lo2 <= hi2 < 3.0


def test_too_little_skin_keeps_the_fixed_levels():
    q = _strength("noise")
    inner = np.zeros(q.shape, bool)
    inner[:10, :10] = True
    assert _rate_levels(q, inner, np.ones((4, 4), np.float32), 64, 3.0, 5.0, (0.04, 0.01)) == (3.0, 5.0)


def test_analyze_checks_level_rates():
    import veinscope

    rgb = np.full((64, 64, 3), 180, np.uint8)
    for bad in ((0.04,), (0.0, 0.01), (0.04, 1.0), "0.04,0.01", (True, 0.01)):
        with pytest.raises(ValueError, match="level_rates"):
            veinscope.analyze(rgb, px_per_mm=10.0, level_rates=bad)


def test_a_faint_line_on_mottled_skin_is_found_at_the_skins_rates():
    """Broad mottling (blotches 6 px and more) raises the skin's mean line strength, the unit,
    but hardly its fine-line tail; the camera noise on top is light-tailed. A faint line 3 px
    wide that the fixed levels do not find is found at the rates, and the skin beside it is not
    marked."""
    from scipy.ndimage import gaussian_filter

    import veinscope

    rng = np.random.default_rng(3)
    rgb = np.full((240, 320, 3), (110, 72, 55), np.float64)  # type-5-like skin
    noise = rng.normal(0, 3.0, rgb.shape)
    mottle = gaussian_filter(rng.normal(0, 1, rgb.shape[:2]), 6) * 40
    noise += mottle[..., None] * np.array([0.6, 1.0, 0.8])
    rgb[119:122, 30:290] -= (3.6, 4.0, 2.4)
    rgb = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    fixed = veinscope.analyze(rgb, px_per_mm=10.0)
    rated = veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01))
    band = np.zeros(rgb.shape[:2], bool)
    band[112:129, 30:290] = True
    assert rated.params["thresholds"][1] < 0.8 * fixed.params["thresholds"][1]  # high level lowered
    assert rated.params["level_rates"] == [0.04, 0.01]
    assert int((fixed.labels[band] > 0).sum()) == 0
    assert int((rated.labels[band] > 0).sum()) > 200  # most of the 260 px line's length
    assert int((rated.labels[~band] > 0).sum()) == int((fixed.labels[~band] > 0).sum()) == 0


def test_a_chain_under_the_fixed_high_level_does_not_hold_the_deep_search_off():
    """With ``level_rates``, a thin chain the lowered levels alone find along a soft wide vein
    does not take the deep pass's piece away (set A 410: the thin chains held 0.06 of its length
    off, session 32); a chain that reaches the fixed level still does."""
    import importlib.util
    from pathlib import Path

    from veinscope.segment import add_deep_veins

    spec = importlib.util.spec_from_file_location("_deep_veins_scenes", Path(__file__).with_name("test_deep_veins.py"))
    tdv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tdv)  # its drawn vein and detection helpers

    skin = np.ones((200, 400), bool)
    red = tdv._bar_signal(100, (40, 360))
    det = tdv._det([(100, x) for x in range(40, 360)], [0] * 320, 8.0)  # strength 1 at every point
    assert add_deep_veins(det, red.copy(), skin, **tdv._KW) is det  # held off, as on main
    assert add_deep_veins(det, red.copy(), skin, hold_min_strength=0.5, **tdv._KW) is det  # reaches it: holds
    out = add_deep_veins(det, red.copy(), skin, hold_min_strength=2.0, **tdv._KW)
    new = out.segment >= det.n_segments
    assert new.sum() > 200  # the course is added beside the thin chain


# --- session 33: the chains only the lowered levels find, judged (``level_rates_guard``) ---


def _chains():
    """Five chains on a 200 x 200 grid: 0 in a band the fixed levels keep; 1 a short piece 8 px
    past chain 0's end; 2 a short lone piece; 3 a long lone chain (50 px); 4 a short lone piece in
    a band the fixed levels would judge weak."""
    runs = [(10, range(10, 31)), (14, range(38, 46)), (100, range(100, 111)), (150, range(10, 61)), (180, range(100, 111))]
    ys = np.concatenate([np.full(len(r), y) for y, r in runs]).astype(np.int64)
    xs = np.concatenate([np.array(r) for _, r in runs]).astype(np.int64)
    seg = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(runs)]).astype(np.int32)
    fixed_kept = np.zeros((200, 200), bool)
    fixed_kept[9:12, 9:32] = True
    fixed_weak = np.zeros((200, 200), bool)
    fixed_weak[179:182, 99:112] = True
    return ys, xs, seg, len(runs), fixed_kept, fixed_weak


def test_guard_drops_the_short_lone_gains_and_keeps_the_near_and_the_long():
    from veinscope.segment import _guard_rate_gains

    ys, xs, seg, kept, fk, fw = _chains()
    args = (ys.copy(), xs.copy(), seg.copy(), kept, np.zeros(kept, bool), fk, fw)
    y2, x2, s2, k2, w2 = _guard_rate_gains(*args, "drop+near+long", 40.0, 10.0)
    assert k2 == 4  # the short lone piece (2) dropped, the others kept
    assert not ((y2 == 100) & (x2 == 105)).any()
    first = {int(s2[np.nonzero(y2 == y)[0][0]]): y for y in (10, 14, 150, 180)}
    assert [bool(w2[i]) for i in sorted(first)] == [False, False, False, True]  # only 4 weak, as the fixed levels had it
    # without "near", chain 1 is dropped as well; without "long", chain 3
    assert _guard_rate_gains(*args, "drop+long", 40.0, 10.0)[3] == 3
    assert _guard_rate_gains(*args, "drop+near", 40.0, 10.0)[3] == 3
    # gaps measured from the fixed levels' chains: 8 px off, not 6
    assert _guard_rate_gains(*args, "drop+near+long", 40.0, 6.0)[3] == 3
    # "weak": the lone pieces kept but marked weak (judged by their colour)
    y3, x3, s3, k3, w3 = _guard_rate_gains(*args, "weak+near+long", 40.0, 10.0)
    assert k3 == 5 and w3.tolist() == [False, False, True, False, True]
    # nothing changes the input arrays
    assert (args[0] == ys).all() and (args[2] == seg).all()


def test_guard_grows_from_the_long_chains_piece_by_piece():
    from veinscope.segment import _guard_rate_gains

    # a long chain (0), a piece 6 px past its end (1), another 6 px past that (2); nothing fixed
    runs = [(50, range(10, 60)), (50, range(66, 74)), (50, range(80, 88))]
    ys = np.concatenate([np.full(len(r), y) for y, r in runs]).astype(np.int64)
    xs = np.concatenate([np.array(r) for _, r in runs]).astype(np.int64)
    seg = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(runs)]).astype(np.int32)
    none = np.zeros((100, 100), bool)
    assert _guard_rate_gains(ys, xs, seg, 3, None, none, none, "drop+near+long", 40.0, 8.0)[3] == 1
    assert _guard_rate_gains(ys, xs, seg, 3, None, none, none, "drop+near+long+grow", 40.0, 8.0)[3] == 3


def test_analyze_checks_level_rates_guard():
    import veinscope

    rgb = np.full((64, 64, 3), 180, np.uint8)
    for bad in ("near", "drop+weak", "drop+far", "", 1, "drop+near+long+", "drop+long+follow"):
        with pytest.raises(ValueError, match="level_rates_guard"):
            veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard=bad)
    for name in ("level_rates_gap_mm", "level_rates_long_mm"):
        for bad in (0.0, -1.0, float("nan"), True, "2"):
            with pytest.raises(ValueError, match=name):
                veinscope.analyze(rgb, px_per_mm=10.0, **{name: bad})


def _dark_speckle(seed):
    """Type-6-like skin, camera noise and fine speckle only: no vessel."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    rgb = np.full((300, 400, 3), (80, 52, 40), np.float64)
    rgb += rng.normal(0, 4.0, rgb.shape)
    rgb += (gaussian_filter(rng.normal(0, 1, rgb.shape[:2]), 1.2) * 12)[..., None] * np.array([1.0, 0.8, 0.7])
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_the_guard_takes_back_what_the_lowered_levels_mark_on_dark_speckle(seed):
    """Set A 404 and set B 605 / 610 (sessions 32-33): the lowered levels find short lone chains
    in dark skin's speckle. On drawn speckle with no vessel, ``level_rates`` alone marks 100-700 px
    where the fixed levels mark 0-50; with ``level_rates_guard="drop+near+long"`` what is marked
    is the fixed levels' (main: no such keyword)."""
    import veinscope

    rgb = _dark_speckle(seed)
    fixed = veinscope.analyze(rgb, px_per_mm=8.0)
    rated = veinscope.analyze(rgb, px_per_mm=8.0, level_rates=(0.04, 0.01))
    guarded = veinscope.analyze(rgb, px_per_mm=8.0, level_rates=(0.04, 0.01), level_rates_guard="drop+near+long")
    n_fixed, n_rated, n_guarded = (int((a.labels > 0).sum()) for a in (fixed, rated, guarded))
    assert rated.params["thresholds"][1] < 0.8 * fixed.params["thresholds"][1]  # the levels were lowered
    assert n_rated >= 100 and n_rated >= 4 * n_fixed
    assert n_guarded == n_fixed
    assert guarded.params["level_rates_guard"] == "drop+near+long"


def test_the_guard_keeps_a_long_faint_line_the_lowered_levels_find():
    """The faint line of ``test_a_faint_line_on_mottled_skin_is_found_at_the_skins_rates`` (26 mm,
    found only at the rates) stays found under the guard: its pieces are long or near a long one."""
    from scipy.ndimage import gaussian_filter

    import veinscope

    rng = np.random.default_rng(3)
    rgb = np.full((240, 320, 3), (110, 72, 55), np.float64)
    noise = rng.normal(0, 3.0, rgb.shape)
    noise += (gaussian_filter(rng.normal(0, 1, rgb.shape[:2]), 6) * 40)[..., None] * np.array([0.6, 1.0, 0.8])
    rgb[119:122, 30:290] -= (3.6, 4.0, 2.4)
    rgb = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    band = np.zeros(rgb.shape[:2], bool)
    band[112:129, 30:290] = True
    for guard, least in (("drop+near+long", 180), ("drop+near+long+grow", 250)):
        a = veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard=guard)
        assert int((a.labels[band] > 0).sum()) > least
        assert int((a.labels[~band] > 0).sum()) == 0


# --- session 33 (cls33): a gain kept as "near" takes the class of the chain it continues ---


def test_guard_records_the_chain_each_near_gain_follows():
    from veinscope.segment import _guard_rate_gains

    ys, xs, seg, kept, fk, fw = _chains()
    args = (ys.copy(), xs.copy(), seg.copy(), kept, np.zeros(kept, bool), fk, fw)
    y2, x2, s2, k2, w2, follows = _guard_rate_gains(*args, "drop+near+long+follow", 40.0, 10.0, return_follows=True)
    assert k2 == 4 and follows.shape == (4,)
    at = {y: int(s2[np.nonzero(y2 == y)[0][0]]) for y in (10, 14, 150, 180)}
    # chain 1 (8 px past chain 0's end) follows chain 0; the fixed chain, the long one and the weak one none
    assert follows[at[14]] == at[10]
    assert [int(follows[at[y]]) for y in (10, 150, 180)] == [-1, -1, -1]
    # the five-value answer is unchanged without return_follows
    assert len(_guard_rate_gains(*args, "drop+near+long", 40.0, 10.0)) == 5
    # "grow": a piece kept from a piece kept from a long chain follows the long chain
    runs = [(50, range(10, 60)), (50, range(66, 74)), (50, range(80, 88))]
    ys = np.concatenate([np.full(len(r), y) for y, r in runs]).astype(np.int64)
    xs = np.concatenate([np.array(r) for _, r in runs]).astype(np.int64)
    seg = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(runs)]).astype(np.int32)
    none = np.zeros((100, 100), bool)
    out = _guard_rate_gains(ys, xs, seg, 3, None, none, none, "drop+near+long+grow", 40.0, 8.0, return_follows=True)
    assert out[5].tolist() == [-1, 0, 0]


def test_a_following_chain_takes_the_class_of_the_nearest_point_it_follows():
    from veinscope.measure import _followed_class

    # chain 0: red (1) then blue (2) along a row; chain 1 just past its blue end, read red; chain 2 alone
    pts = np.array([[5, x] for x in range(10)] + [[5, x] for x in range(13, 18)] + [[30, x] for x in range(5)])
    seg = np.array([0] * 10 + [1] * 5 + [2] * 5)
    cls = np.array([1] * 5 + [2] * 5 + [1] * 5 + [1] * 5)
    accepted = np.ones(seg.size, bool)
    out = _followed_class(pts, seg, accepted, cls, np.array([-1, 0, -1]))
    assert out[10:15].tolist() == [2] * 5  # the blue end's class, not the chain's majority
    assert (out[:10] == cls[:10]).all() and (out[15:] == 1).all() and (cls[10:15] == 1).all()  # input kept
    # a followed chain not accepted lends nothing
    accepted[:10] = False
    assert _followed_class(pts, seg, accepted, cls, np.array([-1, 0, -1]))[10:15].tolist() == [1] * 5


def _blue_then_faint(seed):
    """The mottled skin of ``test_the_guard_keeps_a_long_faint_line_the_lowered_levels_find`` with a
    blue vessel (rows 119-121, columns 30-149: red darkened most) and, 10 px on, its faint stretch
    (columns 160-289) whose own colour, at the noise, reads red (green darkened most)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    rgb = np.full((240, 320, 3), (110, 72, 55), np.float64)
    noise = rng.normal(0, 3.0, rgb.shape)
    noise += (gaussian_filter(rng.normal(0, 1, rgb.shape[:2]), 6) * 40)[..., None] * np.array([0.6, 1.0, 0.8])
    rgb[119:122, 30:150] -= (14.0, 9.0, 4.0)
    rgb[119:122, 160:290] -= (2.4, 4.6, 3.2)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_faint_continuation_of_a_blue_vessel_keeps_blue(seed):
    """Set B photo 611 (session 33): a faint stretch the lowered levels find beside a vessel the
    fixed levels find, classed by its own colour at the noise, came out red on a blue vessel.
    With ``"follow"`` it takes the class of the vessel it continues (main: no such word, a
    ValueError; ``"drop+near+long"``: red)."""
    import veinscope

    rgb = _blue_then_faint(seed)
    blue, red = 2, 1
    fixed = veinscope.analyze(rgb, px_per_mm=10.0)
    near = veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard="drop+near+long")
    follow = veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard="drop+near+long+follow")
    strong, faint = (slice(112, 129), slice(30, 150)), (slice(112, 129), slice(160, 290))
    assert not (fixed.labels[faint] > 0).any()  # the fixed levels miss the faint stretch
    assert (near.labels[faint] == red).sum() >= 40 and not (near.labels[faint] == blue).any()
    assert (follow.labels[faint] > 0).sum() == (near.labels[faint] > 0).sum()  # the same pixels
    assert ((follow.labels[faint] == blue) | (follow.labels[faint] == 0)).all()  # blue where marked
    assert (follow.labels[strong] == near.labels[strong]).all() and (near.labels[strong] == blue).sum() > 300
    assert follow.params["level_rates_guard"] == "drop+near+long+follow"


# --- session 34 (cls34): the colour of a chain of lowered-level points judged with its error bar ---


def _od_of(conc):
    """Relative OD rows whose unmixed parts (haemoglobin, venous, melanin) are ``conc`` (K, 3)."""
    from veinscope.chromophores import _MIX

    return (np.asarray(conc, np.float64) @ _MIX.T).astype(np.float32)


def test_a_colour_at_the_cut_is_undecided_and_a_clear_one_is_not():
    from veinscope.chromophores import unmix
    from veinscope.measure import _undecided_colour

    rng = np.random.default_rng(0)
    n = 80  # points per chain, along rows 10, 20, 30, 40
    pts = np.array([[10 * (c + 1), x] for c in range(4) for x in range(n)])
    seg = np.repeat(np.arange(4), n)
    conc = np.zeros((4 * n, 3))
    conc[:, 2] = 0.01
    # chain 0: haemoglobin and venous parts equal on average (red share 0.5), each point's noisy
    conc[:n, :2] = 0.06 + rng.normal(0, 0.03, (n, 2))
    # chain 1: clearly red (share 0.8), chain 2: clearly blue (0.2), with the same noise
    conc[n : 2 * n, :2] = np.array([0.096, 0.024]) + rng.normal(0, 0.03, (n, 2))
    conc[2 * n : 3 * n, :2] = np.array([0.024, 0.096]) + rng.normal(0, 0.03, (n, 2))
    # chain 3: red share 0.55, no noise at all: decided (its error bar is nil)
    conc[3 * n :, :2] = (0.066, 0.054)
    od = _od_of(conc)
    assert np.allclose(unmix(od), conc, atol=1e-5)
    width = np.full(4 * n, 3.0, np.float32)
    judged = np.ones(4 * n, bool)
    out = _undecided_colour(pts, seg, np.arange(4), od, judged, width, z=2.0)
    assert out.tolist() == [0]
    # the error bar counts one sample per diameter (at least 8 px): a red share 0.55 with the
    # noise above is decided along 80 points at one sample per 8 px only when z is small
    conc[3 * n :, :2] = np.array([0.066, 0.054]) + rng.normal(0, 0.03, (n, 2))
    od = _od_of(conc)
    assert 3 in _undecided_colour(pts, seg, np.arange(4), od, judged, width, z=2.0)
    assert 1 not in _undecided_colour(pts, seg, np.arange(4), od, judged, width, z=3.0)
    wide = np.full(4 * n, 40.0, np.float32)  # one sample per 40 px: two samples, undecided at 3 errors
    assert 1 in _undecided_colour(pts, seg, np.arange(4), od, judged, wide, z=3.0)
    # only the chains asked about, only the judged points
    assert _undecided_colour(pts, seg, np.array([1, 2]), od, judged, width, z=2.0).size == 0
    assert _undecided_colour(pts, seg, np.array([0]), od, seg != 0, width, z=2.0).size == 0


def _s2l(v):
    v = np.asarray(v, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _l2s(v):
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0.0) ** (1 / 2.4) - 0.055)


def _faint_line(seed, red_share, od_norm):
    """The mottled skin of ``test_the_guard_keeps_a_long_faint_line_the_lowered_levels_find`` with a
    26 mm line (rows 119-121) whose optical density is ``od_norm`` x (red_share haemoglobin +
    (1 - red_share) venous directions): at a red share of 0.5 its colour lies on the red/blue cut."""
    from scipy.ndimage import gaussian_filter

    from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

    rng = np.random.default_rng(seed)
    base = np.array((110, 72, 55), np.float64)
    rgb = np.full((240, 320, 3), base)
    noise = rng.normal(0, 3.0, rgb.shape)
    noise += (gaussian_filter(rng.normal(0, 1, rgb.shape[:2]), 6) * 40)[..., None] * np.array([0.6, 1.0, 0.8])
    od = od_norm * (red_share * CHROMOPHORE_DIRECTIONS["haemoglobin"] + (1 - red_share) * CHROMOPHORE_DIRECTIONS["venous"])
    rgb[119:122, 30:290] = _l2s(_s2l(base) * np.exp(-od))
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _colour_runs_of(rgb, guard, **kw):
    import veinscope

    return veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard=guard, **kw)


@pytest.mark.parametrize("seed", [0, 2])
def test_a_faint_line_whose_colour_is_at_the_cut_is_left_unmarked(seed):
    """Set B photo 611 (sessions 33-34): a chain made mostly of points only the lowered levels find
    (and points followed on from it) read red at a red share of 0.505 on a blue vessel. A drawn
    line on the cut (red share 0.5) that the fixed levels do not find: ``"drop+near+long"``
    marks 190-560 px of it in either colour; with ``"colour"`` the chains whose colour is within
    2 standard errors of the cut are left unmarked (here all of them), and with ``"nearest"``
    such a chain takes a decided neighbour's colour or is left unmarked. Main: no such word
    (ValueError)."""
    rgb = _faint_line(seed, 0.5, 0.14)
    band = (slice(112, 129), slice(30, 290))
    near = _colour_runs_of(rgb, "drop+near+long")
    colour = _colour_runs_of(rgb, "drop+near+long+colour")
    nearest = _colour_runs_of(rgb, "drop+near+long+colour+nearest")
    n_near, n_colour = int((near.labels[band] > 0).sum()), int((colour.labels[band] > 0).sum())
    assert n_near >= 150
    assert n_colour < 0.5 * n_near
    # nothing new is marked, and what stays keeps its class
    kept = colour.labels > 0
    assert (near.labels[kept] == colour.labels[kept]).all()
    assert n_colour <= int((nearest.labels[band] > 0).sum()) <= n_near
    assert colour.params["level_rates_guard"] == "drop+near+long+colour" and colour.params["level_rates_colour_z"] == 2.0


@pytest.mark.parametrize(("seed", "red_share", "od_norm", "code"), [(3, 0.0, 0.15, 2), (0, 1.0, 0.2, 1)])
def test_a_clearly_blue_or_red_faint_line_keeps_its_colour(seed, red_share, od_norm, code):
    """A drawn line of plain venous (blue) or plain haemoglobin (red) colour on the same skin: the
    chains the lowered levels add whose colour is clear (more than 2 standard errors from the
    cut) are kept, in that colour; those that are not (a few samples each on mottled skin)
    are left unmarked, more of them with a far stricter error bar (4)."""
    rgb = _faint_line(seed, red_share, od_norm)
    band = (slice(112, 129), slice(30, 290))
    near = _colour_runs_of(rgb, "drop+near+long")
    colour = _colour_runs_of(rgb, "drop+near+long+colour")
    other = 3 - code
    assert not (near.labels[band] == other).any() and not (colour.labels[band] == other).any()
    assert int((colour.labels[band] == code).sum()) >= 200
    # and some of it is a chain the rule judged: with a far stricter error bar it goes
    strict = _colour_runs_of(rgb, "drop+near+long+colour", level_rates_colour_z=4.0)
    assert int((strict.labels[band] == code).sum()) < int((colour.labels[band] == code).sum())


def test_analyze_checks_the_colour_words():
    import veinscope

    rgb = np.full((64, 64, 3), 180, np.uint8)
    for bad in ("drop+nearest", "drop+colour+near+nearest+far"):
        with pytest.raises(ValueError, match="level_rates_guard"):
            veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard=bad)
    for bad in (0.0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="level_rates_colour_z"):
            veinscope.analyze(rgb, px_per_mm=10.0, level_rates_colour_z=bad)


def test_the_detection_counts_each_chains_points_on_the_fixed_levels_centreline(monkeypatch):
    """``"colour"`` records, per chain, its points on (1 px from) the fixed levels' centreline
    (``VesselDetection.fixed_points``); without the word, or where no level was lowered, none."""
    import veinscope
    import veinscope.pipeline as pipeline

    seen = []
    real = pipeline.measure_vessels

    def spy(det, *a, **k):
        seen.append(det)
        return real(det, *a, **k)

    monkeypatch.setattr(pipeline, "measure_vessels", spy)
    rgb = _faint_line(3, 0.5, 0.16)
    veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard="drop+near+long+colour")
    veinscope.analyze(rgb, px_per_mm=10.0, level_rates=(0.04, 0.01), level_rates_guard="drop+near+long")
    veinscope.analyze(rgb, px_per_mm=10.0)
    det, without, fixed = seen
    assert without.fixed_points is None and fixed.fixed_points is None
    fp = det.fixed_points
    assert fp.shape == (det.n_segments,) and fp.dtype == np.int64
    size = np.bincount(det.segment, minlength=det.n_segments)
    assert ((fp == -1) | ((fp >= 0) & (fp <= size))).all()
    # some chains are the lowered levels' own (no point on the fixed centreline), some the fixed levels'
    assert (fp == 0).any() and (fp > 0).any()
    # the fixed levels' points lie where the fixed levels find a chain
    fixed_pts = {tuple(p) for p in fixed.points_yx}
    for c in np.flatnonzero(fp > 0)[:3]:
        pts = det.points_yx[det.segment == c]
        near = [any((y + dy, x + dx) in fixed_pts for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for y, x in pts]
        assert sum(near) >= 1


@pytest.mark.xfail(strict=True, reason="known (session 34, cls34): a chain the fixed levels find in a weak band (kept by "
                   "its colour) counts as the lowered levels' own, and is left unmarked when its red/blue colour is undecided")
def test_what_the_fixed_levels_mark_stays_marked_under_the_colour_rule():
    """The plain red line of ``test_a_clearly_blue_or_red_faint_line_keeps_its_colour`` (seed 0): the
    fixed levels mark 436 px of it, the guard 371, ``+colour`` 290: a 24-point chain (columns
    88-111) the fixed levels find in a weak band, kept on main by its ΔE00, is judged as the
    lowered levels' own (no point on the centreline of the bands they keep) and, 1.97 standard
    errors from the cut, left unmarked (80 px both mark). Counting the weak bands' centreline
    as the fixed levels' passes this test but costs set A's precision (0.912 -> 0.911)."""
    import veinscope

    rgb = _faint_line(0, 1.0, 0.2)
    fixed = veinscope.analyze(rgb, px_per_mm=10.0)
    near = _colour_runs_of(rgb, "drop+near+long")
    colour = _colour_runs_of(rgb, "drop+near+long+colour")
    both = (fixed.labels > 0) & (near.labels > 0)
    assert both.sum() > 200
    assert (colour.labels[both] > 0).all()


def test_the_undecided_colour_takes_the_chains_in_any_order():
    from veinscope.measure import _undecided_colour

    rng = np.random.default_rng(1)
    pts = np.array([[10 * (c + 1), x] for c in range(3) for x in range(40)])
    seg = np.repeat(np.arange(3), 40)
    conc = np.zeros((120, 3))
    conc[:, :2] = np.array([0.06, 0.06]) + rng.normal(0, 0.03, (120, 2))
    conc[40:80, :2] = np.array([0.12, 0.0]) + rng.normal(0, 0.01, (40, 2))  # chain 1 plainly red
    od = _od_of(conc)
    width = np.full(120, 3.0, np.float32)
    out = _undecided_colour(pts, seg, np.array([2, 1, 0]), od, np.ones(120, bool), width, z=2.0)
    assert out.tolist() == [0, 2]


# --- session 35 (lvl35): the fixed levels' centreline kept, the lowered levels' points only beyond it ---


def _det(points, segment, *, weak=None, scale=1.0):
    from veinscope.segment import VesselDetection

    pts = np.asarray(points, np.int32)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    k = pts.shape[0]
    normals = np.tile(np.array([[1.0, 0.0]], np.float32), (k, 1))  # horizontal chains: normal along y
    return VesselDetection(pts[order], np.asarray(segment, np.int32)[order], np.ones(k, np.float32), normals,
                           np.full(k, scale, np.float32), int(np.max(segment)) + 1, 1.0, (3.0, 5.0),
                           weak=None if weak is None else np.asarray(weak, bool))  # fmt: skip


def test_keep_fixed_centreline_keeps_every_fixed_point_and_adds_only_beyond():
    """A fixed chain (row 10, columns 0-19, judged weak at the fixed levels); the lowered levels
    redraw it one row down and carry it on to column 39, and find a lone chain far away. Kept:
    the fixed points exactly, the continuation past the end (columns 20-39) as a chain of its
    own following the fixed one, the lone chain whole; the redrawn crest beside the fixed one is
    gone; the fixed chain is strong, as the lowered chain along it is."""
    from veinscope.segment import keep_fixed_centreline

    fixed = _det([(10, x) for x in range(20)], [0] * 20, weak=[True])
    low_pts = [(11, x) for x in range(40)] + [(60, x) for x in range(10, 30)]
    lowered = _det(low_pts, [0] * 40 + [1] * 20, weak=[False, True])
    out = keep_fixed_centreline(fixed, lowered, min_piece_px=3, follow=True)
    got = {tuple(p): int(s) for p, s in zip(out.points_yx.tolist(), out.segment)}
    assert all(got.get((10, x)) is not None for x in range(20))  # every fixed point
    assert not any((11, x) in got for x in range(20))  # the redrawn crest beside it: gone
    assert all((11, x) in got for x in range(20, 40)) and all((60, x) in got for x in range(10, 30))
    assert out.points_yx.shape[0] == 20 + 20 + 20
    assert (np.diff(out.points_yx[:, 0].astype(np.int64) * 1000 + out.points_yx[:, 1]) > 0).all()  # row-major
    f, c, lone = got[(10, 0)], got[(11, 25)], got[(60, 15)]
    assert len({f, c, lone}) == 3 and out.n_segments == 3
    assert len({got[(10, x)] for x in range(20)}) == 1 and len({got[(11, x)] for x in range(20, 40)}) == 1
    assert out.follows[c] == f and out.follows[f] == -1 and out.follows[lone] == -1
    assert not out.weak[f] and not out.weak[c] and out.weak[lone]


def test_keep_fixed_centreline_drops_a_cut_chains_short_runs_and_keeps_a_wide_vessels_side():
    """A lowered chain beside a wide fixed vessel (scale 3 px: one width is about 10 px) is the
    same vessel's crest redrawn even 4 px off; beside a fine one (scale 0.5 px, at least
    ``near_px`` 2 px) 4 px off it is a vessel of its own. A run of 2 points left of a cut chain is
    dropped (``min_piece_px`` 3)."""
    from veinscope.segment import keep_fixed_centreline

    for scale, side in ((3.0, 0), (0.5, 30)):
        fixed = _det([(10, x) for x in range(30)], [0] * 30, scale=scale)
        # chain 0: the fixed crest redrawn a row down and 2 px on past its end; chain 1: 4 px beside it
        lowered = _det([(11, x) for x in range(32)] + [(14, x) for x in range(30)], [0] * 32 + [1] * 30)
        out = keep_fixed_centreline(fixed, lowered, min_piece_px=3)
        rows = out.points_yx[:, 0]
        assert (rows == 10).sum() == 30 and (rows == 11).sum() == 0  # the 2-point run past the end went
        assert (rows == 14).sum() == side


def _measured(monkeypatch, rgb, **kw):
    """``analyze(rgb, **kw)`` and the detection and smoothed widths it measured."""
    import veinscope
    import veinscope.pipeline as pipeline

    seen = {}
    real = pipeline.measure_vessels

    def spy(det, widths, *a, **k):
        out = real(det, widths, *a, **k)
        seen["det"], seen["width"] = det, out.width_px
        return out

    monkeypatch.setattr(pipeline, "measure_vessels", spy)
    a = veinscope.analyze(rgb, px_per_mm=10.0, **kw)
    return a, seen["det"], seen["width"]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fixed_levels_centreline_and_widths_stay_under_the_lowered_levels_with_keep(monkeypatch, seed):
    """``_blue_then_faint``: a blue vessel the fixed levels find, and a faint stretch on that only
    the lowered levels find (seed 1; seed 2: not even they). With the lowered levels and their
    guard, 2 % of the fixed centreline's points are gone and 6-67 of its points read another
    width (the lowered chain pools its faint stretch's profiles into them; set A photo 417,
    session 34). With ``"keep"`` every fixed point is there with its width to the bit, and the
    faint stretch is marked as much as without it. Main has no such word (a ValueError)."""
    rgb = _blue_then_faint(seed)
    guard = "drop+near+long+follow+colour"
    rates = dict(level_rates=(0.04, 0.01))
    _, d0, w0 = _measured(monkeypatch, rgb)
    lev, d1, w1 = _measured(monkeypatch, rgb, level_rates_guard=guard, **rates)
    keep, d2, w2 = _measured(monkeypatch, rgb, level_rates_guard=guard + "+keep", **rates)
    assert keep.params["level_rates_guard"] == guard + "+keep"
    assert keep.params["thresholds"] == lev.params["thresholds"]  # the levels were lowered

    def at_fixed(det, width):
        where = {tuple(p): i for i, p in enumerate(det.points_yx.tolist())}
        ix = np.array([where.get(tuple(p), -1) for p in d0.points_yx.tolist()])
        return ix >= 0, np.where(ix >= 0, width[np.maximum(ix, 0)], np.nan)

    found1, wl = at_fixed(d1, w1)
    found2, wk = at_fixed(d2, w2)
    assert not found1.all() and not np.array_equal(wl, w0, equal_nan=True)  # main's option redraws
    assert found2.all() and np.array_equal(wk, w0, equal_nan=True)
    faint = (slice(112, 129), slice(160, 290))
    assert (keep.labels[faint] > 0).sum() >= (lev.labels[faint] > 0).sum() - 10
    if seed == 1:
        assert (keep.labels[faint] > 0).sum() > 150


def test_keep_fixed_centreline_of_the_same_chains_is_those_chains():
    """Where the lowered levels find just what the fixed levels find, nothing changes: the same
    points, chains (renumbered in order) and standing."""
    from veinscope.segment import keep_fixed_centreline

    pts = [(10, x) for x in range(20)] + [(30 + y, 40) for y in range(15)] + [(60, x) for x in range(5, 9)]
    seg = [0] * 20 + [1] * 15 + [2] * 4
    det = _det(pts, seg, weak=[False, True, False])
    out = keep_fixed_centreline(det, det, min_piece_px=3, follow=True)
    assert np.array_equal(out.points_yx, det.points_yx) and np.array_equal(out.segment, det.segment)
    assert out.weak.tolist() == [False, True, False] and out.follows is None and out.n_segments == 3


def test_keep_marks_what_the_fixed_levels_mark_under_the_colour_rule():
    """``test_what_the_fixed_levels_mark_stays_marked_under_the_colour_rule``'s red line: the fixed
    levels mark 436 px, the guard 371, ``+colour`` 290; with ``"keep"`` the fixed levels' chain
    keeps its points (a lowered chain along it decides only whether it is weak) and all 436 px
    are marked again."""
    import veinscope

    rgb = _faint_line(0, 1.0, 0.2)
    fixed = veinscope.analyze(rgb, px_per_mm=10.0)
    keep = _colour_runs_of(rgb, "drop+near+long+colour+keep")
    assert (fixed.labels > 0).sum() > 400
    assert (keep.labels[fixed.labels > 0] > 0).all()


# --- session 36 (keep36): the fixed levels' chains from the lowered levels' pass (detect_vessels' fixed_too) ---


def _detection_inputs(monkeypatch, rgb, px_per_mm, **kw):
    """The ridge map, skin, signal and keywords ``analyze(rgb, **kw)`` hands ``detect_vessels``."""
    import veinscope
    import veinscope.pipeline as pipeline

    seen = []
    real = pipeline.detect_vessels

    def spy(ridge, skin, signal, **k):
        seen.append((ridge, skin.copy(), signal.copy(), dict(k)))
        k["consume"] = False  # the ridge map kept for the test
        return real(ridge, skin, signal, **k)

    monkeypatch.setattr(pipeline, "detect_vessels", spy)
    veinscope.analyze(rgb, px_per_mm=px_per_mm, **kw)
    return seen[0]


def _same_detection(a, b):
    assert a.n_segments == b.n_segments and a.noise == b.noise and a.thresholds == b.thresholds
    for name in ("points_yx", "segment", "strength", "normals_yx", "scale_px", "weak", "follows", "fixed_points"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


def _type6_photo(seed):
    from veinscope.synth import generate_photo

    return generate_photo(seed=seed, size=(640, 480), px_per_mm=10.0, skin_type=6, card=False).rgb


# seed 411: both levels lowered, seed 2: the low level only
@pytest.mark.parametrize("which", ["blue_then_faint", 411, 2])
def test_the_fixed_levels_chains_from_the_lowered_pass_are_the_fixed_levels_detection(monkeypatch, which):
    """``detect_vessels(..., fixed_too=True)`` returns the lowered levels' chains as without it and
    (in its ``fixed``, one return type since session 37) the fixed levels' chains as a detection without ``level_rates`` on the same ridge map, to the
    bit: their candidates are the lowered levels' where the fixed bands pass the low level (no
    second candidate, band or noise pass; the 12 MP cost of ``"keep"``, session 36). Main has no
    such keyword (a TypeError)."""
    from veinscope.segment import detect_vessels

    rgb = _blue_then_faint(1) if which == "blue_then_faint" else _type6_photo(which)
    guard = "drop+near+long+follow+colour"
    ridge, skin, signal, kw = _detection_inputs(monkeypatch, rgb, 10.0, level_rates=(0.04, 0.01),
                                                level_rates_guard=guard)  # fmt: skip
    kw.pop("consume")
    kw.pop("fixed_too")  # analyze passes it (False here: no "keep")
    assert kw["level_rates"] == (0.04, 0.01) and kw["rates_guard"] == guard and kw["weak_bands"]
    fixed_kw = {k: v for k, v in kw.items() if k not in ("level_rates", "rates_guard", "rates_gap_px", "rates_long_px")}
    lowered = detect_vessels(ridge, skin, signal, **kw)
    fixed = detect_vessels(ridge, skin, signal, **fixed_kw)
    assert lowered.thresholds != fixed.thresholds  # a level was lowered
    assert fixed.n_segments > 0 and lowered.n_segments > fixed.n_segments // 2
    assert lowered.fixed is None and fixed.fixed is None  # not asked for
    both = detect_vessels(ridge, skin, signal, fixed_too=True, **kw)
    _same_detection(both, lowered)
    _same_detection(both.fixed, fixed)
    assert both.fixed.fixed is None
    # without the guard, and without the weak bands
    kw_plain = {k: v for k, v in kw.items() if k != "rates_guard"}
    l2 = detect_vessels(ridge, skin, signal, fixed_too=True, **kw_plain)
    _same_detection(l2, detect_vessels(ridge, skin, signal, **kw_plain))
    _same_detection(l2.fixed, fixed)
    kw_strong = dict(kw, weak_bands=False)
    l3 = detect_vessels(ridge, skin, signal, fixed_too=True, **kw_strong)
    _same_detection(l3, detect_vessels(ridge, skin, signal, **kw_strong))
    _same_detection(l3.fixed, detect_vessels(ridge, skin, signal, **dict(fixed_kw, weak_bands=False)))
    # where no level is lowered there is no second detection
    same = detect_vessels(ridge, skin, signal, fixed_too=True, **fixed_kw)
    assert same.fixed is None
    _same_detection(same, fixed)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known (session 36, keep36): with \"keep\" a short chain the fixed levels find in a weak band "
                   "(judged by its colour, dropped) is made strong by a lowered-level chain of the same points and marked")
def test_keep_leaves_a_short_weak_fixed_chain_to_its_colour():
    """Set A photo 410 (type 5, 8 px/mm): ``"keep"`` lowers its centreline precision 0.925 -> 0.915.
    Three of the four false pieces it adds (1-2 mm, 30-143 px from any true vessel) are chains
    the fixed levels find in weak bands, dropped on main by their colour (``faint_delta_e``); the
    lowered levels find the same points again, no longer, as strong chains, and a fixed chain is
    weak only where every lowered chain along it is. Making such a chain strong only when a
    lowered chain along it runs on beyond it (tried, session 36) mends 410 but costs set A's type
    6 recall (417 0.594 -> 0.507): no general rule found yet."""
    import veinscope
    from veinscope.synth import generate_photo

    ph = generate_photo(seed=410, size=(1600, 1200), px_per_mm=8.0, skin_type=5)
    boxes = [(slice(612, 627), slice(1120, 1127)), (slice(914, 919), slice(1076, 1088)), (slice(1000, 1009), slice(237, 257))]
    main = veinscope.analyze(ph.rgb, px_per_mm=8.0)
    assert all((main.labels[b] == 0).all() for b in boxes)
    keep = veinscope.analyze(ph.rgb, px_per_mm=8.0, level_rates=(0.04, 0.01),
                             level_rates_guard="drop+near+long+follow+colour+keep")  # fmt: skip
    assert all((keep.labels[b] == 0).all() for b in boxes)
