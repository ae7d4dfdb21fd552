"""benchmarks/diag_common_diameter.py: the diameter error at the true points every run marks (session 35)."""

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_the_same_options_twice_read_the_same_error(capsys):
    mod = importlib.import_module("diag_common_diameter")
    assert mod.main(["--n", "1", "--seed0", "402", "--size", "400x300", "--run", "a:", "--run", "b:min_delta_e=1.0"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in out if line.startswith("402 "))
    assert int(row[2]) > 0 and row[3] == row[4]  # common points, the same error (1.0 is the default)
    assert any(line.startswith("median >= 10 px/mm:") for line in out)
