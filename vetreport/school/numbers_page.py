"""A school's own numbers page: its indicators beside its city and peers, before publication.

What belongs here: writing ``reports/{year}/{school}/numbers.json`` and ``numbers.html``
from the rows of vetreport.aggregate.school_feedback, with the school's history warnings
(changes against last year beyond tolerance) next to the indicator that causes them. The
aggregate flow calls it after every aggregation, so a school sees what its accepted data
gives as soon as the burst it belongs to is aggregated. A page is rewritten only when its
content changed (the JSON is compared), so a national aggregation rewrites the pages of the
schools whose numbers, city or peers moved, not every page.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from schemas.indicators import format_value
from vetreport.bucket.documents import document_bytes
from vetreport.bucket.keys import school_numbers_key
from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.school.history_report import history_message_zh
from vetreport.school.pages import render_school_numbers_page

WRITE_THREADS = 8


def numbers_document(
    year: int, rows: list[dict[str, Any]], findings: list[dict[str, Any]], peer_minimum: int
) -> dict[str, Any]:
    """The JSON a school's numbers page is made from (what a portal would show too).

    ``peer_minimum``: how many other schools a peer median needs (the aggregation's rule,
    vetreport.aggregate.school_feedback, stated on the page).
    """
    warned = {finding["indicator_id"]: finding for finding in findings}
    first = rows[0]
    return {
        "year": year,
        "school_code": first["school_code"],
        "school_name": first["school_name"],
        "city_name": first["city_name"],
        "school_type": first["school_type"],
        "ownership": first["ownership"],
        "peer_minimum_school_count": peer_minimum,
        "indicators": [
            {
                "indicator_id": row["indicator_id"],
                "name_zh": row["name_zh"],
                "unit": row["unit"],
                "decimals": row["decimals"],
                "school_value": row["school_value"],
                "school_value_last_year": row["school_value_last_year"],
                "city_value": row["city_value"],
                "peer_school_count": row["peer_school_count"],
                "peer_median_value": row["peer_median_value"],
                "history_warning": _warning_text(warned.get(row["indicator_id"])),
            }
            for row in rows
        ],
    }


def _warning_text(finding: dict[str, Any] | None) -> str:
    if finding is None:
        return ""
    text = history_message_zh(finding)
    if finding.get("is_explained"):
        text += f"（已说明：{finding.get('reason') or ''}）"
    return text


def render_numbers_page(document: dict[str, Any]) -> str:
    """The HTML of a school's numbers page from its JSON document."""

    def text(value: float | None, row: dict[str, Any]) -> str:
        return format_value(value, row["unit"], row["decimals"])

    rows = [
        {
            "name_zh": row["name_zh"],
            "unit": row["unit"],
            "school_text": text(row["school_value"], row),
            "last_year_text": text(row["school_value_last_year"], row),
            "city_text": text(row["city_value"], row),
            "peer_median_text": text(row["peer_median_value"], row),
            "peer_school_count": row["peer_school_count"],
            "warning": row["history_warning"],
        }
        for row in document["indicators"]
    ]
    return render_school_numbers_page(
        year=document["year"],
        school_code=document["school_code"],
        school_name=document["school_name"],
        school_type=document["school_type"],
        ownership=document["ownership"],
        peer_minimum=document["peer_minimum_school_count"],
        rows=rows,
    )


def write_school_numbers(
    store: ObjectStore,
    feedback: pl.DataFrame,
    findings: dict[str, list[dict[str, Any]]],
    year: int,
    peer_minimum: int,
) -> int:
    """Write every school's numbers page whose content changed; return how many were written.

    ``feedback`` is out_school__yearly_feedback; ``findings`` each school's history
    warnings by school code; ``peer_minimum`` as in ``numbers_document``.
    """
    if feedback.is_empty():
        return 0
    by_school = feedback.partition_by("school_code", as_dict=True, maintain_order=True)

    def write(code: str, frame: pl.DataFrame) -> bool:
        document = numbers_document(year, frame.to_dicts(), findings.get(code, []), peer_minimum)
        body = document_bytes(document)
        json_key = school_numbers_key(year, code, "json")
        try:
            if store.get(json_key) == body:
                return False
        except KeyNotFound:
            pass
        page = render_numbers_page(document).encode("utf-8")
        store.put(school_numbers_key(year, code, "html"), page, "text/html; charset=utf-8")
        store.put(json_key, body, "application/json")  # last: it says the page is current
        return True

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        written = pool.map(lambda item: write(str(item[0][0]), item[1]), by_school.items())
        return sum(written)
