"""Throughput of ``veinscope batch`` on 12 MP photos: photos per second end to end.

Run:  .venv/bin/python benchmarks/bench_batch.py [--photos 8] [--jobs 1 2] [--runs 3]
      .venv/bin/python benchmarks/bench_batch.py --stages [--photos 4] [--threads 1]

Generates ``--photos`` 4032x3024 leg photos (``veinscope.synth``, seeds 100.., 12 px/mm, JPEG
q92) once into benchmarks/.cache/batch_12mp/, then, for each ``--jobs`` value and each run,
analyses them all into a fresh output folder with :func:`veinscope.batch.run_batch` (the same
code as the command) and prints the wall time (including starting and warming up the worker
processes), photos/s, and the median seconds per photo inside a worker. Medians over the runs;
the configurations alternate within each run so that they see the same machine load.

``--stages`` instead times, in this process limited to ``--threads`` threads as a ``-j 2``
worker is (``veinscope.batch._limit_threads``), each stage of one photo's work in a worker
(reading, decoding, the engine, each output file), as wall and CPU time (``time.process_time``:
on a shared machine the CPU time is what the photo costs, the wall time depends on the load).
The CPU seconds per photo bound the throughput: ``cores / cpu_s_per_photo`` photos/s at best.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _photos(n: int) -> list[Path]:
    cache = HERE / ".cache" / "batch_12mp"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = cache / f"leg_{100 + k}.jpg"
        if not path.exists():
            from PIL import Image

            from veinscope.synth import generate_photo

            t = time.perf_counter()
            ph = generate_photo(seed=100 + k, size=(4032, 3024), px_per_mm=12.0, jpeg_quality=None)
            Image.fromarray(ph.rgb).save(path, quality=92)
            print(f"generated {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
        out.append(path)
    return out


def _stages(photos: list[Path], threads: int, px_per_mm: float) -> None:
    from veinscope.batch import _limit_threads

    _limit_threads(threads)  # before the heavy imports, as in a worker
    import json

    import numpy as np

    from veinscope._cli_analyze import _tiff_float32
    from veinscope.io import load_photo
    from veinscope.pipeline import analyze, warmup
    from veinscope.report.overlay import encode_png as _png
    from veinscope.report.overlay import render_overlay

    warmup(full_size=True)
    stages: dict[str, list[tuple[float, float]]] = {}

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        r = fn()
        stages.setdefault(name, []).append((time.perf_counter() - w, time.process_time() - c))
        return r

    for path in photos:
        data = timed("read file", path.read_bytes)
        photo = timed("decode (load_photo)", lambda: load_photo(data))
        a = timed("analyze (engine)", lambda: analyze(photo, px_per_mm=px_per_mm))
        timed("analysis.json", lambda: json.dumps(a.to_dict(), indent=2).encode())
        timed("labels.png", lambda: _png(np.asarray(a.labels, dtype=np.uint8)))
        timed("diameter_mm.tif", lambda: _tiff_float32(a.diameter_mm))
        ov = timed("render_overlay", lambda: render_overlay(photo.rgb, a))
        timed("overlay.png", lambda: _png(ov))
        print(f"{path.name}: " + ", ".join(f"{k} {v[-1][1]:.2f}" for k, v in stages.items()) + " (CPU s)", flush=True)
    print(f"\nmedian per photo over {len(photos)} photos, {threads} thread(s); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'stage':24s} {'wall s':>8s} {'CPU s':>8s}")
    tot_w = tot_c = 0.0
    for k, v in stages.items():
        w, c = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
        tot_w, tot_c = tot_w + w, tot_c + c
        print(f"{k:24s} {w:8.3f} {c:8.3f}")
    print(f"{'sum of medians':24s} {tot_w:8.3f} {tot_c:8.3f}")
    print(f"-> at most {(os.cpu_count() or 1) / tot_c:.2f} photos/s on {os.cpu_count()} cores at this CPU cost")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--px-per-mm", type=float, default=12.0)
    ap.add_argument("--stages", action="store_true", help="time each stage of a worker's photo instead")
    ap.add_argument("--threads", type=int, default=1, help="threads for --stages (a -j 2 worker has 1)")
    args = ap.parse_args()
    if args.stages:
        _stages(_photos(args.photos), args.threads, args.px_per_mm)
        return 0
    from veinscope.batch import read_manifest, run_batch

    photos = _photos(args.photos)
    print(f"{len(photos)} photos of 4032x3024 px; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    rates: dict[int, list[float]] = {j: [] for j in args.jobs}
    walls: dict[int, list[float]] = {j: [] for j in args.jobs}
    per_photo: dict[int, list[float]] = {j: [] for j in args.jobs}
    for run in range(args.runs):
        for jobs in args.jobs:
            out = Path(tempfile.mkdtemp(prefix="veinscope-bench-batch-"))
            try:
                rep = run_batch(photos, out, jobs=jobs, px_per_mm=args.px_per_mm)
                assert rep.counts["done"] == len(photos), rep.counts
                secs = [r["seconds"] for r in read_manifest(out).values()]
            finally:
                shutil.rmtree(out, ignore_errors=True)
            rates[jobs].append(rep.photos_per_s)
            walls[jobs].append(rep.seconds)
            per_photo[jobs].extend(secs)
            print(f"run {run + 1} -j {jobs}: {rep.seconds:.1f} s, {rep.photos_per_s:.3f} photos/s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    for jobs in args.jobs:
        print(f"-j {jobs}: median {statistics.median(rates[jobs]):.3f} photos/s, wall median "
              f"{statistics.median(walls[jobs]):.1f} s for {len(photos)} photos, "
              f"{statistics.median(per_photo[jobs]):.2f} s per photo in a worker (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
