"""Intake: scale source, colour correction, card region, and the pipeline and CLI wiring."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.test_quality import PPM, leg_photo, light
from veinscope.calibrate import scale_from_points
from veinscope.cli import main
from veinscope.intake import prepare


def test_card_gives_scale_colour_and_region():
    rgb = leg_photo()
    it = prepare(rgb)
    assert it.scale_source == "card" and abs(it.px_per_mm / PPM - 1) < 0.003
    assert it.colour_applied and it.colour.source == "card"
    assert not np.array_equal(it.rgb, rgb)  # colour-normalised
    np.testing.assert_array_equal(it.photo.rgb, rgb)
    assert it.card_mask.any() and not (it.skin & it.card_mask).any()
    d = json.loads(json.dumps(it.to_dict()))
    assert d["scale_source"] == "card" and d["card"]["marker_ids"] == [0, 1, 2, 3]


def test_scale_by_hand_wins_and_disagreement_is_warned():
    rgb = leg_photo()
    it = prepare(rgb, px_per_mm=PPM * 1.1)
    assert it.scale_source == "manual" and it.px_per_mm == pytest.approx(PPM * 1.1)
    assert it.card is not None and it.card_mask.any()
    mismatch = [i for i in it.issues if i.code == "scale_mismatch"]
    assert mismatch and mismatch[0].value == pytest.approx(10.0, abs=0.5)
    agree = prepare(rgb, px_per_mm=PPM * 1.005)
    assert not any(i.code == "scale_mismatch" for i in agree.issues)


def test_ruler_scale_used_without_card():
    it = prepare(leg_photo(card=False), calibration=scale_from_points((10, 10), (710, 10), 100.0))
    assert it.scale_source == "ruler" and it.px_per_mm == pytest.approx(7.0)
    assert not it.card_mask.any() and not it.colour_applied


def test_no_card_no_scale_no_colour_change():
    rgb = leg_photo(card=False)
    it = prepare(rgb)
    assert it.scale_source == "none" and it.px_per_mm is None
    np.testing.assert_array_equal(it.rgb, rgb)
    fb = prepare(light(rgb, (1.0, 0.8, 0.6)), skin_fallback=True)
    assert fb.colour_applied and fb.colour.source == "skin" and not fb.colour.reliable


def test_bad_scale_is_a_value_error():
    with pytest.raises(ValueError, match="px_per_mm"):
        prepare(leg_photo(card=False), px_per_mm=-2.0)


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_analyze_takes_the_scale_from_the_card(tmp_path, fmt):
    """``veinscope analyze`` without --px-per-mm on a photo with the card, saved EXIF-rotated (JPEG, iPhone HEIC)."""
    from veinscope.io import _heif_available

    _heif_available()
    rgb = leg_photo()
    im = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored sideways ...
    exif = im.getexif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 CW to display"
    path = tmp_path / ("site.jpg" if fmt == "JPEG" else "IMG_0001.HEIC")
    im.save(path, format=fmt, quality=95, exif=exif.tobytes() if fmt == "HEIF" else exif)
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--out", str(out)]) == 0
    data = json.loads((out / "analysis.json").read_text())
    assert data["photo"]["height_px"] == rgb.shape[0]  # analysed upright
    assert data["px_per_mm"] == pytest.approx(PPM, rel=0.005)
    assert data["parameters"]["scale_source"] == "card"
    assert data["parameters"]["intake"]["card"]["marker_ids"] == [0, 1, 2, 3]
    assert not any("No scale" in w for w in data["warnings"])
    labels = np.asarray(Image.open(out / "labels.png"))
    # nothing is measured on the card
    from veinscope.calibrate import detect_card

    card = detect_card(rgb).card_mask(margin_mm=0)
    assert not labels[card].any()


def test_analyze_reports_quality_warnings_and_refuses_bad_files(tmp_path, capsys):
    blurred = tmp_path / "blurred.png"
    from tests.test_quality import blur

    Image.fromarray(blur(leg_photo(), 2.5)).save(blurred)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo, just notes\n")
    out = tmp_path / "o"
    assert main(["analyze", str(blurred), str(bad), "--out", str(out)]) == 1
    data = json.loads((out / "blurred" / "analysis.json").read_text())
    assert any("focus" in w for w in data["warnings"])
    err = capsys.readouterr().err
    assert "notes.jpg" in err and "text file" in err and "Traceback" not in err


def test_unexpected_card_failure_does_not_stop_the_analysis(monkeypatch, caplog):
    import veinscope.calibrate as cal

    def broken(rgb, **kw):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cal, "detect_card", broken)
    it = prepare(leg_photo())
    assert it.card is None and it.scale_source == "none"
    assert any(i.code == "card" and "could not be measured" in i.message for i in it.issues)
