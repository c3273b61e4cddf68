"""From a headed text table to typed, canonical columns, recording what could not be read.

What belongs here: mapping a file's headers to the catalogue's column names, and casting
text to the catalogue's types with the unambiguous clean-ups (NFKC full-width to half-width,
surrounding spaces, thousands separators, "34.30%" to 34.30, 是/否 to booleans). All of it
is vectorised Polars; a value that cannot be cast becomes null and a finding, never a crash.
Rows that only repeat totals (合计/总计/小计) are dropped with a warning, so they are never
counted, and privacy checks (national id numbers anywhere, personal names in id columns)
run here, on the text as the school wrote it.

Findings are rows of a Polars frame (see ``FINDING_SCHEMA``), so a file with a million
bad cells is still cheap to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import polars as pl

from schemas.catalogue import DatasetSpec, header_lookup, normalise_header
from vetreport.validate.examples import is_id_column
from vetreport.validate.read import SOURCE_ROW, HeadedTable, column_position
from vetreport.validate.wording import (
    NATIONAL_ID_TEXT,
    PRIVACY_ID_ZH,
    PRIVACY_NAME_ZH,
    quoted,
)

FINDING_SCHEMA: dict[str, type[pl.DataType]] = {
    "rule_id": pl.Utf8,
    "sheet": pl.Utf8,
    "row_number": pl.Int64,
    "column": pl.Utf8,
    "header": pl.Utf8,
    "value": pl.Utf8,
    "detail": pl.Utf8,
    "detail_zh": pl.Utf8,  # the sentence a school reads (vetreport.validate.wording)
}

TRUE_WORDS = ("是", "有", "y", "yes", "true", "t", "1", "√", "✓", "✔")
FALSE_WORDS = ("否", "无", "n", "no", "false", "f", "0", "×", "✗", "✘")
NATIONAL_ID_PATTERN = rf"^{NATIONAL_ID_TEXT}$"
# Row counters schools add in front of a table: not data, ignored without a warning.
ROW_COUNTER_HEADERS = ("序号", "行号", "序", "no", "no.", "#")
PERSON_NAME_HEADERS = ("姓名", "学生姓名", "教师姓名", "name", "fullname", "身份证号", "身份证号码")
# A Chinese personal name: 2 to 4 Han characters (surname and given name, no other text).
PERSON_NAME_PATTERN = r"^\p{Han}{2,4}$"
PRIVACY_RULES = ("field.privacy_id_number", "field.privacy_person_name")
# A cell that only labels a total row: 合计, 总 计, 小计：, Total ... (after NFKC, any case).
TOTAL_LABEL_PATTERN = (
    r"(?i)^\s*(合\s*计|总\s*计|小\s*计|共\s*计|sub\s*total|grand\s*total|total)\s*[:：]?\s*$"
)


@dataclass(frozen=True)
class NormalisedTable:
    """Typed canonical columns, the source row numbers, and what went wrong on the way."""

    frame: pl.DataFrame
    findings: pl.DataFrame
    header_by_column: dict[str, str]
    column_positions: dict[str, int] = field(default_factory=dict)


_NO_FINDINGS = pl.DataFrame(schema=FINDING_SCHEMA)


def empty_findings() -> pl.DataFrame:
    """A findings frame with no rows (a copy of one made once: building it costs more)."""
    return _NO_FINDINGS.clone()


def with_constants(
    frame: pl.DataFrame, columns: dict[str, tuple[object, type[pl.DataType]]]
) -> pl.DataFrame:
    """``frame.with_columns(pl.lit(value, dtype=dtype).alias(name), ...)`` without a query.

    ``columns``: name -> (value, dtype) of each column of one value to append. A frame
    already holding one of the names (``with_columns`` replaces it in place) or no column
    at all goes through ``with_columns`` itself; otherwise the columns are appended as
    ready-made series, which costs a tenth of a Polars query on a file's few rows.
    """
    if frame.width == 0 or any(name in frame.columns for name in columns):
        return frame.with_columns(
            pl.lit(value, dtype=dtype).alias(name) for name, (value, dtype) in columns.items()
        )
    return frame.hstack(
        [
            pl.Series(name, [value] * frame.height, dtype=dtype)
            for name, (value, dtype) in columns.items()
        ]
    )


def finding_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Build a findings frame from a few hand-made findings (file and structure layers)."""
    if not rows:
        return empty_findings()
    complete = [{name: row.get(name) for name in FINDING_SCHEMA} for row in rows]
    return pl.DataFrame(complete, schema=FINDING_SCHEMA)


def map_headers(
    table: HeadedTable, dataset: DatasetSpec, year: int | None = None
) -> tuple[dict[str, str], pl.DataFrame]:
    """Map positional columns to canonical names; report missing, repeated and unknown ones."""
    lookup = header_lookup(dataset.dataset_id, year)
    mapping: dict[str, str] = {}
    header_by_column: dict[str, str] = {}
    problems: list[dict[str, object]] = []
    sheet = table.sheet_name
    for position, header in enumerate(table.headers):
        if not header.strip():
            continue
        folded = normalise_header(header)
        canonical = lookup.get(folded)
        if canonical is None and folded in ROW_COUNTER_HEADERS:
            continue
        if folded in _person_name_headers():
            problems.append(
                {
                    "rule_id": "structure.privacy_column",
                    "sheet": sheet,
                    "header": header,
                    "detail_zh": f"{quoted(header)}列含有姓名或身份证号等个人信息，不能上报。",
                }
            )
        elif canonical is None:
            problems.append(
                {
                    "rule_id": "structure.unknown_column",
                    "sheet": sheet,
                    "header": header,
                    "detail_zh": f"{quoted(header)}不是模板中的列，已忽略，其中的数据不计入统计。",
                }
            )
        elif canonical in header_by_column:
            first = header_by_column[canonical]
            problems.append(
                {
                    "rule_id": "structure.duplicate_column",
                    "sheet": sheet,
                    "column": canonical,
                    "header": header,
                    "detail": f"also given as {first}",
                    "detail_zh": f"{quoted(header)}和{quoted(first)}是同一列"
                    f"（{dataset.column(canonical).header_zh}），请只保留一列。",
                }
            )
        else:
            mapping[f"column_{position}"] = canonical
            header_by_column[canonical] = header
    for column in dataset.columns:
        if column.is_required and column.column_name not in header_by_column:
            problems.append(
                {
                    "rule_id": "structure.missing_column",
                    "sheet": sheet,
                    "column": column.column_name,
                    "header": column.header_zh,
                    "detail_zh": f"找不到必填的{quoted(column.header_zh)}列，"
                    "请按模板补齐该列（表头文字与模板一致）。",
                }
            )
    return mapping, finding_rows(problems)


@cache
def _person_name_headers() -> frozenset[str]:
    return frozenset(normalise_header(word) for word in PERSON_NAME_HEADERS)


# Characters NFKC leaves alone: ASCII and the CJK unified ideographs. A column with nothing
# else (most columns of most files) skips the costly NFKC pass.
NFKC_STABLE_TEXT = r"^[\x00-\x7F\u4E00-\u9FFF]*$"
TOTAL_LABEL_COLUMNS = 3


def _clean_text(name: str, nfkc: bool = True) -> pl.Expr:
    text = pl.col(name).str.normalize("NFKC") if nfkc else pl.col(name)
    text = text.str.strip_chars()
    return pl.when(text.str.len_chars() == 0).then(None).otherwise(text)


def _columns_needing_nfkc(frame: pl.DataFrame, names: list[str]) -> set[str]:
    """The text columns with at least one character NFKC may change (e.g. full-width １２３)."""
    if not names:
        return set()
    flags = frame.select(
        (~pl.col(name).str.contains(NFKC_STABLE_TEXT)).fill_null(False).any().alias(name)
        for name in names
    ).row(0)
    return {name for name, flag in zip(names, flags, strict=True) if flag}


PART = "_batch_part"  # which table of a batch a row came from
TOTAL_CANDIDATE = "_total_candidate_"  # a column where a table's total label may sit


@dataclass(frozen=True)
class NormalisedBatch:
    """The tables of one dataset normalised together.

    ``tables[i]`` is what ``normalise`` gives for the i-th table alone; ``typed`` holds the
    typed rows of all of them, each tagged with its table's place in ``PART``, for the
    checks that run over a batch without putting the frames together again.
    """

    tables: list[NormalisedTable]
    typed: pl.DataFrame


def _total_candidates(table: HeadedTable, key_positions: list[str]) -> list[str]:
    """The sheet columns where a total row's label is written, in sheet order.

    A total row has a cell that only says 合计/总计/小计 (or Total) in one of the key columns
    or the first few columns of the sheet.
    """
    value_columns = [name for name in table.frame.columns if name != SOURCE_ROW]
    return sorted(
        set(value_columns[:TOTAL_LABEL_COLUMNS]) | set(key_positions) & set(value_columns),
        key=column_position,
    )


@dataclass(frozen=True)
class _Mapped:
    """One table's headers mapped: the per-table part of normalising, pure Python."""

    mapping: dict[str, str]
    header_findings: pl.DataFrame
    header_by_column: dict[str, str]
    column_positions: dict[str, int]
    selection: list[tuple[str, str]]  # (column of the table, its name in the batch)


def _mapped(index: int, table: HeadedTable, dataset: DatasetSpec, year: int | None) -> _Mapped:
    mapping, header_findings = map_headers(table, dataset, year)
    key_positions = [
        position for position, canonical in mapping.items() if canonical in dataset.key_columns
    ]
    selection = [
        (SOURCE_ROW, SOURCE_ROW),
        *mapping.items(),
        *(
            (name, f"{TOTAL_CANDIDATE}{order}")
            for order, name in enumerate(_total_candidates(table, key_positions))
        ),
    ]
    return _Mapped(
        mapping,
        header_findings,
        {
            canonical: table.headers[column_position(position)]
            for position, canonical in mapping.items()
        },
        {canonical: column_position(position) for position, canonical in mapping.items()},
        selection,
    )


def normalise(table: HeadedTable, dataset: DatasetSpec, year: int | None = None) -> NormalisedTable:
    """Rename, clean and cast one headed table to the dataset's canonical typed columns."""
    return normalise_batch([(table, year)], dataset).tables[0]


def normalise_batch(
    tables: list[tuple[HeadedTable, int | None]], dataset: DatasetSpec
) -> NormalisedBatch:
    """Rename, clean and cast many headed tables of one dataset, as if each were alone.

    Mapping headers is per table (each file names its columns its own way); the rows of
    every table are then renamed into one frame and cleaned, cast and checked for types,
    totals and privacy in one pass of Polars, because a query costs about the same for 100
    rows as for 100,000. Each table's findings come back in the order ``normalise`` of that
    table alone gives them.
    """
    mapped = [_mapped(index, table, dataset, year) for index, (table, year) in enumerate(tables)]
    renamed_parts = [
        _selected(index, table.frame, entry.selection)
        for index, ((table, _), entry) in enumerate(zip(tables, mapped, strict=True))
    ]
    combined = pl.concat(renamed_parts, how="diagonal_relaxed")
    missing = [name for name in dataset.column_names if name not in combined.columns]
    combined = combined.with_columns(pl.lit(None, dtype=pl.Utf8).alias(name) for name in missing)
    candidates = sorted(
        (name for name in combined.columns if name.startswith(TOTAL_CANDIDATE)),
        key=lambda name: int(name.removeprefix(TOTAL_CANDIDATE)),
    )
    sheets, headers = part_frames(
        [table.sheet_name for table, _ in tables],
        [entry.header_by_column for entry in mapped],
        "_header_as_written",
    )
    renamed, total_findings = _split_total_rows(combined, candidates)

    # One pass of cleaning (NFKC where needed, trim, blank to null), then casts from it.
    needs_nfkc = _columns_needing_nfkc(renamed, dataset.column_names)
    cleaned = renamed.select(
        PART,
        SOURCE_ROW,
        *[_clean_text(name, name in needs_nfkc).alias(name) for name in dataset.column_names],
    )
    typed = cleaned.select(
        pl.col(PART),
        pl.col(SOURCE_ROW),
        *[
            _cast_clean(column.column_name, column.data_type).alias(column.column_name)
            for column in dataset.columns
        ],
    )
    checks = cleaned.lazy().with_columns(
        *[
            renamed.get_column(column.column_name).alias(f"_raw_{column.column_name}")
            for column in dataset.columns
            if column.data_type != "string"
        ],
        *[
            typed.get_column(column.column_name).alias(f"_typed_{column.column_name}")
            for column in dataset.columns
            if column.data_type != "string"
        ],
    )
    failures: list[pl.LazyFrame] = []
    for column in dataset.columns:
        name = column.column_name
        if column.data_type == "string":
            continue
        failures.append(
            checks.filter(pl.col(name).is_not_null() & pl.col(f"_typed_{name}").is_null()).select(
                pl.col(PART),
                pl.lit("field.type").alias("rule_id"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit(name).alias("column"),
                pl.lit(column.header_zh).alias("header"),
                pl.col(f"_raw_{name}").alias("value"),
                pl.lit(f"expected {column.data_type}").alias("detail"),
                pl.lit(None, dtype=pl.Utf8).alias("detail_zh"),  # the report says it
            )
        )
    failures.extend(_privacy_findings(cleaned.lazy(), dataset))
    collected = pl.collect_all(failures) if failures else []
    found = (
        pl.concat([total_findings, *collected], how="vertical_relaxed")
        .join(sheets, on=PART, how="left", maintain_order="left")
        .join(headers, on=[PART, "column"], how="left", maintain_order="left")
        .with_columns(pl.coalesce("_header_as_written", "header").alias("header"))
        .select(PART, *FINDING_SCHEMA)
    )
    found_by_part = found.partition_by(PART, as_dict=True, include_key=False)
    typed_by_part = typed.partition_by(PART, as_dict=True, include_key=False)
    no_rows = typed.clear().drop(PART)
    normalised = [
        NormalisedTable(
            typed_by_part.get((index,), no_rows),
            _table_findings(entry.header_findings, found_by_part.get((index,))),
            entry.header_by_column,
            entry.column_positions,
        )
        for index, entry in enumerate(mapped)
    ]
    return NormalisedBatch(normalised, typed)


def _selected(index: int, frame: pl.DataFrame, selection: list[tuple[str, str]]) -> pl.DataFrame:
    """A table's mapped columns under their batch names, after its place in the batch.

    Built from the table's own columns: a ``select`` would be a Polars query per file.
    """
    part = pl.Series(PART, [index] * frame.height, dtype=pl.Int32)
    return pl.DataFrame([part, *(frame.get_column(name).alias(as_) for name, as_ in selection)])


def _table_findings(header_findings: pl.DataFrame, found: pl.DataFrame | None) -> pl.DataFrame:
    """One table's findings: its header's, then those found in its rows (``FINDING_SCHEMA``)."""
    if found is None and header_findings.height == 0:
        return empty_findings()  # what the concatenation below gives for a clean table
    return (
        pl.concat(
            [header_findings, empty_findings() if found is None else found], how="vertical_relaxed"
        )
        .select(list(FINDING_SCHEMA))
        .cast(FINDING_SCHEMA)
    )


def part_frames(
    sheet_names: list[str | None], headers_by_part: list[dict[str, str]], header_column: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """For the tables of a batch: (PART, sheet) and (PART, column, header as written).

    Findings made over a batch's rows are joined to these to say, per table, which sheet
    they are on and what the school called the column.
    """
    sheets = pl.DataFrame(
        {PART: list(range(len(sheet_names))), "sheet": sheet_names},
        schema={PART: pl.Int32, "sheet": pl.Utf8},
    )
    headers = pl.DataFrame(
        [
            {PART: index, "column": column, header_column: header}
            for index, header_by_column in enumerate(headers_by_part)
            for column, header in header_by_column.items()
        ],
        schema={PART: pl.Int32, "column": pl.Utf8, header_column: pl.Utf8},
    )
    return sheets, headers


def _split_total_rows(
    combined: pl.DataFrame, candidates: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop total rows and report each as a warning, so totals are never counted.

    ``candidates`` are the columns holding each table's possible total labels, in the
    order they are looked at; they are dropped from the rows returned.
    """
    if not candidates:
        return combined, _no_findings_with_part()
    labels = [
        pl.when(pl.col(name).str.contains(TOTAL_LABEL_PATTERN)).then(pl.col(name))
        for name in candidates
    ]
    marked = combined.with_columns(pl.coalesce(labels).alias("_total_label")).drop(candidates)
    is_total = pl.col("_total_label").is_not_null()
    totals = marked.filter(is_total)
    findings = totals.select(
        pl.col(PART),
        pl.lit("row.total_row").alias("rule_id"),
        pl.col(SOURCE_ROW).alias("row_number"),
        pl.lit(None, dtype=pl.Utf8).alias("column"),
        pl.lit(None, dtype=pl.Utf8).alias("header"),
        pl.col("_total_label").str.strip_chars().alias("value"),
        pl.lit("total row dropped: it is not counted").alias("detail"),
        pl.format(
            "这一行是“{}”行，已忽略，不计入统计。", pl.col("_total_label").str.strip_chars()
        ).alias("detail_zh"),
    )
    if totals.height == 0:
        return marked.drop("_total_label"), findings
    return marked.filter(~is_total).drop("_total_label"), findings


def _no_findings_with_part() -> pl.DataFrame:
    """No findings, as the batch normaliser makes them: with the table, without the sheet."""
    return empty_findings().select(
        pl.lit(None, dtype=pl.Int32).alias(PART),
        *(name for name in FINDING_SCHEMA if name != "sheet"),
    )


def _cast_clean(name: str, data_type: str) -> pl.Expr:
    """Cast an already cleaned text column (see ``_clean_text``) to a catalogue type."""
    text = pl.col(name)
    if data_type == "string":
        return text
    number_text = text.str.replace_all(r"[,\s]", "").str.replace(r"^(-?[0-9.]+)%$", "$1")
    if data_type == "number":
        return number_text.cast(pl.Float64, strict=False)
    if data_type == "integer":
        number = number_text.cast(pl.Float64, strict=False)
        return pl.when(number == number.round(0)).then(number).otherwise(None).cast(pl.Int64)
    if data_type == "boolean":
        words = {word: True for word in TRUE_WORDS} | {word: False for word in FALSE_WORDS}
        return text.str.to_lowercase().replace_strict(words, default=None, return_dtype=pl.Boolean)
    raise ValueError(f"unknown data type {data_type}")


def _privacy_findings(cleaned: pl.LazyFrame, dataset: DatasetSpec) -> list[pl.LazyFrame]:
    """National id numbers in any cell, and personal names in id columns, are privacy errors.

    The value is never echoed back in a report: all but the last 4 characters of an id
    number and all but the first character of a name are masked.
    """
    parts = []
    for column in dataset.columns:
        name = column.column_name
        checks = [
            (
                "field.privacy_id_number",
                pl.col(name).str.contains(NATIONAL_ID_PATTERN),
                pl.lit("**************") + pl.col(name).str.slice(-4),
                PRIVACY_ID_ZH,
            )
        ]
        if column.data_type == "string" and is_id_column(name):
            checks.append(
                (
                    "field.privacy_person_name",
                    pl.col(name).str.contains(PERSON_NAME_PATTERN),
                    pl.col(name).str.slice(0, 1)
                    + pl.col(name).str.slice(1).str.replace_all(".", "*"),
                    PRIVACY_NAME_ZH,
                )
            )
        for rule_id, hit, masked, sentence in checks:
            parts.append(
                cleaned.filter(hit.fill_null(False)).select(
                    pl.col(PART),
                    pl.lit(rule_id).alias("rule_id"),
                    pl.col(SOURCE_ROW).alias("row_number"),
                    pl.lit(name).alias("column"),
                    pl.lit(column.header_zh).alias("header"),
                    masked.alias("value"),
                    pl.lit(None, dtype=pl.Utf8).alias("detail"),
                    pl.lit(sentence).alias("detail_zh"),
                )
            )
    return parts
