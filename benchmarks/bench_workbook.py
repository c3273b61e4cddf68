"""The version's workbook (tables.xlsx): CPU seconds and peak memory, per-cell vs column-wise.

``vetreport.publish.outputs.workbook.workbook_bytes`` writes one sheet per table. Its data
rows used to go through one xlsxwriter call per cell (kept as the tests' reference,
``tests/workbook_reference.py``); they are now built column-wise with Polars
(``vetreport.publish.outputs.xlsx_rows``). This benchmark times both on the same tables.

The tables are synthetic but shaped by the real aggregation code: indicator values for
every indicator of the catalogue, for N schools (in 10 cities of one province) and three
years, the way ``tests/unit/test_publish_outputs.py`` builds them, with values like real
ones (counts whole, shares and per-student figures fractions, ``value_unrounded`` at full
precision), put through ``shape_tables``; with ``indicator_values`` as publishing adds it
(cut at ``VETREPORT_WORKBOOK_SHEET_ROWS`` rows, default 50,000, as in production).

Each writer runs in its own child process so that its peak RSS (``ru_maxrss``) is its
own; the figure is the child's CPU time (``time.process_time``) of one ``workbook_bytes``
after a warm-up on a small table (imports, catalogue caches). The machine is shared: CPU
time says more than the wall clock.

Run:

    make bench BENCH=bench_workbook
    VETREPORT_BENCH_SCHOOLS=1000 .venv/bin/python -m benchmarks.run bench_workbook
    VETREPORT_WORKBOOK_SHEET_ROWS=200000 ...   # a longer indicator_values sheet
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import polars as pl

DEFAULT_SCHOOLS = 1000
YEAR = 2023
WRITERS = ("reference", "columnwise")


def bench_tables(schools: int) -> dict[str, pl.DataFrame]:
    """Every report table and indicator_values for ``schools`` schools in 10 cities."""
    from schemas.indicators import indicator_definitions
    from vetreport.aggregate.compute import shape_tables

    definitions = indicator_definitions().select(
        "indicator_id", "unit", "decimals", "is_school_level"
    )
    years = pl.DataFrame({"year": [YEAR - 2, YEAR - 1, YEAR]})
    cities = [f"城市{number:02d}市" for number in range(10)]
    registry = pl.DataFrame(
        {
            "school_code": [f"31{number:08d}" for number in range(schools)],
            "school_name": [f"第{number}职业技术学校" for number in range(schools)],
            "county_name": [f"县{number % 37:02d}区" for number in range(schools)],
            "city_name": [cities[number % len(cities)] for number in range(schools)],
        }
    )
    city_rows = (
        definitions.join(years, how="cross")
        .join(pl.DataFrame({"city_name": cities}), how="cross")
        .with_columns(
            pl.lit("city").alias("region_level"),
            *(pl.lit(None, pl.Utf8).alias(name) for name in registry.columns[:3]),
        )
    )
    school_rows = (
        definitions.filter(pl.col("is_school_level"))
        .join(years, how="cross")
        .join(registry, how="cross")
        .with_columns(pl.lit("school").alias("region_level"))
    )
    rows = pl.concat([city_rows, school_rows], how="diagonal").with_row_index("n")
    # Counts are whole; a share or a per-student figure is a quotient of two counts.
    numerator = (pl.col("n") * 7919 % 4093 + 17).cast(pl.Float64)
    denominator = (pl.col("n") * 104729 % 6007 + 251).cast(pl.Float64)
    unrounded = (
        pl.when(pl.col("decimals") == 0)
        .then(numerator)
        .when(pl.col("unit") == "%")
        .then(numerator / (numerator + denominator) * 100)
        .otherwise(numerator / denominator * 10)
    )
    values = rows.with_columns(unrounded.alias("value_unrounded")).with_columns(
        pl.col("value_unrounded").round(2).alias("indicator_value")
    )
    values = values.select(
        "indicator_id",
        "year",
        "region_level",
        "city_name",
        "county_name",
        "school_code",
        "school_name",
        "indicator_value",
        "value_unrounded",
    )
    tables = shape_tables(values, YEAR)
    return {**tables, "indicator_values": values}


def _child(writer: str, schools: int) -> dict[str, Any]:
    """Build the tables, warm up, write the workbook once; CPU seconds and peak RSS."""
    from tests import workbook_reference
    from vetreport.publish.outputs import workbook
    from vetreport.settings import load_settings

    write = workbook_reference.workbook_bytes if writer == "reference" else workbook.workbook_bytes
    tables = bench_tables(schools)
    write({"admissions": tables["admissions"]})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, wall = time.process_time(), time.perf_counter()
    body, _ = write(tables)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    return {
        "cpu": cpu,
        "wall": wall,
        "bytes": len(body),
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cells": sum(frame.height * frame.width for frame in tables.values()),
        "cells_written": sum(
            min(frame.height, load_settings().workbook_sheet_rows) * frame.width
            for frame in tables.values()
        ),
        "sheets": len(tables),
        "indicator_values_rows": tables["indicator_values"].height,
    }


def run_writer(writer: str, schools: int) -> dict[str, Any]:
    """One writer's figures, measured in a child process."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_workbook", "child", writer, str(schools)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    """Print CPU seconds, wall seconds, peak RSS and size of each writer's workbook."""
    schools = int(os.environ.get("VETREPORT_BENCH_SCHOOLS") or DEFAULT_SCHOOLS)
    from vetreport.settings import load_settings

    limit = load_settings().workbook_sheet_rows
    print(
        f"workbook bench: {schools} schools, 3 years, sheet rows at most {limit:,}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    figures = {writer: run_writer(writer, schools) for writer in WRITERS}
    first = figures[WRITERS[0]]
    print(
        f"  {first['sheets']} tables, {first['cells']:,} cells in the tables "
        f"(indicator_values {first['indicator_values_rows']:,} rows), "
        f"{first['cells_written']:,} in the sheets"
    )
    for writer, figure in figures.items():
        print(
            f"  {writer:10s} CPU {figure['cpu']:6.2f} s  wall {figure['wall']:6.2f} s  "
            f"peak RSS {figure['rss_peak_mib']:6.0f} MiB (after the tables "
            f"{figure['rss_before_mib']:.0f} MiB)  {figure['bytes'] / 2**20:.1f} MiB xlsx"
        )
    before, after = figures["reference"]["cpu"], figures["columnwise"]["cpu"]
    print(f"  CPU: {before / after:.1f}x less")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
