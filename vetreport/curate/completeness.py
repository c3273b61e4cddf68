"""Completeness: which school has submitted which dataset for a report year, and its status.

What belongs here: crossing the schools of the year's registry with the datasets schools
submit (schemas/datasets.csv, ``submitted_by = school``) and reading the ledger to give each
pair a status:

- ``accepted`` / ``accepted_with_warnings``: the outcome of the submission that counts
  (the newest accepted one, as the ledger decides);
- ``rejected``: uploads exist but none was accepted;
- ``missing``: nothing was uploaded.

A school whose newest upload was rejected but an older one was accepted still shows the
accepted status (a rejected upload never replaces accepted data); ``last_outcome`` and
``is_latest_upload_rejected`` tell the operator a newer upload failed. Without an accepted
registry the schools seen in the ledger are used, flagged ``is_in_registry = false``.

Per region, ``completeness_by_region`` counts the schools of each status for every
nation, province, city and county and dataset, the regions taken from the registry.

Two views: ``completeness_matrix`` is the live view (every column, for ``vetreport status``
and operators); ``published_completeness`` is the frame a published version carries. It
keeps what changes only when a status changes (status, the accepted upload that counts and
its time) and leaves out the ledger's moving parts (last outcome, last upload time, upload
count): otherwise every rejected upload would publish a new version of unchanged tables.
"""

from __future__ import annotations

import polars as pl

from schemas.catalogue import load_datasets
from vetreport.bucket.keys import CITY_SUBMITTER
from vetreport.bucket.store import ObjectStore
from vetreport.curate.collection import LADDER, LADDER_ZH, year_statuses
from vetreport.curate.curated import read_curated_rows
from vetreport.curate.ledger import (
    LedgerView,
    counting_records,
    current_submissions,
    dataset_rows,
    read_ledger_view,
)
from vetreport.school.history_report import read_year_history

MISSING = "missing"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
STATUS_WORDS = {
    "withdrawn": "已撤回",
    "accepted": "已接收",
    "accepted_with_warnings": "有警告",
    "rejected": "已退回",
    "missing": "未提交",
}
STATUS_ORDER = ("missing", "withdrawn", "rejected", "accepted_with_warnings", "accepted")

COMPLETENESS_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "school_code": pl.Utf8,
    "school_name": pl.Utf8,
    "county_name": pl.Utf8,
    "dataset": pl.Utf8,
    "dataset_name_zh": pl.Utf8,
    "status": pl.Utf8,
    "last_outcome": pl.Utf8,
    "is_latest_upload_rejected": pl.Boolean,
    "last_uploaded_at": pl.Utf8,
    "accepted_uploaded_at": pl.Utf8,
    "upload_count": pl.Int64,
    "submission_id": pl.Utf8,
    "is_in_registry": pl.Boolean,
    # the school's place on the collection ladder (vetreport.curate.collection), the same
    # on each of its rows; and whether the dataset's warnings that need explaining are
    # (null: it has none)
    "school_state": pl.Utf8,
    "school_state_zh": pl.Utf8,
    "is_warning_explained": pl.Boolean,
}


def school_datasets() -> pl.DataFrame:
    """The datasets schools submit, with their Chinese names, in catalogue order."""
    return pl.DataFrame(
        [
            {"dataset": spec.dataset_id, "dataset_name_zh": spec.name_zh}
            for spec in load_datasets().values()
            if spec.submitted_by == "school" and spec.is_data
        ],
        schema={"dataset": pl.Utf8, "dataset_name_zh": pl.Utf8},
    )


REGISTRY_SCHEMA: dict[str, type[pl.DataType]] = {
    "school_code": pl.Utf8,
    "school_name": pl.Utf8,
    "county_name": pl.Utf8,
}


def registry_schools(registry_rows: pl.DataFrame | None) -> pl.DataFrame:
    """The year's schools (code, name, county) from its curated registry rows, if any."""
    if registry_rows is None or registry_rows.height == 0:
        return pl.DataFrame(schema=REGISTRY_SCHEMA)
    return (
        registry_rows.select(list(REGISTRY_SCHEMA))
        .unique("school_code", keep="first", maintain_order=True)
        .cast(REGISTRY_SCHEMA)
    )


def _registry(store: ObjectStore, current: pl.DataFrame) -> pl.DataFrame:
    """The year's schools from the current accepted registry upload (empty if none)."""
    of_bureau = current.filter(
        (pl.col("dataset") == "school_registry") & (pl.col("submitter") == CITY_SUBMITTER)
    ).head(1)
    return registry_schools(read_curated_rows(store, of_bureau).get("school_registry"))


def completeness_from_records(
    records: list[dict],
    registry: pl.DataFrame,
    year: int,
    current_versions: dict[str, str],
    history: dict[str, list[dict]] | None = None,
) -> pl.DataFrame:
    """The completeness matrix from ledger records, a registry and the bucket's uploads now.

    ``history`` is each school's history findings by school code (its warnings against
    last year, which it explains like an upload's: they move it on the ladder).

    Status: the outcome of the submission that counts; else ``rejected`` when an existing
    upload of the dataset was refused; else ``withdrawn`` when every upload of it was
    deleted; else ``missing``.
    """
    of_year = (pl.col("year") == year) & (pl.col("submitter") != CITY_SUBMITTER)
    rows = dataset_rows(records).filter(of_year)
    counting = dataset_rows(counting_records(records, current_versions)).filter(of_year)
    current = current_submissions(records, current_versions).filter(of_year)
    refused = (
        counting.filter(pl.col("outcome") == REJECTED)
        .select(pl.col("submitter").alias("school_code"), "dataset")
        .unique()
        .with_columns(pl.lit(True).alias("has_refused_upload"))
    )
    if registry.height:
        schools = registry.with_columns(pl.lit(True).alias("is_in_registry"))
    else:
        schools = (
            rows.select(pl.col("submitter").alias("school_code"))
            .unique()
            .with_columns(
                pl.lit(None, dtype=pl.Utf8).alias("school_name"),
                pl.lit(None, dtype=pl.Utf8).alias("county_name"),
                pl.lit(False).alias("is_in_registry"),
            )
        )
    latest = (
        rows.sort(["processed_at", "uploaded_at", "key"], descending=True)
        .group_by("submitter", "dataset", maintain_order=True)
        .agg(
            pl.col("outcome").first().alias("last_outcome"),
            pl.col("uploaded_at").first().alias("last_uploaded_at"),
            pl.len().cast(pl.Int64).alias("upload_count"),
        )
        .rename({"submitter": "school_code"})
    )
    accepted = current.select(
        pl.col("submitter").alias("school_code"),
        "dataset",
        pl.col("outcome").alias("accepted_outcome"),
        pl.col("uploaded_at").alias("accepted_uploaded_at"),
        "submission_id",
    )
    matrix = (
        schools.join(school_datasets(), how="cross")
        .join(latest, on=["school_code", "dataset"], how="left")
        .join(accepted, on=["school_code", "dataset"], how="left")
        .join(refused, on=["school_code", "dataset"], how="left")
        .with_columns(
            pl.lit(year, dtype=pl.Int64).alias("year"),
            pl.when(pl.col("accepted_outcome").is_not_null())
            .then(pl.col("accepted_outcome"))
            .when(pl.col("has_refused_upload"))
            .then(pl.lit(REJECTED))
            .when(pl.col("last_outcome").is_not_null())
            .then(pl.lit(WITHDRAWN))
            .otherwise(pl.lit(MISSING))
            .alias("status"),
            (pl.col("last_outcome") == REJECTED)
            .fill_null(False)
            .alias("is_latest_upload_rejected"),
            pl.col("upload_count").fill_null(0),
        )
    )
    ladder = _ladder_rows(
        records, current_versions, year, schools["school_code"].to_list(), history
    )
    return (
        matrix.join(
            ladder.select("school_code", "school_state", "school_state_zh"),
            on="school_code",
            how="left",
        )
        .join(
            ladder.explode("explained", empty_as_null=True).unnest("explained"),
            on=["school_code", "dataset"],
            how="left",
        )
        .select(list(COMPLETENESS_SCHEMA))
        .cast(COMPLETENESS_SCHEMA)
        .sort("school_code", "dataset")
    )


def _ladder_rows(
    records: list[dict],
    current_versions: dict[str, str],
    year: int,
    schools: list[str],
    history: dict[str, list[dict]] | None,
) -> pl.DataFrame:
    """Each school's ladder state, and per dataset whether its warnings are explained."""
    rows = []
    statuses = year_statuses(records, current_versions, year, schools, history)
    for school, status in statuses.items():
        needing: dict[str, bool] = {}
        for warning in status.warnings:
            if warning["needs_explanation"]:
                dataset = warning["dataset"]
                needing[dataset] = needing.get(dataset, True) and warning["is_explained"]
        rows.append(
            {
                "school_code": school,
                "school_state": status.state,
                "school_state_zh": status.state_zh,
                "explained": [
                    {"dataset": dataset, "is_warning_explained": flag}
                    for dataset, flag in needing.items()
                ]
                or [{"dataset": None, "is_warning_explained": None}],
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "school_code": pl.Utf8,
            "school_state": pl.Utf8,
            "school_state_zh": pl.Utf8,
            "explained": pl.List(
                pl.Struct({"dataset": pl.Utf8, "is_warning_explained": pl.Boolean})
            ),
        },
    )


def completeness_matrix(
    store: ObjectStore,
    year: int,
    view: LedgerView | None = None,
    registry_rows: pl.DataFrame | None = None,
    history: dict[str, list[dict]] | None = None,
) -> pl.DataFrame:
    """School x dataset status for a report year, from the ledger and the registry.

    Columns: year, school_code, school_name, county_name, dataset, dataset_name_zh, status
    (missing | rejected | accepted | accepted_with_warnings), last_outcome,
    is_latest_upload_rejected, last_uploaded_at, accepted_uploaded_at, upload_count,
    submission_id (the one that counts), is_in_registry.

    ``view`` is the ledger as already read (``ledger.read_ledger_view`` of years including
    ``year``), ``registry_rows`` the year's curated registry rows as already loaded and
    ``history`` each school's history findings as just computed: without them the ledger,
    the registry and the schools' history.json are read from the store.
    """
    view = (view or read_ledger_view(store, [year])).of_year(year)
    if registry_rows is None:
        current = view.current_submissions().filter(pl.col("year") == year)
        registry = _registry(store, current)
    else:
        registry = registry_schools(registry_rows)
    if history is None:
        seen = {str(r.get("school_code") or r.get("submitter")) for r in view.records}
        schools = (set(registry["school_code"].to_list()) | seen) - {CITY_SUBMITTER}
        history = read_year_history(store, year, schools)
    return completeness_from_records(view.records, registry, year, view.current_versions, history)


PUBLISHED_COLUMNS = (
    "year",
    "school_code",
    "school_name",
    "county_name",
    "dataset",
    "dataset_name_zh",
    "status",
    "accepted_uploaded_at",
    "submission_id",
    "is_in_registry",
)


def published_completeness(matrix: pl.DataFrame) -> pl.DataFrame:
    """The completeness frame a published version carries (see the module docstring)."""
    return matrix.select(PUBLISHED_COLUMNS)


REGION_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nation", ()),
    ("province", ("province_name",)),
    ("city", ("province_name", "city_name")),
    ("county", ("province_name", "city_name", "county_name")),
)
REGION_COMPLETENESS_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "region_level": pl.Utf8,
    "province_name": pl.Utf8,
    "city_name": pl.Utf8,
    "county_name": pl.Utf8,
    "dataset": pl.Utf8,
    "dataset_name_zh": pl.Utf8,
    "expected_school_count": pl.Int64,
    **{f"{status}_school_count": pl.Int64 for status in reversed(STATUS_ORDER)},
}


def completeness_by_region(matrix: pl.DataFrame, registry: pl.DataFrame) -> pl.DataFrame:
    """Schools by status per region (nation, province, city, county) and dataset.

    ``registry`` gives each school's region (school_code, province_name, city_name,
    county_name: the year's school_registry rows). A school outside it (only when the year
    has no registry) counts in the nation alone. ``expected_school_count`` is the schools
    of the region; each ``{status}_school_count`` how many of them have that status, so the
    status counts add up to it.
    """
    regions = registry.select("school_code", *REGION_LEVELS[-1][1]).unique(
        "school_code", keep="first", maintain_order=True
    )
    located = matrix.select("year", "school_code", "dataset", "dataset_name_zh", "status").join(
        regions, on="school_code", how="left"
    )
    counts = [pl.len().alias("expected_school_count")] + [
        (pl.col("status") == status).sum().alias(f"{status}_school_count")
        for status in reversed(STATUS_ORDER)
    ]
    parts = []
    for rank, (level, keys) in enumerate(REGION_LEVELS):
        placed = located.drop_nulls(list(keys)) if keys else located
        parts.append(
            placed.group_by("year", *keys, "dataset", "dataset_name_zh")
            .agg(counts)
            .with_columns(pl.lit(level).alias("region_level"), pl.lit(rank).alias("rank"))
        )
    datasets = school_datasets().with_row_index("dataset_rank").select("dataset", "dataset_rank")
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .join(datasets, on="dataset", how="left")
        .sort("rank", "province_name", "city_name", "county_name", "dataset_rank", "dataset")
        .select(list(REGION_COMPLETENESS_SCHEMA))
        .cast(REGION_COMPLETENESS_SCHEMA)
    )


LADDER_COLUMN = "状态"


def ladder_counts(matrix: pl.DataFrame) -> pl.DataFrame:
    """How many schools stand at each state of the ladder (every state, zeros included)."""
    schools = matrix.select("school_code", "school_state").unique("school_code")
    counted = dict(schools.group_by("school_state").len().iter_rows())
    return pl.DataFrame(
        {
            "state": list(LADDER),
            "状态": [LADDER_ZH[state] for state in LADDER],
            "school_count": [counted.get(state, 0) for state in LADDER],
        }
    )


def completeness_summary(matrix: pl.DataFrame) -> pl.DataFrame:
    """Counts of each status per dataset: what an operator looks at first."""
    return (
        matrix.group_by("dataset", "status")
        .len("school_count")
        .pivot(on="status", index="dataset", values="school_count")
        .fill_null(0)
        .sort("dataset")
    )


def completeness(store: ObjectStore, year: int) -> pl.DataFrame:
    """School x dataset status for a year (Chinese status words), schools as rows."""
    return as_grid(completeness_matrix(store, year))


def as_grid(long: pl.DataFrame) -> pl.DataFrame:
    """Pivot a long (school, dataset, status) frame to schools x datasets in Chinese words.

    With the collection ladder (``school_state_zh``), the school's state comes first as
    ``状态``, and a dataset with warnings that need explaining reads 有警告（已说明） or
    有警告（待说明）.
    """
    if not {"school_code", "dataset", "status"} <= set(long.columns):
        return long
    if "school_state_zh" in long.columns:
        long = long.rename({"school_state_zh": LADDER_COLUMN})
    index = [name for name in ("school_code", "school_name", LADDER_COLUMN) if name in long.columns]
    datasets = list(dict.fromkeys(long.get_column("dataset").to_list()))
    words = pl.col("status").replace(STATUS_WORDS)
    if "is_warning_explained" in long.columns:
        words = (
            pl.when(pl.col("is_warning_explained") & (pl.col("status") == "accepted_with_warnings"))
            .then(words + "（已说明）")
            .when(~pl.col("is_warning_explained") & (pl.col("status") == "accepted_with_warnings"))
            .then(words + "（待说明）")
            .otherwise(words)
        )
    grid = (
        long.with_columns(words.alias("status"))
        .pivot(on="dataset", index=index, values="status", aggregate_function="first")
        .sort("school_code")
    )
    return grid.select(*index, *[name for name in datasets if name in grid.columns])
