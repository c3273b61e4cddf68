"""Completeness, variance with history warnings, reconciliation modes, and the indicator docs."""

from __future__ import annotations

import json

import polars as pl
import pytest

from vetreport.aggregate.variance import HISTORY_RULE, history_findings, variance_table
from vetreport.bucket.keys import history_report_key
from vetreport.bucket.store import open_store
from vetreport.curate.completeness import (
    completeness_from_records,
    completeness_summary,
    published_completeness,
)
from vetreport.docs.indicator_docs import DOCS_PATH, render_indicator_docs
from vetreport.publish.reconcile import reconcile, summary_counts
from vetreport.school.history_report import write_history_reports


def record(
    school: str,
    dataset: str,
    submission: str,
    uploaded_at: str,
    outcome: str,
    extension: str = "csv",
) -> dict:
    return {
        "submission_id": submission,
        "key": f"uploads/2023/{school}/{dataset}.{extension}",
        "processed_at": uploaded_at,
        "version_token": submission,
        "uploaded_at": uploaded_at,
        "year": 2023,
        "submitter": school,
        "datasets": [
            {
                "dataset": dataset,
                "outcome": outcome,
                "curated_key": f"c/{submission}",
                "row_count": 1,
            }
        ],
    }


REGISTRY = pl.DataFrame(
    {
        "school_code": ["S00001", "S00002"],
        "school_name": ["学校一", "学校二"],
        "county_name": ["甲区", "乙区"],
    }
)


def in_bucket(records: list[dict]) -> dict[str, str]:
    """What the bucket holds after these uploads: each key at its latest version."""
    latest: dict[str, dict] = {}
    for item in sorted(records, key=lambda item: item["uploaded_at"]):
        latest[item["key"]] = item
    return {key: item["version_token"] for key, item in latest.items()}


def status_of(matrix: pl.DataFrame, school: str, dataset: str) -> dict:
    rows = matrix.filter((pl.col("school_code") == school) & (pl.col("dataset") == dataset))
    assert rows.height == 1
    return rows.to_dicts()[0]


def test_completeness_statuses() -> None:
    records = [
        record("S00001", "graduates", "a", "2023-09-01T00:00:00+00:00", "accepted"),
        # a refused workbook (another key) does not take away the accepted CSV
        record("S00001", "graduates", "b", "2023-09-03T00:00:00+00:00", "rejected", "xlsx"),
        record("S00001", "staff", "c", "2023-09-01T00:00:00+00:00", "accepted_with_warnings"),
        record("S00002", "staff", "d", "2023-09-02T00:00:00+00:00", "rejected"),
        record("S09999", "staff", "e", "2023-09-02T00:00:00+00:00", "rejected"),
    ]
    matrix = completeness_from_records(records, REGISTRY, 2023, in_bucket(records))
    # registry schools x the ten datasets schools submit; unknown schools are not listed
    assert matrix.height == 2 * 10
    assert set(matrix["school_code"]) == {"S00001", "S00002"}
    graduates = status_of(matrix, "S00001", "graduates")
    assert graduates["status"] == "accepted"
    assert graduates["last_outcome"] == "rejected"
    assert graduates["is_latest_upload_rejected"] is True
    assert graduates["last_uploaded_at"] == "2023-09-03T00:00:00+00:00"
    assert graduates["accepted_uploaded_at"] == "2023-09-01T00:00:00+00:00"
    assert graduates["submission_id"] == "a"
    assert graduates["upload_count"] == 2
    assert status_of(matrix, "S00001", "staff")["status"] == "accepted_with_warnings"
    assert status_of(matrix, "S00002", "staff")["status"] == "rejected"
    missing = status_of(matrix, "S00002", "awards")
    assert missing["status"] == "missing"
    assert missing["upload_count"] == 0 and missing["last_uploaded_at"] is None
    published = published_completeness(matrix)
    assert "last_outcome" not in published.columns
    assert status_of(published, "S00001", "graduates")["status"] == "accepted"
    summary = completeness_summary(matrix)
    assert summary.filter(pl.col("dataset") == "staff")["rejected"].to_list() == [1]


def test_completeness_without_registry_uses_the_ledger() -> None:
    records = [record("S00001", "staff", "c", "2023-09-01T00:00:00+00:00", "accepted")]
    matrix = completeness_from_records(records, REGISTRY.clear(), 2023, in_bucket(records))
    assert set(matrix["school_code"]) == {"S00001"}
    assert not matrix["is_in_registry"].any()


def test_the_file_now_in_the_bucket_decides_the_status() -> None:
    good = record("S00001", "graduates", "a", "2023-09-01T00:00:00+00:00", "accepted")
    bad = record("S00001", "graduates", "b", "2023-09-03T00:00:00+00:00", "rejected")
    # overwritten by a refused file under the same name: nothing of that file counts
    matrix = completeness_from_records([good, bad], REGISTRY, 2023, in_bucket([good, bad]))
    assert status_of(matrix, "S00001", "graduates")["status"] == "rejected"
    assert status_of(matrix, "S00001", "graduates")["submission_id"] is None
    # reverted to the good file (its version is current again): it counts again
    matrix = completeness_from_records([good, bad], REGISTRY, 2023, {good["key"]: "a"})
    assert status_of(matrix, "S00001", "graduates")["status"] == "accepted"
    # deleted: withdrawn, shown as such
    withdrawn = record("S00001", "graduates", "w", "2023-09-04T00:00:00+00:00", "withdrawn")
    matrix = completeness_from_records([good, bad, withdrawn], REGISTRY, 2023, {})
    assert status_of(matrix, "S00001", "graduates")["status"] == "withdrawn"


def values_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "year": pl.Int64,
            "region_level": pl.Utf8,
            "city_name": pl.Utf8,
            "county_name": pl.Utf8,
            "school_code": pl.Utf8,
            "school_name": pl.Utf8,
            "indicator_id": pl.Utf8,
            "value_unrounded": pl.Float64,
            "indicator_value": pl.Float64,
        },
        orient="row",
    )


def test_variance_flags_changes_beyond_tolerance(tmp_path) -> None:
    # staff_count tolerance 15%; matched_employment_rate_pct tolerance 15%
    values = values_frame(
        [
            (2022, "city", "绍兴市", None, None, None, "staff_count", 100.0, 100.0),
            (2023, "city", "绍兴市", None, None, None, "staff_count", 114.0, 114.0),
            (2022, "school", "绍兴市", "甲区", "S00001", "学校一", "staff_count", 50.0, 50.0),
            (2023, "school", "绍兴市", "甲区", "S00001", "学校一", "staff_count", 80.0, 80.0),
            (2022, "school", "绍兴市", "甲区", "S00002", "学校二", "staff_count", 0.0, 0.0),
            (2023, "school", "绍兴市", "甲区", "S00002", "学校二", "staff_count", 3.0, 3.0),
            (2021, "school", "绍兴市", "甲区", "S00001", "学校一", "staff_count", 10.0, 10.0),
            (2023, "county", "绍兴市", "甲区", None, None, "staff_count", 1.0, 1.0),
        ]
    )
    variance = variance_table(values)
    flagged = {(row["year"], row["school_code"]): row for row in variance.to_dicts()}
    # city +14% is within 15%; S00001 +60% and 2021->2022 +400% are beyond; 0 -> 3 is flagged
    assert set(flagged) == {(2023, "S00001"), (2022, "S00001"), (2023, "S00002")}
    assert flagged[(2023, "S00001")]["change_pct"] == 60.0
    assert flagged[(2023, "S00001")]["tolerance_pct"] == 15.0
    assert flagged[(2023, "S00002")]["change_pct"] is None

    store = open_store(str(tmp_path / "bucket"))
    first = write_history_reports(
        store, history_findings(variance, 2023), 2023, ["S00001", "S00002", "S00003"]
    )
    assert first.written == ["S00001", "S00002", "S00003"]
    # S00003's first file lists no warning: what it sees (none) did not change
    assert first.warnings_changed == ["S00001", "S00002"]
    report = json.loads(store.get(history_report_key(2023, "S00001")))
    assert report["finding_count"] == 1
    finding = report["findings"][0]
    assert finding["rule_id"] == HISTORY_RULE and finding["severity"] == "warning"
    assert (finding["previous"], finding["current"], finding["change_pct"]) == (50.0, 80.0, 60.0)
    assert json.loads(store.get(history_report_key(2023, "S00003")))["findings"] == []
    # writing the same again changes nothing
    again = write_history_reports(
        store, history_findings(variance, 2023), 2023, ["S00001", "S00002", "S00003"]
    )
    assert (again.written, again.warnings_changed) == ([], [])
    # S00001's warning goes: its file is rewritten and its warnings changed; a file that
    # is not a history report is rewritten, but it said no warning and still says none
    store.put(history_report_key(2023, "S00003"), b"{not json")
    gone = write_history_reports(store, {}, 2023, ["S00001", "S00003"])
    assert (gone.written, gone.warnings_changed) == (["S00001", "S00003"], ["S00001"])


@pytest.mark.parametrize(
    ("figure_id", "reference", "computed", "status", "text"),
    [
        ("t1_zhongzhi_share", "34.30", 34.2954, "match", "34.30"),
        ("t4_senior_title_share", "34.8", 34.856, "differs", "34.9"),
        ("s1_avg_school_size", "2750", 2750.59, "differs", "2751"),
        ("s1_campus_area", "1930000", 1934999.0, "match", "1930000"),  # 约193万: round
        ("s1_campus_area", "1930000", 1935000.0, "differs", "1940000"),
        ("s1_building_area", "1470000", 1479999.0, "match", "1470000"),  # 147万余: floor
        ("s1_building_area", "1470000", 1469999.0, "differs", "1460000"),
        ("s7_per_student_budget", "29860.31", 29860.3100855, "match", "29860.31"),
    ],
)
def test_reconcile_compares_at_the_reference_precision(
    figure_id: str, reference: str, computed: float, status: str, text: str
) -> None:
    from vetreport.publish.reconcile import load_figure_map

    indicator = load_figure_map().filter(pl.col("figure_id") == figure_id)["indicator_id"][0]
    values = pl.DataFrame(
        {
            "region_level": ["city"],
            "indicator_id": [indicator],
            "year": [2023],
            "value_unrounded": [computed],
        }
    )
    reference_frame = pl.DataFrame(
        {
            "figure_id": [figure_id, "unknown_figure"],
            "year": [2023, 2023],
            "value": [reference, "1"],
        }
    )
    result = reconcile(values, reference_frame)
    row = result.filter(pl.col("figure_id") == figure_id).to_dicts()[0]
    assert (row["status"], row["computed_value"]) == (status, text)
    assert summary_counts(result)["not_checked"] == 1


def test_committed_indicator_docs_equal_the_generated_ones() -> None:
    assert DOCS_PATH.read_text(encoding="utf-8") == render_indicator_docs(), (
        "run: .venv/bin/vetreport docs"
    )
