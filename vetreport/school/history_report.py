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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HistoryWrites:
    """What ``write_history_reports`` did: the files it wrote, and whose warnings moved.

    ``written``: the schools whose history.json was (re)written. ``warnings_changed``: those
    of them whose warnings now differ from what the file said before (a missing or unreadable
    file said none). A school given its first file with no warning is written, but what it
    sees has not changed: its upload list need not be rewritten.
    """

    written: list[str]
    warnings_changed: list[str]


def write_history_reports(
    store: ObjectStore, findings: dict[str, list[dict[str, Any]]], year: int, schools: list[str]
) -> HistoryWrites:
    """Write reports/{year}/{school}/history.json for every school; say what changed.

    Every school given (those with indicator values in the year) gets a file (an empty
    list means no warning), so a school whose data came back within tolerance sees its
    warnings go. Unchanged files are not rewritten.
    """
    codes = sorted(set(schools) | set(findings))

    def write(code: str) -> tuple[bool, bool]:  # one small JSON document per school
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
            before = store.get(key)
        except KeyNotFound:
            before = None
        if before == body:
            return False, False
        store.put(key, body, "application/json")
        # compared as read back, so that what JSON does to a value (a tuple, a float) is alike
        is_changed = _listed_findings(before, key) != _listed_findings(body, key)
        return True, is_changed

    # a read (and maybe a write) per school: on an object store they wait, side by side
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        outcomes = list(pool.map(write, codes))
    return HistoryWrites(
        written=[code for code, (is_written, _) in zip(codes, outcomes, strict=True) if is_written],
        warnings_changed=[
            code for code, (_, is_changed) in zip(codes, outcomes, strict=True) if is_changed
        ],
    )


def _listed_findings(body: bytes | None, key: str) -> list[dict[str, Any]]:
    """The warnings a history.json's bytes list, as a reader takes them (none if unreadable).

    A document that cannot be read as the writer wrote it counts as none, with a log line:
    the next aggregation rewrites it.
    """
    if body is None:
        return []
    try:
        findings = json.loads(body)["findings"]
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("%s is not a history report (%s); read as no warning", key, error)
        return []
    if not isinstance(findings, list):
        return []
    return [item for item in findings if isinstance(item, dict) and item.get("indicator_id")]


def read_history_findings(store: ObjectStore, year: int, school_code: str) -> list[dict[str, Any]]:
    """The school's history warnings of a year as last written (none before any aggregation)."""
    key = history_report_key(year, school_code)
    try:
        return _listed_findings(store.get(key), key)
    except KeyNotFound:
        return []


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
