"""The changelog of a version: which cells changed and which submissions caused it.

What belongs here: comparing every table of a new version with the same table of the
previous version, cell by cell (row keys, column, old → new), vectorised in Polars (both
frames unpivoted to long form and joined on the row keys and column name), and comparing
the submissions of the two versions' lineage (added: in this version's lineage and not
the previous one's; removed: the other way round). Outputs: ``changelog.json`` (cells
listed up to a cap per table, counts always complete), ``changelog.md`` for people, and
``changelog_cells.parquet`` with every changed cell, uncapped.

Row keys are the identifying columns a table has (year, region level and path, province,
city, county, school code, indicator id, dataset); a table whose rows they do not identify
uniquely is compared by row number.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from vetreport.publish.outputs.metadata import (
    VersionInfo,
    describe_columns,
    describe_table,
    ordered_table_ids,
)
from vetreport.publish.outputs.tabular import parquet_bytes

KEY_CANDIDATES = (
    "year",
    "region_level",
    "region_path",
    "province_name",
    "city_name",
    "county_name",
    "school_code",
    "indicator_id",
    "dataset",
)
LISTED_CELLS_PER_TABLE = 2_000
MARKDOWN_CELLS = 300
SUBMISSION_FIELDS = ("year", "dataset", "submitter", "key", "version_token", "submission_id")
CELL_SCHEMA: dict[str, type[pl.DataType]] = {
    "table_id": pl.Utf8,
    "row_key": pl.Utf8,
    "column": pl.Utf8,
    "change": pl.Utf8,
    "old": pl.Utf8,
    "new": pl.Utf8,
    "is_number": pl.Boolean,
}


def row_keys(old: pl.DataFrame, new: pl.DataFrame) -> list[str]:
    """The identifying columns both frames have, if they identify rows uniquely; else []."""
    keys = [name for name in KEY_CANDIDATES if name in new.columns and name in old.columns]
    if not keys:
        return []
    for frame in (old, new):
        if frame.height and frame.select(pl.struct(keys).is_duplicated().any()).item():
            return []
    return keys


def _long(frame: pl.DataFrame, keys: list[str], columns: list[str], number: bool) -> pl.DataFrame:
    dtype = pl.Float64 if number else pl.Utf8
    present = [name for name in columns if name in frame.columns]
    schema = {**{key: frame.schema[key] for key in keys}, "column": pl.Utf8, "value": dtype}
    if not present:
        return pl.DataFrame(schema=schema)
    return (
        frame.select(*keys, *[pl.col(name).cast(dtype, strict=False) for name in present])
        .unpivot(index=keys, on=present, variable_name="column", value_name="value")
        .cast(schema)
    )


def _without_identical_rows(
    old: pl.DataFrame, new: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both frames without the rows the other has exactly (same columns, same types).

    Rows equal in every column (keys included) change no cell, so only the others are
    unpivoted: a correction that moves a few rows of a national table costs those rows.
    """
    if old.schema != new.schema or not new.columns:
        return old, new
    columns = new.columns
    return (
        old.join(new, on=columns, how="anti", nulls_equal=True),
        new.join(old, on=columns, how="anti", nulls_equal=True),
    )


def diff_cells(table_id: str, old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Every cell that differs between two versions of a table (CELL_SCHEMA)."""
    keys = row_keys(old, new)
    if not keys:  # compare by position
        keys = ["row_number"]
        old, new = (
            frame.with_row_index("row_number", offset=1).cast({"row_number": pl.Int64})
            for frame in (old, new)
        )
    old = old.with_columns(pl.col(key).cast(new.schema[key]) for key in keys)
    old, new = _without_identical_rows(old, new)
    values = [name for name in dict.fromkeys([*new.columns, *old.columns]) if name not in keys]

    def is_number(name: str) -> bool:
        frame = new if name in new.columns else old
        return frame.schema[name].is_numeric()

    parts = []
    for number in (True, False):
        columns = [name for name in values if is_number(name) == number]
        if not columns:
            continue
        before = _long(old, keys, columns, number).with_columns(pl.lit(True).alias("in_old"))
        after = _long(new, keys, columns, number).with_columns(pl.lit(True).alias("in_new"))
        joined = after.join(
            before,
            on=[*keys, "column"],
            how="full",
            coalesce=True,
            nulls_equal=True,
            suffix="_old",
        )
        both = pl.col("in_old").is_not_null() & pl.col("in_new").is_not_null()
        changed = joined.filter(
            (both & pl.col("value").ne_missing(pl.col("value_old")))
            | (pl.col("in_old").is_null() & pl.col("value").is_not_null())
            | (pl.col("in_new").is_null() & pl.col("value_old").is_not_null())
        )
        parts.append(
            changed.select(
                pl.lit(table_id).alias("table_id"),
                pl.struct(keys).struct.json_encode().alias("row_key"),
                "column",
                pl.when(pl.col("in_old").is_null())
                .then(pl.lit("added"))
                .when(pl.col("in_new").is_null())
                .then(pl.lit("removed"))
                .otherwise(pl.lit("changed"))
                .alias("change"),
                pl.col("value_old").cast(pl.Utf8).alias("old"),
                pl.col("value").cast(pl.Utf8).alias("new"),
                pl.lit(number).alias("is_number"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=CELL_SCHEMA)
    return pl.concat(parts).cast(CELL_SCHEMA).sort("row_key", "column")


def _row_count_changes(old: pl.DataFrame, new: pl.DataFrame) -> tuple[int, int]:
    keys = row_keys(old, new)
    if not keys:
        return max(new.height - old.height, 0), max(old.height - new.height, 0)
    old_keys = old.select(pl.col(key).cast(new.schema[key]) for key in keys)
    new_keys = new.select(keys)
    added = new_keys.join(old_keys, on=keys, how="anti", nulls_equal=True).height
    removed = old_keys.join(new_keys, on=keys, how="anti", nulls_equal=True).height
    return added, removed


SUBMISSION_SCHEMA: dict[str, type[pl.DataType]] = {
    name: pl.Int64 if name == "year" else pl.Utf8 for name in SUBMISSION_FIELDS
}


def submission_frame(records: list[dict[str, Any]] | pl.DataFrame | None) -> pl.DataFrame:
    """Submissions (SUBMISSION_FIELDS) from a frame or from a manifest's list of records."""
    if isinstance(records, pl.DataFrame):
        return records.select(list(SUBMISSION_SCHEMA)).cast(SUBMISSION_SCHEMA)
    rows = [{name: record.get(name) for name in SUBMISSION_FIELDS} for record in records or []]
    return pl.DataFrame(rows, schema=SUBMISSION_SCHEMA)


def lineage_submissions(submissions: pl.DataFrame, rule: dict[str, Any] | None) -> pl.DataFrame:
    """The submissions a table's numbers come from, by its lineage rule.

    ``rule`` is a manifest table entry's ``lineage``: ``datasets`` (None: every dataset)
    and ``first_year`` (None: every year) select from the version's submissions.
    """
    rule = rule or {}
    selected = submissions
    if rule.get("datasets") is not None:
        selected = selected.filter(pl.col("dataset").is_in(list(rule["datasets"])))
    if rule.get("first_year") is not None:
        selected = selected.filter(pl.col("year") >= rule["first_year"])
    return selected


def submission_changes(
    current: list[dict[str, Any]] | pl.DataFrame, previous: list[dict[str, Any]] | pl.DataFrame
) -> dict[str, list[dict[str, Any]]]:
    """Submissions in this lineage and not the previous one (added), and the other way."""
    now = submission_frame(current).unique("submission_id", maintain_order=True)
    before = submission_frame(previous).unique("submission_id", maintain_order=True)
    order = ["year", "submitter", "dataset", "submission_id"]
    return {
        "added": now.join(before, on="submission_id", how="anti").sort(order).to_dicts(),
        "removed": before.join(now, on="submission_id", how="anti").sort(order).to_dicts(),
    }


def _typed(value: str | None, is_number: bool) -> Any:
    if value is None or not is_number:
        return value
    number = float(value)
    return int(number) if number.is_integer() else number


def build_changelog(
    version: VersionInfo,
    tables: dict[str, pl.DataFrame],
    lineage: dict[str, dict[str, Any]],
    submissions: pl.DataFrame,
    previous: dict[str, Any] | None,
    previous_tables: dict[str, pl.DataFrame | None],
    previous_submissions: pl.DataFrame | None = None,
    identical: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The changelog document and every changed cell.

    ``lineage`` is each table's lineage rule (see ``lineage_submissions``) over
    ``submissions``, the version's submissions. ``previous`` is the previous version's
    manifest (None for the first version), ``previous_tables`` its frames (None where a
    table could not be read back) and ``previous_submissions`` its submissions (read from
    its ``submissions.parquet``; a manifest from before that file lists them itself, and
    each table's own list, under ``submissions``). Tables in ``identical`` have the same
    bytes as in the previous version: unchanged, and not needed in ``previous_tables``.
    """
    submissions = submission_frame(submissions)
    if previous_submissions is None:
        previous_submissions = submission_frame((previous or {}).get("submissions"))
    previous_submissions = submission_frame(previous_submissions)

    def previous_lineage(table_id: str) -> pl.DataFrame:
        entry = (previous or {}).get("tables", {}).get(table_id, {})
        if "lineage" in entry:
            return lineage_submissions(previous_submissions, entry["lineage"])
        return submission_frame(entry.get("submissions"))

    entries = []
    all_cells = []
    unreadable = []
    for table_id in ordered_table_ids(sorted(set(tables) | set(previous_tables))):
        info = describe_table(table_id)
        new = tables.get(table_id)
        old = previous_tables.get(table_id)
        entry: dict[str, Any] = {
            "table_id": table_id,
            "title_zh": info.full_title_zh,
            "change": "unchanged",
            "cells_changed": 0,
            "rows_added": 0,
            "rows_removed": 0,
            "columns_added": [],
            "columns_removed": [],
            "cells": [],
            "cells_listed": 0,
            "is_truncated": False,
        }
        if previous is None:
            entry |= {"change": "added", "rows_added": new.height if new is not None else 0}
            entries.append(entry)
            continue
        if table_id in identical and new is not None:
            entries.append(entry)
            continue
        if table_id in previous.get("tables", {}) and old is None:
            unreadable.append(table_id)
        if new is None:
            entry |= {"change": "removed", "rows_removed": old.height if old is not None else 0}
        elif old is None:
            entry |= {"change": "added", "rows_added": new.height}
        else:
            cells = diff_cells(table_id, old, new)
            added, removed = _row_count_changes(old, new)
            entry |= {
                "change": "changed" if cells.height or added or removed else "unchanged",
                "cells_changed": cells.height,
                "rows_added": added,
                "rows_removed": removed,
                "columns_added": [name for name in new.columns if name not in old.columns],
                "columns_removed": [name for name in old.columns if name not in new.columns],
            }
            if entry["columns_added"] or entry["columns_removed"]:
                entry["change"] = "changed"
            all_cells.append(cells)
            names = {column.name: column.name_zh for column in describe_columns(table_id, {})}
            names |= {
                column.name: column.name_zh for column in describe_columns(table_id, new.schema)
            }
            listed = cells.head(LISTED_CELLS_PER_TABLE)
            entry["cells"] = [
                {
                    "row": json.loads(row["row_key"]),
                    "column": row["column"],
                    "column_zh": names.get(row["column"], row["column"]),
                    "old": _typed(row["old"], row["is_number"]),
                    "new": _typed(row["new"], row["is_number"]),
                    "change": row["change"],
                }
                for row in listed.iter_rows(named=True)
            ]
            entry["cells_listed"] = listed.height
            entry["is_truncated"] = listed.height < cells.height
        if entry["change"] != "unchanged" and previous is not None:
            moved = submission_changes(
                lineage_submissions(submissions, lineage.get(table_id)),
                previous_lineage(table_id),
            )
            entry["submissions_added"] = [item["submission_id"] for item in moved["added"]]
            entry["submissions_removed"] = [item["submission_id"] for item in moved["removed"]]
        entries.append(entry)
    changed_submissions = submission_changes(submissions, previous_submissions)
    changed_tables = [entry for entry in entries if entry["change"] != "unchanged"]
    document = {
        "report_year": version.report_year,
        "version": version.version,
        "status": version.status,
        "revision_of": version.revision_of,
        "previous_version": version.previous_version,
        "previous_status": (previous or {}).get("status"),
        "created_at": version.created_at,
        "is_first_version": previous is None,
        "summary": {
            "tables_changed": len(changed_tables),
            "cells_changed": sum(entry["cells_changed"] for entry in entries),
            "rows_added": sum(entry["rows_added"] for entry in entries),
            "rows_removed": sum(entry["rows_removed"] for entry in entries),
            "submissions_added": len(changed_submissions["added"]),
            "submissions_removed": len(changed_submissions["removed"]),
        },
        "submissions": changed_submissions,
        "previous_tables_unreadable": unreadable,
        "tables": entries,
    }
    cells = pl.concat(all_cells) if all_cells else pl.DataFrame(schema=CELL_SCHEMA)
    return document, cells


def _md(value: Any) -> str:
    return "—" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def render_changelog_markdown(document: dict[str, Any]) -> str:
    """The changelog for people, in Chinese and English."""
    status = document["status"]
    if document["revision_of"]:
        status += f", revision of v{document['revision_of']}"
    lines = [
        f"# 变更说明 Changelog — {document['report_year']} v{document['version']} ({status})",
        "",
        f"Created {document['created_at']}.",
    ]
    if document["is_first_version"]:
        lines += ["", "第一个版本：没有可比较的上一版本。First version: nothing to compare with."]
    else:
        lines += [
            f"Compared with v{document['previous_version']} ({document['previous_status']}).",
        ]
    summary = document["summary"]
    lines += [
        "",
        f"- 变化的表 tables changed: {summary['tables_changed']}",
        f"- 变化的单元格 cells changed: {summary['cells_changed']}",
        f"- 新增/删除的行 rows added/removed: {summary['rows_added']}/{summary['rows_removed']}",
        f"- 新增/移除的提交 submissions added/removed: {summary['submissions_added']}/"
        f"{summary['submissions_removed']}",
    ]
    if document["previous_tables_unreadable"]:
        lines.append(
            "- 上一版本无法读取（校验和不符）的表 previous tables unreadable: "
            + ", ".join(document["previous_tables_unreadable"])
        )
    titles = (("added", "新增的提交 Submissions added"), ("removed", "移除的提交 Removed"))
    for kind, title in titles:
        records = document["submissions"][kind]
        if not records or (document["is_first_version"] and kind == "added"):
            continue
        lines += [
            "",
            f"## {title} ({len(records)})",
            "",
            "| year | school | dataset | key | submission |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['year']} | {_md(r['submitter'])} | {_md(r['dataset'])} | {_md(r['key'])} "
            f"| `{r['submission_id']}` |"
            for r in records[:MARKDOWN_CELLS]
        ]
    changed = [entry for entry in document["tables"] if entry["change"] != "unchanged"]
    if changed and not document["is_first_version"]:
        lines += [
            "",
            "## 表 Tables",
            "",
            "| 表 | table | change | cells | rows +/− | columns +/− |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for entry in changed:
            lines.append(
                f"| {_md(entry['title_zh'])} | `{entry['table_id']}` | {entry['change']} "
                f"| {entry['cells_changed']} | {entry['rows_added']}/{entry['rows_removed']} "
                f"| {', '.join(entry['columns_added']) or '—'}/"
                f"{', '.join(entry['columns_removed']) or '—'} |"
            )
        listed = [(entry, cell) for entry in changed for cell in entry["cells"]]
        total = summary["cells_changed"]
        lines += [
            "",
            f"## 单元格 Cells ({min(len(listed), MARKDOWN_CELLS)} of {total} listed; every "
            "changed cell is in changelog_cells.parquet)",
            "",
            "| 表 table | 行 row | 列 column | 原值 old | 新值 new |",
            "| --- | --- | --- | --- | --- |",
        ]
        for entry, cell in listed[:MARKDOWN_CELLS]:
            row = ", ".join(f"{key}={value}" for key, value in cell["row"].items())
            lines.append(
                f"| {_md(entry['title_zh'])} | {_md(row)} | {_md(cell['column_zh'])} "
                f"(`{cell['column']}`) | {_md(cell['old'])} | {_md(cell['new'])} |"
            )
    return "\n".join(lines) + "\n"


def changelog_files(document: dict[str, Any], cells: pl.DataFrame) -> tuple[bytes, bytes, bytes]:
    """The bytes of changelog.json, changelog.md and changelog_cells.parquet."""
    return (
        json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
        render_changelog_markdown(document).encode("utf-8"),
        parquet_bytes(cells),
    )
