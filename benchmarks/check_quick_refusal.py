"""Does the app's quick same-site check (session 39) refuse exactly the pairs the full comparison refuses?

Every pair of the demo patient's photos of one site (earlier session as baseline: 9 pairs)
and each site's baseline against every photo of the other site and two generated legs
(seeds 9101, 9102; 11 pairs): the quick check (``app_support._quick_refusal``: the alignment alone) and the full
comparison (``compare_sessions(..., quick_check=False)``, main's path) are run on each pair;
prints both outcomes and the time of each, and the pairs where they disagree.

    PYTHONPATH=src .venv/bin/python benchmarks/check_quick_refusal.py --work /tmp/NAME/quick
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sample_images" / "demo_patient"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args(argv)
    import veinscope
    from veinscope import app_support as sup

    from bench_compare_refusals import _other_leg  # noqa: E402  (same folder)

    veinscope.warmup()
    shutil.rmtree(args.work / "store", ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    store = sup.open_app_store(args.work / "store")
    cache = sup.DerivedCache.for_store(store)
    photos = {f"{p.parent.name}/{p.stem}": p.read_bytes() for p in sorted(DEMO.glob("*/session?.jpg"))}
    photos["other/9101"] = _other_leg(9101, args.work)
    photos["other/9102"] = _other_leg(9102, args.work)
    ids = {}
    import datetime as dt

    store.add_patient("Q-1")
    for i, (name, data) in enumerate(photos.items()):  # one patient, one session per photo (dates in order)
        day = dt.date(2026, 1, 1) + dt.timedelta(days=i)
        [r] = sup.import_uploads(store, cache, "Q-1", "calf", day, [(name.replace("/", "_") + ".jpg", data)])
        assert r.ok, r.message
        ids[name] = store.get_photo(r.photo_id)
    cache.flush()
    cache.forget()
    same = [(a, b) for a in photos for b in photos if a.split("/")[0] == b.split("/")[0] != "other" and a < b]
    across = [(a, b) for a in ("site_a/session0", "site_b/session0") for b in photos if b.split("/")[0] != a.split("/")[0]]
    pairs = same + across
    disagree = 0
    print("baseline\tfollow-up\tquick\tquick_s\tfull\tfull_s")
    for a, b in pairs:
        pa, pb = ids[a], ids[b]
        t = time.perf_counter()
        quick = sup._quick_refusal(store, cache, pa, pb, {})
        tq = time.perf_counter() - t
        t = time.perf_counter()
        try:
            sup._compare_photos(store, cache, store.get_session(pa.session_id), store.get_session(pb.session_id), pa, pb)
            full = None
        except sup.NotComparable as exc:
            full = str(exc)
        tf = time.perf_counter() - t
        for d in cache.root.glob("cmp_*"):
            shutil.rmtree(d)
        same = (quick is None) == (full is None)
        disagree += not same
        print(f"{a}\t{b}\t{'refused' if quick else 'passed'}\t{tq:.1f}\t{'refused' if full else 'compared'}\t{tf:.1f}"
              + ("" if same else "\tDISAGREE"), flush=True)
    print(f"{len(pairs)} pairs, {disagree} where the quick check and the full comparison disagree")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
