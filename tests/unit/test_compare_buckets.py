"""The refactor check (tests/compare_buckets.py) ignores moments in time and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from tests.compare_buckets import compare


def bucket(root: Path, record: dict, csv_text: str) -> Path:
    (root / "ledger" / "2023").mkdir(parents=True)
    (root / "ledger" / "2023" / "a.json").write_text(json.dumps(record))
    (root / "published").mkdir()
    (root / "published" / "t.csv").write_text(csv_text)
    return root


def test_times_differ_but_nothing_else(tmp_path: Path) -> None:
    before = bucket(tmp_path / "a", {"n": 1, "processed_at": "x"}, "2023-01-01T00:00:00Z,5\n")
    after = bucket(tmp_path / "b", {"n": 1, "processed_at": "y"}, "2024-02-02 10:11:12,5\n")
    assert compare(before, after, ("ledger", "published")) == []


def test_a_changed_value_or_a_missing_file_is_reported(tmp_path: Path) -> None:
    before = bucket(tmp_path / "a", {"n": 1}, "5\n")
    after = bucket(tmp_path / "b", {"n": 2}, "6\n")
    (before / "published" / "only.csv").write_text("x")
    assert compare(before, after, ("ledger", "published")) == [
        "differs: ledger/2023/a.json",
        "only before: published/only.csv",
        "differs: published/t.csv",
    ]


def test_an_expected_catalogue_change_is_said_explicitly(tmp_path: Path) -> None:
    before = bucket(tmp_path / "a", {"catalogue_version": "aaaa1111"}, "x\n")
    after = bucket(tmp_path / "b", {"catalogue_version": "bbbb2222"}, "x\n")
    assert compare(before, after, ("ledger",)) == ["differs: ledger/2023/a.json"]
    assert compare(before, after, ("ledger",), ("aaaa1111", "bbbb2222")) == []
