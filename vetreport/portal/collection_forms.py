"""The portal's 情况说明与确认 forms: explanations and sign-off written for the school.

What belongs here: what the school's page shows of the collection workflow (its rung on
the ladder, the next step, its warnings with the reasons given so far, why it may not
sign off yet) and the bytes the two forms write. Both are objects a school could upload
itself, and ingest judges them exactly as such:

- the explanations form writes ``uploads/{year}/{school}/explanations.csv``, made by
  ``collection.explanations_csv`` (the same function that writes the pre-filled file
  beside the school's reports) with the reasons typed into the form;
- the sign-off form writes ``uploads/{year}/{school}/signoff.json`` with the optional
  ``signed_by``, ``title`` and ``note`` that ingest records (``ingest.SIGNOFF_FIELDS``).

The state comes from ``collection.read_school_status``, the function behind the school's
index page and ``vetreport status``. A form row is named by a digest of its warning's
identity (dataset, rule, row, column), so a reason typed for one warning can never land
on another when the warnings changed between showing the form and sending it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from schemas.catalogue import load_datasets, load_rules
from vetreport.bucket.keys import upload_key
from vetreport.curate.collection import (
    EXPLANATIONS_DATASET,
    HISTORY_DATASET,
    HISTORY_DATASET_ZH,
    LOCKED,
    NEXT_STEP_ZH,
    SIGNED_OFF,
    SIGNOFF_STEM,
    SchoolStatus,
    WarningRef,
    explanations_csv,
    signoff_refusals,
    warning_ref,
)
from vetreport.curate.ingest import SIGNOFF_FIELDS

REASON_FIELD = "reason."  # + the warning's field id
MAX_REASON_CHARS = 500
MAX_SIGNOFF_FIELD_CHARS = 200  # ingest keeps 200 characters of each
FORM_STEMS = {EXPLANATIONS_DATASET: "csv", SIGNOFF_STEM: "json"}
PORTAL_HINT_ZH = "在本页“情况说明与确认”中填写说明、确认提交即可，无需自己制作文件。"


class FormRefused(ValueError):
    """A form that cannot be written now (the message is Chinese)."""

    def __init__(self, message_zh: str, status: int = 400) -> None:
        super().__init__(message_zh)
        self.status = status


def form_key(year: int, school_code: str, stem: str) -> str:
    """``uploads/{year}/{school}/explanations.csv`` or ``.../signoff.json``."""
    return upload_key(year, school_code, stem, FORM_STEMS[stem])


def field_id(ref: WarningRef) -> str:
    """A short, stable name for a warning's form field."""
    return hashlib.sha256(json.dumps(list(ref)).encode("utf-8")).hexdigest()[:16]


def refusals_zh(status: SchoolStatus) -> list[str]:
    """Why the school may not sign off now, one Chinese sentence each (empty: it may)."""
    rules = load_rules()
    sentences = []
    for item in signoff_refusals(status):
        rule = rules.get(item["rule_id"])
        sentences.append(item.get("detail_zh") or (rule.message_zh if rule else item["rule_id"]))
    return sentences


def collection_view(status: SchoolStatus) -> dict[str, Any]:
    """What the page and the status API show of the school's collection workflow."""
    names = {dataset_id: spec.name_zh for dataset_id, spec in load_datasets().items()}
    names[HISTORY_DATASET] = HISTORY_DATASET_ZH
    rows = [
        {
            "field": REASON_FIELD + field_id(warning_ref(warning)),
            "dataset_zh": names.get(warning["dataset"], warning["dataset"]),
            "file": str(warning.get("key", "")).rsplit("/", 1)[-1],
            "rule_id": warning["rule_id"],
            "row_number": warning.get("row_number"),
            "column": warning.get("column") or "",
            "message_zh": warning.get("message_zh") or "",
            "needs_explanation": bool(warning["needs_explanation"]),
            "is_explained": bool(warning["is_explained"]),
            "reason": warning.get("reason") or "",
        }
        for warning in status.warnings
    ]
    refusals = refusals_zh(status)
    is_open = status.state != LOCKED
    next_step = NEXT_STEP_ZH[status.state]
    return {
        "state": status.state,
        "state_zh": status.state_zh,
        "next_step_zh": next_step,
        "hint_zh": PORTAL_HINT_ZH if is_open and status.state != SIGNED_OFF else "",
        "note": status.note or "",
        "is_locked": not is_open,
        "is_signed_off": status.state == SIGNED_OFF,
        "rows": rows,
        "refusals_zh": refusals,
        "can_sign_off": is_open and status.state != SIGNED_OFF and not refusals,
    }


def explanations_body(status: SchoolStatus, typed: dict[str, str]) -> bytes:
    """The explanations file with the reasons typed into the form (field name -> text).

    A warning the form did not show keeps the reason it has; a field that names no current
    warning means the warnings changed since the page was shown: the form is refused.
    """
    if status.state == LOCKED:
        raise FormRefused("本年度数据已锁定，不能再提交说明。如需修改，请联系教育局。", 409)
    by_field = {REASON_FIELD + field_id(warning_ref(w)): warning_ref(w) for w in status.warnings}
    sent = {name: text for name, text in typed.items() if name.startswith(REASON_FIELD)}
    if not status.warnings:
        raise FormRefused("本校目前没有需要说明的警告。", 409)
    if not sent or set(sent) - set(by_field):
        raise FormRefused("警告已有变化（可能刚处理完新上传的文件），请刷新页面后重新填写。", 409)
    reasons: dict[WarningRef, str] = {}
    for name, text in sent.items():
        reason = " ".join(text.split())  # one line: no line breaks inside a CSV cell
        if len(reason) > MAX_REASON_CHARS:
            raise FormRefused(f"每条说明不超过 {MAX_REASON_CHARS} 个字。")
        reasons[by_field[name]] = reason
    if not any(reasons.values()):
        raise FormRefused("请至少为一条警告填写说明。")
    return explanations_csv(status, reasons)


def signoff_body(status: SchoolStatus, said: dict[str, str]) -> bytes:
    """The sign-off file: a JSON object of the optional fields the clerk filled in.

    Refused (and nothing written) when the year cannot be signed off now: ingest would
    record a refusal with the same reasons, and an accepted sign-off starts the bureau's
    review, so a second one while the first waits is refused too.
    """
    if status.state == LOCKED:
        raise FormRefused("本年度数据已锁定，无需再次确认。", 409)
    if status.state == SIGNED_OFF:
        raise FormRefused("本年度数据已确认提交，正在等待教育局审核。", 409)
    refusals = refusals_zh(status)
    if refusals:
        raise FormRefused("暂不能确认提交：" + "；".join(refusals), 409)
    content = {}
    for name in SIGNOFF_FIELDS:
        text = " ".join(str(said.get(name, "")).split())
        if len(text) > MAX_SIGNOFF_FIELD_CHARS:
            raise FormRefused(f"每项不超过 {MAX_SIGNOFF_FIELD_CHARS} 个字。")
        if text:
            content[name] = text
    return json.dumps(content, ensure_ascii=False, indent=2).encode("utf-8")
