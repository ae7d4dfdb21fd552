import subprocess
import sys

import pytest

from veinscope.cli import main


def test_help_exit_zero(capsys):
    assert main(["--help"]) == 0
    assert "analyze" in capsys.readouterr().out


def test_usage_error_exit_two():
    assert main(["analyze"]) == 2
    assert main([]) == 2
    assert main(["analyze", "x.jpg", "--out", "o", "--px-per-mm", "-3"]) == 2


def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "veinscope", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "veinscope" in r.stdout


def _small_analysis(px_per_mm=8.0):
    from veinscope.pipeline import analyze
    from veinscope.synth import generate_photo

    ph = generate_photo(seed=7, size=(320, 240), px_per_mm=8.0, card=False, n_vessels=4)
    return ph.rgb, analyze(ph.rgb, px_per_mm=px_per_mm)


def test_written_files_hold_exactly_the_analysis(tmp_path):
    """labels.png, diameter_mm.tif and overlay.png decode back to the arrays, RGB in the right order."""
    import json

    import numpy as np
    import tifffile
    from PIL import Image

    from veinscope._cli_analyze import write_analysis
    from veinscope.report.overlay import render_overlay

    rgb, a = _small_analysis()
    before = rgb.copy()
    write_analysis(a, rgb, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "diameter_mm.tif", "labels.png", "overlay.png"]
    assert np.array_equal(rgb, before)  # the photo is not modified
    with Image.open(out / "labels.png") as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), a.labels)
    assert set(np.unique(a.labels)) <= {0, 1, 2, 3, 4} and a.labels.any()
    diam = tifffile.imread(out / "diameter_mm.tif")
    assert diam.dtype == np.float32
    assert np.array_equal(diam, np.asarray(a.diameter_mm, np.float32))
    with Image.open(out / "overlay.png") as im:
        assert im.mode == "RGB"
        overlay = np.asarray(im)
    assert np.array_equal(overlay, render_overlay(rgb, a))  # lossless, channels not swapped
    assert json.loads((out / "analysis.json").read_text()) == json.loads(json.dumps(a.to_dict()))


def test_overlay_colours_vessels_by_class_and_leaves_the_rest_dimmed():
    """Every photo pixel of the overlay is the photo dimmed or blended with its vessel class's colour:
    the legend is a strip under the photo and covers none of it (it covered the top-left corner,
    and a vessel there, until session 32)."""
    import numpy as np
    import pytest

    from veinscope.report.overlay import CLASS_COLOURS, render_overlay
    from veinscope.segment import CLASS_CODES

    rgb, a = _small_analysis()
    ov = render_overlay(rgb, a, outline_skin=False)
    m, n = rgb.shape[:2]
    photo, strip = ov[:m], ov[m:]
    want = np.rint(0.85 * rgb.astype(float))
    for name, code in CLASS_CODES.items():
        sel = a.labels == code
        want[sel] = np.rint(0.3 * rgb[sel].astype(float) + 0.7 * np.array(CLASS_COLOURS[name]))
    assert np.abs(photo.astype(float) - want).max() <= 1  # the whole photo, its top-left corner included
    assert ov.dtype == np.uint8 and ov.shape[1:] == rgb.shape[1:] and ov.shape[0] > m
    # the legend: a black strip with the class colours' squares and white text
    assert (strip == 0).all(axis=2).mean() > 0.5 and (strip == 255).all(axis=2).any()
    for colour in CLASS_COLOURS.values():
        assert (strip == colour).all(axis=2).sum() >= 100
    with pytest.raises(ValueError, match="shape"):
        render_overlay(rgb[:100], a)


def test_overlay_shows_a_vessel_in_the_photos_top_left_corner():
    """A vessel in the corner where the legend box was drawn until session 32 is drawn in its class
    colour, and every other photo pixel is the photo dimmed."""
    import numpy as np

    from veinscope.report.overlay import CLASS_COLOURS, render_overlay
    from veinscope.segment import CLASS_CODES

    rgb = np.full((600, 800, 3), 170, np.uint8)
    labels = np.zeros((600, 800), np.uint8)
    labels[8:12, 5:300] = CLASS_CODES["red_telangiectasia"]
    figures = {"classes": {c: {"segments": 1, "length_mm": 30.0, "coverage_pct": 0.2}
                           for c in (*CLASS_COLOURS, "total")}}
    stub = type("A", (), {"labels": labels, "skin": np.ones_like(labels, bool), "px_per_mm": 10.0,
                          "to_dict": lambda self: figures})()
    ov = render_overlay(rgb, stub, outline_skin=False)
    red = np.rint(0.3 * 170 + 0.7 * np.array(CLASS_COLOURS["red_telangiectasia"]))
    assert (ov[8:12, 5:300] == red).all()
    plain = labels == 0
    assert (ov[:600][plain] == round(0.85 * 170)).all()
    assert ov.shape[0] > 600 and (ov[600:] == CLASS_COLOURS["red_telangiectasia"]).all(axis=2).any()


def test_overlay_legend_fits_a_narrow_photo():
    """A narrow photo's legend is one column, its long lines wrapped: nothing drawn past the width."""
    import numpy as np

    from veinscope.report.overlay import CLASS_COLOURS, render_overlay

    rgb, a = _small_analysis()
    wide = render_overlay(rgb, a, outline_skin=False)
    narrow_a = type("A", (), {"labels": a.labels[:, :150], "skin": a.skin[:, :150], "px_per_mm": a.px_per_mm,
                              "to_dict": lambda self: a.to_dict()})()
    narrow = render_overlay(rgb[:, :150], narrow_a, outline_skin=False)
    m = rgb.shape[0]
    assert narrow.shape[1] == 150 and narrow.shape[0] - m > wide.shape[0] - m  # more rows than the wide one
    for colour in CLASS_COLOURS.values():
        assert (narrow[m:] == colour).all(axis=2).any()
    assert np.array_equal(narrow[:m], wide[:m, :150])


def test_uncalibrated_diameter_map_is_nan_on_vessels(tmp_path):
    import numpy as np
    import tifffile

    from veinscope._cli_analyze import write_analysis

    rgb, a = _small_analysis(px_per_mm=None)
    write_analysis(a, rgb, tmp_path)
    diam = tifffile.imread(tmp_path / "diameter_mm.tif")
    assert np.all(np.isnan(diam[a.labels > 0])) and np.all(diam[a.labels == 0] == 0)


@pytest.mark.parametrize("deflate", ["default", "zlib"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (23, 1), (31, 47), (300, 301), (5, 4, 3), (1, 1, 3), (257, 129, 3)])
def test_encode_png_round_trips_through_two_decoders(monkeypatch, shape, deflate):
    """Our PNG writer (up filter, one deflate stream split over IDAT chunks) decodes to the same
    pixels with Pillow and OpenCV, with ISA-L's deflate or zlib's, for grey and RGB pictures of
    any shape, including pictures whose compressed data fills several IDAT chunks."""
    import io
    import zlib

    import cv2
    import numpy as np
    from PIL import Image

    from veinscope.report import overlay

    if deflate == "zlib":
        monkeypatch.setattr(overlay, "_deflate", lambda: zlib.compress)
    monkeypatch.setattr(overlay, "_IDAT_BYTES", 1000)  # several chunks already for small pictures
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img[: shape[0] // 2] //= 64  # runs of similar values as well as noise
    data = overlay.encode_png(img)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.mode == ("RGB" if img.ndim == 3 else "L")
        assert np.array_equal(np.asarray(im), img)
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        got = got[..., ::-1]
    assert np.array_equal(got.reshape(img.shape), img)


def test_encode_png_is_lossless_and_refuses_other_shapes():
    import io

    import numpy as np
    import pytest
    from PIL import Image

    from veinscope.report.overlay import encode_png

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(rgb))) as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)
    grey = rgb[..., 0].copy()
    with Image.open(io.BytesIO(encode_png(grey))) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), grey)
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 4), np.uint8))


@pytest.mark.parametrize("deflate", ["default", "zlib"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (300, 301), (7, 70000), (20000, 3)])
def test_diameter_tiff_round_trips_through_tifffile_and_pillow(monkeypatch, shape, deflate):
    """Our float32 TIFF writer (Deflate strips) reads back bit for bit (NaN included) with
    tifffile and with Pillow, with one strip or many, ISA-L's deflate or zlib's."""
    import io
    import zlib

    import numpy as np
    import tifffile
    from PIL import Image

    from veinscope import _cli_analyze
    from veinscope.report import overlay

    if deflate == "zlib":
        monkeypatch.setattr(overlay, "_deflate", lambda: zlib.compress)
    rng = np.random.default_rng(shape[0])
    a = np.where(rng.random(shape) < 0.1, rng.random(shape) * 4, 0).astype(np.float32)
    a.flat[-1] = np.nan
    data = _cli_analyze._tiff_float32(a)
    got = tifffile.imread(io.BytesIO(data))
    assert got.dtype == np.float32 and np.array_equal(got, a, equal_nan=True)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "F" and np.array_equal(np.asarray(im), a, equal_nan=True)
    with pytest.raises(ValueError, match="2-D"):
        _cli_analyze._tiff_float32(np.zeros((2, 2, 2), np.float32))


def test_overlay_outlines_the_skin_in_white():
    """The skin's border (its 3x3 morphological gradient) is white, everything else is as
    drawn without the outline."""
    import cv2
    import numpy as np

    from veinscope.report.overlay import render_overlay

    rgb, a = _small_analysis()
    plain = render_overlay(rgb, a, outline_skin=False)
    ov = render_overlay(rgb, a)
    edge = cv2.morphologyEx(a.skin.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    assert edge.any() and not edge.all()
    m = edge.shape[0]
    assert (ov[:m][edge] == 255).all()  # the whole border: the legend is under the photo, not over it
    assert np.array_equal(ov[:m][~edge], plain[:m][~edge]) and np.array_equal(ov[m:], plain[m:])


def test_readme_names_every_column_of_summary_csv_and_track_csv():
    """The README lists the columns of batch's summary.csv and track's track.csv (track's were not listed,
    summary.csv's only in part); the files are written with exactly these field lists."""
    import re
    from pathlib import Path

    from veinscope._cli_compare import _CSV_FIELDS
    from veinscope.batch import SUMMARY_COLUMNS, _CLASS_FIELDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    batch = readme[readme.index("`DIR/summary.csv` one row per photo"):][:900]
    track = readme[readme.index("`DIR/track.csv` / `DIR/track.json`, one row"):][:900]
    named_batch = set(re.findall(r"`(?:<class>)?_?([a-z0-9_]+)`", batch))
    per_class = set(_CLASS_FIELDS)
    missing = [c for c in SUMMARY_COLUMNS if c not in named_batch and c.split("_", 2)[-1] not in per_class
               and not any(c.endswith("_" + f) for f in per_class)]
    assert not missing and per_class <= named_batch, (missing, per_class - named_batch)
    named_track = set(re.findall(r"`([a-z0-9_]+)`", track))
    assert set(_CSV_FIELDS) <= named_track, set(_CSV_FIELDS) - named_track


def test_track_json_records_the_scale_the_card_gave(tmp_path):
    """Without --px-per-mm the baseline's card gives the scale of every comparison: track.json said
    "px_per_mm": null beside figures in millimetres."""
    import json
    from pathlib import Path

    site = Path(__file__).resolve().parents[1] / "sample_images" / "demo_patient" / "site_a"
    if not (site / "session1.jpg").is_file():
        pytest.skip("sample_images/demo_patient is missing (run scripts/make_samples.py)")
    out = tmp_path / "track"
    assert main(["track", str(site / "session0.jpg"), str(site / "session1.jpg"), "--out", str(out)]) == 0
    series = json.loads((out / "track.json").read_text())
    assert series["scale_source"] == "card" and 5 < series["px_per_mm"] < 20, series
    assert series["sessions"][0]["baseline_length_mm"] > 0
