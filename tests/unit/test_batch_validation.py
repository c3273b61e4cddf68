"""Many uploads validated together give exactly the reports of validating each alone."""

from __future__ import annotations

import json

import pytest

from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys
from vetreport.validate import checks as validation
from vetreport.validate.checks import (
    ACCEPTED,
    REJECTED,
    UploadContext,
    build_report,
    validate_upload,
    validate_uploads,
)

HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入,是否上本科线"


def graduates(school: str, *rows: str) -> bytes:
    return ("\n".join([HEADER, *(f"{school},{row}" for row in rows)]) + "\n").encode()


def context(school: str, registry: frozenset[str] | None = None) -> UploadContext:
    return UploadContext(
        f"uploads/2023/{school}/graduates.csv", 2023, school, "graduates", "csv", registry
    )


UPLOADS = [
    # the same graduate id in two schools' files is not a duplicate
    (
        graduates("3133060001", "G0001,护理,直接就业,是,3800,否", "G0002,护理,待就业,,,否"),
        context("3133060001"),
    ),
    (graduates("3133060002", "G0001,护理,直接就业,是,4100,否"), context("3133060002")),
    # within one file it is; plus a bad value, a cast failure and a cross-field warning
    (
        graduates(
            "3133060003",
            "G0001,护理,打工,,,否",
            "G0001,护理,直接就业,是,面议,否",
            "G0003,护理,升学,是,,否",
        ),
        context("3133060003"),
    ),
    # content naming another school, checked against a registry
    (
        graduates("3133069999", "G0001,护理,待就业,,,否"),
        context("3133060004", frozenset({"3133060004"})),
    ),
    # a file that never reaches the batch checks
    (b"\x00\x01binary", context("3133060005")),
]


def as_json(report: dict) -> str:
    return json.dumps(report, sort_keys=True, default=str, ensure_ascii=False)


def test_batched_reports_equal_the_reports_of_each_file_alone() -> None:
    together = validate_uploads(UPLOADS)
    for (data, ctx), results in zip(UPLOADS, together, strict=True):
        alone = build_report(validate_upload(data, ctx), ctx, "s")
        assert as_json(build_report(results, ctx, "s")) == as_json(alone)
    outcomes = [
        build_report(results, ctx, "s")["outcome"]
        for (_, ctx), results in zip(UPLOADS, together, strict=True)
    ]
    assert outcomes == [ACCEPTED, ACCEPTED, REJECTED, REJECTED, REJECTED]


def test_duplicates_are_looked_for_within_a_file_only() -> None:
    together = validate_uploads(UPLOADS)
    duplicates = [
        [
            (row["row_number"], row["value"])
            for row in results[0].findings.to_dicts()
            if row["rule_id"] == "dataset.duplicate_key"
        ]
        for results in together[:3]
    ]
    assert duplicates[0] == [] and duplicates[1] == []
    assert sorted(duplicates[2]) == [(2, "G0001"), (3, "G0001")]


def test_a_check_that_breaks_on_one_file_rejects_that_file_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = validation._cross_findings

    def breaks_on_one_school(combined, group):
        if "3133060002" in combined.get_column("school_code").to_list():
            raise RuntimeError("a bug in a check")
        return original(combined, group)

    monkeypatch.setattr(validation, "_cross_findings", breaks_on_one_school)
    first, second = validate_uploads(UPLOADS[:2])
    assert build_report(first, UPLOADS[0][1], "s")["outcome"] == ACCEPTED
    report = build_report(second, UPLOADS[1][1], "s")
    assert report["outcome"] == REJECTED
    assert [item["rule_id"] for item in report["counts_by_rule"]] == ["file.unreadable"]
    assert "a bug in a check" in report["findings"][0]["detail"]


def test_ingest_in_small_batches_equals_one_batch_and_a_repeat_is_skipped(tmp_path) -> None:
    outcomes = {}
    for label, batch_bytes in (("one batch", 1 << 30), ("a file a batch", 1)):
        store = open_store(str(tmp_path / label))
        keys = []
        for data, ctx in UPLOADS[:4]:
            store.put(ctx.key, data)
            keys.append(ctx.key)
        results = ingest_keys(store, [*keys, keys[0]], batch_bytes=batch_bytes)
        outcomes[label] = [(r.key, r.outcome, r.was_skipped) for r in results]
        ledger = [info.key for info in store.list("ledger/")]
        assert len(ledger) == 4
    assert outcomes["one batch"] == outcomes["a file a batch"]
    first_key = UPLOADS[0][1].key
    assert [entry for entry in outcomes["one batch"] if entry[0] == first_key] == [
        (first_key, ACCEPTED, False),
        (first_key, ACCEPTED, True),
    ]
    assert sum(was_skipped for _, _, was_skipped in outcomes["one batch"]) == 1


def test_a_file_that_breaks_the_normaliser_is_rejected_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = validation.normalise_batch

    def breaks_on_one_school(tables, dataset):
        if any("3133060002" in str(headed.frame.rows()) for headed, _ in tables):
            raise ValueError("a bug in the normaliser")
        return original(tables, dataset)

    monkeypatch.setattr(validation, "normalise_batch", breaks_on_one_school)
    first, second, third = validate_uploads(UPLOADS[:3])
    assert build_report(first, UPLOADS[0][1], "s")["outcome"] == ACCEPTED
    report = build_report(second, UPLOADS[1][1], "s")
    assert [item["rule_id"] for item in report["counts_by_rule"]] == ["file.unreadable"]
    assert "a bug in the normaliser" in report["findings"][0]["detail"]
    # the third file of the batch is still judged on its own merits
    assert build_report(third, UPLOADS[2][1], "s")["error_count"] > 1
