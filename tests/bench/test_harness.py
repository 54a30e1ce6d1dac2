"""The benchmark harness in its smoke mode: every case runs, so the harness cannot rot."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_run_smoke_runs_every_case() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cases = ["celery", "rq", "arq", "dramatiq", "huey", "gearjobs, SQLite (HTTP)"]
    cases += [
        "gearjobs, Redis (HTTP)",
        "bare Starlette",
        "bare asyncio.Queue",
        "gearjobs Dispatcher",
    ]
    for case in cases:
        assert f"| {case}" in out.stdout, case
    assert out.stdout.count("| yes |") + out.stdout.count("| no |") == 7
