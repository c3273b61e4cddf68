"""Validation of one upload against the catalogue, layer by layer, into a report.

What belongs here: running the layers of DESIGN §5 in order (file, structure, field, row,
dataset, cross-dataset) over what the readers and normaliser produce, and assembling the
machine-readable report. Every finding carries a rule id from schemas/rules.csv; the
report lists findings up to a cap but always counts all of them.

The outcome is ``accepted`` (no findings), ``accepted_with_warnings`` (warnings only) or
``rejected`` (any error). Only accepted data goes on to the curated zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from schemas.catalogue import (
    SCHEMA_VERSION,
    DatasetSpec,
    header_lookup,
    load_datasets,
    load_rules,
    normalise_header,
    pandera_schema,
    row_rules,
)
from vetreport.normalize import PRIVACY_RULES, empty_findings, finding_rows, normalise
from vetreport.readers import (
    SOURCE_ROW,
    RawSheet,
    ReadError,
    find_header,
    header_score,
    read_grids,
)

FINDING_LIMIT = 1000
ACCEPTED = "accepted"
ACCEPTED_WITH_WARNINGS = "accepted_with_warnings"
REJECTED = "rejected"

_PANDERA_CHECK_RULES = (
    ("not_nullable", "field.required"),
    ("greater_than", "field.range"),
    ("less_than", "field.range"),
    ("in_range", "field.range"),
    ("isin", "field.enum"),
    ("str_matches", "field.pattern"),
    ("unique", "dataset.duplicate_key"),
    ("column_in_dataframe", "structure.missing_column"),
    ("dtype", "field.type"),
)


@dataclass(frozen=True)
class UploadContext:
    """What the key (or the command line) says about an upload."""

    key: str
    year: int | None
    school_code: str | None
    dataset_id: str | None
    extension: str
    registry_school_codes: frozenset[str] | None = None


@dataclass
class DatasetResult:
    """The validated rows of one dataset in one upload, and its report."""

    dataset_id: str | None
    frame: pl.DataFrame | None
    findings: pl.DataFrame
    row_count: int = 0
    sheet_name: str | None = None
    header_by_column: dict[str, str] = field(default_factory=dict)
    # Where the table sits in the file, for reports that point at cells: the header's
    # Excel row (1-based), the header text of each sheet column (0-based), and the sheet
    # column of each canonical column.
    header_row_number: int | None = None
    headers: list[str] = field(default_factory=list)
    column_positions: dict[str, int] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """accepted, accepted_with_warnings or rejected."""
        return outcome_of(self.findings)


def outcome_of(findings: pl.DataFrame) -> str:
    """The outcome a set of findings leads to."""
    if findings.height == 0:
        return ACCEPTED
    rules = load_rules()
    rule_ids = findings.get_column("rule_id").unique().to_list()
    unknown = sorted(rule_id for rule_id in rule_ids if rule_id not in rules)
    if unknown:
        raise KeyError(f"findings use rule ids missing from rules.csv: {unknown}")
    if any(rules[rule_id].severity == "error" for rule_id in rule_ids):
        return REJECTED
    return ACCEPTED_WITH_WARNINGS


@cache
def _rules_frame() -> pl.DataFrame:
    rules = load_rules().values()
    return pl.DataFrame(
        {
            "rule_id": [rule.rule_id for rule in rules],
            "layer": [rule.layer for rule in rules],
            "severity": [rule.severity for rule in rules],
            "message_zh": [rule.message_zh for rule in rules],
            "message_en": [rule.message_en for rule in rules],
            "fix_zh": [rule.fix_zh for rule in rules],
        }
    )


def _with_rule_columns(findings: pl.DataFrame) -> pl.DataFrame:
    joined = findings.join(_rules_frame(), on="rule_id", how="left")
    unknown = joined.filter(pl.col("severity").is_null()).get_column("rule_id").unique().to_list()
    if unknown:
        raise KeyError(f"findings use rule ids missing from rules.csv: {unknown}")
    return joined


def validate_upload(data: bytes, context: UploadContext) -> list[DatasetResult]:
    """Validate one upload; a workbook of several datasets gives one result per dataset."""
    try:
        sheets = read_grids(data, context.extension)
    except ReadError as error:
        return [_failed(context.dataset_id, error.rule_id, error.detail)]

    datasets = load_datasets()
    if context.dataset_id is not None:
        if context.dataset_id not in datasets:
            return [_failed(context.dataset_id, "file.unknown_dataset", context.dataset_id)]
        targets = [(datasets[context.dataset_id], _pick_sheet(sheets, context.dataset_id))]
    else:
        targets = _match_workbook_sheets(sheets, datasets)
        if not targets:
            return [_failed(None, "structure.missing_sheet", "no sheet is named after a dataset")]
    return [_validate_sheet(sheet, dataset, context) for dataset, sheet in targets]


def _failed(dataset_id: str | None, rule_id: str, detail: str) -> DatasetResult:
    return DatasetResult(dataset_id, None, finding_rows([{"rule_id": rule_id, "detail": detail}]))


def _visible(sheets: list[RawSheet]) -> list[RawSheet]:
    """Hidden sheets (lookup lists, old copies) are ignored unless nothing else is visible."""
    return [sheet for sheet in sheets if not sheet.is_hidden] or sheets


def _pick_sheet(sheets: list[RawSheet], dataset_id: str) -> RawSheet:
    """For a single-dataset file: the sheet named after the dataset, else the best header.

    Only visible sheets count; without a sheet named after the dataset, the sheet whose header
    row names the most columns of the dataset wins (sheets of notes or pivots are skipped).
    """
    dataset = load_datasets()[dataset_id]
    names = {normalise_header(dataset_id), normalise_header(dataset.name_zh)}
    visible = _visible(sheets)
    for sheet in visible:
        if sheet.sheet_name and normalise_header(sheet.sheet_name) in names:
            return sheet
    known = set(header_lookup(dataset_id))
    scores = [header_score(sheet, known) for sheet in visible]
    return visible[scores.index(max(scores))]


def _match_workbook_sheets(
    sheets: list[RawSheet], datasets: dict[str, DatasetSpec]
) -> list[tuple[DatasetSpec, RawSheet]]:
    """Pair a workbook's visible sheets with datasets.

    By sheet name (dataset id or Chinese name); failing any name match, each sheet goes to the
    dataset whose headers it names best.
    """
    by_name = {}
    for dataset in datasets.values():
        by_name[normalise_header(dataset.dataset_id)] = dataset
        by_name[normalise_header(dataset.name_zh)] = dataset
    matched: dict[str, tuple[DatasetSpec, RawSheet]] = {}
    for sheet in _visible(sheets):
        dataset = by_name.get(normalise_header(sheet.sheet_name or ""))
        if dataset is not None and dataset.dataset_id not in matched:
            matched[dataset.dataset_id] = (dataset, sheet)
    if matched:
        return list(matched.values())
    for sheet in _visible(sheets):
        best, best_score = None, 0
        for dataset in datasets.values():
            score = header_score(sheet, set(header_lookup(dataset.dataset_id)))
            required = sum(column.is_required for column in dataset.columns)
            if score > best_score and score >= max(2, required // 2):
                best, best_score = dataset, score
        if best is not None and best.dataset_id not in matched:
            matched[best.dataset_id] = (best, sheet)
    return list(matched.values())


def _validate_sheet(sheet: RawSheet, dataset: DatasetSpec, context: UploadContext) -> DatasetResult:
    known = set(header_lookup(dataset.dataset_id, context.year))
    try:
        headed = find_header(sheet, known)
    except ReadError as error:
        return _failed(dataset.dataset_id, error.rule_id, error.detail)
    if headed.frame.height == 0:
        return _failed(dataset.dataset_id, "file.empty", "the header has no data rows under it")

    normalised = normalise(headed, dataset, context.year)
    typed = normalised.frame
    structure_errors = normalised.findings.filter(pl.col("rule_id") == "structure.missing_column")
    findings = [normalised.findings]
    if structure_errors.height == 0:
        findings.append(_pandera_findings(typed, dataset, headed.sheet_name, normalised))
        findings.append(_row_rule_findings(typed, dataset, headed.sheet_name, normalised))
        findings.append(_cross_findings(typed, context, headed.sheet_name, normalised))
    all_findings = _without_findings_on_private_cells(pl.concat(findings, how="vertical_relaxed"))
    return DatasetResult(
        dataset_id=dataset.dataset_id,
        frame=typed,
        findings=all_findings,
        row_count=typed.height,
        sheet_name=headed.sheet_name,
        header_by_column=normalised.header_by_column,
        header_row_number=headed.header_row_number,
        headers=headed.headers,
        column_positions=normalised.column_positions,
    )


def _without_findings_on_private_cells(findings: pl.DataFrame) -> pl.DataFrame:
    """Report a cell holding an id number or a name once, as a privacy error.

    Other findings on the same cell would echo the personal data back in the report.
    """
    is_privacy = pl.col("rule_id").is_in(PRIVACY_RULES)
    private_cells = findings.filter(is_privacy).select("row_number", "column").unique()
    if private_cells.height == 0:
        return findings
    others = findings.filter(~is_privacy).join(
        private_cells, on=["row_number", "column"], how="anti", nulls_equal=False
    )
    return pl.concat([findings.filter(is_privacy), others], how="vertical_relaxed")


def _pandera_findings(
    typed: pl.DataFrame, dataset: DatasetSpec, sheet: str | None, normalised: Any
) -> pl.DataFrame:
    """Field and dataset checks of the Pandera model; failures become findings."""
    schema = pandera_schema(dataset.dataset_id)
    # Values that failed to cast are already field.type findings; skip their null checks.
    try:
        schema.validate(typed, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    except pa.errors.SchemaError as error:  # pragma: no cover - lazy=True collects instead
        return finding_rows([{"rule_id": "file.unreadable", "detail": str(error)}])
    else:
        return empty_findings()
    rows = typed.get_column(SOURCE_ROW)
    check_rule = pl.lit(None, dtype=pl.Utf8)
    for fragment, rule_id in reversed(_PANDERA_CHECK_RULES):
        check_rule = (
            pl.when(pl.col("check").str.contains(fragment, literal=True))
            .then(pl.lit(rule_id))
            .otherwise(check_rule)
        )
    mapped = cases.with_columns(
        check_rule.fill_null("field.type").alias("rule_id"),
        pl.col("index").cast(pl.Int64, strict=False).alias("index"),
    )
    index_to_row = pl.DataFrame({"index": pl.int_range(0, rows.len(), eager=True), "row": rows})
    mapped = mapped.join(index_to_row.cast({"index": pl.Int64}), on="index", how="left")
    headers = normalised.header_by_column
    cast_failures = normalised.findings.filter(pl.col("rule_id") == "field.type").select(
        pl.col("row_number").alias("row"), pl.col("column"), pl.lit(True).alias("_cast_failed")
    )
    mapped = mapped.join(cast_failures, on=["row", "column"], how="left").filter(
        ~((pl.col("rule_id") == "field.required") & pl.col("_cast_failed").fill_null(False))
    )
    # A duplicate key is reported on the key columns with the key's value, not the whole row.
    keys = list(dataset.key_columns)
    key_text = typed.select(
        pl.col(SOURCE_ROW).alias("row"),
        pl.concat_str([pl.col(key).cast(pl.Utf8) for key in keys], separator=" / ").alias("_key"),
    )
    mapped = mapped.join(key_text, on="row", how="left")
    is_duplicate = pl.col("rule_id") == "dataset.duplicate_key"
    column = pl.when(is_duplicate).then(pl.lit(keys[0])).otherwise(pl.col("column").cast(pl.Utf8))
    return mapped.select(
        pl.col("rule_id"),
        pl.lit(sheet, dtype=pl.Utf8).alias("sheet"),
        pl.col("row").alias("row_number"),
        column.alias("column"),
        column.replace_strict(headers, default=column).alias("header"),
        pl.when(is_duplicate)
        .then(pl.col("_key"))
        .otherwise(pl.col("failure_case").cast(pl.Utf8))
        .alias("value"),
        pl.col("check").cast(pl.Utf8).alias("detail"),
    )


def _as_written(column: str, dtype: pl.DataType) -> pl.Expr:
    """A typed cell as the school wrote it: 是/否 for yes-no, 5400 rather than 5400.0."""
    if dtype == pl.Boolean:
        return pl.when(pl.col(column)).then(pl.lit("是")).when(~pl.col(column)).then(pl.lit("否"))
    text = pl.col(column).cast(pl.Utf8)
    return text.str.replace(r"\.0$", "") if dtype.is_float() else text


def _row_rule_findings(
    typed: pl.DataFrame, dataset: DatasetSpec, sheet: str | None, normalised: Any
) -> pl.DataFrame:
    """Cross-field rules written as SQL predicates in rules.csv; a null result passes."""
    parts = []
    for rule in row_rules(dataset.dataset_id):
        passes = pl.sql_expr(rule.predicate_sql).fill_null(True)
        column = rule.columns[0] if rule.columns else None
        parts.append(
            typed.filter(~passes).select(
                pl.lit(rule.rule_id).alias("rule_id"),
                pl.lit(sheet, dtype=pl.Utf8).alias("sheet"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit(column, dtype=pl.Utf8).alias("column"),
                pl.lit(normalised.header_by_column.get(column, column), dtype=pl.Utf8).alias(
                    "header"
                ),
                (
                    _as_written(column, typed.schema[column])
                    if column
                    else pl.lit(None, dtype=pl.Utf8)
                ).alias("value"),
                pl.lit(rule.predicate_sql).alias("detail"),
            )
        )
    return pl.concat(parts, how="vertical_relaxed") if parts else empty_findings()


def _cross_findings(
    typed: pl.DataFrame, context: UploadContext, sheet: str | None, normalised: Any
) -> pl.DataFrame:
    """The school code in the content must be the one in the key, and in the registry."""
    if "school_code" not in typed.columns:
        return empty_findings()
    header = normalised.header_by_column.get("school_code", "学校代码")
    parts = []
    if context.school_code is not None:
        parts.append(
            typed.filter(
                pl.col("school_code").is_not_null() & (pl.col("school_code") != context.school_code)
            ).select(
                pl.lit("cross_dataset.school_code_mismatch").alias("rule_id"),
                pl.lit(sheet, dtype=pl.Utf8).alias("sheet"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit("school_code").alias("column"),
                pl.lit(header).alias("header"),
                pl.col("school_code").alias("value"),
                pl.lit(f"the upload path says {context.school_code}").alias("detail"),
            )
        )
    if context.registry_school_codes is not None:
        registry = list(context.registry_school_codes)
        parts.append(
            typed.filter(
                pl.col("school_code").is_not_null() & ~pl.col("school_code").is_in(registry)
            ).select(
                pl.lit("cross_dataset.unknown_school").alias("rule_id"),
                pl.lit(sheet, dtype=pl.Utf8).alias("sheet"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit("school_code").alias("column"),
                pl.lit(header).alias("header"),
                pl.col("school_code").alias("value"),
                pl.lit(None, dtype=pl.Utf8).alias("detail"),
            )
        )
    return pl.concat(parts, how="vertical_relaxed") if parts else empty_findings()


def build_report(
    results: list[DatasetResult], context: UploadContext, submission: str | None
) -> dict[str, Any]:
    """The machine-readable report of one upload: outcome, counts per rule, capped listing."""
    all_findings = pl.concat(
        [
            result.findings.with_columns(pl.lit(result.dataset_id, dtype=pl.Utf8).alias("dataset"))
            for result in results
        ],
        how="vertical_relaxed",
    )
    detailed = _with_rule_columns(all_findings).sort(
        [pl.col("severity") != "error", "dataset", "row_number", "column"], nulls_last=False
    )
    counts = (
        detailed.group_by("rule_id", "severity")
        .len()
        .sort("rule_id")
        .select("rule_id", "severity", pl.col("len").alias("count"))
    )
    listed = detailed.head(FINDING_LIMIT).select(
        "dataset",
        "rule_id",
        "severity",
        "layer",
        "sheet",
        "row_number",
        "column",
        "header",
        "value",
        "message_zh",
        "message_en",
        "fix_zh",
        "detail",
    )
    return {
        "submission_id": submission,
        "key": context.key,
        "year": context.year,
        "school_code": context.school_code,
        "outcome": outcome_of(all_findings),
        "datasets": [
            {
                "dataset": result.dataset_id,
                "sheet": result.sheet_name,
                "outcome": result.outcome,
                "row_count": result.row_count,
                "header_row_number": result.header_row_number,
                "headers": result.headers,
                "column_positions": result.column_positions,
            }
            for result in results
        ],
        "error_count": int((detailed.get_column("severity") == "error").sum()),
        "warning_count": int((detailed.get_column("severity") == "warning").sum()),
        "counts_by_rule": counts.to_dicts(),
        "findings": listed.to_dicts(),
        "finding_limit": FINDING_LIMIT,
        "is_truncated": detailed.height > FINDING_LIMIT,
        "schema_version": SCHEMA_VERSION,
    }
