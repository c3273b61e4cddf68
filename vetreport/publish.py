"""Publishing: versioned, atomic outputs for downstream consumers.

What belongs here: writing one version of a report year's tables under
``published/{year}/v{n}/`` (Parquet and CSV for every table, a manifest with checksums
and lineage), then moving the ``latest.json`` pointer to it. The pointer is written last,
so a reader that follows it never sees a half-published version. A version number is
claimed with put-if-absent before anything is written, so two publishers cannot write
into the same folder. Publishing data identical to the latest version writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from schemas.catalogue import CATALOGUE_DIR, SCHEMA_VERSION
from vetreport.aggregate import AggregateResult, load_indicator_catalogue, load_table_specs
from vetreport.layout import published_pointer_key, published_version_prefix
from vetreport.storage import KeyNotFound, ObjectStore

FORMULA_PREFIXES = ("=", "+", "-", "@")
PROVISIONAL = "provisional"
FINAL = "final"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the version it points to and whether it wrote a new one."""

    report_year: int
    version: int
    is_new_version: bool
    prefix: str
    manifest: dict[str, Any]


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe."""
    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.Utf8]
    pattern = "^[" + "".join("\\" + prefix for prefix in FORMULA_PREFIXES) + "]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text_columns
    )


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """CSV as Excel opens Chinese correctly: UTF-8 with BOM, formulas neutralised."""
    buffer = io.BytesIO()
    neutralise_formulas(frame).write_csv(buffer, include_bom=True)
    return buffer.getvalue()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Parquet, zstd-compressed, with statistics."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def content_fingerprint(tables: dict[str, pl.DataFrame]) -> str:
    """A hash of every table's content: equal fingerprints mean nothing changed."""
    digest = hashlib.sha256()
    for table_id in sorted(tables):
        digest.update(table_id.encode())
        digest.update(csv_bytes(tables[table_id]))
    return digest.hexdigest()


def catalogue_fingerprint() -> str:
    """A hash of the catalogue files, recorded so a number can be traced to its rules."""
    digest = hashlib.sha256()
    for path in sorted(CATALOGUE_DIR.glob("*.csv")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def read_pointer(store: ObjectStore, report_year: int) -> dict[str, Any] | None:
    """The latest.json pointer of a report year, or None before the first publish."""
    try:
        return json.loads(store.get(published_pointer_key(report_year)))
    except KeyNotFound:
        return None


def read_manifest(store: ObjectStore, report_year: int, version: int) -> dict[str, Any]:
    """The manifest of one published version."""
    key = published_version_prefix(report_year, version) + "manifest.json"
    return json.loads(store.get(key))


def _table_lineage(result: AggregateResult) -> dict[str, list[dict[str, Any]]]:
    """For each table, the exact submissions (key, version, id) its numbers come from."""
    catalogue = load_indicator_catalogue()
    lineage: dict[str, list[dict[str, Any]]] = {}
    for spec in load_table_specs():
        sources = set(
            catalogue.filter(pl.col("table_id") == spec.table_id)
            .get_column("source_datasets")
            .str.split("|")
            .explode(empty_as_null=True)
            .to_list()
        ) | {"school_registry"}
        first_year = result.report_year - spec.years_shown + 1
        used = result.submissions.filter(
            pl.col("dataset").is_in(sorted(sources)) & (pl.col("year") >= first_year)
        ).select("year", "dataset", "submitter", "key", "version_token", "submission_id")
        for table_id in (spec.table_id, f"{spec.table_id}_by_school"):
            lineage[table_id] = used.to_dicts()
    return lineage


def publish(
    store: ObjectStore, result: AggregateResult, status: str = PROVISIONAL
) -> PublishResult:
    """Publish a new version of the report year unless it equals the latest one."""
    tables = dict(result.tables)
    tables["indicator_values"] = result.indicator_values
    fingerprint = content_fingerprint(tables)
    pointer = read_pointer(store, result.report_year)
    if pointer and pointer.get("content_sha256") == fingerprint and pointer.get("status") == status:
        manifest = read_manifest(store, result.report_year, pointer["version"])
        return PublishResult(
            result.report_year, pointer["version"], False, pointer["prefix"], manifest
        )

    version = _claim_version(store, result.report_year, (pointer or {}).get("version", 0) + 1)
    prefix = published_version_prefix(result.report_year, version)
    lineage = _table_lineage(result)
    table_entries: dict[str, Any] = {}
    for table_id, frame in sorted(tables.items()):
        files = {}
        for extension, body in (("parquet", parquet_bytes(frame)), ("csv", csv_bytes(frame))):
            key = f"{prefix}tables/{table_id}.{extension}"
            store.put(key, body)
            files[extension] = {"key": key, "sha256": sha256(body), "size_bytes": len(body)}
        table_entries[table_id] = {
            "row_count": frame.height,
            "columns": frame.columns,
            "files": files,
            "submissions": lineage.get(table_id, result.submissions.to_dicts()),
        }
    manifest = {
        "report_year": result.report_year,
        "version": version,
        "status": status,
        "previous_version": (pointer or {}).get("version"),
        "created_at": datetime.now(UTC).isoformat(),
        "content_sha256": fingerprint,
        "schema_version": SCHEMA_VERSION,
        "catalogue_version": catalogue_fingerprint(),
        "tables": table_entries,
        "submissions": result.submissions.to_dicts(),
    }
    manifest_body = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode()
    store.put(prefix + "manifest.json", manifest_body, "application/json")
    new_pointer = {
        "report_year": result.report_year,
        "version": version,
        "status": status,
        "prefix": prefix,
        "manifest_key": prefix + "manifest.json",
        "manifest_sha256": sha256(manifest_body),
        "content_sha256": fingerprint,
        "published_at": manifest["created_at"],
    }
    store.put(
        published_pointer_key(result.report_year),
        json.dumps(new_pointer, ensure_ascii=False, indent=2).encode(),
        "application/json",
    )
    return PublishResult(result.report_year, version, True, prefix, manifest)


def _claim_version(store: ObjectStore, report_year: int, first_candidate: int) -> int:
    """Take the lowest free version number from first_candidate on, atomically."""
    candidate = first_candidate
    while True:
        claim = published_version_prefix(report_year, candidate) + ".claim"
        if store.put_if_absent(claim, datetime.now(UTC).isoformat().encode()):
            return candidate
        candidate += 1


def read_table(
    store: ObjectStore, table_id: str, report_year: int, version: int | None = None
) -> pl.DataFrame:
    """Read one published table as a Polars frame, verifying its checksum."""
    if version is None:
        pointer = read_pointer(store, report_year)
        if pointer is None:
            raise KeyNotFound(f"nothing published for {report_year}")
        version = int(pointer["version"])
    manifest = read_manifest(store, report_year, version)
    if table_id not in manifest["tables"]:
        raise KeyError(f"version {version} of {report_year} has no table {table_id}")
    entry = manifest["tables"][table_id]["files"]["parquet"]
    body = store.get(entry["key"])
    if sha256(body) != entry["sha256"]:
        raise ValueError(f"checksum mismatch for {entry['key']}")
    return pl.read_parquet(io.BytesIO(body))
