"""The walkthrough's example files: current, rejected for the right reasons, then accepted."""

from __future__ import annotations

from vetreport.demo import walkthrough
from vetreport.validate.checks import (
    ACCEPTED,
    REJECTED,
    UploadContext,
    build_report,
    validate_upload,
)


def report_for(name: str) -> dict:
    data = (walkthrough.EXAMPLES_DIR / name).read_bytes()
    context = UploadContext(
        key=walkthrough.UPLOAD_KEY,
        year=walkthrough.YEAR,
        school_code=walkthrough.SCHOOL,
        dataset_id=walkthrough.DATASET,
        extension="csv",
    )
    return build_report(validate_upload(data, context), context, "test")


def test_the_committed_files_are_current() -> None:
    for name, body in walkthrough.build_files().items():
        assert (walkthrough.EXAMPLES_DIR / name).read_bytes() == body, (
            f"examples/walkthrough/{name} is stale: run python -m vetreport.demo.walkthrough"
        )


def test_the_file_with_errors_is_rejected_naming_each_fault() -> None:
    report = report_for("graduates-with-errors.csv")
    assert report["outcome"] == REJECTED
    errors = {
        (finding["row_number"], finding["header"], finding["rule_id"])
        for finding in report["findings"]
        if finding["severity"] == "error"
    }
    duplicate_at_end = walkthrough.DUPLICATED_ROW
    assert {
        (3, "毕业去向", "field.enum"),
        (5, "初次就业月收入", "field.type"),
        (8, "专业名称", "field.required"),
        (duplicate_at_end, "毕业生编号", "dataset.duplicate_key"),
    } <= errors


def test_the_corrected_file_is_accepted_and_differs_from_the_demo_file() -> None:
    assert report_for("graduates-corrected.csv")["outcome"] == ACCEPTED
    header, rows = walkthrough.corrected_rows()
    _, demo_rows = walkthrough.demo_rows()
    matched = header.index("是否对口就业")
    changed = [row for row, demo in zip(rows, demo_rows, strict=True) if row != demo]
    assert len(changed) == walkthrough.CORRECTED_MATCH_COUNT
    assert all(row[matched] == "是" for row in changed)
