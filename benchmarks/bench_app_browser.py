"""Where the time goes between the click on "Import and analyse" and the overlay in a real browser.

Starts the real app (`streamlit run app.py` on a free localhost port, a temp SQLite store with
the demo patient), drives Debian's chromium with Playwright and uploads ``--runs`` different
12 MP JPEGs (4000 x 3000, made from a demo photo) through the real file uploader. For each run
it prints the steps on one clock (the machine's wall clock, which the browser, Playwright and
the server's trace file share):

    choose file -> upload request done -> upload rerun idle | click -> server run start ->
    import start -> analyze start/end -> import stored/end -> overlay start/shown -> run end ->
    overlay picture requested -> received -> <img> loaded

Server marks come from ``veinscope.app_support.trace`` (``$VEINSCOPE_APP_TRACE``: step names
and times only, no patient data). Browser marks come from the Resource Timing API and an
``load`` listener on the page's images.

    .venv/bin/python benchmarks/bench_app_browser.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Marks the page keeps: every <img> load (wall clock) and the Resource Timing entries.
INIT_JS = """
window.__vsLoads = [];
window.__vsMarks = [];
const __vsNow = () => performance.timeOrigin + performance.now();
document.addEventListener('click', e => window.__vsMarks.push(['click', __vsNow()]), true);
new MutationObserver(muts => {
  for (const m of muts) for (const n of m.addedNodes) {
    if (n.nodeType === 1 && (n.tagName === 'IMG' || n.querySelector && n.querySelector('img'))) {
      window.__vsMarks.push(['img inserted', __vsNow()]);
    }
  }
  for (const m of muts) if (m.type === 'attributes' && m.target.tagName === 'IMG') {
    window.__vsMarks.push(['img src set', __vsNow()]);
  }
}).observe(document, {childList: true, subtree: true, attributes: true, attributeFilter: ['src']});
document.addEventListener('load', e => {
  if (e.target && e.target.tagName === 'IMG') {
    window.__vsLoads.push([e.target.currentSrc || e.target.src, performance.timeOrigin + performance.now()]);
  }
}, true);
"""

STILL_JS = """
document.addEventListener('DOMContentLoaded', () => {
  const s = document.createElement('style');
  s.textContent = 'CSS';
  document.head.appendChild(s);
});
"""

STILL_CSS = {
    "all": "*, *::before, *::after { animation: none !important; transition: none !important; }",
    "transitions": "*, *::before, *::after { transition: none !important; }",
    "status": "[data-testid=stStatusWidgetRunningIcon] { display: none !important; }",
}

RESOURCES_JS = """
() => performance.getEntriesByType('resource').map(r => ({
  name: r.name, start: performance.timeOrigin + r.startTime, end: performance.timeOrigin + r.responseEnd,
  reqStart: performance.timeOrigin + r.requestStart, respStart: performance.timeOrigin + r.responseStart,
  size: r.transferSize || r.encodedBodySize || 0}))
"""


def _photo(path: Path, variant: int) -> Path:
    """A 12 MP JPEG from a demo photo; ``variant`` changes a few pixels so that each upload is new."""
    import numpy as np
    from PIL import Image

    from tests.test_app import prepared_demo_dir

    with Image.open(prepared_demo_dir() / "site_b" / "session1.jpg") as im:
        a = np.asarray(im.convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)).copy()
    a[:4, : 8 + variant] = (variant * 37) % 256
    Image.fromarray(a).save(path, quality=92)
    return path


def _wait_idle(page, timeout_ms=180_000):
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms)


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the browser's processes and by the rest of the
    machine's processes, from /proc (Linux): what competes with the engine for the 2 cores."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"browser": 0.0, "other": 0.0}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1 : st.rindex(")")]
        fields = st[st.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        out["browser" if "chrom" in comm or "headless" in comm else "other"] += cpu
    return out


class _Sampler:
    """The browser's CPU seconds, sampled every 50 ms in a thread: ``stop()`` returns (time, CPU s)."""

    def __init__(self):
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.time(), _cpu_seconds()["browser"]))
            self._stop.wait(0.05)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def _between(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """CPU seconds used between ``t0`` and ``t1`` (the nearest samples inside)."""
    inside = [c for t, c in samples if t0 <= t <= t1]
    return inside[-1] - inside[0] if len(inside) >= 2 else float("nan")


def _read_trace(path: Path, since: float) -> list[tuple[float, str]]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            t, _, ev = line.partition(" ")
            if float(t) >= since:
                ev, _, cpu = ev.partition("\t")
                out.append((float(t), ev, cpu))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--keep", help="data folder to reuse (prepared once with the demo patient)")
    ap.add_argument("--control", action="store_true",
                    help="also time veinscope.analyze of each photo in this process just before its upload "
                         "(the engine outside the app, at the same machine load)")
    ap.add_argument("--still", choices=["all", "transitions", "status"],
                    help="experiment: stop every CSS animation and transition in the page (all), only the "
                         "transitions (the fading of the previous run's elements), or hide the running icon "
                         "(status): how much of the browser's CPU during the analysis is animation")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from tests._appserver import AppDidNotStart, app_server
    from tests.test_app import prepared_data_dir

    tmp = Path(tempfile.mkdtemp(prefix="vs-appbench-"))
    data = prepared_data_dir(Path(args.keep) if args.keep else tmp)

    trace = tmp / "trace.txt"
    totals, engines, controls, cpus, engine_cpu, control_cpu = [], [], [], [], [], []
    browser_in_engine = []
    if args.control:
        import veinscope
        from veinscope.io import load_photo
        from veinscope.pipeline import analyze

        veinscope.warmup(full_size=True)
    try:
        with app_server(data, tmp / "streamlit.log", trace) as url:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=args.chromium, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
                ctx = b.new_context(viewport={"width": 1400, "height": 1500})
                ctx.add_init_script(INIT_JS)
                if args.still:
                    ctx.add_init_script(STILL_JS.replace("CSS", STILL_CSS[args.still]))
                page = ctx.new_page()
                frames = []

                def on_ws(ws):
                    ws.on("framereceived", lambda f: frames.append((time.time(), len(f) if f else 0)))
                    ws.on("framesent", lambda f: frames.append((time.time(), -(len(f) if f else 0))))

                page.on("websocket", on_ws)
                page.goto(url, timeout=240_000)
                page.get_by_role("heading", name="Patients").first.wait_for(timeout=240_000)
                _wait_idle(page, 240_000)
                page.get_by_role("textbox", name="Pseudonymous code (required)").fill("P-BENCH")
                page.get_by_role("button", name="Add patient").click()
                page.get_by_text("P-BENCH added and opened").wait_for(timeout=30_000)
                page.get_by_test_id("stSidebarNav").get_by_text("Session", exact=True).click()
                page.get_by_role("heading", name="Session").first.wait_for(timeout=30_000)
                _wait_idle(page)
                for run in range(args.runs):
                    if run:  # open the add-photos panel again (it starts closed once the site has sessions)
                        toggle = page.get_by_text("Add photos to a session", exact=True)
                        if not page.get_by_test_id("stFileUploaderDropzoneInput").count():
                            toggle.click()
                            _wait_idle(page)
                        _wait_idle(page)
                    else:
                        page.get_by_role("textbox", name="New site name").fill("left calf, medial")
                        page.keyboard.press("Tab")
                        _wait_idle(page)
                    photo = _photo(tmp / f"phone_12mp_{run}.jpg", run)
                    if args.control:
                        ph = load_photo(photo.read_bytes())
                        tc, cc = time.perf_counter(), os.times()
                        analyze(ph)
                        controls.append(time.perf_counter() - tc)
                        cc1 = os.times()
                        control_cpu.append((cc1.user - cc.user, cc1.system - cc.system))
                        del ph
                    up = page.get_by_test_id("stFileUploaderDropzoneInput")
                    # drop earlier files from the uploader
                    for btn in page.get_by_test_id("stFileUploaderDeleteBtn").locator("button").all():
                        btn.click()
                        _wait_idle(page)
                    t_choose = time.time()
                    with page.expect_request_finished(lambda r: "upload_file" in r.url and r.method == "PUT",
                                                      timeout=120_000) as rq:
                        up.set_input_files(str(photo))
                    t_uploaded = time.time()
                    page.get_by_text(photo.name).first.wait_for(timeout=60_000)
                    _wait_idle(page)
                    t_idle = time.time()
                    page.evaluate("() => { window.__vsLoads = []; window.__vsMarks = []; "
                                  "performance.clearResourceTimings(); }")
                    frames.clear()
                    sampler = _Sampler()
                    cpu0 = _cpu_seconds()
                    t0 = time.time()
                    page.get_by_role("button", name="Import and analyse").click()
                    page.get_by_text(f"{photo.name}: imported").wait_for(timeout=180_000)
                    page.get_by_text("vessels coloured by class").first.wait_for(timeout=60_000)
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
                        ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
                    t_done = time.time()
                    cpu1 = _cpu_seconds()
                    samples = sampler.stop()
                    cpus.append({k: cpu1[k] - cpu0[k] for k in cpu0})
                    _wait_idle(page)
                    time.sleep(0.5)
                    loads = page.evaluate("() => window.__vsLoads")
                    bmarks = page.evaluate("() => window.__vsMarks")
                    res = [r for r in page.evaluate(RESOURCES_JS) if "/media/" in r["name"]]
                    marks = _read_trace(trace, t0 - 0.01)
                    totals.append(t_done - t0)
                    se = ([(t, c) for t, ev, c in marks if ev == "analyze start"],
                          [(t, c) for t, ev, c in marks if ev == "analyze end"])
                    if se[0] and se[1]:
                        (ta, ca), (tb, cb) = se[0][-1], se[1][-1]
                        engines.append(tb - ta)
                        browser_in_engine.append(_between(samples, ta, tb))
                        if ca and cb:  # process and thread CPU seconds at each mark
                            c0, c1 = [float(x) for x in ca.split()], [float(x) for x in cb.split()]
                            engine_cpu.append(tuple(y - x for x, y in zip(c0, c1)))
                    print(f"\nrun {run + 1}: file {photo.stat().st_size / 1e6:.1f} MB; choose -> upload done "
                          f"{t_uploaded - t_choose:.2f} s (request {rq.value.timing['responseEnd']:.0f} ms), "
                          f"-> idle {t_idle - t_choose:.2f} s")
                    events = [(0.0, "test: click")]
                    events += [(t - t0, f"server: {ev}") for t, ev, _ in marks]
                    for r in res:
                        events.append((r["start"] / 1000 - t0, f"browser: media requested ({r['size'] / 1e3:.0f} kB)"))
                        events.append((r["respStart"] / 1000 - t0, "browser: media response start"))
                        events.append((r["end"] / 1000 - t0, "browser: media response end"))
                    events += [(t / 1000 - t0, f"browser: {ev}") for ev, t in bmarks]
                    events += [(t - t0, f"websocket {'received' if n >= 0 else 'sent'} {abs(n)} bytes") for t, n in frames]
                    events += [(t / 1000 - t0, "browser: img load event") for _, t in loads]
                    for t, ev in sorted(events):
                        print(f"  {t:7.3f} {ev}")
                    print(f"  {t_done - t0:7.3f} test sees all images complete")
                    print(f"  CPU seconds from click to overlay: browser {cpus[-1]['browser']:.2f}, "
                          f"all other processes (app server, this script, other work) {cpus[-1]['other']:.2f}")
                b.close()
    except AppDidNotStart as exc:
        raise SystemExit(str(exc)) from None
    print(f"\nclick -> overlay loaded (as Playwright sees it): {[round(t, 2) for t in totals]}, "
          f"median {statistics.median(totals):.2f} s")
    print(f"engine in the app server: {[round(t, 2) for t in engines]}")
    print(f"  its CPU s (server process user, system / the script's thread) and page faults: "
          f"{[tuple(round(x, 2) for x in c) for c in engine_cpu]}")
    print(f"browser CPU s from click to overlay: {[round(c['browser'], 2) for c in cpus]}")
    print(f"  of it while the server's engine ran: {[round(c, 2) for c in browser_in_engine]}")
    if controls:
        print(f"engine in this process just before: {[round(t, 2) for t in controls]}")
        print(f"  its CPU s (user, system): {[tuple(round(x, 2) for x in c) for c in control_cpu]}")
    print(f"(server log: {tmp / 'streamlit.log'}, trace: {trace})")


if __name__ == "__main__":
    main()
