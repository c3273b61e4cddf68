"""A national year on one machine: the pipeline against a plain script and the Polars floor.

Generates one synthetic national bucket (``vetreport.demo.national``: N schools in 31
provinces, every dataset, UTF-8-BOM and GBK CSV and XLSX with a title row, a few per cent of
bad files), then runs three phases on it, each in its own child process so that its peak
RSS (``ru_maxrss``) is its own:

- ``baseline``: the plain script an analyst would write instead of the project, with the
  same stack (Polars eager, one file at a time; pandas is not part of this environment):
  read every file (decode BOM or GBK, skip an XLSX title row), map the Chinese headers,
  check required columns, types, ranges, allowed values, keys and the school code, drop
  合计 rows, and sum each accepted file's numbers into city totals;
- ``floor``: what Polars needs at least to get those numbers: one glob ``scan_csv`` per
  dataset and year over the CSV files (columns by position, GBK read as lossy UTF-8,
  nothing checked), plus one ``read_excel`` per XLSX file (there is no glob for
  workbooks), the totals by city from the registry;
- ``project``: the pipeline as the sweep runs it, without Prefect: list what is not in
  the ledger yet, the bureau's files first, then ``ingest_keys`` on batches of about
  2,048 keys of whole schools (reports, curated Parquet, ledger records, each school's upload
  list), on spawned processes when the sweep would use them (``batch_processes``,
  ``VETREPORT_INGEST_PROCESSES``; the peak RSS of the largest is printed), then
  ``aggregate`` of the report year, then what the ``aggregate`` flow writes after it: the
  schools' history reports (with their upload lists), their numbers pages and ``publish``.

Seconds are the work inside each child, after its imports. Ratios are project/baseline and
project/floor. The load average is printed at start and end (the machine is shared).

Run (the report year only by default: one national year):

    make bench BENCH=bench_national SCHOOLS=1000
    VETREPORT_BENCH_SCHOOLS=100 .venv/bin/python -m benchmarks.run bench_national
    VETREPORT_BENCH_YEARS=2021,2022,2023 ...   # three years of uploads, report year 2023
    VETREPORT_BENCH_BUCKET=var/national ...    # keep the bucket (default: a temporary one)

A phase on its own: ``python -m benchmarks.bench_national phase NAME BUCKET [...]``. A
national year as the issue defines it (one report year, the two before it already
curated): generate three years, run ``phase earlier-years BUCKET`` (ingests every year
but the newest), then ``phase project BUCKET`` times the report year alone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from vetreport.paths import REPOSITORY_ROOT

DEFAULT_SCHOOLS = 1000
DEFAULT_YEARS = "2023"
SEED = 2023
SWEEP_BATCH = 2048  # keys per ingest task, as flows.ingest.DEFAULT_BATCH_SIZE
PHASES = ("generate", "baseline", "floor", "project")
TOTAL_LABEL = re.compile(r"^\s*(合\s*计|总\s*计|小\s*计|共\s*计)\s*[:：]?\s*$")


# --------------------------------------------------------------------------------------------
# The parent: run the phases in child processes and print the figures
# --------------------------------------------------------------------------------------------


def main() -> None:
    """Generate the bucket, run the three phases, print seconds, files/s, RSS and ratios."""
    schools = int(os.environ.get("VETREPORT_BENCH_SCHOOLS") or DEFAULT_SCHOOLS)
    years = os.environ.get("VETREPORT_BENCH_YEARS") or DEFAULT_YEARS
    kept = os.environ.get("VETREPORT_BENCH_BUCKET")
    load_start = os.getloadavg()
    print(
        f"national bench: {schools} schools, years {years}, seed {SEED}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average at start {_load(load_start)}",
        flush=True,
    )
    root = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="bench-national-"))
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: the bench needs a fresh bucket")
    try:
        figures = {"generate": _run_phase("generate", root, str(schools), years)}
        for phase in PHASES[1:]:
            figures[phase] = _run_phase(phase, root)
    finally:
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
    load_end = os.getloadavg()
    _print_table(figures)
    project = figures["project"]["seconds"]
    print(
        f"project/baseline {project / figures['baseline']['seconds']:.1f}x, "
        f"project/floor {project / figures['floor']['seconds']:.1f}x"
    )
    print(f"load average at start {_load(load_start)}, at end {_load(load_end)}")


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def _run_phase(phase: str, root: Path, *arguments: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return the JSON it prints last."""
    command = [sys.executable, "-m", "benchmarks.bench_national", "phase", phase, str(root)]
    started = time.perf_counter()
    completed = subprocess.run(
        [*command, *arguments],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"phase {phase} failed with exit code {completed.returncode}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["wall_seconds"] = time.perf_counter() - started
    print(f"  {phase}: {_phase_note(phase, figures)}", flush=True)
    return figures


def _phase_note(phase: str, figures: dict[str, Any]) -> str:
    note = f"{figures['seconds']:.1f} s"
    if phase == "generate":
        note += (
            f", {figures['files']} files ({figures['bad_files']} bad), "
            f"{figures['data_rows']:,} data rows, {figures['mib']:.0f} MiB"
        )
    elif phase == "project":
        steps = figures["steps"]
        note += ", " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
        note += f"; outcomes {figures['outcomes']}; peak RSS by the end of " + ", ".join(
            f"{name} {mib:.0f} MiB" for name, mib in figures["peaks"].items()
        )
    elif phase == "baseline":
        note += f"; accepted {figures['accepted']}, rejected {figures['rejected']}"
    if "extra" in figures:
        note += f"; {figures['extra']}"
    return note


def _print_table(figures: dict[str, dict[str, Any]]) -> None:
    print("| phase | seconds | files | files/s | peak RSS | RSS after imports |")
    print("| --- | --- | --- | --- | --- | --- |")
    for phase, values in figures.items():
        print(
            f"| {phase} | {values['seconds']:.1f} | {values['files']:,} | "
            f"{values['files'] / values['seconds']:,.0f} | {values['peak_rss_mib']:.0f} MiB | "
            f"{values['import_rss_mib']:.0f} MiB |"
        )


# --------------------------------------------------------------------------------------------
# The children: one phase each, printing one JSON line
# --------------------------------------------------------------------------------------------


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_generate(root: Path, schools: str, years: str) -> dict[str, Any]:
    from vetreport.demo.national import write_national_bucket

    imported = _rss_mib()
    summary = write_national_bucket(
        root, int(schools), SEED, tuple(int(year) for year in years.split(","))
    )
    return {
        "seconds": summary.seconds,
        "files": summary.files,
        "bad_files": summary.bad_files,
        "data_rows": summary.data_rows,
        "mib": summary.bytes_written / 2**20,
        "import_rss_mib": imported,
    }


def _upload_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "uploads").rglob("*") if path.is_file())


def _registry_cities(root: Path, year: int) -> dict[str, str]:
    """School code -> city, from the bureau's registry (UTF-8 with a BOM)."""
    import polars as pl

    path = root / f"uploads/{year}/_city/school_registry.csv"
    registry = pl.read_csv(path, infer_schema=False, encoding="utf8")
    registry = registry.rename({name: name.lstrip("\ufeff") for name in registry.columns})
    return dict(zip(registry["学校代码"], registry["地市"], strict=True))


def _is_manifest_bad(root: Path, rejected: list[str], among: list[str] | None = None) -> bool:
    """Whether the rejected keys are exactly the files the generator made bad (of ``among``)."""
    from vetreport.demo.national import read_manifest

    manifest = read_manifest(root)
    bad = manifest.filter(manifest["defect"].is_not_null())["key"].to_list()
    if among is not None:
        given = set(among)
        bad = [key for key in bad if key in given]
    return sorted(rejected) == sorted(bad)


def _phase_baseline(root: Path) -> dict[str, Any]:
    """The plain script: every file read and checked on its own, totals summed per city."""
    import io

    import polars as pl

    from schemas.catalogue import load_datasets

    imported = _rss_mib()
    started = time.perf_counter()
    datasets = load_datasets()
    files = _upload_files(root)
    cities = {
        year: _registry_cities(root, year) for year in {int(path.parts[-3]) for path in files}
    }
    totals: dict[tuple[int, str, str], dict[str, float]] = {}
    accepted = 0
    rejected: list[str] = []
    for path in files:
        year, school, name = int(path.parts[-3]), path.parts[-2], path.name
        if school == "_city":
            accepted += 1
            continue
        dataset = datasets[name.split(".")[0]]
        headers = {
            header: column.column_name
            for column in dataset.columns
            for header in (column.header_zh, *column.aliases)
        }
        if name.endswith(".xlsx"):
            frame = pl.read_excel(path, read_options={"header_row": 1}, infer_schema_length=0)
        else:
            data = path.read_bytes()
            text = data[3:].decode("utf-8") if data.startswith(b"\xef\xbb\xbf") else None
            text = text if text is not None else data.decode("gbk")
            frame = pl.read_csv(io.StringIO(text), infer_schema=False)
        frame = frame.rename({h: headers[h] for h in frame.columns if h in headers})
        frame = frame.select([c for c in dataset.column_names if c in frame.columns])
        problem = _baseline_problem(frame, dataset, school)
        if problem:
            rejected.append(path.relative_to(root).as_posix())
            continue
        accepted += 1
        numeric = [c.column_name for c in dataset.columns if c.data_type in ("integer", "number")]
        kept = _without_total_rows(frame, dataset)
        sums = kept.select(pl.col(numeric).cast(pl.Float64).sum()).row(0) if numeric else ()
        city_total = totals.setdefault((year, cities[year][school], dataset.dataset_id), {})
        city_total["rows"] = city_total.get("rows", 0) + kept.height
        for column, value in zip(numeric, sums, strict=True):
            city_total[column] = city_total.get(column, 0.0) + (value or 0.0)
    return {
        "seconds": time.perf_counter() - started,
        "files": len(files),
        "accepted": accepted,
        "rejected": len(rejected),
        "extra": f"{len({(y, c) for y, c, _ in totals})} city-years totalled; "
        f"rejected = the manifest's bad files: {_is_manifest_bad(root, rejected)}",
        "import_rss_mib": imported,
    }


def _without_total_rows(frame: Any, dataset: Any) -> Any:
    import polars as pl

    labels = [c for c in (*dataset.key_columns, frame.columns[0]) if c in frame.columns]
    is_total = pl.any_horizontal(
        pl.col(c).cast(pl.Utf8).str.contains(TOTAL_LABEL.pattern).fill_null(False) for c in labels
    )
    return frame.filter(~is_total)


def _baseline_problem(frame: Any, dataset: Any, school: str) -> str | None:
    """The first reason to refuse the file, or None: what a careful analyst would check."""
    import polars as pl

    if frame.height == 0:
        return "empty"
    missing = [c.column_name for c in dataset.columns if c.is_required]
    missing = [name for name in missing if name not in frame.columns]
    if missing:
        return f"missing {missing}"
    frame = _without_total_rows(frame, dataset)
    for column in dataset.columns:
        if column.column_name not in frame.columns:
            continue
        text = pl.col(column.column_name).cast(pl.Utf8).str.strip_chars()
        filled = frame.select(text.is_not_null() & (text != "")).to_series()
        if column.is_required and not filled.all():
            return f"{column.column_name} empty"
        if column.data_type in ("integer", "number"):
            values = frame.select(text.cast(pl.Float64, strict=False)).to_series()
            if (values.is_null() & filled).any():
                return f"{column.column_name} not a number"
            if column.min_value is not None and (values < column.min_value).any():
                return f"{column.column_name} below range"
            if column.max_value is not None and (values > column.max_value).any():
                return f"{column.column_name} above range"
        elif column.data_type == "boolean":
            if not frame.select(text.is_in(["是", "否"]) | ~filled).to_series().all():
                return f"{column.column_name} not 是/否"
        elif column.allowed_values:
            allowed = list(column.allowed_values)
            if not frame.select(text.is_in(allowed) | ~filled).to_series().all():
                return f"{column.column_name} not allowed"
    if frame.select(pl.struct(list(dataset.key_columns)).is_duplicated().any()).item():
        return "duplicate key"
    if not (frame["school_code"].cast(pl.Utf8) == school).all():
        return "school code"
    return None


def _phase_floor(root: Path) -> dict[str, Any]:
    """One glob scan per dataset and year (CSV), one read per workbook, totals per city."""
    import polars as pl

    from schemas.catalogue import load_datasets
    from vetreport.demo.generator import SCHOOL_DATASETS

    imported = _rss_mib()
    started = time.perf_counter()
    datasets = load_datasets()
    files = _upload_files(root)
    years = sorted({int(path.parts[-3]) for path in files})
    rows = workbooks = 0
    csv_seconds = workbook_seconds = 0.0
    city_years = set()
    for year in years:
        registry = pl.DataFrame(
            list(_registry_cities(root, year).items()), schema=["school", "city"], orient="row"
        )
        for dataset_id in SCHOOL_DATASETS:
            dataset = datasets[dataset_id]
            names = dataset.column_names
            numeric = [
                c.column_name for c in dataset.columns if c.data_type in ("integer", "number")
            ]
            parts = []
            mark = time.perf_counter()
            pattern = f"{root}/uploads/{year}/*/{dataset_id}.csv"
            if any((root / f"uploads/{year}").glob(f"*/{dataset_id}.csv")):
                parts.append(
                    pl.scan_csv(
                        pattern,
                        has_header=False,
                        skip_rows=1,
                        schema=dict.fromkeys(names, pl.Utf8),
                        encoding="utf8-lossy",
                        truncate_ragged_lines=True,
                        raise_if_empty=False,
                        include_file_paths="path",
                    ).collect()
                )
            csv_seconds += time.perf_counter() - mark
            mark = time.perf_counter()
            for path in (root / f"uploads/{year}").glob(f"*/{dataset_id}.xlsx"):
                workbooks += 1
                sheet = pl.read_excel(path, read_options={"header_row": 1}, infer_schema_length=0)
                sheet = sheet.select(pl.all().cast(pl.Utf8))
                sheet.columns = names[: sheet.width]
                parts.append(sheet.with_columns(pl.lit(str(path)).alias("path")))
            workbook_seconds += time.perf_counter() - mark
            frame = pl.concat(parts, how="diagonal")
            rows += frame.height
            totals = (
                frame.with_columns(
                    pl.col("path").str.extract(r"/([^/]+)/[^/]+$").alias("school"),
                    *(pl.col(c).cast(pl.Float64, strict=False) for c in numeric),
                )
                .join(registry, on="school", how="inner")
                .group_by("city")
                .agg(pl.len().alias("rows"), *(pl.col(c).sum() for c in numeric))
            )
            city_years |= {(year, city) for city in totals["city"]}
    return {
        "seconds": time.perf_counter() - started,
        "files": len(files),
        "extra": f"{rows:,} rows read: CSV glob scans {csv_seconds:.1f} s, "
        f"{workbooks} workbooks one by one {workbook_seconds:.1f} s; "
        f"{len(city_years)} city-years totalled",
        "import_rss_mib": imported,
    }


def write_numbers_pages(store: Any, result: Any) -> int:
    """Every school's numbers page, as the aggregate flow writes them after the history."""
    from vetreport.aggregate.school_feedback import PEER_GROUP_MINIMUM
    from vetreport.school.numbers_page import write_school_numbers

    return write_school_numbers(
        store,
        result.school_feedback,
        result.history_findings,
        result.report_year,
        PEER_GROUP_MINIMUM,
    )


def _phase_project(root: Path) -> dict[str, Any]:
    """The sweep's work without Prefect: ingest in batches, aggregate, history, publish."""
    from collections import Counter

    from vetreport.aggregate.compute import aggregate
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import unprocessed_upload_keys
    from vetreport.curate.school_index import write_history_and_indexes
    from vetreport.publish.writer import publish

    imported = _rss_mib()
    store = LocalStore(root)
    steps: dict[str, float] = {}
    peaks: dict[str, float] = {}  # ru_maxrss after each step: the peak up to its end
    started = time.perf_counter()
    keys = unprocessed_upload_keys(store)
    results, processes = _ingest_as_the_sweep(root, keys)
    steps["ingest"] = time.perf_counter() - started
    peaks["ingest"] = _rss_mib()
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report_year = max(int(key.split("/")[1]) for key in keys)
    mark = time.perf_counter()
    result = aggregate(store, report_year)
    steps["aggregate"] = time.perf_counter() - mark
    peaks["aggregate"] = _rss_mib()
    mark = time.perf_counter()
    write_history_and_indexes(
        store, result.history_findings, result.report_year, result.schools_in_year
    )
    steps["history"] = time.perf_counter() - mark
    peaks["history"] = _rss_mib()
    mark = time.perf_counter()
    write_numbers_pages(store, result)
    steps["numbers"] = time.perf_counter() - mark
    peaks["numbers"] = _rss_mib()
    mark = time.perf_counter()
    published = publish(store, result)
    steps["publish"] = time.perf_counter() - mark
    peaks["publish"] = _rss_mib()
    outcomes = Counter(outcome for _, outcome in results)
    rejected = [key for key, outcome in results if outcome == "rejected"]
    return {
        "seconds": time.perf_counter() - started,
        "files": len(keys),
        "steps": steps,
        "peaks": peaks,
        "outcomes": dict(sorted(outcomes.items())),
        "extra": f"{report_year} v{published.version}, "
        f"{result.indicator_values.height:,} indicator values; "
        f"rejected = the manifest's bad files: {_is_manifest_bad(root, rejected, keys)}; "
        f"ingest on {processes} process(es)"
        + (
            f", the largest ingest child's peak RSS {children_peak:.0f} MiB"
            if processes > 1
            else ""
        ),
        "import_rss_mib": imported,
        "processes": processes,
        "children_peak_rss_mib": children_peak,
    }


def _ingest_as_the_sweep(root: Path, keys: list[str]) -> tuple[list[tuple[str, str]], int]:
    """Ingest ``keys`` as the sweep does; (key, outcome) of each, and the processes used.

    As flows.ingest.ingest_uploads: the bureau's files first, then whole schools a batch,
    on as many spawned processes as batch_processes says (VETREPORT_INGEST_PROCESSES),
    else in turn.
    """
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import ingest_keys, split_city_first
    from vetreport.curate.shards import batch_processes, whole_school_batches
    from vetreport.settings import load_settings

    city_keys, school_keys = split_city_first(keys)
    store = LocalStore(root)
    results = [(result.key, result.outcome) for result in ingest_keys(store, city_keys)]
    batches = whole_school_batches(school_keys, SWEEP_BATCH)
    processes = batch_processes(batches, load_settings().ingest_processes)
    if processes > 1:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
            for outcomes in pool.map(_ingest_batch, [root] * len(batches), batches):
                results += outcomes
    else:
        for batch in batches:
            results += _ingest_batch(root, batch)
    return results, processes


def _phase_earlier_years(root: Path) -> dict[str, Any]:
    """Ingest every year's uploads but the newest: the years a national year finds curated.

    Run before ``project`` on a bucket of several years (``phase earlier-years BUCKET``),
    the project phase then times one report year against two curated ones, as the issue
    defines a national year: its aggregation reads three years, its history compares them.
    """
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import unprocessed_upload_keys

    imported = _rss_mib()
    started = time.perf_counter()
    keys = unprocessed_upload_keys(LocalStore(root))
    newest = max(int(key.split("/")[1]) for key in keys)
    earlier = [key for key in keys if int(key.split("/")[1]) < newest]
    results, processes = _ingest_as_the_sweep(root, earlier)
    rejected = [key for key, outcome in results if outcome == "rejected"]
    return {
        "seconds": time.perf_counter() - started,
        "files": len(earlier),
        "extra": f"years before {newest} ingested on {processes} process(es); "
        f"rejected = the manifest's bad files: {_is_manifest_bad(root, rejected, earlier)}",
        "import_rss_mib": imported,
    }


def _ingest_batch(root: Path, keys: list[str]) -> list[tuple[str, str]]:
    """One sweep batch, as flows.ingest.ingest_batch does it: (key, outcome) of each key."""
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import ingest_keys

    return [(result.key, result.outcome) for result in ingest_keys(LocalStore(root), keys)]


def _child(arguments: list[str]) -> None:
    phase, root, *rest = arguments
    runner = {
        "generate": _phase_generate,
        "baseline": _phase_baseline,
        "floor": _phase_floor,
        "project": _phase_project,
        "earlier-years": _phase_earlier_years,
    }[phase]
    figures = runner(Path(root), *rest)
    figures["peak_rss_mib"] = _rss_mib()
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "phase":
        _child(sys.argv[2:])
    else:
        main()
