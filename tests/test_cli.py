import subprocess
import sys

from veinscope.cli import main


def test_help_exit_zero(capsys):
    assert main(["--help"]) == 0
    assert "analyze" in capsys.readouterr().out


def test_usage_error_exit_two():
    assert main(["analyze"]) == 2
    assert main([]) == 2
    assert main(["analyze", "x.jpg", "--out", "o", "--px-per-mm", "-3"]) == 2


def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "veinscope", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "veinscope" in r.stdout
