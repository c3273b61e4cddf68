"""What a school reads about a finding: sentences made from the catalogue, never from code.

What belongs here: turning a finding's rule and what the catalogue says about its column
(allowed values, range and unit, pattern, type, whether it is required) or its rule
(message, the columns a cross-field rule reads) into a sentence a school's clerk
understands: 取值必须是以下之一：直接就业、单考单招…, 必须是不小于 0 的数, 与第 12 行重复
（毕业生编号相同）. A Pandera check's name, a regular expression or an SQL predicate is
code and never appears; tests/unit/test_school_wording.py walks every rule and check.

Each finding gets two such sentences: ``detail_zh`` (Chinese, what the school reads next to
the rule's message and fix from rules.csv) and ``detail`` (the same in plain English, for
the bureau). A finding with nothing more specific to say gets its rule's message.
"""

from __future__ import annotations

import re
from functools import cache

import polars as pl

from schemas.catalogue import ColumnSpec, DatasetSpec, RuleSpec, load_datasets
from vetreport.validate.examples import number_text, sample_from_pattern

FIELD_RULES = ("field.required", "field.type", "field.range", "field.enum", "field.pattern")
TEMPLATE_EXAMPLE_RULE = "row.template_example"
MAX_ROWS_NAMED = 5  # a duplicate names at most this many other rows
MAX_VALUE_CHARS = 30  # a value quoted in a sentence is cut to this length
# A national id number (normalise reports one anywhere; a sentence never repeats it).
NATIONAL_ID_TEXT = r"[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
HIDDEN_ZH = "（已隐去）"

TEMPLATE_EXAMPLE_ZH = (
    "这一行是模板自带的示例行（与模板第 2 行灰色斜体的示例相同），不是本校数据："
    "请删除这一行，或用本校的数据覆盖。"
)
TEMPLATE_EXAMPLE_EN = "the row is the blank template's example row, not the school's data"
PRIVACY_ID_ZH = "这里的内容像身份证号码（报告中已隐去），不能上报个人身份信息。"
PRIVACY_NAME_ZH = "编号列中的内容像人员姓名（报告中已隐去），不能上报个人姓名。"


def quoted(text: object) -> str:
    """Text in Chinese quotation marks: “毕业去向”."""
    return f"“{text}”"


def default_detail_zh(rule: RuleSpec) -> str:
    """The sentence of a finding with nothing more specific to say: its rule's message."""
    return rule.message_zh.rstrip("。") + "。"


# ------------------------------------------------------------------------------------------
# What a column allows
# ------------------------------------------------------------------------------------------


def _unit(column: ColumnSpec) -> tuple[str, str]:
    if not column.unit:
        return "", ""
    return f"（单位：{column.unit}）", f" ({column.unit})"


def range_phrase(column: ColumnSpec) -> tuple[str, str] | None:
    """必须是 0 到 5000 之间的整数 / must be a whole number from 0 to 5000, or None."""
    low, high = column.min_value, column.max_value
    whole = column.data_type == "integer"
    noun_zh, noun_en = ("整数", "a whole number") if whole else ("数", "a number")
    if low is not None and high is not None:
        zh = f"必须是 {number_text(low)} 到 {number_text(high)} 之间的{noun_zh}"
        en = f"must be {noun_en} from {number_text(low)} to {number_text(high)}"
    elif low is not None:
        zh = f"必须是不小于 {number_text(low)} 的{noun_zh}"
        en = f"must be {noun_en} of at least {number_text(low)}"
    elif high is not None:
        zh = f"必须是不大于 {number_text(high)} 的{noun_zh}"
        en = f"must be {noun_en} of at most {number_text(high)}"
    else:
        return None
    unit_zh, unit_en = _unit(column)
    return zh + unit_zh, en + unit_en


def type_phrase(column: ColumnSpec) -> tuple[str, str]:
    """What a value of the column's type looks like, with its range where it has one."""
    if column.data_type == "boolean":
        return "只能填“是”或“否”", "must be 是 (yes) or 否 (no)"
    if column.data_type == "string":
        return "必须是文字", "must be text"
    bounded = range_phrase(column)
    unit_zh, unit_en = _unit(column)
    if column.data_type == "integer":
        zh, en = bounded or ("必须是整数" + unit_zh, "must be a whole number" + unit_en)
        return zh + "，只填阿拉伯数字，不带小数、单位或文字", en + ", digits only"
    zh, en = bounded or ("必须是数字" + unit_zh, "must be a number" + unit_en)
    return zh + "，只填数字，不带单位或文字", en + ", digits only"


# Parts of a character class, longest first, as a clerk would name them.
_CLASS_PARTS = (
    ("A-Za-z", "字母", "letters"),
    ("a-zA-Z", "字母", "letters"),
    ("0-9", "数字", "digits"),
    ("\\d", "数字", "digits"),
    ("A-Z", "大写字母", "capital letters"),
    ("a-z", "小写字母", "small letters"),
    ("\\-", "连字符“-”", "hyphens"),
    ("_", "下划线“_”", "underscores"),
    ("-", "连字符“-”", "hyphens"),
    (".", "点“.”", "dots"),
)
_SIMPLE_PATTERN = re.compile(
    r"\^?(?:\[(?P<members>[^\]]+)\]|(?P<digit>\\d))"
    r"(?:\{(?P<low>\d+)(?P<comma>,(?P<high>\d*))?\}|(?P<plus>\+))?\$?"
)


def _class_names(members: str) -> list[tuple[str, str]] | None:
    names: list[tuple[str, str]] = []
    position = 0
    while position < len(members):
        for token, zh, en in _CLASS_PARTS:
            if members.startswith(token, position):
                if (zh, en) not in names:
                    names.append((zh, en))
                position += len(token)
                break
        else:
            return None
    return names


def _either(words: list[str], joiner: str, last: str) -> str:
    return words[0] if len(words) == 1 else joiner.join(words[:-1]) + last + words[-1]


def pattern_phrase(pattern: str) -> tuple[str, str]:
    """A pattern said in words: 必须是 6 到 20 位的数字或字母（不能有空格、汉字或其他符号）.

    Patterns of one character class and a count are said exactly; any other pattern is
    shown by an example that matches it, never as the regular expression.
    """
    simple = _SIMPLE_PATTERN.fullmatch(pattern)
    names = None
    if simple is not None:
        names = [("数字", "digits")] if simple["digit"] else _class_names(simple["members"])
    if simple is None or not names:
        sample = sample_from_pattern(pattern)
        if sample and re.search(pattern, sample):
            return (
                f"格式必须与填报模板的示例一致，例如{quoted(sample)}",
                f"must have the template's format, e.g. {sample}",
            )
        return "格式不符合填报说明的要求，请参照模板表头批注中的说明", "has the wrong format"
    low, high = simple["low"], simple["high"]
    if low is None:
        count_zh, count_en = ("至少 1 位", "at least 1") if simple["plus"] else ("1 位", "1")
    elif simple["comma"] is None:
        count_zh, count_en = f"{low} 位", low
    elif high:
        count_zh, count_en = f"{low} 到 {high} 位", f"{low} to {high}"
    else:
        count_zh, count_en = f"至少 {low} 位", f"at least {low}"
    kinds_zh = _either([zh for zh, _en in names], "、", "或")
    kinds_en = _either([en for _zh, en in names], ", ", " or ")
    return (
        f"必须是 {count_zh}的{kinds_zh}（不能有空格、汉字或其他符号）",
        f"must be {count_en} {kinds_en}",
    )


def field_phrases(column: ColumnSpec) -> dict[str, tuple[str, str]]:
    """The (Chinese, English) sentence of each field rule that applies to the column."""
    type_zh, type_en = type_phrase(column)
    phrases = {
        "field.required": ("此项必填，不能为空。", "a value is required"),
        "field.type": (type_zh + "。", type_en),
    }
    bounded = range_phrase(column)
    if bounded is not None:
        phrases["field.range"] = (bounded[0] + "。", bounded[1])
    if column.allowed_values:
        phrases["field.enum"] = (
            "取值必须是以下之一：" + "、".join(column.allowed_values) + "。",
            "must be one of: " + ", ".join(column.allowed_values),
        )
    if column.pattern:
        zh, en = pattern_phrase(column.pattern)
        phrases["field.pattern"] = (zh + "。", en)
    return phrases


@cache
def field_texts() -> pl.DataFrame:
    """One row per dataset, column and field rule: the finding's ``detail`` and ``detail_zh``.

    A field finding's sentences depend on its column only, so the report joins them to the
    findings it lists rather than every finding carrying them.
    """
    rows = [
        {
            "dataset": dataset.dataset_id,
            "column": column.column_name,
            "rule_id": rule_id,
            "detail": en,
            "detail_zh": zh,
        }
        for dataset in load_datasets().values()
        for column in dataset.columns
        for rule_id, (zh, en) in field_phrases(column).items()
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.Utf8))


# ------------------------------------------------------------------------------------------
# Rows: duplicates and cross-field rules
# ------------------------------------------------------------------------------------------


def key_phrase(dataset: DatasetSpec) -> tuple[str, str]:
    """（毕业生编号相同） / （专业代码、学生类别都相同）, and the English."""
    columns = [dataset.column(name) for name in dataset.key_columns]
    if len(columns) == 1:
        zh = f"（{columns[0].header_zh}相同）"
    else:
        zh = "（" + "、".join(column.header_zh for column in columns) + "都相同）"
    return zh, "same " + " and ".join(column.header_en for column in columns)


def duplicate_texts(other_rows: pl.Expr, dataset: DatasetSpec) -> tuple[pl.Expr, pl.Expr]:
    """The sentences of a duplicate key, from the (sorted) list of the other rows' numbers."""
    shown = other_rows.list.head(MAX_ROWS_NAMED).cast(pl.List(pl.Utf8))
    more = other_rows.list.len() > MAX_ROWS_NAMED
    key_zh, key_en = key_phrase(dataset)
    zh = pl.concat_str(
        [
            pl.lit("与第 "),
            shown.list.join("、"),
            pl.when(more).then(pl.lit(" 等")).otherwise(pl.lit(" ")),
            pl.lit(f"行重复{key_zh}。"),
        ]
    )
    en = pl.concat_str([pl.lit(f"{key_en} as row "), shown.list.join(", ")])
    alone = other_rows.list.len() == 0  # not expected: Pandera names every copy
    return (
        pl.when(alone).then(pl.lit(f"与其他行重复{key_zh}。")).otherwise(zh),
        pl.when(alone).then(pl.lit(f"{key_en} as another row")).otherwise(en),
    )


def written_value(column: str, dtype: pl.DataType) -> pl.Expr:
    """A typed cell as the school wrote it: 是/否 for yes-no, 5400 rather than 5400.0."""
    if dtype == pl.Boolean:
        return pl.when(pl.col(column)).then(pl.lit("是")).when(~pl.col(column)).then(pl.lit("否"))
    text = pl.col(column).cast(pl.Utf8)
    return text.str.replace(r"\.0$", "") if dtype.is_float() else text


_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def predicate_columns(rule: RuleSpec, dataset: DatasetSpec) -> list[str]:
    """The dataset's columns a row rule's predicate reads, in order of first mention."""
    names = _SQL_NAME.findall(_SQL_STRING.sub("", rule.predicate_sql))
    known = set(dataset.column_names)
    return list(dict.fromkeys(name for name in names if name in known))


def row_rule_texts(
    rule: RuleSpec, dataset: DatasetSpec, schema: pl.Schema
) -> tuple[pl.Expr, pl.Expr]:
    """A cross-field finding with the values it read (…本行：毕业去向为“单考单招”…), and English."""
    parts_zh: list[pl.Expr] = []
    parts_en: list[pl.Expr] = []
    for name in predicate_columns(rule, dataset):
        column = dataset.column(name)
        value = written_value(name, schema[name]).str.slice(0, MAX_VALUE_CHARS)
        value = (
            pl.when(value.str.contains(NATIONAL_ID_TEXT)).then(pl.lit(HIDDEN_ZH)).otherwise(value)
        )
        parts_zh.append(
            pl.when(value.is_null())
            .then(pl.lit(f"{column.header_zh}为空"))
            .otherwise(pl.concat_str([pl.lit(f"{column.header_zh}为“"), value, pl.lit("”")]))
        )
        parts_en.append(pl.concat_str([pl.lit(f"{column.header_en} "), value.fill_null("empty")]))
    message_zh = default_detail_zh(rule)
    if not parts_zh:
        return pl.lit(message_zh), pl.lit(rule.message_en)
    zh = pl.concat_str([pl.lit(message_zh + "本行："), pl.concat_str(parts_zh, separator="，")])
    en = pl.concat_str(
        [pl.lit(rule.message_en + "; this row: "), pl.concat_str(parts_en, separator="; ")]
    )
    return zh + pl.lit("。"), en


def consequence_zh(root_headers: pl.Expr, detail_zh: pl.Expr) -> pl.Expr:
    """因“毕业去向”填写有误，连带提示：… (a finding that follows from another on its row)."""
    return pl.concat_str(
        [
            pl.lit("因"),
            root_headers,
            pl.lit("填写有误，连带提示："),
            detail_zh,
            pl.lit("请先改正"),
            root_headers,
            pl.lit("，再看此项是否仍需修改。"),
        ]
    )
