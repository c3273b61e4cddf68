"""Validation of one large file: a one-million-row graduates CSV through ``validate_upload``.

Measures what a school's biggest upload costs: read (encoding, CSV), find the header,
normalise and cast, the Pandera model, the cross-field rules and the report. The file is
generated with Polars (vectorised, deterministic), with a realistic share of problems
(0.1% bad destinations, a few full-width digits, a total row), then validated in a fresh
child process so its peak RSS is the validator's alone.

Run: ``.venv/bin/python -m benchmarks.run bench_validate`` (or ``python -m
benchmarks.bench_validate [ROWS]``). Target: under 5 s for 1,000,000 rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROWS = 1_000_000
SCHOOL = "3306020001"
TARGET_SECONDS = 5.0
HEADER = {
    "school_code": "学校代码",
    "graduate_id": "毕业生编号",
    "major_name": "专业名称",
    "destination": "毕业去向",
    "is_major_matched": "是否对口就业",
    "starting_monthly_income_yuan": "初次就业月收入（元/月）",
    "is_undergraduate_line_reached": "是否上本科线",
}
MAJORS = ["护理", "数控技术应用", "会计事务", "电子商务", "汽车运用与维修"]
DESTINATIONS = ["直接就业", "单考单招", "五年制转段", "待就业", "参军入伍"]


def write_graduates_csv(path: Path, rows: int) -> None:
    """A graduates CSV with ``rows`` rows in GBK with CRLF, as Excel on Chinese Windows saves it.

    GBK is the slower path (decoded, then re-encoded for Polars) and keeps a million rows
    under the 50 MiB upload limit (UTF-8 spends 3 bytes on each Chinese character).
    """
    index = pl.int_range(0, rows, eager=True).alias("i")
    frame = pl.DataFrame(index).select(
        pl.lit(SCHOOL).alias(HEADER["school_code"]),
        pl.format("G{}", pl.col("i").cast(pl.Utf8).str.zfill(7)).alias(HEADER["graduate_id"]),
        pl.lit(pl.Series(MAJORS)).gather(pl.col("i") % len(MAJORS)).alias(HEADER["major_name"]),
        pl.when(pl.col("i") % 1000 == 7)
        .then(pl.lit("去火星"))  # 0.1% not an allowed destination
        .otherwise(pl.lit(pl.Series(DESTINATIONS)).gather(pl.col("i") % len(DESTINATIONS)))
        .alias(HEADER["destination"]),
        pl.when(pl.col("i") % len(DESTINATIONS) == 0)
        .then(pl.when(pl.col("i") % 3 == 0).then(pl.lit("否")).otherwise(pl.lit("是")))
        .alias(HEADER["is_major_matched"]),
        pl.when(pl.col("i") % len(DESTINATIONS) == 0)
        .then(
            pl.when(pl.col("i") % 97 == 0)
            .then(pl.lit("３,８００"))  # full-width digits and a thousands separator
            .otherwise((3000 + pl.col("i") % 2000).cast(pl.Utf8))
        )
        .alias(HEADER["starting_monthly_income_yuan"]),
        pl.when(pl.col("i") % 5 == 1)
        .then(pl.lit("是"))
        .otherwise(pl.lit("否"))
        .alias(HEADER["is_undergraduate_line_reached"]),
    )
    labels = ["合计", *[None] * (frame.width - 1)]
    total = pl.DataFrame({name: [label] for name, label in zip(frame.columns, labels, strict=True)})
    text = pl.concat([frame, total], how="vertical").write_csv(line_terminator="\r\n")
    path.write_bytes(text.encode("gbk"))


def _child(path: str) -> None:
    """Validate one file and print the figures as JSON (runs in a fresh process)."""
    import resource

    from vetreport.validate.checks import UploadContext, build_report, validate_upload

    data = Path(path).read_bytes()
    context = UploadContext(
        key=f"uploads/2024/{SCHOOL}/graduates.csv",
        year=2024,
        school_code=SCHOOL,
        dataset_id="graduates",
        extension="csv",
    )
    validate_upload(b"\r\n".join(data[:10000].splitlines()[:50]), context)  # warm caches
    started = time.perf_counter()
    results = validate_upload(data, context)
    validated = time.perf_counter()
    report = build_report(results, context, "bench")
    finished = time.perf_counter()
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": results[0].row_count,
                "validate_seconds": validated - started,
                "report_seconds": finished - validated,
                "peak_rss_mib": peak_rss_mib,
                "outcome": report["outcome"],
                "error_count": report["error_count"],
                "warning_count": report["warning_count"],
            }
        )
    )


def main(rows: int = ROWS) -> None:
    """Generate the file, validate it in a child process and print the figures."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "graduates.csv"
        started = time.perf_counter()
        write_graduates_csv(path, rows)
        size_mib = path.stat().st_size / 1024 / 1024
        seconds = time.perf_counter() - started
        print(f"generated {rows:,} rows ({size_mib:.1f} MiB) in {seconds:.1f} s")
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_validate", "--child", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    if figures["rows"] == 0:
        raise RuntimeError(f"the file was not read: {figures}")
    seconds = figures["validate_seconds"] + figures["report_seconds"]
    print(
        f"validate_upload: {figures['rows']:,} rows in {figures['validate_seconds']:.2f} s "
        f"({figures['rows'] / figures['validate_seconds']:,.0f} rows/s); "
        f"report {figures['report_seconds']:.2f} s; peak RSS {figures['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"outcome {figures['outcome']}: {figures['error_count']:,} errors, "
        f"{figures['warning_count']:,} warnings; "
        f"{'within' if seconds < TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:.0f} s target"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS)
