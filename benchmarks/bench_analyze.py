"""Speed and memory of ``veinscope.analyze`` on a 12 MP JPEG, and process start to first result.

Run:  .venv/bin/python benchmarks/bench_analyze.py [--runs 5] [--photo PATH]
      .venv/bin/python benchmarks/bench_analyze.py --stages [--runs 3]
      .venv/bin/python benchmarks/bench_analyze.py --startup [--runs 7] [--photo PATH]

``--stages`` instead prints, per pipeline stage, the median CPU time (all threads) and wall
time over the runs, and the stage's traced peak of Python/numpy allocations (tracemalloc, one
extra run): figures that a loaded machine distorts much less than wall-clock totals.

Without --photo, a 4000x3000 synthetic leg photo (veinscope.synth, seed 11, 12 px/mm) is
generated once into benchmarks/.cache/ and used. Prints medians of the runs; the peak extra
memory is the rise of the peak resident set (VmHWM, reset through /proc/self/clear_refs)
during one analysis in a fresh process, above its resident size after ``warmup()`` and loading
the photo (``warmup()`` lets a process keep freed memory for the next analysis,
``veinscope._memory``, so the resident size of a process after earlier runs says little).

``--startup`` measures process start to first result in fresh subprocesses with a warm Numba
cache (checked: a priming run must load every kernel from the cache and compile nothing):
``python -c "import veinscope; veinscope.warmup()"`` (the issue's figure: from just before the
process is spawned to ``warmup()`` returning, and to the process's exit), the same start-up
split into phases, and ``veinscope analyze PHOTO --out DIR`` from start to exit (default photo
``sample_images/demo_leg.jpg``), also through ``main(argv)`` called directly, which leaves out
the command line's ``gc.freeze`` at exit (``cli._fast_exit``): the same command with the
interpreter's exit-time collections. The cases alternate within each run, so they share the load;
medians of ``--runs`` runs, the child processes' CPU time (user + system) beside the wall time,
and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


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


_CHILD_MEMORY = r"""
import sys
from pathlib import Path
import veinscope
def kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
veinscope.warmup()
photo = veinscope.load_photo(sys.argv[1])
ppm = None if sys.argv[2] == "none" else float(sys.argv[2])
import json
kw = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
rss0 = kb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
veinscope.analyze(photo, px_per_mm=ppm, **kw)
print((kb("VmHWM") - rss0) / 1024)
"""


def _peak_extra_fresh(path, ppm, kw=None) -> float:
    """Rise of the peak resident set (VmHWM, reset through /proc/self/clear_refs) during one
    analysis in a new process, above its resident size after ``warmup()`` and loading the photo."""
    r = subprocess.run([sys.executable, "-c", _CHILD_MEMORY, str(path), "none" if ppm is None else str(ppm),
                        json.dumps(kw or {})],
                       capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--photo", default=None)
    ap.add_argument("--px-per-mm", type=float, default=None)
    ap.add_argument("--stages", action="store_true", help="CPU, wall and traced memory per pipeline stage")
    ap.add_argument("--startup", action="store_true", help="process start to first result in fresh subprocesses")
    ap.add_argument("--set", action="append", default=[], help="analyze keyword=value override (timing and memory runs)")
    args = ap.parse_args()
    from bench_synth_accuracy import analyze_options

    kw = analyze_options(args.set)
    if args.startup:
        return _startup(args.runs, args.photo)
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
        a = veinscope.analyze(ph, px_per_mm=ppm, **kw)
        times.append(time.perf_counter() - t)
    print(f"load_photo (JPEG decode): median {statistics.median(load_times):.3f} s")
    print(f"analyze (warm): median {statistics.median(times):.3f} s  runs {[round(x, 3) for x in times]}")
    print(f"  {a.classes['total'].segments} segments, coverage {a.classes['total'].coverage_pct:.2f} %")
    # in a fresh process: warmup() lets a process keep freed memory for reuse
    # (veinscope._memory), so after earlier runs its resident size says little
    peak_mb = _peak_extra_fresh(path, ppm, kw)
    print(f"peak extra memory during analyze (fresh process, above its size after warmup()): {peak_mb:.0f} MB")
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import veinscope; veinscope.warmup()"], check=True)
        starts.append(time.perf_counter() - t)
    print(f"process start -> warmup() done (warm Numba cache): median {statistics.median(starts):.2f} s  runs {[round(x, 2) for x in starts]}")
    return 0


# --------------------------------------------------------------------------------------
# process start to first result
# --------------------------------------------------------------------------------------
ROOT = HERE.parent

# The figure, with the time at which warmup() returned printed last, and the main
# thread's CPU time until then (since the process started): what a busy machine stretches
# least, so the figure to compare between runs under different loads.
_CHILD_WARMUP = "import veinscope; veinscope.warmup(); import time; print(time.time(), time.thread_time())"

# The same start-up in phases (seconds from the first line of the child, which runs after the
# interpreter's own start-up). "numba_first_use" is what loading the first cached kernel sets
# off inside Numba: its lowering registries are imported (numba.np.arraymath checks for BLAS by
# importing scipy.linalg.cython_blas) and the NRT module is built; it is triggered here on its own
# by veinscope._numba_start.start_numba, as warmup() does (without scipy.linalg's package code).
_CHILD_PHASES = r"""
import json, time
def now():
    return time.perf_counter(), time.thread_time()
t0 = now()
import veinscope.pipeline
t1 = now()
t2 = now()
from veinscope._numba_start import start_numba
quick = start_numba()
t3 = now()
from numba.core import event
with event.install_recorder("numba:compile") as rec:
    veinscope.pipeline.warmup()
t4 = now()
veinscope.pipeline.warmup()
t5 = now()
import sys
from numba.core.dispatcher import Dispatcher
hits = misses = kernels = 0
for name, mod in list(sys.modules.items()):
    if name.startswith("veinscope._kernels.") and mod is not None:
        for obj in vars(mod).values():
            if isinstance(obj, Dispatcher):
                st = obj.stats
                hits += sum(st.cache_hits.values())
                misses += sum(st.cache_misses.values())
                kernels += bool(obj.overloads)
def d(a, b):
    return [b[0] - a[0], b[1] - a[1]]
print(json.dumps({
    "interpreter_cpu": t0[1],
    "imports": d(t0, t1),
    "quick_start": quick, "scipy_linalg_imported": "scipy.linalg" in sys.modules,
    "numba_first_use": d(t2, t3),
    "kernel_loads": [x - y for x, y in zip(d(t3, t4), d(t4, t5))],
    "tiny_analysis": d(t4, t5),
    "compiled": sum(1 for _, e in rec.buffer if e.is_start),
    "cache_hits": hits, "cache_misses": misses, "kernels": kernels,
}))
"""


# Children import from byte-code caches as a user's Python does: an environment that forbids
# writing them (PYTHONDONTWRITEBYTECODE, set in some sandboxes) would make every child compile
# VeinScope's modules from source again (0.17 s of CPU).
_CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _spawn(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run ``cmd``; returns (wall from just before the spawn to exit, CPU seconds of the child
    (user + system), the spawn time (time.time()), stdout)."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_spawn = time.time()
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_CHILD_ENV)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, t_spawn, r.stdout


def _phases_once() -> dict:
    import json

    _, _, _, out = _spawn([sys.executable, "-c", _CHILD_PHASES])
    return json.loads(out.strip().splitlines()[-1])


def _startup(runs: int, photo: str | None) -> int:
    import tempfile

    photo_path = Path(photo) if photo else ROOT / "sample_images" / "demo_leg.jpg"
    load0 = os.getloadavg()
    # a warm cache first: the priming run may compile; the measured runs must not
    for attempt in range(3):
        ph = _phases_once()
        if ph["compiled"] == 0 and ph["cache_misses"] == 0:
            break
        print(f"priming run {attempt + 1}: {ph['compiled']} compilations (cold or stale cache), again")
    else:
        print("the Numba cache does not stay warm (kernels being edited?); figures below include compilation")
    print(f"warm Numba cache: {ph['kernels']} kernels loaded from it by warmup(), {ph['compiled']} compiled")
    py = [sys.executable]
    res: dict[str, list] = {"pass": [], "warmup": [], "cli": [], "cli_no_freeze": [], "phases": []}
    no_freeze = py + ["-c", "import sys; from veinscope.cli import main; sys.exit(main(sys.argv[1:]))"]
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(runs):
            res["pass"].append(_spawn(py + ["-c", "pass"])[:2])
            wall, cpu, t_spawn, out = _spawn(py + ["-c", _CHILD_WARMUP])
            t_result, main_cpu = (float(x) for x in out.split()[-2:])
            res["warmup"].append((t_result - t_spawn, wall, cpu, main_cpu))
            res["phases"].append(_phases_once())
            res["cli"].append(_spawn(py + ["-m", "veinscope", "analyze", str(photo_path), "--out", f"{tmp}/out{k}"])[:2])
            res["cli_no_freeze"].append(_spawn(no_freeze + ["analyze", str(photo_path), "--out", f"{tmp}/nf{k}"])[:2])
    load1 = os.getloadavg()
    med = statistics.median

    def fmt(xs):
        return "[" + ", ".join(f"{x:.2f}" for x in xs) + "]"

    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} "
          f"({os.cpu_count()} cores); medians of {runs} fresh processes per case")
    p = res["pass"]
    print(f"python -c pass (interpreter start and exit)      wall {med(x[0] for x in p):.3f} s  cpu {med(x[1] for x in p):.3f} s")
    w = res["warmup"]
    print('python -c "import veinscope; veinscope.warmup()"')
    print(f"  start -> warmup() returned                     wall {med(x[0] for x in w):.3f} s  (min {min(x[0] for x in w):.3f})  runs {fmt(x[0] for x in w)}")
    print(f"    main thread's CPU time until then            {med(x[3] for x in w):.3f} s  runs {fmt(x[3] for x in w)}")
    print(f"  start -> process exit                          wall {med(x[1] for x in w):.3f} s  cpu {med(x[2] for x in w):.3f} s  runs {fmt(x[1] for x in w)}")
    ph = res["phases"]
    print("  phases (a separate child, medians; wall / main thread's CPU):")
    print(f"    {'interpreter start (CPU)':52s}         {med(x['interpreter_cpu'] for x in ph):.3f} s")
    for key, label in (("imports", "import veinscope.pipeline (numpy, numba, cv2, PIL)"),
                       ("numba_first_use", "Numba's first use (start_numba: registries, NRT)"),
                       ("kernel_loads", "loading the kernels from the cache, first calls"),
                       ("tiny_analysis", "the tiny analysis itself (96 x 96 px)")):
        print(f"    {label:52s} {med(x[key][0] for x in ph):.3f} / {med(x[key][1] for x in ph):.3f} s")
    print(f"    kernels loaded by warmup(): {ph[0]['kernels']}, compiled: {max(x['compiled'] for x in ph)}")
    print(f"    Numba started without scipy.linalg's package code: {all(x['quick_start'] for x in ph)}; "
          f"scipy.linalg imported by the end: {any(x['scipy_linalg_imported'] for x in ph)}")
    stale = [k + 1 for k, x in enumerate(ph) if x["compiled"]]
    if stale:
        print(f"  WARNING: Numba compiled in run(s) {stale} (a kernel's source changed during the benchmark): "
              "those runs include compilation; run again")
    c = res["cli"]
    print(f"veinscope analyze {photo_path.name} --out DIR")
    print(f"  start -> process exit                          wall {med(x[0] for x in c):.3f} s  cpu {med(x[1] for x in c):.3f} s  runs {fmt(x[0] for x in c)}")
    c = res["cli_no_freeze"]
    print(f"  the same without gc.freeze at exit             wall {med(x[0] for x in c):.3f} s  cpu {med(x[1] for x in c):.3f} s  runs {fmt(x[0] for x in c)}")
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
