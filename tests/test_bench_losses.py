"""The loss sorting of the engine benchmark (benchmarks/bench_synth_losses.py): where a visible true
centreline point's length ends, the first stage that explains it."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_synth_losses import CATS, category  # noqa: E402

#: A point nothing explains: not painted, nothing detected near it, on the engine's skin.
FAR = dict(painted=False, d_acc=9.0, on_skin=True, d_det=9.0, rule=0, de_gate=False, d_loose=9.0, d_looser=9.0)


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(painted=True, on_skin=False), "hit"),
        (dict(d_acc=2.0, on_skin=False), "near miss"),
        (dict(on_skin=False, d_det=1.0, rule=1), "off the engine's skin"),
        (dict(d_det=1.0, rule=1, de_gate=True), "dropped: melanin"),
        (dict(d_det=1.0, rule=2), "dropped: too dark"),
        (dict(d_det=1.0, de_gate=True), "dropped: ΔE00"),
        (dict(d_det=1.0), "dropped: repeat"),
        (dict(d_loose=2.5, d_looser=1.0), "hysteresis/length/piece"),
        (dict(d_looser=2.5), "below low x 0.6"),
        ({}, "no candidate"),
    ],
)
def test_a_point_ends_in_the_first_stage_that_explains_it(change, expected):
    assert category(**dict(FAR, **change)) == expected
    assert expected in CATS
