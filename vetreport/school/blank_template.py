"""Blank Excel templates for schools, generated from the catalogue for one year.

What belongs here: the workbook a school downloads and fills: a 说明 sheet (how to fill, how
to name and upload the file, the rules) and one sheet per school-submitted dataset, named by
dataset id so the filled workbook can be uploaded as ``workbook.xlsx`` and matched back by
the validator. Each dataset sheet has the Chinese headers with units, a frozen header row,
drop-down lists for enumerations and 是/否 columns, number checks where the catalogue gives a
range, and one example row.

Everything comes from schemas/ (datasets, columns, rules): a dataset added there gets its
sheet with no change here. Example values are derived from each column's spec
(``vetreport.validate.examples``) and then run through the validator itself, so the example
row always passes the rules; an upload that still holds it untouched is told to delete it
(``row.template_example``).
"""

from __future__ import annotations

import io
from typing import Any

import xlsxwriter

from schemas.catalogue import ColumnSpec, DatasetSpec, load_datasets, load_rules
from vetreport.validate.checks import UploadContext, validate_upload
from vetreport.validate.examples import BOOLEAN_CHOICES, example_value, number_text
from vetreport.validate.wording import pattern_phrase

INSTRUCTIONS_SHEET = "说明"
LISTS_SHEET = "_lists"
EXAMPLE_SCHOOL_CODE_LENGTH = 10
DATA_VALIDATION_LAST_ROW = 1_048_575  # 0-based index of Excel's last row
INLINE_LIST_MAX_CHARS = 250  # Excel's limit for a typed list is 255 characters
REQUIRED_MARK = "*"


def school_datasets() -> list[DatasetSpec]:
    """The datasets schools submit, in catalogue order."""
    return [
        spec for spec in load_datasets().values() if spec.submitted_by == "school" and spec.is_data
    ]


def template_header(column: ColumnSpec) -> str:
    """The header as the template prints it: 学校代码, *占地面积（平方米）."""
    mark = REQUIRED_MARK if column.is_required else ""
    return f"{mark}{column.header_with_unit}"


def example_row(dataset: DatasetSpec) -> dict[str, str | None]:
    """The example row of a dataset's sheet, checked by the validator.

    Values come from each column's spec; where the validator still finds a problem (a
    cross-field rule, say), the optional columns involved are left blank, up to three times.
    """
    row: dict[str, str | None] = {
        column.column_name: example_value(column) for column in dataset.columns
    }
    school_code = row.get("school_code")
    for _attempt in range(3):
        header = [template_header(column) for column in dataset.columns]
        body = [
            "" if row[column.column_name] is None else row[column.column_name]
            for column in dataset.columns
        ]
        data = _one_sheet_workbook(dataset.dataset_id, [header, body])
        context = UploadContext(
            key=f"template/{dataset.dataset_id}.xlsx",
            year=None,
            school_code=school_code,
            dataset_id=dataset.dataset_id,
            extension="xlsx",
            detect_template_examples=False,  # the row is the example: check it as data
        )
        findings = validate_upload(data, context)[0].findings
        columns = {
            column
            for column in findings.get_column("column").drop_nulls().to_list()
            if column in row and not dataset.column(column).is_required
        }
        if findings.height == 0 or not columns:
            break
        for column in columns:
            row[column] = None
    return row


def _one_sheet_workbook(sheet_name: str, rows: list[list[str]]) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet(sheet_name)
    for index, values in enumerate(rows):
        sheet.write_row(index, 0, values)
    workbook.close()
    return buffer.getvalue()


class _Lists:
    """Long drop-down lists live on a hidden sheet (Excel caps typed lists at 255 chars)."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self.workbook = workbook
        self.sheet: Any = None
        self.next_column = 0

    def source(self, values: tuple[str, ...]) -> str | list[str]:
        if len(",".join(values)) <= INLINE_LIST_MAX_CHARS:
            return list(values)
        if self.sheet is None:
            self.sheet = self.workbook.add_worksheet(LISTS_SHEET)
            self.sheet.hide()
        column = self.next_column
        self.next_column += 1
        for index, value in enumerate(values):
            self.sheet.write_string(index, column, value)
        letter = xlsxwriter.utility.xl_col_to_name(column)
        return f"={LISTS_SHEET}!${letter}$1:${letter}${len(values)}"


def build_template(year: int) -> bytes:
    """The template workbook of one year, as XLSX bytes."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    formats = {
        "title": workbook.add_format({"bold": True, "font_size": 16}),
        "heading": workbook.add_format({"bold": True, "font_size": 12, "bg_color": "#DDEBF7"}),
        "bold": workbook.add_format({"bold": True}),
        "wrap": workbook.add_format({"text_wrap": True, "valign": "top"}),
        "header": workbook.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"}
        ),
        "required": workbook.add_format(
            {
                "bold": True,
                "bg_color": "#FCE4D6",
                "border": 1,
                "text_wrap": True,
                "valign": "top",
            }
        ),
        "text": workbook.add_format({"num_format": "@"}),
        "example": workbook.add_format({"italic": True, "font_color": "#7F7F7F"}),
        "example_text": workbook.add_format(
            {"italic": True, "font_color": "#7F7F7F", "num_format": "@"}
        ),
    }
    datasets = school_datasets()
    _write_instructions(workbook.add_worksheet(INSTRUCTIONS_SHEET), year, datasets, formats)
    lists = _Lists(workbook)
    for dataset in datasets:
        _write_dataset_sheet(workbook, dataset, formats, lists)
    workbook.close()
    return buffer.getvalue()


def _write_dataset_sheet(
    workbook: xlsxwriter.Workbook, dataset: DatasetSpec, formats: dict[str, Any], lists: _Lists
) -> None:
    sheet = workbook.add_worksheet(dataset.dataset_id)
    example = example_row(dataset)
    for position, column in enumerate(dataset.columns):
        is_text = column.data_type == "string"
        sheet.set_column(
            position,
            position,
            max(12, len(column.header_with_unit) * 2 + 2),
            formats["text"] if is_text else None,
        )
        sheet.write_string(
            0,
            position,
            template_header(column),
            formats["required" if column.is_required else "header"],
        )
        sheet.write_comment(0, position, _column_help(column), {"x_scale": 2, "y_scale": 2})
        value = example[column.column_name]
        if value is not None:
            if column.data_type in ("integer", "number"):
                sheet.write_number(1, position, float(value), formats["example"])
            else:
                sheet.write_string(1, position, value, formats["example_text"])
        _add_validation(sheet, position, column, lists)
    sheet.freeze_panes(1, 0)
    sheet.set_row(0, 36)


def _add_validation(sheet: Any, position: int, column: ColumnSpec, lists: _Lists) -> None:
    cells = (1, position, DATA_VALIDATION_LAST_ROW, position)
    choices: tuple[str, ...] = column.allowed_values or (
        BOOLEAN_CHOICES if column.data_type == "boolean" else ()
    )
    if choices:
        sheet.data_validation(
            *cells,
            {
                "validate": "list",
                "source": lists.source(choices),
                "input_title": column.header_zh[:32],
                "input_message": "请从下拉选项中选择"[:255],
                "error_title": "取值不在选项中",
                "error_message": "请从下拉选项中选择：" + "、".join(choices)[:200],
            },
        )
        return
    if column.data_type in ("integer", "number") and (
        column.min_value is not None or column.max_value is not None
    ):
        kind = "integer" if column.data_type == "integer" else "decimal"
        options: dict[str, Any] = {
            "validate": kind,
            "error_type": "warning",
            "error_title": "数值超出范围",
            "error_message": _range_text(column),
        }
        if column.min_value is not None and column.max_value is not None:
            options.update(criteria="between", minimum=column.min_value, maximum=column.max_value)
        elif column.min_value is not None:
            options.update(criteria=">=", value=column.min_value)
        else:
            options.update(criteria="<=", value=column.max_value)
        sheet.data_validation(*cells, options)


def _range_text(column: ColumnSpec) -> str:
    low, high = column.min_value, column.max_value
    if low is not None and high is not None:
        return f"请填写 {number_text(low)} 到 {number_text(high)} 之间的数"
    if low is not None:
        return f"请填写不小于 {number_text(low)} 的数"
    return f"请填写不大于 {number_text(high or 0)} 的数"


_TYPE_ZH = {"string": "文本", "integer": "整数", "number": "数字", "boolean": "是/否"}


def _column_help(column: ColumnSpec) -> str:
    parts = [
        f"{column.header_zh}（{column.header_en}）",
        f"类型：{_TYPE_ZH[column.data_type]}" + (f"，单位：{column.unit}" if column.unit else ""),
        "必填" if column.is_required else "可留空",
    ]
    if column.allowed_values:
        parts.append("可选：" + "、".join(column.allowed_values))
    if column.min_value is not None or column.max_value is not None:
        parts.append(_range_text(column))
    if column.pattern:
        parts.append("格式：" + pattern_phrase(column.pattern)[0])
    if column.description_en:
        parts.append(column.description_en)
    return "\n".join(parts)


def _write_instructions(
    sheet: Any, year: int, datasets: list[DatasetSpec], formats: dict[str, Any]
) -> None:
    sheet.set_column(0, 0, 22)
    sheet.set_column(1, 1, 30)
    sheet.set_column(2, 2, 16)
    sheet.set_column(3, 4, 48)
    row = 0

    def line(text: str, style: str = "wrap") -> None:
        nonlocal row
        sheet.merge_range(row, 0, row, 4, text, formats[style])
        # Merged cells do not grow with wrapped text: give long lines room.
        sheet.set_row(row, 16 * (1 + len(text) // 70))
        row += 1

    def blank() -> None:
        nonlocal row
        row += 1

    sheet.write_string(row, 0, f"{year}年 中等职业学校质量年度报告 数据填报模板", formats["title"])
    row += 2
    line("一、怎么填", "heading")
    steps = [
        "1. 本工作簿除本“说明”页外，每个工作表对应一类数据，工作表名称就是数据集名称，请不要改名。",
        "2. 第 1 行是表头，请不要修改、删除或调整顺序。表头前带 * 的列必须填写；"
        "把鼠标移到表头上可以看到该列的说明。",
        "3. 第 2 行（灰色斜体）是示例，请用本校数据覆盖，或删除后再填写。",
        "4. 带下拉箭头的列请从下拉选项中选择；“是/否”列只填“是”或“否”。",
        "5. 数字列只填数字，单位见表头括号（如“平方米”“元”），不要在单元格里写单位或文字。",
        "6. 每行一条记录。不要填写合计、小计行，不要合并单元格，不要插入空行或标题行。",
        "7. 不要填写姓名、身份证号等个人信息；教职工和毕业生请使用学校内部的匿名编号。",
        "8. 学校代码请填写本校的学校标识码，必须与上传路径中的学校代码一致。",
    ]
    for step in steps:
        line(step)
    blank()
    line("二、怎么上传", "heading")
    uploads = [
        f"方式一：整个工作簿上传为 uploads/{year}/学校代码/workbook.xlsx（保留各工作表名称，"
        "不需要的数据集工作表可以删除）。",
        f"方式二：每类数据单独上传为 uploads/{year}/学校代码/数据集名称.xlsx 或 .csv，"
        f"例如 uploads/{year}/3306000001/graduates.xlsx。CSV 请使用 UTF-8 或 GBK 编码。",
        "上传后几秒内会生成校验报告：reports/年份/学校代码/ 下的网页（.html）"
        "和标注工作簿（.xlsx），出错的单元格标为红色、警告标为黄色，批注中写明原因和修改方法。",
        "有错误的上传不会被接收；修改后重新上传同名文件即可，以最新一次通过的上传为准。",
    ]
    for text in uploads:
        line(text)
    blank()
    line("三、数据集", "heading")
    for col, text in enumerate(("工作表名称", "数据集", "每行是", "说明")):
        sheet.write_string(row, col, text, formats["bold"])
    row += 1
    for dataset in datasets:
        sheet.write_string(row, 0, dataset.dataset_id)
        sheet.write_string(row, 1, f"{dataset.name_zh}（{dataset.name_en}）")
        sheet.write_string(row, 2, dataset.grain)
        sheet.write_string(row, 3, dataset.description_en, formats["wrap"])
        row += 1
    blank()
    line("四、校验规则（报告中的规则编号）", "heading")
    for col, text in enumerate(("规则编号", "问题", "级别", "修改建议", "English")):
        sheet.write_string(row, col, text, formats["bold"])
    row += 1
    for rule in load_rules().values():
        sheet.write_string(row, 0, rule.rule_id)
        sheet.write_string(row, 1, rule.message_zh, formats["wrap"])
        sheet.write_string(row, 2, "错误（退回）" if rule.severity == "error" else "警告")
        sheet.write_string(row, 3, rule.fix_zh, formats["wrap"])
        sheet.write_string(row, 4, rule.message_en, formats["wrap"])
        row += 1
    blank()
    line("五、各列说明", "heading")
    for col, text in enumerate(("工作表名称", "表头", "类型与单位", "取值要求", "说明")):
        sheet.write_string(row, col, text, formats["bold"])
    row += 1
    for dataset in datasets:
        for column in dataset.columns:
            kind = _TYPE_ZH[column.data_type] + (f"（{column.unit}）" if column.unit else "")
            rule_text = "；".join(
                part
                for part in (
                    "必填" if column.is_required else "可留空",
                    "可选：" + "、".join(column.allowed_values) if column.allowed_values else "",
                    _range_text(column)
                    if column.min_value is not None or column.max_value is not None
                    else "",
                )
                if part
            )
            sheet.write_string(row, 0, dataset.dataset_id)
            sheet.write_string(row, 1, template_header(column))
            sheet.write_string(row, 2, kind)
            sheet.write_string(row, 3, rule_text, formats["wrap"])
            sheet.write_string(row, 4, column.description_en, formats["wrap"])
            row += 1
    sheet.activate()
