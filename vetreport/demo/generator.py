"""Deterministic synthetic uploads for Shaoxing (绍兴市, 浙江省), for demos and tests.

What belongs here: making the bytes of every file the bureau and the schools would upload for
a made-up but realistic Shaoxing — the school registry and city reference data of the bureau,
and each school's profile, enrolment, staff roster and graduate destinations, plus the
appendix datasets (awards, satisfaction survey, international, service, funding, industry
partnership) — for the years 2021 to 2023. Nothing here reads or writes the bucket; the
caller puts the returned bytes under the returned keys.

The files are calibrated: the city totals the pipeline computes from them equal the figures of
the 2023 Shaoxing quality report. Those figures are data, kept in ``demo_targets.csv`` beside
this module (the tests read the same file). Each city total is spread over the schools by
weights (school size, school type) with largest-remainder rounding, so sums are exact, and the
per-person rows (staff, graduates) are built from the per-school counts. Where the report
states an appendix quantity (11/7/3 national medals, 544 training programmes and 117,946
person-times, 105 enterprise projects, 65 industry colleges, 29,860.31 元 per student, the
80% private subsidy, the 45.17% long-programme plan…) it is a target too; the other appendix
figures (survey answers, international work, incomes…) are plausible draws from seeded
generators.

The 17 schools: 11 carry names the report mentions, the rest are plainly synthetic
(…示例…). Major codes follow the style of the 2021 national catalogue but are illustrative.
Schools write files the way schools do: UTF-8 CSV with a BOM, GBK CSV with CRLF line ends, or
an XLSX workbook with a merged title row above the header row. The same seed gives the same
bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

import polars as pl
import xlsxwriter

from schemas.catalogue import DatasetSpec, load_datasets, read_csv_rows
from vetreport.bucket.keys import CITY_SUBMITTER, upload_key
from vetreport.bucket.store import KeyNotFound, open_store

PROVINCE = "浙江省"
CITY = "绍兴市"
APPENDIX_DATASETS = (
    "awards",
    "survey_responses",
    "international",
    "service",
    "funding",
    "industry_partnership",
)
SCHOOL_DATASETS = ("school_profile", "enrollment", "staff", "graduates", *APPENDIX_DATASETS)
CITY_DATASETS = ("school_registry", "city_reference")
TARGETS_FILE = "targets.csv"
SCHOOL_TARGETS_FILE = "school_targets.csv"

CSV_UTF8_BOM = "csv-utf8-bom"
CSV_GBK = "csv-gbk"
XLSX = "xlsx"

YES = "是"
NO = "否"

DIRECT = "直接就业"
EXAM_TRACK = "单考单招"
FIVE_YEAR = "五年制转段"
INDEPENDENT = "自主招生"
RECOMMENDED = "保送"
ADVANCED_TECHNICIAN = "高级工技师段"
ENLISTED = "参军入伍"
SELF_EMPLOYED = "自主创业"
UNEMPLOYED = "待就业"
DESTINATIONS = (
    DIRECT,
    EXAM_TRACK,
    FIVE_YEAR,
    INDEPENDENT,
    RECOMMENDED,
    ADVANCED_TECHNICIAN,
    ENLISTED,
    SELF_EMPLOYED,
    UNEMPLOYED,
)
# How "other further study" splits; the report gives only the sum.
OTHER_FURTHER_STUDY_SHARES = {
    FIVE_YEAR: 0.55,
    INDEPENDENT: 0.24,
    RECOMMENDED: 0.04,
    ADVANCED_TECHNICIAN: 0.17,
}
# Share of enlisted among graduates employed neither directly nor by further study.
ENLISTED_SHARE = 0.6
# Share of secondary vocational admissions into long (5-year, secondary-undergraduate) programmes.
LONG_PROGRAM_SHARE = {2021: 0.30, 2022: 0.37, 2023: 0.45}

EDUCATION_LEVELS = ("博士研究生", "硕士研究生", "大学本科", "大学专科", "高中及以下")
TITLES = ("正高级", "副高级", "中级", "初级", "未定级")


@dataclass(frozen=True)
class Major:
    """A major a school offers: catalogue-style code, name and relative size."""

    code: str
    name: str
    weight: float


@dataclass(frozen=True)
class SchoolType:
    """What a kind of school looks like: majors, graduate destinations and relative factors.

    ``destinations`` are relative propensities; the other numbers multiply a school's share of
    a city total (``mismatch``: of direct employment outside the field of study).
    """

    majors: tuple[Major, ...]
    technician_majors: tuple[str, ...]
    destinations: dict[str, float]
    mismatch: float
    income: float
    equipment: float
    staff: float
    postgrad: float
    senior: float
    undergrad: float
    registry_type: str  # what the registry's 办学类型 says of such a school


@dataclass(frozen=True)
class DemoSchool:
    """One synthetic school: identity, type, size and the way it writes its files."""

    code: str
    name: str
    county: str
    ownership: str
    school_type: str
    secondary_size: int
    technician_size: int
    file_format: str
    header_aliases: tuple[tuple[str, str], ...] = ()


def _destinations(*shares: float) -> dict[str, float]:
    """Propensities for every destination but 高级工技师段 (set by technician share)."""
    names = [name for name in DESTINATIONS if name != ADVANCED_TECHNICIAN]
    return dict(zip(names, shares, strict=True))


def _read_demo_csv(name: str) -> list[dict[str, str]]:
    """Rows of one of the demo's CSV files, kept beside this module."""
    return read_csv_rows(Path(__file__).with_name(name))


def _number(text: str) -> float:
    """A figure of the demo's CSV files: whole numbers stay int, as they were written."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _load_school_types() -> dict[str, SchoolType]:
    """school_types.csv and majors.csv: what each kind of school looks like."""
    majors: dict[str, list[Major]] = {}
    for row in _read_demo_csv("majors.csv"):
        majors.setdefault(row["school_type"], []).append(
            Major(row["major_code"], row["major_name"], _number(row["weight"]))
        )
    types = {}
    for row in _read_demo_csv("school_types.csv"):
        shares = [_number(value) for name, value in row.items() if name.startswith("destination:")]
        types[row["school_type"]] = SchoolType(
            majors=tuple(majors[row["school_type"]]),
            technician_majors=tuple(filter(None, row["technician_major_codes"].split("|"))),
            destinations=_destinations(*shares),
            **{
                name: _number(row[name])
                for name in ("mismatch", "income", "equipment", "staff")
                + ("postgrad", "senior", "undergrad")
            },
            registry_type=row["registry_school_type"],
        )
    return types


def _load_schools() -> tuple[DemoSchool, ...]:
    """schools.csv: the 17 schools, their size and the way each writes its files."""
    return tuple(
        DemoSchool(
            code=row["school_code"],
            name=row["school_name"],
            county=row["county_name"],
            ownership=row["ownership"],
            school_type=row["school_type"],
            secondary_size=int(row["secondary_student_count"]),
            technician_size=int(row["technician_student_count"]),
            file_format=row["file_format"],
            header_aliases=tuple(
                tuple(pair.split("=", 1))  # type: ignore[misc]
                for pair in row["header_aliases"].split("|")
                if pair
            ),
        )
        for row in _read_demo_csv("schools.csv")
    )


def _load_honour_order() -> dict[str, tuple[str, ...]]:
    """honours.csv: which schools hold each honour, in the order the targets take them."""
    order: dict[str, list[tuple[int, str]]] = {}
    for row in _read_demo_csv("honours.csv"):
        order.setdefault(row["honour_column"], []).append((int(row["rank"]), row["school_name"]))
    return {honour: tuple(name for _, name in sorted(ranked)) for honour, ranked in order.items()}


SCHOOL_TYPES: dict[str, SchoolType] = _load_school_types()
SCHOOLS: tuple[DemoSchool, ...] = _load_schools()
# Honours: the targets say how many schools hold each; they go to the first names in order.
HONOUR_ORDER: dict[str, tuple[str, ...]] = _load_honour_order()
HONOUR_FIGURES = {
    "is_national_demo_school": "national_demo_schools",
    "is_provincial_demo_school": "provincial_demo_schools",
    "is_provincial_famous_school": "provincial_famous_schools",
    "is_provincial_high_level_school": "provincial_high_level_schools",
}

Targets = dict[str, Decimal]


def _load_school_targets() -> dict[tuple[int, str, str], Decimal]:
    """school_targets.csv: figures the report states for one school, by year and school name."""
    return {
        (int(row["year"]), row["school_name"], row["figure"]): Decimal(row["value"])
        for row in _read_demo_csv(SCHOOL_TARGETS_FILE)
    }


SCHOOL_TARGETS = _load_school_targets()


def _school_target(year: int, school: DemoSchool, figure: str) -> int | None:
    """A whole-number figure the report states for this school and year, if any."""
    value = SCHOOL_TARGETS.get((year, school.name, figure))
    return None if value is None else int(value)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def build_demo_uploads(
    seed: int = 2023, years: tuple[int, ...] = (2021, 2022, 2023)
) -> dict[str, bytes]:
    """Return {bucket key: file bytes} for every demo upload.

    Keys are ``uploads/{year}/{school_code}/{dataset}.{csv|xlsx}`` for the four school
    datasets and ``uploads/{year}/_city/{school_registry|city_reference}.csv`` for the
    bureau's files. The same seed and years give byte-identical output.
    """
    all_targets = _load_targets()
    catalogue = load_datasets()
    uploads: dict[str, bytes] = {}
    for year in years:
        if year not in all_targets:
            raise ValueError(f"{TARGETS_FILE} has no targets for {year}")
        uploads.update(_year_uploads(seed, year, all_targets[year], catalogue))
    return dict(sorted(uploads.items()))


def _year_uploads(
    seed: int, year: int, targets: Targets, catalogue: dict[str, DatasetSpec]
) -> dict[str, bytes]:
    enrollment = _enrollment_tables(seed, year, targets)
    students = {code: int(frame["enrolled_count"].sum()) for code, frame in enrollment.items()}
    tables: dict[str, dict[str, pl.DataFrame]] = {
        "school_profile": _profile_tables(seed, year, targets, students),
        "enrollment": enrollment,
        "staff": _staff_tables(seed, year, targets, students),
        "graduates": _graduate_tables(seed, year, targets, students, enrollment),
        **_appendix_tables(seed, year, targets, students, enrollment),
    }
    tables["enrollment"] = {
        code: _with_cohort_entrants(seed, year, frame, tables["graduates"][code].height)
        for code, frame in enrollment.items()
    }
    uploads: dict[str, bytes] = {}
    for school in SCHOOLS:
        for dataset_id in SCHOOL_DATASETS:
            key, data = _encode_school_file(
                school, year, catalogue[dataset_id], tables[dataset_id][school.code]
            )
            uploads[key] = data
    city_tables = {
        "school_registry": _registry_table(),
        "city_reference": _city_reference_table(targets),
    }
    for dataset_id in CITY_DATASETS:
        frame = _with_headers(city_tables[dataset_id], catalogue[dataset_id], ())
        key = upload_key(year, CITY_SUBMITTER, dataset_id, "csv")
        uploads[key] = _csv_bytes(frame, CSV_UTF8_BOM)
    return uploads


# --------------------------------------------------------------------------------------------
# Targets and deterministic helpers
# --------------------------------------------------------------------------------------------


def _load_targets() -> dict[int, Targets]:
    text = resources.files("vetreport.demo").joinpath(TARGETS_FILE).read_text(encoding="utf-8")
    targets: dict[int, Targets] = {}
    for row in csv.DictReader(io.StringIO(text)):
        targets.setdefault(int(row["year"]), {})[row["figure"]] = Decimal(row["value"])
    return targets


def _count(targets: Targets, figure: str) -> int:
    value = targets[figure]
    if value != value.to_integral_value():
        raise ValueError(f"{TARGETS_FILE}: {figure} must be a whole number, not {value}")
    return int(value)


def _rng(*parts: object) -> random.Random:
    """A generator seeded from the parts (string seeds are hashed with SHA-512: stable)."""
    return random.Random(":".join(str(part) for part in parts))


def _jitter(rng: random.Random, spread: float) -> float:
    return 1.0 + rng.uniform(-spread, spread)


def _apportion(
    total: int, weights: Sequence[float], caps: Sequence[int] | None = None
) -> list[int]:
    """Split ``total`` into whole numbers proportional to ``weights``, each at most its cap.

    Largest-remainder rounding, so the parts sum to ``total`` exactly. Cells whose quota
    would pass their cap are filled to the cap and the rest is shared again; if only
    zero-weight cells have room left, they share it equally.
    """
    count = len(weights)
    limits = list(caps) if caps is not None else [total] * count
    if total < 0 or total > sum(limits):
        raise ValueError(f"cannot split {total} within caps summing to {sum(limits)}")
    result = [0] * count
    remaining = total
    weight = {i: float(weights[i]) for i in range(count) if weights[i] > 0 and limits[i] > 0}
    while remaining > 0:
        if not weight:
            weight = {i: 1.0 for i in range(count) if result[i] < limits[i]}
        weight_sum = sum(weight.values())
        quotas = {i: remaining * w / weight_sum for i, w in weight.items()}
        full = [i for i, quota in quotas.items() if result[i] + quota >= limits[i]]
        if full:
            for i in full:
                remaining -= limits[i] - result[i]
                result[i] = limits[i]
                del weight[i]
            continue
        floors = {i: int(quota) for i, quota in quotas.items()}
        for i, floor in floors.items():
            result[i] += floor
        left = remaining - sum(floors.values())
        by_remainder = sorted(quotas, key=lambda i: (floors[i] - quotas[i], i))
        for i in by_remainder[:left]:
            result[i] += 1
        remaining = 0
    if sum(result) != total:  # pragma: no cover - guards against floating-point surprises
        raise RuntimeError(f"apportioning {total} gave {sum(result)}")
    return result


def _fit_matrix(
    seed_matrix: list[list[float]], row_totals: Sequence[int], column_totals: Sequence[int]
) -> list[list[float]]:
    """Iterative proportional fitting: scale rows and columns until both margins fit."""
    matrix = [list(row) for row in seed_matrix]
    for _ in range(200):
        for row, total in zip(matrix, row_totals, strict=True):
            row_sum = sum(row)
            if row_sum > 0:
                row[:] = [value * total / row_sum for value in row]
        for column, total in enumerate(column_totals):
            column_sum = sum(row[column] for row in matrix)
            if column_sum > 0:
                for row in matrix:
                    row[column] *= total / column_sum
    return matrix


def _integer_matrix(
    fitted: list[list[float]], row_totals: Sequence[int], column_totals: Sequence[int]
) -> list[list[int]]:
    """Round a fitted matrix to whole numbers keeping both margins exact.

    Columns are apportioned one at a time within each row's remaining room, smallest first;
    the largest column takes what is left of every row.
    """
    room = list(row_totals)
    result = [[0] * len(column_totals) for _ in row_totals]
    order = sorted(range(len(column_totals)), key=lambda j: (column_totals[j], j))
    for column in order[:-1]:
        parts = _apportion(column_totals[column], [row[column] for row in fitted], room)
        for i, part in enumerate(parts):
            result[i][column] = part
            room[i] -= part
    for i, left in enumerate(room):
        result[i][order[-1]] = left
    return result


def _pseudonym(prefix: str, used: set[str], *parts: object) -> str:
    """A hash-like id, unique within ``used``; never all digits, never 18 characters."""
    salt = 0
    while True:
        digest = hashlib.sha256(":".join(map(str, (*parts, salt))).encode()).hexdigest()
        candidate = f"{prefix}{digest[:8]}"
        if candidate not in used:
            used.add(candidate)
            return candidate
        salt += 1


def _school_weights(
    seed: int, year: int, purpose: str, base: Sequence[float], factor: str | None = None
) -> list[float]:
    """Per-school weights: ``base`` times the school type's ``factor``, jittered by ±6%."""
    return [
        size
        * (getattr(_type(school), factor) if factor else 1.0)
        * _jitter(_rng(seed, year, school.code, purpose), 0.06)
        for school, size in zip(SCHOOLS, base, strict=True)
    ]


def _public_only(values: Sequence[int]) -> list[int]:
    """Zero for private schools, which have no established (在编) posts."""
    return [
        value if school.ownership == "公办" else 0
        for school, value in zip(SCHOOLS, values, strict=True)
    ]


def _type(school: DemoSchool) -> SchoolType:
    return SCHOOL_TYPES[school.school_type]


# --------------------------------------------------------------------------------------------
# Bureau files
# --------------------------------------------------------------------------------------------


def _registry_table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "school_code": [school.code for school in SCHOOLS],
            "school_name": [school.name for school in SCHOOLS],
            "province_name": [PROVINCE] * len(SCHOOLS),
            "city_name": [CITY] * len(SCHOOLS),
            "county_name": [school.county for school in SCHOOLS],
            "ownership": [school.ownership for school in SCHOOLS],
            "school_type": [SCHOOL_TYPES[school.school_type].registry_type for school in SCHOOLS],
        }
    )


def _city_reference_table(targets: Targets) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "city_name": [CITY],
            "resident_population_count": [_count(targets, "resident_population")],
            "general_high_school_admissions_count": [
                _count(targets, "general_high_school_admissions")
            ],
            "public_education_budget_yuan": [_count(targets, "public_education_budget_yuan")],
        }
    )


# --------------------------------------------------------------------------------------------
# Enrolment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    """One enrolment row before counts: school, major and programme type."""

    school: DemoSchool
    major: Major
    program_type: str


def _enrollment_cells(seed: int, year: int) -> tuple[list[_Cell], list[float]]:
    """All enrolment rows (secondary, then technician majors) with their relative sizes."""
    cells: list[_Cell] = []
    weights: list[float] = []
    for school in SCHOOLS:
        rng = _rng(seed, year, school.code, "majors")
        technician = set(_type(school).technician_majors) if school.technician_size else set()
        for program_type in ("中职", "技工"):
            for major in _type(school).majors:
                if program_type == "中职" or major.code in technician:
                    cells.append(_Cell(school, major, program_type))
                    weights.append(major.weight * _jitter(rng, 0.25))
    return cells, weights


def _enrollment_tables(seed: int, year: int, targets: Targets) -> dict[str, pl.DataFrame]:
    students = _count(targets, "students")
    technician = _count(targets, "students_technician")
    cells, cell_weights = _enrollment_cells(seed, year)
    enrolled = [0] * len(cells)
    for program_type, total, sizes in (
        ("中职", students - technician, [school.secondary_size for school in SCHOOLS]),
        ("技工", technician, [school.technician_size for school in SCHOOLS]),
    ):
        per_school = _apportion(total, _school_weights(seed, year, program_type, sizes))
        for school, school_total in zip(SCHOOLS, per_school, strict=True):
            indexes = [
                i
                for i, cell in enumerate(cells)
                if cell.school == school and cell.program_type == program_type
            ]
            parts = _apportion(school_total, [cell_weights[i] for i in indexes])
            for i, part in zip(indexes, parts, strict=True):
                enrolled[i] = part
    rng = _rng(seed, year, "admissions")
    admissions = _apportion(
        _count(targets, "admissions"),
        [count * _jitter(rng, 0.1) for count in enrolled],
        enrolled,
    )
    long_share = LONG_PROGRAM_SHARE.get(year, 0.4)
    long_program = [
        min(admitted, round(admitted * long_share * _jitter(rng, 0.3)))
        if cell.program_type == "中职"
        else None
        for cell, admitted in zip(cells, admissions, strict=True)
    ]
    frame = pl.DataFrame(
        {
            "school_code": [cell.school.code for cell in cells],
            "major_code": [cell.major.code for cell in cells],
            "major_name": [cell.major.name for cell in cells],
            "program_type": [cell.program_type for cell in cells],
            "admissions_count": admissions,
            "enrolled_count": enrolled,
            "long_program_admissions_count": long_program,
        },
        schema_overrides={"long_program_admissions_count": pl.Int64},
    )
    return _by_school(frame)


def _with_cohort_entrants(
    seed: int, year: int, frame: pl.DataFrame, graduates: int
) -> pl.DataFrame:
    """The enrolment rows with 本届毕业生入学人数 (cohort entrants).

    The school's graduates over a retention (巩固率) of 95–99%, spread over its rows by
    enrolled students.
    """
    school_code = frame.item(0, "school_code")
    retention = _rng(seed, year, school_code, "retention").uniform(0.95, 0.99)
    entrants = _apportion(round(graduates / retention), frame["enrolled_count"].to_list())
    return frame.with_columns(pl.Series("cohort_entry_count", entrants, dtype=pl.Int64))


# --------------------------------------------------------------------------------------------
# School profile
# --------------------------------------------------------------------------------------------


def _profile_tables(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    sizes = [students[school.code] for school in SCHOOLS]
    # Any total in [T - 0.5, T + 0.5) * students rounds to T; aim a quarter yuan above T.
    equipment_total = _count(targets, "equipment_per_student") * sum(sizes) + sum(sizes) // 4
    # Campus, buildings and library change slowly: their jitter is drawn for one fixed year,
    # so a school's share moves only with its size. Equipment and e-books vary by year.
    land = _apportion(
        _count(targets, "land_area_m2"),
        _school_weights(seed, 2021, "land", [size**0.8 for size in sizes]),
    )
    building = _apportion(
        _count(targets, "building_area_m2"), _school_weights(seed, 2021, "building", land)
    )
    equipment = _apportion(
        equipment_total, _school_weights(seed, year, "equipment", sizes, "equipment")
    )
    books = _apportion(_count(targets, "paper_books"), _school_weights(seed, 2021, "books", sizes))
    ebooks = _apportion(_count(targets, "ebooks"), _school_weights(seed, year, "ebooks", sizes))
    # 实践场所面积: a fifth to a third of the buildings, drawn once per school like them.
    practice = [
        round(area * _rng(seed, school.code, "practice-area").uniform(0.2, 0.33))
        for school, area in zip(SCHOOLS, building, strict=True)
    ]
    frame = pl.DataFrame(
        {
            "school_code": [school.code for school in SCHOOLS],
            "school_name": [school.name for school in SCHOOLS],
            "land_area_m2": land,
            "building_area_m2": building,
            "equipment_value_yuan": equipment,
            "paper_books_count": books,
            "ebooks_count": ebooks,
            **_honour_flags(targets),
            "practice_area_m2": practice,
        }
    )
    return _by_school(frame)


def _honour_flags(targets: Targets) -> dict[str, list[str]]:
    """是/否 per school for each honour: the first schools of HONOUR_ORDER hold it."""
    flags: dict[str, list[str]] = {}
    for column, figure in HONOUR_FIGURES.items():
        order = HONOUR_ORDER[column]
        holders = _count(targets, figure)
        if holders > len(order):
            raise ValueError(f"{column}: {holders} holders wanted, {len(order)} schools listed")
        flags[column] = [YES if school.name in order[:holders] else NO for school in SCHOOLS]
    return flags


# --------------------------------------------------------------------------------------------
# Staff
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StaffCounts:
    """One school's staff counts for one year."""

    staff: int
    full_time: int
    full_time_established: int
    other_established: int
    postgrad: int
    bachelor_plus: int
    senior: int


def _staff_counts(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> list[_StaffCounts]:
    sizes = [students[school.code] for school in SCHOOLS]
    staff = _apportion(
        _count(targets, "staff"), _school_weights(seed, year, "staff", sizes, "staff")
    )
    full_time = _fit_honour_shares(
        year, staff, _apportion(_count(targets, "fulltime_teachers"), staff, staff)
    )
    others = [total - teachers for total, teachers in zip(staff, full_time, strict=True)]
    ft_established = _apportion(
        _count(targets, "fulltime_teachers_established"),
        _public_only(full_time),
        _public_only(full_time),
    )
    other_established = _apportion(
        _count(targets, "staff_established") - sum(ft_established),
        _public_only(others),
        _public_only(others),
    )
    postgrad = _apportion(
        _count(targets, "postgrad"),
        _school_weights(seed, year, "postgrad", full_time, "postgrad"),
        full_time,
    )
    room = [teachers - masters for teachers, masters in zip(full_time, postgrad, strict=True)]
    bachelors = _apportion(_count(targets, "bachelor_plus") - sum(postgrad), room, room)
    senior = _apportion(
        _count(targets, "senior_title"),
        _school_weights(seed, year, "senior", full_time, "senior"),
        full_time,
    )
    return [
        _StaffCounts(*values)
        for values in zip(
            staff,
            full_time,
            ft_established,
            other_established,
            postgrad,
            [p + b for p, b in zip(postgrad, bachelors, strict=True)],
            senior,
            strict=True,
        )
    ]


def _honour_holders(full_time: int, share_pct: Decimal) -> int | None:
    """How many of ``full_time`` teachers give ``share_pct`` rounded half-up, if any count does."""
    step = Decimal(1).scaleb(share_pct.as_tuple().exponent)
    for holders in range(full_time + 1):
        share = (Decimal(holders * 100) / full_time).quantize(step, rounding=ROUND_HALF_UP)
        if share == share_pct:
            return holders
    return None


def _fit_honour_shares(year: int, staff: list[int], full_time: list[int]) -> list[int]:
    """Full-time counts where every school with a 名优教师 share target can print it.

    Not every head count allows a share printed with one decimal (no k/352 rounds to
    19.8%): such a school takes one full-time teacher from the largest other public school
    (the city total stays), until its count does.
    """
    counts = list(full_time)
    for i, school in enumerate(SCHOOLS):
        share = SCHOOL_TARGETS.get((year, school.name, "famous_teacher_share_pct"))
        if share is None:
            continue
        donors = sorted(
            (j for j, other in enumerate(SCHOOLS) if j != i and other.ownership == "公办"),
            key=lambda j: (-counts[j], j),
        )
        for donor in donors[:5]:
            if _honour_holders(counts[i], share) is not None:
                break
            if counts[i] >= staff[i]:
                raise ValueError(f"{school.name}: no full-time count gives {share}%")
            counts[i] += 1
            counts[donor] -= 1
        if _honour_holders(counts[i], share) is None:
            raise ValueError(f"{school.name}: no full-time count gives {share}%")
    return counts


def _shuffled(rng: random.Random, counts: Sequence[tuple[str, int]]) -> list[str]:
    values = [value for value, count in counts for _ in range(count)]
    rng.shuffle(values)
    return values


def _full_time_columns(rng: random.Random, counts: _StaffCounts) -> dict[str, list[str]]:
    """Columns of the full-time teachers: each category count exact, order shuffled."""
    n = counts.full_time
    doctors = round(counts.postgrad * 0.04)
    below = n - counts.bachelor_plus
    full_professors = round(counts.senior * 0.06)
    middle = round((n - counts.senior) * 0.55)
    junior = round((n - counts.senior - middle) * 0.75)
    professional_count = round(n * rng.uniform(0.55, 0.65))
    professional = _shuffled(rng, ((YES, professional_count), (NO, n - professional_count)))
    professional_rows = [i for i, flag in enumerate(professional) if flag == YES]
    # Dual-qualified (双师型) teachers are professional-course teachers.
    dual_rows = set(rng.sample(professional_rows, round(len(professional_rows) * 0.8)))
    return {
        "is_established": _shuffled(
            rng, ((YES, counts.full_time_established), (NO, n - counts.full_time_established))
        ),
        "is_full_time_teacher": [YES] * n,
        "is_professional_course_teacher": professional,
        "is_dual_qualified_teacher": [YES if i in dual_rows else NO for i in range(n)],
        "highest_education": _shuffled(
            rng,
            (
                (EDUCATION_LEVELS[0], doctors),
                (EDUCATION_LEVELS[1], counts.postgrad - doctors),
                (EDUCATION_LEVELS[2], counts.bachelor_plus - counts.postgrad),
                (EDUCATION_LEVELS[3], below - below // 5),
                (EDUCATION_LEVELS[4], below // 5),
            ),
        ),
        "professional_title": _shuffled(
            rng,
            (
                (TITLES[0], full_professors),
                (TITLES[1], counts.senior - full_professors),
                (TITLES[2], middle),
                (TITLES[3], junior),
                (TITLES[4], n - counts.senior - middle - junior),
            ),
        ),
    }


def _other_staff_columns(rng: random.Random, counts: _StaffCounts) -> dict[str, list[str]]:
    """Columns of the staff who are not full-time teachers (administration, support)."""
    n = counts.staff - counts.full_time
    return {
        "is_established": _shuffled(
            rng, ((YES, counts.other_established), (NO, n - counts.other_established))
        ),
        "is_full_time_teacher": [NO] * n,
        "is_professional_course_teacher": [NO] * n,
        "is_dual_qualified_teacher": [NO] * n,
        "highest_education": rng.choices(EDUCATION_LEVELS[1:], (1, 8, 6, 3), k=n),
        "professional_title": rng.choices(TITLES[1:], (1, 4, 4, 6), k=n),
    }


HONOUR_LEVELS = ("国家级", "省级", "市级")


def _honour_columns(
    seed: int, year: int, school: DemoSchool, counts: _StaffCounts
) -> dict[str, list]:
    """名优教师级别 and 获评年份 of every staff member (full-time teachers first, as the rows).

    A school's share and its new honours of the year come from school_targets.csv where the
    report states them; otherwise they are drawn (8–20% of full-time teachers honoured, a
    tenth of them in the year). Staff who are not full-time teachers hold none (无).
    """
    rng = _rng(seed, year, school.code, "teacher-honours")
    n = counts.full_time
    share = SCHOOL_TARGETS.get((year, school.name, "famous_teacher_share_pct"))
    holders = _honour_holders(n, share) if share is not None else None
    if holders is None:
        holders = round(n * rng.uniform(0.08, 0.2))
    new_national = _school_target(year, school, "new_national_famous_teachers")
    new_local = _school_target(year, school, "new_provincial_city_famous_teachers")
    if new_national is None:
        new_national = 1 if rng.random() < 0.15 and holders else 0
    if new_local is None:
        new_local = min(holders - new_national, round(holders * rng.uniform(0.05, 0.15)))
    national = max(new_national, round(holders * 0.05))
    if national + new_local > holders:
        raise ValueError(f"{school.name}: {holders} honoured teachers cannot hold the new ones")
    levels: list[str] = []
    years: list[int | None] = []
    for index in range(holders):
        if index < national:
            levels.append(HONOUR_LEVELS[0])
            years.append(year if index < new_national else year - rng.randint(1, 10))
        else:
            levels.append(HONOUR_LEVELS[1] if rng.random() < 0.35 else HONOUR_LEVELS[2])
            is_new = index - national < new_local
            years.append(year if is_new else year - rng.randint(1, 10))
    order = list(range(n))
    rng.shuffle(order)
    level_column: list[str] = ["无"] * counts.staff
    year_column: list[int | None] = [None] * counts.staff
    for rank, row in enumerate(order[:holders]):
        level_column[row] = levels[rank]
        year_column[row] = years[rank]
    return {"famous_teacher_level": level_column, "famous_teacher_year": year_column}


def _staff_table(seed: int, year: int, school: DemoSchool, counts: _StaffCounts) -> pl.DataFrame:
    rng = _rng(seed, year, school.code, "staff")
    teachers = _full_time_columns(rng, counts)
    others = _other_staff_columns(rng, counts)
    columns = {name: values + others[name] for name, values in teachers.items()}
    columns |= _honour_columns(seed, year, school, counts)
    used: set[str] = set()
    # Index-based ids: the same person keeps the same id from year to year.
    ids = [_pseudonym("T", used, seed, school.code, "staff", i) for i in range(counts.staff)]
    frame = pl.DataFrame(
        {"school_code": [school.code] * counts.staff, "staff_id": ids, **columns},
        schema_overrides={"famous_teacher_year": pl.Int64},
    )
    return frame.sort("staff_id")


def _staff_tables(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    counts = _staff_counts(seed, year, targets, students)
    return {
        school.code: _staff_table(seed, year, school, school_counts)
        for school, school_counts in zip(SCHOOLS, counts, strict=True)
    }


# --------------------------------------------------------------------------------------------
# Graduates
# --------------------------------------------------------------------------------------------


def _destination_totals(targets: Targets) -> list[int]:
    """City totals per destination, in the order of DESTINATIONS."""
    graduates = _count(targets, "graduates")
    employed = _count(targets, "employed_incl_study")
    direct = _count(targets, "direct_employment")
    exam = _count(targets, "exam_track")
    other = _count(targets, "other_further_study")
    otherwise_employed = employed - direct - exam - other
    if otherwise_employed < 0:
        raise ValueError("employed_incl_study is smaller than direct employment + further study")
    split = dict(
        zip(
            OTHER_FURTHER_STUDY_SHARES,
            _apportion(other, list(OTHER_FURTHER_STUDY_SHARES.values())),
            strict=True,
        )
    )
    enlisted = round(otherwise_employed * ENLISTED_SHARE)
    totals = {
        DIRECT: direct,
        EXAM_TRACK: exam,
        **split,
        ENLISTED: enlisted,
        SELF_EMPLOYED: otherwise_employed - enlisted,
        UNEMPLOYED: graduates - employed,
    }
    return [totals[name] for name in DESTINATIONS]


def _destination_matrix(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> list[list[int]]:
    """Graduates per school (rows) and destination (columns), both margins exact."""
    sizes = [students[school.code] for school in SCHOOLS]
    per_school = _apportion(
        _count(targets, "graduates"), _school_weights(seed, year, "graduates", sizes)
    )
    propensities = []
    for school in SCHOOLS:
        rng = _rng(seed, year, school.code, "destinations")
        technician_share = school.technician_size / (school.secondary_size + school.technician_size)
        shares = dict(_type(school).destinations, **{ADVANCED_TECHNICIAN: technician_share})
        propensities.append([shares[name] * _jitter(rng, 0.15) for name in DESTINATIONS])
    totals = _destination_totals(targets)
    fitted = _fit_matrix(propensities, per_school, totals)
    return _integer_matrix(fitted, per_school, totals)


def _incomes(seed: int, year: int, mean: int, direct: Sequence[int]) -> list[list[int]]:
    """Starting incomes per school, in hundreds of yuan, whose city mean rounds to ``mean``."""
    raw: list[float] = []
    for school, count in zip(SCHOOLS, direct, strict=True):
        rng = _rng(seed, year, school.code, "income")
        school_mean = mean * _type(school).income * _jitter(rng, 0.05)
        raw += [
            min(max(school_mean * rng.lognormvariate(0, 0.22), 1900), 15000) for _ in range(count)
        ]
    scale = mean * len(raw) / sum(raw)
    values = [round(value * scale / 100) * 100 for value in raw]
    # Nudge a few incomes by 100 yuan until the total is within 50 yuan of mean * count.
    steps = round((mean * len(values) - sum(values)) / 100)
    rng = _rng(seed, year, "income-adjust")
    for i in rng.sample(range(len(values)), abs(steps)):
        values[i] += 100 if steps > 0 else -100
    result: list[list[int]] = []
    start = 0
    for count in direct:
        result.append(values[start : start + count])
        start += count
    return result


def _graduate_tables(
    seed: int,
    year: int,
    targets: Targets,
    students: dict[str, int],
    enrollment: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    matrix = _destination_matrix(seed, year, targets, students)
    direct = [row[DESTINATIONS.index(DIRECT)] for row in matrix]
    exam = [row[DESTINATIONS.index(EXAM_TRACK)] for row in matrix]
    # Spread the graduates employed outside their field; the rest of direct employment matches.
    mismatched = _apportion(
        sum(direct) - _count(targets, "matched_employment"),
        _school_weights(seed, year, "match", direct, "mismatch"),
        direct,
    )
    matched = [n - m for n, m in zip(direct, mismatched, strict=True)]
    # Schools whose line count the report implies keep it; the others share the rest.
    pinned = [_school_target(year, school, "undergrad_line") for school in SCHOOLS]
    undergrad = _apportion(
        _count(targets, "undergrad_line") - sum(value or 0 for value in pinned),
        _school_weights(seed, year, "undergrad", exam, "undergrad"),
        [0 if value is not None else cap for value, cap in zip(pinned, exam, strict=True)],
    )
    undergrad = [
        value if value is not None else drawn
        for value, drawn in zip(pinned, undergrad, strict=True)
    ]
    incomes = _incomes(seed, year, _count(targets, "starting_income_mean"), direct)
    return {
        school.code: _graduate_table(
            seed,
            year,
            school,
            row,
            matched[i],
            undergrad[i],
            incomes[i],
            enrollment[school.code],
            GraduateDetails(
                integrated=_school_target(year, school, "integrated_undergraduate_entrants") or 0,
                east_west=_school_target(year, school, "east_west_graduates") or 0,
                local_share_pct=_school_target(year, school, "local_employment_share_pct"),
            ),
        )
        for i, (school, row) in enumerate(zip(SCHOOLS, matrix, strict=True))
    }


@dataclass(frozen=True)
class GraduateDetails:
    """Counts of a school's graduates the report states.

    中本一体化 entrants to undergraduate programmes (among its 五年制转段 graduates) and
    graduates of east-west classes (among its directly employed, all employed in the city).
    """

    integrated: int = 0
    east_west: int = 0
    local_share_pct: int | None = None  # the share of direct employment in the city, if stated


# Share of direct employment in the secondary sector (第二产业) by school type; 2% primary.
SECONDARY_SECTOR_SHARE = {
    "engineering": 0.75,
    "textile": 0.7,
    "comprehensive": 0.55,
    "private": 0.4,
    "finance_tourism": 0.1,
    "nursing": 0.05,
    "arts": 0.1,
}
EMPLOYER_LOCATIONS = ("本地", "省内", "省外")


def _graduate_details(
    seed: int, year: int, school: DemoSchool, destinations: list[str], details: GraduateDetails
) -> dict[str, list]:
    """The optional graduate columns, drawn from a generator of their own.

    Employer location and sector (direct employment), 中本一体化, east-west class, 双证书 and
    1+X certificates.
    """
    rng = _rng(seed, year, school.code, "graduate-details")
    secondary = SECONDARY_SECTOR_SHARE.get(school.school_type, 0.5)
    direct_rows = [i for i, name in enumerate(destinations) if name == DIRECT]
    five_year_rows = [i for i, name in enumerate(destinations) if name == FIVE_YEAR]
    if details.east_west > len(direct_rows) or details.integrated > len(five_year_rows):
        raise ValueError(f"{school.name}: too few graduates for {details}")
    east_west = set(rng.sample(direct_rows, details.east_west))
    integrated = set(rng.sample(five_year_rows, details.integrated))
    local: set[int] | None = None
    if details.local_share_pct is not None:
        wanted = round(len(direct_rows) * details.local_share_pct / 100)
        others = [i for i in direct_rows if i not in east_west]
        local = east_west | set(rng.sample(others, wanted - len(east_west)))
    columns: dict[str, list] = {
        name: []
        for name in (
            "employer_location",
            "employer_industry",
            "is_east_west_class",
            "is_undergraduate_integrated",
            "is_dual_certificate",
            "is_1x_certificate",
        )
    }
    for i, destination in enumerate(destinations):
        direct = destination == DIRECT
        location = rng.choices(EMPLOYER_LOCATIONS, (0.72, 0.18, 0.10))[0] if direct else None
        if local is not None and direct:
            location = (
                "本地" if i in local else rng.choices(EMPLOYER_LOCATIONS[1:], (0.64, 0.36))[0]
            )
        draw = rng.random()
        sector = (
            "第一产业" if draw < 0.02 else "第二产业" if draw < 0.02 + secondary else "第三产业"
        )
        columns["employer_location"].append("本地" if i in east_west else location)
        columns["employer_industry"].append(sector if direct else None)
        columns["is_east_west_class"].append(YES if i in east_west else NO)
        columns["is_undergraduate_integrated"].append(YES if i in integrated else NO)
        columns["is_dual_certificate"].append(YES if rng.random() < 0.9 else NO)
        columns["is_1x_certificate"].append(YES if rng.random() < 0.45 else NO)
    return columns


def _further_study_level(destination: str, reached_line: str, is_integrated: str) -> str | None:
    """升学层次: 本科 for the line reached by 单考单招 or a 中本一体化 transfer."""
    if destination == EXAM_TRACK:
        return "本科" if reached_line == YES else "专科"
    if destination == FIVE_YEAR:
        return "本科" if is_integrated == YES else "专科"
    if destination in (INDEPENDENT, RECOMMENDED):
        return "专科"
    if destination == ADVANCED_TECHNICIAN:
        return "技师"
    return None


def _graduate_table(
    seed: int,
    year: int,
    school: DemoSchool,
    destination_counts: list[int],
    matched: int,
    undergrad: int,
    incomes: list[int],
    enrollment: pl.DataFrame,
    details: GraduateDetails = GraduateDetails(),
) -> pl.DataFrame:
    rng = _rng(seed, year, school.code, "graduates")
    destinations = _shuffled(rng, list(zip(DESTINATIONS, destination_counts, strict=True)))
    matched_flags = iter(_shuffled(rng, ((YES, matched), (NO, len(incomes) - matched))))
    income_values = iter(incomes)
    exam_count = destination_counts[DESTINATIONS.index(EXAM_TRACK)]
    undergrad_flags = iter(_shuffled(rng, ((YES, undergrad), (NO, exam_count - undergrad))))
    secondary = enrollment.filter(pl.col("program_type") == "中职")
    technician = enrollment.filter(pl.col("program_type") == "技工")
    majors: list[str] = []
    is_matched: list[str | None] = []
    income: list[int | None] = []
    undergrad_line: list[str] = []
    for destination in destinations:
        pool = technician if destination == ADVANCED_TECHNICIAN and technician.height else secondary
        majors.append(
            rng.choices(pool["major_name"].to_list(), pool["enrolled_count"].to_list())[0]
        )
        employed = destination == DIRECT
        is_matched.append(next(matched_flags) if employed else None)
        income.append(next(income_values) if employed else None)
        undergrad_line.append(next(undergrad_flags) if destination == EXAM_TRACK else NO)
    used: set[str] = set()
    prefix = f"G{year % 100:02d}"
    ids = [
        _pseudonym(prefix, used, seed, school.code, year, "graduate", i)
        for i in range(len(destinations))
    ]
    extra = _graduate_details(seed, year, school, destinations, details)
    levels = [
        _further_study_level(*values)
        for values in zip(
            destinations, undergrad_line, extra["is_undergraduate_integrated"], strict=True
        )
    ]
    frame = pl.DataFrame(
        {
            "school_code": [school.code] * len(destinations),
            "graduate_id": ids,
            "major_name": majors,
            "destination": destinations,
            "is_major_matched": is_matched,
            "starting_monthly_income_yuan": income,
            "is_undergraduate_line_reached": undergrad_line,
            "further_study_level": levels,
            **extra,
        },
        schema_overrides={
            "is_major_matched": pl.Utf8,
            "starting_monthly_income_yuan": pl.Int64,
            "employer_location": pl.Utf8,
            "employer_industry": pl.Utf8,
            "further_study_level": pl.Utf8,
        },
    )
    return frame.sort("major_name", "graduate_id")


# --------------------------------------------------------------------------------------------
# Writing files the way schools write them
# --------------------------------------------------------------------------------------------


def _with_headers(
    frame: pl.DataFrame, dataset: DatasetSpec, aliases: tuple[tuple[str, str], ...]
) -> pl.DataFrame:
    """Select the catalogue's columns in order and name them with the Chinese headers."""
    renamed = dict(aliases)
    expressions = []
    for column in dataset.columns:
        header = renamed.get(column.column_name, column.header_zh)
        if column.column_name in frame.columns:
            expressions.append(pl.col(column.column_name).alias(header))
        elif column.is_required:
            raise ValueError(f"demo data lacks required column {dataset.dataset_id}.{column}")
        else:
            expressions.append(pl.lit(None, dtype=pl.Utf8).alias(header))
    return frame.select(expressions)


def _encode_school_file(
    school: DemoSchool, year: int, dataset: DatasetSpec, frame: pl.DataFrame
) -> tuple[str, bytes]:
    headed = _with_headers(frame, dataset, school.header_aliases)
    if school.file_format == XLSX:
        title = f"{year}年{school.name}{dataset.name_zh}"
        key = upload_key(year, school.code, dataset.dataset_id, "xlsx")
        return key, _xlsx_bytes(headed, title, dataset.name_zh, year)
    key = upload_key(year, school.code, dataset.dataset_id, "csv")
    return key, _csv_bytes(headed, school.file_format)


def _csv_bytes(frame: pl.DataFrame, file_format: str) -> bytes:
    if file_format == CSV_GBK:
        # What Excel's "CSV" gives on Chinese Windows: GBK and CRLF line ends.
        return frame.write_csv(line_terminator="\r\n", null_value="").encode("gbk")
    return b"\xef\xbb\xbf" + frame.write_csv(null_value="").encode("utf-8")


def _xlsx_bytes(frame: pl.DataFrame, title: str, sheet_name: str, year: int) -> bytes:
    """One sheet: a merged title on row 1, headers on row 2, data below."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    # A fixed creation date keeps the bytes deterministic (zip entry times are fixed already).
    workbook.set_properties({"title": title, "created": datetime(year + 1, 1, 15, 9, 0, 0)})
    sheet = workbook.add_worksheet(sheet_name)
    title_format = workbook.add_format({"bold": True, "font_size": 14, "align": "center"})
    header_format = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
    last_column = frame.width - 1
    if last_column > 0:
        sheet.merge_range(0, 0, 0, last_column, title, title_format)
    else:
        sheet.write_string(0, 0, title, title_format)
    sheet.write_row(1, 0, frame.columns, header_format)
    for row_number, row in enumerate(frame.iter_rows(), start=2):
        sheet.write_row(row_number, 0, row)
    sheet.set_column(0, last_column, 16)
    sheet.freeze_panes(2, 0)
    workbook.close()
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Appendix datasets: awards, survey, international, service, funding, industry partnership
# --------------------------------------------------------------------------------------------

# Relative strength of a school type in contests, service and international work.
CONTEST_STRENGTH = {
    "engineering": 1.6,
    "comprehensive": 1.0,
    "textile": 1.1,
    "nursing": 0.7,
    "finance_tourism": 0.8,
    "arts": 0.6,
    "private": 0.1,
}
SERVICE_STRENGTH = {
    "engineering": 1.4,
    "comprehensive": 1.1,
    "textile": 1.2,
    "nursing": 0.9,
    "finance_tourism": 0.8,
    "arts": 0.5,
    "private": 0.3,
}
INTERNATIONAL_ACTIVITY = {
    "engineering": 1.0,
    "comprehensive": 0.8,
    "textile": 0.6,
    "nursing": 1.3,
    "finance_tourism": 0.7,
    "arts": 0.4,
    "private": 0.1,
}
# Travel abroad recovered after the pandemic years.
TRAVEL_FACTOR = {2021: 0.2, 2022: 0.5, 2023: 1.0}
# Schools in east-west cooperation: the first N of this order (the report names the first).
EAST_WEST_ORDER = (
    "绍兴市职业教育中心", "绍兴市中等专业学校", "诸暨市实验职业技术学校", "柯桥区职业教育中心",
    "上虞区职业教育中心", "绍兴市上虞区职业中等专业学校", "新昌职业高级中学", "绍兴护士学校",
    "诸暨市职业教育中心",
)  # fmt: skip
MEDALS = ("金", "银", "铜")
AWARD_COLUMNS = (
    "school_code",
    "award_id",
    "contest_name",
    "contest_type",
    "contest_level",
    "participant_type",
    "award_grade",
)
AWARD_EVENT_COLUMNS = ("event_name", "event_category", "is_hosted_event")
HOSTED_EVENT = "工程测量"
# Events of the skills contest a school's national medals are drawn from, by school type.
SKILL_EVENTS = {
    "engineering": ("工程测量", "数控综合应用技术", "工业机器人技术应用", "电气安装与维修"),
    "comprehensive": ("电子电路装调与应用", "汽车维修", "网络搭建与应用", "会计技能"),
    "textile": ("服装设计与工艺", "数字艺术设计", "电子商务运营"),
    "nursing": ("护理技能", "婴幼儿保育"),
    "finance_tourism": ("会计技能", "酒店服务", "电子商务运营"),
    "arts": ("数字艺术设计", "艺术专业技能"),
    "private": ("网络搭建与应用", "会计技能"),
}
RANKS = ("一等奖", "二等奖", "三等奖")
ANSWERS = ("很满意", "满意", "一般", "不满意", "很不满意", "无法评估")
# Answer propensities by respondent type, in the order of ANSWERS.
ANSWER_WEIGHTS = {
    "在校生": (0.52, 0.38, 0.07, 0.015, 0.005, 0.01),
    "毕业生": (0.55, 0.37, 0.06, 0.01, 0.005, 0.005),
    "家长": (0.58, 0.35, 0.05, 0.01, 0.005, 0.005),
    "用人单位": (0.50, 0.42, 0.06, 0.01, 0.0, 0.01),
    "教师": (0.45, 0.42, 0.10, 0.02, 0.005, 0.005),
}
STUDENT_ITEMS = ("总体评价", "课堂育人", "课外育人", "管理服务")


def _appendix_tables(
    seed: int,
    year: int,
    targets: Targets,
    students: dict[str, int],
    enrollment: dict[str, pl.DataFrame],
) -> dict[str, dict[str, pl.DataFrame]]:
    """The six appendix datasets of every school for one year."""
    return {
        "awards": _award_tables(seed, year, targets, students),
        "survey_responses": _survey_tables(seed, year, students, targets),
        "international": _international_tables(seed, year, students),
        "service": _service_tables(seed, year, targets, students),
        "funding": _funding_tables(seed, year, targets, students),
        "industry_partnership": _partnership_tables(seed, year, targets, students, enrollment),
    }


def _strength_weights(
    seed: int, year: int, purpose: str, students: dict[str, int], strength: dict[str, float]
) -> list[float]:
    return [
        students[school.code]
        * strength[school.school_type]
        * _jitter(_rng(seed, year, school.code, purpose), 0.2)
        for school in SCHOOLS
    ]


def _hundreds(value: float) -> int:
    """Money as schools report it: whole yuan, rounded to hundreds."""
    return int(round(value, -2))


def _scaled(rng: random.Random, base: float, size: int, factor: float) -> int:
    """A plausible whole number: base per 2750 students, times a factor, jittered ±30%."""
    return max(0, round(base * size / 2750 * factor * _jitter(rng, 0.3)))


# Awards -------------------------------------------------------------------------------------


def _award_tables(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    medals = {
        medal: _apportion(
            _count(targets, f"national_skills_{name}"),
            _strength_weights(seed, year, f"medal-{name}", students, CONTEST_STRENGTH),
        )
        for medal, name in zip(MEDALS, ("gold", "silver", "bronze"), strict=True)
    }
    hosted = _hosted_medals(year, targets, medals)
    moral = {
        medal: _apportion(
            _count(targets, f"moral_education_{name}"),
            _strength_weights(seed, year, f"moral-{name}", students, CONTEST_STRENGTH),
        )
        for medal, name in zip(MEDALS[:2], ("gold", "silver"), strict=True)
    }
    return {
        school.code: _award_table(
            seed,
            year,
            school,
            students[school.code],
            [medals[medal][i] for medal in MEDALS],
            hosted=[hosted[medal][i] for medal in MEDALS],
            moral=[moral[medal][i] for medal in MEDALS[:2]],
        )
        for i, school in enumerate(SCHOOLS)
    }


def _hosted_medals(
    year: int, targets: Targets, medals: dict[str, list[int]]
) -> dict[str, list[int]]:
    """Medals won in the event the city hosted, per school.

    The host school's (school_targets.csv) first, the rest to the schools with the most
    medals of that colour (from their own medals).
    """
    hosted: dict[str, list[int]] = {}
    for medal, name in zip(MEDALS, ("gold", "silver", "bronze"), strict=True):
        counts = [_school_target(year, school, f"hosted_event_{name}") or 0 for school in SCHOOLS]
        left = _count(targets, f"hosted_event_{name}") - sum(counts)
        for i in sorted(range(len(SCHOOLS)), key=lambda i: (-medals[medal][i], i)):
            take = min(left, medals[medal][i] - counts[i])
            counts[i] += take
            left -= take
        if left or any(c > m for c, m in zip(counts, medals[medal], strict=True)):
            raise ValueError(f"{year}: the hosted event's {name} medals do not fit the medals")
        hosted[medal] = counts
    return hosted


def _award_table(
    seed: int,
    year: int,
    school: DemoSchool,
    size: int,
    medal_counts: Sequence[int],
    province: str = PROVINCE,
    city: str = CITY,
    hosted: Sequence[int] = (0, 0, 0),
    moral: Sequence[int] = (0, 0),
) -> pl.DataFrame:
    """One school's awards: the national medals given, then contests drawn from its size.

    ``medal_counts`` are its gold, silver and bronze medals of the national skills contest,
    of which ``hosted`` were won in the event the city hosted (工程测量); ``moral`` its gold
    and silver medals in the national 德育与思政 events (teachers); the provincial and city
    contests take the names of ``province`` and ``city``. Event names of the other national
    medals are drawn from a generator of their own, so the other columns stay as they were.
    """
    rng = _rng(seed, year, school.code, "awards")
    strength = CONTEST_STRENGTH[school.school_type]
    rows: list[tuple[str, str, str, str, str]] = []
    for medal, medal_count in zip(MEDALS, medal_counts, strict=True):
        for _ in range(medal_count):
            who = "教师" if rng.random() < 0.2 else "学生"
            rows.append(("全国职业院校技能大赛", "技能大赛", "国家", who, medal))
    for _ in range(_scaled(rng, 8, size, strength)):
        grade = rng.choice(MEDALS + RANKS)
        rows.append((f"{province}职业院校技能大赛", "技能大赛", "省", "学生", grade))
    for _ in range(_scaled(rng, 3, size, strength)):
        contest_type = rng.choice(("教学能力比赛", "班主任能力比赛"))
        rows.append(
            (f"{province}职业院校{contest_type}", contest_type, "省", "教师", rng.choice(RANKS))
        )
    for _ in range(_scaled(rng, 0.2, size, strength)):
        rows.append(
            ("全国职业院校技能大赛教学能力比赛", "教学能力比赛", "国家", "教师", rng.choice(RANKS))
        )
    for _ in range(_scaled(rng, 2, size, strength)):
        rows.append(
            (f"{province}职业院校创新创业大赛", "创新创业大赛", "省", "学生", rng.choice(RANKS))
        )
    for _ in range(_scaled(rng, 20, size, 1.0)):
        rows.append((f"{city}职业院校技能大赛", "技能大赛", "市", "学生", rng.choice(RANKS)))
    events = _award_events(seed, year, school, rows, hosted)
    for medal, medal_count in zip(MEDALS[:2], moral, strict=True):
        for n in range(medal_count):
            contest = (
                ("教学能力比赛", "思政课程教学") if n % 2 == 0 else ("班主任能力比赛", "班主任能力")
            )
            rows.append((f"全国职业院校技能大赛{contest[0]}", contest[0], "国家", "教师", medal))
            events.append((contest[1], "德育与思政", NO))
    used: set[str] = set()
    ids = [_pseudonym("A", used, seed, school.code, year, "award", n) for n in range(len(rows))]
    frame = pl.DataFrame(
        {
            "school_code": [school.code] * len(rows),
            "award_id": ids,
            "contest_name": [row[0] for row in rows],
            "contest_type": [row[1] for row in rows],
            "contest_level": [row[2] for row in rows],
            "participant_type": [row[3] for row in rows],
            "award_grade": [row[4] for row in rows],
            "event_name": [event[0] for event in events],
            "event_category": [event[1] for event in events],
            "is_hosted_event": [event[2] for event in events],
        },
        schema=dict.fromkeys(AWARD_COLUMNS + AWARD_EVENT_COLUMNS, pl.Utf8),
    )
    return frame.sort("award_id")


def _award_events(
    seed: int,
    year: int,
    school: DemoSchool,
    rows: list[tuple[str, str, str, str, str]],
    hosted: Sequence[int],
) -> list[tuple[str | None, str | None, str | None]]:
    """赛项名称, 赛项类别 and 是否本市承办赛项 of each award row.

    National skills contests only; the first ``hosted`` medals of each colour are the hosted
    event's.
    """
    rng = _rng(seed, year, school.code, "award-events")
    events = SKILL_EVENTS.get(school.school_type, SKILL_EVENTS["comprehensive"])
    left = dict(zip(MEDALS, hosted, strict=True))
    result: list[tuple[str | None, str | None, str | None]] = []
    for _, contest_type, level, _, grade in rows:
        if contest_type != "技能大赛" or level != "国家":
            result.append((None, None, None))
        elif left.get(grade, 0) > 0:
            left[grade] -= 1
            result.append((HOSTED_EVENT, "专业技能", YES))
        else:
            others = [event for event in events if event != HOSTED_EVENT] or list(events)
            result.append((rng.choice(others), "专业技能", NO))
    return result


# Satisfaction survey ------------------------------------------------------------------------


def _survey_tables(
    seed: int, year: int, students: dict[str, int], targets: Targets
) -> dict[str, pl.DataFrame]:
    counts = _staff_counts(seed, year, targets, students)
    return {
        school.code: _survey_table(
            seed, year, school, students[school.code], school_counts.full_time
        )
        for school, school_counts in zip(SCHOOLS, counts, strict=True)
    }


def _survey_table(
    seed: int, year: int, school: DemoSchool, size: int, full_time_teachers: int
) -> pl.DataFrame:
    """One school's satisfaction survey: respondents by type, answers by propensity."""
    rng = _rng(seed, year, school.code, "survey")
    respondents = {
        "在校生": min(max(size // 60, 15), 90),
        "毕业生": rng.randint(20, 40),
        "家长": rng.randint(20, 40),
        "用人单位": rng.randint(6, 15),
        "教师": min(full_time_teachers, rng.randint(15, 30)),
    }
    ids: list[str] = []
    types: list[str] = []
    items: list[str] = []
    answers: list[str] = []
    used: set[str] = set()
    for respondent_type, count in respondents.items():
        weights = ANSWER_WEIGHTS[respondent_type]
        questions = STUDENT_ITEMS if respondent_type == "在校生" else STUDENT_ITEMS[:1]
        for n in range(count):
            respondent = _pseudonym("R", used, seed, school.code, year, respondent_type, n)
            for item in questions:
                ids.append(respondent)
                types.append(respondent_type)
                items.append(item)
                answers.append(rng.choices(ANSWERS, weights)[0])
    frame = pl.DataFrame(
        {
            "school_code": [school.code] * len(ids),
            "respondent_id": ids,
            "respondent_type": types,
            "survey_item": items,
            "answer": answers,
        }
    )
    return frame.sort("respondent_id", "survey_item")


# International ------------------------------------------------------------------------------


def _international_tables(
    seed: int, year: int, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    rows = [_international_row(seed, year, school, students[school.code]) for school in SCHOOLS]
    return _by_school(pl.DataFrame(rows))


def _international_row(seed: int, year: int, school: DemoSchool, size: int) -> dict[str, object]:
    """One school's international figures, drawn from its size, type and the year's travel."""
    rng = _rng(seed, year, school.code, "international")
    activity = INTERNATIONAL_ACTIVITY[school.school_type]
    travel = TRAVEL_FACTOR.get(year, 1.0)
    certificates = 400 if school.school_type == "nursing" else 15
    return {
        "school_code": school.code,
        "international_students_count": _scaled(rng, 2, size, activity * travel)
        if activity >= 1
        else 0,
        "foreign_trainee_person_days": _scaled(rng, 60, size, activity * travel),
        "teacher_overseas_person_days": _scaled(rng, 40, size, activity * travel),
        "international_posts_count": _scaled(rng, 0.8, size, activity),
        "international_standards_count": _scaled(rng, 0.7, size, activity),
        "international_awards_count": _scaled(rng, 1.2, size, activity * travel),
        "international_certificate_holders_count": _scaled(rng, certificates, size, activity),
        "international_cooperation_projects_count": _scaled(rng, 1.0, size, activity),
    }


def _by_school(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A city-wide frame split into one frame per school (every school, in registry order)."""
    return {school.code: frame.filter(pl.col("school_code") == school.code) for school in SCHOOLS}


# Service ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCounts:
    """A school's service figures that come from a total (the city's, or a national draw)."""

    programmes: int
    person_times: int
    projects: int
    innovations: int
    east_west: bool
    # Figures the report states for this school (school_targets.csv): patent applications,
    # utility-model patents, east-west students, teacher batches, donation, enterprises,
    # enterprise staff training; the others are drawn.
    stated: dict[str, int] = field(default_factory=dict)


def _service_tables(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    def split(figure: str, purpose: str) -> list[int]:
        weights = _strength_weights(seed, year, purpose, students, SERVICE_STRENGTH)
        return _apportion(_count(targets, figure), weights)

    programmes = split("social_training_programs", "training-programmes")
    person_times = split("social_training_person_times", "training-person-times")
    projects = split("enterprise_projects", "enterprise-projects")
    innovations = split("enterprise_innovations", "enterprise-innovations")
    east_west = EAST_WEST_ORDER[: _count(targets, "east_west_schools")]
    rows = [
        _service_row(
            seed,
            year,
            school,
            students[school.code],
            ServiceCounts(
                programmes[i],
                person_times[i],
                projects[i],
                innovations[i],
                school.name in east_west,
                {
                    figure: value
                    for figure in SERVICE_STATED
                    if (value := _school_target(year, school, figure)) is not None
                },
            ),
        )
        for i, school in enumerate(SCHOOLS)
    ]
    return _by_school(pl.DataFrame(rows))


SERVICE_STATED = (
    "patent_applications",
    "invention_patent_applications",
    "utility_model_patents",
    "enterprise_staff_training_person_times",
    "east_west_students",
    "east_west_teacher_batches",
    "east_west_donation_yuan",
    "east_west_partner_enterprises",
)
EAST_WEST_REGIONS = ("四川省乐山市", "四川省南充市", "新疆阿克苏地区", "云南省", "西藏那曲市")


def _service_details(
    seed: int, year: int, school: DemoSchool, size: int, counts: ServiceCounts, patents: int
) -> dict[str, object]:
    """The optional service columns, drawn from a generator of their own.

    Patent applications and utility models, 纵向 and technology-transaction income,
    enterprise staff training, east-west details; the other columns stay as they were.
    """
    rng = _rng(seed, year, school.code, "service-details")
    stated = counts.stated
    invention = patents // 5
    public = school.ownership == "公办"
    applications = stated.get("patent_applications", patents + rng.randint(0, 4))
    utility = stated.get("utility_model_patents", round((patents - invention) * 0.7))
    if utility + invention > patents:
        raise ValueError(f"{school.name}: {utility} utility models do not fit {patents} patents")
    details: dict[str, object] = {
        "patent_applications_count": applications,
        "invention_patent_applications_count": stated.get(
            "invention_patent_applications", min(applications, round(applications * 0.3))
        ),
        "utility_model_patents_count": utility,
        "vertical_research_income_yuan": _hundreds(size * rng.uniform(5, 30)) if public else 0,
        "technology_transaction_income_yuan": _hundreds(
            counts.projects * rng.uniform(5_000, 20_000)
        ),
        "enterprise_staff_training_person_times": stated.get(
            "enterprise_staff_training_person_times",
            round(counts.person_times * rng.uniform(0.2, 0.4)),
        ),
    }
    if counts.east_west:
        regions = rng.sample(EAST_WEST_REGIONS, rng.randint(1, 2))
        details |= {
            "east_west_partner_region": "|".join(regions),
            "east_west_students_count": stated.get("east_west_students", rng.randint(0, 60)),
            "east_west_teacher_batches_count": stated.get(
                "east_west_teacher_batches", rng.randint(1, 3)
            ),
            "east_west_donation_yuan": stated.get(
                "east_west_donation_yuan", _hundreds(rng.uniform(20_000, 150_000))
            ),
            "east_west_partner_enterprises_count": stated.get(
                "east_west_partner_enterprises", rng.randint(0, 3)
            ),
        }
    elif any(name.startswith("east_west") for name in stated):
        raise ValueError(f"{school.name}: east-west figures for a school not in east-west work")
    return details


def _service_row(
    seed: int, year: int, school: DemoSchool, size: int, counts: ServiceCounts
) -> dict[str, object]:
    """One school's service row: the given counts, incomes and patents drawn around them."""
    rng = _rng(seed, year, school.code, "service")
    strength = SERVICE_STRENGTH[school.school_type]
    patents = _scaled(rng, 6, size, strength)
    return {
        "school_code": school.code,
        "social_training_programs_count": counts.programmes,
        "social_training_person_times": counts.person_times,
        "enterprise_projects_count": counts.projects,
        "enterprise_innovations_count": counts.innovations,
        "technical_service_income_yuan": _hundreds(counts.projects * rng.uniform(30_000, 80_000)),
        "training_income_yuan": _hundreds(counts.person_times * rng.uniform(80, 160)),
        "patents_count": patents,
        "invention_patents_count": patents // 5,
        "is_east_west_cooperation": YES if counts.east_west else NO,
        "rural_revitalization_training_person_times": _scaled(rng, 400, size, strength),
        **_service_details(seed, year, school, size, counts, patents),
    }


# Funding ------------------------------------------------------------------------------------


# The four schools built or rebuilt in 2021–2023 (seed 7.1: 新建、改扩建4所中职学校).
CONSTRUCTION_SCHOOLS = (
    "绍兴市职业教育中心",
    "柯桥区职业教育中心",
    "诸暨市职业教育中心",
    "嵊州市示例职业学校甲",
)


@dataclass(frozen=True)
class FundingBasis:
    """What a school's funding row is built around: its money from a total and its standards."""

    fiscal_appropriation: int
    private_subsidy: int | None
    standard_per_student: int
    subsidy_standard_per_student: int
    below_floor: bool
    capital_construction: int | None = None


def _funding_tables(
    seed: int, year: int, targets: Targets, students: dict[str, int]
) -> dict[str, pl.DataFrame]:
    sizes = [students[school.code] for school in SCHOOLS]
    staff = _staff_counts(seed, year, targets, students)
    standard = _count(targets, "public_funds_standard_per_student_yuan")
    subsidy_rate = _count(targets, "private_subsidy_standard_per_student_yuan")
    subsidy_share = targets["private_subsidy_share_pct"] / 100
    private = [school.ownership == "民办" for school in SCHOOLS]
    # Private schools' public money is their subsidy: the public rate x share x students.
    subsidy = [
        int(Decimal(subsidy_rate * size) * subsidy_share) if is_private else None
        for size, is_private in zip(sizes, private, strict=True)
    ]
    # Any total within half a yuan per student of the target rounds to it: aim at the middle.
    fiscal_total = round(targets["per_student_budget_yuan"] * sum(sizes))
    public_fiscal = _apportion(
        fiscal_total - sum(value or 0 for value in subsidy),
        [
            0.0 if is_private else weight
            for weight, is_private in zip(
                _school_weights(seed, year, "fiscal", sizes), private, strict=True
            )
        ],
    )
    construction = _apportion(
        _count(targets, "capital_construction_yuan"),
        [1.0 if school.name in CONSTRUCTION_SCHOOLS else 0.0 for school in SCHOOLS],
    )
    # Schools below the public funds floor: private first, then the smallest.
    below = len(SCHOOLS) - _count(targets, "public_funds_standard_met_schools")
    order = sorted(range(len(SCHOOLS)), key=lambda i: (not private[i], sizes[i], i))
    below_floor = set(order[:below])
    rows = [
        _funding_row(
            seed,
            year,
            school,
            sizes[i],
            staff[i],
            FundingBasis(
                fiscal_appropriation=public_fiscal[i] if subsidy[i] is None else subsidy[i],
                private_subsidy=subsidy[i],
                standard_per_student=standard,
                subsidy_standard_per_student=subsidy_rate,
                below_floor=i in below_floor,
                capital_construction=construction[i],
            ),
        )
        for i, school in enumerate(SCHOOLS)
    ]
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "private_subsidy_yuan": pl.Int64,
            "private_subsidy_standard_per_student_yuan": pl.Int64,
            "capital_construction_yuan": pl.Int64,
        },
    )
    return _by_school(frame)


def _funding_row(
    seed: int, year: int, school: DemoSchool, size: int, staff: _StaffCounts, basis: FundingBasis
) -> dict[str, object]:
    """One school's funding row: the given money and standards, the rest drawn around them."""
    rng = _rng(seed, year, school.code, "funding")
    private = school.ownership == "民办"
    standard = basis.standard_per_student
    per_student_funds = (
        rng.uniform(0.85, 0.97) if basis.below_floor else rng.uniform(1.05, 1.4)
    ) * standard
    established = staff.full_time_established + staff.other_established
    part_time = round(staff.staff * rng.uniform(0.05, 0.1))
    hours = round(part_time * rng.uniform(60, 160))
    return {
        "school_code": school.code,
        "fiscal_appropriation_yuan": basis.fiscal_appropriation,
        "special_funds_yuan": _hundreds(size * rng.uniform(1500, 4000)),
        "public_operating_funds_yuan": round(per_student_funds * size),
        "public_funds_standard_per_student_yuan": standard,
        "established_posts_count": 0
        if private
        else round(established * rng.uniform(1.0, 1.06) + 0.5),
        "part_time_teacher_count": part_time,
        "part_time_teacher_hours": hours,
        "part_time_teacher_pay_yuan": _hundreds(hours * rng.uniform(120, 200)),
        "private_subsidy_yuan": basis.private_subsidy,
        "private_subsidy_standard_per_student_yuan": basis.subsidy_standard_per_student
        if private
        else None,
        "capital_construction_yuan": basis.capital_construction,
    }


# Industry and higher-education partnership --------------------------------------------------


def _long_plan_total(plan_total: int, share_pct: Decimal) -> int:
    """The long-programme plan whose share of the plan rounds half-up to ``share_pct``."""
    step = Decimal("0.01")
    guess = int(plan_total * share_pct / 100)
    for candidate in sorted(range(guess - 3, guess + 4), key=lambda c: abs(c - guess)):
        share = (Decimal(candidate * 100) / plan_total).quantize(step, rounding=ROUND_HALF_UP)
        if share == share_pct:
            return candidate
    raise ValueError(f"no long-programme plan gives {share_pct}% of {plan_total}")


# The partnership columns that come from a total (the city's, or a national draw).
PARTNERSHIP_GIVEN = (
    "industry_colleges_count",
    "training_factories_count",
    "led_vocational_groups_count",
    "five_year_integrated_programs_count",
    "regional_integrated_programs_count",
    "undergraduate_integrated_programs_count",
    "admissions_plan_count",
    "long_program_admissions_plan_count",
)


def _partnership_tables(
    seed: int,
    year: int,
    targets: Targets,
    students: dict[str, int],
    enrollment: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    public = [0.0 if school.ownership == "民办" else 1.0 for school in SCHOOLS]

    def split(figure: str, purpose: str, only_public: bool = False) -> list[int]:
        # Weights drawn for one fixed year: shares stay put while the totals grow.
        weights = _strength_weights(seed, 2021, purpose, students, SERVICE_STRENGTH)
        if only_public:
            weights = [w * p for w, p in zip(weights, public, strict=True)]
        return _apportion(_count(targets, figure), weights)

    colleges = split("industry_colleges", "industry-colleges")
    factories = split("training_factories", "training-factories")
    groups = split("vocational_groups", "vocational-groups", only_public=True)
    five_year = split("five_year_programs", "five-year-programmes", only_public=True)
    regional = split("regional_integrated_programs", "regional-programmes", only_public=True)
    undergrad = split("undergrad_integrated_programs", "undergraduate-programmes", True)
    secondary_admissions = [
        int(
            enrollment[school.code]
            .filter(pl.col("program_type") == "中职")["admissions_count"]
            .sum()
        )
        for school in SCHOOLS
    ]
    plan = [
        round(admitted * _jitter(_rng(seed, year, school.code, "plan"), 0.03) + admitted * 0.03)
        for school, admitted in zip(SCHOOLS, secondary_admissions, strict=True)
    ]
    long_plan = _apportion(
        _long_plan_total(sum(plan), targets["long_program_plan_share_pct"]),
        [
            p * (2.0 if programmes else 0.3) * _jitter(_rng(seed, year, s.code, "long-plan"), 0.2)
            for s, p, programmes in zip(SCHOOLS, plan, five_year, strict=True)
        ],
        plan,
    )
    given = zip(
        colleges, factories, groups, five_year, regional, undergrad, plan, long_plan, strict=True
    )
    rows = [
        _partnership_row(
            seed,
            year,
            school,
            students[school.code],
            dict(zip(PARTNERSHIP_GIVEN, values, strict=True)),
        )
        for school, values in zip(SCHOOLS, given, strict=True)
    ]
    return _by_school(pl.DataFrame(rows))


def _partnership_row(
    seed: int, year: int, school: DemoSchool, size: int, given: dict[str, int]
) -> dict[str, object]:
    """One school's partnership row: the ``PARTNERSHIP_GIVEN`` counts, the rest drawn."""
    rng = _rng(seed, year, school.code, "partnership")
    strength = SERVICE_STRENGTH[school.school_type]
    return {
        "school_code": school.code,
        **{name: given[name] for name in PARTNERSHIP_GIVEN[:3]},
        "partner_enterprises_count": _scaled(rng, 45, size, strength),
        "order_classes_count": _scaled(rng, 6, size, strength),
        "apprentices_count": _scaled(rng, 90, size, strength),
        "enterprise_equipment_value_yuan": _hundreds(size * rng.uniform(800, 2500)),
        **{name: given[name] for name in PARTNERSHIP_GIVEN[3:]},
    }


def write_demo_uploads(store_url: str, seed: int) -> tuple[int, int]:
    """Put the demo uploads into a bucket as schools would; unchanged files are left alone."""
    store = open_store(store_url)
    written = unchanged = 0
    for key, body in sorted(build_demo_uploads(seed).items()):
        try:
            if store.head(key).etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
                unchanged += 1
                continue
        except KeyNotFound:
            pass
        store.put(key, body)
        written += 1
    return written, unchanged
