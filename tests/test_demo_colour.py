"""The demo photos' calibration card corrects their colours (a known defect, session 23).

The demo patient's cards, laid off the matting by session 22's regeneration, lie across the
rounded leg's shading: the neutral patches' fit misses (demo_leg.jpg: residual / tolerance up
to 2.55 on grey_40) and the intake warns that the patches disagree. The fix belongs in
``colour.correction_from_card`` (the light's field from the card's own white paper around each
patch); this test records the defect and turns into a failure (strict xfail) once it is fixed,
so the marker is removed then.
"""

from pathlib import Path

import pytest

import veinscope
from veinscope import intake

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.xfail(strict=True, reason="known defect (session 23): the card lies across the leg's shading; flat-field the card in correction_from_card")
def test_demo_leg_card_corrects_colour_without_warning():
    got = intake.prepare(veinscope.load_photo(ROOT / "sample_images" / "demo_leg.jpg"))
    assert not [w for w in got.warnings if "grey patches do not agree" in str(w)]
