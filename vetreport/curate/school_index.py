"""Each school's list of its uploads: reports/{year}/{school}/index.html and index.json.

What belongs here: the page a school opens to find the report of the file it just sent,
without knowing submission ids. It lists the school's uploads of a year from the ledger,
newest first, with the outcome, the error and warning counts, whether the upload is the
data that counts now for its dataset, and links to its reports (the links are relative:
the reports sit beside the index). ``ingest_keys`` rewrites the index of every school an
ingest touched; the nightly rebuild rewrites them all, so two ingests of one school that
race each other leave a complete index by the next morning at the latest.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.catalogue import load_datasets
from vetreport.bucket.documents import document_bytes
from vetreport.bucket.keys import (
    CITY_SUBMITTER,
    ledger_prefix,
    parse_ledger_key,
    school_index_key,
    uploads_prefix,
)
from vetreport.bucket.store import ObjectStore
from vetreport.curate.collection import (
    EVENTS_STEM,
    EXPLANATIONS_FILE,
    NEXT_STEP_ZH,
    events_prefix,
    explanations_csv,
    school_status,
)
from vetreport.curate.ledger import (
    HELD,
    current_submissions,
    read_records_under,
)
from vetreport.school.history_report import read_history_findings, write_history_reports
from vetreport.school.pages import render_upload_list_page

INDEX_THREADS = 8  # school indexes rewritten at once after an aggregation

DISPLAY_TIMEZONE = ZoneInfo("Asia/Shanghai")
OUTCOME_ZH = {
    "accepted": "通过",
    "accepted_with_warnings": "通过（有警告）",
    "rejected": "退回",
    "withdrawn": "已撤回（文件已删除）",
    HELD: "已锁定：已转交教育局作为修订",
    "signed_off": "已确认提交",
    "signoff_refused": "确认未被接受",
}


def school_uploads(
    store: ObjectStore,
    year: int,
    submitter: str,
    records: list[dict[str, Any]] | None = None,
    current_versions: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The submitter's processed uploads of a year, newest first, as the index shows them.

    ``records`` and ``current_versions``: the submitter's ledger records and uploads as
    already read (else read here).
    """
    if records is None:
        records = read_records_under(store, [ledger_prefix(year, submitter)])
    if current_versions is None:
        current_versions = {
            info.key: info.version_token for info in store.list(uploads_prefix(year, submitter))
        }
    current = set(
        current_submissions(records, current_versions).get_column("submission_id").to_list()
    )
    names = {dataset_id: spec.name_zh for dataset_id, spec in load_datasets().items()}
    uploads = []
    for record in sorted(records, key=lambda item: item["uploaded_at"], reverse=True):
        datasets = [entry["dataset"] for entry in record.get("datasets", []) if entry["dataset"]]
        links = [
            {"label": key.rsplit(".", 1)[-1].upper(), "href": key.rsplit("/", 1)[-1]}
            for key in record.get("report_keys", [record["report_key"]])
        ]
        uploads.append(
            {
                "submission_id": record["submission_id"],
                "uploaded_at": datetime.fromisoformat(record["uploaded_at"])
                .astimezone(DISPLAY_TIMEZONE)
                .strftime("%Y-%m-%d %H:%M:%S"),
                "datasets": "、".join(names.get(name, name) for name in datasets) or "—",
                "file": record["key"].rsplit("/", 1)[-1],
                "key": record["key"],
                "outcome": record["outcome"],
                "outcome_zh": OUTCOME_ZH.get(record["outcome"], record["outcome"]),
                "error_count": record.get("error_count", 0),
                "warning_count": record.get("warning_count", 0),
                "is_current": record["submission_id"] in current,
                "links": links,
            }
        )
    return uploads


def write_school_index(store: ObjectStore, year: int, submitter: str) -> list[str]:
    """Rewrite the submitter's index page and its JSON twin; return their keys."""
    records = read_records_under(store, [ledger_prefix(year, submitter)])
    current_versions = {
        info.key: info.version_token for info in store.list(uploads_prefix(year, submitter))
    }
    uploads = school_uploads(store, year, submitter, records, current_versions)
    written = []
    status_view = None
    if submitter != CITY_SUBMITTER:
        events = read_records_under(store, [events_prefix(year, submitter)])
        history = read_history_findings(store, year, submitter)
        status = school_status(records + events, current_versions, year, submitter, history)
        status_view = {
            "state": status.state,
            "state_zh": status.state_zh,
            "next_step": NEXT_STEP_ZH[status.state],
            "note": status.note,
            "warnings": list(status.warnings),
            "held_keys": list(status.held_keys),
        }
        key = school_index_key(year, submitter, "html").replace("index.html", EXPLANATIONS_FILE)
        store.put(key, explanations_csv(status), "text/csv; charset=utf-8")
        written.append(key)
    html = render_upload_list_page(year, submitter, uploads, status_view)
    for extension, body, content_type in (
        ("html", html.encode("utf-8"), "text/html; charset=utf-8"),
        (
            "json",
            document_bytes(  # one line: rewritten for a school after each of its ingests
                {"year": year, "submitter": submitter, "status": status_view, "uploads": uploads}
            ),
            "application/json",
        ),
    ):
        key = school_index_key(year, submitter, extension)
        store.put(key, body, content_type)
        written.append(key)
    return written


def write_history_and_indexes(
    store: ObjectStore, findings: dict[str, list[dict[str, Any]]], year: int, schools: list[str]
) -> list[str]:
    """Write each school's history warnings; rewrite the index of those whose warnings changed.

    The index page and the pre-filled explanations file list the history warnings with the
    upload's, so a school is asked to explain what now stands. Returns the changed schools.
    A school's first history file with no warning in it changes nothing it sees (no file
    read as none): a country's first aggregation does not rewrite every upload list.
    """
    changed = write_history_reports(store, findings, year, schools).warnings_changed
    # each index lists and reads its school's records: on an object store they wait
    with ThreadPoolExecutor(max_workers=INDEX_THREADS) as pool:
        list(pool.map(lambda school: write_school_index(store, year, school), changed))
    return changed


def submitters_with_records(store: ObjectStore) -> set[tuple[int, str]]:
    """Every (year, submitter) that has a ledger record."""
    found = set()
    for key in store.list_keys(ledger_prefix()):
        parsed = parse_ledger_key(key)
        if parsed is not None and parsed[1] != EVENTS_STEM:  # operators' events: no submitter
            found.add(parsed)
    return found


def write_every_school_index(store: ObjectStore) -> int:
    """Rewrite the upload list of every (year, submitter) with a ledger record; return how many."""
    pairs = sorted(submitters_with_records(store))
    for year, submitter in pairs:
        write_school_index(store, year, submitter)
    return len(pairs)
