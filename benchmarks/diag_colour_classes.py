"""How the engine's classes on set A's card photos move with the intake's colour correction.

Run:  .venv/bin/python benchmarks/diag_colour_classes.py MODE   (MODE: on, off, exposure, wb)

For set A's photos 405, 409 and 422 (``bench_synth_accuracy.py``'s seeds, size and scales), the
intake's correction from the card is replaced before the engine sees the photo:

* ``on``: as the intake measured it (the default pipeline);
* ``off``: the photo as photographed;
* ``exposure``: the correction's mean gain on every channel, no offset (brightness only);
* ``wb``: the correction's gains divided by their mean, no offset (white balance only).

Printed per photo: the share of the truth's vessel pixels the engine found that carry the right
class ("agree"), true blue telangiectasia pixels read red ("b->r"), true reticular read blue
("ret->b"), and the pixels found. Session 24: the engine's red / blue rule unmixes OD relative
to the skin, which a pure gain leaves unchanged, yet a 5 % white-balance change moves hundreds of
pixels between classes (the chains found and joined change with it).
"""

import dataclasses
import sys

import numpy as np


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "on"
    if mode not in ("on", "off", "exposure", "wb"):
        raise SystemExit("MODE must be on, off, exposure or wb")
    import veinscope
    from veinscope import intake as intake_mod
    from veinscope.synth import generate_photo

    orig = intake_mod.prepare

    def patched(photo, **kw):
        it = orig(photo, **kw)
        if mode == "off" or it.colour is None:
            return dataclasses.replace(it, rgb=np.asarray(it.photo.rgb), colour_applied=False) if mode == "off" else it
        if mode in ("exposure", "wb"):
            g = np.asarray(it.colour.gain)
            g2 = np.full(3, g.mean()) if mode == "exposure" else g / g.mean()
            cc = dataclasses.replace(it.colour, gain=g2, offset=np.zeros(3))
            return dataclasses.replace(it, rgb=cc.apply(np.asarray(it.photo.rgb)))
        return it

    intake_mod.prepare = patched
    scales = [6.0, 8.0, 10.0, 12.0, 15.0]
    for i, seed in ((22, 422), (9, 409), (5, 405)):
        ppm = scales[(i + i // 6) % len(scales)]
        ph = generate_photo(seed=seed, size=(1600, 1200), px_per_mm=ppm, skin_type=1 + i % 6)
        a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
        t, p = ph.labels, np.asarray(a.labels)
        both = (t > 0) & (p > 0) & ~ph.ignore
        m = np.zeros((5, 5), int)
        np.add.at(m, (t[both], p[both]), 1)
        agree = np.trace(m[1:, 1:]) / max(m[1:, 1:].sum(), 1)
        print(f"{mode:8s} {seed}: agree {agree:.3f}, b->r {m[2, 1]}, ret->b {m[3, 2]}, found {(p > 0).sum()} px")


if __name__ == "__main__":
    main()
