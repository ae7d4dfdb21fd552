"""The benchmarks' engine options (``--set KEY=VALUE`` of bench_compare.py and the set A scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_synth_accuracy import analyze_options as _analyze_options  # noqa: E402


def test_words_and_numbers_become_analyze_keywords():
    assert _analyze_options(["valley_sides=true", "size_class_z=None", "end_faces=False", "low_noise=2.25"]) == {
        "valley_sides": True,
        "size_class_z": None,
        "end_faces": False,
        "low_noise": 2.25,
    }
    assert _analyze_options([]) == {}


def test_a_word_option_is_passed_on_as_written():
    # level_rates_guard takes words joined by "+" (session 33)
    assert _analyze_options(["level_rates=0.04,0.01", "level_rates_guard=drop+near+long"]) == {
        "level_rates": (0.04, 0.01), "level_rates_guard": "drop+near+long",
    }
    assert _analyze_options(["level_rates_guard=none"]) == {"level_rates_guard": None}


def test_numbers_joined_by_commas_are_a_tuple():
    # level_rates takes a pair (session 32)
    assert _analyze_options(["level_rates=0.04,0.01"]) == {"level_rates": (0.04, 0.01)}


@pytest.mark.parametrize("item", ["valley_sides", "=1", "low_noise=high", "end_faces=attached", "level_rates=0.04,x"])
def test_a_malformed_option_stops_with_a_message(item):
    with pytest.raises(SystemExit):
        _analyze_options([item])


# ---- --set-baseline and --compare-set: what reaches which photo -----------------------------
class _Stop(Exception):
    pass


def test_baseline_options_reach_the_baseline_only_and_compare_keywords_reach_compare(monkeypatch):
    import bench_compare

    import veinscope.pipeline as pipeline
    from tests._followup import make_session

    s = make_session(seed=305, size=(320, 240), px_per_mm=10.0, clear_frac=0.5, stain=0, matting=0)
    seen = []
    analyze = pipeline.analyze

    def recording(photo, **kw):
        seen.append((np.asarray(getattr(photo, "rgb", photo)).shape, {k: v for k, v in kw.items() if k != "px_per_mm"}))
        return analyze(photo, **kw)

    monkeypatch.setattr(pipeline, "analyze", recording)
    c = bench_compare.compare_pair(s.baseline_rgb, s.followup_rgb, s.px_per_mm, {"paint_links": True}, {"valley_sides": False}, {"matting_vessel_ends": False})
    # the baseline analysed with both option sets, the follow-up with the shared ones only
    assert [kw for _, kw in seen] == [{"paint_links": True, "valley_sides": False}, {"paint_links": True}]
    assert seen[0][0] == s.baseline_rgb.shape and seen[1][0] == s.followup_rgb.shape
    assert c.params["analyze_options"] == {"paint_links": True} and c.params["matting_vessel_ends"] is False
    # ... and the comparison is the one that baseline analysis gives
    a_b = analyze(s.baseline_rgb, px_per_mm=s.px_per_mm, paint_links=True, valley_sides=False)
    c2 = bench_compare.compare(s.baseline_rgb, s.followup_rgb, px_per_mm=s.px_per_mm, baseline_analysis=a_b,
                               analyze_options={"paint_links": True}, matting_vessel_ends=False)
    assert c2.lengths_px == c.lengths_px and np.array_equal(c2.change_map, c.change_map)
    # without baseline options compare analyses both photos itself, with the shared options
    seen.clear()
    bench_compare.compare_pair(s.baseline_rgb, s.followup_rgb, s.px_per_mm, None, None, None)
    assert [kw for _, kw in seen] == [{}, {}]


def test_the_command_line_passes_the_options_on(monkeypatch):
    import bench_compare

    import veinscope

    got = {}

    def stop(b, f, ppm, opts, b_opts, c_opts, baseline_ppm=None):
        got.update(opts=opts, b_opts=b_opts, c_opts=c_opts, baseline_ppm=baseline_ppm)
        raise _Stop

    monkeypatch.setattr(bench_compare, "compare_pair", stop)
    monkeypatch.setattr(veinscope, "warmup", lambda: None)
    with pytest.raises(_Stop):
        bench_compare.main(["--n", "1", "--size", "160", "120", "--set", "paint_links=true", "--set-baseline", "valley_sides=false",
                            "--set-baseline", "low_noise=2.5", "--compare-set", "matting_vessel_ends=false"])
    assert got == {"opts": {"paint_links": True}, "b_opts": {"valley_sides": False, "low_noise": 2.5}, "c_opts": {"matting_vessel_ends": False},
                   "baseline_ppm": None}


# ---- --skin-type and the improvement by skin type (session 32) --------------------------------
def test_series_on_one_skin_type_report_the_improvement_by_type(tmp_path, capsys):
    """``--skin-type 6`` generates every series on skin type 6 (the generator's own draw gave one
    type 6 series among seeds 300-333, 313; helper imp32 counted none) and the summary gives the improvement's error
    per skin type; each JSON row names its type."""
    import json

    import bench_compare

    from veinscope.synth import generate_series

    out = tmp_path / "rows.json"
    assert bench_compare.main(["--source", "series", "--n", "1", "--seed0", "300", "--size", "400", "300", "--sessions", "2",
                               "--skin-type", "6", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r.get("skin_type") for r in rows if not r["refused"]] == [6]
    text = capsys.readouterr().out
    # (a 400 x 300 photo of type 6 skin may show the engine no vessel: then "not measured")
    assert "improvement |error| by skin type: type 6: " in text
    line = next(t for t in text.splitlines() if t.startswith("improvement |error| by skin type"))
    assert ("median" in line) != ("1 not measured" in line)
    # without --skin-type the row carries the generator's own draw
    drawn = int(generate_series(seed=300, sessions=2, size=(400, 300), px_per_mm=10.0).params["skin_type"])
    assert drawn != 6
    assert bench_compare.main(["--source", "series", "--n", "1", "--seed0", "300", "--size", "400", "300", "--sessions", "2",
                               "--json", str(out)]) == 0
    assert [r.get("skin_type") for r in json.loads(out.read_text()) if not r["refused"]] == [drawn]


# ---- the series' staining / matting truth on the skin both photos show (session 38) -----------
def test_series_side_effect_truth_counts_only_the_skin_the_baseline_shows():
    """A follow-up's stain or patch where the baseline shows no skin (its card, its background)
    cannot be judged new since the baseline: the truth ``bench_compare`` scores staining and
    matting against leaves it out, as the generator's improvement leaves out vessels outside
    either photo; the baseline's whole frame is kept as the ``*_truth_frame`` figure."""
    import cv2

    import bench_compare

    ser = bench_compare.benchmark_series(300, (800, 600), 2)
    b = ser.photos[0]
    m, n = b.skin_mask.shape
    assert 0.01 < (~b.skin_mask).mean() < 0.5  # this baseline shows some background
    kernel = np.ones((7, 7), np.uint8)
    h_b2s = np.asarray(ser.changes[0]["homography_baseline_to_session"])

    def on_followup(mask_on_baseline_grid):
        eroded = cv2.erode(mask_on_baseline_grid.astype(np.uint8), kernel)
        return cv2.warpPerspective(eroded, h_b2s, (n, m), flags=cv2.INTER_NEAREST) > 0

    off_skin = on_followup(~b.skin_mask)
    assert off_skin.sum() > 500
    frame = bench_compare.area_on_baseline_mm2(ser, 1, off_skin, both_skin=False)
    assert frame > 1.0
    assert bench_compare.area_on_baseline_mm2(ser, 1, off_skin) == 0.0
    on_skin = on_followup(b.skin_mask)
    both = bench_compare.area_on_baseline_mm2(ser, 1, on_skin)
    assert both > 100.0
    assert both == pytest.approx(bench_compare.area_on_baseline_mm2(ser, 1, on_skin, both_skin=False), rel=0.01)
