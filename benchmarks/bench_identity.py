"""Do two source trees give the same analyses, to the bit? (a speed change must not move a result)

Run:  .venv/bin/python benchmarks/bench_identity.py TREE_A TREE_B [--legs DIR] [--out DIR]

Each tree's ``src`` is run in its own process (``PYTHONPATH=TREE/src``) on the same photos:
the 12 MP benchmark photo of ``bench_analyze.py`` (``benchmarks/.cache/synth_12mp_seed11.jpg``,
12 px/mm), every photo under ``sample_images/`` (scale from the card where there is one), set A
photos 409 and 420 (``bench_synth_accuracy.set_a_photo``, 1600x1200: chains whose colour
changes along them, the colour split's own cases) and, with ``--legs``, real leg photos
(default ``veins_01.jpg veins_04.jpg veins_06.jpg`` from the folder given; they are read, never
copied). Per photo it records the label map, the diameter map, the skin mask and the result's
JSON (``Analysis.to_dict()`` without ``parameters.seconds``, the one timing in it, serialised
with every float at full precision) and then compares the two trees' records byte for byte.
Prints one line per photo and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CHILD = r"""
import hashlib, json, sys
from pathlib import Path
import numpy as np
import veinscope
sys.path.insert(0, sys.argv[3])
out = Path(sys.argv[1])
jobs = json.loads(sys.argv[2])
veinscope.warmup()
for job in jobs:
    if job["kind"] == "set_a":
        from bench_synth_accuracy import set_a_photo
        ph = set_a_photo(job["i"], job["seed"], (1600, 1200))
        a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
    else:
        a = veinscope.analyze(job["path"], px_per_mm=job["ppm"])
    d = a.to_dict()
    d["parameters"].pop("seconds", None)
    text = json.dumps(d, sort_keys=True, default=repr)  # repr: floats at full precision
    np.savez(out / (job["name"] + ".npz"), labels=a.labels, diameter_px=a.diameter_px, skin=a.skin)
    (out / (job["name"] + ".json")).write_text(text)
    print(job["name"], hashlib.sha256(text.encode()).hexdigest()[:12], flush=True)
"""


def _jobs(legs: Path | None, leg_names: list[str]) -> list[dict]:
    jobs = [{"name": "synth_12mp_seed11", "kind": "path", "path": str(HERE / ".cache" / "synth_12mp_seed11.jpg"), "ppm": 12.0}]
    for p in sorted((ROOT / "sample_images").rglob("*.jpg")):
        jobs.append({"name": "sample_" + "_".join(p.relative_to(ROOT / "sample_images").with_suffix("").parts), "kind": "path",
                     "path": str(p), "ppm": None})  # fmt: skip
    for seed in (409, 420):
        jobs.append({"name": f"set_a_{seed}", "kind": "set_a", "i": seed - 400, "seed": seed})
    if legs is not None:
        for name in leg_names:
            jobs.append({"name": "leg_" + Path(name).stem, "kind": "path", "path": str(legs / name), "ppm": None})
    return jobs


def _run(tree: Path, out: Path, jobs: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    subprocess.run([sys.executable, "-c", _CHILD, str(out), json.dumps(jobs), str(HERE)], env=env, check=True)


def _same(a: Path, b: Path, name: str) -> tuple[bool, str]:
    import numpy as np

    ja, jb = ((p / (name + ".json")).read_text() for p in (a, b))
    za, zb = np.load(a / (name + ".npz")), np.load(b / (name + ".npz"))
    notes = []
    for key in ("labels", "diameter_px", "skin"):
        x, y = za[key], zb[key]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            diff = int(np.count_nonzero(x != y)) if x.shape == y.shape else -1
            notes.append(f"{key}: {diff} pixels differ")
    if ja != jb:
        notes.append("JSON differs")
    labels = za["labels"]
    desc = f"{labels.shape[1]}x{labels.shape[0]}, {int(np.count_nonzero(labels))} vessel px, json {hashlib.sha256(ja.encode()).hexdigest()[:12]}"
    return not notes, desc + ("" if not notes else "  " + "; ".join(notes))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree_a", type=Path)
    ap.add_argument("tree_b", type=Path)
    ap.add_argument("--legs", type=Path, default=None, help="folder of real leg photos (read only)")
    ap.add_argument("--leg-names", nargs="*", default=["veins_01.jpg", "veins_04.jpg", "veins_06.jpg"])
    ap.add_argument("--out", type=Path, default=None, help="where to keep the records (default: a temporary folder)")
    args = ap.parse_args()
    jobs = _jobs(args.legs, args.leg_names)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        a, b = base / "a", base / "b"
        _run(args.tree_a.resolve(), a, jobs)
        _run(args.tree_b.resolve(), b, jobs)
        bad = 0
        for job in jobs:
            ok, desc = _same(a, b, job["name"])
            bad += not ok
            print(f"{'identical' if ok else 'DIFFERENT'}  {job['name']:36s} {desc}")
    print(f"{len(jobs) - bad} of {len(jobs)} photos identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
