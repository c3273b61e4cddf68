"""A school's history-layer warnings: its indicators that moved beyond tolerance since last year.

What belongs here: writing ``reports/{year}/{school}/history.json`` from the findings that
vetreport.aggregate.variance computes, and reading it back. The aggregate flow writes it
after aggregation, so the compute step itself never writes to the bucket; the collection
workflow reads it, because a school explains these warnings as it explains an upload's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vetreport.bucket.keys import history_report_key
from vetreport.bucket.store import KeyNotFound, ObjectStore

logger = logging.getLogger(__name__)
READ_THREADS = 8


def history_message_zh(finding: dict[str, Any]) -> str:
    """What a history warning says to the school, for one indicator."""
    change = finding.get("change_pct")
    moved = "从无到有" if change is None else f"较上年变化 {change:+.1f}%"
    return f"{moved}，超出 ±{finding['tolerance']:g}% 的范围：{finding['message_zh']}"


def write_history_reports(
    store: ObjectStore, findings: dict[str, list[dict[str, Any]]], year: int, schools: list[str]
) -> list[str]:
    """Write reports/{year}/{school}/history.json for every school; return those that changed.

    Every school given (those with indicator values in the year) gets a file (an empty
    list means no warning), so a school whose data came back within tolerance sees its
    warnings go. Unchanged files are not rewritten.
    """
    codes = sorted(set(schools) | set(findings))

    def write(code: str) -> bool:  # one small JSON document per school
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
                return False
        except KeyNotFound:
            pass
        store.put(key, body, "application/json")
        return True

    # a read (and maybe a write) per school: on an object store they wait, side by side
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        changed = list(pool.map(write, codes))
    return [code for code, is_changed in zip(codes, changed, strict=True) if is_changed]


def read_history_findings(store: ObjectStore, year: int, school_code: str) -> list[dict[str, Any]]:
    """The school's history warnings of a year as last written (none before any aggregation).

    A document that cannot be read as the writer wrote it counts as none, with a log line:
    the next aggregation rewrites it.
    """
    key = history_report_key(year, school_code)
    try:
        document = json.loads(store.get(key))
        findings = document["findings"]
    except KeyNotFound:
        return []
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("%s is not a history report (%s); read as no warning", key, error)
        return []
    return [item for item in findings if isinstance(item, dict) and item.get("indicator_id")]


def read_year_history(
    store: ObjectStore, year: int, schools: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every given school's history warnings of a year, read in parallel from a remote store."""
    codes = sorted(set(schools))
    if getattr(store, "is_remote", True) and len(codes) > 1:
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            found = list(pool.map(lambda code: read_history_findings(store, year, code), codes))
    else:
        found = [read_history_findings(store, year, code) for code in codes]
    return {code: items for code, items in zip(codes, found, strict=True) if items}
