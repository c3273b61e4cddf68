"""What an operator sees of an ingest run in the Prefect UI: outcome tags and a one-line message.

What belongs here: turning ingest results (``IngestResult`` dicts) and their JSON reports
into what the ingest flows attach to their runs: an ``outcome:{outcome}`` tag per outcome
the run produced (filterable in the UI), the message of the run's final state, and the
report artifact. Nothing here imports Prefect; the flows attach these to the runs.

A result skipped because its version was already in the ledger produced no outcome in
this run: it gets no outcome tag (the run that processed it has one).
"""

from __future__ import annotations

import json
from typing import Any

from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.validate.checks import ACCEPTED, ACCEPTED_WITH_WARNINGS, REJECTED

OUTCOMES = (ACCEPTED, ACCEPTED_WITH_WARNINGS, REJECTED)
OUTCOME_TAG_PREFIX = "outcome:"
ALREADY_PROCESSED_TAG = "already-processed"
OUTCOME_WORDS = {
    ACCEPTED: "已接收 accepted",
    ACCEPTED_WITH_WARNINGS: "有警告 accepted with warnings",
    REJECTED: "已退回 rejected",
}
RULES_IN_MESSAGE = 5


def outcome_tag(outcome: str) -> str:
    """``outcome:rejected`` and so on: the tag an operator filters runs by."""
    return f"{OUTCOME_TAG_PREFIX}{outcome}"


def outcome_tags(results: list[dict[str, Any]]) -> list[str]:
    """One tag per outcome the results produced in this run, in OUTCOMES order."""
    produced = {result["outcome"] for result in results if not result["was_skipped"]}
    return [outcome_tag(outcome) for outcome in OUTCOMES if outcome in produced]


def read_upload_report(store: ObjectStore, result: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON report of an ingest result, or None.

    None when the result has no report (a key outside the layout) or the report has gone.
    """
    if not result.get("report_key"):
        return None
    try:
        return json.loads(store.get(result["report_key"]))
    except KeyNotFound:
        return None


def run_message(result: dict[str, Any], report: dict[str, Any] | None) -> str:
    """The message of an ingest-upload run's final state: outcome, counts, rules broken."""
    outcome = OUTCOME_WORDS.get(result["outcome"], result["outcome"])
    if result["was_skipped"]:
        return f"{result['key']}: already processed ({outcome}); nothing done"
    if report is None:
        return f"{result['key']}: {outcome}"
    rules = [item["rule_id"] for item in report.get("counts_by_rule", [])]
    text = (
        f"{result['key']}: {outcome}, {report.get('error_count', 0)} errors, "
        f"{report.get('warning_count', 0)} warnings"
    )
    if rules:
        more = f" and {len(rules) - RULES_IN_MESSAGE} more" if len(rules) > RULES_IN_MESSAGE else ""
        text += f" ({', '.join(rules[:RULES_IN_MESSAGE])}{more})"
    return text
