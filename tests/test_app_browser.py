"""The real app in a real browser: `streamlit run app.py` on a free localhost port, driven by
Playwright with Debian's chromium (never a downloaded browser), on a temporary SQLite store.

Skips with a reason when playwright or /usr/bin/chromium is missing, unless
VEINSCOPE_REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure.
Screenshots go to $VEINSCOPE_SCREENSHOT_DIR (default: the test's temp folder); timings of page
switches and of analysing a 12 MP photo are printed (see BENCHMARKS.md, "The app (issue 8)").

The 12 MP timing is taken on the browser's clock: from the click event on "Import and analyse"
to the load event of the overlay picture (Playwright's own polling is not counted). The server's
step marks (``$VEINSCOPE_APP_TRACE``) split it into the engine and the rest.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from tests._appserver import AppDidNotStart, app_server
from tests.test_app import DEMO, prepared_data_dir, prepared_demo_dir

CHROMIUM = Path(os.environ.get("VEINSCOPE_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("VEINSCOPE_REQUIRE_BROWSER") == "1"
#: Click -> overlay loaded, 12 MP photo, asserted. The issue's target is 3 s; this allows for shared CI machines:
#: on the 2-core development VM the engine alone took 7-9 s at a load average of 9-12 (total 11-11.5 s) and
#: 20 s at 15-18 (total 25 s: fails). Quiet figures in BENCHMARKS.md.
MAX_ANALYSIS_S = 20.0
#: The same minus the engine's own time (decoding, storing, page, overlay, browser), asserted to stay under
#: this many seconds or under APP_SHARE_OF_ENGINE times the engine's time in the same run, whichever is larger
#: (the engine's time stands for the machine's load: 2.2 s quiet, 7-9 s at a load average of 9-12 on 2 cores,
#: where the app's share was 1.5-3.4 s).
MAX_APP_SHARE_S = 1.5
APP_SHARE_OF_ENGINE = 0.5

# Browser-side marks (wall clock, ms): every click and every <img> load event, with its URL.
MARKS_JS = """
window.__vsClicks = []; window.__vsLoads = [];
const __vsNow = () => performance.timeOrigin + performance.now();
document.addEventListener('click', e => window.__vsClicks.push([(e.target.innerText || '').trim(), __vsNow()]), true);
document.addEventListener('load', e => {
  if (e.target && e.target.tagName === 'IMG') window.__vsLoads.push([e.target.currentSrc || e.target.src, __vsNow()]);
}, true);
"""


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if not DEMO.is_dir():
        return "sample_images/demo_patient is missing"
    return None


def _need_browser():
    why = _missing()
    if why is not None:
        if REQUIRED:
            pytest.fail(f"VEINSCOPE_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_browser()
    data = prepared_data_dir(tmp_path_factory.getbasetemp())
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    trace = log.with_name("trace.txt")
    try:
        with app_server(data, log, trace) as url:
            yield url, data, trace
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    d = Path(os.environ.get("VEINSCOPE_SCREENSHOT_DIR") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _photo_12mp(path: Path) -> Path:
    """A 12 MP phone-size JPEG (4000 x 3000) made from a demo photo (the card scales with it)."""
    from PIL import Image

    with Image.open(prepared_demo_dir() / "site_b" / "session1.jpg") as im:
        im.convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS).save(path, quality=92)
    return path


def _wait_idle(page, timeout_ms=120_000):
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms)


def _images_loaded(page, timeout_ms=60_000):
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)", timeout=timeout_ms)


def _shot(page, path):
    _images_loaded(page)
    page.screenshot(path=str(path))


def _trace_marks(trace: Path, since_s: float) -> list[tuple[float, str]]:
    """The server's step marks ``(unix time, step)`` from ``since_s`` on."""
    out = []
    for line in trace.read_text().splitlines() if trace.is_file() else []:
        t, _, step = line.partition(" ")
        if float(t) >= since_s:
            out.append((float(t), step.partition("\t")[0]))
    return out


def _import_timing(page, trace: Path) -> dict[str, float]:
    """Click -> overlay loaded (browser clock) and its parts (server marks), for the last import."""
    clicks = [t for text, t in page.evaluate("() => window.__vsClicks") if text == "Import and analyse"]
    src = page.get_by_test_id("stImage").locator("img").first.evaluate("i => i.currentSrc || i.src")
    t_click = clicks[-1] / 1000
    loads = [t / 1000 for u, t in page.evaluate("() => window.__vsLoads") if u == src and t / 1000 > t_click]
    assert loads, "the overlay picture shown was not loaded after the click"
    marks = _trace_marks(trace, t_click)
    first = {}
    for t, step in marks:
        first.setdefault(step, t)
    last = {step: t for t, step in marks}
    total = loads[0] - t_click
    engine = last["analyze end"] - last["analyze start"]
    return {"total_s": total, "engine_s": engine, "app_share_s": total - engine,
            "click_to_server_s": first["run start"] - t_click,
            "before_engine_s": last["analyze start"] - first["import start"],
            "after_engine_s": last["import end"] - last["analyze end"],
            "page_and_overlay_s": last["overlay shown"] - last["import end"],
            "server_to_loaded_s": loads[0] - last["overlay shown"]}


def _goto_page(page, title: str, heading: str | None = None) -> float:
    t0 = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=heading or title).first.wait_for(timeout=30_000)
    _wait_idle(page)
    return time.perf_counter() - t0


def _choose(page, label: str, option: str):
    box = page.get_by_role("combobox", name=label).first
    if box.input_value() == option:
        return
    box.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    _wait_idle(page)
    assert box.input_value() == option


def test_practitioner_flow_in_a_real_browser(server, browser, shots, tmp_path):
    import pypdfium2 as pdfium

    url, data, trace = server
    ctx = browser.new_context(viewport={"width": 1400, "height": 1500}, accept_downloads=True)
    ctx.add_init_script(MARKS_JS)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # --- open the app: the demo patient is there -------------------------------------
        page.goto(url, timeout=180_000)
        page.get_by_role("heading", name="Patients").first.wait_for(timeout=240_000)
        _wait_idle(page, 240_000)
        page.get_by_role("combobox", name="Patient to open").click()
        options = page.get_by_role("option").all_inner_texts()
        assert "DEMO-0001" in options, options
        page.keyboard.press("Escape")
        _shot(page, shots / "1_patients.png")

        # --- add a patient and upload a 12 MP photo through the real uploader --------------
        page.get_by_role("textbox", name="Pseudonymous code (required)").fill("P-BROWSER")
        page.get_by_role("button", name="Add patient").click()
        page.get_by_text("P-BROWSER added and opened").wait_for(timeout=30_000)
        _goto_page(page, "Session")
        page.get_by_role("textbox", name="New site name").fill("left calf, medial")
        page.keyboard.press("Tab")
        _wait_idle(page)
        photo = _photo_12mp(tmp_path / "phone_12mp.jpg")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(photo))
        page.get_by_text("phone_12mp.jpg").first.wait_for(timeout=60_000)
        _wait_idle(page)
        t0 = time.perf_counter()
        page.get_by_role("button", name="Import and analyse").click()
        page.get_by_text("phone_12mp.jpg: imported").wait_for(timeout=180_000)
        page.get_by_text("vessels coloured by class").first.wait_for(timeout=60_000)
        _images_loaded(page)  # the overlay picture itself is in, not only its caption
        t_playwright = time.perf_counter() - t0  # with Playwright's own checks and polling
        timing = _import_timing(page, trace)
        img = page.get_by_test_id("stImage").locator("img").first
        assert img.evaluate("i => i.naturalWidth") <= 1460  # a display-sized picture, not the 12 MP photo
        _wait_idle(page)
        _shot(page, shots / "2_session_upload.png")

        # a file that is not a photo: a message, never a traceback
        bad = tmp_path / "not_a_photo.jpg"
        bad.write_bytes(b"%PDF-1.4 this is a document, not a photo\n" * 50)
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(bad))
        page.get_by_text("not_a_photo.jpg").first.wait_for(timeout=30_000)
        _wait_idle(page)
        page.get_by_role("button", name="Import and analyse").click()
        alert = page.get_by_test_id("stAlert").filter(has_text="not_a_photo.jpg")
        alert.first.wait_for(timeout=60_000)
        assert "Traceback" not in page.content()
        page.get_by_test_id("stException").wait_for(state="detached", timeout=1000)
        _shot(page, shots / "3_bad_upload.png")

        # --- open the demo patient: session overlay -------------------------------------
        _goto_page(page, "Patients")
        _choose(page, "Patient to open", "DEMO-0001")
        page.get_by_role("button", name="Open patient").click()
        page.get_by_role("heading", name="Session").first.wait_for(timeout=30_000)
        page.get_by_text("vessels coloured by class").first.wait_for(timeout=120_000)
        _wait_idle(page)
        page.get_by_text("Reticular veins").first.wait_for()
        _shot(page, shots / "4_session_overlay.png")

        # --- compare ------------------------------------------------------------------------
        _goto_page(page, "Compare", "Compare two sessions")
        _choose(page, "Treated site", "site a")
        page.get_by_test_id("stMetric").filter(has_text="Improvement").first.wait_for(timeout=60_000)
        metrics = page.get_by_test_id("stMetric").all_inner_texts()
        assert any("Improvement" in m and "%" in m for m in metrics), metrics
        assert any("Staining" in m and "mm²" in m for m in metrics), metrics
        _shot(page, shots / "5_compare.png")
        page.get_by_role("tab", name="Change map").click()
        page.get_by_text("Green: cleared vessels").first.wait_for()
        _shot(page, shots / "6_change_map.png")

        # --- page switches (after warm-up), progress ---------------------------------------
        switch = []
        for title in ("Progress", "Session", "Compare", "Export", "Progress", "Patients", "Progress"):
            switch.append(_goto_page(page, title, "Compare two sessions" if title == "Compare" else None))
        _shot(page, shots / "7_progress.png")

        # --- export: the patient PDF through the download button -------------------------
        _goto_page(page, "Export")
        page.get_by_role("button", name="Make the patient report").click()
        dl_button = page.get_by_role("button", name="Download patient report (PDF)")
        dl_button.wait_for(timeout=60_000)
        with page.expect_download(timeout=60_000) as dl:
            dl_button.click()
        pdf_path = tmp_path / "report.pdf"
        dl.value.save_as(pdf_path)
        doc = pdfium.PdfDocument(str(pdf_path))
        try:
            n_pages = len(doc)
            text = " ".join(" ".join(doc[i].get_textpage().get_text_range().split()) for i in range(n_pages))
            doc[0].render(scale=1.2).to_pil().save(shots / "8_report_page1.png")
            if n_pages > 1:
                doc[n_pages - 1].render(scale=1.2).to_pil().save(shots / "9_report_last.png")
        finally:
            doc.close()
        assert n_pages >= 2
        assert "DEMO-0001" in text and "does not diagnose" in text and "Before (" in text
        assert not errors, errors
    finally:
        ctx.close()
    med = statistics.median(switch)
    parts = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.2f}" for k, v in timing.items() if k != "total_s")
    print(f"\nbrowser: 12 MP photo, click -> overlay loaded {timing['total_s']:.2f} s ({parts}; "
          f"{t_playwright:.2f} s as Playwright sees it); page switch median "
          f"{med:.2f} s (max {max(switch):.2f} s, n={len(switch)}); screenshots in {shots}")
    report = os.environ.get("VEINSCOPE_APP_TIMINGS")
    if report:
        Path(report).write_text("".join(f"analysis_12mp_{k}={v:.3f}\n" for k, v in timing.items())
                                + f"analysis_12mp_playwright_s={t_playwright:.2f}\nswitch_median_s={med:.3f}\n"
                                f"switch_max_s={max(switch):.3f}\nswitch_all_s={[round(s, 3) for s in switch]}\n")
    assert med < 5.0  # generous: the target (<= 1 s) is reported in BENCHMARKS.md, not asserted
    assert timing["total_s"] <= MAX_ANALYSIS_S, timing
    assert timing["app_share_s"] <= max(MAX_APP_SHARE_S, APP_SHARE_OF_ENGINE * timing["engine_s"]), timing


def test_remove_a_photo_in_a_real_browser(server, browser, shots, tmp_path):
    """Session 39: a photo imported by mistake is taken out on the Session page, after a confirmation
    (main has no such action: the expander is not found)."""
    from playwright.sync_api import expect

    from tests.test_app import _small_png
    from veinscope import app_support as sup

    url, data, _ = server
    store = sup.open_app_store(data)
    try:
        if not store.has_patient("P-RMB"):
            store.add_patient("P-RMB")
        cache = sup.DerivedCache.for_store(store)
        for i, name in enumerate(("other_leg.png", "right_leg.png")):
            [out] = sup.import_uploads(store, cache, "P-RMB", "left calf", "2026-01-05", [(name, _small_png(60 + i))],
                                       px_per_mm=8.0)
            assert out.ok, out.message
        cache.flush()
    finally:
        store.close()
    ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url, timeout=180_000)
        page.get_by_role("heading", name="Patients").first.wait_for(timeout=240_000)
        _wait_idle(page, 240_000)
        _choose(page, "Patient to open", "P-RMB")
        page.get_by_role("button", name="Open patient").click()
        page.get_by_role("heading", name="Session").first.wait_for(timeout=30_000)
        page.get_by_text("vessels coloured by class").first.wait_for(timeout=120_000)
        _wait_idle(page)
        assert page.get_by_role("combobox", name="Photo").first.input_value() == "other_leg.png"
        page.get_by_text("Remove this photo from the session").first.click()
        button = page.get_by_role("button", name="Remove photo")
        button.wait_for(timeout=30_000)
        assert button.is_disabled()  # nothing happens before the confirmation
        page.get_by_text("Yes, remove other_leg.png").first.click()
        expect(button).to_be_enabled(timeout=30_000)  # once the page has run again with the tick
        _wait_idle(page)
        button.scroll_into_view_if_needed()
        _shot(page, shots / "10_session_remove_confirm.png")
        button.click()
        page.get_by_text("other_leg.png removed from the session of 2026-01-05").first.wait_for(timeout=60_000)
        _wait_idle(page)
        page.get_by_text("right_leg.png: vessels coloured by class").first.wait_for(timeout=120_000)
        _wait_idle(page)
        page.get_by_text("other_leg.png removed from the session").first.scroll_into_view_if_needed()
        _shot(page, shots / "11_session_removed.png")
        expect(page.get_by_role("combobox", name="Photo").first).to_have_value("right_leg.png", timeout=30_000)
        assert "Traceback" not in page.content()
        assert not errors, errors
    finally:
        ctx.close()
    store = sup.open_app_store(data)
    try:
        assert [p.original_name for p in store.list_photos(code="P-RMB")] == ["right_leg.png"]
    finally:
        store.close()
