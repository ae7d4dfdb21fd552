"""The benchmarks' engine options (``--set KEY=VALUE`` of bench_compare.py and the set A scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_synth_accuracy import analyze_options as _analyze_options  # noqa: E402


def test_words_and_numbers_become_analyze_keywords():
    assert _analyze_options(["noise_off_bands=true", "size_class_z=None", "end_faces=False", "low_noise=2.25"]) == {
        "noise_off_bands": True,
        "size_class_z": None,
        "end_faces": False,
        "low_noise": 2.25,
    }
    assert _analyze_options([]) == {}


@pytest.mark.parametrize("item", ["noise_off_bands", "=1", "low_noise=high"])
def test_a_malformed_option_stops_with_a_message(item):
    with pytest.raises(SystemExit):
        _analyze_options([item])
