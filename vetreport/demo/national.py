"""A synthetic national year: N schools in 31 provinces, streamed to a bucket folder.

What belongs here: the geography and the schools of a made-up country-wide collection and
the bytes of their uploads, written school by school so that no country-wide frame is ever
held in memory. The Shaoxing demo (``vetreport.demo.generator``) is calibrated to one city's
printed report; this one is not calibrated to anything. It exists to measure the pipeline at
national scale and to give it realistic variety: school sizes, formats, messy and bad files.

The regions: the 31 provinces are the real provincial-level divisions, each with about its
real number of prefecture-level divisions as cities (338 in all, ``provinces.csv``, with a
rough weight for how many secondary vocational schools each has and a wealth factor for
money figures); every city and county is synthetic and plainly so, numbered across the
country: 示例市001 … 示例市338 and 示例县0001 … (5 to 12 counties a city, 12 to 16 in a
municipality). A school is named like 示例市023示例职业学校07 (民办 ones
示例市023示例民办职业学校07) and has the 10-digit code 9, province code, 7-digit index:
``9330000123`` is the 124th school, in 浙江省. The schools are shared out by the provinces'
weights, at least one a province when N is at least 31, then over each province's cities
(at least one a city where there are enough), so from about 5,000 schools on every city
has some (1,000 schools reach 332 of the 338 cities).

A school is drawn from the seed and its index: a school type of the demo's
(``school_types.csv``, ``majors.csv``), three to six of that type's majors, each with 10 to
200 students (a quarter of the schools with technician majors also run technician classes),
graduates about a third of enrolment, staff about one per 15 students. The per-person and
appendix rows are built by the demo generator's per-school builders from these counts.

Files are written the way schools write them: UTF-8 CSV with a BOM (45%), GBK CSV with CRLF
line ends (30%), XLSX with a merged title row above the header (25%); one school in ten uses
header aliases, and one enrolment file in twenty carries a 合计 row (a warning, still
accepted). A few per cent of the schools' files (``bad_share``, 3% by default) carry one
error a validator must reject: an empty file, a missing required column, a duplicated key,
a school code other than the path's, a value out of range, a value of the wrong type, a
value outside the allowed list. The bureau's files are always clean: one registry of every
school per year (the same schools every year) and a city reference of every city with a
school, whose general upper-secondary admissions are sized to the run's schools so that the
vocational share of admissions stays plausible at any N.

Beside ``uploads/`` the generator writes ``demo/national_manifest.csv``: one row per file
with its format, data rows, the defect it carries and the rule that must reject it, so a
test or benchmark knows the expected accepted/rejected split. The same seed, N and years
give the same bytes.
"""

from __future__ import annotations

import csv
import gc
import io
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from schemas.catalogue import ColumnSpec, DatasetSpec, load_datasets
from vetreport.bucket.keys import CITY_SUBMITTER, upload_key
from vetreport.demo.generator import (
    ADVANCED_TECHNICIAN,
    CONTEST_STRENGTH,
    CSV_GBK,
    CSV_UTF8_BOM,
    DESTINATIONS,
    DIRECT,
    EXAM_TRACK,
    HONOUR_FIGURES,
    LONG_PROGRAM_SHARE,
    MEDALS,
    NO,
    PARTNERSHIP_GIVEN,
    SCHOOL_DATASETS,
    SCHOOL_TYPES,
    SERVICE_STRENGTH,
    XLSX,
    YES,
    DemoSchool,
    FundingBasis,
    Major,
    ServiceCounts,
    _award_table,
    _csv_bytes,
    _funding_row,
    _graduate_table,
    _hundreds,
    _international_row,
    _jitter,
    _partnership_row,
    _read_demo_csv,
    _rng,
    _scaled,
    _service_row,
    _staff_table,
    _StaffCounts,
    _survey_table,
    _with_headers,
    _xlsx_bytes,
)

DEFAULT_SCHOOLS = 7000
DEFAULT_YEARS = (2021, 2022, 2023)
BAD_SHARE = 0.03
MANIFEST_KEY = "demo/national_manifest.csv"
PRIVATE = "民办"
PUBLIC = "公办"

# Shares of the schools by type (the demo's types) and by the way they write files.
SCHOOL_TYPE_SHARES = {
    "engineering": 0.22,
    "comprehensive": 0.30,
    "textile": 0.04,
    "nursing": 0.06,
    "finance_tourism": 0.12,
    "arts": 0.06,
    "private": 0.20,
}
FILE_FORMAT_SHARES = {CSV_UTF8_BOM: 0.45, CSV_GBK: 0.30, XLSX: 0.25}
ALIAS_SHARE = 0.10  # schools writing one or two headers by an alias
TECHNICIAN_SHARE = 0.25  # of the schools whose type has technician majors
TOTAL_ROW_SHARE = 0.05  # of clean enrolment files: a 合计 row at the bottom
GARBAGE_EVERY_SCHOOLS = 25  # a full collection costs ~0.1 s; one school takes ~0.1 s
MAJORS_PER_SCHOOL = (3, 6)
STUDENTS_PER_MAJOR = (10, 200, 70)  # low, high, mode of a triangular draw
STUDENTS_PER_STAFF = 15
# Admissions of a typical school (4-5 majors of about 90 students, a third admitted a year).
TYPICAL_ADMISSIONS = 135
# Honours held (public schools only): the share of schools holding each.
HONOUR_SHARES = {
    "is_national_demo_school": 0.06,
    "is_provincial_demo_school": 0.18,
    "is_provincial_famous_school": 0.10,
    "is_provincial_high_level_school": 0.12,
}
# National skills-contest medals per 1,000 students, before the type's contest strength.
MEDALS_PER_THOUSAND = (0.03, 0.05, 0.08)
# Every school enters the city contest: its awards are drawn as for at least this many
# students, so no school has an empty awards file.
MIN_CONTEST_SIZE = 200
# What a defect breaks, and the rule that must reject the file.
EXPECTED_RULES = {
    "empty": "file.empty",
    "missing_column": "structure.missing_column",
    "duplicate_key": "dataset.duplicate_key",
    "school_code_mismatch": "cross_dataset.school_code_mismatch",
    "range": "field.range",
    "type": "field.type",
    "enum": "field.enum",
}
TOTAL_ROW = "total_row"
MANIFEST_COLUMNS = (
    "key",
    "year",
    "submitter",
    "province_name",
    "city_name",
    "dataset",
    "file_format",
    "data_rows",
    "defect",
    "expected_rule",
    "mess",
)


# --------------------------------------------------------------------------------------------
# Geography
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A synthetic city and its synthetic counties."""

    name: str
    counties: tuple[str, ...]
    population: int


@dataclass(frozen=True)
class Province:
    """A real province name with synthetic cities."""

    code: str
    name: str
    school_weight: float
    wealth: float
    cities: tuple[City, ...]


def national_geography(seed: int) -> tuple[Province, ...]:
    """The 31 provinces with their synthetic cities and counties (338 cities)."""
    provinces = []
    city_number = county_number = 0
    for row in _read_demo_csv("provinces.csv"):
        municipality = int(row["city_count"]) == 1
        cities = []
        for _ in range(int(row["city_count"])):
            city_number += 1
            rng = _rng(seed, "national-city", city_number)
            county_count = rng.randint(12, 16) if municipality else rng.randint(5, 12)
            counties = tuple(f"示例县{county_number + n:04d}" for n in range(1, county_count + 1))
            county_number += county_count
            low, high = (12_000_000, 25_000_000) if municipality else (1_500_000, 9_000_000)
            cities.append(City(f"示例市{city_number:03d}", counties, rng.randint(low, high)))
        provinces.append(
            Province(
                code=row["province_code"],
                name=row["province_name"],
                school_weight=float(row["school_weight"]),
                wealth=float(row["wealth"]),
                cities=tuple(cities),
            )
        )
    return tuple(provinces)


def _share(total: int, weights: Sequence[float], floor: int) -> list[int]:
    """Split ``total`` by weights (largest remainder), each part at least ``floor`` if it can."""
    base = floor if total >= floor * len(weights) else 0
    rest = total - base * len(weights)
    weight_sum = sum(weights)
    quotas = [rest * weight / weight_sum for weight in weights]
    parts = [int(quota) for quota in quotas]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - quotas[i], i))
    for i in order[: rest - sum(parts)]:
        parts[i] += 1
    return [base + part for part in parts]


def school_allocation(
    seed: int, count: int, geography: tuple[Province, ...]
) -> list[tuple[Province, City, int]]:
    """How many of ``count`` schools each city has, province by province (O(cities))."""
    per_province = _share(count, [province.school_weight for province in geography], 1)
    allocation = []
    for province, schools in zip(geography, per_province, strict=True):
        weights = [
            _rng(seed, "national-city-weight", city.name).lognormvariate(0, 0.5)
            for city in province.cities
        ]
        for city, city_schools in zip(province.cities, _share(schools, weights, 1), strict=True):
            allocation.append((province, city, city_schools))
    return allocation


# --------------------------------------------------------------------------------------------
# Schools
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NationalSchool:
    """One synthetic school: where it is, what it teaches, how big and how it writes files."""

    index: int
    code: str
    name: str
    province: Province
    city: City
    county: str
    school_type: str
    ownership: str
    file_format: str
    header_aliases: tuple[tuple[str, str], ...]
    majors: tuple[tuple[Major, int], ...]  # secondary majors and their usual enrolment
    technician_majors: tuple[tuple[Major, int], ...]
    honours: tuple[str, ...]

    @property
    def usual_students(self) -> int:
        """Enrolment in a typical year (a year's enrolment varies around it)."""
        return sum(size for _, size in self.majors + self.technician_majors)

    def as_demo_school(self, students: int, technician: int) -> DemoSchool:
        """The school as the demo generator's per-school builders take it."""
        return DemoSchool(
            code=self.code,
            name=self.name,
            county=self.county,
            ownership=self.ownership,
            school_type=self.school_type,
            secondary_size=students - technician,
            technician_size=technician,
            file_format=self.file_format,
            header_aliases=self.header_aliases,
        )


def _weighted(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), list(shares.values()))[0]


def _safe_aliases(catalogue: dict[str, DatasetSpec]) -> list[tuple[str, str]]:
    """(column, Chinese alias) pairs that every dataset holding the column accepts."""
    accepted: dict[str, set[str] | None] = {}
    for dataset_id in SCHOOL_DATASETS:
        for column in catalogue[dataset_id].columns:
            chinese = {alias for alias in column.aliases if not alias.isascii()}
            known = accepted.get(column.column_name)
            accepted[column.column_name] = chinese if known is None else known & chinese
    return sorted((name, alias) for name, aliases in accepted.items() for alias in aliases or ())


def national_schools(
    seed: int, count: int, geography: tuple[Province, ...] | None = None
) -> Iterator[NationalSchool]:
    """The ``count`` schools, province by province and city by city, drawn one at a time."""
    geography = geography or national_geography(seed)
    aliases = _safe_aliases(load_datasets())
    index = 0
    for province, city, city_schools in school_allocation(seed, count, geography):
        for number in range(1, city_schools + 1):
            yield _draw_school(seed, index, number, province, city, aliases)
            index += 1


def _draw_school(
    seed: int,
    index: int,
    number: int,
    province: Province,
    city: City,
    aliases: list[tuple[str, str]],
) -> NationalSchool:
    code = f"9{province.code}{index:07d}"
    rng = _rng(seed, "national-school", code)
    school_type = _weighted(rng, SCHOOL_TYPE_SHARES)
    ownership = PRIVATE if school_type == "private" else PUBLIC
    kind = "示例民办职业学校" if ownership == PRIVATE else "示例职业学校"
    offered = SCHOOL_TYPES[school_type].majors
    # Weighted sampling without replacement: the largest of u ** (1 / weight).
    picked = sorted(offered, key=lambda major: -(rng.random() ** (1 / major.weight)))
    majors = picked[: rng.randint(MAJORS_PER_SCHOOL[0], min(MAJORS_PER_SCHOOL[1], len(offered)))]
    majors.sort(key=lambda major: major.code)
    technician_codes = set(SCHOOL_TYPES[school_type].technician_majors)
    runs_technician = rng.random() < TECHNICIAN_SHARE
    chosen_aliases: tuple[tuple[str, str], ...] = ()
    if rng.random() < ALIAS_SHARE:
        chosen = rng.sample(aliases, rng.randint(1, 2))
        if chosen[0][0] != chosen[-1][0] or len(chosen) == 1:
            chosen_aliases = tuple(chosen)
    return NationalSchool(
        index=index,
        code=code,
        name=f"{city.name}{kind}{number:02d}",
        province=province,
        city=city,
        county=rng.choice(city.counties),
        school_type=school_type,
        ownership=ownership,
        file_format=_weighted(rng, FILE_FORMAT_SHARES),
        header_aliases=chosen_aliases,
        majors=tuple((major, _major_size(rng)) for major in majors),
        technician_majors=tuple(
            (major, _major_size(rng))
            for major in majors
            if runs_technician and major.code in technician_codes
        ),
        honours=tuple(
            column
            for column, share in HONOUR_SHARES.items()
            if rng.random() < share and ownership == PUBLIC
        ),
    )


def _major_size(rng: random.Random) -> int:
    low, high, mode = STUDENTS_PER_MAJOR
    return round(rng.triangular(low, high, mode))


# --------------------------------------------------------------------------------------------
# One school's tables for one year
# --------------------------------------------------------------------------------------------


def school_year_tables(seed: int, year: int, school: NationalSchool) -> dict[str, pl.DataFrame]:
    """Every dataset of one school for one year, as canonical frames (not yet headed)."""
    rng = _rng(seed, year, school.code, "national-year")
    enrollment = _enrollment_frame(rng, year, school)
    students = int(enrollment["enrolled_count"].sum())
    technician = int(enrollment.filter(pl.col("program_type") == "技工")["enrolled_count"].sum())
    demo = school.as_demo_school(students, technician)
    counts = _staff_counts(rng, school, students)
    return {
        "school_profile": _profile_frame(seed, year, school, students),
        "enrollment": enrollment,
        "staff": _staff_table(seed, year, demo, counts),
        "graduates": _graduates_frame(rng, seed, year, school, demo, enrollment),
        "awards": _award_table(
            seed,
            year,
            demo,
            max(students, MIN_CONTEST_SIZE),
            _medals(rng, school, students),
            province=school.province.name,
            city=school.city.name,
        ),
        "survey_responses": _survey_table(seed, year, demo, students, counts.full_time),
        "international": pl.DataFrame([_international_row(seed, year, demo, students)]),
        "service": pl.DataFrame(
            [_service_row(seed, year, demo, students, _service(rng, school, students))]
        ),
        "funding": pl.DataFrame(
            [
                _funding_row(
                    seed, year, demo, students, counts, _funding(rng, seed, year, school, students)
                )
            ],
            schema_overrides={
                "private_subsidy_yuan": pl.Int64,
                "private_subsidy_standard_per_student_yuan": pl.Int64,
            },
        ),
        "industry_partnership": pl.DataFrame(
            [
                _partnership_row(
                    seed,
                    year,
                    demo,
                    students,
                    _partnership(rng, year, school, students, enrollment),
                )
            ]
        ),
    }


def _enrollment_frame(rng: random.Random, year: int, school: NationalSchool) -> pl.DataFrame:
    rows = []
    long_share = LONG_PROGRAM_SHARE.get(year, 0.4)
    low, high, _ = STUDENTS_PER_MAJOR
    for program_type, majors in (("中职", school.majors), ("技工", school.technician_majors)):
        for major, usual in majors:
            enrolled = min(high, max(low, round(usual * _jitter(rng, 0.15))))
            admitted = min(enrolled, round(enrolled / 3 * _jitter(rng, 0.15)))
            long_program = (
                min(admitted, round(admitted * long_share * _jitter(rng, 0.3)))
                if program_type == "中职"
                else None
            )
            rows.append(
                {
                    "school_code": school.code,
                    "major_code": major.code,
                    "major_name": major.name,
                    "program_type": program_type,
                    "admissions_count": admitted,
                    "enrolled_count": enrolled,
                    "long_program_admissions_count": long_program,
                }
            )
    return pl.DataFrame(rows, schema_overrides={"long_program_admissions_count": pl.Int64})


def _profile_frame(seed: int, year: int, school: NationalSchool, students: int) -> pl.DataFrame:
    # Campus, buildings and books change slowly: drawn once per school, from its usual size.
    fixed = _rng(seed, school.code, "national-profile")
    usual = school.usual_students
    land = max(12_000, round(usual * fixed.uniform(40, 80)))
    building = round(land * fixed.uniform(0.45, 0.9))
    books = max(20_000, round(usual * fixed.uniform(25, 45)))
    rng = _rng(seed, year, school.code, "national-profile")
    growth = 1 + 0.05 * (year - DEFAULT_YEARS[0])
    equipment_factor = SCHOOL_TYPES[school.school_type].equipment
    return pl.DataFrame(
        {
            "school_code": [school.code],
            "school_name": [school.name],
            "land_area_m2": [land],
            "building_area_m2": [building],
            "equipment_value_yuan": [
                _hundreds(students * 9000 * equipment_factor * growth * _jitter(rng, 0.25))
            ],
            "paper_books_count": [books],
            "ebooks_count": [round(students * rng.uniform(20, 80))],
            **{column: [YES if column in school.honours else NO] for column in HONOUR_FIGURES},
        }
    )


def _staff_counts(rng: random.Random, school: NationalSchool, students: int) -> _StaffCounts:
    kind = SCHOOL_TYPES[school.school_type]
    uniform = rng.uniform
    staff = max(6, round(students / STUDENTS_PER_STAFF * kind.staff * _jitter(rng, 0.1)))
    full_time = max(1, round(staff * uniform(0.75, 0.85)))
    public = school.ownership == PUBLIC
    postgrad = min(full_time, round(full_time * 0.12 * kind.postgrad * _jitter(rng, 0.3)))
    bachelor_plus = max(postgrad, min(full_time, round(full_time * uniform(0.85, 0.97))))
    return _StaffCounts(
        staff=staff,
        full_time=full_time,
        full_time_established=round(full_time * uniform(0.75, 0.95)) if public else 0,
        other_established=round((staff - full_time) * uniform(0.5, 0.9)) if public else 0,
        postgrad=postgrad,
        bachelor_plus=bachelor_plus,
        senior=min(full_time, round(full_time * 0.28 * kind.senior * _jitter(rng, 0.2))),
    )


def _graduates_frame(
    rng: random.Random,
    seed: int,
    year: int,
    school: NationalSchool,
    demo: DemoSchool,
    enrollment: pl.DataFrame,
) -> pl.DataFrame:
    kind = SCHOOL_TYPES[school.school_type]
    students = demo.secondary_size + demo.technician_size
    graduates = max(1, round(students / 3 * _jitter(rng, 0.1)))
    shares = dict(kind.destinations, **{ADVANCED_TECHNICIAN: demo.technician_size / students})
    drawn = rng.choices(DESTINATIONS, [shares[name] for name in DESTINATIONS], k=graduates)
    destination_counts = [drawn.count(name) for name in DESTINATIONS]
    direct = destination_counts[DESTINATIONS.index(DIRECT)]
    exam = destination_counts[DESTINATIONS.index(EXAM_TRACK)]
    matched = round(direct * (1 - min(0.9, kind.mismatch * _jitter(rng, 0.3))))
    undergrad = min(exam, round(exam * 0.35 * kind.undergrad * _jitter(rng, 0.2)))
    mean = 4000 * school.province.wealth * kind.income
    incomes = [
        round(min(max(mean * rng.lognormvariate(0, 0.22), 1900), 15000) / 100) * 100
        for _ in range(direct)
    ]
    return _graduate_table(
        seed, year, demo, destination_counts, matched, undergrad, incomes, enrollment
    )


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _medals(rng: random.Random, school: NationalSchool, students: int) -> list[int]:
    strength = CONTEST_STRENGTH[school.school_type]
    return [
        _poisson(rng, rate * students / 1000 * strength)
        for rate in MEDALS_PER_THOUSAND[: len(MEDALS)]
    ]


def _service(rng: random.Random, school: NationalSchool, students: int) -> ServiceCounts:
    strength = SERVICE_STRENGTH[school.school_type]
    return ServiceCounts(
        programmes=_scaled(rng, 30, students, strength),
        person_times=_scaled(rng, 7000, students, strength),
        projects=_scaled(rng, 6, students, strength),
        innovations=_scaled(rng, 4, students, strength),
        east_west=rng.random() < 0.15,
    )


def _funding(
    rng: random.Random, seed: int, year: int, school: NationalSchool, students: int
) -> FundingBasis:
    # Standards are the province's: drawn once per province, growing 3% a year.
    province = _rng(seed, "national-funding", school.province.code)
    growth = 1.03 ** (year - DEFAULT_YEARS[0])
    wealth = school.province.wealth
    standard = _hundreds(province.uniform(4000, 8000) * wealth * growth)
    subsidy_standard = _hundreds(province.uniform(3000, 6000) * wealth * growth)
    budget_per_student = province.uniform(15_000, 25_000) * wealth * growth
    private = school.ownership == PRIVATE
    subsidy = int(subsidy_standard * students * 0.8) if private else None
    fiscal = (
        subsidy
        if subsidy is not None
        else round(budget_per_student * students * _jitter(rng, 0.15))
    )
    return FundingBasis(
        fiscal_appropriation=fiscal,
        private_subsidy=subsidy,
        standard_per_student=standard,
        subsidy_standard_per_student=subsidy_standard,
        below_floor=rng.random() < (0.5 if private else 0.08),
    )


def _partnership(
    rng: random.Random, year: int, school: NationalSchool, students: int, enrollment: pl.DataFrame
) -> dict[str, int]:
    strength = SERVICE_STRENGTH[school.school_type]
    public = school.ownership == PUBLIC

    def drawn(base: float, only_public: bool = False) -> int:
        value = _scaled(rng, base, students, strength)
        return value if public or not only_public else 0

    admitted = int(enrollment.filter(pl.col("program_type") == "中职")["admissions_count"].sum())
    plan = round(admitted * _jitter(rng, 0.03) + admitted * 0.03)
    long_share = LONG_PROGRAM_SHARE.get(year, 0.4)
    values = (
        drawn(4),
        drawn(3),
        drawn(0.6, only_public=True),
        drawn(5, only_public=True),
        drawn(2, only_public=True),
        drawn(1.5, only_public=True),
        plan,
        min(plan, round(plan * long_share * _jitter(rng, 0.3))),
    )
    return dict(zip(PARTNERSHIP_GIVEN, values, strict=True))


# --------------------------------------------------------------------------------------------
# Defects and messy files
# --------------------------------------------------------------------------------------------


def applicable_defects(dataset: DatasetSpec) -> tuple[str, ...]:
    """The defects a dataset's files can carry (every one has empty, key and code defects)."""
    defects = ["empty", "missing_column", "duplicate_key", "school_code_mismatch"]
    if _range_columns(dataset):
        defects.append("range")
    if _numeric_columns(dataset) or _boolean_columns(dataset):
        defects.append("type")
    if any(column.allowed_values for column in dataset.columns):
        defects.append("enum")
    return tuple(defects)


def _numeric_columns(dataset: DatasetSpec) -> list[ColumnSpec]:
    return [column for column in dataset.columns if column.data_type in ("integer", "number")]


def _range_columns(dataset: DatasetSpec) -> list[ColumnSpec]:
    return [column for column in _numeric_columns(dataset) if column.min_value is not None]


def _boolean_columns(dataset: DatasetSpec) -> list[ColumnSpec]:
    return [column for column in dataset.columns if column.data_type == "boolean"]


def _set_first(frame: pl.DataFrame, name: str, value: object, as_text: bool) -> pl.DataFrame:
    """Put ``value`` into the first row of column ``name`` (as text when ``as_text``)."""
    column = pl.col(name).cast(pl.Utf8) if as_text else pl.col(name)
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(value)).otherwise(column).alias(name)
    )


def _first_filled(frame: pl.DataFrame, columns: list[ColumnSpec]) -> str:
    """The first of the columns with a value in the frame's first row."""
    for column in columns:
        if frame.get_column(column.column_name)[0] is not None:
            return column.column_name
    return columns[0].column_name


def _break(frame: pl.DataFrame, dataset: DatasetSpec, defect: str, other_code: str) -> pl.DataFrame:
    """The canonical frame with the defect (missing_column is done on the headed frame)."""
    if defect == "empty":
        return frame.clear()
    if defect == "duplicate_key":
        return pl.concat([frame, frame.head(1)], how="vertical")
    if defect == "school_code_mismatch":
        return frame.with_columns(pl.lit(other_code).alias("school_code"))
    if defect == "range":
        return _set_first(frame, _first_filled(frame, _range_columns(dataset)), -1, False)
    if defect == "type":
        numeric = _numeric_columns(dataset)
        if numeric:
            return _set_first(frame, _first_filled(frame, numeric), "约300", True)
        return _set_first(frame, _boolean_columns(dataset)[0].column_name, "也许", True)
    if defect == "enum":
        column = next(column for column in dataset.columns if column.allowed_values)
        return _set_first(frame, column.column_name, "示例错误值", True)
    return frame


def _with_total_row(frame: pl.DataFrame) -> pl.DataFrame:
    """The enrolment frame with a 合计 row that sums its counts, as schools like to add."""
    counts = ("admissions_count", "enrolled_count", "long_program_admissions_count")
    total = frame.select(
        pl.lit(frame.item(0, "school_code")).alias("school_code"),
        pl.lit("合计").alias("major_code"),
        *(pl.col(name).sum() for name in counts),
    )
    return pl.concat([frame, total], how="diagonal_relaxed").select(frame.columns)


def _encode(
    school: NationalSchool, year: int, dataset: DatasetSpec, frame: pl.DataFrame, defect: str
) -> tuple[str, bytes]:
    headed = _with_headers(frame, dataset, school.header_aliases)
    if defect == "missing_column":
        required = [c for c in dataset.columns if c.is_required and c.column_name != "school_code"]
        position = dataset.column_names.index(required[0].column_name)
        headed = headed.drop(headed.columns[position])
    if school.file_format == XLSX:
        title = f"{year}年{school.name}{dataset.name_zh}"
        key = upload_key(year, school.code, dataset.dataset_id, "xlsx")
        return key, _xlsx_bytes(headed, title, dataset.name_zh, year)
    key = upload_key(year, school.code, dataset.dataset_id, "csv")
    return key, _csv_bytes(headed, school.file_format)


# --------------------------------------------------------------------------------------------
# Writing the bucket folder
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NationalSummary:
    """What a run of the national generator wrote."""

    schools: int
    years: tuple[int, ...]
    provinces: int
    cities: int
    files: int
    bad_files: int
    data_rows: int
    bytes_written: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        """Files written per second of the run."""
        return self.files / self.seconds if self.seconds else 0.0


def _write_file(root: Path, key: str, data: bytes) -> None:
    """Write under a temporary name, then rename (LocalStore skips .tmp- names)."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _StreamedCsv:
    """A UTF-8-with-BOM CSV written row by row under a temporary name, renamed when closed."""

    def __init__(self, root: Path, key: str, header: Sequence[str]) -> None:
        self.path = root / key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.path.with_name(f".tmp-{self.path.name}")
        self.stream = self.temporary.open("w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.stream, lineterminator="\n")
        self.writer.writerow(header)
        self.rows = 0

    def write(self, row: Sequence[object]) -> None:
        self.writer.writerow(row)
        self.rows += 1

    def close(self) -> int:
        self.stream.close()
        os.replace(self.temporary, self.path)
        return self.path.stat().st_size


def write_national_bucket(
    out: str | Path,
    schools: int = DEFAULT_SCHOOLS,
    seed: int = 2023,
    years: Sequence[int] = DEFAULT_YEARS,
    bad_share: float = BAD_SHARE,
    progress: Callable[[int, int], None] | None = None,
) -> NationalSummary:
    """Write the bureau's files and every school's uploads into the folder ``out``.

    Streamed: the registry is written a row at a time, then each school's files for every
    year are built, written and dropped before the next school. ``progress(done, total)``
    is called after each school.
    """
    started = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    years = tuple(years)
    catalogue = load_datasets()
    geography = national_geography(seed)
    allocation = school_allocation(seed, schools, geography)
    files = rows = size = bad = 0
    # The bureau's files first: a registry of every school, a reference row per city.
    registry_spec = catalogue["school_registry"]
    registries = {
        year: _StreamedCsv(
            root,
            upload_key(year, CITY_SUBMITTER, "school_registry", "csv"),
            [column.header_zh for column in registry_spec.columns],
        )
        for year in years
    }
    for school in national_schools(seed, schools, geography):
        values = {
            "school_code": school.code,
            "school_name": school.name,
            "province_name": school.province.name,
            "city_name": school.city.name,
            "county_name": school.county,
            "ownership": school.ownership,
            "school_type": SCHOOL_TYPES[school.school_type].registry_type,
        }
        for registry in registries.values():
            registry.write([values[name] for name in registry_spec.column_names])
    manifest = _StreamedCsv(root, MANIFEST_KEY, MANIFEST_COLUMNS)
    for year, registry in registries.items():
        size += registry.close()
        files += 1
        rows += registry.rows
        key = upload_key(year, CITY_SUBMITTER, "school_registry", "csv")
        manifest.write(
            [key, year, CITY_SUBMITTER, "", "", "school_registry", CSV_UTF8_BOM]
            + [registry.rows, "", "", ""]
        )
        reference = _city_reference(root, year, allocation, catalogue["city_reference"], seed)
        size += reference.close()
        files += 1
        rows += reference.rows
        key = upload_key(year, CITY_SUBMITTER, "city_reference", "csv")
        manifest.write(
            [key, year, CITY_SUBMITTER, "", "", "city_reference", CSV_UTF8_BOM]
            + [reference.rows, "", "", ""]
        )
    # Then the schools, one at a time.
    for done, school in enumerate(national_schools(seed, schools, geography), start=1):
        for year in years:
            tables = school_year_tables(seed, year, school)
            for dataset_id in SCHOOL_DATASETS:
                dataset = catalogue[dataset_id]
                rng = _rng(seed, year, school.code, dataset_id, "national-defect")
                defect = mess = ""
                frame = tables[dataset_id]
                if rng.random() < bad_share:
                    defect = rng.choice(applicable_defects(dataset))
                    other = f"9{school.province.code}{school.index + 1:07d}"
                    frame = _break(frame, dataset, defect, other)
                elif dataset_id == "enrollment" and rng.random() < TOTAL_ROW_SHARE:
                    mess = TOTAL_ROW
                    frame = _with_total_row(frame)
                key, data = _encode(school, year, dataset, frame, defect)
                _write_file(root, key, data)
                files += 1
                bad += bool(defect)
                rows += frame.height
                size += len(data)
                manifest.write(
                    [key, year, school.code, school.province.name, school.city.name]
                    + [dataset_id, school.file_format, frame.height, defect]
                    + [EXPECTED_RULES.get(defect, ""), mess]
                )
        if done % GARBAGE_EVERY_SCHOOLS == 0:
            # XlsxWriter's workbooks are reference cycles that only the full collector
            # frees; left to Python's thresholds they pile up with the number of schools.
            gc.collect()
        if progress is not None:
            progress(done, schools)
    manifest.close()
    return NationalSummary(
        schools=schools,
        years=years,
        provinces=len({province.code for province, _, n in allocation if n}),
        cities=sum(1 for _, _, n in allocation if n),
        files=files,
        bad_files=bad,
        data_rows=rows,
        bytes_written=size,
        seconds=time.perf_counter() - started,
    )


def _city_reference(
    root: Path,
    year: int,
    allocation: list[tuple[Province, City, int]],
    spec: DatasetSpec,
    seed: int,
) -> _StreamedCsv:
    """The bureau's reference figures of every city with a school, for one year."""
    reference = _StreamedCsv(
        root,
        upload_key(year, CITY_SUBMITTER, "city_reference", "csv"),
        [column.header_zh for column in spec.columns],
    )
    for province, city, city_schools in allocation:
        if not city_schools:
            continue
        rng = _rng(seed, year, city.name, "national-reference")
        population = round(city.population * (1 + 0.004 * (year - DEFAULT_YEARS[0])))
        values = {
            "city_name": city.name,
            "resident_population_count": population,
            # Sized to the schools this run gives the city, so the vocational share of
            # upper-secondary admissions is plausible (about 35-45%) at any N.
            "general_high_school_admissions_count": round(
                city_schools * TYPICAL_ADMISSIONS * rng.uniform(1.2, 1.8)
            ),
            "public_education_budget_yuan": _hundreds(
                population * province.wealth * rng.uniform(2000, 3000)
            ),
        }
        reference.write([values[name] for name in spec.column_names])
    return reference


def read_manifest(root: str | Path) -> pl.DataFrame:
    """The manifest a run wrote: one row per file, its defect and the rule expected."""
    return pl.read_csv(
        io.BytesIO((Path(root) / MANIFEST_KEY).read_bytes()),
        schema_overrides={
            "submitter": pl.Utf8,
            "defect": pl.Utf8,
            "expected_rule": pl.Utf8,
            "mess": pl.Utf8,
        },
    )
