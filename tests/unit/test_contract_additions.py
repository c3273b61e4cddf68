"""The 2024 contract additions (issue 14 item 3): optional columns, their rules, old files.

Every new column is optional, so a school's file made from last year's template stays
valid; where a new column is filled in, the row rules of schemas/rules.csv check it. The
indicators over the new columns are checked on hand-computed cases in indicator_cases/.
"""

from __future__ import annotations

import polars as pl
import pytest

from schemas.catalogue import load_datasets
from tests.unit.test_validation import SCHOOL, context, report_for, rule_ids
from vetreport.validate.checks import ACCEPTED, ACCEPTED_WITH_WARNINGS, REJECTED

NEW_COLUMNS = {
    "school_profile": ["practice_area_m2"],
    "enrollment": ["cohort_entry_count"],
    "staff": ["famous_teacher_level", "famous_teacher_year"],
    "graduates": [
        "employer_location",
        "employer_industry",
        "further_study_level",
        "is_undergraduate_integrated",
        "is_east_west_class",
        "is_dual_certificate",
        "is_1x_certificate",
    ],
    "awards": ["event_name", "event_category", "is_hosted_event"],
    "service": [
        "patent_applications_count",
        "invention_patent_applications_count",
        "utility_model_patents_count",
        "vertical_research_income_yuan",
        "technology_transaction_income_yuan",
        "enterprise_staff_training_person_times",
        "east_west_partner_region",
        "east_west_students_count",
        "east_west_teacher_batches_count",
        "east_west_donation_yuan",
        "east_west_partner_enterprises_count",
    ],
    "funding": ["capital_construction_yuan"],
}


def csv_file(dataset_id: str, rows: list[dict[str, str]], leave_out: tuple[str, ...] = ()) -> bytes:
    """A CSV with the catalogue's Chinese headers (minus ``leave_out``) and the rows given."""
    columns = [c for c in load_datasets()[dataset_id].columns if c.column_name not in leave_out]
    lines = [",".join(column.header_zh for column in columns)]
    lines += [",".join(row.get(column.column_name, "") for column in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def test_every_new_column_is_optional() -> None:
    catalogue = load_datasets()
    for dataset_id, names in NEW_COLUMNS.items():
        for name in names:
            assert not catalogue[dataset_id].column(name).is_required, (dataset_id, name)


SERVICE = {
    "school_code": SCHOOL,
    "social_training_programs_count": "10",
    "social_training_person_times": "500",
    "enterprise_projects_count": "3",
    "enterprise_innovations_count": "2",
    "technical_service_income_yuan": "150000",
    "training_income_yuan": "50000",
    "patents_count": "6",
    "invention_patents_count": "1",
    "is_east_west_cooperation": "是",
    "rural_revitalization_training_person_times": "80",
}


def test_a_file_without_the_new_columns_is_still_accepted() -> None:
    data = csv_file("service", [SERVICE], leave_out=tuple(NEW_COLUMNS["service"]))
    report = report_for(data, context("service"))
    assert report["outcome"] == ACCEPTED, report["counts_by_rule"]


def test_the_new_service_columns_are_accepted_and_checked() -> None:
    good = SERVICE | {
        "patent_applications_count": "5",
        "invention_patent_applications_count": "2",
        "utility_model_patents_count": "5",
        "east_west_partner_region": "四川省乐山市|新疆阿克苏地区",
        "east_west_students_count": "120",
        "east_west_donation_yuan": "300000",
    }
    assert report_for(csv_file("service", [good]), context("service"))["outcome"] == ACCEPTED
    too_many = good | {
        "invention_patent_applications_count": "6",
        "utility_model_patents_count": "6",
    }
    report = report_for(csv_file("service", [too_many]), context("service"))
    assert report["outcome"] == REJECTED
    assert rule_ids(report) == {
        "row.invention_applications_within_applications",
        "row.utility_model_within_patents",
    }
    not_in_cooperation = good | {"is_east_west_cooperation": "否"}
    report = report_for(csv_file("service", [not_in_cooperation]), context("service"))
    assert report["outcome"] == ACCEPTED_WITH_WARNINGS
    assert rule_ids(report) == {"row.east_west_details_need_cooperation"}


GRADUATE = {"school_code": SCHOOL, "major_name": "护理"}


def test_graduate_details_follow_the_destination() -> None:
    rows = [
        GRADUATE | {"graduate_id": "G0001", "destination": "直接就业", "is_major_matched": "是",
                    "employer_location": "本地", "employer_industry": "第三产业",
                    "is_east_west_class": "是", "is_dual_certificate": "是"},
        GRADUATE | {"graduate_id": "G0002", "destination": "五年制转段",
                    "further_study_level": "本科", "is_undergraduate_integrated": "是"},
        GRADUATE | {"graduate_id": "G0003", "destination": "单考单招",
                    "further_study_level": "专科", "is_1x_certificate": "否"},
    ]  # fmt: skip
    assert report_for(csv_file("graduates", rows))["outcome"] == ACCEPTED
    wrong = [
        GRADUATE | {"graduate_id": "G0004", "destination": "待就业", "employer_location": "省外",
                    "employer_industry": "第二产业"},
        GRADUATE | {"graduate_id": "G0005", "destination": "直接就业", "further_study_level": "本科"},
        GRADUATE | {"graduate_id": "G0006", "destination": "单考单招",
                    "further_study_level": "专科", "is_undergraduate_integrated": "是"},
    ]  # fmt: skip
    report = report_for(csv_file("graduates", wrong))
    assert report["outcome"] == REJECTED
    assert rule_ids(report) == {
        "row.employer_location_only_if_employed",
        "row.employer_industry_only_if_employed",
        "row.study_level_only_if_studying",
        "row.integrated_only_if_undergraduate",
    }
    unknown = [
        GRADUATE | {"graduate_id": "G0007", "destination": "直接就业", "employer_location": "外地"}
    ]
    assert rule_ids(report_for(csv_file("graduates", unknown))) == {"field.enum"}


STAFF = {
    "school_code": SCHOOL,
    "is_established": "是",
    "is_full_time_teacher": "是",
    "highest_education": "大学本科",
    "professional_title": "中级",
}


@pytest.mark.parametrize(
    ("extra", "rules"),
    [
        ({"famous_teacher_level": "省级", "famous_teacher_year": "2023"}, set()),
        ({"famous_teacher_level": "无"}, set()),
        ({"famous_teacher_year": "2023"}, {"row.honour_year_needs_level"}),
        ({"famous_teacher_level": "县级"}, {"field.enum"}),
        ({"famous_teacher_level": "市级", "famous_teacher_year": "1800"}, {"field.range"}),
    ],
)
def test_teacher_honours_are_checked(extra: dict[str, str], rules: set[str]) -> None:
    row = STAFF | {"staff_id": "T0001"} | extra
    report = report_for(csv_file("staff", [row]), context("staff"))
    assert rule_ids(report) == rules


def test_a_practice_area_larger_than_the_buildings_is_a_warning() -> None:
    row = {
        "school_code": SCHOOL,
        "land_area_m2": "50000",
        "building_area_m2": "30000",
        "equipment_value_yuan": "1000000",
        "paper_books_count": "90000",
        "practice_area_m2": "31000",
    }
    report = report_for(csv_file("school_profile", [row]), context("school_profile"))
    assert report["outcome"] == ACCEPTED_WITH_WARNINGS
    assert rule_ids(report) == {"row.practice_area_within_building"}


def test_curated_rows_written_before_the_new_columns_still_aggregate() -> None:
    """A curated file of last year has none of the new columns: they read as null."""
    from tests.unit.test_indicator_cases import load_case_frames
    from vetreport.aggregate.compute import compute_indicator_values

    frames = load_case_frames()
    for dataset_id, names in NEW_COLUMNS.items():
        frames[dataset_id] = frames[dataset_id].drop(names)
    values = compute_indicator_values(frames).filter(pl.col("region_level") == "city")

    def city(indicator_id: str) -> float | None:
        rows = values.filter(pl.col("indicator_id") == indicator_id)
        return rows.item(0, "indicator_value") if rows.height else None

    assert city("graduates_count") == 15  # the existing indicators are untouched
    assert city("dual_certificate_rate_pct") is None  # no school reports: no value, not 0
    assert city("practice_area_per_student_m2") is None
    assert city("patent_applications_count") is None


def test_a_reference_figure_of_one_school_is_compared_with_that_school() -> None:
    from vetreport.publish.reconcile import reconcile

    values = pl.DataFrame(
        {
            "region_level": ["city", "school", "school"],
            "county_name": [None, "越城区", "越城区"],
            "school_code": [None, "3133060001", "3133060002"],
            "indicator_id": ["famous_teacher_share_pct"] * 3,
            "year": [2023] * 3,
            "value_unrounded": [15.2, 19.83, 21.0],
        }
    )
    reference = pl.DataFrame(
        {"figure_id": ["c9_zhongzhuan_famous_teacher_share"], "year": [2023], "value": ["19.8"]}
    )
    row = reconcile(values, reference).to_dicts()[0]
    assert (row["status"], row["computed_value"]) == ("match", "19.8")
    other = values.with_columns(pl.Series("value_unrounded", [19.8, 21.0, 19.83]))  # swapped
    assert reconcile(other, reference)["status"].to_list() == ["differs"]
