"""The length budget of the engine benchmark (benchmarks/bench_length_budget.py) on analytic chains.

The budget splits a class's length error into what is not found (tails, gaps, whole vessels),
found as another class, and the measure of what is found: the engine's length of a piece
against the true arc it spans, not against the true length within a matching tolerance (which
counts a few pixels beyond each chain end as found).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_length_budget import run_positions, spans  # noqa: E402
from bench_synth_length import point_lengths  # noqa: E402


def test_positions_on_a_run():
    assert run_positions(np.array([0, 1, 1, 0, 0, 1, 0], bool)).tolist() == [1, 0, 0, 2, 2, 0, 1]
    assert run_positions(np.zeros(4, bool)).tolist() == [3, 3, 3, 3]
    assert run_positions(np.ones(3, bool)).tolist() == [0, 0, 0]


def test_spans_are_per_group():
    assert spans(np.array([0, 0, 1, 1, 1]), np.array([1.0, 4.0, 10.0, 12.5, 11.0])) == pytest.approx(3.0 + 2.5)
    assert spans(np.zeros(0, int), np.zeros(0)) == 0.0


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, 30.0, 45.0, 62.0])
def test_a_digital_chain_along_a_straight_vessel_measures_its_span(angle_deg):
    """A chain of pixels along a straight true centreline, from arc 20 to arc 80 px of it: its span
    is 60 px (not the 65 px that a 2.5 px tolerance at each end would count) and its Kulpa
    length is the span within Kulpa's orientation error (5.2 % short along the axes and
    diagonals, by design unbiased over all orientations)."""
    t = np.deg2rad(angle_deg)
    d = np.array([np.sin(t), np.cos(t)])
    arc = np.arange(0.0, 100.0, 0.25)
    truth = np.array([50.0, 10.0]) + arc[:, None] * d
    u = np.arange(20.0, 80.0 + 1e-9, 0.05)
    pix = np.unique(np.round(np.array([50.0, 10.0]) + u[:, None] * d).astype(int), axis=0)
    # thin to an 8-connected chain: keep one pixel per step along the major axis
    major = int(np.argmax(np.abs(d)))
    _, first = np.unique(pix[:, major], return_index=True)
    pix = pix[first]
    j = np.argmin(((pix[:, None, :] - truth[None]) ** 2).sum(-1), axis=1)
    span = spans(np.zeros(len(pix), int), arc[j])
    assert span == pytest.approx(60.0, abs=1.0)
    length = point_lengths(pix, np.zeros(len(pix), int), (200, 200)).sum()
    assert abs(length / span - 1) < 0.06
