"""What an operator sees of a published version in the Prefect UI: the publish artifact.

What belongs here: the Markdown of a new version's artifact, from its manifest and
changelog: the changelog's summary (tables and cells changed, rows and submissions added
or removed), only the tables added, changed or removed (with how many are unchanged), and
links that open in a browser (``vetreport.bucket.links.public_url``) to each listed
table's CSV and to the version's report, report document (.docx, .pdf when built),
changelog and workbook. Nothing here imports
Prefect; the aggregate flow attaches it to its run.
"""

from __future__ import annotations

import json
from typing import Any

from vetreport.bucket.links import public_url
from vetreport.bucket.store import ObjectStore
from vetreport.publish.reader import read_manifest, read_version_file
from vetreport.publish.writer import (
    CHANGELOG_JSON,
    CHANGELOG_MD,
    REPORT_DOCX,
    REPORT_HTML,
    REPORT_PDF,
    WORKBOOK_NAME,
)

CHANGE_WORDS = {"added": "新增 added", "changed": "变化 changed", "removed": "删除 removed"}
VERSION_LINKS = (
    ("报告 report", REPORT_HTML),
    ("质量报告 report document (.docx)", REPORT_DOCX),
    ("PDF", REPORT_PDF),
    ("变更说明 changelog", CHANGELOG_MD),
    ("工作簿 workbook", WORKBOOK_NAME),
)


def _title(manifest: dict[str, Any]) -> str:
    status = manifest["status"]
    if manifest.get("revision_of"):
        status += f", revision of v{manifest['revision_of']}"
    return f"# {manifest['report_year']} v{manifest['version']} ({status})"


def _summary_line(changelog: dict[str, Any], unchanged: int) -> str:
    summary = changelog["summary"]
    if changelog.get("is_first_version"):
        return (
            f"第一个版本 First version: {summary['tables_changed']} tables, "
            f"{summary['submissions_added']} submissions."
        )
    return (
        f"与 v{changelog['previous_version']} 相比 Compared with v{changelog['previous_version']}"
        f" ({changelog.get('previous_status')}): **{summary['tables_changed']} tables changed, "
        f"{summary['cells_changed']} cells changed**, {unchanged} tables unchanged; rows "
        f"+{summary['rows_added']}/−{summary['rows_removed']}, submissions "
        f"+{summary['submissions_added']}/−{summary['submissions_removed']}."
    )


def version_markdown(store: ObjectStore, report_year: int, version: int) -> str:
    """The publish artifact of a version: its changes against the previous one, linked."""
    manifest = read_manifest(store, report_year, version)
    changelog = json.loads(read_version_file(store, report_year, CHANGELOG_JSON, version))
    listed = [entry for entry in changelog["tables"] if entry["change"] != "unchanged"]
    unchanged = len(changelog["tables"]) - len(listed)
    files = manifest.get("files", {})
    links = [
        f"[{label}]({public_url(store, files[name]['key'])})"
        for label, name in VERSION_LINKS
        if name in files
    ]
    lines = [_title(manifest), "", _summary_line(changelog, unchanged), "", " · ".join(links)]
    if listed:
        lines += [
            "",
            f"## 新增或变化的表 Tables added or changed ({len(listed)}; {unchanged} unchanged "
            "not listed)",
            "",
            "| 表 | table | change | cells changed | rows | rows +/− | link |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for entry in listed:
            table = manifest["tables"].get(entry["table_id"])
            link = f"[csv]({public_url(store, table['files']['csv']['key'])})" if table else "—"
            rows = table["row_count"] if table else 0
            title = str(entry["title_zh"]).replace("|", "\\|")
            lines.append(
                f"| {title} | `{entry['table_id']}` "
                f"| {CHANGE_WORDS.get(entry['change'], entry['change'])} "
                f"| {entry['cells_changed']} | {rows} "
                f"| +{entry['rows_added']}/−{entry['rows_removed']} | {link} |"
            )
    return "\n".join(lines) + "\n"
