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
