"""The annotated feedback workbooks: CPU milliseconds per workbook on each rendering path.

``vetreport.school.feedback.annotate_workbook`` renders, for every upload with findings,
the school's file as an XLSX with its problem cells marked. It has three paths: an XLSX
upload annotated as a copy (``xlsx``), a CSV upload written as a new workbook (``csv``) and
a refused file that gets the summary alone (``summary``). This benchmark builds real
reports by validating real uploads, the way ingest does, and times each path:

- the Shaoxing demo (``build_demo_uploads(2023, years=(2023,))``): its uploads with findings
  (none: validated as ingest does, the bureau's files as the bureau's, every file is clean);
- a synthetic national year (``vetreport.demo.national``, N schools, 3% of files with one
  defect, a 合计 row in one enrolment file in twenty): the uploads with findings of a
  realistic mix of UTF-8/GBK CSV and XLSX with a title row;
- the messy-file corpus (``tests/corpus``): its uploads with findings.

Each path's uploads are rendered in ``ROUNDS`` rounds after a warm-up round; the figure is
the fastest round's process CPU time (``time.process_time``) divided by its workbooks,
because the machine is shared and CPU time says more about the code than the wall clock.
Beside it, the same figure for the openpyxl-only implementation the workbooks replaced
(kept as the tests' reference, ``tests/feedback_reference.py``), measured in the same run.

Run:

    make bench BENCH=bench_feedback
    VETREPORT_BENCH_SCHOOLS=400 .venv/bin/python -m benchmarks.run bench_feedback
    .venv/bin/python -m benchmarks.bench_feedback profile xlsx   # cProfile of one path
"""

from __future__ import annotations

import collections
import cProfile
import csv
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import feedback_reference
from vetreport.bucket.keys import parse_upload_key
from vetreport.demo.generator import build_demo_uploads
from vetreport.demo.national import MANIFEST_KEY, write_national_bucket
from vetreport.school.feedback import annotate_workbook, workbook_kind
from vetreport.validate.checks import (
    BUREAU,
    SCHOOL,
    UploadContext,
    build_report,
    validate_upload,
)

DEFAULT_SCHOOLS = 200
ROUNDS = 5
REFERENCE = "the openpyxl-only implementation (tests/feedback_reference.py)"
PATHS = ("csv", "xlsx", "summary")
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"


@dataclass(frozen=True)
class FeedbackCase:
    """One upload with findings, its report, and the path its workbook takes."""

    source: str  # demo, national or corpus
    key: str
    data: bytes
    extension: str
    report: dict[str, Any]

    @property
    def path(self) -> str:
        """The rendering path: csv, xlsx or summary."""
        return workbook_kind(self.data, self.extension, self.report)


def report_of(key: str, data: bytes, dataset_id: str | None = None) -> dict[str, Any]:
    """The report ingest builds for an upload at ``key`` (no registry, no open-year check)."""
    upload = parse_upload_key(key)
    if dataset_id is None and not upload.is_workbook:
        dataset_id = upload.stem
    context = UploadContext(
        key=key,
        year=upload.year,
        school_code=upload.school_code,
        dataset_id=dataset_id,
        extension=upload.extension,
        submitter_role=BUREAU if upload.is_city_file else SCHOOL,
    )
    return build_report(validate_upload(data, context), context, "bench")


def _with_findings(source: str, uploads: dict[str, bytes]) -> list[FeedbackCase]:
    cases = []
    for key, data in uploads.items():
        report = report_of(key, data)
        if report["findings"]:
            cases.append(FeedbackCase(source, key, data, parse_upload_key(key).extension, report))
    return cases


def demo_cases() -> list[FeedbackCase]:
    """The Shaoxing demo's uploads of 2023 that have findings."""
    return _with_findings("demo", build_demo_uploads(2023, years=(2023,)))


def national_cases(schools: int) -> list[FeedbackCase]:
    """The uploads of a synthetic national year that carry a defect or a 合计 row."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_national_bucket(root, schools=schools, years=(2023,))
        with (root / MANIFEST_KEY).open(encoding="utf-8-sig", newline="") as stream:
            keys = [row["key"] for row in csv.DictReader(stream) if row["defect"] or row["mess"]]
        uploads = {key: (root / key).read_bytes() for key in keys}
    return _with_findings("national", uploads)


def corpus_cases() -> list[FeedbackCase]:
    """The messy-file corpus's uploads that have findings (as tests/unit/test_corpus.py)."""
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    cases = []
    for row in rows:
        key = f"uploads/{row['year']}/{row['school']}/{row['file']}"
        data = (CORPUS / row["file"]).read_bytes()
        report = report_of(key, data, row["dataset"] or None)
        if report["findings"]:
            extension = Path(row["file"]).suffix.lstrip(".")
            cases.append(FeedbackCase("corpus", key, data, extension, report))
    return cases


Renderer = Callable[[bytes, str, dict[str, Any]], bytes]


def cpu_ms_per_workbook(
    cases: list[FeedbackCase], render: Renderer = annotate_workbook, rounds: int = ROUNDS
) -> float:
    """CPU milliseconds per workbook: the fastest of ``rounds`` rounds over the cases.

    The fastest round is the one least disturbed by the machine's other work.
    """
    for case in cases:  # warm-up: imports, catalogue caches
        render(case.data, case.extension, case.report)
    fastest = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for case in cases:
            render(case.data, case.extension, case.report)
        fastest = min(fastest, time.process_time() - started)
    return fastest * 1000 / len(cases)


def all_cases(schools: int) -> list[FeedbackCase]:
    """The demo's, the national year's and the corpus's uploads with findings."""
    return demo_cases() + national_cases(schools) + corpus_cases()


def main() -> None:
    """Build the reports, then print the uploads per path and CPU ms per workbook."""
    schools = int(os.environ.get("VETREPORT_BENCH_SCHOOLS") or DEFAULT_SCHOOLS)
    started = time.perf_counter()
    cases = all_cases(schools)
    print(f"built {len(cases)} reports with findings in {time.perf_counter() - started:.1f} s")
    counts = collections.Counter((case.source, case.path) for case in cases)
    for source in ("demo", "national", "corpus"):
        shown = ", ".join(f"{path} {counts[(source, path)]}" for path in PATHS)
        note = f" ({schools} schools)" if source == "national" else ""
        print(f"  {source}{note} uploads with findings: {shown}")
    by_path = {path: [case for case in cases if case.path == path] for path in PATHS}
    print(f"CPU ms per workbook (fastest of {ROUNDS} rounds); before = {REFERENCE}")
    for path, chosen in by_path.items():
        if not chosen:
            print(f"  {path:8s} no uploads")
            continue
        findings = sum(len(case.report["findings"]) for case in chosen) / len(chosen)
        before = cpu_ms_per_workbook(chosen, feedback_reference.annotate_workbook)
        after = cpu_ms_per_workbook(chosen)
        print(
            f"  {path:8s} before {before:6.2f}  now {after:6.2f}  ({before / after:.1f}x; "
            f"{len(chosen)} uploads, {findings:.1f} findings each on average)"
        )


def profile(path: str, top: int = 25) -> None:
    """Print the cProfile of one path's workbooks (cumulative and own time)."""
    schools = int(os.environ.get("VETREPORT_BENCH_SCHOOLS") or DEFAULT_SCHOOLS)
    chosen = [case for case in all_cases(schools) if case.path == path]
    profiler = cProfile.Profile()
    profiler.enable()
    cpu_ms_per_workbook(chosen)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    if sys.argv[1:2] == ["profile"]:
        profile(sys.argv[2] if len(sys.argv) > 2 else "xlsx")
    else:
        main()
