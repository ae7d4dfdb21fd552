"""Old code against new code: a batch worker's CPU per 12 MP photo, measured in pairs.

Run:  .venv/bin/python benchmarks/bench_worker_ab.py OLD/src NEW/src PASSES PHOTO [PHOTO ...]

Two long-lived worker processes, one per source tree, each limited to one thread and warmed up
as a ``-j 2`` batch worker is (``veinscope.batch._limit_threads(1)``, ``warmup()``), take turns
photo by photo (the order alternates), so that each pair of figures sees the same machine
load. Each figure is the process CPU time (user + system) of
:func:`veinscope.batch.analyse_bytes` on the photo at 12 px/mm: decoding, the engine and the
four output files encoded in memory, everything a worker does for a photo. Prints per photo the
medians over the passes, the median of the paired new/old ratios with its quartiles, and
``2 / CPU s`` (the throughput bound on 2 cores). On a shared machine the paired ratio is the
figure to read; the CPU seconds themselves rise with the load (caches, memory bandwidth).
Photos: ``benchmarks/.cache/batch_12mp/leg_1*.jpg`` (made by ``bench_batch.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, resource, sys
from pathlib import Path
from veinscope.batch import _limit_threads, analyse_bytes
_limit_threads(1)
from veinscope.pipeline import warmup
warmup()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
print("ready", flush=True)
for line in sys.stdin:
    p = line.strip()
    data = Path(p).read_bytes()
    c = cpu()
    r = analyse_bytes(data, Path(p).stem, px_per_mm=12.0)
    c = cpu() - c
    assert r["ok"], r.get("error")
    print(json.dumps({"cpu": c}), flush=True)
"""


def main() -> int:
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    old, new, passes, photos = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    procs = {
        tag: subprocess.Popen([sys.executable, "-c", _CHILD], env=dict(os.environ, PYTHONPATH=src),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for tag, src in (("old", old), ("new", new))
    }  # fmt: skip
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"

    def run(tag: str, photo: str) -> float:
        procs[tag].stdin.write(photo + "\n")
        procs[tag].stdin.flush()
        return json.loads(procs[tag].stdout.readline())["cpu"]

    for t in procs:  # one untimed photo each (kernel signatures warmup() does not load)
        run(t, photos[0])
    res: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    loads = []
    k = 0
    for _ in range(passes):
        for ph in photos:
            for t in (("old", "new") if k % 2 == 0 else ("new", "old")):
                res[t].setdefault(ph, []).append(run(t, ph))
            k += 1
            loads.append(os.getloadavg()[0])
    for p in procs.values():
        p.stdin.close()
        p.wait()
    ratios = []
    print(f"{'photo':14s} {'old CPU s':>10s} {'new CPU s':>10s} {'new/old':>8s}   (median of {passes} passes)")
    for ph in photos:
        o, n = statistics.median(res["old"][ph]), statistics.median(res["new"][ph])
        ratios.extend(b / a for a, b in zip(res["old"][ph], res["new"][ph]))
        print(f"{os.path.basename(ph):14s} {o:10.3f} {n:10.3f} {n / o:8.3f}")
    ao = statistics.median(x for v in res["old"].values() for x in v)
    an = statistics.median(x for v in res["new"].values() for x in v)
    q = statistics.quantiles(ratios, n=4)
    print(f"all photos: median CPU per photo old {ao:.3f} s, new {an:.3f} s; median of paired ratios new/old "
          f"{statistics.median(ratios):.3f} (n={len(ratios)}, quartiles {q[0]:.3f}-{q[2]:.3f})")
    print(f"bound on 2 cores: old {2 / ao:.2f}, new {2 / an:.2f} photos/s; load average during the run "
          f"{min(loads):.1f}-{max(loads):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
