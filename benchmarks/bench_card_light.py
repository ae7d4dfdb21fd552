"""The card's colour correction on generated photos whose card lies on the leg's shading.

Run:  .venv/bin/python benchmarks/bench_card_light.py [--n 24] [--seed0 700] [--size 2000 1500]

Each series (``veinscope.synth.generate_series``, 2 sessions, card on, skin types in turn) is
two photos of one site under two lights and poses; the card lies on the skin, lit and shaded
like it. For every photo the card is found (``calibrate.detect_card``) and the colours are
corrected from it twice, with ``correction_from_card(flat_field=False)`` (the patches read as
they are) and with ``flat_field=True`` (read as if the card were evenly lit, from the light's
field over its white paper). Reported for each:

* photos whose correction fails ("the grey patches do not agree");
* the median ΔE00 of the card's six colour patches after correction against their nominal
  colours (``residual_de00``), over the photos both corrected;
* ΔE00 between the two sessions' median corrected skin colour (the same skin at two visits,
  under two lights: lower is better; the skin also changes a little with treatment and pose),
  over the series both corrected.
The light's field (lowest share of the card's mean light) is printed per photo. "No card found"
is a photo without a card: the generator lays none where it would cover over 15 % of the view
(a photo taken close up).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed0", type=int, default=700)
    ap.add_argument("--size", type=int, nargs=2, default=(2000, 1500))
    args = ap.parse_args()

    from veinscope import synth
    from veinscope.calibrate import detect_card
    from veinscope.colour import correction_from_card, delta_e00
    from veinscope.errors import VeinScopeError

    fails = {False: 0, True: 0}
    resid = {False: [], True: []}
    skin_de = {False: [], True: []}
    photos = 0
    for i in range(args.n):
        seed = args.seed0 + i
        s = synth.generate_series(seed=seed, sessions=2, size=tuple(args.size), skin_type=1 + i % 6)
        med = {False: [], True: []}
        for k, p in enumerate(s.photos):
            try:
                cal = detect_card(p.rgb)
            except VeinScopeError:
                print(f"seed {seed} session {k}: no card found")
                continue
            photos += 1
            row = []
            for ff in (False, True):
                try:
                    c = correction_from_card(p.rgb, cal, flat_field=ff)
                except VeinScopeError:
                    fails[ff] += 1
                    med[ff].append(None)
                    row.append("fails")
                    continue
                resid[ff].append(c.residual_de00)
                skin = p.skin_mask & (p.labels == 0)
                med[ff].append(np.median(c.apply(p.rgb)[skin].astype(np.float64), axis=0))
                lf = c.params.get("light_field")
                low = f" field lowest {lf['lowest']:.2f}" if lf else ""
                row.append(f"{c.residual_de00:.2f}{low}")
            print(f"seed {seed} session {k} type {1 + i % 6}: flat off {row[0]} | on {row[1]}")
        for ff in (False, True):
            if len(med[ff]) == 2 and all(m is not None for m in med[ff]):
                skin_de[ff].append(float(delta_e00(med[ff][0][None], med[ff][1][None])[0]))
    print(f"\n{photos} photos with a card found")
    for ff in (False, True):
        name = "flat field on " if ff else "flat field off"
        r = statistics.median(resid[ff]) if resid[ff] else float("nan")
        d = statistics.median(skin_de[ff]) if skin_de[ff] else float("nan")
        print(f"{name}: fails {fails[ff]}/{photos}, colour patches residual median {r:.2f} dE00 "
              f"(n {len(resid[ff])}), skin between sessions median {d:.2f} dE00 (n {len(skin_de[ff])} series)")


if __name__ == "__main__":
    main()
