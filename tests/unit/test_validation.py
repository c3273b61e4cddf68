"""Validation of messy and broken files, each case named by what a school would do."""

from __future__ import annotations

import io
import zipfile

import polars as pl
import pytest
import xlsxwriter

from vetreport.validate.checks import (
    ACCEPTED,
    ACCEPTED_WITH_WARNINGS,
    REJECTED,
    UploadContext,
    build_report,
    validate_upload,
)

SCHOOL = "3133060001"
HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入（元/月）,是否上本科线"
GOOD_ROWS = [
    f"{SCHOOL},G0001,护理,直接就业,是,3800,否",
    f"{SCHOOL},G0002,护理,单考单招,,,是",
    f"{SCHOOL},G0003,护理,待就业,,,否",
]


def context(dataset: str = "graduates", extension: str = "csv", **extra) -> UploadContext:
    return UploadContext(
        key=f"uploads/2023/{SCHOOL}/{dataset}.{extension}",
        year=2023,
        school_code=SCHOOL,
        dataset_id=dataset,
        extension=extension,
        **extra,
    )


def csv_text(rows: list[str], header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def report_for(data: bytes, ctx: UploadContext | None = None) -> dict:
    ctx = ctx or context()
    return build_report(validate_upload(data, ctx), ctx, "test")


def rule_ids(report: dict) -> set[str]:
    return {item["rule_id"] for item in report["counts_by_rule"]}


def xlsx_bytes(rows: list[list[object]], title: str | None = None, sheet: str = "Sheet1") -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    worksheet = workbook.add_worksheet(sheet)
    offset = 0
    if title:
        worksheet.merge_range(0, 0, 0, len(rows[0]) - 1, title)
        offset = 1
    for index, row in enumerate(rows):
        worksheet.write_row(index + offset, 0, row)
    workbook.close()
    return buffer.getvalue()


def test_clean_utf8_csv_is_accepted() -> None:
    report = report_for(csv_text(GOOD_ROWS).encode("utf-8"))
    assert report["outcome"] == ACCEPTED
    assert report["datasets"][0]["row_count"] == 3


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "gb18030"])
def test_encodings_schools_use_are_detected(encoding: str) -> None:
    report = report_for(csv_text(GOOD_ROWS).encode(encoding))
    assert report["outcome"] == ACCEPTED


def test_values_are_normalised_not_rejected() -> None:
    rows = [
        # full-width digits, thousands separator, surrounding spaces, Y for yes
        f'{SCHOOL},Ｇ0001, 护理 ,直接就业, 是 ,"３,８００",否',
        f"{SCHOOL},G0002,护理,单考单招,,,Y",
        ",,,,,,",
    ]
    results = validate_upload(csv_text(rows).encode("utf-8"), context())
    assert results[0].outcome == ACCEPTED
    frame = results[0].frame
    assert frame.get_column("graduate_id").to_list() == ["G0001", "G0002"]
    assert frame.get_column("starting_monthly_income_yuan").to_list()[0] == 3800.0
    assert frame.get_column("is_undergraduate_line_reached").to_list() == [False, True]


def test_title_row_and_english_headers_are_found() -> None:
    header = "school code,graduate id,major name,destination,employed in field of study,starting monthly income,reached the undergraduate cut-off"
    text = "2023年毕业生去向表,,,\n" + csv_text(GOOD_ROWS, header)
    report = report_for(text.encode("utf-8"))
    assert report["outcome"] == ACCEPTED


def test_xlsx_with_merged_title_row_and_formula() -> None:
    rows = [HEADER.split(","), *[row.split(",") for row in GOOD_ROWS]]
    data = xlsx_bytes(rows, title="2023年 绍兴护士学校 毕业生去向")
    results = validate_upload(data, context(extension="xlsx"))
    assert results[0].outcome == ACCEPTED
    assert results[0].frame.get_column("_source_row").to_list() == [3, 4, 5]


def test_renamed_pdf_is_a_type_mismatch() -> None:
    report = report_for(b"%PDF-1.7\n%binary\n" + bytes(range(256)))
    assert report["outcome"] == REJECTED
    assert rule_ids(report) == {"file.type_mismatch"}


def test_xlsx_named_csv_is_a_type_mismatch() -> None:
    data = xlsx_bytes([HEADER.split(",")])
    assert rule_ids(report_for(data)) == {"file.type_mismatch"}


def test_workbook_with_macros_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/vbaProject.bin", b"\x00" * 10)
    report = report_for(buffer.getvalue(), context(extension="xlsx"))
    assert rule_ids(report) == {"file.macro"}


def test_empty_file_and_header_only_file() -> None:
    assert rule_ids(report_for(b"")) == {"file.empty"}
    assert rule_ids(report_for((HEADER + "\n").encode())) == {"file.empty"}


def test_missing_required_column_is_named() -> None:
    header = "学校代码,毕业生编号,专业名称,是否对口就业"
    rows = [f"{SCHOOL},G0001,护理,是"]
    report = report_for(csv_text(rows, header).encode())
    missing = [f for f in report["findings"] if f["rule_id"] == "structure.missing_column"]
    assert [f["column"] for f in missing] == ["destination"]
    assert report["outcome"] == REJECTED


def test_duplicate_and_unknown_columns() -> None:
    header = HEADER + ",学号,备注"
    rows = [row + ",X1,无" for row in GOOD_ROWS]
    report = report_for(csv_text(rows, header).encode())
    assert {"structure.duplicate_column", "structure.unknown_column"} <= rule_ids(report)


def test_field_errors_name_row_column_and_rule() -> None:
    rows = [
        f"{SCHOOL},G0001,护理,直接就业,是,abc,否",  # row 2: not a number
        f"{SCHOOL},G0002,护理,去火星,,,否",  # row 3: not an allowed destination
        f"{SCHOOL},G0003,护理,直接就业,是,-100,否",  # row 4: negative income
        f"{SCHOOL},,护理,待就业,,,否",  # row 5: id missing
        f"{SCHOOL},G0005,护理,直接就业,也许,3000,否",  # row 6: not a boolean
    ]
    report = report_for(csv_text(rows).encode())
    found = {(f["rule_id"], f["row_number"], f["column"]) for f in report["findings"]}
    assert ("field.type", 2, "starting_monthly_income_yuan") in found
    assert ("field.enum", 3, "destination") in found
    assert ("field.range", 4, "starting_monthly_income_yuan") in found
    assert ("field.required", 5, "graduate_id") in found
    assert ("field.type", 6, "is_major_matched") in found
    assert report["outcome"] == REJECTED
    # a failed cast is reported once, as a type error, not again as a missing value
    assert not any(
        f["rule_id"] == "field.required" and f["row_number"] == 2 for f in report["findings"]
    )


def test_duplicate_keys_are_reported_with_the_key() -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[0].replace("直接就业", "参军入伍")]
    report = report_for(csv_text(rows).encode())
    duplicates = [f for f in report["findings"] if f["rule_id"] == "dataset.duplicate_key"]
    assert [(f["row_number"], f["value"]) for f in duplicates] == [(2, "G0001"), (3, "G0001")]


def test_cross_field_rule_is_a_warning() -> None:
    rows = [*GOOD_ROWS, f"{SCHOOL},G0009,护理,单考单招,是,,否"]
    report = report_for(csv_text(rows).encode())
    assert report["outcome"] == ACCEPTED_WITH_WARNINGS
    assert rule_ids(report) == {"row.matched_only_if_employed"}


def test_findings_show_values_as_the_school_wrote_them() -> None:
    rows = [*GOOD_ROWS, f"{SCHOOL},G0009,护理,待就业,是,5400,否"]
    findings = report_for(csv_text(rows).encode())["findings"]
    values = {finding["rule_id"]: finding["value"] for finding in findings}
    assert values == {"row.matched_only_if_employed": "是", "row.income_only_if_employed": "5400"}


def test_school_code_must_match_the_key_and_the_registry() -> None:
    rows = [*GOOD_ROWS, "3133069999,G0010,护理,待就业,,,否"]
    ctx = context(registry_school_codes=frozenset({SCHOOL}))
    report = report_for(csv_text(rows).encode(), ctx)
    assert {"cross_dataset.school_code_mismatch", "cross_dataset.unknown_school"} <= rule_ids(
        report
    )
    assert report["outcome"] == REJECTED


def test_national_id_numbers_and_name_columns_are_privacy_errors() -> None:
    rows = [f"{SCHOOL},330602200501011234,护理,待就业,,,否,张三"]
    report = report_for(csv_text(rows, HEADER + ",姓名").encode())
    assert {"field.privacy_id_number", "structure.privacy_column"} <= rule_ids(report)
    listed = next(f for f in report["findings"] if f["rule_id"] == "field.privacy_id_number")
    assert "330602200501" not in listed["value"]  # the id is masked in the report


def test_listing_is_capped_but_counts_are_complete() -> None:
    rows = [f"{SCHOOL},G{index:05d},护理,去火星,,,否" for index in range(1500)]
    report = report_for(csv_text(rows).encode())
    assert report["is_truncated"] is True
    assert len(report["findings"]) == report["finding_limit"]
    counts = {item["rule_id"]: item["count"] for item in report["counts_by_rule"]}
    assert counts["field.enum"] == 1500
    assert report["error_count"] == 1500


def test_parquet_upload_is_read() -> None:
    frame = pl.DataFrame(
        {
            "学校代码": [SCHOOL],
            "毕业生编号": ["G0001"],
            "专业名称": ["护理"],
            "毕业去向": ["待就业"],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    report = report_for(buffer.getvalue(), context(extension="parquet"))
    assert report["outcome"] == ACCEPTED


def test_workbook_with_several_datasets_gives_one_result_per_sheet() -> None:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    graduates = workbook.add_worksheet("graduates")
    for index, row in enumerate([HEADER.split(","), *[r.split(",") for r in GOOD_ROWS]]):
        graduates.write_row(index, 0, row)
    notes = workbook.add_worksheet("说明")
    notes.write(0, 0, "填表说明")
    workbook.close()
    ctx = UploadContext(
        key=f"uploads/2023/{SCHOOL}/workbook.xlsx",
        year=2023,
        school_code=SCHOOL,
        dataset_id=None,
        extension="xlsx",
    )
    results = validate_upload(buffer.getvalue(), ctx)
    assert [(r.dataset_id, r.outcome) for r in results] == [("graduates", ACCEPTED)]
