"""The national benchmarks run end to end on a tiny bucket, as ``make bench`` runs them.

They are not part of ``make test`` for their figures (those need thousands of schools),
but a benchmark that no longer runs, or that stops doing what the flows do, is found only
when somebody needs its figures. Here ``bench_national`` runs every phase on a dozen
schools, keeps its bucket, and ``bench_correction`` corrects one school in it; the
project phase must reject exactly the generator's bad files, as the plain script does,
and run every step the aggregate flow runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vetreport.paths import REPOSITORY_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def run_bench(name: str, bucket: Path) -> str:
    environment = {
        **os.environ,
        "VETREPORT_BENCH_SCHOOLS": "12",
        "VETREPORT_BENCH_YEARS": "2022,2023",
        "VETREPORT_BENCH_BUCKET": str(bucket),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", name],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_the_national_benchmark_and_a_correction_run_on_a_tiny_bucket(tmp_path: Path) -> None:
    bucket = tmp_path / "national"
    national = run_bench("bench_national", bucket)
    project = next(line for line in national.splitlines() if line.strip().startswith("project:"))
    for step in ("ingest", "aggregate", "history", "numbers", "publish"):
        assert f" {step} " in project, f"no {step} step: {project}"
    assert "rejected = the manifest's bad files: True" in project, project
    baseline = next(line for line in national.splitlines() if "baseline:" in line)
    assert "rejected = the manifest's bad files: True" in baseline, baseline
    assert "project/baseline" in national and "project/floor" in national

    correction = run_bench("bench_correction", bucket)
    assert "correction republished in" in correction, correction
    assert "numbers:" in correction, correction
    assert "v2" in correction, correction
