"""Reading published versions back, every checksum verified.

What belongs here: the ``latest.json`` pointer and manifests, one table or file of a
version (csv, parquet, a one-sheet workbook), listing years and versions, checking a
whole version, and which later report years show a year. Writing versions (and their
changelog) is ``vetreport.publish.writer``; the publish artifact is
``vetreport.publish.summary``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from schemas.indicators import table_id_for, years_shown
from vetreport.bucket.keys import (
    published_pointer_key,
    published_prefix,
    published_version_prefix,
    published_year_of_pointer,
)
from vetreport.bucket.store import KeyNotFound, ObjectStore, open_store
from vetreport.publish.outputs.metadata import VersionInfo
from vetreport.publish.outputs.workbook import workbook_bytes

MANIFEST_NAME = "manifest.json"
TABLE_FORMATS = ("parquet", "csv", "xlsx")
READ_THREADS = 8


class ChecksumError(ValueError):
    """A published file's bytes do not match the sha256 its manifest records."""


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _as_store(store: ObjectStore | str) -> ObjectStore:
    return open_store(store) if isinstance(store, str) else store


def read_pointer(store: ObjectStore | str, report_year: int) -> dict[str, Any] | None:
    """The latest.json pointer of a report year, or None before the first publish."""
    try:
        return json.loads(_as_store(store).get(published_pointer_key(report_year)))
    except KeyNotFound:
        return None


def read_manifest(store: ObjectStore | str, report_year: int, version: int) -> dict[str, Any]:
    """The manifest of one published version."""
    key = published_version_prefix(report_year, version) + MANIFEST_NAME
    return json.loads(_as_store(store).get(key))


def verified_bytes(store: ObjectStore, entry: dict[str, Any]) -> bytes:
    """The bytes of a manifest file entry, refused when the checksum differs."""
    body = store.get(entry["key"])
    if sha256(body) != entry["sha256"]:
        raise ChecksumError(f"checksum mismatch for {entry['key']}")
    return body


def resolve_version(
    store: ObjectStore | str, report_year: int, version: int | None = None
) -> dict[str, Any]:
    """The manifest of a version, or of the latest one (checked against the pointer)."""
    store = _as_store(store)
    if version is not None:
        return read_manifest(store, report_year, version)
    pointer = read_pointer(store, report_year)
    if pointer is None:
        raise KeyNotFound(f"nothing published for {report_year}")
    body = store.get(pointer["manifest_key"])
    if sha256(body) != pointer["manifest_sha256"]:
        raise ChecksumError(f"checksum mismatch for {pointer['manifest_key']}")
    return json.loads(body)


def _table_entry(manifest: dict[str, Any], table_id: str) -> dict[str, Any]:
    """A table of a version, by id or as the report names it (表5, 附表1, 就业质量)."""
    if table_id not in manifest["tables"]:
        table_id = table_id_for(table_id) or table_id
    if table_id not in manifest["tables"]:
        raise KeyError(
            f"version {manifest['version']} of {manifest['report_year']} has no table "
            f"{table_id}; tables: {', '.join(sorted(manifest['tables']))}"
        )
    return manifest["tables"][table_id]


def read_table(
    store: ObjectStore | str, table_id: str, report_year: int, version: int | None = None
) -> pl.DataFrame:
    """One published table as a Polars frame (latest version unless given), checksum verified.

    ``store`` is an ObjectStore or a store URL (a folder, ``file://...`` or ``s3://...``).
    """
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    entry = _table_entry(manifest, table_id)["files"]["parquet"]
    return pl.read_parquet(io.BytesIO(verified_bytes(store, entry)))


def _version_info(manifest: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        report_year=manifest["report_year"],
        version=manifest["version"],
        status=manifest["status"],
        created_at=manifest["created_at"],
        previous_version=manifest.get("previous_version"),
        revision_of=manifest.get("revision_of"),
        schema_version=manifest.get("schema_version", ""),
        catalogue_version=manifest.get("catalogue_version", ""),
    )


def read_table_bytes(
    store: ObjectStore | str,
    table_id: str,
    report_year: int,
    version: int | None = None,
    file_format: str = "csv",
) -> bytes:
    """One table's published file (csv or parquet), or a one-sheet workbook (xlsx).

    The csv and parquet bytes are the published files, checksum verified; the workbook is
    written from the verified Parquet with the same layout as the version's workbook.
    """
    if file_format not in TABLE_FORMATS:
        raise ValueError(f"format must be one of {TABLE_FORMATS}")
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    files = _table_entry(manifest, table_id)["files"]
    if file_format != "xlsx":
        return verified_bytes(store, files[file_format])
    frame = pl.read_parquet(io.BytesIO(verified_bytes(store, files["parquet"])))
    return workbook_bytes({table_id: frame}, _version_info(manifest))[0]


def read_version_file(
    store: ObjectStore | str, report_year: int, name: str, version: int | None = None
) -> bytes:
    """A version-level file (tables.xlsx, tables.duckdb, report.html...), checksum verified."""
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    if name not in manifest.get("files", {}):
        raise KeyError(f"version {manifest['version']} has no file {name}")
    return verified_bytes(store, manifest["files"][name])


def verify_version(
    store: ObjectStore | str, report_year: int, version: int | None = None
) -> dict[str, Any]:
    """Read every file of a version and check its checksum; return the manifest."""
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    entries = [entry for table in manifest["tables"].values() for entry in table["files"].values()]
    entries += list(manifest.get("files", {}).values())
    prefix = published_version_prefix(report_year, manifest["version"])
    outside = [entry["key"] for entry in entries if not entry["key"].startswith(prefix)]
    if outside:
        raise ChecksumError(f"manifest lists files outside {prefix}: {outside[:3]}")
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        list(pool.map(lambda entry: verified_bytes(store, entry), entries))
    return manifest


_MANIFEST_KEY = re.compile(r"^published/(\d{4})/v(\d+)/manifest\.json$")


def published_years(store: ObjectStore | str) -> list[int]:
    """Every report year with a latest.json pointer, ascending."""
    store = _as_store(store)
    years = {published_year_of_pointer(info.key) for info in store.list(published_prefix())}
    return sorted(year for year in years if year is not None)


def list_versions(store: ObjectStore | str, report_year: int) -> list[dict[str, Any]]:
    """Every complete version of a year (one with a manifest), oldest first."""
    store = _as_store(store)
    versions = sorted(
        int(match[2])
        for info in store.list(published_prefix(report_year))
        if (match := _MANIFEST_KEY.match(info.key))
    )
    pointer = read_pointer(store, report_year) or {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        manifests = list(pool.map(lambda v: read_manifest(store, report_year, v), versions))
    return [
        {
            "report_year": report_year,
            "version": manifest["version"],
            "status": manifest["status"],
            "revision_of": manifest.get("revision_of"),
            "previous_version": manifest.get("previous_version"),
            "created_at": manifest["created_at"],
            "tables": len(manifest["tables"]),
            "cells_changed": (manifest.get("changelog") or {}).get("cells_changed"),
            "is_latest": manifest["version"] == pointer.get("version"),
            "prefix": published_version_prefix(report_year, manifest["version"]),
        }
        for manifest in manifests
    ]


def later_years_showing(store: ObjectStore, year: int) -> list[int]:
    """Published report years after ``year`` whose tables show it, ascending.

    When a year's data changes, these must be aggregated again too: the 2023 report's
    2022 column is the 2022 data.
    """
    candidates = range(year + 1, year + len(years_shown(year)))  # the years that can show it
    return [later for later in candidates if read_pointer(store, later) is not None]
