"""What an operator sees of an ingest run in the Prefect UI: tags, message, report artifact.

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

from vetreport.bucket.keys import parse_upload_key, school_index_key
from vetreport.bucket.links import public_url
from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.curate.collection import SIGNED_OFF_OUTCOME, SIGNOFF_REFUSED_OUTCOME
from vetreport.curate.ledger import HELD
from vetreport.validate.checks import ACCEPTED, ACCEPTED_WITH_WARNINGS, REJECTED

OUTCOMES = (
    ACCEPTED,
    ACCEPTED_WITH_WARNINGS,
    REJECTED,
    HELD,
    SIGNED_OFF_OUTCOME,
    SIGNOFF_REFUSED_OUTCOME,
)
OUTCOME_TAG_PREFIX = "outcome:"
ALREADY_PROCESSED_TAG = "already-processed"
OUTCOME_WORDS = {
    ACCEPTED: "已接收 accepted",
    ACCEPTED_WITH_WARNINGS: "有警告 accepted with warnings",
    REJECTED: "已退回 rejected",
    HELD: "已锁定 locked: sent to the bureau for a revision",
    SIGNED_OFF_OUTCOME: "已确认 signed off",
    SIGNOFF_REFUSED_OUTCOME: "确认未被接受 sign-off refused",
}
SEVERITY_WORDS = {"error": "错误 error", "warning": "警告 warning"}
RULES_IN_MESSAGE = 5
FINDINGS_IN_ARTIFACT = 50
CELL_WIDTH = 40


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


def _cell(value: Any, width: int = CELL_WIDTH) -> str:
    """A Markdown table cell: no pipes or line breaks, long values cut short."""
    if value is None or value == "":
        return "—"
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _report_links(store: ObjectStore, result: dict[str, Any]) -> list[str]:
    """Markdown links to the upload's reports and the school's upload list (those present)."""
    json_key = result["report_key"]
    stem = json_key.removesuffix(".json")
    upload = parse_upload_key(result["key"])
    school_index = school_index_key(upload.year, upload.submitter, "html")
    candidates = [
        ("报告 report (HTML)", f"{stem}.html"),
        ("批注工作簿 annotated workbook", f"{stem}.xlsx"),
        ("JSON", json_key),
        ("本校上传记录 the school's uploads", school_index),
    ]
    return [
        f"[{label}]({public_url(store, key)})"
        for label, key in candidates
        if key == json_key or store.exists(key)
    ]


def report_markdown(
    store: ObjectStore,
    result: dict[str, Any],
    report: dict[str, Any] | None,
    limit: int = FINDINGS_IN_ARTIFACT,
) -> str:
    """The report artifact of one upload, in Markdown.

    The outcome, counts by rule, the first ``limit`` findings (rule, sheet, row, column,
    value, the message and fix in Chinese) with the total, and links that open in a
    browser (``public_url``) to the reports and the school's upload list.
    """
    outcome = OUTCOME_WORDS.get(result["outcome"], result["outcome"])
    lines = [f"# {outcome}: `{result['key']}`", ""]
    if report is None:
        lines.append(
            "No report: the key does not fit uploads/{year}/{school}/{dataset}.ext; the "
            "file was copied to quarantine/ with its reason."
        )
        return "\n".join(lines) + "\n"
    errors, warnings = report.get("error_count", 0), report.get("warning_count", 0)
    lines += [
        f"**{errors} 错误 errors · {warnings} 警告 warnings** — submission "
        f"`{result['submission_id']}`",
        "",
        " · ".join(_report_links(store, result)),
    ]
    counts = report.get("counts_by_rule", [])
    if counts:
        lines += ["", "## 按规则 Counts by rule", "", "| 规则 rule | 级别 severity | 数量 count |"]
        lines.append("| --- | --- | --- |")
        lines += [
            f"| `{item['rule_id']}` | {SEVERITY_WORDS.get(item['severity'], item['severity'])} "
            f"| {item['count']} |"
            for item in counts
        ]
    findings = report.get("findings", [])
    total = errors + warnings
    if findings:
        shown = findings[:limit]
        heading = f"## 问题 Findings ({len(shown)} of {total}"
        heading += "; every finding is in the report)" if len(shown) < total else ")"
        lines += [
            "",
            heading,
            "",
            "| 级别 severity | 规则 rule | 工作表 sheet | 行 row | 列 column | 值 value "
            "| 说明 message | 怎么改 fix |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {SEVERITY_WORDS.get(item['severity'], item['severity'])} | `{item['rule_id']}` "
            f"| {_cell(item.get('sheet'))} | {_cell(item.get('row_number'))} "
            f"| {_cell(item.get('header') or item.get('column'))} | {_cell(item.get('value'))} "
            f"| {_cell(item.get('message_zh'), 80)} | {_cell(item.get('fix_zh'), 80)} |"
            for item in shown
        ]
    return "\n".join(lines) + "\n"
