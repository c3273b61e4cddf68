"""A school's history-layer warnings: its indicators that moved beyond tolerance since last year.

What belongs here: writing ``reports/{year}/{school}/history.json`` from the findings that
vetreport.aggregate.variance computes. The aggregate flow calls it after aggregation, so the
compute step itself never writes to the bucket.
"""

from __future__ import annotations

import json
from typing import Any

from vetreport.bucket.keys import history_report_key
from vetreport.bucket.store import KeyNotFound, ObjectStore


def write_history_reports(
    store: ObjectStore, findings: dict[str, list[dict[str, Any]]], year: int, schools: list[str]
) -> int:
    """Write reports/{year}/{school}/history.json for every school; return how many changed.

    Every school given (those with indicator values in the year) gets a file (an empty
    list means no warning), so a school whose data came back within tolerance sees its
    warnings go. Unchanged files are not rewritten.
    """
    codes = sorted(set(schools) | set(findings))
    written = 0
    for code in codes:  # one small JSON document per school
        document = {
            "year": year,
            "school_code": code,
            "layer": "history",
            "finding_count": len(findings.get(code, [])),
            "findings": findings.get(code, []),
        }
        body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        key = history_report_key(year, code)
        try:
            if store.get(key) == body:
                continue
        except KeyNotFound:
            pass
        store.put(key, body, "application/json")
        written += 1
    return written
