"""Write the test corpus: messy and broken files as schools really send them.

Run from the repository root: ``.venv/bin/python -m tests.corpus.make_corpus``. The output is
deterministic (fixed workbook timestamps, no randomness), so running it again rewrites the
same bytes. Each file's expected outcome and rule ids are in expected.csv beside this script;
tests/unit/test_corpus.py runs every file through ``validate_upload``.

Every file is small. The "zip bomb" is a few hundred bytes whose central directory declares
an unpacked size of many gigabytes: the reader must refuse it from the declared size alone.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import xlsxwriter

HERE = Path(__file__).resolve().parent
SCHOOL = "3306020001"
OTHER_SCHOOL = "3306029999"
FIXED_TIME = datetime(2024, 9, 1, 8, 0, 0)

GRADUATE_HEADER = [
    "学校代码",
    "毕业生编号",
    "专业名称",
    "毕业去向",
    "是否对口就业",
    "初次就业月收入（元/月）",
    "是否上本科线",
]
GRADUATES = [
    [SCHOOL, "G24001", "护理", "直接就业", "是", "3800", "否"],
    [SCHOOL, "G24002", "护理", "单考单招", "", "", "是"],
    [SCHOOL, "G24003", "数控技术应用", "五年制转段", "", "", "否"],
    [SCHOOL, "G24004", "数控技术应用", "直接就业", "否", "4200", "否"],
    [SCHOOL, "G24005", "会计事务", "待就业", "", "", "否"],
]
ENROLLMENT_HEADER = [
    "学校代码",
    "专业代码",
    "专业名称",
    "学生类别",
    "招生数（人）",
    "在校生数（人）",
    "长学制招生数（人）",
]
ENROLLMENT = [
    [SCHOOL, "720201", "护理", "中职", "120", "356", "40"],
    [SCHOOL, "660103", "数控技术应用", "中职", "90", "270", ""],
    [SCHOOL, "730301", "会计事务", "技工", "45", "130", "0"],
]
STAFF_HEADER = [
    "学校代码",
    "教职工编号",
    "是否在编",
    "是否专任教师",
    "是否专业课教师",
    "是否双师型",
    "最高学历",
    "专业技术职称",
]
STAFF = [
    [SCHOOL, "T0001", "是", "是", "是", "是", "大学本科", "中级"],
    [SCHOOL, "T0002", "是", "是", "否", "否", "硕士研究生", "副高级"],
    [SCHOOL, "T0003", "否", "否", "否", "否", "大学专科", "未定级"],
]
PROFILE_HEADER = [
    "学校代码",
    "学校名称",
    "占地面积（平方米）",
    "校舍建筑面积（平方米）",
    "教学实习仪器设备总值（元）",
    "纸质图书（册）",
    "电子图书（册）",
]
PROFILE = [[SCHOOL, "绍兴示例职业学校", "120000", "86000", "23500000", "150000", "80000"]]


def csv_bytes(
    header: list[str], rows: list[list[str]], encoding: str = "utf-8", newline: str = "\n"
) -> bytes:
    """CSV text written the simple way schools' tools do (no quoting needed here)."""
    lines = [",".join(header), *(",".join(row) for row in rows)]
    return (newline.join(lines) + newline).encode(encoding)


def xlsx_bytes(build: Callable[[xlsxwriter.Workbook], None]) -> bytes:
    """A workbook built by ``build``, with fixed document properties so bytes are stable."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.set_properties({"created": FIXED_TIME})
    build(workbook)
    workbook.close()
    return buffer.getvalue()


def simple_sheet(
    name: str, header: list[str], rows: list[list[str]], top: int = 0, left: int = 0
) -> Callable[[xlsxwriter.Workbook], None]:
    def build(workbook: xlsxwriter.Workbook) -> None:
        sheet = workbook.add_worksheet(name)
        sheet.write_row(top, left, header)
        for index, row in enumerate(rows, start=1):
            sheet.write_row(top + index, left, row)

    return build


def graduates_with(*changes: tuple[int, int, str]) -> list[list[str]]:
    """The graduate rows with (row, column, value) changes applied."""
    rows = [list(row) for row in GRADUATES]
    for row, column, value in changes:
        rows[row][column] = value
    return rows


# ------------------------------------------------------------------------------------------
# Files that are messy but unambiguous: normalised and accepted
# ------------------------------------------------------------------------------------------


def title_merged(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("毕业生去向")
    sheet.merge_range(0, 0, 0, 6, "2024年 绍兴示例职业学校 毕业生去向统计表")
    sheet.merge_range(1, 0, 1, 6, "填报单位（盖章）：              填报日期：2024-09-01")
    sheet.write_row(2, 0, GRADUATE_HEADER)
    for index, row in enumerate(GRADUATES, start=3):
        sheet.write_row(index, 0, row)


def merged_two_row_header(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("graduates")
    sheet.merge_range(0, 0, 0, 2, "基本信息")
    sheet.merge_range(0, 3, 0, 6, "毕业去向情况")
    sheet.write_row(1, 0, GRADUATE_HEADER)
    for index, row in enumerate(GRADUATES, start=2):
        sheet.write_row(index, 0, row)


def formulas(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("graduates")
    sheet.write_row(0, 0, [*GRADUATE_HEADER, "基本工资", "绩效"])
    for index, row in enumerate(GRADUATES, start=1):
        sheet.write_row(index, 0, row[:5])
        sheet.write_string(index, 6, row[6])
        if row[5]:
            base = int(row[5]) - 800
            sheet.write_number(index, 7, base)
            sheet.write_number(index, 8, 800)
            # The income is a formula; calamine reads the value Excel cached.
            sheet.write_formula(index, 5, f"=H{index + 1}+I{index + 1}", None, int(row[5]))


def numbers_as_text(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("enrollment")
    sheet.write_row(0, 0, ENROLLMENT_HEADER)
    for index, row in enumerate(ENROLLMENT, start=1):
        sheet.write_number(index, 0, int(row[0]))  # the school code typed as a number
        sheet.write_string(index, 1, row[1])
        sheet.write_string(index, 2, row[2])
        sheet.write_string(index, 3, row[3])
        for column in (4, 5, 6):  # counts stored as text, with stray spaces
            sheet.write_string(index, column, f" {row[column]} " if row[column] else "")


def trailing_blanks(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("graduates")
    grey = workbook.add_format({"bg_color": "#EEEEEE", "border": 1})
    sheet.write_row(0, 0, [*GRADUATE_HEADER, "", " "])
    for index, row in enumerate(GRADUATES, start=1):
        sheet.write_row(index, 0, [*row, None, " "])
    for index in range(len(GRADUATES) + 1, len(GRADUATES) + 30):
        sheet.write_blank(index, 0, None, grey)  # formatted but empty rows below the data
        sheet.write_string(index, 3, "   ")


def total_rows_enrollment(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("enrollment")
    sheet.write_row(0, 0, ["序号", *ENROLLMENT_HEADER])
    for index, row in enumerate(ENROLLMENT, start=1):
        sheet.write_row(index, 0, [str(index), *row])
    last = len(ENROLLMENT) + 1
    sheet.write_row(last, 0, ["小计", "", "", "", "中职", "210", "626", "40"])
    sheet.write_row(last + 1, 0, ["总 计", "", "", "", "", "255", "756", "40"])


def hidden_sheet(workbook: xlsxwriter.Workbook) -> None:
    old = workbook.add_worksheet("graduates_2023")
    old.write_row(0, 0, GRADUATE_HEADER)
    old.write_row(1, 0, [SCHOOL, "G23001", "护理", "去火星", "", "", "否"])
    old.hide()
    simple_sheet("graduates", GRADUATE_HEADER, GRADUATES)(workbook)
    workbook.worksheets()[1].activate()


def extra_sheets(workbook: xlsxwriter.Workbook) -> None:
    notes = workbook.add_worksheet("填表说明")
    notes.write(0, 0, "请按模板填写，不要修改表头。")
    notes.write(1, 0, "毕业去向：直接就业、单考单招……")
    simple_sheet("Sheet2", GRADUATE_HEADER, GRADUATES)(workbook)
    pivot = workbook.add_worksheet("统计")
    pivot.write_row(0, 0, ["毕业去向", "人数"])
    pivot.write_row(1, 0, ["直接就业", 2])


def header_line_breaks(workbook: xlsxwriter.Workbook) -> None:
    sheet = workbook.add_worksheet("graduates")
    wrap = workbook.add_format({"text_wrap": True})
    header = [
        "*学校代码",
        "毕业生\n编号",
        "专业名称 ",
        "毕业去向\n(下拉选择)",
        "是否对口\n就业",
        "初次就业月收入\n（元/月）",
        "是否上本科线：",
    ]
    for column, text in enumerate(header):
        sheet.write_string(0, column, text, wrap)
    for index, row in enumerate(GRADUATES, start=1):
        sheet.write_row(index, 0, row)


def several_datasets(workbook: xlsxwriter.Workbook) -> None:
    simple_sheet("说明", ["说明"], [["本工作簿含多个数据集"]])(workbook)
    simple_sheet("graduates", GRADUATE_HEADER, GRADUATES)(workbook)
    simple_sheet("招生与在校生", ENROLLMENT_HEADER, ENROLLMENT)(workbook)
    simple_sheet("staff", STAFF_HEADER, STAFF)(workbook)


def graduates_parquet() -> bytes:
    frame = pl.DataFrame(
        {
            name: [row[index] or None for row in GRADUATES]
            for index, name in enumerate(GRADUATE_HEADER)
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=False)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# Files that cannot be read or are not allowed
# ------------------------------------------------------------------------------------------


def zip_bomb() -> bytes:
    """A tiny .xlsx whose central directory claims 8 GiB of unpacked worksheet."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"):
            info = zipfile.ZipInfo(name, date_time=(2024, 9, 1, 8, 0, 0))
            archive.writestr(info, "<x/>", compress_type=zipfile.ZIP_DEFLATED)
    data = bytearray(buffer.getvalue())
    # Patch the declared uncompressed size (offset 24 of each central directory header).
    position = data.find(b"PK\x01\x02")
    while position != -1:
        struct.pack_into("<I", data, position + 24, 0xFFFFFFF0)
        position = data.find(b"PK\x01\x02", position + 4)
    return bytes(data)


def macro_workbook() -> bytes:
    base = xlsx_bytes(simple_sheet("graduates", GRADUATE_HEADER, GRADUATES))
    source = zipfile.ZipFile(io.BytesIO(base))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info.filename))
        info = zipfile.ZipInfo("xl/vbaProject.bin", date_time=(2024, 9, 1, 8, 0, 0))
        archive.writestr(info, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    return buffer.getvalue()


def fake_png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02" + bytes(
        64
    )


def fake_pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n" + bytes(range(32))


def legacy_xls() -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


def truncated_xlsx() -> bytes:
    return xlsx_bytes(simple_sheet("graduates", GRADUATE_HEADER, GRADUATES))[:700]


def not_a_workbook_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("word/document.xml", date_time=(2024, 9, 1, 8, 0, 0))
        archive.writestr(info, "<w:document/>")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------

G = GRADUATE_HEADER
FILES: dict[str, bytes | Callable[[], bytes]] = {
    # encodings and text formats
    "utf8.csv": lambda: csv_bytes(G, GRADUATES),
    "utf8_bom.csv": lambda: b"\xef\xbb\xbf" + csv_bytes(G, GRADUATES),
    "gbk_crlf.csv": lambda: csv_bytes(G, GRADUATES, "gbk", "\r\n"),
    "gb18030_rare_characters.csv": lambda: csv_bytes(
        G, graduates_with((0, 2, "护理（㐂䶮方向）")), "gb18030", "\r\n"
    ),
    "utf16_tab_separated.csv": lambda: (
        "\ufeff" + "\r\n".join("\t".join(row) for row in [G, *GRADUATES]) + "\r\n"
    ).encode("utf-16-le"),
    "title_rows.csv": lambda: (
        ("2024年毕业生去向统计表,,,,,,\n填报单位：绍兴示例职业学校,,,\n,,,,,,\n").encode()
        + csv_bytes(G, GRADUATES)
    ),
    "fullwidth_digits.csv": lambda: csv_bytes(
        G,
        graduates_with((0, 1, "Ｇ２４００１"), (0, 5, "３８００"), (3, 5, "４２００．００")),
    ),
    "percent_and_thousands.csv": lambda: (
        ",".join(PROFILE_HEADER)
        + "\n"
        + f'{SCHOOL},绍兴示例职业学校,"120,000","86,000.00","23,500,000",1 5 0 000,80000%\n'
    ).encode(),
    "trailing_blank_rows_and_columns.csv": lambda: (
        "\n".join([",".join([*G, "", ""]), *(",".join([*row, "", " "]) for row in GRADUATES)])
        + "\n,,,,,,,,\n , ,,,,,,,\n,,,,,,,,\n"
    ).encode(),
    "total_row.csv": lambda: csv_bytes(G, [*GRADUATES, ["合计", "", "", "", "", "8000", ""]]),
    "english_headers.csv": lambda: csv_bytes(
        [
            "School Code",
            "Graduate ID",
            "Major Name",
            "Destination",
            "Employed in field of study",
            "Starting monthly income (yuan/month)",
            "Reached the undergraduate cut-off",
        ],
        graduates_with((0, 4, "Yes"), (3, 4, "No"), (1, 6, "Y"), (0, 6, "N")),
    ),
    "header_aliases_2021.csv": lambda: csv_bytes(
        ["学校标识码", "学号", "专业", "就业去向", "专业对口", "月薪（元）", "本科上线"], GRADUATES
    ),
    "boolean_variants.csv": lambda: csv_bytes(
        G, graduates_with((0, 4, "√"), (3, 4, "×"), (1, 6, "TRUE"), (2, 6, "false"), (4, 6, "N"))
    ),
    "cross_field_warning.csv": lambda: csv_bytes(G, graduates_with((1, 4, "是"))),
    # Excel files as schools make them
    "title_merged.xlsx": lambda: xlsx_bytes(title_merged),
    "merged_two_row_header.xlsx": lambda: xlsx_bytes(merged_two_row_header),
    "formulas.xlsx": lambda: xlsx_bytes(formulas),
    "numbers_as_text.xlsx": lambda: xlsx_bytes(numbers_as_text),
    "trailing_blanks.xlsx": lambda: xlsx_bytes(trailing_blanks),
    "total_rows_enrollment.xlsx": lambda: xlsx_bytes(total_rows_enrollment),
    "hidden_sheet.xlsx": lambda: xlsx_bytes(hidden_sheet),
    "extra_sheets.xlsx": lambda: xlsx_bytes(extra_sheets),
    "header_line_breaks.xlsx": lambda: xlsx_bytes(header_line_breaks),
    "table_not_at_a1.xlsx": lambda: xlsx_bytes(
        simple_sheet("Sheet1", STAFF_HEADER, STAFF, top=3, left=2)
    ),
    "workbook.xlsx": lambda: xlsx_bytes(several_datasets),
    "graduates.parquet": graduates_parquet,
    "school_profile_gbk.csv": lambda: csv_bytes(PROFILE_HEADER, PROFILE, "gbk", "\r\n"),
    # files that cannot be read or are not allowed
    "renamed_pdf.csv": fake_pdf,
    "renamed_png.xlsx": fake_png,
    "legacy_xls.xlsx": legacy_xls,
    "truncated.xlsx": truncated_xlsx,
    "word_document.xlsx": not_a_workbook_zip,
    "zip_bomb.xlsx": zip_bomb,
    "macros.xlsm": macro_workbook,
    "macros_renamed.xlsx": macro_workbook,
    "empty.csv": lambda: b"",
    "only_spaces.csv": lambda: b"  \r\n \r\n",
    "header_only.csv": lambda: csv_bytes(G, []),
    "no_header.csv": lambda: b"1,2,3\n4,5,6\n",
    "unknown_dataset.csv": lambda: csv_bytes(G, GRADUATES),
    # structure
    "missing_column.csv": lambda: csv_bytes(
        [h for h in G if h != "毕业去向"],
        [[v for i, v in enumerate(r) if i != 3] for r in GRADUATES],
    ),
    "duplicated_column.csv": lambda: csv_bytes([*G, "学号"], [[*r, r[1]] for r in GRADUATES]),
    "unknown_column.csv": lambda: csv_bytes([*G, "备注"], [[*r, ""] for r in GRADUATES]),
    # fields and rows
    "type_errors.csv": lambda: csv_bytes(G, graduates_with((0, 5, "三千八"), (3, 4, "也许"))),
    "range_errors.csv": lambda: csv_bytes(G, graduates_with((0, 5, "-100"), (3, 5, "250000"))),
    "enum_errors.csv": lambda: csv_bytes(G, graduates_with((4, 3, "在家"))),
    "pattern_errors.csv": lambda: csv_bytes(
        STAFF_HEADER, [[SCHOOL, "T1", *STAFF[0][2:]], *STAFF[1:]]
    ),
    "required_empty.csv": lambda: csv_bytes(G, graduates_with((2, 2, ""), (4, 3, " "))),
    "duplicate_keys.csv": lambda: csv_bytes(G, [*GRADUATES, GRADUATES[0]]),
    "enrollment_cross_field_error.csv": lambda: csv_bytes(
        ENROLLMENT_HEADER, [[*ENROLLMENT[0][:6], "200"], *ENROLLMENT[1:]]
    ),
    "school_code_mismatch.csv": lambda: csv_bytes(G, graduates_with((2, 0, OTHER_SCHOOL))),
    "privacy_id_numbers.csv": lambda: csv_bytes(G, graduates_with((1, 1, "330602200501011234"))),
    "privacy_person_names.csv": lambda: csv_bytes(
        STAFF_HEADER, [[SCHOOL, "王小明", *STAFF[0][2:]], [SCHOOL, "欧阳娜娜", *STAFF[1][2:]]]
    ),
    "privacy_name_column.csv": lambda: csv_bytes(
        [*G, "姓名"], [[*r, name] for r, name in zip(GRADUATES, "张李王赵钱", strict=True)]
    ),
}


def main() -> None:
    """Write every corpus file beside this script."""
    for name, make in FILES.items():
        data = make() if callable(make) else make
        (HERE / name).write_bytes(data)
    print(f"wrote {len(FILES)} files to {HERE}")


if __name__ == "__main__":
    main()
