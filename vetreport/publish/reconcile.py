"""Reconciliation: compare computed figures with a published reference, figure by figure.

What belongs here: reading a reference in the format of seed_figures.csv (figure_id, year,
value, ...), mapping its figures to indicators through schemas/reference_figures.csv, and
listing every figure whose value, at the precision the reference gives, differs from what
the data says. Figures the catalogue cannot compute are listed as not checked, never
silently dropped.

How precise a figure is comes from the map's ``comparison`` column:

- ``printed`` (the default): as many decimals as the reference prints ('34.30' has 2,
  '465' has 0); the computed value is rounded half-up to them;
- ``round_to:N``: the text gives an approximate figure (约193万): the computed value rounded
  half-up to a multiple of N must equal it;
- ``floor_to:N``: the text gives a lower bound (147万余, 194万余): the computed value
  rounded down to a multiple of N must equal it.

Which region a figure is of comes from the map's optional ``region`` column: empty for the
city, a school code for one school (the seed's case studies state figures of named schools),
or a county name.

Where the computed figures come from: the latest published ``indicator_values`` of the
year, or, if nothing is published, a fresh aggregation of the bucket.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl

from schemas.catalogue import CATALOGUE_DIR
from schemas.indicators import load_table_specs
from vetreport.aggregate.compute import compute_indicator_values, load_curated
from vetreport.bucket.store import open_store
from vetreport.publish.reader import read_pointer, read_table

COMPARISONS = ("printed", "round_to", "floor_to")
STATUSES = ("match", "differs", "no_data", "not_checked")
EPSILON = 1e-9


def decimals_of(text: str) -> int:
    """How many decimals a figure is printed with: '34.30' has 2, '465' has 0."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def round_half_up(value: float, decimals: int) -> Decimal:
    """Round as reports round (half away from zero), exactly."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def load_reference(path: str | Path) -> pl.DataFrame:
    """A reference file: figure_id, year and the value as printed (kept as text)."""
    frame = pl.read_csv(path, infer_schema=False)
    missing = {"figure_id", "year", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return frame.with_columns(pl.col("year").cast(pl.Int64))


def load_figure_map() -> pl.DataFrame:
    """Which indicator each reference figure id stands for, of which region, how exactly.

    The region is the city unless the map's ``region`` names a school code or a county.
    """
    frame = pl.read_csv(CATALOGUE_DIR / "reference_figures.csv", infer_schema=False)
    if "comparison" not in frame.columns:
        frame = frame.with_columns(pl.lit("printed").alias("comparison"))
    if "region" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("region"))
    frame = frame.with_columns(
        pl.col("comparison").fill_null("printed"), pl.col("region").fill_null("")
    )
    parts = frame.get_column("comparison").str.split_exact(":", 1).struct.unnest()
    bad = frame.filter(
        ~parts.get_column("field_0").is_in(COMPARISONS)
        | (
            (parts.get_column("field_0") != "printed")
            & parts.get_column("field_1").cast(pl.Float64, strict=False).is_null()
        )
    )
    if bad.height:
        raise ValueError(f"reference_figures.csv: bad comparison for {bad['figure_id'].to_list()}")
    return frame


def reconcile(
    indicator_values: pl.DataFrame, reference: pl.DataFrame, year: int | None = None
) -> pl.DataFrame:
    """Every reference figure with the computed value and whether the two agree.

    Status: ``match``, ``differs``, ``no_data`` (mapped but the data has no value) or
    ``not_checked`` (no indicator is mapped to the figure).
    """
    level = pl.col("region_level")
    keys = [name for name in ("county_name", "school_code") if name not in indicator_values.columns]
    regional = (
        indicator_values.with_columns(pl.lit(None, dtype=pl.Utf8).alias(name) for name in keys)
        .select(
            pl.when(level == "city")
            .then(pl.lit(""))
            .when(level == "county")
            .then(pl.col("county_name"))
            .when(level == "school")
            .then(pl.col("school_code"))
            .alias("region"),
            "indicator_id",
            "year",
            "value_unrounded",
        )
        .filter(pl.col("region").is_not_null())
    )
    figures = reference.join(
        load_figure_map().select("figure_id", "indicator_id", "comparison", "region"),
        on="figure_id",
        how="left",
    ).with_columns(pl.col("region").fill_null(""))
    if year is not None:
        figures = figures.filter(pl.col("year") == year)
    joined = figures.join(regional, on=["region", "indicator_id", "year"], how="left")

    mode = pl.col("comparison").str.split(":").list.first()
    decimals = (
        pl.when(mode == "printed")
        .then(pl.col("value").str.extract(r"\.(\d+)$").str.len_chars().fill_null(0))
        .otherwise(0)
        .cast(pl.Int64)
    )
    step = (
        pl.when(mode == "printed")
        .then(pl.lit(10.0).pow(-pl.col("decimals")))
        .otherwise(pl.col("comparison").str.split(":").list.get(1, null_on_oob=True))
        .cast(pl.Float64)
    )
    value = pl.col("value_unrounded")
    steps = value.abs() / pl.col("step")
    rounded_steps = (
        pl.when(mode == "floor_to")
        .then((steps + EPSILON).floor())
        .otherwise((steps + 0.5 + EPSILON).floor())
    )
    scale = pl.lit(10).pow(pl.col("decimals")).cast(pl.Int64)
    computed = (
        joined.with_columns(decimals.alias("decimals"))
        .with_columns(step.alias("step"))
        .with_columns(
            (value.sign() * rounded_steps * pl.col("step")).alias("computed_number"),
            (value.sign() * rounded_steps).cast(pl.Int64).alias("_units"),
        )
    )
    # Text at the reference's precision, without float formatting: units of 10^-decimals.
    units = (
        pl.when(mode == "printed")
        .then(pl.col("_units"))
        .otherwise(pl.col("computed_number").round(0).cast(pl.Int64))
    )
    whole = (units.abs() // scale).cast(pl.Utf8)
    fraction = (units.abs() % scale).cast(pl.Utf8).str.zfill(pl.col("decimals"))
    sign = pl.when(units < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    text = (
        pl.when(pl.col("decimals") > 0)
        .then(pl.concat_str(sign, whole, pl.lit("."), fraction))
        .otherwise(pl.concat_str(sign, whole))
    )
    reference_number = pl.col("value").str.replace_all(",", "").cast(pl.Float64, strict=False)
    status = (
        pl.when(pl.col("indicator_id").is_null())
        .then(pl.lit("not_checked"))
        .when(value.is_null())
        .then(pl.lit("no_data"))
        .when((pl.col("computed_number") - reference_number).abs() < pl.col("step") / 2)
        .then(pl.lit("match"))
        .otherwise(pl.lit("differs"))
    )
    result = computed.with_columns(
        pl.when(value.is_not_null()).then(text).alias("computed_value"),
        status.alias("status"),
    )
    return result.select(
        "figure_id",
        "year",
        *[name for name in ("section", "indicator_zh") if name in result.columns],
        pl.col("value").alias("reference_value"),
        "computed_value",
        pl.col("value_unrounded").alias("computed_unrounded"),
        "indicator_id",
        "comparison",
        "status",
    )


def computed_values(store_url: str, year: int) -> tuple[pl.DataFrame, str]:
    """Indicator values of a year: the latest published version, else a fresh aggregation.

    Returns the values and where they came from (e.g. ``published v3`` or ``aggregated``).
    """
    store = open_store(store_url)
    pointer = read_pointer(store, year)
    if pointer is not None:
        return read_table(store, "indicator_values", year), f"published v{pointer['version']}"

    longest = max(spec.years_shown for spec in load_table_specs())
    curated, _ = load_curated(store, range(year - longest + 1, year + 1))
    return compute_indicator_values(curated), "aggregated"


def differences(result: pl.DataFrame) -> pl.DataFrame:
    """Only the figures whose reference and computed values differ."""
    return result.filter(pl.col("status") == "differs")


def summary_counts(result: pl.DataFrame) -> dict[str, int]:
    """How many figures have each status."""
    counts = dict(result.group_by("status").len().iter_rows())
    return {status: int(counts.get(status, 0)) for status in STATUSES}
