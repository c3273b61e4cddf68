"""Lineage as rules over submissions.parquet, and changelogs against older manifests."""

from __future__ import annotations

import polars as pl

from vetreport.publish.outputs.changelog import build_changelog, lineage_submissions
from vetreport.publish.outputs.metadata import VersionInfo

SUBMISSIONS = pl.DataFrame(
    {
        "year": [2022, 2023, 2023, 2023],
        "dataset": ["staff", "staff", "staff", "graduates"],
        "submitter": ["S1", "S1", "S2", "S1"],
        "key": ["k0", "k1", "k2", "k3"],
        "version_token": ["t0", "t1", "t2", "t3"],
        "submission_id": ["s0", "s1", "s2b", "s3"],
    }
)


def record(submission: str, submitter: str) -> dict:
    return {
        "year": 2023,
        "dataset": "staff",
        "submitter": submitter,
        "key": f"uploads/2023/{submitter}/staff.csv",
        "version_token": submission,
        "submission_id": submission,
    }


def test_a_rule_selects_datasets_and_years() -> None:
    rule = {"datasets": ["staff"], "first_year": 2023}
    assert lineage_submissions(SUBMISSIONS, rule)["submission_id"].to_list() == ["s1", "s2b"]
    every = {"datasets": None, "first_year": None}
    assert lineage_submissions(SUBMISSIONS, every).height == SUBMISSIONS.height


def test_a_changelog_against_a_manifest_that_listed_submissions_per_table() -> None:
    info = VersionInfo(2023, 2, "provisional", "2023-10-01T00:00:00+00:00", 1, None, "x", "y")
    old_table = pl.DataFrame({"city_name": ["绍兴市"], "year": [2023], "staff_count": [10.0]})
    new_table = old_table.with_columns(pl.lit(11.0).alias("staff_count"))
    listed = [record("s1", "S1"), record("s2a", "S2")]
    previous = {
        "status": "provisional",
        "submissions": listed,
        "tables": {"staff_size": {"submissions": listed}},
    }
    document, cells = build_changelog(
        info,
        {"staff_size": new_table},
        {"staff_size": {"datasets": ["staff"], "first_year": 2023}},
        SUBMISSIONS,
        previous,
        {"staff_size": old_table},
    )
    staff = next(entry for entry in document["tables"] if entry["table_id"] == "staff_size")
    assert staff["change"] == "changed"
    assert staff["submissions_added"] == ["s2b"]
    assert staff["submissions_removed"] == ["s2a"]
    assert cells.height == 1
    removed = [item["submission_id"] for item in document["submissions"]["removed"]]
    assert removed == ["s2a"]


def test_identical_tables_are_unchanged_without_reading_them() -> None:
    info = VersionInfo(2023, 2, "provisional", "2023-10-01T00:00:00+00:00", 1, None, "x", "y")
    table = pl.DataFrame({"city_name": ["绍兴市"], "year": [2023], "staff_count": [10.0]})
    previous = {"status": "provisional", "tables": {"staff_size": {"lineage": {}}}}
    document, cells = build_changelog(
        info,
        {"staff_size": table},
        {"staff_size": {"datasets": None, "first_year": None}},
        SUBMISSIONS,
        previous,
        {},
        SUBMISSIONS,
        frozenset({"staff_size"}),
    )
    staff = next(entry for entry in document["tables"] if entry["table_id"] == "staff_size")
    assert staff["change"] == "unchanged"
    assert document["previous_tables_unreadable"] == []
    assert cells.height == 0
