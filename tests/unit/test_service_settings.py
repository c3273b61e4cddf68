"""Service helpers: deadlines and the publish status they imply, the completeness grid."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from vetreport.bucket.store import open_store
from vetreport.curate.completeness import as_grid
from vetreport.publish.policy import deadline_rrule, load_deadlines, status_for


def test_deadlines_from_the_environment_decide_the_status(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VETREPORT_DEADLINES", '{"2023": "2024-03-31T18:00:00+08:00"}')
    store = open_store(tmp_path / "bucket")
    assert load_deadlines() == {2023: datetime(2024, 3, 31, 10, tzinfo=UTC)}
    assert status_for(store, 2023, now=datetime(2024, 3, 31, 9, 59, tzinfo=UTC)) == "provisional"
    assert status_for(store, 2023, now=datetime(2024, 3, 31, 10, 0, tzinfo=UTC)) == "final"
    assert status_for(store, 2024) == "provisional"
    assert deadline_rrule(load_deadlines()[2023]) == (
        "DTSTART:20240331T100000Z\nRRULE:FREQ=YEARLY;COUNT=1"
    )


def test_a_long_completeness_frame_becomes_a_chinese_grid() -> None:
    long = pl.DataFrame(
        {
            "school_code": ["a", "a", "b", "b"],
            "school_name": ["甲", "甲", "乙", "乙"],
            "dataset": ["staff", "graduates", "staff", "graduates"],
            "status": ["accepted", "missing", "rejected", "accepted_with_warnings"],
        }
    )
    grid = as_grid(long)
    assert grid.columns == ["school_code", "school_name", "staff", "graduates"]
    assert grid.rows() == [("a", "甲", "已接收", "未提交"), ("b", "乙", "已退回", "有警告")]
