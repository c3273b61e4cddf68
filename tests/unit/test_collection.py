"""The collection workflow: the status ladder, explanations, sign-off, lock and reopening.

The ladder is one pure function of ledger records (``school_status``): the first tests feed
it tiny hand-made records. The last ones run one school through the folder bucket with the
real ingest: warnings, explanations, sign-off, the bureau's lock, a held upload, reopening.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from vetreport.bucket.store import LocalStore
from vetreport.curate import collection
from vetreport.curate.collection import (
    APPROVED,
    REOPENED,
    SENT_BACK,
    SIGNOFF,
    explanation_findings,
    explanations_csv,
    read_school_status,
    school_status,
    signoff_refusals,
)
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.curate.ledger import current_submissions, current_upload_versions, read_records
from vetreport.curate.school_index import submitters_with_records
from vetreport.validate.read import SOURCE_ROW

YEAR = 2023
SCHOOL = "3133060003"
KEY = f"uploads/{YEAR}/{SCHOOL}/graduates.csv"


def upload(outcome: str, at: str, key: str = KEY, token: str = "v1", **extra: Any) -> dict:
    return {
        "year": YEAR,
        "submitter": SCHOOL,
        "school_code": SCHOOL,
        "key": key,
        "stem": key.rsplit("/", 1)[-1].split(".")[0],
        "version_token": token,
        "submission_id": f"{key}-{token}-{at}",
        "uploaded_at": at,
        "processed_at": at,
        "outcome": outcome,
        "datasets": [{"dataset": "graduates", "outcome": outcome, "row_count": 3}],
        **extra,
    }


def event(kind: str, at: str, note: str | None = None) -> dict:
    return {
        "year": YEAR,
        "submitter": SCHOOL,
        "school_code": SCHOOL,
        "collection_event": kind,
        "key": "",
        "version_token": "",
        "processed_at": at,
        "note": note,
        "datasets": [],
    }


WARNING = {
    "dataset": "graduates",
    "rule_id": "row.matched_only_if_employed",
    "row_number": 4,
    "column": "is_major_matched",
    "needs_explanation": True,
}
MINOR = {
    **WARNING,
    "rule_id": "structure.unknown_column",
    "row_number": None,
    "column": "x",
    "needs_explanation": False,
}
EXPLAINED = {**WARNING, "reason": "升学后兼职，学校按对口记录"}


def state(records: list[dict], versions: dict[str, str] | None = None) -> str:
    return school_status(
        records, {KEY: "v1"} if versions is None else versions, YEAR, SCHOOL
    ).state_zh


def test_nothing_uploaded_is_not_submitted() -> None:
    assert state([]) == "未提交"
    other = {**upload("accepted", "t1"), "submitter": "3133060004", "school_code": "3133060004"}
    assert state([other]) == "未提交"  # another school's upload is not this school's


def test_a_deleted_upload_counts_for_nothing() -> None:
    assert state([upload("accepted", "t1")], versions={}) == "未提交"


def test_clean_upload_is_submitted_and_a_rejected_one_has_errors() -> None:
    assert state([upload("accepted", "t1")]) == "已提交"
    assert state([upload("accepted", "t1"), upload("rejected", "t2", token="v2")], {KEY: "v2"}) == (
        "有错误"
    )
    # the rejected version is gone: the key is back to its accepted state
    assert state([upload("accepted", "t1"), upload("rejected", "t2", token="v2")]) == "已提交"


def test_a_warning_that_needs_explaining_waits_for_an_explanation() -> None:
    data = upload("accepted_with_warnings", "t1", warnings=[WARNING, MINOR])
    assert state([data]) == "待说明"
    explanation_key = f"uploads/{YEAR}/{SCHOOL}/explanations.csv"
    explains = upload(
        "accepted", "t2", key=explanation_key, explained_warnings=[EXPLAINED], datasets=[]
    )
    versions = {KEY: "v1", explanation_key: "v1"}
    status = school_status([data, explains], versions, YEAR, SCHOOL)
    assert status.state_zh == "已提交"
    assert [w["is_explained"] for w in status.warnings] == [True, False]
    assert status.open_warnings == []  # the unexplained one does not need explaining
    # the school corrects the file instead: the warning is gone, the explanation harmless
    fixed = upload("accepted", "t3", token="v2")
    assert state([data, explains, fixed], {KEY: "v2", explanation_key: "v1"}) == "已提交"


def test_signoff_lock_reopen_and_a_change_after_signoff() -> None:
    data = upload("accepted", "t1")
    assert state([data, event(SIGNOFF, "t2")]) == "已确认"
    assert state([data, event(SIGNOFF, "t2"), event(APPROVED, "t3")]) == "已锁定"
    locked_then_reopened = [
        data,
        event(SIGNOFF, "t2"),
        event(APPROVED, "t3"),
        event(REOPENED, "t4"),
    ]
    assert state(locked_then_reopened) == "修订中"
    assert state([*locked_then_reopened, event(SIGNOFF, "t5")]) == "已确认"
    assert state([*locked_then_reopened, event(SIGNOFF, "t5"), event(APPROVED, "t6")]) == "已锁定"
    # sent back: the sign-off is undone and the bureau's note is shown
    sent_back = school_status(
        [data, event(SIGNOFF, "t2"), event(SENT_BACK, "t3", "请核对毕业生人数")],
        {KEY: "v1"},
        YEAR,
        SCHOOL,
    )
    assert (sent_back.state_zh, sent_back.note) == ("已提交", "请核对毕业生人数")
    # an upload after the sign-off undoes it (the school must sign off what counts)
    newer = upload("accepted", "t3", token="v2")
    assert state([data, event(SIGNOFF, "t2"), newer], {KEY: "v2"}) == "已提交"


def test_a_held_upload_changes_nothing() -> None:
    data = upload("accepted", "t1")
    held = {**upload("held", "t4", token="held:v2"), "held_version": "v2", "datasets": []}
    records = [data, event(SIGNOFF, "t2"), event(APPROVED, "t3"), held]
    status = school_status(records, {KEY: "v2"}, YEAR, SCHOOL)
    assert status.state_zh == "已锁定"
    assert status.held_keys == (KEY,)
    assert status.datasets == ("graduates",)  # still the accepted version's data
    counted = current_submissions(records, {KEY: "v2"})
    assert counted.get_column("version_token").to_list() == ["v1"]


def test_signoff_is_refused_with_what_is_open() -> None:
    def reasons(records: list[dict], versions: dict[str, str] | None = None) -> list[str]:
        status = school_status(records, {KEY: "v1"} if versions is None else versions, YEAR, SCHOOL)
        return [item["rule_id"] for item in signoff_refusals(status)]

    assert reasons([]) == ["collection.signoff_nothing_submitted"]
    assert reasons([upload("rejected", "t1")]) == ["collection.signoff_rejected_upload"]
    assert reasons([upload("accepted_with_warnings", "t1", warnings=[WARNING, MINOR])]) == [
        "collection.signoff_unexplained_warning"
    ]
    assert reasons([upload("accepted", "t1")]) == []
    locked = [upload("accepted", "t1"), event(SIGNOFF, "t2"), event(APPROVED, "t3")]
    assert reasons(locked) == ["collection.locked"]


def explanation_rows(*rows: tuple[str, str, int | None, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "dataset": dataset,
                "rule_id": rule_id,
                "row_number": row,
                "column_name": column,
                "reason": reason,
                SOURCE_ROW: place + 2,
            }
            for place, (dataset, rule_id, row, column, reason) in enumerate(rows)
        ],
        schema={
            "dataset": pl.Utf8,
            "rule_id": pl.Utf8,
            "row_number": pl.Int64,
            "column_name": pl.Utf8,
            "reason": pl.Utf8,
            SOURCE_ROW: pl.Int64,
        },
    )


def test_explanations_are_checked_against_the_current_warnings() -> None:
    frame = explanation_rows(
        ("graduates", "row.matched_only_if_employed", 4, "is_major_matched", "兼职对口"),
        ("graduates", "row.matched_only_if_employed", 9, "is_major_matched", "没有这条"),
        ("graduates", "field.range", 4, "starting_monthly_income_yuan", "错误也想说明"),
        ("graduates", "row.matched_only_if_employed", 4, "is_major_matched", "  "),
    )
    findings, explained = explanation_findings(frame, [WARNING])
    assert findings.select("rule_id", "row_number").rows() == [
        ("collection.no_such_warning", 3),
        ("collection.explains_error", 4),
        ("collection.reason_missing", 5),
    ]
    assert explained == [
        {
            "dataset": "graduates",
            "rule_id": "row.matched_only_if_employed",
            "row_number": 4,
            "column": "is_major_matched",
            "reason": "兼职对口",
        }
    ]


def test_the_prefilled_file_has_one_row_per_warning_and_the_reasons_given() -> None:
    data = upload("accepted_with_warnings", "t1", warnings=[WARNING, MINOR])
    key = f"uploads/{YEAR}/{SCHOOL}/explanations.csv"
    explains = upload("accepted", "t2", key=key, explained_warnings=[EXPLAINED], datasets=[])
    status = school_status([data, explains], {KEY: "v1", key: "v1"}, YEAR, SCHOOL)
    lines = explanations_csv(status).decode("utf-8-sig").splitlines()
    assert lines[0] == "学校代码,数据集,规则编号,行号,字段,警告内容,说明"
    assert lines[1].startswith(f"{SCHOOL},graduates,row.matched_only_if_employed,4,")
    assert lines[1].endswith(EXPLAINED["reason"])
    assert lines[2] == f"{SCHOOL},graduates,structure.unknown_column,,x,,"


# -- one school through the real ingest, on the folder bucket -----------------------------------

GRADUATES_HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入"


def graduates_csv(rows: int, bad_match_rows: int = 1) -> bytes:
    lines = [GRADUATES_HEADER]
    lines += [f"{SCHOOL},G{index:04d},数控技术,直接就业,是,4200" for index in range(rows)]
    lines += [f"{SCHOOL},U{index:04d},数控技术,单考单招,是," for index in range(bad_match_rows)]
    return ("\n".join(lines) + "\n").encode()


def put(store: LocalStore, name: str, body: bytes) -> str:
    key = f"uploads/{YEAR}/{SCHOOL}/{name}"
    store.put(key, body)
    return key


def ingest(store: LocalStore, key: str) -> dict:
    (result,) = ingest_keys(store, [key])
    return json.loads(store.get(result.report_key)) if result.report_key else {}


def shown_to_school(store: LocalStore) -> str:
    """The state word on the school's upload list (the index page ingest rewrites)."""
    page = store.get(f"reports/{YEAR}/{SCHOOL}/index.html").decode()
    start = page.index('class="state"')
    return page[page.index(">", start) + 1 : page.index("</span>", start)]


def counted_graduates(store: LocalStore) -> int | None:
    current = current_submissions(
        read_records(store, [YEAR]), current_upload_versions(store, [YEAR])
    ).filter(pl.col("dataset") == "graduates")
    return current.item(0, "row_count") if current.height else None


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.setenv("VETREPORT_OPEN_YEARS", str(YEAR))
    return LocalStore(tmp_path / "bucket")


def test_one_school_from_warnings_to_a_held_upload_and_back(store: LocalStore) -> None:
    key = put(store, "graduates.csv", graduates_csv(3))
    report = ingest(store, key)
    assert report["outcome"] == "accepted_with_warnings"
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "待说明"
    assert shown_to_school(store) == "待说明"
    offered = store.get(f"reports/{YEAR}/{SCHOOL}/explanations.csv").decode("utf-8-sig")
    assert offered.splitlines()[1].startswith(f"{SCHOOL},graduates,row.matched_only_if_employed,")

    # signing off now is refused, and the school is told why
    refused = ingest(store, put(store, "signoff.json", '{"signed_by": "王校长"}'.encode()))
    assert refused["outcome"] == "signoff_refused"
    assert {item["rule_id"] for item in refused["findings"]} == {
        "collection.signoff_unexplained_warning"
    }

    # the pre-filled file, with a reason written in, explains the warning
    prefilled = explanations_csv(read_school_status(store, YEAR, SCHOOL)).decode("utf-8-sig")
    assert prefilled.count("\n") == 2 and prefilled.endswith(",\n")  # header, one warning
    filled = prefilled.rstrip("\n") + "学生升学前已在对口企业兼职\n"
    explained = ingest(store, put(store, "explanations.csv", filled.encode("utf-8")))
    assert explained["outcome"] == "accepted"
    status = read_school_status(store, YEAR, SCHOOL)
    assert status.state_zh == "已提交"
    assert all(w["is_explained"] for w in status.warnings if w["needs_explanation"])
    assert shown_to_school(store) == "已提交"
    assert (
        "已说明：学生升学前已在对口企业兼职"
        in store.get(f"reports/{YEAR}/{SCHOOL}/index.html").decode()
    )

    # an explanation of an error is refused like any bad row
    bad = f"学校代码,数据集,规则编号,行号,字段,说明\n{SCHOOL},graduates,field.range,2,x,想说明\n"
    refused_explanation = ingest(store, put(store, "explanations.csv", bad.encode()))
    assert refused_explanation["outcome"] == "rejected"
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "有错误"
    ingest(store, put(store, "explanations.csv", filled.encode("utf-8")))  # put it back

    signed = ingest(store, put(store, "signoff.json", '{"signed_by": "王校长"}'.encode()))
    assert signed["outcome"] == "signed_off"
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "已确认"
    assert shown_to_school(store) == "已确认"

    collection.decide(store, YEAR, SCHOOL, approve=True, by="bureau")
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "已锁定"

    # a late upload is kept and reported as locked, and changes nothing
    late = put(store, "graduates.csv", graduates_csv(5, bad_match_rows=0))
    held = ingest(store, late)
    assert held["outcome"] == "held"
    page = store.get(f"reports/{YEAR}/{SCHOOL}/{held['submission_id']}.html").decode()
    assert "已锁定：已转交教育局作为修订" in page
    assert counted_graduates(store) == 4
    status = read_school_status(store, YEAR, SCHOOL)
    assert (status.state_zh, status.held_keys) == ("已锁定", (late,))
    assert shown_to_school(store) == "已锁定"
    (again,) = ingest_keys(store, [late])
    assert again.was_skipped  # the sweep finds it again: nothing new happens
    assert counted_graduates(store) == 4
    store.delete(late)  # a deletion waits for reopening too
    assert ingest_keys(store, [late]) == []
    put(store, "graduates.csv", graduates_csv(5, bad_match_rows=0))

    collection.reopen(store, YEAR, SCHOOL, by="bureau", note="同意修订")
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "修订中"
    waiting = unprocessed_upload_keys(store, YEAR)
    assert late in waiting
    ingest_keys(store, waiting)
    assert counted_graduates(store) == 5
    status = read_school_status(store, YEAR, SCHOOL)
    assert (status.state_zh, status.held_keys, status.note) == ("修订中", (), "同意修订")
    assert shown_to_school(store) == "修订中"


def test_a_calendar_out_of_order_is_refused_and_a_bare_moment_is_a_publication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vetreport.publish.policy import load_calendar, load_deadlines

    monkeypatch.setenv("VETREPORT_DEADLINES", '{"2024": "2025-03-31T18:00:00+08:00"}')
    assert [name for name, _ in load_calendar()[2024].steps()] == ["publication"]
    assert load_deadlines()[2024].isoformat() == "2025-03-31T18:00:00+08:00"
    monkeypatch.setenv(
        "VETREPORT_DEADLINES",
        '{"2023": {"school_deadline": "2024-04-20T18:00:00+08:00", '
        '"publication": "2024-03-31T18:00:00+08:00"}}',
    )
    with pytest.raises(ValueError, match="in order"):
        load_calendar()


def test_the_bureau_sends_a_signoff_back_with_a_note(store: LocalStore) -> None:
    ingest(store, put(store, "graduates.csv", graduates_csv(3, bad_match_rows=0)))
    assert collection.sign_off(store, YEAR, SCHOOL, by="operator").status.state_zh == "已确认"
    outcome = collection.decide(store, YEAR, SCHOOL, approve=False, by="bureau", note="请核对人数")
    assert (outcome.status.state_zh, outcome.status.note) == ("已提交", "请核对人数")
    with pytest.raises(ValueError, match="已提交"):  # nothing signed off: nothing to decide
        collection.decide(store, YEAR, SCHOOL, approve=True, by="bureau")
    with pytest.raises(ValueError, match="已提交"):
        collection.reopen(store, YEAR, SCHOOL, by="bureau")
    kinds = [
        record["collection_event"]
        for record in read_records(store, [YEAR])
        if record.get("collection_event")
    ]
    assert sorted(kinds) == ["sent_back", "signoff"]
    # the operators' events are no submitter of their own for the nightly index rebuild
    assert submitters_with_records(store) == {(YEAR, SCHOOL)}


def test_the_commands_show_the_ladder_and_refuse_an_early_signoff(
    store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from vetreport.cli.main import EXIT_ACCEPTED, EXIT_REJECTED, main

    ingest(store, put(store, "graduates.csv", graduates_csv(3)))
    bucket = str(store.root)
    assert main(["status", "--year", str(YEAR), "--bucket", bucket]) == 0
    printed = capsys.readouterr().out
    assert "待说明 1" in printed  # the counts per state under the table
    from vetreport.curate.completeness import as_grid, completeness_matrix

    [row] = as_grid(completeness_matrix(store, YEAR)).to_dicts()
    assert (row["状态"], row["graduates"], row["staff"]) == ("待说明", "有警告（待说明）", "未提交")
    assert main(["signoff", SCHOOL, "--year", str(YEAR), "--bucket", bucket]) == EXIT_REJECTED
    assert "collection.signoff_unexplained_warning" in capsys.readouterr().out
    assert main(["explanations", SCHOOL, "--year", str(YEAR), "--bucket", bucket]) == 0
    prefilled = capsys.readouterr().out
    reason = prefilled.rstrip("\n") + "已核实\n"
    ingest(store, put(store, "explanations.csv", reason.encode("utf-8")))
    assert main(["signoff", SCHOOL, "--year", str(YEAR), "--bucket", bucket]) == EXIT_ACCEPTED
    assert capsys.readouterr().out.startswith(f"{SCHOOL} {YEAR}: 已确认")
    [row] = as_grid(completeness_matrix(store, YEAR)).to_dicts()
    assert (row["状态"], row["graduates"]) == ("已确认", "有警告（已说明）")


def test_a_deletion_after_the_signoff_undoes_it() -> None:
    data = upload("accepted", "t1")
    other_key = f"uploads/{YEAR}/{SCHOOL}/staff.csv"
    other = upload("accepted", "t1", key=other_key)
    withdrawn = upload("withdrawn", "t3", key=other_key, token="deleted")
    signed = [data, other, event(SIGNOFF, "t2")]
    assert state(signed, {KEY: "v1", other_key: "v1"}) == "已确认"
    # the staff file is deleted after the sign-off: what was signed off is no longer what counts
    assert state([*signed, withdrawn], {KEY: "v1"}) == "已提交"


def test_a_signoff_sent_with_the_corrected_file_is_judged_on_that_file(
    store: LocalStore,
) -> None:
    rejected = put(store, "graduates.csv", b"not,a,graduates,file\n1,2,3,4\n")
    assert ingest(store, rejected)["outcome"] == "rejected"
    # the school fixes the file and signs off at once: one sweep sees both keys
    put(store, "graduates.csv", graduates_csv(3, bad_match_rows=0))
    signoff = put(store, "signoff.json", '{"signed_by": "王校长"}'.encode())
    results = {result.key: result.outcome for result in ingest_keys(store, [signoff, rejected])}
    assert results == {rejected: "accepted", signoff: "signed_off"}
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "已确认"


# -- changes against last year (history.json) -------------------------------------------------

HISTORY = {
    "rule_id": "history.change_beyond_tolerance",
    "layer": "history",
    "severity": "warning",
    "indicator_id": "enrolled_students_count",
    "indicator_zh": "在校生数",
    "unit": "人",
    "previous": 1000.0,
    "current": 1500.0,
    "change_pct": 50.0,
    "tolerance": 15.0,
    "message_zh": "与上一年相比变化超出容许范围，请说明原因",
}
HISTORY_EXPLAINED = {
    "dataset": "history",
    "rule_id": "history.change_beyond_tolerance",
    "row_number": None,
    "column": "enrolled_students_count",
    "reason": "新校区启用，扩大招生",
}


@pytest.fixture
def history_needs_explaining(monkeypatch: pytest.MonkeyPatch) -> None:
    """rules.csv as a bureau that wants every change against last year explained has it."""
    import dataclasses

    rules = dict(collection.load_rules())
    rule = rules["history.change_beyond_tolerance"]
    rules[rule.rule_id] = dataclasses.replace(rule, needs_explanation=True)
    monkeypatch.setattr(collection, "load_rules", lambda: rules)


def test_a_change_against_last_year_is_a_warning_the_school_can_explain() -> None:
    data = upload("accepted", "t1")
    status = school_status([data], {KEY: "v1"}, YEAR, SCHOOL, [HISTORY])
    [warning] = status.warnings
    assert (warning["dataset"], warning["column"], warning["row_number"]) == (
        "history",
        "enrolled_students_count",
        None,
    )
    assert warning["message_zh"].startswith("在校生数：较上年变化 +50.0%，超出 ±15% 的范围")
    assert warning["key"] == f"reports/{YEAR}/{SCHOOL}/history.json"
    # rules.csv as shipped: shown and explainable, not required before sign-off
    assert (status.state_zh, warning["needs_explanation"]) == ("已提交", False)
    prefilled = explanations_csv(status).decode("utf-8-sig").splitlines()
    assert prefilled[1].split(",")[1:5] == [
        "history",
        "history.change_beyond_tolerance",
        "",
        "enrolled_students_count",
    ]
    findings, explained = explanation_findings(
        explanation_rows(
            ("history", "history.change_beyond_tolerance", None, "enrolled_students_count", "扩招"),
            ("history", "history.change_beyond_tolerance", None, "staff_count", "调入"),
        ),
        status.warnings,
    )
    assert [e["column"] for e in explained] == ["enrolled_students_count"]
    assert findings["rule_id"].to_list() == ["collection.no_such_warning"]  # no such change


def test_a_required_change_explanation_holds_the_signoff_until_given(
    history_needs_explaining: None,
) -> None:
    data = upload("accepted", "t1")
    status = school_status([data], {KEY: "v1"}, YEAR, SCHOOL, [HISTORY])
    assert status.state_zh == "待说明"
    [refusal] = signoff_refusals(status)
    assert refusal["rule_id"] == "collection.signoff_unexplained_warning"
    assert "history" in refusal["detail"] and "在校生数" in refusal["detail_zh"]
    explanation_key = f"uploads/{YEAR}/{SCHOOL}/explanations.csv"
    explains = upload(
        "accepted", "t2", key=explanation_key, explained_warnings=[HISTORY_EXPLAINED], datasets=[]
    )
    versions = {KEY: "v1", explanation_key: "v1"}
    status = school_status([data, explains], versions, YEAR, SCHOOL, [HISTORY])
    assert status.state_zh == "已提交"
    assert [(w["is_explained"], w["reason"]) for w in status.warnings] == [
        (True, "新校区启用，扩大招生")
    ]
    assert signoff_refusals(status) == []
    # the explanation deleted: the change is open again
    assert school_status([data, explains], {KEY: "v1"}, YEAR, SCHOOL, [HISTORY]).state_zh == (
        "待说明"
    )
    # marked on the findings the numbers page and history.json show
    statuses = {SCHOOL: school_status([data, explains], versions, YEAR, SCHOOL, [HISTORY])}
    [marked] = collection.mark_explained({SCHOOL: [HISTORY]}, statuses)[SCHOOL]
    assert (marked["is_explained"], marked["reason"]) == (True, "新校区启用，扩大招生")


def test_the_matrix_and_the_bucket_read_the_schools_history(
    store: LocalStore, history_needs_explaining: None
) -> None:
    """Read from reports/{year}/{school}/history.json where aggregation wrote it."""
    from vetreport.curate.completeness import as_grid, completeness_matrix
    from vetreport.school.history_report import write_history_reports

    ingest(store, put(store, "graduates.csv", graduates_csv(3, bad_match_rows=0)))
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "已提交"
    [row] = as_grid(completeness_matrix(store, YEAR)).to_dicts()
    assert row["状态"] == "已提交"
    assert write_history_reports(store, {SCHOOL: [HISTORY]}, YEAR, [SCHOOL]).written == [SCHOOL]
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "待说明"
    [row] = as_grid(completeness_matrix(store, YEAR)).to_dicts()
    assert row["状态"] == "待说明"
    # a history.json that is not one is read as no warning (the next aggregation rewrites it)
    store.put(f"reports/{YEAR}/{SCHOOL}/history.json", b"{not json")
    assert read_school_status(store, YEAR, SCHOOL).state_zh == "已提交"


# -- an upload in flight while the bureau approves ---------------------------------------------


def signed_off_store(store: LocalStore) -> str:
    key = put(store, "graduates.csv", graduates_csv(3, bad_match_rows=0))
    assert ingest(store, key)["outcome"] == "accepted"
    assert collection.sign_off(store, YEAR, SCHOOL, by="test").status.state_zh == "已确认"
    return key


def test_an_upload_recorded_after_the_approval_it_raced_reopens_the_year(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest checked the lock before the approval and recorded after it."""
    from vetreport.curate import ingest as ingest_module

    key = signed_off_store(store)
    assert collection.decide(store, YEAR, SCHOOL, True, by="bureau").status.state_zh == "已锁定"
    # the lock as the call saw it when it started, before the bureau's approval
    monkeypatch.setattr(ingest_module, "_lock_checker", lambda store: lambda key: False)
    store.put(key, graduates_csv(5, bad_match_rows=0))
    assert ingest(store, key)["outcome"] == "accepted"  # what the school was told
    assert counted_graduates(store) == 5  # and what counts
    status = read_school_status(store, YEAR, SCHOOL)
    assert (status.state_zh, status.note) == ("修订中", collection.RACED_LOCK_NOTE)
    assert shown_to_school(store) == "修订中"
    # the next upload is ingested as usual (the year is open again), nothing reopens twice
    monkeypatch.undo()
    store.put(key, graduates_csv(6, bad_match_rows=0))
    assert ingest(store, key)["outcome"] == "accepted"
    kinds = [e["collection_event"] for e in read_school_status(store, YEAR, SCHOOL).events]
    assert kinds == ["signoff", "approved", "reopened"]


def test_an_approval_that_read_the_state_before_an_upload_landed_does_not_stand(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval read 已确认, then the upload's record landed, then the lock was written."""
    key = signed_off_store(store)
    before = read_school_status(store, YEAR, SCHOOL)
    store.put(key, graduates_csv(4, bad_match_rows=0))
    assert ingest(store, key)["outcome"] == "accepted"
    reads = iter([before])
    real = collection.read_school_status
    monkeypatch.setattr(
        collection, "read_school_status", lambda *args: next(reads, None) or real(*args)
    )
    outcome = collection.decide(store, YEAR, SCHOOL, True, by="bureau")
    assert outcome.status.state_zh == "修订中"
    assert counted_graduates(store) == 4
    # an approval with nothing in flight stands
    monkeypatch.undo()
    assert collection.sign_off(store, YEAR, SCHOOL, by="test").status.state_zh == "已确认"
    assert collection.decide(store, YEAR, SCHOOL, True, by="bureau").status.state_zh == "已锁定"
