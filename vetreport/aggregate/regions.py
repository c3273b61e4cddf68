"""Regions: how a region is named, and the directory of the regions a version covers.

What belongs here: the region path a reader names a region by (``全国``, ``浙江省``,
``浙江省/绍兴市``, ``浙江省/绍兴市/越城区``), parsed into a ``Region``; and the ``regions``
table, every region the indicator values cover. Regions are attributes from the bureau's
registry (vetreport.aggregate.compute and sql/indicators/), never folders.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import polars as pl

NATION_PATH = "全国"
NATION_NAMES = frozenset({NATION_PATH, "", "nation", "national", "中国", "全国合计"})
LEVELS = ("nation", "province", "city", "county")
REGION_COLUMNS = ("province_name", "city_name", "county_name")


@dataclass(frozen=True)
class Region:
    """A region by its names: none for the nation, then province, city and county.

    A city given without its province (``/绍兴市``) is a city the registry places in no
    single province, or one named without checking its province.
    """

    province_name: str | None = None
    city_name: str | None = None
    county_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Region:
        """A region from its path (``全国``, ``浙江省``, ``浙江省/绍兴市``, ...).

        Paths go down to the county: ``浙江省/绍兴市/越城区``. Full-width characters are
        folded (``／`` is ``/``) and spaces around names dropped.
        """
        folded = unicodedata.normalize("NFKC", text).strip()
        if folded.lower() in NATION_NAMES:
            return cls()
        parts = [part.strip() for part in folded.split("/")]
        if len(parts) > len(REGION_COLUMNS) or not all(parts[1:]):
            raise ValueError(
                f"a region is 全国, 省, 省/市 or 省/市/区县 (e.g. 浙江省/绍兴市), not {text!r}"
            )
        names = [part or None for part in parts] + [None] * (len(REGION_COLUMNS) - len(parts))
        return cls(*names)

    @property
    def level(self) -> str:
        """nation, province, city or county."""
        if self.county_name is not None:
            return "county"
        if self.city_name is not None:
            return "city"
        return "province" if self.province_name is not None else "nation"

    @property
    def path(self) -> str:
        """The region's path, as ``region_path`` in the regions table writes it."""
        if self.level == "nation":
            return NATION_PATH
        names = (self.province_name or "", self.city_name, self.county_name)
        return "/".join(name for name in names if name is not None)

    def names(self) -> dict[str, str]:
        """The region columns a row inside this region has, with their values."""
        return {
            column: name
            for column, name in zip(
                REGION_COLUMNS, (self.province_name, self.city_name, self.county_name), strict=True
            )
            if name is not None
        }


def region_directory(values: pl.DataFrame) -> pl.DataFrame:
    """Every region the values cover (nation, provinces, cities, counties), once each.

    ``region_path`` is how a reader names the region (``--region``, ``read_table(...,
    region=)``): ``全国``, ``浙江省``, ``浙江省/绍兴市``, ``浙江省/绍兴市/越城区``; a city the
    registry places in no single province is ``/绍兴市``.
    """
    schema = {
        "region_level": pl.Utf8,
        "region_path": pl.Utf8,
        "province_name": pl.Utf8,
        "city_name": pl.Utf8,
        "county_name": pl.Utf8,
    }
    regions = (
        values.filter(pl.col("region_level").is_in(LEVELS))
        .select("region_level", "province_name", "city_name", "county_name")
        .unique()
    )
    path = (
        pl.when(pl.col("region_level") == "nation")
        .then(pl.lit(NATION_PATH))
        .when(pl.col("region_level") == "province")
        .then(pl.col("province_name"))
        .when(pl.col("region_level") == "city")
        .then(pl.concat_str(pl.col("province_name").fill_null(""), "city_name", separator="/"))
        .otherwise(
            pl.concat_str(
                pl.col("province_name").fill_null(""), "city_name", "county_name", separator="/"
            )
        )
    )
    rank = pl.col("region_level").replace_strict(LEVELS, list(range(len(LEVELS))))
    return (
        regions.with_columns(path.alias("region_path"))
        .sort(rank, "province_name", "city_name", "county_name", nulls_last=False)
        .select(list(schema))
        .cast(schema)
    )
