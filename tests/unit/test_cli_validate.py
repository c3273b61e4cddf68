"""`vetreport validate`: exit codes, context from bucket-style paths, and the school reports."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from vetreport.cli.main import EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE, main
from vetreport.school.feedback import FINDINGS_SHEET, SUMMARY_SHEET

SCHOOL = "3306020001"
HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入（元/月）,是否上本科线"


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write(
        tmp_path / "uploads/2024" / SCHOOL / "graduates.csv", [f"{SCHOOL},G0001,护理,待就业,,,否"]
    )


def test_accepted_file_exits_0(good: Path, capsys) -> None:
    assert main(["validate", str(good)]) == EXIT_ACCEPTED
    assert "通过" in capsys.readouterr().out


def test_warnings_still_exit_0(tmp_path: Path) -> None:
    path = write(tmp_path / "graduates.csv", [f"{SCHOOL},G0001,护理,单考单招,是,,否"])
    assert main(["validate", str(path), "--school", SCHOOL]) == EXIT_ACCEPTED


def test_rejected_file_exits_1_and_json_names_the_rule(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "graduates.csv", [f"{SCHOOL},G0001,护理,去火星,,,否"])
    assert main(["validate", str(path), "--json"]) == EXIT_REJECTED
    [report] = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "rejected"
    assert {item["rule_id"] for item in report["counts_by_rule"]} == {"field.enum"}


def test_year_school_and_dataset_come_from_a_bucket_style_path(tmp_path: Path, capsys) -> None:
    path = write(
        tmp_path / "uploads/2024" / SCHOOL / "graduates.csv", ["3306029999,G0001,护理,待就业,,,否"]
    )
    assert main(["validate", str(path), "--json"]) == EXIT_REJECTED
    [report] = json.loads(capsys.readouterr().out)
    assert (report["year"], report["school_code"]) == (2024, SCHOOL)
    assert report["datasets"][0]["dataset"] == "graduates"
    assert {item["rule_id"] for item in report["counts_by_rule"]} == {
        "cross_dataset.school_code_mismatch"
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--dataset", "no_such_dataset"], "unknown dataset"),
        (["MISSING"], "no such file"),
        (["NOTES"], "only .csv, .xlsx and .parquet"),
        (["RANDOM_NAME"], "names no dataset"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, good: Path, capsys, arguments, message) -> None:
    files = {
        "MISSING": str(tmp_path / "nope.csv"),
        "NOTES": str(write(tmp_path / "graduates.txt", [])),
        "RANDOM_NAME": str(write(tmp_path / "my_data.csv", [f"{SCHOOL},G0001,护理,待就业,,,否"])),
    }
    argv = ["validate", *[files.get(argument, argument) for argument in arguments]]
    if arguments[0].startswith("--"):
        argv.append(str(good))
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_no_arguments_is_a_usage_error() -> None:
    assert main(["validate"]) == EXIT_USAGE


def test_dataset_option_overrides_the_name(tmp_path: Path) -> None:
    path = write(tmp_path / "my_data.csv", [f"{SCHOOL},G0001,护理,待就业,,,否"])
    assert main(["validate", str(path), "--dataset", "graduates"]) == EXIT_ACCEPTED


def test_html_and_workbook_options_write_the_school_reports(tmp_path: Path) -> None:
    path = write(tmp_path / "graduates.csv", [f"{SCHOOL},G0001,护理,去火星,,,否"])
    html, workbook = tmp_path / "out/report.html", tmp_path / "out/report.xlsx"
    code = main(["validate", str(path), "--html", str(html), "--workbook", str(workbook)])
    assert code == EXIT_REJECTED
    assert "取值不在允许的选项中" in html.read_text(encoding="utf-8")
    book = openpyxl.load_workbook(workbook)
    assert book.sheetnames == [SUMMARY_SHEET, FINDINGS_SHEET, "graduates"]
    assert "field.enum" in book["graduates"]["D2"].comment.text


def test_several_files_write_reports_into_a_folder(tmp_path: Path, good: Path) -> None:
    other = write(tmp_path / "x" / "graduates.csv", [f"{SCHOOL},G0001,护理,去火星,,,否"])
    out = tmp_path / "reports"
    code = main(["validate", str(good), str(other), "--html", str(out), "--school", SCHOOL])
    assert code == EXIT_REJECTED
    # one report per input, named after it; numbered because both are graduates.csv
    assert sorted(path.name for path in out.iterdir()) == ["1-graduates.html", "2-graduates.html"]
