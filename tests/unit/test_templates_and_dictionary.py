"""Templates, data dictionary and header aliases: all generated from the one catalogue."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from schemas.catalogue import CATALOGUE_DIR, header_lookup, load_datasets, normalise_header
from vetreport.bucket.store import open_store
from vetreport.cli.main import main
from vetreport.docs.data_dictionary import render_dictionary
from vetreport.school.blank_template import (
    INSTRUCTIONS_SHEET,
    build_template,
    example_row,
    school_datasets,
    template_header,
)
from vetreport.validate.checks import (
    ACCEPTED,
    REJECTED,
    UploadContext,
    build_report,
    validate_upload,
)

ROOT = Path(__file__).resolve().parents[2]
YEAR = 2024


@pytest.fixture(scope="module")
def template_bytes() -> bytes:
    return build_template(YEAR)


def test_committed_dictionary_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert committed == render_dictionary(), (
        "docs/data-dictionary.md is stale: run `.venv/bin/vetreport docs`"
    )


def test_dictionary_covers_every_dataset_and_column() -> None:
    text = render_dictionary()
    for dataset in load_datasets().values():
        assert f"## {dataset.dataset_id} — {dataset.name_zh}" in text
        for column in dataset.columns:
            assert f"| `{column.column_name}` | {column.header_with_unit} |" in text


def test_template_has_instructions_and_one_sheet_per_school_dataset(template_bytes) -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(template_bytes))
    datasets = school_datasets()
    assert workbook.sheetnames[0] == INSTRUCTIONS_SHEET
    assert {d.dataset_id for d in datasets} <= set(workbook.sheetnames)
    instructions = " ".join(
        str(cell)
        for row in workbook[INSTRUCTIONS_SHEET].iter_rows(values_only=True)
        for cell in row
        if cell
    )
    assert f"uploads/{YEAR}/学校代码/workbook.xlsx" in instructions
    assert "field.privacy_person_name" in instructions  # the rules are listed
    for dataset in datasets:
        sheet = workbook[dataset.dataset_id]
        assert sheet.freeze_panes == "A2"
        headers = [cell.value for cell in sheet[1]]
        assert headers == [template_header(column) for column in dataset.columns]
        lists = {
            str(validation.sqref).split(":")[0]: validation.formula1
            for validation in sheet.data_validations.dataValidation
            if validation.type == "list"
        }
        for position, column in enumerate(dataset.columns):
            letter = openpyxl.utils.get_column_letter(position + 1)
            if column.allowed_values or column.data_type == "boolean":
                assert f"{letter}2" in lists, (dataset.dataset_id, column.column_name)
            if column.data_type == "boolean":
                assert lists[f"{letter}2"] == '"是,否"'


def _template_with_its_example_rows(template_bytes: bytes) -> tuple[bytes, str | None]:
    workbook = openpyxl.load_workbook(io.BytesIO(template_bytes))
    school_code = None
    for dataset in school_datasets():
        sheet = workbook[dataset.dataset_id]
        example = example_row(dataset)
        school_code = example.get("school_code") or school_code
        for position, column in enumerate(dataset.columns, start=1):
            sheet.cell(row=2, column=position, value=example[column.column_name])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), school_code


def _workbook_context(school_code: str | None, **extra) -> UploadContext:
    return UploadContext(
        key=f"uploads/{YEAR}/{school_code}/workbook.xlsx",
        year=YEAR,
        school_code=school_code,
        dataset_id=None,
        extension="xlsx",
        **extra,
    )


def test_template_filled_with_its_example_rows_validates_without_errors(template_bytes) -> None:
    data, school_code = _template_with_its_example_rows(template_bytes)
    # Checked as data (as the template checks its own example), the rows break no rule.
    context = _workbook_context(school_code, detect_template_examples=False)
    results = validate_upload(data, context)
    report = build_report(results, context, "template")
    assert sorted(result.dataset_id for result in results) == sorted(
        dataset.dataset_id for dataset in school_datasets()
    )
    assert report["error_count"] == 0, report["findings"][:5]
    assert report["outcome"] == ACCEPTED
    assert all(result.row_count == 1 for result in results)


def test_an_untouched_example_row_is_named_once_per_row_as_the_templates_example(
    template_bytes,
) -> None:
    data, school_code = _template_with_its_example_rows(template_bytes)
    context = _workbook_context(school_code)
    report = build_report(validate_upload(data, context), context, "template")
    assert report["outcome"] == REJECTED
    # one finding per example row (one per sheet), on its row, and nothing else about it
    assert report["counts_by_rule"] == [
        {"rule_id": "row.template_example", "severity": "error", "count": len(school_datasets())}
    ]
    for finding in report["findings"]:
        assert (finding["row_number"], finding["column"], finding["value"]) == (2, None, None)
        assert "示例行" in finding["detail_zh"] and "删除" in finding["detail_zh"]
        assert finding["caused_by"] is None


def test_an_example_row_left_among_real_rows_replaces_its_field_errors() -> None:
    """A school typed its own code into the example row and added its data below it."""
    school = "3306020001"
    dataset = load_datasets()["graduates"]
    example = example_row(dataset)
    header = ",".join(template_header(column) for column in dataset.columns)
    copied = ",".join(
        school if name == "school_code" else (example[name] or "") for name in dataset.column_names
    )
    rows = [
        header,
        copied,  # row 2: the example with the school's code
        f"{school},G0001,护理,直接就业,是,3800,否",
        f"{example['school_code']}," + copied.split(",", 1)[1],  # row 4: the example as is
        f"{school},G0002,护理,待就业,,,否",
    ]
    context = UploadContext(
        f"uploads/{YEAR}/{school}/graduates.csv", YEAR, school, "graduates", "csv"
    )
    report = build_report(validate_upload(("\n".join(rows) + "\n").encode(), context), context, "t")
    assert report["outcome"] == REJECTED
    # row 4 would also be a duplicate of row 2 and name another school: said once, as the
    # example row; the school's own rows have no finding
    assert [(f["rule_id"], f["row_number"]) for f in report["findings"]] == [
        ("row.template_example", 2),
        ("row.template_example", 4),
    ]
    assert report["problem_count"] == 2


def test_a_filled_in_example_row_is_data() -> None:
    school = "3306020001"
    dataset = load_datasets()["graduates"]
    example = example_row(dataset)
    header = ",".join(template_header(column) for column in dataset.columns)
    edited = dict(example, school_code=school, major_name="护理")
    row = ",".join(edited[name] or "" for name in dataset.column_names)
    context = UploadContext(
        f"uploads/{YEAR}/{school}/graduates.csv", YEAR, school, "graduates", "csv"
    )
    report = build_report(validate_upload(f"{header}\n{row}\n".encode(), context), context, "t")
    assert report["outcome"] == ACCEPTED


def test_templates_command_writes_the_bucket_and_a_file(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    out = tmp_path / "out"
    assert main(["templates", "--year", str(YEAR), "--out", str(out), "--bucket", str(bucket)]) == 0
    written = (out / f"template_{YEAR}.xlsx").read_bytes()
    stored = open_store(str(bucket)).get(f"templates/{YEAR}/template_{YEAR}.xlsx")
    assert written[:2] == b"PK" and stored[:2] == b"PK"


def test_dictionary_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "dictionary.md"
    assert main(["dictionary", "--out", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_dictionary()


def test_header_aliases_file_is_recognised() -> None:
    with (CATALOGUE_DIR / "header_aliases.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows, "schemas/header_aliases.csv has no rows"
    for row in rows:
        lookup = header_lookup(row["dataset_id"], int(row["year"]))
        assert lookup[normalise_header(row["header"])] == row["column_name"]
    # and a file using one of them validates: 就业去向 (2021) is the destination column
    header = "学校代码,毕业生编号,专业名称,就业去向,月薪（元）"
    text = f"{header}\n3306020001,G0001,护理,直接就业,3500\n"
    context = UploadContext(
        "uploads/2021/3306020001/graduates.csv", 2021, "3306020001", "graduates", "csv"
    )
    results = validate_upload(text.encode(), context)
    assert results[0].outcome == ACCEPTED
    assert results[0].frame.get_column("destination").to_list() == ["直接就业"]
    assert results[0].frame.get_column("starting_monthly_income_yuan").to_list() == [3500.0]
