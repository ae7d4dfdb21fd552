"""Old code against new code in the same run: analyze wall/CPU, peak memory, CPU per batch photo.

Run:  .venv/bin/python benchmarks/bench_ab.py --old /path/to/old/src --new /path/to/new/src [--rounds 3]

Each measurement runs in a fresh child process with ``PYTHONPATH`` set to one of the two
source trees; the trees alternate within each round, so both see the same machine load.
Per child:

* ``analyze``: ``veinscope.warmup()``, then ``analyze`` of the 12 MP JPEG of
  ``bench_analyze.py`` (4000x3000, 12 px/mm) three times with the default threads; wall and
  process CPU time (user + system, all threads) of each.
* ``memory``: ``warmup()``, then one ``analyze`` of the same photo; the rise of the peak
  resident set (VmHWM, reset through /proc/self/clear_refs) above the resident size before it.
* ``batch``: one thread (as a ``-j 2`` batch worker), ``warmup()``, then for three photos of
  ``bench_batch.py``: decode, ``analyze`` and encode the four output files
  (``encode_analysis``), CPU time (user + system) per photo; what bounds batch throughput
  (``cores / CPU s per photo``).

Prints the medians per tree and the new/old ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
mode, photo, ppm = sys.argv[1], sys.argv[2], float(sys.argv[3])
if mode == "batch":
    from veinscope.batch import _limit_threads
    _limit_threads(1)
import veinscope
from veinscope.io import load_photo
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
veinscope.warmup()
out = {}
if mode == "analyze":
    ph = load_photo(photo)
    walls, cpus = [], []
    for _ in range(3):
        c, w = cpu(), time.perf_counter()
        veinscope.analyze(ph, px_per_mm=ppm)
        walls.append(time.perf_counter() - w); cpus.append(cpu() - c)
    out = {"wall": walls, "cpu": cpus}
elif mode == "memory":
    ph = load_photo(photo)
    rss0 = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    veinscope.analyze(ph, px_per_mm=ppm)
    out = {"peak_extra_mb": (status("VmHWM") - rss0) / 1024}
else:
    from veinscope._cli_analyze import encode_analysis
    per = []
    for p in photo.split(","):
        data = Path(p).read_bytes()
        c = cpu()
        ph = load_photo(data)
        a = veinscope.analyze(ph, px_per_mm=ppm)
        encode_analysis(a, ph.rgb)
        per.append(cpu() - c)
    out = {"cpu_per_photo": per}
print(json.dumps(out))
"""


def _run(src: str, mode: str, photo: str, ppm: float) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    r = subprocess.run([sys.executable, "-c", _CHILD, mode, photo, str(ppm)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    photo = str(HERE / ".cache" / "synth_12mp_seed11.jpg")
    batch = ",".join(str(HERE / ".cache" / "batch_12mp" / f"leg_{100 + k}.jpg") for k in range(3))
    for p in [photo] + batch.split(","):
        if not Path(p).exists():
            raise SystemExit(f"{p} is missing: run bench_analyze.py and bench_batch.py once first")
    res: dict[str, dict[str, list[float]]] = {t: {} for t in ("old", "new")}
    for rnd in range(args.rounds):
        for tree in ("old", "new"):
            src = args.old if tree == "old" else args.new
            load = os.getloadavg()[0]
            a = _run(src, "analyze", photo, 12.0)
            m = _run(src, "memory", photo, 12.0)
            b = _run(src, "batch", batch, 12.0)
            r = res[tree]
            r.setdefault("analyze wall s", []).extend(a["wall"])
            r.setdefault("analyze CPU s", []).extend(a["cpu"])
            r.setdefault("peak extra MB", []).append(m["peak_extra_mb"])
            r.setdefault("batch CPU s per photo", []).extend(b["cpu_per_photo"])
            print(f"round {rnd + 1} {tree} (load {load:.1f}): analyze wall {[round(x, 2) for x in a['wall']]}, "
                  f"CPU {[round(x, 2) for x in a['cpu']]}, peak extra {m['peak_extra_mb']:.0f} MB, "
                  f"batch CPU/photo {[round(x, 2) for x in b['cpu_per_photo']]}", flush=True)
    print(f"\n{'median':24s} {'old':>8s} {'new':>8s} {'new/old':>8s}")
    for k in res["old"]:
        o, n = statistics.median(res["old"][k]), statistics.median(res["new"][k])
        print(f"{k:24s} {o:8.2f} {n:8.2f} {n / o:8.2f}")
    o, n = statistics.median(res["old"]["batch CPU s per photo"]), statistics.median(res["new"]["batch CPU s per photo"])
    print(f"batch bound on 2 cores: old {2 / o:.2f} photos/s, new {2 / n:.2f} photos/s (2 / CPU s per photo)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
