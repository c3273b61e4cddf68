"""Where one ingest of a folder bucket spends its time, stage by stage (no profiler).

Usage: ``python -m benchmarks.ingest_stages BUCKET_DIR [KEYS_PER_CALL]`` on a bucket made by
``vetreport demo-data --national`` (it ingests it: copy the folder first to run again).
Each stage's wall time is summed over its calls; stages that run in the write pool's
threads (record, school index) add up the time of threads running side by side, so the
column can exceed the total. Process CPU seconds are printed beside the wall time, because
on a shared machine CPU time says more about the code than the wall clock.
"""

from __future__ import annotations

import collections
import functools
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import vetreport.curate.ingest as ingest
import vetreport.validate.checks as checks
from vetreport.bucket.store import LocalStore

seconds_by_stage: collections.Counter[str] = collections.Counter()
calls_by_stage: collections.Counter[str] = collections.Counter()

STAGES = (
    (checks, "_prepared_or_unreadable", "read and find the header (per file)"),
    (checks, "read_grids", "  of which reading"),
    (checks, "find_header", "  of which the header search"),
    (checks, "normalise_batch", "normalise (per batch and dataset)"),
    (checks, "_checked", "Pandera, row rules, school codes (per batch and dataset)"),
    (ingest, "build_reports", "build the reports (per batch)"),
    (ingest, "_school_report_writes", "render HTML pages and workbooks (per file)"),
    (ingest, "annotate_workbook", "  of which annotated workbooks"),
    (ingest, "_put_all", "write reports and curated files (thread pool)"),
    (ingest, "_write_curated", "curated Parquet (per batch, dataset and year)"),
    (ingest, "_record", "ledger records (thread pool, summed over threads)"),
    (ingest, "write_school_index", "school upload lists (thread pool, summed)"),
)


def _timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*arguments: Any, **keywords: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*arguments, **keywords)
        finally:
            seconds_by_stage[label] += time.perf_counter() - started
            calls_by_stage[label] += 1

    return timed


def main() -> None:
    """Ingest the bucket given on the command line and print the time of each stage."""
    root = sys.argv[1]
    keys_per_call = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    for module, name, label in STAGES:
        setattr(module, name, _timed(getattr(module, name), label))
    store = LocalStore(root)
    started = time.perf_counter()
    keys = ingest.unprocessed_upload_keys(store)
    city_keys, school_keys = ingest.split_city_first(keys)
    ingest.ingest_keys(store, city_keys)
    for start in range(0, len(school_keys), keys_per_call):
        ingest.ingest_keys(store, school_keys[start : start + keys_per_call])
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{len(keys):,} files in {wall:.1f} s ({len(keys) / wall:.0f} files/s), process CPU "
        f"{usage.ru_utime + usage.ru_stime:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB, "
        f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}"
    )
    print("| stage | seconds | calls | ms a file |\n| --- | --- | --- | --- |")
    for _module, _name, label in STAGES:
        spent = seconds_by_stage[label]
        print(
            f"| {label.strip()} | {spent:.2f} | {calls_by_stage[label]:,} | "
            f"{spent / len(keys) * 1000:.2f} |"
        )


if __name__ == "__main__":
    main()
