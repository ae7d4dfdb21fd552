"""Where a comparison's scale comes from (issue 6): the baseline's card carried to the follow-up,
the follow-up's card carried back to a baseline without one, or none.

Generated series 305 at 1280 x 960 px, 6 px/mm: both photos show the card. The same series made
without the card (``card=False``) shows the same site in the same poses (light and noise drawn
anew), so each visit can be had with or without its card.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from veinscope.compare import compare
from veinscope.register import register

_NO_SCALE = "No scale was given"


@pytest.fixture(scope="module")
def series305():
    from veinscope.synth import generate_series

    kw = dict(seed=305, sessions=2, size=(1280, 960), px_per_mm=6.0)
    on, off = generate_series(**kw), generate_series(card=False, **kw)
    assert on.photos[0].card is not None and on.photos[1].card is not None
    assert off.photos[0].card is None and off.photos[1].card is None
    # the same site in the same poses (the light and the camera's noise are drawn anew)
    h_on, h_off = (np.asarray(s.changes[0]["homography_baseline_to_session"]) for s in (on, off))
    np.testing.assert_allclose(h_on, h_off, atol=1e-9)
    assert on.photos[0].px_per_mm == off.photos[0].px_per_mm
    return on, off


@pytest.fixture(scope="module")
def with_both_cards(series305):
    on, _ = series305
    return compare(on.photos[0].rgb, on.photos[1].rgb)


@pytest.mark.slow
def test_followup_card_is_carried_back_to_a_baseline_without_one(series305, with_both_cards):
    on, off = series305
    b, f = off.photos[0], on.photos[1]  # the baseline without its card
    c = compare(b.rgb, f.rgb)
    truth_ppm = float(on.photos[0].px_per_mm)
    assert c.px_per_mm is not None
    assert c.px_per_mm == pytest.approx(truth_ppm, rel=0.03)
    d = c.to_dict()
    assert d["scale_source"] == "followup_card" and d["parameters"]["scale_source"] == "followup_card"
    assert not any(w.startswith(_NO_SCALE) or _NO_SCALE in w for w in c.warnings)
    # millimetre figures: as the comparison at the true scale reads them. The areas follow the
    # scale (0.6 % off: 1.2 % in mm²); the lengths within a few per cent more, because both
    # analyses depend on the scale (seed 305: 315.7 against 301.4 mm, the pixel lengths 4 % apart)
    at_truth = compare(b.rgb, f.rgb, px_per_mm=truth_ppm).to_dict()
    for key in ("baseline_mm", "visible_mm"):
        assert d["lengths"][key] is not None
        assert d["lengths"][key] == pytest.approx(at_truth["lengths"][key], rel=0.08)
    assert d["registration"]["residual_mm"] is not None and d["registration"]["overlap_mm2"] is not None
    assert d["registration"]["overlap_mm2"] == pytest.approx(at_truth["registration"]["overlap_mm2"], rel=0.04)
    # the follow-up keeps its own card's scale (carried back: follow-up px/mm x its pixel's size)
    assert d["parameters"]["followup_px_per_mm"] == pytest.approx(c.px_per_mm / d["parameters"]["followup_scale"], rel=1e-4)
    # the comparison with both cards (the baseline's carried over) has the same scale
    both = with_both_cards.to_dict()
    assert both["scale_source"] == "baseline_card"
    assert both["px_per_mm"] == pytest.approx(c.px_per_mm, rel=0.02)


@pytest.mark.slow
def test_a_baseline_analysis_without_scale_is_analysed_again_and_said_so(series305):
    from veinscope.pipeline import analyze

    on, off = series305
    b, f = off.photos[0], on.photos[1]
    a_b = analyze(b.rgb)
    assert a_b.px_per_mm is None
    c = compare(b.rgb, f.rgb, baseline_analysis=a_b)
    assert c.px_per_mm == pytest.approx(float(on.photos[0].px_per_mm), rel=0.03)
    assert c.params["scale_source"] == "followup_card"
    assert any("analysed again" in w for w in c.warnings)
    assert not any(_NO_SCALE in w for w in c.warnings)
    # the follow-up's own analysis given (as the app gives a photo imported in this run): the same
    a_f = analyze(f.rgb)
    c2 = compare(b.rgb, f.rgb, baseline_analysis=a_b, followup_analysis=a_f)
    assert c2.px_per_mm == pytest.approx(c.px_per_mm, rel=0.01)
    assert c2.params["scale_source"] == "followup_card"


@pytest.mark.slow
def test_baseline_card_only_and_no_card_as_before(series305):
    on, off = series305
    c = compare(on.photos[0].rgb, off.photos[1].rgb)  # the follow-up without its card
    assert c.px_per_mm is not None and c.params["scale_source"] == "baseline_card"
    assert c.px_per_mm == pytest.approx(float(on.photos[0].px_per_mm), rel=0.03)
    assert not any(_NO_SCALE in w for w in c.warnings)
    none = compare(off.photos[0].rgb, off.photos[1].rgb)
    assert none.px_per_mm is None and none.to_dict()["lengths"]["baseline_mm"] is None
    assert none.params["scale_source"] == "none" and none.to_dict()["scale_source"] == "none"
    assert any(w.startswith(_NO_SCALE) for w in none.warnings)
    entered = compare(off.photos[0].rgb, on.photos[1].rgb, px_per_mm=6.0)
    assert entered.px_per_mm == 6.0 and entered.params["scale_source"] == "entered"


def _card_grown(photo, factor):
    """The photo with its card (and nothing else) printed ``factor`` times larger about its
    centre, as a card lifted off the skin towards the camera looks."""
    corners = np.asarray(photo.card["corners_px"], np.float64)
    c = corners.mean(axis=0)
    a = np.array([[factor, 0.0, (1 - factor) * c[0]], [0.0, factor, (1 - factor) * c[1]]])
    m, n = photo.rgb.shape[:2]
    big = cv2.warpAffine(photo.rgb, a, (n, m), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grown = (corners - c) * factor + c
    mask = np.zeros((m, n), np.uint8)
    cv2.fillConvexPoly(mask, np.round(grown).astype(np.int32), 1)
    out = photo.rgb.copy()
    out[mask > 0] = big[mask > 0]
    return out


@pytest.mark.slow
def test_cards_disagreeing_strongly_each_photo_keeps_its_own(series305, with_both_cards):
    on, _ = series305
    b = on.photos[0].rgb
    f = _card_grown(on.photos[1], 1.10)
    c = compare(b, f)
    assert c.params["scale_source"] == "baseline_card"
    assert c.px_per_mm == pytest.approx(with_both_cards.px_per_mm, rel=0.005)  # the baseline's own card
    # the follow-up measured at its own (grown) card's scale, not the baseline's carried over
    carried = with_both_cards.px_per_mm / with_both_cards.params["followup_scale"]
    assert c.params["followup_px_per_mm"] == pytest.approx(carried * 1.10, rel=0.02)
    assert with_both_cards.params["followup_px_per_mm"] == pytest.approx(carried, rel=1e-4)
    disagree = [w for w in c.warnings if w.startswith("The calibration cards disagree")]
    assert len(disagree) == 1 and "own card's scale" in disagree[0] and "more than the cards' own precision" in disagree[0]
    assert not any("the scale entered" in w.lower() for w in c.warnings)
    # the cards of the unchanged pair agree: no such warning
    assert not any(w.startswith("The calibration cards disagree") for w in with_both_cards.warnings)


def test_card_disagreement_tolerance_and_wording():
    from veinscope.compare import _cards_disagree_wording, _cards_disagreement

    diff, tol = _cards_disagreement((10.0, 0.2), (9.0, 0.2), 1.2)  # 9 x 1.2 = 10.8 baseline px per mm
    assert diff == pytest.approx(8.0) and tol == pytest.approx(2.0)  # precise cards: the intake's 2 %
    diff, tol = _cards_disagreement((10.0, 8.0), (9.0, 8.0), 1.2)  # corners 8 px off on 540 and 486 px sides
    assert tol == pytest.approx(2 * np.hypot(100 * 8 / 540, 100 * 8 / 486))
    assert "within what the cards' own precision allows" in _cards_disagree_wording((10.0, 20.0), (9.0, 20.0), 1.2, analysed=True)
    assert "more than the cards' own precision" in _cards_disagree_wording((10.0, 0.2), (9.0, 0.2), 1.2, analysed=False)


def test_registration_with_scale_sets_mm_figures_and_residual_warning():
    from tests.test_compare import _noise, _one_of_two_bars_cleared, _u8

    base, fu = _one_of_two_bars_cleared()
    reg = register(_u8(_noise(base, 1)), _u8(_noise(fu, 2)))
    assert reg.px_per_mm is None and reg.residual_mm is None
    r2 = reg.with_scale(10.0)
    assert r2.px_per_mm == 10.0 and r2.to_dict()["overlap_mm2"] is not None
    if reg.residual_px is not None:
        assert r2.residual_mm == pytest.approx(reg.residual_px / 10.0)
        tiny = reg.with_scale(reg.residual_px / 0.5)  # a residual of 0.5 mm at that scale: warned of
        assert any(w.startswith("The alignment is uncertain") for w in tiny.warnings)
        assert not any(w.startswith("The alignment is uncertain") for w in tiny.with_scale(1000.0).warnings)
    with pytest.raises(ValueError, match="px_per_mm"):
        reg.with_scale(0.0)


def _jpeg(photo) -> bytes:
    if photo.jpeg is not None:
        return photo.jpeg
    ok, buf = cv2.imencode(".png", cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.mark.slow
def test_track_gives_millimetres_when_only_a_later_session_has_the_card(series305, tmp_path):
    import csv
    import json

    from veinscope.cli import main

    on, off = series305
    p0, p1 = tmp_path / "s0.jpg", tmp_path / "s1.jpg"
    p0.write_bytes(_jpeg(off.photos[0]))
    p1.write_bytes(_jpeg(on.photos[1]))
    assert main(["track", str(p0), str(p1), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "track.csv", encoding="utf-8") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["status"] == "ok" and float(row["baseline_length_mm"]) > 0 and row["residual_mm"] != ""
    d = json.loads((tmp_path / "out" / "s1" / "comparison.json").read_text())
    assert d["scale_source"] == "followup_card" and d["px_per_mm"] == pytest.approx(6.0, rel=0.03)
    assert not any(_NO_SCALE in w for w in d["warnings"])


@pytest.mark.slow
def test_app_comparison_gives_millimetres_when_only_a_later_session_has_the_card(series305, tmp_path, monkeypatch):
    import veinscope.app_support as sup
    import veinscope.pipeline

    on, off = series305
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-SCALE")
        for day, name, photo in (("2026-01-01", "s0.jpg", off.photos[0]), ("2026-02-15", "s1.jpg", on.photos[1])):
            [out] = sup.import_uploads(store, cache, "P-SCALE", "calf", day, [(name, _jpeg(photo))])
            assert out.ok
        a, b = store.list_sessions("P-SCALE", "calf")
        assert store.get_analysis(sup.session_photo(store, a.id).id)["px_per_mm"] is None  # the first visit: no card
        calls = []
        real = veinscope.pipeline.analyze
        monkeypatch.setattr(veinscope.pipeline, "analyze", lambda *args, **kw: calls.append(1) or real(*args, **kw))
        view = sup.compare_sessions(store, cache, a.id, b.id)
        assert view.computed_now
        assert view.figures["scale_source"] == "followup_card"
        assert view.figures["px_per_mm"] == pytest.approx(6.0, rel=0.03)
        assert view.figures["lengths"]["baseline_mm"] is not None
        assert not any(_NO_SCALE in w for w in view.figures["warnings"])
        assert len(calls) == 1  # the baseline, once, at the carried scale (the follow-up's analysis from memory)
        rows = sup.progress_rows(store, "P-SCALE", "calf")
        assert rows[1]["compared"] and rows[1]["improvement_pct"] is not None
        # shown again: kept, nothing analysed or compared again
        again = sup.compare_sessions(store, cache, a.id, b.id)
        assert not again.computed_now and len(calls) == 1
        assert again.figures["scale_source"] == "followup_card"
    finally:
        store.close()
