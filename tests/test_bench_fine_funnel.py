"""The fine-vessel funnel of the engine benchmark (benchmarks/bench_fine_funnel.py) on a drawn photo.

Three lines 2 px wide on noisy skin at 10 px/mm, each given as a true red telangiectasia: a clear
red one (the engine paints it red), the same line at 1 RGB level below the skin (no ridge above
the hysteresis levels: lost before any rule) and a brown one (melanin-like: detected, then dropped
by the colour rule). The funnel must put each where the engine lost it, and its rules switched on
one at a time must give back the engine's own accepted points.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_fine_funnel import STAGES, Watcher, funnel_points, report  # noqa: E402


@pytest.fixture(scope="module")
def funnel():
    import veinscope
    import veinscope.pipeline as pl

    rng = np.random.default_rng(0)
    rgb = np.full((160, 240, 3), (205, 160, 140), np.float64)
    rgb[79:81, 20:120] = (175, 115, 115)  # red, clear
    rgb[79:81, 130:220] = (204, 159, 139)  # the same vessel, 1 level under the skin
    rgb[119:121, 20:120] = (192, 140, 108)  # brown
    rgb = np.clip(rgb + rng.normal(0, 1.5, rgb.shape), 0, 255).astype(np.uint8)
    before = (pl.detect_vessels, pl.measure_vessels)
    w = Watcher()
    try:
        a = veinscope.analyze(rgb, px_per_mm=10.0)
    finally:
        w.close()
    restored = (pl.detect_vessels, pl.measure_vessels) == before
    xs = np.arange(20.0, 220.0, 1.0)
    lines = [
        {"points_yx": np.c_[np.full(xs.size, y), xs], "visible": np.ones(xs.size, bool),
         "diameter_mm": np.full(xs.size, 0.15), "length_mm": np.full(xs.size, 0.1), "delta_e": np.full(xs.size, 5.0),
         "class": "red_telangiectasia"}
        for y in (79.5, 119.5)
    ]  # fmt: skip
    lines.append(dict(lines[0], **{"class": "blue_telangiectasia"}))  # not counted
    rows = funnel_points(SimpleNamespace(centrelines=lines, px_per_mm=10.0), a, w.seen)
    return rows, xs, w.seen, restored


def _stages(rows, xs, line, x0, x1):
    part = rows[line * xs.size : (line + 1) * xs.size]
    sel = (xs >= x0 + 5) & (xs < x1 - 5)  # away from the drawn ends
    return {STAGES[int(k)] for k in part[sel, 3]}


def test_the_rules_switched_on_one_at_a_time_give_the_engines_points(funnel):
    rows, xs, seen, restored = funnel
    assert seen["steps_same"]
    assert restored  # the pipeline's own functions are put back
    assert rows.shape == (2 * xs.size, 7)  # red lines only


def test_a_clear_red_line_is_painted_red(funnel):
    rows, xs, _, _ = funnel
    assert _stages(rows, xs, 0, 20, 120) == {"painted red"}


def test_a_line_at_the_skins_level_is_lost_at_the_ridge(funnel):
    rows, xs, _, _ = funnel
    got = _stages(rows, xs, 0, 130, 220)
    assert got <= {"under low x 0.6", "low x 0.6 - low", "band < min_length", "not a crest", "profile test"}
    assert "under low x 0.6" in got
    part = rows[: xs.size][(xs >= 135) & (xs < 215)]
    assert np.all(part[:, 4] >= 1)  # the ridge never reaches the high level there


def test_a_brown_line_is_dropped_by_the_melanin_rule(funnel):
    rows, xs, _, _ = funnel
    assert _stages(rows, xs, 1, 20, 120) == {"dropped: melanin"}


def test_the_report_shares_add_up(funnel):
    rows, _, _, _ = funnel
    text = report(np.c_[rows, np.zeros(len(rows))], 0.2)
    first = text.split("\n\n")[1].splitlines()
    shares = [float(line.split("|")[5]) for line in first[3:]]  # the "all < 0.2 mm" column
    assert sum(shares) == pytest.approx(1.0, abs=0.01)


@pytest.fixture(scope="module")
def funnel_every_class():
    """The same drawn photo with the funnel counting every class (``--every-class``)."""
    import veinscope
    import veinscope.pipeline as pl

    rng = np.random.default_rng(0)
    rgb = np.full((160, 240, 3), (205, 160, 140), np.float64)
    rgb[79:81, 20:120] = (175, 115, 115)  # red, clear
    rgb[79:81, 130:220] = (204, 159, 139)  # 1 level under the skin
    rgb = np.clip(rgb + rng.normal(0, 1.5, rgb.shape), 0, 255).astype(np.uint8)
    w = Watcher()
    try:
        a = veinscope.analyze(rgb, px_per_mm=10.0)
    finally:
        w.close()
    xs = np.arange(20.0, 220.0, 1.0)
    line = {"points_yx": np.c_[np.full(xs.size, 79.5), xs], "visible": np.ones(xs.size, bool),
            "diameter_mm": np.full(xs.size, 0.25), "length_mm": np.full(xs.size, 0.1),
            "delta_e": np.full(xs.size, 5.0)}  # fmt: skip
    lines = [dict(line, **{"class": "blue_telangiectasia"}), dict(line, **{"class": "reticular"})]
    photo = SimpleNamespace(centrelines=lines, px_per_mm=10.0)
    return funnel_points(photo, a, w.seen), funnel_points(photo, a, w.seen, every_class=True), xs


def test_every_class_counts_every_class_and_any_painted_class_as_a_hit(funnel_every_class):
    red_only, every, xs = funnel_every_class
    assert red_only.shape == (0, 7)  # no red line given
    assert every.shape == (2 * xs.size, 7)
    sel = (xs >= 25) & (xs < 115)
    for part in (every[: xs.size], every[xs.size:]):
        assert set(part[sel, 3]) == {0}  # painted, whatever class it was given
        assert set(part[(xs >= 135) & (xs < 215), 3]) <= set(range(STAGES.index("piece < min_piece"), len(STAGES)))  # lost at detection


def test_every_class_report_by_skin_type_adds_up(funnel_every_class):
    _, every, _ = funnel_every_class
    typ = np.r_[np.full(len(every) // 2, 2), np.full(len(every) - len(every) // 2, 5)]
    text = report(np.c_[every, np.zeros(len(every)), typ], 0.2, every_class=True)
    table = text.split("\n\n")[1].splitlines()
    assert table[0].startswith("| | all | types 1-3 | type 4 | type 5 | type 6 |")
    assert table[3].startswith("| painted (any class) |")
    for col in (2, 3, 5):  # all, types 1-3, type 5
        shares = [float(line.split("|")[col]) for line in table[3:]]
        assert sum(shares) == pytest.approx(1.0, abs=0.01)
    assert table[3].split("|")[4].strip() == ""  # type 4: no length
