"""Reading published versions back, every checksum verified.

What belongs here: the ``latest.json`` pointer and manifests, one table or file of a
version (csv, parquet, a one-sheet workbook), optionally one region's rows of it, listing
years and versions, checking a whole version, and which later report years show a year.
Writing versions (and their changelog) is ``vetreport.publish.writer``; the publish
artifact is ``vetreport.publish.summary``.

A region (``全国``, ``浙江省``, ``浙江省/绍兴市``, ``浙江省/绍兴市/越城区``) reads a report table
named by its city shape (``employment``, ``表5``) in the region's own shape: a province's
rows of ``{table}_by_province``, the nation's ``{table}_national``, a city's rows of the city
table. Any other table (``_by_school``, ``indicator_values``, ``variance``, ...) keeps the
rows inside the region. A province is found in a table without a ``province_name`` column
through its cities in the version's ``regions`` table.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from schemas.indicators import (
    BY_PROVINCE_SUFFIX,
    NATIONAL_SUFFIX,
    load_table_specs,
    table_id_for,
    years_shown,
)
from vetreport.aggregate.regions import Region
from vetreport.bucket.keys import (
    published_pointer_key,
    published_prefix,
    published_version_prefix,
    published_year_of_pointer,
)
from vetreport.bucket.store import KeyNotFound, ObjectStore, open_store
from vetreport.publish.outputs.changelog import lineage_submissions, submission_frame
from vetreport.publish.outputs.metadata import VersionInfo
from vetreport.publish.outputs.tabular import csv_bytes, parquet_bytes
from vetreport.publish.outputs.workbook import workbook_bytes

MANIFEST_NAME = "manifest.json"
TABLE_FORMATS = ("parquet", "csv", "xlsx")
READ_THREADS = 8


class ChecksumError(ValueError):
    """A published file's bytes do not match the sha256 its manifest records."""


class RegionNotFound(KeyError):
    """A version has no such region (its ``regions`` table does not list the path)."""


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


def _table_id(manifest: dict[str, Any], table_id: str) -> str:
    """A table id of the version, from the id or as the report names it (表5, 附表1)."""
    if table_id not in manifest["tables"]:
        table_id = table_id_for(table_id) or table_id
    if table_id not in manifest["tables"]:
        raise KeyError(
            f"version {manifest['version']} of {manifest['report_year']} has no table "
            f"{table_id}; tables: {', '.join(sorted(manifest['tables']))}"
        )
    return table_id


def _table_entry(manifest: dict[str, Any], table_id: str) -> dict[str, Any]:
    """A table of a version, by id or as the report names it (表5, 附表1, 就业质量)."""
    return manifest["tables"][_table_id(manifest, table_id)]


def _verified_frame(store: ObjectStore, manifest: dict[str, Any], table_id: str) -> pl.DataFrame:
    entry = _table_entry(manifest, table_id)["files"]["parquet"]
    return pl.read_parquet(io.BytesIO(verified_bytes(store, entry)))


def region_table_id(manifest: dict[str, Any], table_id: str, region: Region) -> str:
    """The table a region's rows are read from (see the module docstring)."""
    table_id = table_id if table_id in manifest["tables"] else table_id_for(table_id) or table_id
    if table_id in {spec.table_id for spec in load_table_specs()}:
        if region.level == "county":
            raise ValueError(
                f"report tables stop at the city; the schools of {region.path} are in "
                f"{table_id}_by_school"
            )
        table_id += {"province": BY_PROVINCE_SUFFIX, "nation": NATIONAL_SUFFIX}.get(
            region.level, ""
        )
    return _table_id(manifest, table_id)


def rows_in_region(
    frame: pl.DataFrame, region: Region, directory: pl.DataFrame | None, table_id: str = "table"
) -> pl.DataFrame:
    """The rows of a frame inside a region, by its region columns.

    ``directory`` is the version's ``regions`` table (None for a version published before
    it): it finds a province in a table that has cities but no ``province_name`` column,
    and checks that a city is in the province named.
    """
    names = region.names()
    conditions = [
        pl.col(column) == name for column, name in names.items() if column in frame.columns
    ]
    missing = [column for column in names if column not in frame.columns]
    if "province_name" in missing and "city_name" in frame.columns and directory is not None:
        cities = directory.filter(
            (pl.col("region_level") == "city") & (pl.col("province_name") == region.province_name)
        ).get_column("city_name")
        conditions.append(pl.col("city_name").is_in(cities.to_list()))
        missing.remove("province_name")
    elif "province_name" in missing and region.city_name is not None:
        missing.remove("province_name")  # no directory: the city's name alone
    if missing:
        raise ValueError(
            f"{table_id} has no {' or '.join(missing)} column to find {region.path} by"
        )
    return frame.filter(conditions) if conditions else frame


def _check_region(directory: pl.DataFrame | None, region: Region) -> None:
    if directory is None or region.level == "nation":
        return
    paths = directory.get_column("region_path").to_list()
    if region.path in paths:
        return
    last = list(region.names().values())[-1]
    close = [path for path in paths if last in path][:10]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RegionNotFound(f"no region {region.path} in this version{hint}")


def _read_region(
    store: ObjectStore, manifest: dict[str, Any], table_id: str, region: Region | str
) -> tuple[str, pl.DataFrame]:
    """The table a region is read from, and the region's rows of it."""
    region = Region.parse(region) if isinstance(region, str) else region
    directory = (
        _verified_frame(store, manifest, "regions") if "regions" in manifest["tables"] else None
    )
    _check_region(directory, region)
    table_id = region_table_id(manifest, table_id, region)
    frame = _verified_frame(store, manifest, table_id)
    return table_id, rows_in_region(frame, region, directory, table_id)


def read_table(
    store: ObjectStore | str,
    table_id: str,
    report_year: int,
    version: int | None = None,
    region: Region | str | None = None,
) -> pl.DataFrame:
    """One published table as a Polars frame (latest version unless given), checksum verified.

    ``store`` is an ObjectStore or a store URL (a folder, ``file://...`` or ``s3://...``).
    ``region`` (``浙江省/绍兴市``, ``浙江省``, ``全国``) reads that region's rows: a report
    table in the region's own shape, any other table cut to the rows inside the region
    (see the module docstring). An unknown region raises ``RegionNotFound``.
    """
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    if region is not None:
        return _read_region(store, manifest, table_id, region)[1]
    return _verified_frame(store, manifest, table_id)


def read_submissions(
    store: ObjectStore | str, report_year: int, version: int | None = None
) -> pl.DataFrame:
    """Every submission a version counts (its ``submissions.parquet``, checksum verified).

    A version published before that file existed lists them in its manifest instead.
    """
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    entry = manifest["files"].get("submissions.parquet")
    if entry is None:
        return submission_frame(manifest.get("submissions"))
    return pl.read_parquet(io.BytesIO(verified_bytes(store, entry)))


def table_lineage(
    store: ObjectStore | str, table_id: str, report_year: int, version: int | None = None
) -> pl.DataFrame:
    """The exact submissions (key, version token, submission id...) a table's numbers use.

    The manifest names the datasets and first year of each table (``lineage``); they
    select from the version's submissions. A version from before that lists them itself.
    """
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    entry = _table_entry(manifest, table_id)
    if "lineage" not in entry:
        return submission_frame(entry.get("submissions"))
    submissions = read_submissions(store, report_year, manifest["version"])
    return lineage_submissions(submissions, entry["lineage"])


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
    region: Region | str | None = None,
) -> bytes:
    """One table's published file (csv or parquet), or a one-sheet workbook (xlsx).

    The csv and parquet bytes are the published files, checksum verified; the workbook is
    written from the verified Parquet with the same layout as the version's workbook. With
    a ``region`` the bytes are those of the region's rows (read_table), written the way
    the version writes a table, from the verified Parquet.
    """
    if file_format not in TABLE_FORMATS:
        raise ValueError(f"format must be one of {TABLE_FORMATS}")
    store = _as_store(store)
    manifest = resolve_version(store, report_year, version)
    if region is not None:
        table_id, frame = _read_region(store, manifest, table_id, region)
        if file_format == "csv":
            return csv_bytes(frame)
        if file_format == "parquet":
            return parquet_bytes(frame)
        return workbook_bytes({table_id: frame}, _version_info(manifest))[0]
    files = _table_entry(manifest, table_id)["files"]
    if file_format != "xlsx":
        return verified_bytes(store, files[file_format])
    table_id = _table_id(manifest, table_id)
    frame = _verified_frame(store, manifest, table_id)
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
    years = {published_year_of_pointer(key) for key in store.list_keys(published_prefix())}
    return sorted(year for year in years if year is not None)


def list_versions(store: ObjectStore | str, report_year: int) -> list[dict[str, Any]]:
    """Every complete version of a year (one with a manifest), oldest first."""
    store = _as_store(store)
    versions = sorted(
        int(match[2])
        for key in store.list_keys(published_prefix(report_year))
        if (match := _MANIFEST_KEY.match(key))
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
