"""Validation of one upload against the catalogue, layer by layer, into a report.

What belongs here: running the layers of DESIGN §5 in order (file, structure, field, row,
dataset, cross-dataset) over what the readers and normaliser produce, and assembling the
machine-readable report. Every finding carries a rule id from schemas/rules.csv and a
sentence the school reads (``detail_zh``, made from the catalogue by
``vetreport.validate.wording``, never a check's name or a predicate); the report lists
findings up to a cap but always counts all of them, and marks a finding that only follows
from another on its row (``caused_by``), so a school reads one problem, not three.

The outcome is ``accepted`` (no findings), ``accepted_with_warnings`` (warnings only) or
``rejected`` (any error). Only accepted data goes on to the curated zone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
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
from vetreport.bucket.keys import UPLOAD_EXTENSIONS, WORKBOOK_NAME, LayoutError, parse_upload_key
from vetreport.validate.examples import is_example_row
from vetreport.validate.normalise import (
    FINDING_SCHEMA,
    PART,
    PRIVACY_RULES,
    NormalisedTable,
    empty_findings,
    finding_rows,
    normalise_batch,
    part_frames,
    with_constants,
)
from vetreport.validate.read import (
    SOURCE_ROW,
    HeadedTable,
    RawSheet,
    ReadError,
    find_header,
    header_score,
    read_grids,
)
from vetreport.validate.wording import (
    TEMPLATE_EXAMPLE_EN,
    TEMPLATE_EXAMPLE_RULE,
    TEMPLATE_EXAMPLE_ZH,
    consequence_zh,
    default_detail_zh,
    duplicate_texts,
    field_texts,
    predicate_columns,
    row_rule_texts,
    written_value,
)

FINDING_LIMIT = 1000
LOGGER = logging.getLogger(__name__)
ACCEPTED = "accepted"
ACCEPTED_WITH_WARNINGS = "accepted_with_warnings"
REJECTED = "rejected"
SCHOOL = "school"  # the roles of datasets.csv's submitted_by
BUREAU = "bureau"

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
    # Who sends it (from the key's prefix, never from the file): a school or the bureau.
    # A dataset the catalogue assigns to the other role is refused, as a file or a sheet.
    submitter_role: str = "school"
    # Report a row equal to the blank template's example row as such (off only while the
    # template itself checks its example row against the other rules).
    detect_template_examples: bool = True


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
            "default_detail_zh": [default_detail_zh(rule) for rule in rules],
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
    return validate_uploads([(data, context)])[0]


def validate_uploads(
    uploads: Sequence[tuple[bytes, UploadContext]],
) -> list[list[DatasetResult]]:
    """Validate many uploads at once; the results are those of validating each alone.

    Reading, finding the header and casting are per file. The field, dataset, row and
    cross-dataset checks then run once per dataset over the rows of every file in the
    batch (each file's rows tagged with its place in the batch, duplicate keys looked for
    within a file only), because a Pandera validation or a Polars query costs about the
    same for 100 rows as for 100,000: at thousands of small files, per-file checks are
    what limits throughput, not the data.
    """
    prepared = [_prepared_or_unreadable(data, context) for data, context in uploads]
    by_dataset: dict[str, list[_Prepared]] = {}
    for entries in prepared:
        for entry in entries:
            if isinstance(entry, _Prepared):
                by_dataset.setdefault(entry.dataset.dataset_id, []).append(entry)
    crashed: dict[int, Exception] = {}
    checked: dict[int, pl.DataFrame] = {}
    for group in by_dataset.values():
        typed = _normalised(group, crashed)
        places = [
            place
            for place, entry in enumerate(group)
            if entry.normalised is not None and entry.is_checkable
        ]
        checkable = [group[place] for place in places]
        if not checkable:
            continue
        combined = None
        if typed is not None:
            if len(places) < len(group):
                renumber = {place: index for index, place in enumerate(places)}
                typed = typed.filter(pl.col(PART).is_in(places)).with_columns(
                    pl.col(PART).replace_strict(renumber, return_dtype=pl.Int32)
                )
            combined = typed.select(pl.exclude(PART), pl.col(PART))
        for entry, findings in zip(checkable, _checked(checkable, combined), strict=True):
            checked[id(entry)] = findings
    results: list[list[DatasetResult]] = []
    for (_, context), entries in zip(uploads, prepared, strict=True):
        error = next((crashed[id(entry)] for entry in entries if id(entry) in crashed), None)
        if error is not None:
            results.append([_unreadable(context, error)])
            continue
        results.append(
            [
                entry.finish(checked.get(id(entry))) if isinstance(entry, _Prepared) else entry
                for entry in entries
            ]
        )
    return results


def _normalised(group: list[_Prepared], crashed: dict[int, Exception]) -> pl.DataFrame | None:
    """Normalise a dataset's sheets together; if that fails, each alone.

    Sets each entry's ``normalised`` and returns the batch's typed rows (None when the
    sheets had to be normalised one by one). A sheet that breaks the normaliser alone (a
    bug, not bad data) is put in ``crashed``, so its upload is rejected as unreadable and
    the rest of the batch is still judged.
    """
    try:
        batch = normalise_batch(
            [(entry.headed, entry.context.year) for entry in group], group[0].dataset
        )
    except Exception as error:
        if len(group) > 1:
            for entry in group:
                _normalised([entry], crashed)
            return None
        LOGGER.exception("could not read %s", group[0].context.key)
        crashed[id(group[0])] = error
        return None
    for entry, table in zip(group, batch.tables, strict=True):
        entry.normalised = table
    return batch.typed


def _unreadable(context: UploadContext, error: Exception) -> DatasetResult:
    """The one result of an upload the reader or the normaliser broke on."""
    detail = f"the file could not be read ({type(error).__name__}: {error})"
    return _failed(context.dataset_id, "file.unreadable", detail)


def _prepared_or_unreadable(data: bytes, context: UploadContext) -> list[DatasetResult | _Prepared]:
    """``_prepare_upload``, with a file that breaks the reader or normaliser rejected.

    A crash there is a bug, not the school's fault, but it must not stop the batch: the
    file gets ``file.unreadable`` (and is quarantined by ingest) and is logged.
    """
    try:
        return _prepare_upload(data, context)
    except Exception as error:
        LOGGER.exception("could not read %s", context.key)
        return [_unreadable(context, error)]


def _prepare_upload(data: bytes, context: UploadContext) -> list[DatasetResult | _Prepared]:
    """Read an upload and find the header of each of its datasets' sheets (per-file work)."""
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
    return [
        _prepare_sheet(sheet, dataset, context)
        if dataset.submitted_by == context.submitter_role
        else _sheet_not_allowed(sheet, dataset, context)
        for dataset, sheet in targets
    ]


def _sheet_not_allowed(
    sheet: RawSheet, dataset: DatasetSpec, context: UploadContext
) -> DatasetResult:
    """A workbook sheet of a dataset its sender may not submit: refused, never read."""
    who = "the bureau" if context.submitter_role == BUREAU else "a school"
    finding = {
        "rule_id": "structure.sheet_not_allowed",
        "sheet": sheet.sheet_name,
        "detail": f"{who} may not submit {dataset.dataset_id} (sheet {sheet.sheet_name!r})",
    }
    return DatasetResult(
        dataset.dataset_id, None, finding_rows([finding]), sheet_name=sheet.sheet_name
    )


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
    if len(visible) == 1:
        return visible[0]  # a CSV, or a workbook of one sheet: nothing to score
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


@dataclass
class _Prepared:
    """One sheet read and headed, waiting to be cast and checked with a batch's others."""

    dataset: DatasetSpec
    context: UploadContext
    headed: HeadedTable
    normalised: NormalisedTable | None = None  # set by the batch's normaliser

    @property
    def is_checkable(self) -> bool:
        """Field and row checks need every required column; a missing one stops there."""
        assert self.normalised is not None
        rule_ids = self.normalised.findings.get_column("rule_id")
        return rule_ids.len() == 0 or "structure.missing_column" not in rule_ids

    def finish(self, checked: pl.DataFrame | None) -> DatasetResult:
        """The dataset's result, from the normaliser's findings and the batch checks'."""
        assert self.normalised is not None
        findings = [self.normalised.findings]
        if checked is not None and not _adds_nothing(checked, findings[0]):
            findings = [_without_findings_on_example_rows(findings[0], checked), checked]
        typed = self.normalised.frame
        return DatasetResult(
            dataset_id=self.dataset.dataset_id,
            frame=typed,
            findings=_without_findings_on_private_cells(
                pl.concat(findings, how="vertical_relaxed")
            ),
            row_count=typed.height,
            sheet_name=self.headed.sheet_name,
            header_by_column=self.normalised.header_by_column,
            header_row_number=self.headed.header_row_number,
            headers=self.headed.headers,
            column_positions=self.normalised.column_positions,
        )


def _adds_nothing(checked: pl.DataFrame, findings: pl.DataFrame) -> bool:
    """No rows, of the same columns: appending ``checked`` to ``findings`` changes nothing."""
    return checked.height == 0 and checked.schema == findings.schema


def _prepare_sheet(
    sheet: RawSheet, dataset: DatasetSpec, context: UploadContext
) -> DatasetResult | _Prepared:
    known = set(header_lookup(dataset.dataset_id, context.year))
    try:
        headed = find_header(sheet, known)
    except ReadError as error:
        return _failed(dataset.dataset_id, error.rule_id, error.detail)
    if headed.frame.height == 0:
        return _failed(dataset.dataset_id, "file.empty", "the header has no data rows under it")
    return _Prepared(dataset, context, headed)


def _checked(group: list[_Prepared], combined: pl.DataFrame | None = None) -> list[pl.DataFrame]:
    """The batch checks of a group; if they fail, those of each file alone.

    ``combined``, when given, holds the group's typed rows tagged with their place in it
    (as the batch normaliser returns them). A file that breaks a check (a bug, not bad
    data) is rejected with ``file.unreadable`` and the rest of its batch is still judged.
    """
    try:
        return _batch_findings(group, combined)
    except Exception as error:
        if len(group) > 1:
            return [_checked([entry])[0] for entry in group]
        LOGGER.exception("the checks failed on %s", group[0].context.key)
        detail = f"the checks could not run on this file ({type(error).__name__}: {error})"
        return [finding_rows([{"rule_id": "file.unreadable", "detail": detail}])]


def _batch_findings(
    group: list[_Prepared], combined: pl.DataFrame | None = None
) -> list[pl.DataFrame]:
    """The field, dataset, row and cross-dataset findings of one dataset's sheets, per sheet."""
    dataset = group[0].dataset
    tables = [entry.normalised for entry in group if entry.normalised is not None]
    if combined is None:
        combined = pl.concat(
            [
                table.frame.with_columns(pl.lit(index, dtype=pl.Int32).alias(PART))
                for index, table in enumerate(tables)
            ],
            how="vertical_relaxed",
        )
    parts, headers = part_frames(
        [entry.headed.sheet_name for entry in group],
        [table.header_by_column for table in tables],
        "header_as_written",
    )
    checked = pl.concat(
        [
            _pandera_findings(combined, dataset, group),
            _row_rule_findings(combined, dataset),
            _cross_findings(combined, group),
        ],
        how="vertical_relaxed",
    )
    examples = _example_row_findings(combined, dataset, group)
    raw = pl.concat(
        [examples, _without_findings_on_example_rows(checked, examples, [PART, "row_number"])],
        how="vertical_relaxed",
    )
    # A finding Pandera could not place on a row (a whole-frame check) belongs to every sheet.
    unplaced = raw.filter(pl.col(PART).is_null()).drop(PART).join(parts.select(PART), how="cross")
    placed = pl.concat(
        [raw.filter(pl.col(PART).is_not_null()), unplaced.select(raw.columns)],
        how="vertical_relaxed",
    )
    findings = (
        placed.drop("sheet")
        .join(parts, on=PART, how="left")
        .join(headers, on=[PART, "column"], how="left")
        .with_columns(pl.coalesce("header_as_written", "header", "column").alias("header"))
    )
    by_part = findings.partition_by(PART, as_dict=True, include_key=False)
    return [
        by_part[(index,)].select(list(FINDING_SCHEMA)) if (index,) in by_part else empty_findings()
        for index in range(len(group))
    ]


def _example_row_findings(
    combined: pl.DataFrame, dataset: DatasetSpec, group: list[_Prepared]
) -> pl.DataFrame:
    """One finding per row that is the blank template's untouched example row."""
    parts = [index for index, entry in enumerate(group) if entry.context.detect_template_examples]
    if dataset.submitted_by != "school" or not parts:
        return _with_part(empty_findings())
    return combined.filter(pl.col(PART).is_in(parts) & is_example_row(dataset)).select(
        pl.col(PART),
        pl.lit(TEMPLATE_EXAMPLE_RULE).alias("rule_id"),
        pl.lit(None, dtype=pl.Utf8).alias("sheet"),
        pl.col(SOURCE_ROW).alias("row_number"),
        pl.lit(None, dtype=pl.Utf8).alias("column"),
        pl.lit(None, dtype=pl.Utf8).alias("header"),
        pl.lit(None, dtype=pl.Utf8).alias("value"),
        pl.lit(TEMPLATE_EXAMPLE_EN).alias("detail"),
        pl.lit(TEMPLATE_EXAMPLE_ZH).alias("detail_zh"),
    )


def _without_findings_on_example_rows(
    findings: pl.DataFrame, examples: pl.DataFrame, on: list[str] | None = None
) -> pl.DataFrame:
    """A template's example row is one problem (delete it), not a list of field errors."""
    if findings.height == 0 or examples.height == 0:
        return findings
    rows = examples.filter(pl.col("rule_id") == TEMPLATE_EXAMPLE_RULE).select(on or ["row_number"])
    if rows.height == 0:
        return findings
    return findings.join(rows.unique(), on=on or ["row_number"], how="anti", nulls_equal=False)


def _without_findings_on_private_cells(findings: pl.DataFrame) -> pl.DataFrame:
    """Report a cell holding an id number or a name once, as a privacy error.

    Other findings on the same cell would echo the personal data back in the report.
    """
    if findings.height <= 1:
        return findings
    is_privacy = pl.col("rule_id").is_in(PRIVACY_RULES)
    private_cells = findings.filter(is_privacy).select("row_number", "column").unique()
    if private_cells.height == 0:
        return findings
    others = findings.filter(~is_privacy).join(
        private_cells, on=["row_number", "column"], how="anti", nulls_equal=False
    )
    return pl.concat([findings.filter(is_privacy), others], how="vertical_relaxed")


def _pandera_findings(
    combined: pl.DataFrame, dataset: DatasetSpec, group: list[_Prepared]
) -> pl.DataFrame:
    """Field and dataset checks of the Pandera model; failures become findings."""
    schema = pandera_schema(dataset.dataset_id, unique_within=PART)
    try:
        schema.validate(combined, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    except pa.errors.SchemaError as error:  # pragma: no cover - lazy=True collects instead
        return _with_part(finding_rows([{"rule_id": "file.unreadable", "detail": str(error)}]))
    else:
        return _with_part(empty_findings())
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
        pl.col("column").cast(pl.Utf8),
    )
    # A duplicate key is reported on the key columns with the key's value, not the whole row.
    keys = list(dataset.key_columns)
    rows = combined.select(
        pl.int_range(0, pl.len(), dtype=pl.Int64).alias("index"),
        pl.col(PART),
        pl.col(SOURCE_ROW).alias("row"),
        pl.concat_str([pl.col(key).cast(pl.Utf8) for key in keys], separator=" / ").alias("_key"),
    )
    mapped = mapped.join(rows, on="index", how="left")
    # Values that failed to cast are already field.type findings; skip their null checks.
    cast_failures = (
        pl.concat(
            [
                with_constants(entry.normalised.findings, {PART: (index, pl.Int32)})
                for index, entry in enumerate(group)
                if entry.normalised is not None
            ],
            how="vertical_relaxed",
        )
        .filter(pl.col("rule_id") == "field.type")
        .select(
            pl.col(PART),
            pl.col("row_number").alias("row"),
            pl.col("column"),
            pl.lit(True).alias("_cast_failed"),
        )
    )
    mapped = mapped.join(cast_failures, on=[PART, "row", "column"], how="left").filter(
        ~((pl.col("rule_id") == "field.required") & pl.col("_cast_failed").fill_null(False))
    )
    is_duplicate = pl.col("rule_id") == "dataset.duplicate_key"
    # Never the check's name: a field finding is said from the catalogue when the report
    # lists it (build_report); a duplicate names the rows it repeats, known only here.
    duplicate_zh, duplicate_en = duplicate_texts(pl.col("_other_rows"), dataset)
    duplicates = (
        mapped.filter(is_duplicate)
        .with_columns(
            pl.col("row")
            .over([PART, "_key"], mapping_strategy="join")
            .list.set_difference(pl.concat_list(pl.col("row")))
            .list.sort()
            .alias("_other_rows")
        )
        .with_columns(duplicate_en.alias("detail"), duplicate_zh.alias("detail_zh"))
        .drop("_other_rows")
    )
    others = mapped.filter(~is_duplicate).with_columns(
        pl.lit(None, dtype=pl.Utf8).alias("detail"), pl.lit(None, dtype=pl.Utf8).alias("detail_zh")
    )
    mapped = pl.concat([others, duplicates], how="vertical_relaxed")
    column = pl.when(is_duplicate).then(pl.lit(keys[0])).otherwise(pl.col("column"))
    return mapped.select(
        pl.col(PART),
        pl.col("rule_id"),
        pl.lit(None, dtype=pl.Utf8).alias("sheet"),
        pl.col("row").alias("row_number"),
        column.alias("column"),
        pl.lit(None, dtype=pl.Utf8).alias("header"),
        pl.when(is_duplicate)
        .then(pl.col("_key"))
        .otherwise(pl.col("failure_case").cast(pl.Utf8))
        .alias("value"),
        pl.col("detail"),
        pl.col("detail_zh"),
    )


def _with_part(findings: pl.DataFrame) -> pl.DataFrame:
    """A findings frame with the batch column (null: not placed on one sheet)."""
    return findings.select(pl.lit(None, dtype=pl.Int32).alias(PART), *FINDING_SCHEMA)


def _row_rule_findings(combined: pl.DataFrame, dataset: DatasetSpec) -> pl.DataFrame:
    """Cross-field rules written as SQL predicates in rules.csv; a null result passes."""
    parts = []
    for rule in row_rules(dataset.dataset_id):
        passes = pl.sql_expr(rule.predicate_sql).fill_null(True)
        column = rule.columns[0] if rule.columns else None
        detail_zh, detail = row_rule_texts(rule, dataset, combined.schema)
        parts.append(
            combined.filter(~passes).select(
                pl.col(PART),
                pl.lit(rule.rule_id).alias("rule_id"),
                pl.lit(None, dtype=pl.Utf8).alias("sheet"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit(column, dtype=pl.Utf8).alias("column"),
                pl.lit(None, dtype=pl.Utf8).alias("header"),
                (
                    written_value(column, combined.schema[column])
                    if column
                    else pl.lit(None, dtype=pl.Utf8)
                ).alias("value"),
                detail.alias("detail"),
                detail_zh.alias("detail_zh"),
            )
        )
    if not parts:
        return _with_part(empty_findings())
    return pl.concat(parts, how="vertical_relaxed")


def _cross_findings(combined: pl.DataFrame, group: list[_Prepared]) -> pl.DataFrame:
    """The school code in the content must be the one in the key, and in the registry."""
    if "school_code" not in combined.columns:
        return _with_part(empty_findings())
    expected = pl.DataFrame(
        {
            PART: list(range(len(group))),
            "_expected_school": [entry.context.school_code for entry in group],
        },
        schema={PART: pl.Int32, "_expected_school": pl.Utf8},
    )
    coded = combined.select(PART, SOURCE_ROW, "school_code").filter(
        pl.col("school_code").is_not_null()
    )

    def finding(rule_id: str, detail: pl.Expr, detail_zh: pl.Expr) -> list[pl.Expr]:
        return [
            pl.col(PART),
            pl.lit(rule_id).alias("rule_id"),
            pl.lit(None, dtype=pl.Utf8).alias("sheet"),
            pl.col(SOURCE_ROW).alias("row_number"),
            pl.lit("school_code").alias("column"),
            pl.lit("学校代码").alias("header"),
            pl.col("school_code").alias("value"),
            detail.alias("detail"),
            detail_zh.alias("detail_zh"),
        ]

    found = [
        coded.join(expected, on=PART, how="inner")
        .filter(pl.col("school_code") != pl.col("_expected_school"))
        .select(
            finding(
                "cross_dataset.school_code_mismatch",
                pl.format("the upload path says {}", pl.col("_expected_school")),
                pl.format(
                    "文件中的学校代码是“{}”，上传路径中的学校代码是“{}”，两者必须一致。",
                    pl.col("school_code"),
                    pl.col("_expected_school"),
                ),
            )
        )
    ]
    by_registry: dict[frozenset[str], list[int]] = {}
    for index, entry in enumerate(group):
        if entry.context.registry_school_codes is not None:
            by_registry.setdefault(entry.context.registry_school_codes, []).append(index)
    for registry, indexes in by_registry.items():
        found.append(
            coded.filter(
                pl.col(PART).is_in(indexes) & ~pl.col("school_code").is_in(list(registry))
            ).select(
                finding(
                    "cross_dataset.unknown_school",
                    pl.lit(None, dtype=pl.Utf8),
                    pl.format("学校代码“{}”不在本年度的学校名录中。", pl.col("school_code")),
                )
            )
        )
    return pl.concat(found, how="vertical_relaxed")


UPLOAD = "_upload"  # which upload of a batch of reports a finding belongs to


def build_report(
    results: list[DatasetResult], context: UploadContext, submission: str | None
) -> dict[str, Any]:
    """The machine-readable report of one upload: outcome, counts per rule, capped listing."""
    return build_reports([(results, context, submission)])[0]


def build_reports(
    uploads: Sequence[tuple[list[DatasetResult], UploadContext, str | None]],
) -> list[dict[str, Any]]:
    """The reports of many uploads, each what ``build_report`` gives for it alone.

    The findings of every upload are worded, ordered, counted and linked to their causes
    in one pass of Polars (a query costs about the same for 10 findings as for 10,000),
    then split back into one report per upload.
    """
    if not uploads:
        return []
    all_findings = pl.concat(
        [
            with_constants(
                result.findings,
                {UPLOAD: (place, pl.Int32), "dataset": (result.dataset_id, pl.Utf8)},
            )
            for place, (results, _, _) in enumerate(uploads)
            for result in results
        ],
        how="vertical_relaxed",
    )
    detailed = (
        _with_rule_columns(all_findings)
        .sort(
            [UPLOAD, pl.col("severity") != "error", "dataset", "row_number", "column"],
            nulls_last=False,
            maintain_order=True,
        )
        .with_row_index("_finding")
        .with_columns(pl.int_range(pl.len()).over(UPLOAD).alias("_place_in_upload"))
    )
    # most uploads are clean: their (empty) causes frame is made once per schema
    causes = _causes(detailed) if detailed.height else _no_causes(detailed.schema)
    counts = (
        detailed.group_by(UPLOAD, "rule_id", "severity")
        .len()
        .sort(UPLOAD, "rule_id")
        .select(UPLOAD, "rule_id", "severity", pl.col("len").alias("count"))
    )
    totals = detailed.group_by(UPLOAD).agg(
        (pl.col("severity") == "error").sum().alias("error_count"),
        (pl.col("severity") == "warning").sum().alias("warning_count"),
        pl.len().alias("finding_count"),
    )
    followers = (
        causes.join(detailed.select("_finding", UPLOAD), on="_finding").group_by(UPLOAD).len()
    )
    listed = _worded(detailed.filter(pl.col("_place_in_upload") < FINDING_LIMIT), causes).select(
        UPLOAD,
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
        "detail_zh",
        "caused_by",
    )
    listed_by_upload: dict[int, list[dict[str, Any]]] = {}
    for row in listed.to_dicts():
        listed_by_upload.setdefault(row.pop(UPLOAD), []).append(row)
    counts_by_upload: dict[int, list[dict[str, Any]]] = {}
    for row in counts.to_dicts():
        counts_by_upload.setdefault(row.pop(UPLOAD), []).append(row)
    totals_by_upload = {row.pop(UPLOAD): row for row in totals.to_dicts()}
    followers_by_upload = dict(followers.iter_rows())
    rules = load_rules()
    reports = []
    for place, (results, context, submission) in enumerate(uploads):
        total = totals_by_upload.get(
            place, {"error_count": 0, "warning_count": 0, "finding_count": 0}
        )
        upload_counts = counts_by_upload.get(place, [])
        severities = {rules[item["rule_id"]].severity for item in upload_counts}
        outcome = REJECTED if "error" in severities else ACCEPTED_WITH_WARNINGS
        reports.append(
            {
                "submission_id": submission,
                "key": context.key,
                "year": context.year,
                "school_code": context.school_code,
                "outcome": outcome if upload_counts else ACCEPTED,
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
                "error_count": total["error_count"],
                "warning_count": total["warning_count"],
                # Findings that follow from another (caused_by) are part of its problem.
                "problem_count": total["finding_count"] - followers_by_upload.get(place, 0),
                "counts_by_rule": upload_counts,
                "findings": listed_by_upload.get(place, []),
                "finding_limit": FINDING_LIMIT,
                "is_truncated": total["finding_count"] > FINDING_LIMIT,
                "schema_version": SCHEMA_VERSION,
            }
        )
    return reports


@cache
def _cascade_reads() -> pl.DataFrame:
    """For each row rule, the columns its predicate reads, in order (rule_id, _reads, _order).

    A wrong value in one of them (a field finding on the same row) is what set the rule off.
    """
    datasets = load_datasets()
    rows = [
        {"rule_id": rule.rule_id, "_reads": column, "_order": order}
        for rule in load_rules().values()
        if rule.predicate_sql and rule.dataset_id in datasets
        for order, column in enumerate(predicate_columns(rule, datasets[rule.dataset_id]))
    ]
    return pl.DataFrame(rows, schema={"rule_id": pl.Utf8, "_reads": pl.Utf8, "_order": pl.Int64})


_CAUSED_BY = pl.Struct({"rule_id": pl.Utf8, "column": pl.Utf8, "row_number": pl.Int64})


_NO_CAUSES: dict[tuple, pl.DataFrame] = {}


def _no_causes(schema: pl.Schema) -> pl.DataFrame:
    """The causes of no finding, typed as ``_causes`` types them (cached per schema)."""
    key = tuple(schema.items())
    if key not in _NO_CAUSES:
        _NO_CAUSES[key] = _causes(pl.DataFrame(schema=schema))
    return _NO_CAUSES[key]


def _causes(findings: pl.DataFrame) -> pl.DataFrame:
    """The findings that follow from a field finding on the same row, and that finding.

    One wrong 毕业去向 (field.enum) also sets off the row rules that read it (对口就业 and
    月收入 only when directly employed); a malformed school code also differs from the
    upload path's. Such a follow-on keeps its rule and count; the report names its cause
    in ``caused_by`` (rule_id, column and row of the field finding) and says so in
    ``detail_zh`` (因“毕业去向”填写有误，连带提示：…), so a school reads one problem.
    Returns ``_finding`` (the finding's place in ``findings``), ``caused_by`` and
    ``_root_headers`` (the quoted headers of the causes).
    """
    place = [UPLOAD, "dataset", "sheet", "row_number", "_reads"]
    roots = findings.filter(
        (pl.col("layer") == "field")
        & pl.col("row_number").is_not_null()
        & pl.col("column").is_not_null()
    ).select(
        UPLOAD,
        "dataset",
        "sheet",
        "row_number",
        pl.col("column").alias("_reads"),
        pl.col("rule_id").alias("_root_rule"),
        pl.col("header").alias("_root_header"),
    )
    followers = findings.filter(
        pl.col("row_number").is_not_null() & pl.col("layer").is_in(["row", "cross_dataset"])
    ).select("_finding", UPLOAD, "rule_id", "layer", "dataset", "sheet", "row_number", "column")
    keep = ["_finding", UPLOAD, "dataset", "sheet", "row_number", "_reads", "_order"]
    candidates = pl.concat(
        [
            followers.join(_cascade_reads(), on="rule_id", how="inner").select(keep),
            followers.filter(pl.col("layer") == "cross_dataset")
            .with_columns(
                pl.col("column").alias("_reads"), pl.lit(0, dtype=pl.Int64).alias("_order")
            )
            .select(keep),
        ],
        how="vertical_relaxed",
    )
    return (
        candidates.join(roots, on=place, how="inner", nulls_equal=True)
        .sort("_finding", "_order")
        .group_by("_finding", maintain_order=True)
        .agg(
            pl.struct(
                pl.col("_root_rule").first().alias("rule_id"),
                pl.col("_reads").first().alias("column"),
                pl.col("row_number").first().alias("row_number"),
            )
            .cast(_CAUSED_BY)
            .alias("caused_by"),
            pl.concat_str([pl.lit("“"), pl.coalesce("_root_header", "_reads"), pl.lit("”")])
            .unique(maintain_order=True)
            .str.join("、")
            .alias("_root_headers"),
        )
    )


def _worded(listed: pl.DataFrame, causes: pl.DataFrame) -> pl.DataFrame:
    """The listed findings with their sentences, their cause, and a follow-on said as such.

    A field finding is said from its column in the catalogue (``wording.field_texts``);
    a finding with nothing more specific to say gets its rule's message.
    """
    texts = field_texts().rename({"detail": "_field_detail", "detail_zh": "_field_detail_zh"})
    worded = (
        listed.join(causes, on="_finding", how="left")
        .join(texts, on=["dataset", "column", "rule_id"], how="left")
        .sort("_finding")
        .with_columns(
            pl.coalesce("detail", "_field_detail").alias("detail"),
            pl.coalesce("detail_zh", "_field_detail_zh", "default_detail_zh").alias("detail_zh"),
        )
    )
    return worded.with_columns(
        pl.when(pl.col("_root_headers").is_not_null())
        .then(consequence_zh(pl.col("_root_headers"), pl.col("detail_zh")))
        .otherwise(pl.col("detail_zh"))
        .alias("detail_zh"),
        pl.col("caused_by").cast(_CAUSED_BY),
    )


class UsageError(ValueError):
    """A local file cannot be validated as given (missing, wrong type, names no dataset)."""


def local_file_context(
    path: Path,
    year: int | None,
    school: str | None,
    dataset: str | None,
    datasets: dict[str, DatasetSpec],
) -> UploadContext:
    """The UploadContext of a file on disk (``vetreport validate``), or UsageError.

    Year, school and dataset come from a bucket-style path (uploads/{year}/{school}/...)
    unless given; the dataset otherwise from the file's name, in English or Chinese.
    """
    if not path.is_file():
        raise UsageError("no such file")
    extension = path.suffix.lower().lstrip(".")
    if extension not in UPLOAD_EXTENSIONS:
        raise UsageError("only .csv, .xlsx and .parquet files are accepted")
    stem = path.stem
    parts = path.as_posix().split("/")
    if "uploads" in parts:
        try:
            upload = parse_upload_key("/".join(parts[parts.index("uploads") :]))
        except LayoutError:
            pass
        else:
            year = year or upload.year
            school = school or upload.school_code
            stem = upload.stem
    if dataset is None and stem != WORKBOOK_NAME:
        by_name = {spec.name_zh: spec.dataset_id for spec in datasets.values()}
        dataset = stem if stem in datasets else by_name.get(stem)
        if dataset is None:
            raise UsageError(
                f"the name {path.name!r} names no dataset: use --dataset NAME, or name the "
                "file after a dataset (e.g. graduates.csv) or workbook.xlsx"
            )
    if dataset is None and extension != "xlsx":
        raise UsageError("a workbook of several datasets must be an .xlsx file")
    role = BUREAU if "_city" in parts else SCHOOL
    return UploadContext(str(path), year, school, dataset, extension, submitter_role=role)
