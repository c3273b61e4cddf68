"""Scale benchmark: many schools' uploads through ingest, aggregation and publishing.

Builds a local bucket with N synthetic schools (default 600) by cloning the demo's CSV
schools under new codes, then times, without Prefect in the way:

- ingest of every upload (read, validate, report, curated Parquet, ledger), per file;
- aggregation of the report year (ledger, curated reads, DuckDB SQL, reshaping);
- publishing one version.

It prints files/s and rows/s, and extrapolates to the national target (about 7,000 schools
and 60,000 files) so the gap to DESIGN §7 is visible. Run:

    make bench BENCH=bench_scale              # or
    .venv/bin/python -m benchmarks.run bench_scale
    VETREPORT_BENCH_SCHOOLS=2000 .venv/bin/python -m benchmarks.run bench_scale
"""

from __future__ import annotations

import io
import os
import resource
import tempfile
import time

import polars as pl

from vetreport.aggregate.compute import aggregate
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ingest_keys
from vetreport.demo.generator import build_demo_uploads
from vetreport.publish.writer import publish

REPORT_YEAR = 2023
NATIONAL_SCHOOLS = 7000


def _csv_school_files(uploads: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    """The demo schools whose four files are all CSV, keyed by school code."""
    by_school: dict[str, dict[str, bytes]] = {}
    for key, body in uploads.items():
        parts = key.split("/")
        if parts[2] != "_city":
            by_school.setdefault(parts[2], {})[parts[3]] = body
    return {
        code: files
        for code, files in by_school.items()
        if all(name.endswith(".csv") for name in files)
    }


def build_bucket(root: str, school_count: int) -> tuple[LocalStore, list[str], int]:
    """Write N schools' uploads for every year plus the bureau files; return keys and rows."""
    store = LocalStore(root)
    uploads = build_demo_uploads()
    keys: list[str] = []
    rows = 0
    for year in (2021, 2022, 2023):
        year_uploads = {k: v for k, v in uploads.items() if k.startswith(f"uploads/{year}/")}
        templates = list(_csv_school_files(year_uploads).items())
        registry = pl.read_csv(
            io.BytesIO(year_uploads[f"uploads/{year}/_city/school_registry.csv"])
        )
        template_rows = registry.to_dicts()
        registry_rows = []
        for index in range(school_count):
            source_code, files = templates[index % len(templates)]
            code = f"39{index:08d}"
            for name, body in files.items():
                key = f"uploads/{year}/{code}/{name}"
                text = body.replace(source_code.encode(), code.encode())
                store.put(key, text)
                keys.append(key)
                rows += text.count(b"\n") - 1
            row = dict(next(r for r in template_rows if str(r[registry.columns[0]]) == source_code))
            row[registry.columns[0]] = code
            row[registry.columns[1]] = f"示例学校{index:05d}"
            registry_rows.append(row)
        buffer = io.BytesIO()
        pl.DataFrame(registry_rows).write_csv(buffer, include_bom=True)
        store.put(f"uploads/{year}/_city/school_registry.csv", buffer.getvalue())
        city_key = f"uploads/{year}/_city/city_reference.csv"
        store.put(city_key, year_uploads[city_key])
        keys += [f"uploads/{year}/_city/school_registry.csv", city_key]
    return store, keys, rows


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Build the bucket, time each stage, print figures and the national extrapolation."""
    school_count = int(os.environ.get("VETREPORT_BENCH_SCHOOLS", "600"))
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        store, keys, rows = build_bucket(root, school_count)
        print(
            f"bucket: {school_count} schools x 3 years, {len(keys)} files, {rows} data rows "
            f"({time.perf_counter() - started:.1f} s to write)"
        )

        started = time.perf_counter()
        results = ingest_keys(store, keys)
        ingest_seconds = time.perf_counter() - started
        outcomes = pl.Series([r.outcome for r in results]).value_counts().to_dicts()
        print(
            f"ingest: {ingest_seconds:.1f} s, {len(keys) / ingest_seconds:.0f} files/s, "
            f"{rows / ingest_seconds:,.0f} rows/s; outcomes {outcomes}"
        )

        started = time.perf_counter()
        result = aggregate(store, REPORT_YEAR)
        aggregate_seconds = time.perf_counter() - started
        print(
            f"aggregate: {aggregate_seconds:.1f} s "
            f"({result.indicator_values.height} indicator values)"
        )

        started = time.perf_counter()
        published = publish(store, result)
        publish_seconds = time.perf_counter() - started
        print(f"publish: {publish_seconds:.1f} s (v{published.version})")
        print(f"peak RSS: {_peak_rss_mib():.0f} MiB")

        scale = NATIONAL_SCHOOLS / school_count
        print(
            f"extrapolated to {NATIONAL_SCHOOLS} schools (linear, one process): ingest "
            f"{ingest_seconds * scale / 60:.1f} min, aggregate+publish "
            f"{(aggregate_seconds + publish_seconds) * scale:.0f} s"
        )
