"""Start-up with and without Numba's quick start (veinscope._numba_start), paired in one run.

    .venv/bin/python benchmarks/bench_startup_ab.py [--runs 9]

Fresh interpreters alternate between two children: ``import veinscope; veinscope.warmup()``
(Numba started without scipy.linalg's package code) and the same after ``import scipy.linalg``
(what Numba's BLAS check imported before: the old start-up). Wall time from just before the
spawn to the child's ``os._exit`` right after ``warmup()`` returns; medians, and the median of
the per-pair ratios new/old, which is the figure to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

NEW = "import veinscope; veinscope.warmup(); import os; os._exit(0)"
OLD = "import scipy.linalg, veinscope; veinscope.warmup(); import os; os._exit(0)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", NEW], check=True, env=env)  # a warm Numba cache first
    res: dict[str, list[float]] = {"old": [], "new": []}
    load0 = os.getloadavg()
    for _ in range(args.runs):
        for name, code in (("old", OLD), ("new", NEW)):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            res[name].append(time.perf_counter() - t)
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores); {args.runs} pairs")
    for name, label in (("old", "scipy.linalg imported (old start)"), ("new", "quick start (warmup())")):
        v = res[name]
        print(f"{label:34s} median {statistics.median(v):.3f} s  runs " + " ".join(f"{x:.2f}" for x in v))
    print(f"paired ratio new/old: median {statistics.median(b / a for a, b in zip(res['old'], res['new'])):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
