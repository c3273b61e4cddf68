"""The DuckDB database of a version: every table, plus the dictionary as tables.

What belongs here: building ``tables.duckdb`` in a temporary local folder (a file open
read-write blocks readers in other processes, so consumers only ever get a finished,
closed file), with one table per published table, a ``_tables`` and a ``_columns`` table
describing them, and DuckDB comments carrying the Chinese names. The file is written under
a temporary name and moved into place with ``os.replace`` before its bytes are read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from vetreport.aggregate.engine import connect
from vetreport.publish.outputs.metadata import VersionInfo, describe_columns, describe_table

DATABASE_NAME = "tables.duckdb"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def catalogue_frames(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``_tables`` and ``_columns`` frames: what every table and column means."""
    table_rows = []
    column_rows = []
    for table_id, frame in tables.items():
        info = describe_table(table_id)
        table_rows.append(info.summary(frame.height))
        for position, column in enumerate(describe_columns(table_id, frame.schema), start=1):
            column_rows.append(
                {
                    "table_id": table_id,
                    "position": position,
                    "column_name": column.name,
                    "data_type": column.dtype,
                    "name_zh": column.name_zh,
                    "name_en": column.name_en,
                    "unit": column.unit,
                    "decimals": column.decimals,
                    "indicator_id": column.indicator_id,
                    "numerator": column.numerator,
                    "denominator": column.denominator,
                    "multiplier": column.multiplier,
                    "source_datasets": "|".join(column.source_datasets),
                    "description": column.description,
                }
            )
    column_schema = {
        "table_id": pl.Utf8,
        "position": pl.Int64,
        "column_name": pl.Utf8,
        "data_type": pl.Utf8,
        "name_zh": pl.Utf8,
        "name_en": pl.Utf8,
        "unit": pl.Utf8,
        "decimals": pl.Int64,
        "indicator_id": pl.Utf8,
        "numerator": pl.Utf8,
        "denominator": pl.Utf8,
        "multiplier": pl.Float64,
        "source_datasets": pl.Utf8,
        "description": pl.Utf8,
    }
    return pl.DataFrame(table_rows), pl.DataFrame(column_rows, schema=column_schema)


def duckdb_bytes(tables: dict[str, pl.DataFrame], version: VersionInfo | None = None) -> bytes:
    """Build the database in a temporary folder and return the finished file's bytes."""
    table_frame, column_frame = catalogue_frames(tables)
    with tempfile.TemporaryDirectory(prefix="vetreport-duckdb-") as folder:
        building = Path(folder) / f".{DATABASE_NAME}.building"
        final = Path(folder) / DATABASE_NAME
        # Built in memory (limited: beyond VETREPORT_DUCKDB_MEMORY_LIMIT it spills), then
        # copied into the file in one go (far fewer writes).
        connection = connect()
        staged = Path(folder) / "table.parquet"
        try:
            for table_id, frame in tables.items():
                # through a Parquet file, not the frame itself: DuckDB reads a file within
                # its memory limit, where scanning a frame first exports it to Arrow (a
                # copy of a nation's indicator values beside the frame)
                frame.write_parquet(staged, compression="uncompressed", statistics=False)
                connection.execute(
                    f"create table {_quoted(table_id)} as select * from read_parquet(?)",
                    [str(staged)],
                )
                info = describe_table(table_id)
                connection.execute(
                    f"comment on table {_quoted(table_id)} is "
                    f"{_literal(f'{info.full_title_zh} / {info.title_en}')}"
                )
                for column in describe_columns(table_id, frame.schema):
                    connection.execute(
                        f"comment on column {_quoted(table_id)}.{_quoted(column.name)} is "
                        f"{_literal(column.header_zh + ' / ' + column.name_en)}"
                    )
            for name, frame in (("_tables", table_frame), ("_columns", column_frame)):
                connection.register("incoming", frame)
                connection.execute(f"create table {name} as select * from incoming")
                connection.unregister("incoming")
            if version is not None:
                connection.execute(
                    "create table _version as select ? as report_year, ? as version, "
                    "? as status, ? as created_at, ? as revision_of, ? as schema_version, "
                    "? as catalogue_version",
                    [
                        version.report_year,
                        version.version,
                        version.status,
                        version.created_at,
                        version.revision_of,
                        version.schema_version,
                        version.catalogue_version,
                    ],
                )
            staged.unlink(missing_ok=True)
            connection.execute(f"attach {_literal(str(building))} as built")
            connection.execute("copy from database memory to built")
            connection.execute("detach built")
        finally:
            connection.close()
        os.replace(building, final)
        return final.read_bytes()
