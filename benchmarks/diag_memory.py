"""Where an analysis's peak memory is reached (issue 3: peak extra memory <= 400 MB).

Runs ``--runs`` fresh processes, each as ``bench_analyze.py``'s memory figure does (warmup(),
load the 12 MP photo, then one analysis with the peak resident set reset), and prints, in each,
the peak resident set above the start (VmHWM, MB) after each pipeline stage and before and after
each ridge-filter kernel (``kernel<peak/resident >peak``). A diagnosis, not a figure: the figure
is ``bench_analyze.py``'s.

    .venv/bin/python benchmarks/diag_memory.py --runs 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench_analyze as b
import veinscope
import veinscope.diameter as dm
import veinscope.extend as ex
import veinscope.intake as it
import veinscope.pipeline as pl
import veinscope.vesselness as vs

def kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

out = []
rss0 = None

def mb(field):
    return (kb(field) - rss0) / 1024

def wrap(mod, name):
    f = getattr(mod, name)
    def g(*a, **k):
        r = f(*a, **k)
        if rss0 is not None:
            out.append(f"{name}:{mb('VmHWM'):.0f}")
        return r
    setattr(mod, name, g)

for mod, name in [(it, "prepare"), (pl, "fill_vessel_gaps"), (pl, "skin_optics"), (vs, "ridge_response"),
                  (pl, "detect_vessels"), (ex, "extend_ends"), (dm, "profile_diameters"),
                  (dm, "half_max_widths"), (pl, "measure_vessels")]:
    wrap(mod, name)
run = vs._run
def run_logged(kernel, parallel, first, *a):
    if rss0 is not None:
        out.append(f"  {kernel}<{mb('VmHWM'):.0f}/{mb('VmRSS'):.0f}")
    r = run(kernel, parallel, first, *a)
    if rss0 is not None:
        out.append(f">{mb('VmHWM'):.0f}")
    return r
vs._run = run_logged
path, ppm = b._photo(None)
veinscope.warmup()
photo = veinscope.load_photo(path)
rss0 = kb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
veinscope.analyze(photo, px_per_mm=ppm)
out.append(f"end:{mb('VmHWM'):.0f}")
print(" ".join(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for _ in range(args.runs):
        r = subprocess.run([sys.executable, "-c", _CHILD, str(HERE)], capture_output=True, text=True, check=True)
        print(r.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
