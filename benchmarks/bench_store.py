"""Store speed: seconds per imported photo (store only, no analysis), SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py [--postgres URL]

URL: a server whose role may CREATE DATABASE (a throwaway database is made and dropped).
Each figure is the median over 3 runs of importing the same photos into a fresh store.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.store_fixtures import make_photo  # noqa: E402
from veinscope.store import open_store  # noqa: E402


def _run(url_or_dir, data_dir, photos) -> float:
    with open_store(url_or_dir, data_dir=data_dir) as st:
        st.add_patient("BENCH")
        t0 = time.perf_counter()
        for i, data in enumerate(photos):
            st.import_photo("BENCH", "left calf", "2026-01-05", data, original_name=f"{i}.png", analyze=False)
        return (time.perf_counter() - t0) / len(photos)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--postgres", default=None)
    args = ap.parse_args()
    sets = {
        "small PNG 96x128 (30 kB)": [make_photo(i, size=(96, 128)) for i in range(40)],
        "demo JPEG 2400x1800 (~550 kB)": [p.read_bytes() for p in sorted((ROOT / "sample_images").rglob("session*.jpg"))],
    }
    for label, photos in sets.items():
        for backend in ("sqlite", "postgresql"):
            if backend == "postgresql" and not args.postgres:
                continue
            times = []
            for _ in range(3):
                with tempfile.TemporaryDirectory() as tmp:
                    if backend == "sqlite":
                        times.append(_run(tmp, None, photos))
                    else:
                        import psycopg
                        from sqlalchemy.engine import make_url

                        admin = make_url(args.postgres).set(drivername="postgresql")
                        name = f"vs_bench_{uuid.uuid4().hex[:8]}"
                        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
                            c.execute(f'CREATE DATABASE "{name}"')
                        try:
                            url = admin.set(drivername="postgresql+psycopg", database=name)
                            times.append(_run(url.render_as_string(hide_password=False), tmp, photos))
                        finally:
                            with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
                                c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            print(f"{label:32s} {backend:10s} n={len(photos):3d}  {1000 * statistics.median(times):6.1f} ms/photo "
                  f"(runs: {', '.join(f'{1000 * t:.1f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
