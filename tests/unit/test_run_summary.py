"""What an ingest run shows an operator: outcome tags, its message, its report artifact."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys
from vetreport.curate.run_summary import (
    outcome_tags,
    read_upload_report,
    report_markdown,
    run_message,
)
from vetreport.demo import walkthrough

FINDING_ROW = re.compile(r"^\| (错误 error|警告 warning) \|", re.MULTILINE)


def ingest(tmp_path: Path, body: bytes) -> tuple[object, dict, dict]:
    store = open_store(tmp_path / "bucket")
    store.put(walkthrough.UPLOAD_KEY, body)
    [result] = ingest_keys(store, [walkthrough.UPLOAD_KEY])
    as_dict = asdict(result)
    return store, as_dict, read_upload_report(store, as_dict)


def test_outcome_tags_name_what_the_run_produced() -> None:
    results = [
        {"outcome": "rejected", "was_skipped": False},
        {"outcome": "accepted", "was_skipped": False},
        {"outcome": "accepted", "was_skipped": False},
        {"outcome": "accepted_with_warnings", "was_skipped": True},  # done by an earlier run
    ]
    assert outcome_tags(results) == ["outcome:accepted", "outcome:rejected"]
    assert outcome_tags([]) == []


def test_the_report_artifact_lists_the_findings_with_links_that_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETREPORT_FILES_PORT", "4999")
    body = (walkthrough.EXAMPLES_DIR / "graduates-with-errors.csv").read_bytes()
    store, result, report = ingest(tmp_path, body)
    markdown = report_markdown(store, result, report)

    assert markdown.startswith(f"# 已退回 rejected: `{walkthrough.UPLOAD_KEY}`")
    assert "**5 错误 errors · 2 警告 warnings**" in markdown
    assert "| `field.enum` | 错误 error | 1 |" in markdown  # counts by rule
    assert "## 问题 Findings (7 of 7)" in markdown
    assert (
        "| 错误 error | `field.enum` | — | 3 | 毕业去向 | 打工 | 取值不在允许的选项中 |" in markdown
    )
    assert "| 错误 error | `field.required` | — | 8 | 专业名称 | — | 必填项为空 |" in markdown
    assert len(FINDING_ROW.findall(markdown)) == 7

    links = dict(re.findall(r"\[([^\]]+)\]\(([^)]+)\)", markdown))
    stem = result["report_key"].removesuffix(".json")
    assert links == {
        "报告 report (HTML)": f"http://127.0.0.1:4999/{stem}.html",
        "批注工作簿 annotated workbook": f"http://127.0.0.1:4999/{stem}.xlsx",
        "JSON": f"http://127.0.0.1:4999/{stem}.json",
        "本校上传记录 the school's uploads": (
            f"http://127.0.0.1:4999/reports/{walkthrough.YEAR}/{walkthrough.SCHOOL}/index.html"
        ),
    }
    assert "file://" not in markdown and str(tmp_path) not in markdown

    message = run_message(result, report)
    assert message.startswith(f"{walkthrough.UPLOAD_KEY}: 已退回 rejected, 5 errors, 2 warnings")
    assert "field.enum" in message


def test_the_report_artifact_lists_at_most_fifty_findings_and_says_how_many(
    tmp_path: Path,
) -> None:
    header, rows = walkthrough.corrected_rows()
    destination = header.index("毕业去向")
    for row in rows[:80]:
        row[destination] = "打工"
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    store, result, report = ingest(tmp_path, buffer.getvalue().encode("utf-8"))
    assert report["error_count"] >= 80
    markdown = report_markdown(store, result, report)
    total = report["error_count"] + report["warning_count"]
    assert f"## 问题 Findings (50 of {total}; every finding is in the report)" in markdown
    assert len(FINDING_ROW.findall(markdown)) == 50


def test_an_accepted_report_has_counts_and_links_but_no_findings(tmp_path: Path) -> None:
    body = (walkthrough.EXAMPLES_DIR / "graduates-corrected.csv").read_bytes()
    store, result, report = ingest(tmp_path, body)
    markdown = report_markdown(store, result, report)
    assert markdown.startswith("# 已接收 accepted:")
    assert "**0 错误 errors · 0 警告 warnings**" in markdown
    assert "Findings" not in markdown and "annotated workbook" not in markdown
    assert "[报告 report (HTML)](http://127.0.0.1:" in markdown
