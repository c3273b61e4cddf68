"""The DuckDB connections of aggregation and publishing: memory-limited, spilling to disk.

What belongs here: opening a DuckDB connection configured from the settings
(``VETREPORT_DUCKDB_MEMORY_LIMIT``, ``VETREPORT_DUCKDB_TEMP_DIR``), so that no query of
aggregation or publishing holds more than the limit in memory whatever the number of
schools: beyond it DuckDB spills to the temporary folder. Extensions are never installed
or loaded on demand: nothing is downloaded at run time (the store is read through
vetreport.bucket, never by DuckDB itself).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb

from vetreport.settings import load_settings

TEMP_FOLDER_NAME = "vetreport-duckdb"


def spill_folder() -> Path:
    """Where DuckDB spills: the setting, or a folder in the system's temporary directory."""
    configured = load_settings().duckdb_temp_dir
    folder = configured or Path(tempfile.gettempdir()) / TEMP_FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the configured memory limit and spill folder."""
    return duckdb.connect(
        database,
        config={
            "memory_limit": load_settings().duckdb_memory_limit,
            "temp_directory": str(spill_folder()),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
