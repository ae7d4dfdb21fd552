"""Speed and memory of ``veinscope.analyze`` on a 12 MP JPEG, and process start to first result.

Run:  .venv/bin/python benchmarks/bench_analyze.py [--runs 5] [--photo PATH]
      .venv/bin/python benchmarks/bench_analyze.py --stages [--runs 3]

``--stages`` instead prints, per pipeline stage, the median CPU time (all threads) and wall
time over the runs, and the stage's traced peak of Python/numpy allocations (tracemalloc, one
extra run): figures that a loaded machine distorts much less than wall-clock totals.

Without --photo, a 4000x3000 synthetic leg photo (veinscope.synth, seed 11, 12 px/mm) is
generated once into benchmarks/.cache/ and used. Prints medians of the runs; the peak extra
memory is the rise of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs) during one analysis, above the resident size before it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _photo(path: str | None) -> tuple[Path, float | None]:
    if path:
        return Path(path), None
    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    out = cache / "synth_12mp_seed11.jpg"
    ppm = 12.0
    if not out.exists():
        from veinscope.synth import generate_photo

        ph = generate_photo(seed=11, size=(4000, 3000), px_per_mm=ppm, jpeg_quality=90)
        from PIL import Image

        Image.fromarray(ph.rgb).save(out, quality=92)
    return out, ppm


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--photo", default=None)
    ap.add_argument("--px-per-mm", type=float, default=None)
    ap.add_argument("--stages", action="store_true", help="CPU, wall and traced memory per pipeline stage")
    args = ap.parse_args()
    import veinscope

    path, ppm = _photo(args.photo)
    ppm = args.px_per_mm or ppm
    t = time.perf_counter()
    veinscope.warmup()
    print(f"warmup in this process: {time.perf_counter() - t:.2f} s")
    photo = veinscope.load_photo(path)
    if args.stages:
        return _stages(photo, ppm, args.runs)
    print(f"photo: {path.name} {photo.rgb.shape[1]}x{photo.rgb.shape[0]} px_per_mm={ppm}")
    times, load_times = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        ph = veinscope.load_photo(path)
        load_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        a = veinscope.analyze(ph, px_per_mm=ppm)
        times.append(time.perf_counter() - t)
    print(f"load_photo (JPEG decode): median {statistics.median(load_times):.3f} s")
    print(f"analyze (warm): median {statistics.median(times):.3f} s  runs {[round(x, 3) for x in times]}")
    print(f"  {a.classes['total'].segments} segments, coverage {a.classes['total'].coverage_pct:.2f} %")
    rss0 = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    veinscope.analyze(photo, px_per_mm=ppm)
    peak = _status_kb("VmHWM")
    print(f"peak extra memory during analyze: {(peak - rss0) / 1024:.0f} MB")
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import veinscope; veinscope.warmup()"], check=True)
        starts.append(time.perf_counter() - t)
    print(f"process start -> warmup() done (warm Numba cache): median {statistics.median(starts):.2f} s  runs {[round(x, 2) for x in starts]}")
    return 0


def _stages(photo, ppm, runs: int) -> int:
    import tracemalloc

    import numpy as np

    import veinscope
    import veinscope.diameter
    import veinscope.intake
    import veinscope.vesselness
    from veinscope import pipeline

    rec: dict[str, list] = {}
    trace = {"on": False}

    def wrap(mod, name):
        f = getattr(mod, name)

        def g(*a, **k):
            if trace["on"]:
                cur0, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            c0, w0 = time.process_time(), time.perf_counter()
            r = f(*a, **k)
            c1, w1 = time.process_time(), time.perf_counter()
            if trace["on"]:
                _, peak = tracemalloc.get_traced_memory()
                rec.setdefault(name + "#mem", []).append((peak - cur0, peak))
            else:
                rec.setdefault(name, []).append((c1 - c0, w1 - w0))
            return r

        setattr(mod, name, g)

    wrap(veinscope.intake, "prepare")
    wrap(veinscope.vesselness, "ridge_response")
    wrap(veinscope.diameter, "profile_diameters")
    for name in ("skin_mask", "skin_optics", "detect_vessels", "measure_vessels", "class_figures"):
        wrap(pipeline, name)
    total = []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        veinscope.analyze(photo, px_per_mm=ppm)
        total.append((time.process_time() - c0, time.perf_counter() - w0))
    trace["on"] = True
    tracemalloc.start()
    veinscope.analyze(photo, px_per_mm=ppm)
    tracemalloc.stop()
    print(f"{'stage':20s} {'CPU s':>7s} {'wall s':>7s} {'traced peak MB (above start / absolute)':>42s}")
    for name in ("prepare", "skin_mask", "skin_optics", "ridge_response", "detect_vessels", "profile_diameters",
                 "measure_vessels", "class_figures"):
        if name not in rec:
            continue
        v = np.array(rec[name])
        m = rec.get(name + "#mem", [(0, 0)])[0]
        print(f"{name:20s} {np.median(v[:, 0]):7.2f} {np.median(v[:, 1]):7.2f} {m[0] / 1e6:20.0f} / {m[1] / 1e6:.0f}")
    v = np.array(total)
    print(f"{'analyze (total)':20s} {np.median(v[:, 0]):7.2f} {np.median(v[:, 1]):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
