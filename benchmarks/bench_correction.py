"""One school's correction in a national bucket: ingest it, aggregate, publish.

Needs a bucket that ``bench_national`` kept (``VETREPORT_BENCH_BUCKET``: ingested,
aggregated and published once). It works on that bucket in place: the graduates CSV of
the N-th accepted school file (``VETREPORT_BENCH_CORRECTION``, default 1: each run takes
another school) loses its last graduate, as a school correcting its file would, then the
sweep's steps run without Prefect and their seconds (wall and CPU of the process), peak
RSS, the schools whose measures were recomputed and the changelog's summary are printed.
The load average is printed at start and end (the machine is shared).

    # once, the bucket:
    VETREPORT_BENCH_BUCKET=/tmp/national make bench BENCH=bench_national SCHOOLS=1000
    # then, each run correcting another school:
    VETREPORT_BENCH_BUCKET=/tmp/national make bench BENCH=bench_correction
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import polars as pl

from benchmarks.bench_national import write_numbers_pages
from vetreport.aggregate.compute import aggregate
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.curate.school_index import write_history_and_indexes
from vetreport.demo.national import read_manifest
from vetreport.publish.writer import publish

REPORT_YEAR = 2023


def correct_graduates_file(root: Path, index: int) -> str:
    """Drop the last graduate of the index-th accepted graduates CSV; return its key."""
    manifest = read_manifest(root)
    key = manifest.filter(
        pl.col("key").str.ends_with("/graduates.csv")
        & pl.col("defect").is_null()
        & (pl.col("data_rows") >= 3)
    ).item(index, "key")
    path = root / key
    body = path.read_bytes()
    encoding = "utf-8-sig" if body.startswith(b"\xef\xbb\xbf") else "gbk"
    lines = body.decode(encoding).splitlines(keepends=True)
    while not lines[-1].strip():
        lines.pop()
    lines.pop()
    path.write_bytes("".join(lines).encode(encoding))
    return key


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Correct one school's file and time what republishing it costs."""
    bucket = os.environ.get("VETREPORT_BENCH_BUCKET")
    if not bucket:
        print("skipped: set VETREPORT_BENCH_BUCKET to a bucket bench_national kept")
        return
    root = Path(bucket)
    index = int(os.environ.get("VETREPORT_BENCH_CORRECTION") or 1)
    load_start = os.getloadavg()
    store = LocalStore(root)
    key = correct_graduates_file(root, index)
    print(f"corrected {key}; load average at start {load_start[0]:.2f}", flush=True)
    marks = [(time.perf_counter(), time.process_time())]

    def lap(name: str, note: str = "") -> None:
        marks.append((time.perf_counter(), time.process_time()))
        (wall_0, cpu_0), (wall_1, cpu_1) = marks[-2], marks[-1]
        print(
            f"  {name}: {wall_1 - wall_0:.1f} s (CPU {cpu_1 - cpu_0:.1f} s), "
            f"peak RSS {_peak_mib():.0f} MiB{note}",
            flush=True,
        )

    keys = unprocessed_upload_keys(store, REPORT_YEAR)
    ingest_keys(store, keys)
    lap("ingest", f"; {len(keys)} key(s)")
    result = aggregate(store, REPORT_YEAR)
    lap(
        "aggregate",
        f"; measures recomputed for {result.recomputed_school_count} schools, "
        f"{result.reused_school_count} from the cache",
    )
    write_history_and_indexes(
        store, result.history_findings, result.report_year, result.schools_in_year
    )
    lap("history")
    write_numbers_pages(store, result)
    lap("numbers")
    published = publish(store, result)
    lap("publish", f"; v{published.version}, changelog {published.manifest['changelog']}")
    (wall_0, cpu_0), (wall_1, cpu_1) = marks[0], marks[-1]
    print(
        f"correction republished in {wall_1 - wall_0:.1f} s (CPU {cpu_1 - cpu_0:.1f} s); "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )
