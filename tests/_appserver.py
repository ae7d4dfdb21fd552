"""The real app as a server: `streamlit run app.py` on a free localhost port, as `make app` starts it
(one malloc arena, see veinscope/_memory.py), with a temporary data folder and the demo patient.
Shared by the browser test and benchmarks/bench_app_browser.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.test_app import ROOT, prepared_demo_dir


class AppDidNotStart(RuntimeError):
    """Streamlit exited or did not answer its health check in time (message: the log's tail)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(data: Path, log: Path, trace: Path, *, timeout_s: float = 120.0):
    """Yield the URL of the app serving ``data``; step marks go to ``trace``, output to ``log``."""
    port = free_port()
    env = dict(os.environ, MALLOC_ARENA_MAX="1", VEINSCOPE_DATA_DIR=str(data), VEINSCOPE_DEMO_DIR=str(prepared_demo_dir()),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", VEINSCOPE_APP_TRACE=str(trace))  # fmt: skip
    env.pop("VEINSCOPE_DATABASE_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AppDidNotStart(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
