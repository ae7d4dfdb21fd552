"""Fixtures and helper processes for the store tests (imported by tests/test_store*.py).

PostgreSQL: set ``VEINSCOPE_TEST_POSTGRES_URL`` to a server URL whose role may CREATE
DATABASE (e.g. ``postgresql://veinscope@localhost:5432/postgres``); each test gets a fresh
database. Without it the PostgreSQL cases skip with the reason, unless
``VEINSCOPE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), in which case they fail.
"""

from __future__ import annotations

import io
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_ENV = "VEINSCOPE_TEST_POSTGRES_URL"
REQUIRE_ENV = "VEINSCOPE_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", "postgresql"]


def make_photo(seed: int, *, size=(120, 160), fmt: str = "PNG", exif=None, noise: int = 12) -> bytes:
    """A small skin-coloured photo with two dark 'vessels', unique per seed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    rgb = np.empty((h, w, 3), np.float32)
    rgb[...] = (205, 160, 140)
    rgb += rng.normal(0, noise, rgb.shape)
    y = h // 3 + int(rng.integers(-5, 6))
    rgb[y : y + 3, :] -= (40, 45, 10)
    x = w // 2 + int(rng.integers(-10, 11))
    rgb[:, x : x + 2] -= (25, 35, 0)
    im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    kw = {}
    if exif is not None:
        kw["exif"] = exif
    if fmt == "JPEG":
        kw["quality"] = 90
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def fake_analyze(photo, *, px_per_mm=None):
    """A cheap stand-in for veinscope.analyze with the same result shape (real photo decoding)."""
    mean = [float(v) for v in photo.rgb.reshape(-1, 3).mean(axis=0)]
    cls = {"coverage_pct": 1.5, "area_mm2": 2.0 if px_per_mm else None, "length_mm": 3.0 if px_per_mm else None,
           "diameter_mm": {"mean": 0.3, "median": 0.3, "p90": 0.5}, "segments": 2}
    return {"px_per_mm": px_per_mm, "warnings": [], "classes": {"total": cls, "reticular": cls},
            "mean_rgb": mean, "parameters": {"fake": True}, "version": "test-0"}


# -- PostgreSQL ----------------------------------------------------------------------------------
def _libpq(url) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _skip_or_fail(reason: str):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1 says PostgreSQL tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        _skip_or_fail(f"no PostgreSQL server configured: set {PG_ENV}=postgresql://USER@HOST:PORT/postgres")
    import psycopg

    try:
        psycopg.connect(_libpq(url), connect_timeout=10).close()
    except psycopg.Error as exc:
        _skip_or_fail(f"cannot connect to the PostgreSQL server in {PG_ENV}: {exc}")
    return url


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"vs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(pg_admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_admin_url).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(_libpq(pg_admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- a store on either backend -------------------------------------------------------------------
@dataclass
class Target:
    kind: str
    url: str
    data_dir: Path

    def open(self, **kw):
        from veinscope.store import open_store

        return open_store(self.url, data_dir=self.data_dir, **kw)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEINSCOPE_")}
        env.update(VEINSCOPE_DATABASE_URL=self.url, VEINSCOPE_DATA_DIR=str(self.data_dir),
                   PYTHONPATH=str(ROOT))
        return env

    def cli_args(self) -> list[str]:
        return ["--database-url", self.url, "--data-dir", str(self.data_dir)]


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path) -> Target:
    data = tmp_path / "data"
    if request.param == "sqlite":
        return Target("sqlite", f"sqlite:///{data / 'veinscope.sqlite3'}", data)
    return Target("postgresql", request.getfixturevalue("pg_url"), data)


@pytest.fixture
def store(target):
    st = target.open()
    yield st
    st.close()


# -- helper processes ----------------------------------------------------------------------------
def _say(*parts) -> None:
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def zygote_main() -> None:
    """Fork one importer per ``run SEED N`` line on stdin; report its pid, commits and exit.

    Everything heavy (SQLAlchemy, psycopg, numpy, Pillow, the Numba kernels) is imported once
    here, so each forked importer starts in milliseconds and can be SIGKILLed at a random moment
    by the test. Output lines: ``ready PID``, ``committed SHA``, ``exit PID STATUS``.
    """
    url, data_dir, code = sys.argv[1:4]
    real = len(sys.argv) > 4 and sys.argv[4] == "analyze"
    from veinscope.store import open_store

    if real:
        import veinscope

        veinscope.warmup()
    # warm SQLAlchemy's statement caches, then drop every connection: children open their own
    store = open_store(url, data_dir=data_dir)
    store.import_photo(code, "left calf", "2026-02-01", make_photo(999_999, size=(96, 128)),
                       px_per_mm=8.0, analyze=True if real else fake_analyze)
    store.list_photos(code=code)
    store.engine.dispose()
    _say("zygote", os.getpid())
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] != "run":
            break
        seed, n = int(cmd[1]), int(cmd[2])
        pid = os.fork()
        if pid == 0:
            try:
                _importer(store, code, seed, n, real)
            finally:
                os._exit(0)
        _say("ready", pid)
        _, status = os.waitpid(pid, 0)
        _say("exit", pid, status)


def _importer(store, code, seed, n, real) -> None:
    store.engine.dispose(close=False)  # never touch the parent's connections (there are none)
    for k in range(n):
        data = make_photo(seed * 1000 + k, size=(96, 128))
        t0 = time.perf_counter()
        r = store.import_photo(code, "left calf", "2026-02-01", data, original_name=f"p{seed}_{k}.png",
                               px_per_mm=8.0, analyze=True if real else fake_analyze)
        _say("committed", r.photo.sha256, f"{time.perf_counter() - t0:.4f}")
    store.close()


def concurrent_worker_main() -> None:
    """Import the photos of the given seeds once ``go`` arrives on stdin; print ``imported|duplicate SHA``."""
    url, data_dir, code = sys.argv[1:4]
    seeds = [int(s) for s in sys.argv[4].split(",")]
    from veinscope.store import open_store

    photos = [make_photo(s) for s in seeds]
    sys.stdin.readline()  # both workers start together
    store = open_store(url, data_dir=data_dir)  # both may create the schema at the same moment
    if not store.has_patient(code):
        try:
            store.add_patient(code)
        except Exception as exc:  # the other worker won the race
            if "already exists" not in str(exc):
                raise
    for s, data in zip(seeds, photos, strict=True):
        r = store.import_photo(code, "right calf", "2026-03-01", data, original_name=f"c{s}.png", analyze=False)
        _say(r.status, r.photo.sha256)
    store.close()


def run_python(snippet: str) -> list[str]:
    return [sys.executable, "-c", snippet]
