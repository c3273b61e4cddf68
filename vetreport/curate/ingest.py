"""Ingest: one upload in, a report, curated rows and a ledger record out.

What belongs here: the steps of processing one object version, in the order that keeps
the bucket consistent if the process dies at any point:

1. skip if the ledger already has this submission (same key and version: a no-op);
2. read and validate (``vetreport.validate.checks``); a file that cannot be read at all is
   also copied to quarantine/ with its reason;
3. write the reports: JSON for machines, then the school-facing HTML page and annotated
   workbook from ``vetreport.school.feedback`` (a rendering failure is logged, never fatal);
4. write curated Parquet for each accepted dataset (deterministic keys, so a retry
   overwrites the same object);
5. write the ledger record last, with put-if-absent: only then does the submission count.

Prefect flows call ``ingest_keys`` on batches of keys; nothing here imports Prefect.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl

from schemas.catalogue import SCHEMA_VERSION, load_datasets
from vetreport.bucket.keys import (
    CITY_SUBMITTER,
    LayoutError,
    UploadKey,
    curated_key,
    ledger_key,
    ledger_prefix,
    parse_upload_key,
    quarantine_key,
    report_key,
    submission_id,
    unsorted_ledger_key,
    uploads_prefix,
    year_of_upload_key,
)
from vetreport.bucket.store import KeyNotFound, ObjectInfo, ObjectStore
from vetreport.curate.ledger import (
    current_submissions,
    processed_submission_ids,
    read_records_under,
    write_record,
)
from vetreport.curate.school_index import write_school_index
from vetreport.school.feedback import annotate_workbook, render_html
from vetreport.validate.checks import (
    REJECTED,
    DatasetResult,
    UploadContext,
    build_report,
    validate_uploads,
)
from vetreport.validate.normalise import finding_rows
from vetreport.validate.read import SOURCE_ROW

QUARANTINE_RULE_LAYERS = ("file",)
# Uploads validated together: at most this many bytes of files held in memory at once.
BATCH_BYTES = 64 * 1024 * 1024
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What happened to one upload."""

    key: str
    submission_id: str
    outcome: str
    was_skipped: bool
    report_key: str | None
    datasets: tuple[str, ...] = ()


def registry_codes(store: ObjectStore, year: int) -> frozenset[str] | None:
    """The school codes of the year's current accepted registry, or None if there is none."""
    prefix = f"{ledger_prefix(year)}{CITY_SUBMITTER}/school_registry/"
    current = current_submissions(read_records_under(store, [prefix]))
    if current.height == 0:
        return None
    frame = pl.read_parquet(io.BytesIO(store.get(current.item(0, "curated_key"))))
    return frozenset(frame.get_column("school_code").drop_nulls().to_list())


def order_for_ingest(keys: list[str]) -> list[str]:
    """Bureau files first (the registry decides which schools count), then the rest."""
    return sorted(keys, key=lambda key: (f"/{CITY_SUBMITTER}/" not in key, key))


def ingest_keys(
    store: ObjectStore, keys: list[str], batch_bytes: int = BATCH_BYTES
) -> list[IngestResult]:
    """Ingest upload keys; each key's failure is contained to that key.

    Bureau files go first, one at a time (the registry they carry decides which school
    codes count). The schools' files are then validated together in batches of up to
    ``batch_bytes`` of uploads (see ``validate_uploads``) and each is written out on its
    own, in the order of the module docstring. A key deleted since its event is skipped.
    """
    ordered = order_for_ingest(keys)
    results: list[IngestResult] = []
    registries: dict[int, frozenset[str] | None] = {}
    batch: list[ObjectInfo] = []
    size = 0
    for key in ordered:
        try:
            info = store.head(key)
        except KeyNotFound:
            continue  # deleted between the event and now: nothing to process
        if f"/{CITY_SUBMITTER}/" in key:
            results += _ingest_batch(store, [info], registries)
            registries.clear()  # a new registry may have arrived
            continue
        batch.append(info)
        size += info.size_bytes
        if size >= batch_bytes:
            results += _ingest_batch(store, batch, registries)
            batch, size = [], 0
    if batch:
        results += _ingest_batch(store, batch, registries)
    _write_school_indexes(store, results)
    return results


def _write_school_indexes(store: ObjectStore, results: list[IngestResult]) -> None:
    """Rewrite the upload list of every school whose uploads were just processed.

    Like the report pages, a courtesy: a failure is logged and the ingest still counts.
    """
    touched = set()
    for result in results:
        if result.was_skipped or result.report_key is None:
            continue
        upload = parse_upload_key(result.key)
        touched.add((upload.year, upload.submitter))
    for year, submitter in sorted(touched):
        try:
            write_school_index(store, year, submitter)
        except Exception:
            LOGGER.exception("could not write the upload list of %s %s", year, submitter)


@dataclass
class _Pending:
    """An upload read and placed, waiting for its batch's validation."""

    info: ObjectInfo
    upload: UploadKey
    submission: str
    context: UploadContext
    registry: frozenset[str] | None
    data: bytes


def _ingest_batch(
    store: ObjectStore, infos: list[ObjectInfo], registries: dict[int, frozenset[str] | None]
) -> list[IngestResult]:
    """Ingest a batch of object versions: done ones skipped, the rest validated together.

    Results come in the order of ``infos``. The same version twice in a batch is processed
    once; the second is reported as skipped, as it would be in a later batch.
    """
    slots: list[IngestResult | _Pending | str] = []
    pending: dict[str, _Pending] = {}
    for info in infos:
        year = _year_of(info.key)
        is_school_file = f"/{CITY_SUBMITTER}/" not in info.key
        if year is not None and year not in registries and is_school_file:
            registries[year] = registry_codes(store, year)
        submission = submission_id(info.key, info.version_token)
        if submission in pending:
            slots.append(submission)  # a repeat of an upload earlier in this batch
            continue
        started = _start(store, info, registries.get(year) if year else None)
        if isinstance(started, _Pending):
            pending[submission] = started
        slots.append(started)
    validated = validate_uploads([(entry.data, entry.context) for entry in pending.values()])
    finished = {
        submission: _finish(store, entry, results)
        for (submission, entry), results in zip(pending.items(), validated, strict=True)
    }
    ordered: list[IngestResult] = []
    for slot in slots:
        if isinstance(slot, IngestResult):
            ordered.append(slot)
        elif isinstance(slot, _Pending):
            ordered.append(finished[slot.submission])
        else:
            first = finished[slot]
            ordered.append(replace(first, was_skipped=True, datasets=()))
    return ordered


def _year_of(key: str) -> int | None:
    try:
        return parse_upload_key(key).year
    except LayoutError:
        return None


def ingest_object(
    store: ObjectStore, info: ObjectInfo, registry: frozenset[str] | None = None
) -> IngestResult:
    """Process one object version end to end; idempotent per (key, version)."""
    started = _start(store, info, registry)
    if isinstance(started, IngestResult):
        return started
    [results] = validate_uploads([(started.data, started.context)])
    return _finish(store, started, results)


def _start(
    store: ObjectStore, info: ObjectInfo, registry: frozenset[str] | None
) -> IngestResult | _Pending:
    """Skip a processed version, quarantine a key outside the layout, else read the upload."""
    submission = submission_id(info.key, info.version_token)
    try:
        upload = parse_upload_key(info.key)
    except LayoutError as error:
        return _reject_bad_key(store, info, submission, str(error))

    record_key = ledger_key(upload.year, upload.submitter, upload.stem, submission)
    if store.exists(record_key):
        record = json.loads(store.get(record_key))
        return IngestResult(info.key, submission, record["outcome"], True, record.get("report_key"))

    datasets = load_datasets()
    dataset_id = None if upload.is_workbook else upload.stem
    if dataset_id is not None and dataset_id in datasets:
        expected_submitter = datasets[dataset_id].submitted_by
        if (expected_submitter == "bureau") != upload.is_city_file:
            dataset_id = f"{dataset_id}@wrong-submitter"
    context = UploadContext(
        key=info.key,
        year=upload.year,
        school_code=upload.school_code,
        dataset_id=dataset_id,
        extension=upload.extension,
        registry_school_codes=None if upload.is_city_file else registry,
    )
    return _Pending(info, upload, submission, context, registry, store.get(info.key))


def _finish(store: ObjectStore, pending: _Pending, results: list[DatasetResult]) -> IngestResult:
    """Reports, quarantine, curated rows and, last, the ledger record of one upload."""
    info, upload, submission, data = pending.info, pending.upload, pending.submission, pending.data
    registry = pending.registry
    if (
        registry is not None
        and upload.school_code is not None
        and upload.school_code not in registry
    ):
        results = [_with_unknown_school(result, upload.school_code) for result in results]
    report = build_report(results, pending.context, submission)
    json_report_key = report_key(upload.year, upload.submitter, submission, "json")
    store.put(
        json_report_key,
        json.dumps(report, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
        "application/json",
    )
    report_keys = [
        json_report_key,
        *_write_school_reports(store, upload.year, upload.submitter, submission, data, report),
    ]
    if _is_file_level_failure(report):
        _quarantine(store, info, upload.year, submission, data, report)

    entries = [
        _write_curated(store, result, upload.year, upload.submitter, submission)
        for result in results
    ]
    record = {
        "submission_id": submission,
        "key": info.key,
        "stem": upload.stem,
        "version_token": info.version_token,
        "etag": info.etag,
        "version_id": info.version_id,
        "size_bytes": info.size_bytes,
        "uploaded_at": info.last_modified.astimezone(UTC).isoformat(),
        "processed_at": datetime.now(UTC).isoformat(),
        "year": upload.year,
        "submitter": upload.submitter,
        "school_code": upload.school_code,
        "outcome": report["outcome"],
        "error_count": report["error_count"],
        "warning_count": report["warning_count"],
        "report_key": json_report_key,
        "report_keys": report_keys,
        "datasets": entries,
        "schema_version": SCHEMA_VERSION,
    }
    write_record(store, record)
    return IngestResult(
        info.key,
        submission,
        report["outcome"],
        False,
        json_report_key,
        tuple(entry["dataset"] for entry in entries if entry["dataset"]),
    )


def _write_school_reports(
    store: ObjectStore,
    year: int,
    submitter: str,
    submission: str,
    data: bytes,
    report: dict[str, Any],
) -> list[str]:
    """The HTML page and the annotated workbook; returns the keys written.

    Feedback is a courtesy on top of the JSON report: a failure to render it is logged and
    the upload is still processed.
    """
    extension = report["key"].rsplit(".", 1)[-1].lower()
    renderers = [
        ("html", "text/html; charset=utf-8", lambda: render_html(report).encode("utf-8")),
    ]
    # The annotated workbook marks bad cells; a clean upload has none to mark, and copying
    # every accepted file into a workbook would cost more than validating it.
    if report["findings"]:
        renderers.append(
            ("xlsx", XLSX_CONTENT_TYPE, lambda: annotate_workbook(data, extension, report))
        )
    written = []
    for suffix, content_type, render in renderers:
        key = report_key(year, submitter, submission, suffix)
        try:
            store.put(key, render(), content_type)
        except Exception:  # rendering must never fail ingest
            LOGGER.exception("could not write the %s report of %s", suffix, report["key"])
            continue
        written.append(key)
    return written


def _with_unknown_school(result: DatasetResult, school_code: str) -> DatasetResult:

    extra = finding_rows(
        [
            {
                "rule_id": "cross_dataset.unknown_school",
                "column": "school_code",
                "value": school_code,
                "detail": "the school code in the upload path is not in the registry",
            }
        ]
    )
    result.findings = pl.concat([extra, result.findings], how="vertical_relaxed")
    return result


def _write_curated(
    store: ObjectStore, result: DatasetResult, year: int, submitter: str, submission: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dataset": result.dataset_id,
        "outcome": result.outcome,
        "row_count": result.row_count,
        "curated_key": None,
    }
    if result.outcome == REJECTED or result.frame is None or result.dataset_id is None:
        return entry
    frame = result.frame.rename({SOURCE_ROW: "source_row_number"}).with_columns(
        pl.lit(year, dtype=pl.Int64).alias("year"),
        pl.lit(submission).alias("submission_id"),
    )
    if "school_code" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("school_code"))
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    key = curated_key(result.dataset_id, year, submitter, submission)
    store.put(key, buffer.getvalue(), "application/vnd.apache.parquet")
    entry["curated_key"] = key
    return entry


def _is_file_level_failure(report: dict[str, Any]) -> bool:
    return any(
        item["rule_id"].split(".")[0] in QUARANTINE_RULE_LAYERS and item["severity"] == "error"
        for item in report["counts_by_rule"]
    )


def _quarantine(
    store: ObjectStore,
    info: ObjectInfo,
    year: int | str,
    submission: str,
    data: bytes,
    report: dict[str, Any],
) -> None:
    target = quarantine_key(year, submission, info.key)
    store.put(target, data)
    reason = {
        "key": info.key,
        "version_token": info.version_token,
        "rules": [item["rule_id"] for item in report["counts_by_rule"]],
        "findings": report["findings"][:20],
    }
    store.put(
        target + ".reason.json",
        json.dumps(reason, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
        "application/json",
    )


def _reject_bad_key(
    store: ObjectStore, info: ObjectInfo, submission: str, detail: str
) -> IngestResult:
    """A key outside the layout: quarantine it and record it under ledger/unsorted/."""
    record_key = unsorted_ledger_key(submission)
    if store.exists(record_key):
        return IngestResult(info.key, submission, REJECTED, True, None)
    data = store.get(info.key) if info.size_bytes <= 50 * 1024 * 1024 else b""
    report = {
        "counts_by_rule": [{"rule_id": "file.key_layout", "severity": "error", "count": 1}],
        "findings": [{"rule_id": "file.key_layout", "detail": detail}],
    }
    _quarantine(store, info, "unsorted", submission, data, report)
    record = {
        "submission_id": submission,
        "key": info.key,
        "version_token": info.version_token,
        "outcome": REJECTED,
        "rule_id": "file.key_layout",
        "detail": detail,
        "processed_at": datetime.now(UTC).isoformat(),
    }
    store.put_if_absent(record_key, json.dumps(record, ensure_ascii=False).encode("utf-8"))
    return IngestResult(info.key, submission, REJECTED, False, None)


def unprocessed_upload_keys(store: ObjectStore, year: int | None = None) -> list[str]:
    """The uploads (of one year, or all) whose current version has no ledger record yet."""
    done = processed_submission_ids(store)
    return [
        info.key
        for info in store.list(uploads_prefix(year))
        if submission_id(info.key, info.version_token) not in done
    ]


def upload_years(store: ObjectStore) -> list[int]:
    """Every year that has anything under uploads/, ascending."""
    years = {year_of_upload_key(info.key) for info in store.list(uploads_prefix())}
    return sorted(year for year in years if year is not None)


def split_city_first(keys: list[str]) -> tuple[list[str], list[str]]:
    """(the bureau's keys, the schools' keys): bureau files go first, they decide the registry."""
    city = [key for key in keys if f"/{CITY_SUBMITTER}/" in key]
    return city, [key for key in keys if f"/{CITY_SUBMITTER}/" not in key]
