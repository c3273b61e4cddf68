"""vetreport: validated, versioned city tables of the vocational-school annual quality report.

The public reader for consumers is ``vetreport.read_table(store_url, table, year,
version=None, region=None)``, which returns a Polars frame of a published table (checksum
verified), or one region's rows of it (``region="浙江省/绍兴市"``); see docs/consumers.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_table"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so ``import vetreport.x`` stays light.
    if name == "read_table":
        from vetreport.publish.reader import read_table

        return read_table
    raise AttributeError(f"module 'vetreport' has no attribute {name!r}")
