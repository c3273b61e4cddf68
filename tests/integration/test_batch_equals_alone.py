"""Batching changes nothing a school or a reader sees: the demo and the corpus, both ways.

Ingest validates, normalises and curates many uploads together for speed. Every report
must be the one the upload gets when it is validated alone, and the published numbers
those of ingesting one file at a time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from vetreport.aggregate.compute import aggregate
from vetreport.bucket.keys import parse_upload_key
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys, split_city_first, unprocessed_upload_keys
from vetreport.demo.generator import build_demo_uploads
from vetreport.validate.checks import (
    UploadContext,
    build_report,
    build_reports,
    validate_uploads,
)

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _corpus_uploads() -> list[tuple[bytes, UploadContext]]:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return [
        (
            (CORPUS / row["file"]).read_bytes(),
            UploadContext(
                key=f"uploads/{row['year']}/{row['school']}/{row['file']}",
                year=int(row["year"]),
                school_code=row["school"],
                dataset_id=row["dataset"] or None,
                extension=row["file"].rsplit(".", 1)[-1],
            ),
        )
        for row in rows
    ]


def _demo_uploads() -> list[tuple[bytes, UploadContext]]:
    uploads = []
    for key, data in build_demo_uploads().items():
        upload = parse_upload_key(key)
        uploads.append(
            (
                data,
                UploadContext(
                    key=upload.key,
                    year=upload.year,
                    school_code=upload.school_code,
                    dataset_id=None if upload.is_workbook else upload.stem,
                    extension=upload.extension,
                    submitter_role="bureau" if upload.is_city_file else "school",
                ),
            )
        )
    return uploads


def _as_json(report: dict) -> str:
    return json.dumps(report, sort_keys=True, default=str, ensure_ascii=False)


def test_reports_of_the_corpus_and_the_demo_validated_together_equal_each_alone() -> None:
    uploads = _corpus_uploads() + _demo_uploads()
    assert len(uploads) > 500
    together = validate_uploads(uploads)
    reports = build_reports(
        [(results, context, "s") for (_, context), results in zip(uploads, together, strict=True)]
    )
    differing = []
    for (data, context), report in zip(uploads, reports, strict=True):
        alone = build_report(validate_uploads([(data, context)])[0], context, "s")
        if _as_json(report) != _as_json(alone):
            differing.append(context.key)
    assert differing == []
    assert {report["outcome"] for report in reports} == {
        "accepted",
        "accepted_with_warnings",
        "rejected",
    }
    assert sum(report["findings"] != [] for report in reports) > 25


def test_the_demo_ingested_in_batches_publishes_what_one_file_at_a_time_does(
    tmp_path: Path,
) -> None:
    values = {}
    for label, batch_bytes in (("batched", 64 << 20), ("one file a batch", 1)):
        store = open_store(str(tmp_path / label))
        for key, data in build_demo_uploads(years=(2023,)).items():
            store.put(key, data)
        city, schools = split_city_first(unprocessed_upload_keys(store))
        ingest_keys(store, city)
        results = ingest_keys(store, schools, batch_bytes=batch_bytes)
        outcomes = sorted((result.key, result.outcome) for result in results)
        values[label] = (outcomes, aggregate(store, 2023).indicator_values)
    (outcomes_batched, batched), (outcomes_alone, alone) = values.values()
    assert outcomes_batched == outcomes_alone
    order = ["year", "region_level", "school_code", "city_name", "county_name", "indicator_id"]
    order += ["province_name"]
    assert batched.sort(order, nulls_last=True).equals(alone.sort(order, nulls_last=True))
    assert batched.filter(pl.col("indicator_value").is_not_null()).height > 1000
