"""How long the app's comparison of two sessions takes when some of their photos show another leg (issue 6/8).

A patient's baseline session holds 2 photos and the follow-up session 3 (2400 x 1800 px,
the demo patient's size): the first photo imported in each session is of another leg (the
demo's site b baseline, and two generated legs, seeds 9101 and 9102, for the follow-up), the
last one of each is the right one (demo site a, sessions 0 and 2). ``compare_sessions`` tries
the photo pairs in the order the app does (:func:`veinscope.app_support._photo_pairs`): 5
pairs are refused before the right pair is compared. Each run starts from no comparison
kept (the ``cmp_*`` pictures removed) and from no photo in memory (as when the photos were
imported earlier); the photos' analyses and masks are kept, as after import.

Prints the time of each run and the median, then the right pair's comparison alone (the
refusals kept from the last run: the pairs refused are not tried again), and writes the accepted comparison's figures
(without timings) to ``--figures`` so that two versions can be checked for the same output.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_compare_refusals.py --runs 3 --work /tmp/NAME/refusals \
        --figures /tmp/NAME/figures.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sample_images" / "demo_patient"


def _other_leg(seed: int, work: Path) -> bytes:
    path = work / f"other_leg_{seed}.jpg"
    if not path.is_file():
        from veinscope.synth import generate_photo

        import cv2

        p = generate_photo(seed=seed, size=(2400, 1800))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(p.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        path.write_bytes(buf.tobytes())
    return path.read_bytes()


def _resized(data: bytes, size) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        buf = io.BytesIO()
        im.convert("RGB").resize(tuple(size), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _strip(fig):
    """Figures without the timings (which differ run to run)."""
    if isinstance(fig, dict):
        return {k: _strip(v) for k, v in fig.items() if "time" not in k and k not in ("seconds", "elapsed_s")}
    if isinstance(fig, list):
        return [_strip(v) for v in fig]
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (store, generated photos)")
    ap.add_argument("--figures", type=Path, default=None, help="write the accepted comparison's figures here")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                    help="resize every photo to W x H first (e.g. 4000 3000: 12 MP, the card scales with it)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    import veinscope
    from veinscope import app_support as sup

    veinscope.warmup()
    data = args.work / "store"
    shutil.rmtree(data, ignore_errors=True)
    store = sup.open_app_store(data)
    cache = sup.DerivedCache.for_store(store)
    store.add_patient("BENCH-1")
    site = "left calf"
    base = [("wrong_leg.jpg", (DEMO / "site_b" / "session0.jpg").read_bytes()),
            ("right.jpg", (DEMO / "site_a" / "session0.jpg").read_bytes())]
    follow = [("wrong1.jpg", _other_leg(9101, args.work)), ("wrong2.jpg", _other_leg(9102, args.work)),
              ("right.jpg", (DEMO / "site_a" / "session2.jpg").read_bytes())]
    if args.size is not None:
        base = [(n, _resized(d, args.size)) for n, d in base]
        follow = [(n, _resized(d, args.size)) for n, d in follow]
    t0 = time.perf_counter()
    for day, files in (("2026-01-05", base), ("2026-03-02", follow)):
        for r in sup.import_uploads(store, cache, "BENCH-1", site, day, files):
            if not r.ok:
                raise SystemExit(f"import failed: {r.message}")
    cache.flush()
    print(f"imported 5 photos in {time.perf_counter() - t0:.1f} s")
    sa, sb = store.list_sessions("BENCH-1", site)
    times, figures = [], None
    for run in range(args.runs):
        for d in cache.root.glob("cmp_*"):
            shutil.rmtree(d)
        cache.forget()
        t = time.perf_counter()
        view = sup.compare_sessions(store, cache, sa.id, sb.id)
        times.append(time.perf_counter() - t)
        figures = view.figures
        print(f"run {run + 1}: {times[-1]:.1f} s; compared {figures['photos']}", flush=True)
    print(f"median of {len(times)}: {statistics.median(times):.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)})")
    # the right pair alone: the 5 refusals kept from the last run, so the right pair is compared at once
    refused = {d.name: (d / "refused.txt").read_bytes() for d in cache.root.glob("cmp_*") if (d / "refused.txt").is_file()}
    print(f"{len(refused)} pairs refused")
    alone = []
    for run in range(args.runs):
        for d in cache.root.glob("cmp_*"):
            shutil.rmtree(d)
        for name, text in refused.items():
            (cache.root / name).mkdir()
            (cache.root / name / "refused.txt").write_bytes(text)
        cache.forget()
        t = time.perf_counter()
        sup.compare_sessions(store, cache, sa.id, sb.id)
        alone.append(time.perf_counter() - t)
    print(f"right pair alone, median of {len(alone)}: {statistics.median(alone):.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in alone)}); the {len(refused)} refusals: "
          f"{statistics.median(times) - statistics.median(alone):.1f} s")
    if args.figures is not None:
        args.figures.write_text(json.dumps(_strip(figures), indent=1, sort_keys=True))
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
