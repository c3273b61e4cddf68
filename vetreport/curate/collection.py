"""The collection workflow: explanations, sign-off, the bureau's lock and reopening.

What belongs here: the status ladder of a school's year and everything that moves it.

- **The ladder** (``school_status``): 未提交 → 已提交 → 有错误 → 待说明 → 已确认 → 已锁定 →
  修订中, one pure function of the year's ledger records, the uploads now in the bucket and
  the school's history warnings (written by the last aggregation).
  ``vetreport status``, the completeness artifact and the school's pages all show it.
- **Explanations** (the ``explanations`` dataset, purpose ``workflow``): a school answers a
  warning with a reason: an upload's warning, or a change against last year beyond the
  indicator's tolerance (``history.json``, one warning per indicator, ``history_warnings``).
  ``explanation_findings`` checks an explanations upload against the school's current
  warnings (an explanation of an error, or of a warning that does not exist, is a finding);
  the matched ones go into the upload's ledger record.
  ``explanations_csv`` writes the pre-filled file offered beside the school's reports.
- **Collection events**: sign-off (by the school's ``signoff.json`` upload or an operator's
  command), sign-off refused, the bureau's approval (lock), sending back, and reopening.
  Each is a ledger record: uploads' records under ``ledger/{year}/{school}/{stem}/``, the
  operators' under ``ledger/{year}/_collection/{school}/`` (``event_key``).
- **The lock**: an upload of a locked school is *held*: kept, recorded with outcome
  ``held`` (which the ledger never counts, see ``ledger.counting_records``), reported as
  "已锁定：已转交教育局作为修订", and processed for real once the bureau reopens the year.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from schemas.catalogue import load_datasets, load_rules
from vetreport.bucket.keys import history_report_key, ledger_prefix, uploads_prefix
from vetreport.bucket.links import public_url
from vetreport.bucket.store import ObjectStore
from vetreport.curate.ledger import (
    HELD,
    LOCK_EVENT,
    UNLOCK_EVENT,
    counting_records,
    locked_owners,
    read_records_under,
)
from vetreport.school.history_report import history_message_zh, read_history_findings
from vetreport.validate.normalise import finding_rows
from vetreport.validate.read import SOURCE_ROW

# The ladder, in order. Below SIGNED_OFF a school still has something to do.
NOT_SUBMITTED = "not_submitted"
SUBMITTED = "submitted"
HAS_ERRORS = "has_errors"
NEEDS_EXPLANATION = "needs_explanation"
SIGNED_OFF = "signed_off"
LOCKED = "locked"
REVISING = "revising"
LADDER = (NOT_SUBMITTED, SUBMITTED, HAS_ERRORS, NEEDS_EXPLANATION, SIGNED_OFF, LOCKED, REVISING)
LADDER_ZH = {
    NOT_SUBMITTED: "未提交",
    SUBMITTED: "已提交",
    HAS_ERRORS: "有错误",
    NEEDS_EXPLANATION: "待说明",
    SIGNED_OFF: "已确认",
    LOCKED: "已锁定",
    REVISING: "修订中",
}

# Collection events (the ``collection_event`` field of a ledger record).
SIGNOFF = "signoff"
SIGNOFF_REFUSED = "signoff_refused"
APPROVED = LOCK_EVENT
SENT_BACK = "sent_back"
REOPENED = UNLOCK_EVENT
EVENTS = (SIGNOFF, SIGNOFF_REFUSED, APPROVED, SENT_BACK, REOPENED)
EVENT_ZH = {
    SIGNOFF: "学校确认提交",
    SIGNOFF_REFUSED: "确认未被接受",
    APPROVED: "教育局审核通过（锁定）",
    SENT_BACK: "教育局退回修改",
    REOPENED: "教育局重新开放（修订）",
}
# The outcome of a sign-off upload's record and report.
SIGNED_OFF_OUTCOME = "signed_off"
SIGNOFF_REFUSED_OUTCOME = "signoff_refused"
EVENTS_STEM = "_collection"
SIGNOFF_STEM = "signoff"  # uploads/{year}/{school}/signoff.json: the school signs off
EXPLANATIONS_DATASET = "explanations"
EXPLANATIONS_FILE = "explanations.csv"  # the pre-filled file beside the school's index page
# A change against last year (history.json, written by aggregation) is explained under this
# dataset name, with the indicator's id as its column.
HISTORY_DATASET = "history"
HISTORY_DATASET_ZH = "较上年变化"
NEXT_STEP_ZH = {
    NOT_SUBMITTED: "尚未提交数据。请按模板上传本校数据。",
    SUBMITTED: "数据已提交且无错误。核对无误后，上传 signoff.json 确认提交本年度数据。",
    HAS_ERRORS: "有文件被退回。请按报告修改后重新上传同名文件。",
    NEEDS_EXPLANATION: (
        "有需要说明的警告。请在说明表中写明原因并上传 explanations.csv，或修改数据。"
    ),
    SIGNED_OFF: "已确认提交，等待教育局审核。",
    LOCKED: "教育局已审核并锁定。此后上传的文件将转交教育局作为修订，不改变数据。",
    REVISING: "教育局已重新开放本年度数据（修订）。修改完成后，请再次上传 signoff.json 确认。",
}
LOCKED_RULE = "collection.locked"
LOCKED_MESSAGE_ZH = "已锁定：已转交教育局作为修订"

WarningRef = tuple[str, str, int | None, str | None]  # dataset, rule id, row, column


def warning_ref(item: dict[str, Any]) -> WarningRef:
    """The identity of a warning: dataset, rule, row and column (as the report gives them)."""
    row = item.get("row_number")
    column = item.get("column") or item.get("column_name") or None
    return (
        str(item.get("dataset") or ""),
        str(item["rule_id"]),
        int(row) if row is not None else None,
        str(column) if column is not None else None,
    )


def record_warnings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings of a report, as an upload's ledger record keeps them (one per finding).

    Each with ``needs_explanation`` from rules.csv: those must be explained before the
    school may sign off.
    """
    rules = load_rules()
    return [
        {
            "dataset": item.get("dataset"),
            "rule_id": item["rule_id"],
            "row_number": item.get("row_number"),
            "column": item.get("column"),
            "message_zh": item.get("message_zh"),
            "needs_explanation": rules[item["rule_id"]].needs_explanation,
        }
        for item in report.get("findings", [])
        if item.get("severity") == "warning" and item["rule_id"] in rules
    ]


def history_warnings(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A school's history findings (``reports/{year}/{school}/history.json``) as warnings.

    One per indicator: dataset ``history``, no row, the indicator's id as the column, and
    ``needs_explanation`` from the rule's row of rules.csv like any other warning.
    """
    rules = load_rules()
    return [
        {
            "dataset": HISTORY_DATASET,
            "rule_id": item["rule_id"],
            "row_number": None,
            "column": item["indicator_id"],
            "message_zh": f"{item.get('indicator_zh') or item['indicator_id']}："
            + history_message_zh(item),
            "needs_explanation": rules[item["rule_id"]].needs_explanation,
        }
        for item in findings
        if item.get("rule_id") in rules
    ]


# -- the ladder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolStatus:
    """Where one school's year stands, and why."""

    year: int
    school_code: str
    state: str
    rejected_keys: tuple[str, ...] = ()
    warnings: tuple[dict[str, Any], ...] = ()  # current warnings, each with is_explained
    held_keys: tuple[str, ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    note: str | None = None  # the bureau's note when it sent the year back or reopened it
    datasets: tuple[str, ...] = ()  # the datasets that count now
    last_changed_at: str | None = None
    is_changed_after_signoff: bool = False  # an upload processed after the latest sign-off

    @property
    def state_zh(self) -> str:
        """The state in the words schools and the bureau use."""
        return LADDER_ZH[self.state]

    @property
    def open_warnings(self) -> list[dict[str, Any]]:
        """Warnings that need an explanation and have none yet."""
        return [w for w in self.warnings if w["needs_explanation"] and not w["is_explained"]]

    @property
    def is_lock_raced(self) -> bool:
        """Locked, yet a change was processed after the sign-off the approval rests on.

        An upload in flight while the bureau approved: its ingest checked the lock before
        the approval and recorded its verdict after it (or the approval read the state
        before the upload's record landed). The approval covered other data than what
        counts, so it cannot stand (``release_raced_lock``).
        """
        return self.state == LOCKED and self.is_changed_after_signoff

    @property
    def is_below_signed_off(self) -> bool:
        """Whether the school still has to act (for reminders)."""
        return LADDER.index(self.state) < LADDER.index(SIGNED_OFF)


def is_event(record: dict[str, Any]) -> bool:
    """Whether a ledger record is a collection event (sign-off, approval, ...)."""
    return record.get("collection_event") in EVENTS


def school_status(
    records: Iterable[dict[str, Any]],
    current_versions: dict[str, str],
    year: int,
    school_code: str,
    history: Iterable[dict[str, Any]] = (),
) -> SchoolStatus:
    """The ladder state of one school's year: a pure function of the ledger.

    ``records`` are ledger records (any years and schools: the school's are picked out),
    ``current_versions`` the uploads now in the bucket (key -> version token), ``history``
    the school's history findings as the last aggregation wrote them (changes against last
    year, computed from the counted data): they are warnings like an upload's.

    - 已锁定 after the bureau's approval, until it reopens the year;
    - 未提交 when nothing of the school counts (no upload, or every one withdrawn);
    - 有错误 when the current version of an upload was rejected;
    - 待说明 when a warning whose rule needs an explanation has none;
    - 已确认 when the school signed off after its last change and the bureau has not
      sent it back (a new upload after the sign-off undoes it);
    - 修订中 after the bureau reopened the year, until the school signs off again;
    - 已提交 otherwise (submitted, clean, not signed off yet).
    """
    mine = [
        record
        for record in records
        if record.get("year") == year
        and (record.get("school_code") or record.get("submitter")) == school_code
    ]
    events = sorted((r for r in mine if is_event(r)), key=lambda r: r.get("processed_at", ""))
    uploads = [r for r in mine if not is_event(r) and r.get("outcome") != HELD]
    counting = [
        r for r in counting_records(uploads, current_versions) if r.get("outcome") != "withdrawn"
    ]
    held = sorted(
        {
            r["key"]
            for r in mine
            if r.get("outcome") == HELD and current_versions.get(r["key"]) == r.get("held_version")
        }
        - {r["key"] for r in counting if r.get("version_token") == current_versions.get(r["key"])}
    )
    rejected = sorted(r["key"] for r in counting if r.get("outcome") == "rejected")
    accepted = [r for r in counting if str(r.get("outcome", "")).startswith("accepted")]
    explained: dict[WarningRef, str] = {}
    for record in accepted:
        for item in record.get("explained_warnings", []):
            explained[warning_ref(item)] = item.get("reason", "")
    warnings = []
    for record in sorted(accepted, key=lambda r: r["key"]):
        if record.get("stem") == EXPLANATIONS_DATASET:
            continue  # the explanations' own warnings are answered by a new file, not explained
        for item in record.get("warnings", []):
            ref = warning_ref(item)
            warnings.append(
                {
                    **item,
                    "key": record["key"],
                    "is_explained": ref in explained,
                    "reason": explained.get(ref),
                }
            )
    for item in history_warnings(history):
        ref = warning_ref(item)
        warnings.append(
            {
                **item,
                "key": history_report_key(year, school_code),
                "is_explained": ref in explained,
                "reason": explained.get(ref),
            }
        )
    datasets = sorted(
        {
            entry["dataset"]
            for r in accepted
            for entry in r.get("datasets", [])
            if entry.get("dataset")
        }
    )
    # Any upload processed after the sign-off undoes it, a deletion's withdrawal included
    # (a deleted key no longer counts, so the counting records alone would not show it).
    changes = [r for r in uploads if r.get("stem") != SIGNOFF_STEM]
    last_change = max((r.get("processed_at", "") for r in changes), default=None)

    lock: str | None = None
    signed_at: str | None = None
    note: str | None = None
    for event in events:
        kind = event["collection_event"]
        if kind == SIGNOFF:
            signed_at = event.get("processed_at", "")
        elif kind == APPROVED:
            lock = LOCKED
        elif kind == SENT_BACK:
            signed_at, note = None, event.get("note")
        elif kind == REOPENED:
            lock, signed_at, note = REVISING, None, event.get("note")
    is_signed = signed_at is not None and (last_change is None or last_change <= signed_at)
    changed_after = signed_at is not None and last_change is not None and last_change > signed_at

    base = dict(
        year=year,
        school_code=school_code,
        rejected_keys=tuple(rejected),
        warnings=tuple(warnings),
        held_keys=tuple(held),
        events=tuple(events),
        note=note,
        datasets=tuple(datasets),
        last_changed_at=last_change,
        is_changed_after_signoff=changed_after,
    )
    if lock == LOCKED:
        return SchoolStatus(state=LOCKED, **base)  # type: ignore[arg-type]
    has_open = any(w["needs_explanation"] and not w["is_explained"] for w in warnings)
    if lock == REVISING and not is_signed:
        state = REVISING
    elif not counting:
        state = NOT_SUBMITTED
    elif rejected:
        state = HAS_ERRORS
    elif has_open:
        state = NEEDS_EXPLANATION
    elif is_signed:
        state = SIGNED_OFF
    else:
        state = SUBMITTED
    return SchoolStatus(state=state, **base)  # type: ignore[arg-type]


def signoff_refusals(status: SchoolStatus) -> list[dict[str, Any]]:
    """Why a sign-off cannot be accepted now (empty: it can), as findings of rules.csv."""
    if status.state == LOCKED:
        return [{"rule_id": LOCKED_RULE, "detail": "the year is locked by the bureau"}]
    reasons: list[dict[str, Any]] = []
    if not status.datasets and not status.rejected_keys:
        reasons.append(
            {"rule_id": "collection.signoff_nothing_submitted", "detail": "no upload counts"}
        )
    for key in status.rejected_keys:
        reasons.append(
            {
                "rule_id": "collection.signoff_rejected_upload",
                "detail": f"{key} was rejected",
                "detail_zh": f"文件 {key.rsplit('/', 1)[-1]} 被退回，请修改后重新上传。",
                "value": key.rsplit("/", 1)[-1],
            }
        )
    for warning in status.open_warnings:
        where = _where_zh(warning)
        reasons.append(
            {
                "rule_id": "collection.signoff_unexplained_warning",
                "detail": f"{warning['dataset']} {warning['rule_id']} {where} is unexplained",
                "detail_zh": f"{warning['dataset']} {where}：{warning.get('message_zh') or ''}"
                f"（{warning['rule_id']}）尚未说明。",
                "value": warning["rule_id"],
            }
        )
    return reasons


def _where_zh(item: dict[str, Any]) -> str:
    parts = []
    if item.get("row_number") is not None:
        parts.append(f"第 {item['row_number']} 行")
    if item.get("column"):
        parts.append(f"“{item['column']}”列")
    return "".join(parts) or "整个文件"


# -- explanations ------------------------------------------------------------------------------


def explanation_findings(
    frame: pl.DataFrame, current_warnings: Iterable[dict[str, Any]]
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Check an explanations upload against the school's current warnings.

    Returns (findings, explained): an explanation of an error rule is an error (errors are
    corrected, never explained); one of a warning the school does not have now is a warning
    (the row is ignored); one with no reason is a warning (it explains nothing). The rows
    that match a current warning and give a reason are ``explained``.
    """
    rules = load_rules()
    known = {warning_ref(item) for item in current_warnings}
    findings: list[dict[str, Any]] = []
    explained: list[dict[str, Any]] = []
    for row in frame.iter_rows(named=True):
        ref = warning_ref(row)
        source_row = row.get(SOURCE_ROW)
        rule = rules.get(ref[1])
        reason = (row.get("reason") or "").strip()
        if rule is not None and rule.severity == "error":
            findings.append(
                {
                    "rule_id": "collection.explains_error",
                    "row_number": source_row,
                    "column": "rule_id",
                    "value": ref[1],
                    "detail": f"{ref[1]} is an error rule",
                    "detail_zh": f"“{ref[1]}”是错误，不能说明，只能修改数据后重新上传。",
                }
            )
        elif ref not in known:
            findings.append(
                {
                    "rule_id": "collection.no_such_warning",
                    "row_number": source_row,
                    "column": "rule_id",
                    "value": ref[1],
                    "detail": f"no current warning {ref}",
                    "detail_zh": f"本校当前没有这条警告（{ref[0]} {ref[1]} {_where_zh(row)}）。",
                }
            )
        elif not reason:
            findings.append(
                {
                    "rule_id": "collection.reason_missing",
                    "row_number": source_row,
                    "column": "reason",
                    "detail": f"no reason for {ref}",
                }
            )
        else:
            explained.append(
                {
                    "dataset": ref[0],
                    "rule_id": ref[1],
                    "row_number": ref[2],
                    "column": ref[3],
                    "reason": reason,
                }
            )
    return finding_rows(findings), explained


EXPLANATION_HEADERS = ("学校代码", "数据集", "规则编号", "行号", "字段", "警告内容", "说明")


def explanations_csv(status: SchoolStatus, reasons: dict[WarningRef, str] | None = None) -> bytes:
    """The pre-filled explanations file: one row per current warning, reasons given so far.

    UTF-8 with a BOM so that Excel opens it; the school fills 说明 and uploads it as
    ``uploads/{year}/{school}/explanations.csv``. ``reasons`` (by ``warning_ref``) replace
    the reasons given so far: the portal's form writes the file a school would upload.
    """
    reasons = reasons or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPLANATION_HEADERS)
    for warning in status.warnings:
        writer.writerow(
            [
                status.school_code,
                warning["dataset"],
                warning["rule_id"],
                "" if warning.get("row_number") is None else warning["row_number"],
                warning.get("column") or "",
                _safe_cell(warning.get("message_zh") or ""),
                _safe_cell(reasons.get(warning_ref(warning), warning.get("reason") or "")),
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _safe_cell(text: str) -> str:
    """A text cell Excel will not take for a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# -- reading and writing ----------------------------------------------------------------------


def events_prefix(year: int, school_code: str | None = None) -> str:
    """Where the operators' collection events of a year (and school) are kept."""
    return f"{ledger_prefix(year)}{EVENTS_STEM}/" + (f"{school_code}/" if school_code else "")


def school_records(store: ObjectStore, year: int, school_code: str) -> list[dict[str, Any]]:
    """The school's ledger records of a year: its uploads' and the operators' events."""
    return read_records_under(
        store, [ledger_prefix(year, school_code), events_prefix(year, school_code)]
    )


def school_current_versions(store: ObjectStore, year: int, school_code: str) -> dict[str, str]:
    """The school's uploads now: key -> version token."""
    return {info.key: info.version_token for info in store.list(uploads_prefix(year, school_code))}


def read_school_status(store: ObjectStore, year: int, school_code: str) -> SchoolStatus:
    """The school's ladder state, read from the bucket.

    Two listings, then its own records and its history warnings.
    """
    return school_status(
        school_records(store, year, school_code),
        school_current_versions(store, year, school_code),
        year,
        school_code,
        read_history_findings(store, year, school_code),
    )


def mark_explained(
    findings: dict[str, list[dict[str, Any]]], statuses: dict[str, SchoolStatus]
) -> dict[str, list[dict[str, Any]]]:
    """Each school's history findings with ``is_explained`` and ``reason`` from its status."""
    marked: dict[str, list[dict[str, Any]]] = {}
    for school, items in findings.items():
        status = statuses.get(school)
        answers = {
            warning["column"]: warning
            for warning in (status.warnings if status else ())
            if warning["dataset"] == HISTORY_DATASET
        }
        marked[school] = [
            {
                **item,
                "is_explained": bool(answers.get(item["indicator_id"], {}).get("is_explained")),
                "reason": answers.get(item["indicator_id"], {}).get("reason"),
            }
            for item in items
        ]
    return marked


def locked_schools(store: ObjectStore, year: int) -> frozenset[str]:
    """The schools whose year the bureau has locked (read from the events alone)."""
    records = read_records_under(store, [events_prefix(year)])
    return frozenset(school for owner_year, school in locked_owners(records) if owner_year == year)


@dataclass(frozen=True)
class EventOutcome:
    """What an operator's action did: the record written and the state after it."""

    record: dict[str, Any]
    status: SchoolStatus
    refusals: list[dict[str, Any]] = field(default_factory=list)


def event_record(
    year: int, school_code: str, kind: str, by: str, note: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A collection event as a ledger record (counts nothing: it names no upload)."""
    now = datetime.now(UTC).isoformat()
    event_id = f"{now[:19].replace(':', '').replace('-', '')}-{kind}-{uuid.uuid4().hex[:8]}"
    return {
        "submission_id": event_id,
        "collection_event": kind,
        "year": year,
        "submitter": school_code,
        "school_code": school_code,
        "by": by,
        "note": note,
        "key": "",
        "version_token": "",
        "uploaded_at": now,
        "processed_at": now,
        "outcome": kind,
        "datasets": [],
        **extra,
    }


def event_key(record: dict[str, Any]) -> str:
    """``ledger/{year}/_collection/{school}/{event id}.json``."""
    return f"{events_prefix(record['year'], record['school_code'])}{record['submission_id']}.json"


def write_event(store: ObjectStore, record: dict[str, Any]) -> str:
    """Write an operator's collection event; return its key."""
    key = event_key(record)
    body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    store.put_if_absent(key, body, "application/json")
    return key


def sign_off(store: ObjectStore, year: int, school_code: str, by: str) -> EventOutcome:
    """An operator signs off a school's year for it; refused (and recorded) when not ready."""
    status = read_school_status(store, year, school_code)
    refusals = signoff_refusals(status)
    kind = SIGNOFF_REFUSED if refusals else SIGNOFF
    record = event_record(
        year, school_code, kind, by, refusals=[item["rule_id"] for item in refusals]
    )
    write_event(store, record)
    return EventOutcome(record, read_school_status(store, year, school_code), refusals)


def decide(
    store: ObjectStore, year: int, school_code: str, approve: bool, by: str, note: str = ""
) -> EventOutcome:
    """The bureau approves (locks) a signed-off year, or sends it back with a note."""
    status = read_school_status(store, year, school_code)
    if status.state != SIGNED_OFF:
        raise ValueError(
            f"{school_code} {year} is {status.state_zh}, not 已确认: nothing to decide"
        )
    record = event_record(year, school_code, APPROVED if approve else SENT_BACK, by, note or None)
    write_event(store, record)
    if approve:
        # an upload whose record landed after the state above was read: not approved
        release_raced_lock(store, year, school_code)
    return EventOutcome(record, read_school_status(store, year, school_code))


RACED_LOCK_NOTE = (
    "教育局审核通过时，本校有新的上传正在处理，审核未包含该数据。"
    "本年度已重新开放，请核对后再次确认提交。"
)


def release_raced_lock(store: ObjectStore, year: int, school_code: str) -> bool:
    """Reopen a lock that an upload in flight raced (``SchoolStatus.is_lock_raced``).

    Both sides call it after writing: the approval after its lock event, the ingest after
    its records. Whichever writes last sees the other, so a change the bureau did not see
    never stays counted under its lock. The school signs off again and the bureau approves
    what counts. Returns whether it reopened.
    """
    status = read_school_status(store, year, school_code)
    if not status.is_lock_raced:
        return False
    write_event(store, event_record(year, school_code, REOPENED, "system", RACED_LOCK_NOTE))
    return True


def reopen(
    store: ObjectStore, year: int, school_code: str, by: str, note: str = ""
) -> EventOutcome:
    """The bureau reopens a locked year: held uploads are then processed as revisions."""
    status = read_school_status(store, year, school_code)
    if status.state != LOCKED:
        raise ValueError(
            f"{school_code} {year} is {status.state_zh}, not 已锁定: nothing to reopen"
        )
    record = event_record(year, school_code, REOPENED, by, note or None)
    write_event(store, record)
    return EventOutcome(record, read_school_status(store, year, school_code))


def year_statuses(
    records: list[dict[str, Any]],
    current_versions: dict[str, str],
    year: int,
    schools: list[str],
    history: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, SchoolStatus]:
    """The ladder state of each of ``schools`` (the registry's, or those seen in the ledger).

    ``history`` is each school's history findings by school code.
    """
    history = history or {}
    by_school: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("year") == year:
            school = record.get("school_code") or record.get("submitter")
            by_school.setdefault(str(school), []).append(record)
    return {
        school: school_status(
            by_school.get(school, []), current_versions, year, school, history.get(school, ())
        )
        for school in schools
    }


# -- what an operator reads -------------------------------------------------------------------


def data_datasets() -> list[dict[str, str]]:
    """The datasets a school submits for the tables (not its explanations), in order."""
    return [
        {"dataset": spec.dataset_id, "dataset_name_zh": spec.name_zh}
        for spec in load_datasets().values()
        if spec.submitted_by == "school" and spec.is_data
    ]


def status_markdown(store: ObjectStore, status: SchoolStatus) -> str:
    """The school's place on the ladder and what is open, as an operator reads it."""
    index = public_url(store, f"reports/{status.year}/{status.school_code}/index.html")
    lines = [
        f"# {status.school_code} {status.year}: **{status.state_zh}** ({status.state})",
        "",
        f"[学校页面 the school's page]({index})",
        "",
    ]
    submitted = set(status.datasets)
    missing = [
        f"{row['dataset_name_zh']} `{row['dataset']}`"
        for row in data_datasets()
        if row["dataset"] not in submitted
    ]
    if missing:
        lines += [f"**未提交 not submitted ({len(missing)})**: " + "、".join(missing), ""]
    if status.rejected_keys:
        lines += ["**被退回 rejected**: " + ", ".join(f"`{k}`" for k in status.rejected_keys), ""]
    if status.held_keys:
        lines += ["**锁定后上传 held**: " + ", ".join(f"`{k}`" for k in status.held_keys), ""]
    needing = [w for w in status.warnings if w["needs_explanation"]]
    if needing:
        lines += [
            "| 数据集 dataset | 规则 rule | 行 row | 列 column | 说明 reason |",
            "| --- | --- | --- | --- | --- |",
        ]
        for warning in needing:
            reason = warning.get("reason") or "**待说明 unexplained**"
            lines.append(
                f"| {warning['dataset']} | `{warning['rule_id']}` | "
                f"{warning.get('row_number') or ''} | {warning.get('column') or ''} | "
                f"{reason.replace('|', '/')} |"
            )
        lines.append("")
    if status.events:
        lines.append("## 记录 events")
        lines += [
            f"- {event.get('processed_at', '')[:19]} {EVENT_ZH[event['collection_event']]}"
            + (f": {event['note']}" if event.get("note") else "")
            for event in status.events
        ]
    return "\n".join(lines) + "\n"
