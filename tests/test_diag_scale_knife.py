"""benchmarks/diag_scale_knife.py: the stage watch that finds which stage moves with the scale."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diag_scale_knife as dk  # noqa: E402


def test_first_difference_names_the_first_stage_whose_points_differ():
    a = [("detect_vessels", 10, 1), ("extend_ends", 20, 2), ("add_deep_veins", 25, 3)]
    assert dk.first_difference(a, list(a)) == "-"
    b = [("detect_vessels", 10, 1), ("extend_ends", 18, 5), ("add_deep_veins", 22, 6)]
    assert dk.first_difference(a, b) == "extend_ends 20->18 points"
    # the same count but other points (a centreline end 1 px away) still counts as moved
    c = [("detect_vessels", 10, 9), ("extend_ends", 20, 2), ("add_deep_veins", 25, 3)]
    assert dk.first_difference(a, c) == "detect_vessels 10->10 points"
    assert dk.first_difference(a, a[:2]) == "stage calls differ"


def test_the_watch_logs_each_stage_and_puts_the_stages_back():
    from veinscope.synth import generate_series

    before = [getattr(importlib.import_module(m), f) for m, f in dk.STAGES]
    ser = generate_series(seed=310, sessions=2, size=(320, 240), px_per_mm=10.0)
    (a0, log0), (a1, log1) = dk.one(ser.photos[0].rgb, 10.0, 1.0, {})
    assert [getattr(importlib.import_module(m), f) for m, f in dk.STAGES] == before
    names = [n for n, _, _ in log0]
    assert names[0] == "detect_vessels" and "extend_ends" in names
    # the same scale twice: the same points at every stage, the same labels
    assert dk.first_difference(log0, log1) == "-"
    assert np.array_equal(a0.labels, a1.labels)


def test_the_amplifier_is_the_stage_that_grew_the_difference_most():
    a = [("detect_vessels", 10, 1), ("reach_end_faces", 12, 2), ("extend_ends", 200, 3), ("add_deep_veins", 210, 4)]
    b = [("detect_vessels", 11, 5), ("reach_end_faces", 13, 6), ("extend_ends", 66, 7), ("add_deep_veins", 76, 8)]
    assert dk.amplifier(a, b) == "extend_ends +133"
    assert dk.amplifier(a, a) == "-"


def test_the_deep_pass_own_detection_is_not_taken_for_an_amplifier():
    a = [("detect_vessels", 10, 1), ("extend_ends", 200, 3), ("detect_vessels", 50, 4), ("add_deep_veins", 260, 5)]
    b = [("detect_vessels", 10, 2), ("extend_ends", 70, 6), ("detect_vessels", 50, 4), ("add_deep_veins", 130, 7)]
    assert dk.amplifier(a, b) == "extend_ends +130"
