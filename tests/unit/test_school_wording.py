"""What a school reads about a finding is Chinese a clerk understands, never code.

Walks every rule of schemas/rules.csv and every check the generated Pandera models hold:
for each dataset, a file whose rows each break one column in one way (a value outside the
allowed list, below or above the range, against the pattern, blank where required, of the
wrong type, a repeated key), every row rule set off by a row found from the catalogue, and
the messy-file corpus for the file and structure layers. No text a school sees may hold a
check's name, an SQL predicate, a regular expression or a Python list, and each Chinese
field must hold Chinese.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import polars as pl
import pytest

from schemas.catalogue import ColumnSpec, DatasetSpec, load_datasets, load_rules, pandera_schema
from vetreport.school.feedback import annotate_workbook, render_html
from vetreport.validate.checks import (
    _PANDERA_CHECK_RULES,
    PART,
    DatasetResult,
    UploadContext,
    _pandera_findings,
    build_report,
    validate_upload,
)
from vetreport.validate.examples import example_value, number_text
from vetreport.validate.normalise import empty_findings
from vetreport.validate.read import SOURCE_ROW
from vetreport.validate.wording import default_detail_zh, pattern_phrase, predicate_columns

SCHOOL = "3306020001"
YEAR = 2024
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CHINESE = re.compile(r"[\u4e00-\u9fff]")
CODE_LIKE = re.compile(
    r"isin\(|_to\(|nullable|uniqueness|str_matches|column_in_dataframe|dtype\(|"
    r"IS NULL|IS NOT NULL|\bOR\b|\bAND\b|\bNOT IN\b|<=|>=|!=|"
    r"\[\s*'|'\s*\]|\^\[|\]\{\d|\\d|\{\d+,\d*\}"
)
CHINESE_FIELDS = ("message_zh", "fix_zh", "detail_zh")
TEXT_FIELDS = (*CHINESE_FIELDS, "message_en", "detail")


def assert_school_text(finding: dict) -> None:
    """A finding's human text fields: no code anywhere, Chinese in the Chinese ones."""
    for name in TEXT_FIELDS:
        text = finding.get(name)
        if name in CHINESE_FIELDS:
            assert text and CHINESE.search(text), (name, finding)
        if text:
            assert not CODE_LIKE.search(text), (name, text, finding["rule_id"])


def assert_rendered_text(report: dict, data: bytes, extension: str) -> None:
    """The HTML page (without its style sheet) and every text of the annotated workbook."""
    html = re.sub(r"<style>.*?</style>", "", render_html(report), flags=re.S)
    values = {str(finding.get("value")) for finding in report["findings"]}
    page = re.sub(r"<[^>]+>", " ", html)
    for value in values:  # the school's own values are shown as written
        page = page.replace(value, " ")
    assert not CODE_LIKE.search(page), CODE_LIKE.search(page)
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, extension, report)))
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.comment is not None:
                    assert not CODE_LIKE.search(cell.comment.text), cell.comment.text
                    assert CHINESE.search(cell.comment.text)
                is_ours = sheet.title in ("问题汇总", "问题清单") and cell.value not in values
                if is_ours and isinstance(cell.value, str):
                    assert not CODE_LIKE.search(cell.value), cell.value


# ------------------------------------------------------------------------------------------
# Bad frames per column kind
# ------------------------------------------------------------------------------------------


def _good_value(column: ColumnSpec, index: int, dataset: DatasetSpec) -> str:
    if column.column_name == "school_code":
        return SCHOOL
    if column.column_name in dataset.key_columns and not column.allowed_values:
        key = f"K{index:04d}"
        if column.pattern is None or re.search(column.pattern, key):
            return key
    return example_value(column)


def _bad_values(column: ColumnSpec) -> list[tuple[str, str]]:
    """(kind, text) for each way a value of the column can be wrong."""
    bad = []
    if column.is_required:
        bad.append(("required", ""))
    if column.allowed_values:
        bad.append(("enum", "不在选项中的值"))
    if column.min_value is not None:
        bad.append(("range", number_text(column.min_value - 1)))
    if column.max_value is not None:
        bad.append(("range", number_text(column.max_value + 1)))
    if column.pattern:
        bad.append(("pattern", "含 空格!"))
    if column.data_type != "string":
        bad.append(("type", "abc"))
    return bad


def _csv(dataset: DatasetSpec, rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.header_zh for column in dataset.columns])
    for row in rows:
        writer.writerow([row.get(name, "") for name in dataset.column_names])
    return buffer.getvalue().encode("utf-8")


def _context(dataset_id: str, **extra) -> UploadContext:
    if load_datasets()[dataset_id].submitted_by == "bureau":  # sent by the bureau, as _city
        return UploadContext(
            f"uploads/{YEAR}/_city/{dataset_id}.csv",
            YEAR,
            None,
            dataset_id,
            "csv",
            submitter_role="bureau",
            **extra,
        )
    return UploadContext(
        f"uploads/{YEAR}/{SCHOOL}/{dataset_id}.csv", YEAR, SCHOOL, dataset_id, "csv", **extra
    )


def bad_file(dataset: DatasetSpec) -> tuple[bytes, list[tuple[int, str, str]]]:
    """Rows that each break one column in one way, then a repeated first row."""
    rows, broken = [], []
    for column in dataset.columns:
        for kind, text in _bad_values(column):
            row = {c.column_name: _good_value(c, len(rows), dataset) for c in dataset.columns}
            row[column.column_name] = text
            broken.append((len(rows) + 2, column.column_name, kind))
            rows.append(row)
    good = {c.column_name: _good_value(c, len(rows), dataset) for c in dataset.columns}
    rows += [good, dict(good)]  # a repeated key
    return _csv(dataset, rows), broken


EXPECTED_RULE = {
    "required": "field.required",
    "enum": "field.enum",
    "range": "field.range",
    "pattern": "field.pattern",
    "type": "field.type",
}


@pytest.mark.parametrize("dataset_id", sorted(load_datasets()))
def test_every_column_check_is_said_in_chinese_without_code(dataset_id: str) -> None:
    dataset = load_datasets()[dataset_id]
    data, broken = bad_file(dataset)
    context = _context(dataset_id, detect_template_examples=False)
    report = build_report(validate_upload(data, context), context, "walk")
    assert not report["is_truncated"]
    found = {(f["row_number"], f["column"], f["rule_id"]) for f in report["findings"]}
    for row, column, kind in broken:
        assert (row, column, EXPECTED_RULE[kind]) in found, (row, column, kind)
    assert any(f["rule_id"] == "dataset.duplicate_key" for f in report["findings"])
    # and every check of the generated model was among those set off
    schema = pandera_schema(dataset_id)
    rules_of_columns = {(f["column"], f["rule_id"]) for f in report["findings"]}
    for name, column in schema.columns.items():
        for check in column.checks:
            rule_id = next(
                rule for fragment, rule in _PANDERA_CHECK_RULES if fragment in check.name
            )
            assert (name, rule_id) in rules_of_columns, (name, check.name)
    for finding in report["findings"]:
        assert_school_text(finding)
    assert_rendered_text(report, data, "csv")


def test_checks_an_upload_never_reaches_are_said_without_code_too() -> None:
    """Wrong dtypes and a missing column reach Pandera only through a bug; still no code."""
    seen: set[str] = set()
    for dataset in load_datasets().values():
        dropped = next(
            c.column_name
            for c in dataset.columns
            if c.is_required and c.column_name not in dataset.key_columns
        )
        frame = pl.DataFrame(
            {name: ["x", "x"] for name in dataset.column_names if name != dropped}
            | {SOURCE_ROW: [2, 3], PART: [0, 0]},
            schema_overrides={PART: pl.Int32, SOURCE_ROW: pl.Int64},
        )
        entry = SimpleNamespace(normalised=SimpleNamespace(findings=empty_findings()))
        findings = _pandera_findings(frame, dataset, [entry]).drop(PART)
        seen |= set(findings["rule_id"])
        result = DatasetResult(dataset.dataset_id, None, findings)
        report = build_report([result], _context(dataset.dataset_id), "walk")
        for finding in report["findings"]:
            assert_school_text(finding)
    assert {"field.type", "structure.missing_column"} <= seen


# ------------------------------------------------------------------------------------------
# Row rules, found from the catalogue
# ------------------------------------------------------------------------------------------


def _candidates(column: ColumnSpec) -> list[object]:
    if column.allowed_values:
        return [*column.allowed_values, None]
    if column.data_type == "boolean":
        return [True, False, None]
    if column.data_type in ("integer", "number"):
        low = column.min_value if column.min_value is not None else 0
        high = column.max_value if column.max_value is not None else 1_000_000
        values = {low, high, 1, 10, 100, 1000, 5000}
        return [value for value in sorted(values) if low <= value <= high] + [None]
    return [example_value(column), None]


def _breaking_row(rule, dataset: DatasetSpec) -> dict[str, object]:
    """A row of valid values that breaks the rule's predicate (searched over candidates)."""
    names = predicate_columns(rule, dataset)
    columns = [dataset.column(name) for name in names]
    combos = list(itertools.product(*(_candidates(column) for column in columns)))
    frame = pl.DataFrame(
        [dict(zip(names, combo, strict=True)) for combo in combos],
        schema={column.column_name: column.polars_type for column in columns},
    )
    failing = frame.filter(~pl.sql_expr(rule.predicate_sql).fill_null(True))
    assert failing.height, f"no row breaks {rule.rule_id}"
    return failing.row(0, named=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    return number_text(value) if isinstance(value, float) else str(value)


@pytest.mark.parametrize(
    "rule_id", sorted(rule.rule_id for rule in load_rules().values() if rule.predicate_sql)
)
def test_every_row_rule_is_said_with_the_values_it_read(rule_id: str) -> None:
    rule = load_rules()[rule_id]
    dataset = load_datasets()[rule.dataset_id]
    row = {c.column_name: _good_value(c, 0, dataset) for c in dataset.columns}
    row.update({name: _text(value) for name, value in _breaking_row(rule, dataset).items()})
    data = _csv(dataset, [row])
    context = _context(dataset.dataset_id, detect_template_examples=False)
    report = build_report(validate_upload(data, context), context, "walk")
    [finding] = [f for f in report["findings"] if f["rule_id"] == rule_id]
    assert_school_text(finding)
    assert finding["detail_zh"].startswith(rule.message_zh)
    for name in predicate_columns(rule, dataset):
        assert dataset.column(name).header_zh in finding["detail_zh"]
    assert_rendered_text(report, data, "csv")


# ------------------------------------------------------------------------------------------
# Every rule of the catalogue, and the corpus of messy files
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", sorted(load_rules()))
def test_every_rule_has_a_chinese_sentence_without_code(rule_id: str) -> None:
    rule = load_rules()[rule_id]
    finding = {
        "rule_id": rule_id,
        "message_zh": rule.message_zh,
        "fix_zh": rule.fix_zh,
        "message_en": rule.message_en,
        "detail_zh": default_detail_zh(rule),
    }
    assert_school_text(finding)


def test_every_file_of_the_corpus_is_reported_without_code() -> None:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as stream:
        expected = list(csv.DictReader(stream))
    seen = set()
    for row in expected:
        path = CORPUS / row["file"]
        context = UploadContext(
            f"uploads/{row['year']}/{row['school']}/{row['file']}",
            int(row["year"]),
            row["school"],
            row["dataset"] or None,
            path.suffix.lstrip("."),
        )
        report = build_report(validate_upload(path.read_bytes(), context), context, "corpus")
        for finding in report["findings"]:
            seen.add(finding["rule_id"])
            assert_school_text(finding)
    assert {"file.type_mismatch", "structure.missing_column", "row.total_row"} <= seen


# ------------------------------------------------------------------------------------------
# The sentences themselves
# ------------------------------------------------------------------------------------------


def test_sentences_state_the_allowed_values_range_format_and_duplicate_row() -> None:
    header = (
        "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入（元/月）,是否上本科线"
    )
    rows = [
        f"{SCHOOL},G0001,护理,去火星,,,否",  # 2: enum
        f"{SCHOOL},G0002,,待就业,,,否",  # 3: required
        f"{SCHOOL},G0003,护理,直接就业,是,-5,否",  # 4: range
        f"{SCHOOL},G 4,护理,待就业,,,否",  # 5: pattern
        f"{SCHOOL},G0005,护理,待就业,,,也许",  # 6: type
        f"{SCHOOL},G0001,护理,待就业,,,否",  # 7: repeats row 2's graduate id
    ]
    data = ("\n".join([header, *rows]) + "\n").encode()
    report = build_report(validate_upload(data, _context("graduates")), _context("graduates"), "t")
    said = {(f["row_number"], f["rule_id"]): f["detail_zh"] for f in report["findings"]}
    assert said[(2, "field.enum")] == (
        "取值必须是以下之一：直接就业、单考单招、五年制转段、自主招生、保送、高级工技师段、"
        "参军入伍、自主创业、待就业。"
    )
    assert said[(3, "field.required")] == "此项必填，不能为空。"
    assert said[(4, "field.range")] == "必须是 0 到 100000 之间的数（单位：元/月）。"
    assert said[(5, "field.pattern")].startswith("必须是 4 到 32 位的数字、字母")
    assert said[(6, "field.type")] == "只能填“是”或“否”。"
    assert said[(2, "dataset.duplicate_key")] == "与第 7 行重复（毕业生编号相同）。"
    assert said[(7, "dataset.duplicate_key")] == "与第 2 行重复（毕业生编号相同）。"


def test_one_sided_ranges_integers_and_key_pairs_are_said_plainly() -> None:
    profile = load_datasets()["school_profile"]
    enrollment = load_datasets()["enrollment"]
    header = ",".join(column.header_zh for column in profile.columns)
    row = {c.column_name: _good_value(c, 0, profile) for c in profile.columns}
    row.update(land_area_m2="-1", paper_books_count="12.5")
    data = _csv(profile, [row])
    assert header.split(",")[0] == "学校代码"
    context = _context("school_profile", detect_template_examples=False)
    said = {
        f["rule_id"]: f["detail_zh"]
        for f in build_report(validate_upload(data, context), context, "t")["findings"]
    }
    assert said["field.range"] == "必须是不小于 0 的数（单位：平方米）。"
    assert said["field.type"].startswith("必须是不小于 0 的整数（单位：册），只填阿拉伯数字")
    rows = [{c.column_name: _good_value(c, 0, enrollment) for c in enrollment.columns}] * 2
    data = _csv(enrollment, rows)
    context = _context("enrollment", detect_template_examples=False)
    [duplicate, _] = build_report(validate_upload(data, context), context, "t")["findings"]
    assert duplicate["detail_zh"] == "与第 3 行重复（专业代码、学生类别都相同）。"


def test_patterns_are_said_in_words_or_by_an_example() -> None:
    assert pattern_phrase("^[0-9A-Za-z]{6,20}$")[0] == (
        "必须是 6 到 20 位的数字或字母（不能有空格、汉字或其他符号）"
    )
    assert pattern_phrase(r"^\d{6}$")[0].startswith("必须是 6 位的数字")
    assert pattern_phrase("^[A-Z]{2}[0-9]{4}$")[0] == "格式必须与填报模板的示例一致，例如“AB1234”"
    for dataset in load_datasets().values():
        for column in dataset.columns:
            if column.pattern:
                assert not CODE_LIKE.search(pattern_phrase(column.pattern)[0]), column.pattern


def test_a_wrong_destination_and_its_follow_ons_are_one_problem() -> None:
    header = (
        "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入（元/月）,是否上本科线"
    )
    data = f"{header}\n{SCHOOL},G0001,护理,去火星,是,3000,否\n".encode()
    report = build_report(validate_upload(data, _context("graduates")), _context("graduates"), "t")
    by_rule = {finding["rule_id"]: finding for finding in report["findings"]}
    assert set(by_rule) == {
        "field.enum",
        "row.matched_only_if_employed",
        "row.income_only_if_employed",
    }
    assert by_rule["field.enum"]["caused_by"] is None
    for rule_id in ("row.matched_only_if_employed", "row.income_only_if_employed"):
        follow_on = by_rule[rule_id]
        assert follow_on["caused_by"] == {
            "rule_id": "field.enum",
            "column": "destination",
            "row_number": 2,
        }
        assert follow_on["detail_zh"].startswith("因“毕业去向”填写有误，连带提示：")
        assert follow_on["severity"] == "warning"  # the rule and its count are kept
    assert report["problem_count"] == 1
    assert report["error_count"] == 1 and report["warning_count"] == 2
    assert {item["rule_id"]: item["count"] for item in report["counts_by_rule"]} == {
        "field.enum": 1,
        "row.matched_only_if_employed": 1,
        "row.income_only_if_employed": 1,
    }


def test_a_row_rule_set_off_by_a_right_value_stands_alone() -> None:
    header = (
        "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入（元/月）,是否上本科线"
    )
    data = f"{header}\n{SCHOOL},G0001,护理,单考单招,是,,否\n".encode()
    report = build_report(validate_upload(data, _context("graduates")), _context("graduates"), "t")
    [finding] = report["findings"]
    assert finding["caused_by"] is None
    assert finding["detail_zh"] == (
        "仅直接就业的毕业生填写“是否对口就业”。本行：毕业去向为“单考单招”，是否对口就业为“是”。"
    )
