"""Publishing: versioned, atomic outputs for downstream consumers.

What belongs here: deciding whether a report year needs a new version and of which status,
writing it under ``published/{year}/v{n}/`` and moving the ``latest.json`` pointer to it;
reading them back is ``vetreport.publish.reader``. The bytes of each file come from the
writers in ``vetreport.publish.outputs``.

A version holds:

    tables/{table}.parquet, tables/{table}.csv   every table (CSV: UTF-8 with BOM)
    tables.xlsx                                  the workbook, a sheet per table
    tables.duckdb                                every table in one DuckDB database
    data_dictionary.md, data_dictionary.json     every table and column explained
    changelog.json, changelog.md                 cells and submissions changed since
    changelog_cells.parquet                      the previous version (all cells)
    report.html                                  static report with SVG charts
    submissions.parquet                          every submission the version counts
    manifest.json                                checksums, lineage, status (written last
                                                 but the pointer)
    report.docx, report.pdf                      the report document (vetreport.report),
                                                 attached after the version is complete

Lineage: each table's manifest entry names the datasets and first year its numbers come
from (``lineage``); the exact submissions are those rows of ``submissions.parquet``
(``outputs.changelog.lineage_submissions``). A list per table in the manifest would grow
with tables x schools (70 MB of JSON at 1,000 schools).

Guarantees: a version number is claimed with put-if-absent before anything is written, so
two publishers never share a folder; files are immutable once written; the manifest is
written after every file it lists and the pointer after the manifest, so a reader that
follows the pointer never sees a half-published version. Publishing content identical to
the latest version writes nothing.

Status: ``provisional`` before the year is closed; ``final`` once; after a final exists,
every later change is a ``revision`` (``revision_of`` = the final's version number),
never provisional again, and the final stays readable by its version number.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from schemas.catalogue import CATALOGUE_DIR, SCHEMA_VERSION
from schemas.indicators import (
    BY_PROVINCE_SUFFIX,
    BY_SCHOOL_SUFFIX,
    NATIONAL_SUFFIX,
    load_indicator_catalogue,
    load_table_specs,
)
from vetreport.aggregate.compute import AggregateResult
from vetreport.bucket.keys import published_pointer_key, published_version_prefix
from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.publish.outputs.changelog import (
    build_changelog,
    changelog_files,
    lineage_submissions,
)
from vetreport.publish.outputs.database import DATABASE_NAME, duckdb_bytes
from vetreport.publish.outputs.dictionary import dictionary_files
from vetreport.publish.outputs.html_report import render_report_html
from vetreport.publish.outputs.metadata import VersionInfo, describe_table
from vetreport.publish.outputs.tabular import (
    csv_bytes,
    parquet_bytes,
)
from vetreport.publish.outputs.workbook import workbook_bytes
from vetreport.publish.reader import (
    MANIFEST_NAME,
    ChecksumError,
    read_manifest,
    read_pointer,
    sha256,
    verified_bytes,
)

PROVISIONAL = "provisional"
FINAL = "final"
REVISION = "revision"
STATUSES = (PROVISIONAL, FINAL, REVISION)
WRITE_THREADS = 8

WORKBOOK_NAME = "tables.xlsx"
DICTIONARY_MD = "data_dictionary.md"
DICTIONARY_JSON = "data_dictionary.json"
CHANGELOG_JSON = "changelog.json"
CHANGELOG_MD = "changelog.md"
CHANGELOG_CELLS = "changelog_cells.parquet"
REPORT_HTML = "report.html"
SUBMISSIONS_PARQUET = "submissions.parquet"
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "duckdb": "application/octet-stream",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
REPORT_DOCX = "report.docx"
REPORT_PDF = "report.pdf"
ATTACHABLE = (REPORT_DOCX, REPORT_PDF)


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the version it points to and whether it wrote a new one."""

    report_year: int
    version: int
    is_new_version: bool
    prefix: str
    manifest: dict[str, Any]

    @property
    def status(self) -> str:
        """provisional, final or revision."""
        return self.manifest["status"]

    @property
    def revision_of(self) -> int | None:
        """For a revision, the version number of the final it corrects."""
        return self.manifest.get("revision_of")


def _fingerprint(csv_bodies: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for table_id in sorted(csv_bodies):
        digest.update(table_id.encode())
        digest.update(csv_bodies[table_id])
    return digest.hexdigest()


def content_fingerprint(tables: dict[str, pl.DataFrame]) -> str:
    """A hash of every table's content: equal fingerprints mean nothing changed."""
    return _fingerprint({table_id: csv_bytes(frame) for table_id, frame in tables.items()})


def catalogue_fingerprint() -> str:
    """A hash of the catalogue files, recorded so a number can be traced to its rules."""
    digest = hashlib.sha256()
    for path in sorted(CATALOGUE_DIR.glob("*.csv")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _final_version(pointer: dict[str, Any] | None) -> int | None:
    """The version number of the year's final, if one was published."""
    if not pointer:
        return None
    if pointer.get("final_version") is not None:
        return int(pointer["final_version"])
    return int(pointer["version"]) if pointer.get("status") == FINAL else None


def _lineage_rules(result: AggregateResult) -> dict[str, dict[str, Any]]:
    """For each table, which of the version's submissions its numbers come from.

    A rule rather than a list: ``datasets`` (None: every dataset) and ``first_year``
    (None: every year shown) select the submissions in ``submissions.parquet``
    (outputs.changelog.lineage_submissions), so the manifest stays small whatever the
    number of schools.
    """
    catalogue = load_indicator_catalogue()
    rules: dict[str, dict[str, Any]] = {}
    for spec in load_table_specs():
        sources = set(
            catalogue.filter(pl.col("table_id") == spec.table_id)
            .get_column("source_datasets")
            .str.split("|")
            .explode(empty_as_null=True)
            .drop_nulls()
            .to_list()
        ) | {"school_registry"}
        rule = {
            "datasets": sorted(sources),
            "first_year": result.report_year - spec.years_shown + 1,
        }
        for suffix in ("", BY_SCHOOL_SUFFIX, BY_PROVINCE_SUFFIX, NATIONAL_SUFFIX):
            rules[spec.table_id + suffix] = rule
    every = {"datasets": None, "first_year": None}
    return {
        table_id: rules.get(table_id, every) for table_id in [*result.tables, "indicator_values"]
    }


def _file_entry(key: str, body: bytes, extension: str) -> dict[str, Any]:
    return {
        "key": key,
        "sha256": sha256(body),
        "size_bytes": len(body),
        "media_type": MEDIA_TYPES[extension],
    }


def _read_previous_tables(
    store: ObjectStore, manifest: dict[str, Any] | None, skipped: frozenset[str] = frozenset()
) -> dict[str, pl.DataFrame | None]:
    """The previous version's tables but ``skipped``.

    None where a file is missing or fails its checksum.
    """
    if manifest is None:
        return {}

    def load(entry: dict[str, Any]) -> pl.DataFrame | None:
        try:
            return pl.read_parquet(io.BytesIO(verified_bytes(store, entry["files"]["parquet"])))
        except (KeyNotFound, ChecksumError):
            return None

    table_ids = sorted(set(manifest["tables"]) - skipped)
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        frames = pool.map(lambda table_id: load(manifest["tables"][table_id]), table_ids)
    return dict(zip(table_ids, frames, strict=True))


def _identical_tables(
    table_entries: dict[str, Any], previous: dict[str, Any] | None
) -> frozenset[str]:
    """The tables whose CSV has the same checksum as in the previous version."""
    before = (previous or {}).get("tables", {})
    return frozenset(
        table_id
        for table_id, entry in table_entries.items()
        if table_id in before
        and before[table_id]["files"].get("csv", {}).get("sha256")
        == entry["files"]["csv"]["sha256"]
    )


def _read_previous_submissions(
    store: ObjectStore, manifest: dict[str, Any] | None
) -> pl.DataFrame | None:
    """The previous version's submissions.parquet, or None.

    None when it has no such file (a manifest from before it lists the submissions
    itself) or the file cannot be read.
    """
    entry = (manifest or {}).get("files", {}).get(SUBMISSIONS_PARQUET)
    if entry is None:
        return None
    try:
        return pl.read_parquet(io.BytesIO(verified_bytes(store, entry)))
    except (KeyNotFound, ChecksumError):
        return None


def publish(
    store: ObjectStore, result: AggregateResult, status: str = PROVISIONAL
) -> PublishResult:
    """Publish a new version of the report year unless it equals the latest one.

    ``status`` is what the caller asks for (provisional or final); once the year has a
    final, a changed result is published as a revision of it whatever was asked, and an
    unchanged one publishes nothing.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    tables = {**result.tables, "indicator_values": result.indicator_values}
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        csv_bodies = dict(zip(tables, pool.map(csv_bytes, tables.values()), strict=True))
    fingerprint = _fingerprint(csv_bodies)
    year = result.report_year
    pointer = read_pointer(store, year)
    final_version = _final_version(pointer)
    if status == REVISION and final_version is None:
        raise ValueError(f"{year} has no final version to revise")
    unchanged = pointer is not None and pointer.get("content_sha256") == fingerprint
    if unchanged and (final_version is not None or pointer.get("status") == status):
        manifest = read_manifest(store, year, pointer["version"])
        return PublishResult(year, pointer["version"], False, pointer["prefix"], manifest)

    revision_of = final_version
    effective_status = REVISION if final_version is not None else status
    version = _claim_version(store, year, (pointer or {}).get("version", 0) + 1)
    prefix = published_version_prefix(year, version)
    info = VersionInfo(
        report_year=year,
        version=version,
        status=effective_status,
        created_at=datetime.now(UTC).isoformat(),
        previous_version=(pointer or {}).get("version"),
        revision_of=revision_of,
        schema_version=SCHEMA_VERSION,
        catalogue_version=catalogue_fingerprint(),
    )
    previous = read_manifest(store, year, pointer["version"]) if pointer else None
    lineage = _lineage_rules(result)

    # Each table's Parquet and CSV are written as soon as they exist and only their
    # checksums kept: no moment holds every table in every format.
    def write_table(table_id: str) -> dict[str, Any]:
        files = {}
        csv_body = csv_bodies.pop(table_id)
        for extension, body in (("parquet", parquet_bytes(tables[table_id])), ("csv", csv_body)):
            key = f"{prefix}tables/{table_id}.{extension}"
            store.put(key, body, MEDIA_TYPES[extension])
            files[extension] = _file_entry(key, body, extension)
        return files

    table_ids = sorted(tables)
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        table_files = dict(zip(table_ids, pool.map(write_table, table_ids), strict=True))
    submission_count = result.submissions.height
    table_entries: dict[str, Any] = {
        table_id: {
            "title_zh": describe_table(table_id).full_title_zh,
            "row_count": tables[table_id].height,
            "columns": tables[table_id].columns,
            "files": table_files[table_id],
            "lineage": lineage[table_id]
            | {
                "submission_count": lineage_submissions(
                    result.submissions, lineage[table_id]
                ).height
            },
        }
        for table_id in table_ids
    }

    file_entries: dict[str, Any] = {}

    def write_file(name: str, body: bytes) -> None:
        extension = name.rsplit(".", 1)[-1]
        store.put(prefix + name, body, MEDIA_TYPES[extension])
        file_entries[name] = _file_entry(prefix + name, body, extension) | {
            "tables": sorted(tables)
        }

    write_file(SUBMISSIONS_PARQUET, parquet_bytes(result.submissions))
    with ThreadPoolExecutor(max_workers=1) as pool:  # DuckDB works outside the GIL
        database_job = pool.submit(duckdb_bytes, tables, info)
        workbook, sheets = workbook_bytes(tables, info)
        write_file(WORKBOOK_NAME, workbook)
        del workbook
        identical = _identical_tables(table_entries, previous)
        changelog, cells = build_changelog(
            info,
            tables,
            lineage,
            result.submissions,
            previous,
            _read_previous_tables(store, previous, identical),
            _read_previous_submissions(store, previous),
            identical,
        )
        write_file(DATABASE_NAME, database_job.result())
    for table_id, sheet in sheets.items():
        table_entries[table_id]["sheet"] = sheet
    changelog_json, changelog_md, changelog_cells = changelog_files(changelog, cells)
    del cells
    table_paths = {
        table_id: {name: entry["key"].removeprefix(prefix) for name, entry in e["files"].items()}
        for table_id, e in table_entries.items()
    }
    dictionary_md, dictionary_json = dictionary_files(tables, table_paths, sheets, info)
    version_files: dict[str, bytes] = {
        DICTIONARY_MD: dictionary_md,
        DICTIONARY_JSON: dictionary_json,
        CHANGELOG_JSON: changelog_json,
        CHANGELOG_MD: changelog_md,
        CHANGELOG_CELLS: changelog_cells,
    }
    listed = [WORKBOOK_NAME, DATABASE_NAME, *version_files, SUBMISSIONS_PARQUET]
    version_files[REPORT_HTML] = render_report_html(
        tables, info, changelog, [*listed, REPORT_HTML, MANIFEST_NAME]
    ).encode("utf-8")
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(lambda item: write_file(*item), version_files.items()))
    file_entries = {name: file_entries[name] for name in [*listed, REPORT_HTML]}

    manifest = {
        "report_year": year,
        "version": version,
        "status": effective_status,
        "revision_of": revision_of,
        "final_version": final_version,
        "previous_version": info.previous_version,
        "created_at": info.created_at,
        "content_sha256": fingerprint,
        "schema_version": SCHEMA_VERSION,
        "catalogue_version": info.catalogue_version,
        "changelog": changelog["summary"],
        "files": file_entries,
        "tables": table_entries,
        "submission_count": submission_count,
    }
    if effective_status == FINAL:
        manifest["final_version"] = version
    manifest_body = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode()
    store.put(prefix + MANIFEST_NAME, manifest_body, MEDIA_TYPES["json"])
    new_pointer = {
        "report_year": year,
        "version": version,
        "status": effective_status,
        "revision_of": revision_of,
        "final_version": manifest["final_version"],
        "prefix": prefix,
        "manifest_key": prefix + MANIFEST_NAME,
        "manifest_sha256": sha256(manifest_body),
        "content_sha256": fingerprint,
        "published_at": info.created_at,
    }
    current = read_pointer(store, year)
    if current is None or int(current["version"]) < version:  # never move the pointer back
        store.put(
            published_pointer_key(year),
            json.dumps(new_pointer, ensure_ascii=False, indent=2).encode(),
            MEDIA_TYPES["json"],
        )
    return PublishResult(year, version, True, prefix, manifest)


def _claim_version(store: ObjectStore, report_year: int, first_candidate: int) -> int:
    """Take the lowest free version number from first_candidate on, atomically."""
    candidate = first_candidate
    while True:
        claim = published_version_prefix(report_year, candidate) + ".claim"
        if store.put_if_absent(claim, datetime.now(UTC).isoformat().encode()):
            return candidate
        candidate += 1


def attach_files(
    store: ObjectStore,
    report_year: int,
    version: int,
    files: dict[str, bytes],
    records: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Add files made from a complete version (the report document) to it; return the manifest.

    Only the names in ``ATTACHABLE`` may be added, and they may be replaced by a later
    build (a new template over the same numbers): every other file of a version stays
    immutable. The files are written first, then the manifest lists them (checksum, size,
    and ``records[name]``, e.g. the values a document printed), then the pointer's
    manifest checksum follows if it points at this version. A file of the version that is
    no longer built (a PDF where LibreOffice is gone) is dropped from the manifest.
    """
    unknown = sorted(set(files) - set(ATTACHABLE))
    if unknown:
        raise ValueError(f"only {', '.join(ATTACHABLE)} can be attached, not {unknown}")
    manifest = read_manifest(store, report_year, version)
    prefix = published_version_prefix(report_year, version)
    entries = dict(manifest.get("files", {}))
    for name in ATTACHABLE:
        entries.pop(name, None)
    for name, body in files.items():
        store.put(prefix + name, body, MEDIA_TYPES[name.rsplit(".", 1)[-1]])
        entries[name] = _file_entry(prefix + name, body, name.rsplit(".", 1)[-1]) | (
            (records or {}).get(name, {})
        )
    manifest["files"] = entries
    body = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode()
    store.put(prefix + MANIFEST_NAME, body, MEDIA_TYPES["json"])
    pointer = read_pointer(store, report_year)
    if pointer is not None and int(pointer["version"]) == version:
        pointer["manifest_sha256"] = sha256(body)
        store.put(
            published_pointer_key(report_year),
            json.dumps(pointer, ensure_ascii=False, indent=2).encode(),
            MEDIA_TYPES["json"],
        )
    return manifest
