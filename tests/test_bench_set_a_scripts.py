"""Every set A benchmark script builds its options (the shared ones of
``bench_synth_accuracy.set_a_arguments`` and its own) and starts: a script that re-declared a
shared option (``--types``) failed with argparse's conflict before reading a photo."""

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

SET_A_SCRIPTS = sorted(p.stem for p in BENCH.glob("bench_*.py") if "set_a_arguments(ap" in p.read_text())


def test_the_set_a_scripts_are_found():
    assert {"bench_cldice_parts", "bench_synth_losses", "bench_dark_strength"} <= set(SET_A_SCRIPTS)


@pytest.mark.parametrize("name", SET_A_SCRIPTS)
def test_a_set_a_script_builds_its_options(name, capsys):
    mod = importlib.import_module(name)
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0
    assert "--types" in capsys.readouterr().out


def test_cldice_parts_runs_on_the_skin_types_asked_for(capsys):
    mod = importlib.import_module("bench_cldice_parts")
    assert mod.main(["--n", "2", "--size", "400x300", "--types", "2"]) == 0
    out = capsys.readouterr().out
    assert "type 2" in out and "type 1 " not in out
