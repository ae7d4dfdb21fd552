"""Write the generated demo patient in ``sample_images/`` and its truth.

Regenerate it with::

    .venv/bin/python scripts/make_samples.py

(``--out DIR`` writes elsewhere, ``--overlays`` also writes truth overlays for looking at.)
Every photo comes from :func:`veinscope.synth.generate_series` with a fixed seed; the files are
those of ``veinscope synth`` (see the README's command-line section):

* ``demo_patient/site_a/``: left calf, light-medium skin (Fitzpatrick type 3), 10 px/mm at the
  baseline photo's centre, 4 sessions (baseline and three follow-ups 4-6 weeks apart).
* ``demo_patient/site_b/``: the other leg's shin, dark skin (type 5), about 7 px/mm, 3 sessions.
* ``demo_leg.jpg``: site A's baseline photo (what ``make app`` analyses), with
  ``demo_leg_truth.json`` (its px/mm, truth figures and the parameters that regenerate it).

Each site's seed is the first from its ``seed_from`` that passes :func:`site_ok` (at most
``MAX_TRIES`` seeds are tried): every class at baseline, the card in view at baseline, visible
staining and matting in some follow-up, and a final improvement between 40 and 95 %.
The photos are 2400 x 1800 px (centre crops of the 12 MP frame) to keep the folder small.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from veinscope._cli_synth import write_series
from veinscope.synth import CLASSES, SynthSeries, generate_series

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIES = 8
SIZE = (2400, 1800)
SITES = {
    "site_a": {"seed_from": 4100, "sessions": 4, "px_per_mm": 10.0, "skin_type": 3, "all_classes": True},
    "site_b": {"seed_from": 5200, "sessions": 3, "px_per_mm": 7.0, "skin_type": 5, "all_classes": False},
}


def site_ok(series: SynthSeries, *, all_classes: bool) -> bool:
    """A good demo: vessels of every class (or of three) at baseline, the card in view at
    baseline, staining and matting visible in some follow-up, final improvement 40-95 %."""
    base = series.photos[0]
    figs = base.truth_figures()
    shown = [c for c in CLASSES if figs[c]["length_mm"] >= 15]
    if len(shown) < (4 if all_classes else 3) or base.card is None:
        return False
    side = [p.side_effect_figures() for p in series.photos[1:]]
    if not any(s["staining"]["area_mm2"] > 5 for s in side) or not any(s["matting"]["area_mm2"] > 5 for s in side):
        return False
    imp = series.changes[-1]["improvement_pct"]["total"]
    return imp is not None and 40 <= imp <= 95


def make_site(name: str, spec: dict) -> SynthSeries:
    last = None
    for seed in range(spec["seed_from"], spec["seed_from"] + MAX_TRIES):
        t = time.perf_counter()
        series = generate_series(
            seed=seed, sessions=spec["sessions"], size=SIZE, px_per_mm=spec["px_per_mm"], skin_type=spec["skin_type"]
        )
        ok = site_ok(series, all_classes=spec["all_classes"])
        print(f"{name}: seed {seed} {'ok' if ok else 'rejected'} ({time.perf_counter() - t:.0f} s)", flush=True)
        if ok:
            return series
        last = series
    print(f"{name}: no seed passed in {MAX_TRIES} tries; keeping the last", flush=True)
    assert last is not None
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_images", help="output folder")
    parser.add_argument("--overlays", action="store_true", help="also write truth overlays (not kept in the repository)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    patient = out / "demo_patient"
    if patient.exists():
        shutil.rmtree(patient)
    for old in ("dark_skin_leg.jpg", "dark_skin_leg_truth.json", "leg_6pxmm.jpg", "leg_6pxmm_truth.json"):
        (out / old).unlink(missing_ok=True)  # the single photos of an earlier version
    for name, spec in SITES.items():
        series = make_site(name, spec)
        write_series(series, patient / name, overlays=args.overlays)
        if name == "site_a":
            base = series.photos[0]
            (out / "demo_leg.jpg").write_bytes(base.jpeg)
            prm = series.params
            meta = {
                "photo": "demo_leg.jpg",
                "px_per_mm": base.px_per_mm,
                "same_as": "demo_patient/site_a/session0.jpg",
                "truth": base.truth_figures(),
                "card": None if base.card is None else {"px_per_mm": base.card["px_per_mm"], "corners_px": base.card["corners_px"].tolist()},
                "regenerate": "veinscope.synth.generate_series(**{k: params[k] for k in "
                "('seed', 'sessions', 'size', 'px_per_mm', 'skin_type')}).photos[0]",
                "params": {k: prm[k] for k in ("seed", "sessions", "size", "px_per_mm", "skin_type", "veinscope_version")},
            }
            (out / "demo_leg_truth.json").write_text(json.dumps(meta, indent=2) + "\n")
        for c in series.changes:
            imp = c["improvement_pct"]["total"]
            print(f"  session {c['session']}: improvement {imp:.0f} %, staining {c['staining']['area_mm2']:.0f} mm2, "
                  f"matting {c['matting']['area_mm2']:.0f} mm2 in {c['matting']['patches']} patches")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
