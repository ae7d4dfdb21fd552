"""`veinscope compare` given inputs a practitioner gets wrong (found by hand, session 31)."""

from __future__ import annotations

import json

from PIL import Image

from veinscope.cli import main
from veinscope.synth import generate_photo


def test_the_same_photo_twice_is_said_to_be_the_same_photo(tmp_path, capsys):
    g = generate_photo(seed=31, size=(960, 720), card=False)
    Image.fromarray(g.rgb).save(tmp_path / "visit.jpg", quality=92)
    out = tmp_path / "out"
    code = main(["compare", str(tmp_path / "visit.jpg"), str(tmp_path / "visit.jpg"), "--out", str(out),
                 "--px-per-mm", "8"])
    d = json.loads((out / "comparison.json").read_text())
    said = " ".join(d["warnings"]) + capsys.readouterr().out
    assert code == 0 and "same photo" in said, said
