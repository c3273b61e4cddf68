"""The national benchmarks run end to end on a tiny bucket, as ``make bench`` runs them.

They are not part of ``make test`` for their figures (those need thousands of schools),
but a benchmark that no longer runs, or that stops doing what the flows do, is found only
when somebody needs its figures. Here ``bench_national`` runs every phase on a dozen
schools, keeps its bucket, and ``bench_correction`` corrects one school in it; the
project phase must reject exactly the generator's bad files, as the plain script does,
and run every step the aggregate flow runs. A national year as the issue times it (the
report year, the years before it curated first) runs its phases one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vetreport.paths import REPOSITORY_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def run_module(arguments: list[str], environment: dict[str, str] | None = None) -> str:
    """``python -m`` the arguments from the repository; their output, once they succeed."""
    completed = subprocess.run(
        [sys.executable, "-m", *arguments],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def run_bench(name: str, bucket: Path) -> str:
    environment = {
        **os.environ,
        "VETREPORT_BENCH_SCHOOLS": "12",
        "VETREPORT_BENCH_YEARS": "2022,2023",
        "VETREPORT_BENCH_BUCKET": str(bucket),
    }
    return run_module(["benchmarks.run", name], environment)


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


def run_phase(phase: str, bucket: Path) -> dict:
    output = run_module(["benchmarks.bench_national", "phase", phase, str(bucket)])
    return json.loads(output.strip().splitlines()[-1])


def test_a_report_year_is_timed_after_the_years_before_it_are_curated(tmp_path: Path) -> None:
    from vetreport.demo.national import write_national_bucket

    bucket = tmp_path / "national"
    write_national_bucket(bucket, 12, 2023, (2022, 2023))
    uploads = sorted(str(path.relative_to(bucket)) for path in bucket.glob("uploads/*/*/*"))
    by_year = {year: sum(f"uploads/{year}/" in key for key in uploads) for year in (2022, 2023)}

    earlier = run_phase("earlier-years", bucket)
    assert earlier["files"] == by_year[2022]
    assert "rejected = the manifest's bad files: True" in earlier["extra"], earlier
    project = run_phase("project", bucket)
    assert project["files"] == by_year[2023]  # the report year's uploads alone
    assert "rejected = the manifest's bad files: True" in project["extra"], project
    assert set(project["steps"]) == {"ingest", "aggregate", "history", "numbers", "publish"}
