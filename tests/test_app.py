"""The Streamlit app (issue 8) with Streamlit's AppTest, on a real SQLite store with the demo patient.

One data folder is prepared per test run (demo patient loaded and one comparison made, through
the same library calls the app uses) and shared with tests/test_app_browser.py.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")

from veinscope import app_support as sup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
DEMO = Path(os.environ.get("VEINSCOPE_DEMO_DIR") or ROOT / "sample_images" / "demo_patient")
TIMEOUT_S = 300  # first run: Numba warm-up (JIT or cache load) and the demo patient's analyses

_PREPARED: dict[str, Path] = {}


def prepared_demo_dir() -> Path:
    """The copy of the demo patient's photos the prepared data folder was loaded from."""
    return _PREPARED["demo"]


def prepared_data_dir(tmp_root: Path) -> Path:
    """A data folder with the demo patient loaded and site a's first and last sessions compared (once per run)."""
    if "dir" not in _PREPARED:
        demo = tmp_root / "demo_patient"  # a copy: photos and their scale, safe from sample regeneration
        shutil.rmtree(demo, ignore_errors=True)
        for src in sorted(DEMO.glob("*/session*.jpg")):
            (demo / src.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, demo / src.parent.name / src.name)
            truth = src.with_name(f"{src.stem}_truth.json")
            if truth.is_file():
                shutil.copy2(truth, demo / src.parent.name / truth.name)
        _PREPARED["demo"] = demo
        d = tmp_root / "veinscope-app-data"
        shutil.rmtree(d, ignore_errors=True)
        store = sup.open_app_store(d)
        cache = sup.DerivedCache.for_store(store)
        results = sup.load_demo(store, demo, cache)
        assert all(r.ok for r in results), [r.message for r in results if not r.ok]
        sessions = store.list_sessions(sup.DEMO_CODE, "site a")
        sup.compare_sessions(store, cache, sessions[0].id, sessions[-1].id)
        store.close()
        _PREPARED["dir"] = d
    return _PREPARED["dir"]


def _n_demo_photos() -> int:
    return len(list(_PREPARED["demo"].glob("*/*.jpg")))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not DEMO.is_dir():
        pytest.skip("sample_images/demo_patient is missing (run scripts/make_samples.py)")
    return prepared_data_dir(tmp_path_factory.getbasetemp())


@pytest.fixture
def app(data_dir, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VEINSCOPE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("VEINSCOPE_DEMO_DIR", str(_PREPARED["demo"]))
    monkeypatch.delenv("VEINSCOPE_DATABASE_URL", raising=False)
    st.cache_resource.clear()  # the store of another data folder must not leak in
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    yield at
    st.cache_resource.clear()


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]


def _compare_from_the_prompt(at):
    """The Compare page says the sessions are not compared yet; its button compares them."""
    _ok(at)
    assert any("not been compared yet" in i.value for i in at.info)
    at.button(key="compare_run").click()
    at.run()
    _ok(at)


def _open_demo(at, page: str | None = None):
    at.session_state["patient"] = sup.DEMO_CODE
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    _ok(at)
    return at


# ----------------------------------------------------------------------------------------- pages
def test_patients_page_lists_the_demo_patient(app):
    app.run()
    _ok(app)
    assert app.title[0].value == "Patients"
    table = app.dataframe[0].value
    row = table[table["code"] == sup.DEMO_CODE]
    assert len(row) == 1
    assert int(row["sites"].iloc[0]) == 2 and int(row["photos"].iloc[0]) == _n_demo_photos()


def test_demo_patient_is_loaded_once(app, data_dir):
    app.run()
    app.run()  # the app loads the demo at start: running again must not add anything
    _ok(app)
    store = sup.open_app_store(data_dir)
    try:
        assert [p.code for p in store.list_patients()].count(sup.DEMO_CODE) == 1
        assert store.get_patient(sup.DEMO_CODE).photos == _n_demo_photos()
        again = sup.load_demo(store, _PREPARED["demo"], sup.DerivedCache.for_store(store))
        assert {r.status for r in again} == {"duplicate"}
    finally:
        store.close()


def test_every_page_renders_with_the_demo_patient(app):
    _open_demo(app)
    for page, title in (("pages/session.py", "Session"), ("pages/compare.py", "Compare two sessions"),
                        ("pages/progress.py", "Progress"), ("pages/export.py", "Export"),
                        ("pages/patients.py", "Patients")):
        app.switch_page(page)
        app.run()
        _ok(app)
        assert app.title[0].value == title
        assert not app.error, [e.value for e in app.error]


def test_pages_without_a_patient_say_what_to_do(app):
    app.run()
    app.switch_page("pages/compare.py")
    app.run()
    _ok(app)
    assert any("Open a patient first" in i.value for i in app.info)


def test_add_search_and_open_a_patient(app, data_dir):
    app.run()
    app.text_input(key="patients_new_code").input("P-TEST-1")
    app.text_input(key="patients_new_name").input("Jane Example")
    app.button(key="FormSubmitter:patients_add-Add patient").click()
    app.run()
    _ok(app)
    assert any("P-TEST-1 added" in s.value for s in app.success)
    assert app.session_state["patient"] == "P-TEST-1"
    # the same code again: a message, not a traceback
    app.text_input(key="patients_new_code").input("P-TEST-1")
    app.button(key="FormSubmitter:patients_add-Add patient").click()
    app.run()
    _ok(app)
    assert any("already exists" in e.value for e in app.error)
    # search narrows the list
    app.text_input(key="patients_search").input("TEST-1")
    app.run()
    assert list(app.dataframe[0].value["code"]) == ["P-TEST-1"]
    app.selectbox(key="patients_pick").set_value("P-TEST-1")
    app.button(key="patients_open").click()
    app.run()
    _ok(app)
    assert app.title[0].value == "Session"


# --------------------------------------------------------------------------------------- session
def test_session_shows_calibration_overlay_and_table(app):
    _open_demo(app, "pages/session.py")
    assert app.title[0].value == "Session"
    status = " ".join(m.value for m in [*app.success, *app.warning, *app.error])
    assert "px/mm" in status  # the scale in plain words
    table = app.dataframe[0].value
    assert list(table["vessels"]) == ["Red thread veins", "Blue thread veins", "Reticular veins", "Over 3 mm",
                                      "All vessels"]
    assert table["length (mm)"].iloc[-1] > 0
    assert "what it means" in table.columns
    assert len(app.get("image")) >= 1


def test_overlay_class_toggles_and_zoom(data_dir):
    store = sup.open_app_store(data_dir)
    try:
        cache = sup.DerivedCache.for_store(store)
        sess = store.list_sessions(sup.DEMO_CODE, "site a")[0]
        view = sup.photo_view(store, cache, sup.session_photo(store, sess.id).id)
        assert not view.analysed_now  # analysed at import: the masks were kept, nothing is analysed again
        rgb_before = view.rgb.copy()
        all_cls = sup.overlay_image(view)
        none = sup.overlay_image(view, classes=())
        assert all_cls.shape == none.shape and max(all_cls.shape[:2]) <= sup.DISPLAY_SIDE_PX
        assert np.count_nonzero(np.any(all_cls != none, axis=2)) > 1000  # vessels drawn only when shown
        zoomed = sup.overlay_image(view, zoom=4.0, centre_frac=(0.3, 0.6))
        assert zoomed.shape[1] == view.rgb.shape[1] // 4  # a quarter of the width, at full resolution
        assert np.array_equal(view.rgb, rgb_before)
        with pytest.raises(ValueError, match="classes"):
            sup.overlay_image(view, classes=("arteries",))
        with pytest.raises(ValueError, match="zoom"):
            sup.overlay_image(view, zoom=0.5)
    finally:
        store.close()


def test_bad_and_oversized_uploads_get_a_message(app, data_dir):
    _open_demo(app, "pages/session.py")
    app.toggle(key="session_add_open").set_value(True)
    app.run()
    app.selectbox(key="session_site_pick").set_value("site b")
    app.file_uploader(key="session_upload").set_value([
        ("notes.jpg", b"this is a text file, not a photo" * 20, "image/jpeg"),
        ("empty.jpg", b"", "image/jpeg"),
    ])
    app.button(key="session_import").click()
    app.run()
    _ok(app)
    errors = " ".join(e.value for e in app.error)
    assert "notes.jpg" in errors and "empty" in errors
    assert "Traceback" not in errors
    assert sup.check_upload("huge.jpg", (sup.MAX_UPLOAD_MB + 1) * 1024 * 1024).startswith("huge.jpg: ")
    assert "limit" in sup.check_upload("huge.jpg", (sup.MAX_UPLOAD_MB + 1) * 1024 * 1024)
    assert "not photos" in sup.check_upload("clip.mov", 1000)
    assert sup.check_upload("leg.HEIC", 1000) is None
    # the limit is stated in the uploader's label
    assert f"{sup.MAX_UPLOAD_MB} MB" in app.file_uploader(key="session_upload").label


def test_a_photo_with_quality_problems_is_flagged_at_import(app, data_dir):
    """A dark photo was "imported as photo 9" in green (session 32's walk): its warnings appeared only once
    it was chosen below. The import now shows them at once, as a warning; a good photo stays green."""
    from PIL import Image

    import veinscope

    rgb = veinscope.load_photo(DEMO / "site_b" / "session0.jpg").rgb
    dark = (rgb.astype(np.float32) * 0.15).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(dark).save(buf, "JPEG", quality=92)
    _open_demo(app, "pages/session.py")
    app.toggle(key="session_add_open").set_value(True)
    app.run()
    app.selectbox(key="session_site_pick").set_value("site b")
    app.file_uploader(key="session_upload").set_value([("dim_room.jpg", buf.getvalue(), "image/jpeg")])
    app.button(key="session_import").click()
    app.run()
    _ok(app)
    flagged = [w.value for w in app.warning if "dim_room.jpg" in w.value]
    assert flagged and "too dark" in flagged[0] and "imported" in flagged[0], [w.value for w in app.warning]
    assert not any("dim_room.jpg" in s.value for s in app.success)


def test_upload_a_heic_photo_imports_and_analyses_it_once(app, data_dir):
    """A HEIC photo (as an iPhone sends it) through the uploader: stored, analysed once, overlay shown."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    pillow_heif.register_heif_opener()

    store = sup.open_app_store(data_dir)
    try:
        if not store.has_patient("P-UPLOAD"):
            store.add_patient("P-UPLOAD")
    finally:
        store.close()
    app.session_state["patient"] = "P-UPLOAD"
    app.run()
    app.switch_page("pages/session.py")
    app.run()
    _ok(app)
    src = Image.open(_PREPARED["demo"] / "site_b" / "session0.jpg").convert("RGB")
    small = src.resize((src.width // 2, src.height // 2))
    buf = io.BytesIO()
    small.save(buf, format="HEIF", quality=90)
    app.text_input(key="session_new_site").input("right shin")
    app.file_uploader(key="session_upload").set_value(("half.heic", buf.getvalue(), "image/heic"))
    app.button(key="session_import").click()
    app.run()
    _ok(app)
    # at half size (3.5 px/mm) the import says so at once, as a warning (session 32)
    assert any("half.heic: imported" in s.value and "below 6 px/mm" in s.value for s in app.warning), \
        [e.value for e in app.error]
    assert len(app.get("image")) >= 1  # the overlay of the new photo
    app.button(key="session_import").click()  # the same bytes again: stored once, not analysed again
    app.run()
    assert any("already stored" in s.value for s in app.success)
    store = sup.open_app_store(data_dir)
    try:
        photos = store.list_photos(code="P-UPLOAD")
        assert len(photos) == 1 and photos[0].analyses == 1 and photos[0].original_name == "half.heic"
    finally:
        store.close()


# --------------------------------------------------------------------------------------- compare
def test_compare_page_shows_improvement_and_side_effects(app):
    _open_demo(app, "pages/compare.py")
    app.selectbox(key="compare_site").set_value("site a")
    app.run()
    _ok(app)
    metrics = {m.label: m.value for m in app.metric}
    assert set(metrics) == {"Improvement", "Grade", "Staining", "Matting"}
    assert metrics["Improvement"].endswith("%") and metrics["Staining"].endswith("mm²")
    assert any("Alignment" in m.value for m in [*app.success, *app.warning])
    assert len(app.tabs) == 4


def test_side_effect_metrics_without_a_scale_give_the_area_in_pixels():
    """A comparison without any scale (real legs without the card, session 32's walk) showed
    Staining "-" above "1 patch(es), marked S1, S2... on the change map", and "Grid: 1 cm" under
    a grid that was not 1 cm."""
    no_scale = {"px_per_mm": None, "staining": {"area_mm2": None, "area_px2": 58.0, "patches": 1},
                "matting": {"area_mm2": None, "area_px2": 1416.0, "patches": 3}}
    assert sup.side_effect_metric(no_scale, "staining") == ("58 px²", "1 patch, marked S1 on the change map (no scale: area in pixels)")
    value, caption = sup.side_effect_metric(no_scale, "matting")
    assert value == "1416 px²" and caption.startswith("3 patches, marked M1-M3")
    scaled = {"px_per_mm": 9.9, "staining": {"area_mm2": 12.4, "area_px2": 1215.0, "patches": 2},
              "matting": {"area_mm2": 0.0, "area_px2": 0.0, "patches": 0}}
    assert sup.side_effect_metric(scaled, "staining") == ("12 mm²", "2 patches, marked S1-S2 on the change map")
    assert sup.side_effect_metric(scaled, "matting") == ("0 mm²", "none found")
    assert sup.side_effect_metric({}, "staining") == ("-", "none found")
    with pytest.raises(ValueError, match="kind"):
        sup.side_effect_metric(scaled, "bruise")
    assert "Grid: 1 cm" in sup.side_by_side_caption(scaled)
    assert "Grid: 1 cm" not in sup.side_by_side_caption(no_scale) and "not 1 cm" in sup.side_by_side_caption(no_scale)


def test_sessions_that_cannot_be_compared_are_refused_with_a_reason(data_dir):
    store = sup.open_app_store(data_dir)
    try:
        cache = sup.DerivedCache.for_store(store)
        a = store.list_sessions(sup.DEMO_CODE, "site a")[0]
        b = store.list_sessions(sup.DEMO_CODE, "site b")[0]
        with pytest.raises(sup.NotComparable, match="different sites"):
            sup.compare_sessions(store, cache, a.id, b.id)
        with pytest.raises(sup.NotComparable, match="two different sessions"):
            sup.compare_sessions(store, cache, a.id, a.id)
    finally:
        store.close()


def test_swipe_image_splits_before_and_after():
    before = np.zeros((10, 20, 3), np.uint8)
    after = np.full((10, 20, 3), 100, np.uint8)
    out = sup.swipe_image(before, after, 0.5)
    assert (out[:, :8] == 0).all() and (out[:, 12:] == 100).all() and (out[:, 9:11] == 255).all()
    assert (before == 0).all() and (after == 100).all()
    with pytest.raises(ValueError, match="same shape"):
        sup.swipe_image(before, after[:5], 0.5)


# ------------------------------------------------------------------------------ progress, export
def test_progress_rows_chart_and_csv(data_dir):
    from PIL import Image

    store = sup.open_app_store(data_dir)
    try:
        rows = sup.progress_rows(store, sup.DEMO_CODE, "site a")
        assert [r["session_date"] for r in rows] == sorted(r["session_date"] for r in rows)
        assert len(rows) == len(list((_PREPARED["demo"] / "site_a").glob("*.jpg"))) >= 4
        assert rows[0]["improvement_pct"] == 0.0 and rows[-1]["compared"]
        assert isinstance(rows[-1]["improvement_pct"], float) and rows[-1]["staining_mm2"] is not None
        assert sup.missing_comparisons(rows) == [(rows[0]["session_id"], r["session_id"]) for r in rows[1:-1]]
        png = sup.progress_chart_png(rows, title="site a")
        im = Image.open(io.BytesIO(png))
        assert im.format == "PNG" and im.width > 600
        text = sup.progress_csv(sup.DEMO_CODE, "site a", rows).decode()
        head = text.splitlines()[0].split(",")
        assert {"session_date", "improvement_pct", "total_length_mm", "staining_mm2", "matting_mm2"} <= set(head)
        assert len(text.splitlines()) == 5
    finally:
        store.close()


def test_export_page_makes_the_patient_pdf(app):
    import pypdfium2 as pdfium

    _open_demo(app, "pages/export.py")
    app.selectbox(key="export_site").set_value("site a")
    app.run()
    app.button(key="export_make_pdf").click()
    app.run()
    _ok(app)
    code, site, pdf = app.session_state["export_pdf"]
    assert (code, site) == (sup.DEMO_CODE, "site a")
    doc = pdfium.PdfDocument(pdf)
    try:
        text = " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        assert len(doc) == 4  # summary and figures, progress chart, before/after pair, change map
    finally:
        doc.close()
    flat = " ".join(text.split())
    assert sup.DEMO_CODE in flat and "site a" in flat
    assert "does not diagnose" in flat
    assert "2026-01-05" in flat  # session dates
    assert "no longer visible" in flat  # the improvement in plain words
    assert "Before (" in flat


def test_progress_page_offers_to_compare_missing_sessions(app):
    _open_demo(app, "pages/progress.py")
    app.selectbox(key="progress_site").set_value("site a")
    app.run()
    _ok(app)
    assert any("not compared with the first yet" in i.value for i in app.info)
    assert app.button(key="progress_compare") is not None
    assert len(app.get("image")) == 1  # the chart
    # the table shows whole-photo lengths beside the improvement: the caption says what the improvement counts
    assert any("both photos show" in c.value and "whole photo" in c.value for c in app.caption), \
        [c.value for c in app.caption]
    # sessions not compared yet: their cells read "-" (as in the PDF), not Streamlit's "None"
    table = app.dataframe[0]
    assert table.value["improvement (%)"].isna().any()
    assert table.proto.placeholder == "-"


def test_config_binds_to_localhost_and_sets_the_upload_limit():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["maxUploadSize"] == sup.MAX_UPLOAD_MB
    assert cfg["browser"]["gatherUsageStats"] is False


def test_app_support_never_imports_streamlit():
    src = (ROOT / "src" / "veinscope" / "app_support.py").read_text()
    assert "import streamlit" not in src
    for mod in ("charts.py", "pdf.py"):
        assert "import streamlit" not in (ROOT / "src" / "veinscope" / "report" / mod).read_text()


def test_app_stays_thin():
    """No SQL and no image maths in the app: it calls the library."""
    for path in [APP, *sorted((ROOT / "pages").glob("*.py"))]:
        text = path.read_text()
        for forbidden in ("import cv2", "import numpy", "sqlalchemy", "SELECT ", "from PIL"):
            assert forbidden not in text, f"{path.name} uses {forbidden!r}"


@pytest.mark.skipif(os.name != "posix", reason="POSIX temp dirs")
def test_derived_cache_survives_damage(tmp_path):
    cache = sup.DerivedCache(tmp_path / "derived")
    labels = np.zeros((4, 5), np.uint8)
    labels[1, 2] = 3
    skin = np.ones((4, 5), bool)
    skin[0] = False
    cache.save_masks("k", labels, skin)
    got = cache.load_masks("k")  # waits for the background write
    assert got is not None and np.array_equal(got[0], labels) and np.array_equal(got[1], skin)
    assert got[0].dtype == np.uint8 and got[1].dtype == bool
    (tmp_path / "derived" / "masks_k.png").write_bytes(b"broken")
    assert cache.load_masks("k") is None  # analysed again instead of failing
    # masks kept by earlier versions (.npz) are still read
    np.savez_compressed(tmp_path / "derived" / "masks_old.npz", labels=labels, skin=skin)
    got = cache.load_masks("old")
    assert got is not None and np.array_equal(got[0], labels) and np.array_equal(got[1], skin)
    assert cache.load_masks("none") is None
    with pytest.raises(ValueError, match="one shape"):
        cache.save_masks("bad", labels, skin[:2])


def test_the_photo_just_imported_is_shown_without_decoding_it_again(tmp_path, monkeypatch):
    """import -> view -> overlay: photo, masks and figures come from memory, the masks reach the disk."""
    if not DEMO.is_dir():
        pytest.skip("sample_images/demo_patient is missing")
    import veinscope.io

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-FAST")
        src = sorted(DEMO.glob("*/session0.jpg"))[0]
        [out] = sup.import_uploads(store, cache, "P-FAST", "calf", "2026-01-01", [(src.name, src.read_bytes())])
        assert out.ok and out.photo_id is not None

        def no_decoding(*args, **kwargs):
            raise AssertionError("the photo was decoded again")

        monkeypatch.setattr(veinscope.io, "load_photo", no_decoding)
        view = sup.photo_view(store, cache, out.photo_id)
        assert view.analysed_now and view.figures == store.get_analysis(out.photo_id)
        jpeg = sup.overlay_jpeg(view)
        monkeypatch.undo()
        from PIL import Image

        with Image.open(io.BytesIO(jpeg)) as im:
            assert im.format == "JPEG" and max(im.size) <= sup.DISPLAY_SIDE_PX
        # the same picture once the photo has left memory (read back from the disk)
        cache.flush()
        assert len(list(cache.root.glob("masks_*.png"))) == 1
        cache.forget()
        again = sup.photo_view(store, cache, out.photo_id)
        assert not again.analysed_now  # masks found on disk: not analysed again
        assert np.array_equal(again.labels, view.labels) and np.array_equal(again.skin, view.skin)
        assert np.array_equal(sup.overlay_image(again), sup.overlay_image(view))
        # the first overlay of the import was made ahead, in the background: the same picture as made on demand
        assert sup._FIRST_OVERLAY in view._display and sup._FIRST_OVERLAY not in again._display
        assert sup.overlay_jpeg(again) == jpeg
    finally:
        store.close()


def test_overlay_is_display_sized_and_streamlit_sends_it_unchanged():
    """No 12 MP picture goes to the browser, and Streamlit does not decode and re-encode ours."""
    from streamlit.elements.lib import image_utils
    from streamlit.elements.lib.layout_utils import LayoutConfig

    assert sup.DISPLAY_SIDE_PX <= image_utils.MAXIMUM_CONTENT_WIDTH
    rgb = np.full((3000, 4000, 3), 180, np.uint8)
    labels = np.zeros((3000, 4000), np.uint8)
    labels[1500, 100:3900] = 1  # a vessel one pixel wide stays visible when shrunk
    figures = {"px_per_mm": 10.0, "classes": {c: {"segments": 1, "length_mm": 380.0, "coverage_pct": 0.01}
                                              for c in (*sup.CLASSES, "total")}}
    view = sup.PhotoView(1, "big", rgb, labels, np.ones_like(labels, bool), figures)
    img = sup.overlay_image(view)
    assert img.shape[1:] == (1400, 3) and 1050 < img.shape[0] <= 1050 + 250  # the photo, the legend strip beneath
    assert (img[520:530, 700, 1] < 100).any()  # the red class colour (little green) on the vessel's row
    assert (img[800, 300:1100, 1] == 153).all()  # plain photo, dimmed to 85 %, elsewhere
    assert (img[:500, :600, 1] == 153).all()  # its top-left corner too (above the vessel): no legend over the photo
    zoom = sup.overlay_image(view, zoom=4.0, centre_frac=(0.5, 0.5))
    assert zoom.shape[1] == 1000 and zoom.shape[0] > 750  # a quarter of the photo at full resolution, and the legend
    jpeg = sup.overlay_jpeg(view)
    layout = LayoutConfig(width="stretch")  # as st.image(..., width="stretch") on the Session page
    assert image_utils._ensure_image_size_and_format(jpeg, layout, "JPEG") is jpeg


def test_report_of_a_single_unanalysed_session(tmp_path):
    """One session, photo stored without analysis: the report still says something sensible."""
    import pypdfium2 as pdfium

    if not DEMO.is_dir():
        pytest.skip("sample_images/demo_patient is missing")
    store = sup.open_app_store(tmp_path / "data")
    try:
        store.add_patient("P-ONE")
        store.import_photo("P-ONE", "right ankle", "2026-05-01", sorted(DEMO.glob("*/session0.jpg"))[0], analyze=False)
        rows = sup.progress_rows(store, "P-ONE", "right ankle")
        assert len(rows) == 1 and rows[0]["total_length_mm"] is None
        assert sup.missing_comparisons(rows) == []
        pdf = sup.site_report_pdf(store, sup.DerivedCache.for_store(store), "P-ONE", "right ankle")
        doc = pdfium.PdfDocument(pdf)
        try:
            text = " ".join(doc[0].get_textpage().get_text_range().split())
            assert len(doc) == 1
        finally:
            doc.close()
        assert "first recorded session" in text and "does not diagnose" in text and "P-ONE" in text
        with pytest.raises(ValueError, match="no sessions"):
            sup.site_report_pdf(store, sup.DerivedCache.for_store(store), "P-ONE", "left knee")
    finally:
        store.close()


def test_compare_page_says_when_photos_cannot_be_compared(app, data_dir, monkeypatch):
    """The engine refuses a pair (e.g. not the same skin): the page shows its reason, not a traceback."""
    from PIL import Image

    store = sup.open_app_store(data_dir)
    try:
        if not store.has_patient("P-NOCMP"):
            store.add_patient("P-NOCMP")
        for day, src in (("2026-01-10", "site_a/session0.jpg"), ("2026-02-20", "site_b/session2.jpg")):
            buf = io.BytesIO()  # re-encoded: one photo file belongs to one patient only
            Image.open(_PREPARED["demo"] / src).save(buf, format="JPEG", quality=80)
            store.import_photo("P-NOCMP", "calf", day, buf.getvalue(), original_name=Path(src).name, analyze=False)
    finally:
        store.close()
    reason = "These photos cannot be compared: they do not show the same skin. Take the follow-up of the same site."

    def refuse(*args, **kwargs):
        raise sup.NotComparable(reason)

    monkeypatch.setattr(sup, "compare_sessions", refuse)
    app.session_state["patient"] = "P-NOCMP"
    app.run()
    app.switch_page("pages/compare.py")
    app.run()
    _compare_from_the_prompt(app)
    assert [e.value for e in app.error] == [reason]
    assert not app.metric


def test_session_overlay_toggles_in_the_app(app):
    _open_demo(app, "pages/session.py")
    first = app.get("image")[0].proto.imgs[0].url
    app.checkbox(key="session_show_red_telangiectasia").uncheck()
    app.checkbox(key="session_show_blue_telangiectasia").uncheck()
    app.run()
    _ok(app)
    assert app.get("image")[0].proto.imgs[0].url != first  # a new picture without the thread veins
    app.slider(key="session_zoom").set_value(4.0)
    app.run()
    _ok(app)
    assert not app.slider(key="session_cx").disabled


def test_an_unexpected_failure_in_an_upload_becomes_a_message(tmp_path, caplog):
    class Broken:
        def import_photo(self, *args, **kwargs):
            raise RuntimeError("disk controller exploded: /home/jane.doe/leg.jpg")

    out = sup.import_uploads(Broken(), sup.DerivedCache(tmp_path / "d"), "P-1", "calf", "2026-01-01",
                             [("leg.jpg", b"\xff\xd8" + b"0" * 100)])
    assert len(out) == 1 and not out[0].ok
    assert out[0].message.startswith("leg.jpg: this file could not be read")
    assert "jane" not in caplog.text and "leg.jpg" not in caplog.text  # nothing personal in the log


def _small_png(seed: int) -> bytes:
    from PIL import Image

    from veinscope.synth import generate_photo

    buf = io.BytesIO()
    Image.fromarray(generate_photo(seed=seed, size=(320, 240), px_per_mm=8.0, card=False, n_vessels=4).rgb).save(buf, "PNG")
    return buf.getvalue()


def test_a_failed_analysis_is_told_as_such_and_loses_nothing_saved(tmp_path, monkeypatch, caplog):
    """The photo was read and the analysis raised (as the half-maximum kernel's ZeroDivisionError
    did until session 32): the message says so, and what to do, not "could not be read as a
    photo"; no traceback; the photo saved before, its figures and masks are untouched; importing
    the photo again once the fault is gone works."""
    import veinscope.pipeline

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-FAIL")
        first, second = _small_png(7), _small_png(8)
        [ok] = sup.import_uploads(store, cache, "P-FAIL", "calf", "2026-01-01", [("a.png", first)], px_per_mm=8.0)
        assert ok.ok
        cache.flush()
        figures = store.get_analysis(ok.photo_id)
        masks = sorted((p.name, p.read_bytes()) for p in cache.root.glob("masks_*"))
        assert figures is not None and masks

        def broken(*args, **kwargs):
            raise ZeroDivisionError("float division by zero in /home/jane.doe/b.png")

        monkeypatch.setattr(veinscope.pipeline, "analyze", broken)
        [bad] = sup.import_uploads(store, cache, "P-FAIL", "calf", "2026-01-01", [("b.png", second)], px_per_mm=8.0)
        assert not bad.ok and bad.photo_id is None
        msg = bad.message
        assert msg.startswith("b.png: the photo was read, but VeinScope's analysis of it failed")
        assert "could not be read" not in msg
        assert "not kept" in msg and "already saved are unchanged" in msg  # what happened to it and to the rest
        assert "Try importing it again" in msg and "report the problem" in msg  # what to do
        assert "Traceback" not in msg and "ZeroDivision" not in msg and "jane" not in msg
        assert "jane" not in caplog.text and "b.png" not in caplog.text  # nothing personal in the log
        # nothing saved is lost: the first photo, its bytes, figures and masks as they were; no record of the second
        cache.flush()
        [rec] = store.list_photos(code="P-FAIL")
        assert rec.id == ok.photo_id and store.read_photo(rec.id) == first
        assert store.get_analysis(rec.id) == figures
        assert sorted((p.name, p.read_bytes()) for p in cache.root.glob("masks_*")) == masks
        # try again, the fault gone: imported
        monkeypatch.undo()
        [again] = sup.import_uploads(store, cache, "P-FAIL", "calf", "2026-01-01", [("b.png", second)], px_per_mm=8.0)
        assert again.ok and len(store.list_photos(code="P-FAIL")) == 2
    finally:
        store.close()


def test_a_photo_analysed_but_not_saved_is_told_as_such(tmp_path):
    """A failure after the analysis (saving) is not told as an unreadable photo either."""
    photo_bytes = _small_png(7)

    class SaveFails:
        def import_photo(self, code, site, day, data, *, original_name=None, px_per_mm=None, analyze=None):
            from veinscope.io import load_photo

            analyze(load_photo(data), px_per_mm=px_per_mm)
            raise OSError("database is locked")

    cache = sup.DerivedCache(tmp_path / "d")
    [out] = sup.import_uploads(SaveFails(), cache, "P-1", "calf", "2026-01-01", [("c.png", photo_bytes)], px_per_mm=8.0)
    cache.flush()
    assert not out.ok and out.message.startswith("c.png: the photo was read and analysed, but saving it failed")
    assert "Try importing it again" in out.message and "database" not in out.message


def test_erasing_a_patient_removes_the_derived_pictures_too(tmp_path):
    if not DEMO.is_dir():
        pytest.skip("sample_images/demo_patient is missing")
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-GONE")
        src = sorted(DEMO.glob("*/session0.jpg"))[0]
        out = sup.import_uploads(store, cache, "P-GONE", "calf", "2026-01-01", [(src.name, src.read_bytes())])
        assert out[0].ok
        sha = store.list_photos(code="P-GONE")[0].sha256
        (cache.root / f"cmp_{sha[:20]}_{'0' * 20}").mkdir()  # a comparison picture of this photo
        assert cache.recent(out[0].photo_id) is not None  # kept in memory after the import
        summary = sup.erase_patient(store, cache, "P-GONE")  # also waits for the masks still being written
        assert summary.photos == 1 and not store.has_patient("P-GONE")
        assert list(cache.root.iterdir()) == []
        assert cache.recent(out[0].photo_id) is None
    finally:
        store.close()


def test_erase_from_the_patients_page_needs_the_code_typed(app, data_dir):
    store = sup.open_app_store(data_dir)
    try:
        if not store.has_patient("P-ERASE"):
            store.add_patient("P-ERASE")
    finally:
        store.close()
    app.run()
    app.selectbox(key="patients_erase_pick").set_value("P-ERASE")
    app.run()
    assert app.button(key="patients_erase").disabled
    app.text_input(key="patients_erase_confirm").input("P-ERASE")
    app.run()
    app.button(key="patients_erase").click()
    app.run()
    _ok(app)
    assert any("P-ERASE erased" in s.value for s in app.success)
    store = sup.open_app_store(data_dir)
    try:
        assert not store.has_patient("P-ERASE") and store.has_patient(sup.DEMO_CODE)
    finally:
        store.close()


def test_an_empty_demo_folder_loads_nothing(tmp_path):
    store = sup.open_app_store(tmp_path / "data")
    try:
        (tmp_path / "demo" / "site_a").mkdir(parents=True)
        (tmp_path / "demo" / "site_a" / "notes.txt").write_text("no photos here")
        assert sup.load_demo(store, tmp_path / "demo", sup.DerivedCache.for_store(store)) == []
        assert not store.has_patient(sup.DEMO_CODE)
    finally:
        store.close()


def test_the_session_page_shows_the_photo_just_imported(app, data_dir):
    """After an import into an earlier session that has a photo already, that session and the new photo are shown."""
    from PIL import Image

    store = sup.open_app_store(data_dir)
    try:
        if not store.has_patient("P-FOCUS"):
            store.add_patient("P-FOCUS")
    finally:
        store.close()

    def half(src: str, quality: int) -> bytes:
        with Image.open(_PREPARED["demo"] / src) as im:
            buf = io.BytesIO()
            im.convert("RGB").resize((im.width // 2, im.height // 2)).save(buf, format="JPEG", quality=quality)
            return buf.getvalue()

    app.session_state["patient"] = "P-FOCUS"
    app.run()
    app.switch_page("pages/session.py")
    app.run()
    _ok(app)
    import datetime as dt

    for i, (day, src) in enumerate((("2026-01-01", "site_b/session0.jpg"), ("2026-02-01", "site_b/session1.jpg"),
                                    ("2026-01-01", "site_b/session2.jpg"))):
        if i == 0:
            app.text_input(key="session_new_site").input("calf")
        else:
            app.toggle(key="session_add_open").set_value(True)
            app.run()
            app.selectbox(key="session_site_pick").set_value("calf")
        app.date_input(key="session_date").set_value(dt.date.fromisoformat(day))
        app.file_uploader(key="session_upload").set_value((f"p{i}.jpg", half(src, 88 - i), "image/jpeg"))
        app.button(key="session_import").click()
        app.run()
        _ok(app)
        # half-size photos (3.5 px/mm): imported with the low scale flagged (session 32)
        assert any(f"p{i}.jpg: imported" in s.value for s in [*app.success, *app.warning]), [e.value for e in app.error]
        assert app.selectbox(key="session_photo").value.original_name == f"p{i}.jpg"
        assert str(app.selectbox(key="session_pick").value.session_date) == day
    assert app.selectbox(key="session_pick").value.photos == 2


def test_a_comparison_uses_the_analyses_of_photos_just_imported(tmp_path, monkeypatch):
    """Two sessions imported in this run of the app: compare decodes neither photo again and
    reuses the baseline's analysis; the follow-up is measured at the baseline card's scale carried
    over, as for photos imported before this run, so both give the same figures (session 31's
    app differed by 0.3 points on this pair: 26.99 % with the follow-up's own analysis reused,
    26.70 % re-analysed at the carried scale)."""
    if not DEMO.is_dir():
        pytest.skip("sample_images/demo_patient is missing")
    import veinscope.pipeline

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-CMP")
        for day, name in (("2026-01-01", "session0.jpg"), ("2026-03-01", "session1.jpg")):
            src = DEMO / "site_a" / name
            [out] = sup.import_uploads(store, cache, "P-CMP", "calf", day, [(name, src.read_bytes())])
            assert out.ok
        a, b = store.list_sessions("P-CMP", "calf")
        kept = {s.id: cache.recent(sup.session_photo(store, s.id).id) for s in (a, b)}
        assert all(v is not None and v.analysis is not None for v in kept.values())

        calls = []
        real = veinscope.pipeline.analyze
        monkeypatch.setattr(veinscope.pipeline, "analyze", lambda *args, **kw: calls.append(kw.get("px_per_mm")) or real(*args, **kw))
        view = sup.compare_sessions(store, cache, a.id, b.id)
        # the baseline's analysis came from memory; the follow-up is analysed once, at the carried scale
        assert len(calls) == 1 and calls[0] is not None
        assert view.computed_now and isinstance(view.figures.get("improvement_pct"), (int, float))
        assert {k: view.figures["photos"][k] for k in ("baseline", "followup")} == {"baseline": "session0.jpg", "followup": "session1.jpg"}
        assert view.figures["scale_source"] == "baseline_card"

        # the same two sessions once the photos have left memory: both analysed again, the same figures
        for d in cache.root.glob("cmp_*"):
            shutil.rmtree(d)
        cache.forget()
        again = sup.compare_sessions(store, cache, a.id, b.id)
        assert len(calls) == 3
        assert again.figures["improvement_pct"] == view.figures["improvement_pct"]
        assert again.figures["improvement_by_class"] == view.figures["improvement_by_class"]
        assert again.figures["px_per_mm"] == view.figures["px_per_mm"]
    finally:
        store.close()


def test_before_after_titles_name_the_session_dates(tmp_path):
    """The side-by-side picture (app and patient PDF) titles each photo with its session's date, not
    with the placeholder 'photo' that in-memory photos carry (found by hand, session 31)."""
    import dataclasses

    from veinscope.compare import compare
    from veinscope.report.change_map import render_side_by_side
    from veinscope.synth import generate_series

    series = generate_series(seed=31, sessions=2, size=(960, 720), card=False)
    days = ("2026-01-05", "2026-03-02")
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-SBS")
        for day, ph in zip(days, series.photos):
            [out] = sup.import_uploads(store, cache, "P-SBS", "calf", day, [(f"{day}.jpg", ph.jpeg)],
                                       px_per_mm=8.0)
            assert out.ok, out.message
        a, b = store.list_sessions("P-SBS", "calf")
        view = sup.compare_sessions(store, cache, a.id, b.id)
        got = sup._from_png(view.side_by_side_png)
        c = compare(*(store.read_photo(sup.session_photo(store, s.id).id) for s in (a, b)), px_per_mm=8.0)
        rows = slice(0, 12)  # the title strip
        dated = render_side_by_side(dataclasses.replace(c, names=days))[rows]
        placeholder = render_side_by_side(dataclasses.replace(c, names=("photo", "photo")))[rows]
        assert got.shape[1] == dated.shape[1] and not np.array_equal(dated, placeholder)
        np.testing.assert_array_equal(got[rows], dated)
    finally:
        store.close()


def test_report_says_a_refused_session_cannot_be_compared(tmp_path):
    """Two sessions whose photos were refused as different skin: the patient PDF says so instead of 'not
    compared yet', and Progress does not offer to compare them again (found by hand, session 31)."""
    pdfium = pytest.importorskip("pypdfium2")
    from veinscope.synth import generate_photo

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-REF")
        for day, seed in (("2026-01-05", 31), ("2026-03-02", 77)):  # two different legs filed as one site
            ph = generate_photo(seed=seed, size=(960, 720), card=False)
            [out] = sup.import_uploads(store, cache, "P-REF", "calf", day, [(f"{day}.jpg", ph.jpeg)], px_per_mm=8.0)
            assert out.ok, out.message
        a, b = store.list_sessions("P-REF", "calf")
        assert sup.missing_comparisons(sup.progress_rows(store, "P-REF", "calf", cache=cache)) == [(a.id, b.id)]
        with pytest.raises(sup.NotComparable, match="do not seem to show the same area"):
            sup.compare_sessions(store, cache, a.id, b.id)
        rows = sup.progress_rows(store, "P-REF", "calf", cache=cache)
        assert "do not seem to show the same area" in rows[1]["refused"]
        assert sup.missing_comparisons(rows) == []
        assert sup.progress_csv("P-REF", "calf", rows).decode().count("\n") == 3  # header and two sessions
        doc = pdfium.PdfDocument(sup.site_report_pdf(store, cache, "P-REF", "calf"))
        try:
            text = " ".join(doc[0].get_textpage().get_text_range().split())
        finally:
            doc.close()
        assert "not been compared with the first yet" not in text and "cannot be compared" in text, text[:600]
    finally:
        store.close()


def _leg_and_other_leg():
    """A generated leg, another leg, and the first one's moved copy (JPEG bytes): a follow-up of the
    wrong leg and of the right one."""
    from PIL import Image

    from tests._followup import moved_copy
    from veinscope.synth import generate_photo

    base = generate_photo(seed=31, size=(960, 720), card=False)
    other_leg = generate_photo(seed=77, size=(960, 720), card=False)
    buf = io.BytesIO()
    Image.fromarray(moved_copy(base.rgb)).save(buf, format="JPEG", quality=90)
    return base, other_leg, buf.getvalue()


def test_a_follow_up_of_the_wrong_leg_gives_way_to_the_right_photo_of_the_same_session(tmp_path):
    """A follow-up photo of the other leg is refused; the practitioner imports the right photo into the
    same session (until session 39 no photo could be taken out of a session in the app). Until session 38 the first photo
    stood for the session for ever: the comparison stayed refused and Progress / the PDF said so
    (found by hand, helper qa38). Now the right photo is compared, and the message of a refusal says
    what to do in the app. Nothing saved is lost: both photos and their analyses stay."""
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-LEG")
        base, other_leg, moved = _leg_and_other_leg()
        for day, name, data in (("2026-01-05", "before.jpg", base.jpeg), ("2026-03-02", "wrong_leg.jpg", other_leg.jpeg)):
            [out] = sup.import_uploads(store, cache, "P-LEG", "calf", day, [(name, data)], px_per_mm=8.0)
            assert out.ok, out.message
        a, b = store.list_sessions("P-LEG", "calf")
        with pytest.raises(sup.NotComparable, match="do not seem to show the same area") as refused:
            sup.compare_sessions(store, cache, a.id, b.id)
        assert "import the right photo into the same session" in str(refused.value), str(refused.value)
        assert "2026-03-02" in str(refused.value)
        assert str(refused.value).count("cannot be compared") == 1, str(refused.value)  # not "...: These photos..."
        assert sup.refused_comparison(store, cache, a.id, b.id) is not None

        [out] = sup.import_uploads(store, cache, "P-LEG", "calf", "2026-03-02", [("right_leg.jpg", moved)],
                                   px_per_mm=8.0)
        assert out.ok, out.message
        assert sup.refused_comparison(store, cache, a.id, b.id) is None  # offered again on Progress
        assert sup.cached_comparison(store, cache, a.id, b.id) is None
        view = sup.compare_sessions(store, cache, a.id, b.id)
        assert {k: view.figures["photos"][k] for k in ("baseline", "followup")} == {"baseline": "before.jpg", "followup": "right_leg.jpg"}
        assert view.figures["improvement_pct"] is not None
        again = sup.cached_comparison(store, cache, a.id, b.id)
        assert again is not None and again.figures["photos"]["followup"] == "right_leg.jpg"
        rows = sup.progress_rows(store, "P-LEG", "calf", cache=cache)
        assert rows[1]["compared"] and rows[1]["improvement_pct"] == view.figures["improvement_pct"]
        right = next(p for p in store.list_photos(session_id=b.id) if p.original_name == "right_leg.jpg")
        assert rows[1]["photo_id"] == right.id  # its lengths are the right photo's, not the wrong leg's
        assert sorted(p.original_name for p in store.list_photos(session_id=b.id)) == ["right_leg.jpg", "wrong_leg.jpg"]
    finally:
        store.close()


def test_a_baseline_of_the_wrong_leg_gives_way_and_progress_reads_the_right_baseline(tmp_path):
    """The baseline session's first photo is of the other leg, the right one imported after it: the
    comparison uses the right baseline (session 38, helper qa38) and so must the progress row of the
    first session (its lengths feed the progress chart and the PDF). Until review rev38 that row read
    the first photo imported, the other leg's, while the comparison's figures were the right one's."""
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-BASE")
        base, other_leg, moved = _leg_and_other_leg()
        for day, name, data in (("2026-01-05", "wrong_leg.jpg", other_leg.jpeg), ("2026-01-05", "before.jpg", base.jpeg),
                                ("2026-03-02", "after.jpg", moved)):
            [out] = sup.import_uploads(store, cache, "P-BASE", "calf", day, [(name, data)], px_per_mm=8.0)
            assert out.ok, out.message
        a, b = store.list_sessions("P-BASE", "calf")
        view = sup.compare_sessions(store, cache, a.id, b.id)
        assert {k: view.figures["photos"][k] for k in ("baseline", "followup")} == {"baseline": "before.jpg", "followup": "after.jpg"}
        rows = sup.progress_rows(store, "P-BASE", "calf", cache=cache)
        right = next(p for p in store.list_photos(session_id=a.id) if p.original_name == "before.jpg")
        assert rows[0]["photo_id"] == right.id
        assert rows[0]["total_length_mm"] == store.get_analysis(right.id)["classes"]["total"]["length_mm"]
    finally:
        store.close()


def test_progress_reads_the_compared_photo_when_a_sessions_photos_share_a_name(tmp_path):
    """A phone's browser names every upload "image.jpg": the follow-up's first photo (the wrong leg) refused,
    its second, of the same name, compared. The saved comparison names the photo it used, which both
    photos' names match; the progress row must read the compared one (the pair the kept comparison
    is of), not the first of that name. Until review rev38 it read the refused photo's lengths. No
    comparison is run here: the refusal and the comparison are written as the app keeps them."""
    import json

    from PIL import Image

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-NAME")
        pics = []
        for i, (day, name) in enumerate((("2026-01-05", "before.jpg"), ("2026-03-02", "image.jpg"),
                                         ("2026-03-02", "image.jpg"))):
            buf = io.BytesIO()
            skin = np.random.default_rng(i).integers(90, 200, (480, 640, 3), dtype=np.uint8)  # not one flat colour
            Image.fromarray(skin).save(buf, format="PNG")
            r = store.import_photo("P-NAME", "calf", day, buf.getvalue(), original_name=name, analyze=False)
            pics.append(r.photo)
        a, b = store.list_sessions("P-NAME", "calf")
        base, wrong, right = pics
        refused = cache.folder(f"cmp_{base.sha256[:20]}_{wrong.sha256[:20]}")
        refused.mkdir(parents=True)
        (refused / "refused.txt").write_text("they do not show the same skin")
        figures = {"improvement_pct": 40.0, "photos": {"baseline": "before.jpg", "followup": "image.jpg"}}
        kept = cache.folder(f"cmp_{base.sha256[:20]}_{right.sha256[:20]}")
        kept.mkdir(parents=True)
        (kept / "comparison.json").write_text(json.dumps(figures))
        store.save_comparison(a.id, b.id, figures)
        rows = sup.progress_rows(store, "P-NAME", "calf", cache=cache)
        assert rows[1]["compared"] and rows[1]["improvement_pct"] == 40.0
        assert rows[1]["photo_id"] == right.id
        assert rows[0]["photo_id"] == base.id
        # without the cache the name alone is known: the first photo of that name, as before
        assert sup.progress_rows(store, "P-NAME", "calf")[1]["photo_id"] == wrong.id
    finally:
        store.close()


def test_compare_page_clears_not_compared_yet_once_compared(app, monkeypatch):
    """The walk of session 38 (helper qa38): after "Compare these sessions" the page showed the figures
    under "These sessions have not been compared yet" and the button; the prompt now goes once compared.
    The Figures tab's baseline lengths have one decimal (93.6 mm, not 93.615)."""
    real_cached = sup.cached_comparison
    monkeypatch.setattr(sup, "cached_comparison", lambda *a, **k: None)
    monkeypatch.setattr(sup, "compare_sessions", lambda store, cache, a, b: real_cached(store, cache, a, b))
    _open_demo(app, "pages/compare.py")
    app.selectbox(key="compare_site").set_value("site a")
    app.run()
    _compare_from_the_prompt(app)
    assert {m.label for m in app.metric} == {"Improvement", "Grade", "Staining", "Matting"}
    assert not any("not been compared yet" in i.value for i in app.info), [i.value for i in app.info]
    lengths = app.dataframe[0].value["baseline length (mm)"].dropna()
    assert len(lengths) and all(round(v, 1) == v for v in lengths), list(lengths)
