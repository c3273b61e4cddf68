"""Curated files shared by several submissions: each read once, only counting rows kept."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from vetreport.aggregate.compute import load_curated
from vetreport.bucket.store import LocalStore
from vetreport.curate.completeness import completeness_matrix
from vetreport.curate.curated import read_curated_rows
from vetreport.curate.ledger import read_ledger_view, write_record

YEAR = 2023


class CountingStore(LocalStore):
    """A folder bucket that counts the reads of each key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: dict[str, int] = {}

    def get(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().get(key)


def staff_rows(school: str, submission: str, count: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "school_code": [school] * count,
            "staff_id": [f"{school}-{number}" for number in range(count)],
            "year": [YEAR] * count,
            "submission_id": [submission] * count,
            "source_row_number": list(range(2, count + 2)),
        }
    )


def put_parquet(store: LocalStore, key: str, *frames: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    pl.concat(frames).write_parquet(buffer)
    store.put(key, buffer.getvalue())


def upload_and_record(
    store: LocalStore, school: str, submission: str, uploaded_at: str, curated: str
) -> None:
    """Upload a school's staff.csv (its new version) and the ledger record of it."""
    key = f"uploads/{YEAR}/{school}/staff.csv"
    info = store.put(key, f"{submission}\n".encode())
    write_record(
        store,
        {
            "year": YEAR,
            "submitter": school,
            "stem": "staff",
            "extension": "csv",
            "submission_id": submission,
            "key": key,
            "version_token": info.version_token,
            "uploaded_at": uploaded_at,
            "processed_at": uploaded_at,
            "datasets": [
                {
                    "dataset": "staff",
                    "outcome": "accepted",
                    "curated_key": curated,
                    "row_count": 0,
                }
            ],
        },
    )


def test_a_shared_file_is_read_once_and_only_counting_submissions_are_kept(
    tmp_path: Path,
) -> None:
    store = CountingStore(tmp_path)
    batch_one = "curated/staff/year=2023/batch=one.parquet"
    batch_two = "curated/staff/year=2023/batch=two.parquet"
    # One ingest batch curated two schools' staff rosters into one file ...
    put_parquet(store, batch_one, staff_rows("S00001", "a1", 3), staff_rows("S00002", "b1", 5))
    upload_and_record(store, "S00001", "a1", "2023-09-01T00:00:00+00:00", batch_one)
    upload_and_record(store, "S00002", "b1", "2023-09-01T00:00:00+00:00", batch_one)
    # ... then S00002 corrected its file: the correction's rows are in the next batch's
    # file, and b1 (still in the first file) no longer counts.
    put_parquet(store, batch_two, staff_rows("S00002", "b2", 2))
    upload_and_record(store, "S00002", "b2", "2023-09-02T00:00:00+00:00", batch_two)

    frames, current = load_curated(store, [YEAR])

    staff = frames["staff"]
    assert sorted(current.get_column("submission_id").to_list()) == ["a1", "b2"]
    assert staff.group_by("submission_id").len().sort("submission_id").rows() == [
        ("a1", 3),
        ("b2", 2),
    ]
    assert store.reads[batch_one] == 1
    assert store.reads[batch_two] == 1


def test_one_file_per_submission_still_reads_every_row(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    for school, submission, count in (("S00001", "a1", 3), ("S00002", "b1", 4)):
        key = f"curated/staff/year=2023/school={school}/{submission}.parquet"
        put_parquet(store, key, staff_rows(school, submission, count))
        upload_and_record(store, school, submission, "2023-09-01T00:00:00+00:00", key)

    view = read_ledger_view(store, [YEAR])
    rows = read_curated_rows(store, view.current_submissions())["staff"]

    assert rows.height == 7
    assert set(store.reads.values()) == {1}


def test_the_view_answers_completeness_as_a_fresh_read_does(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = f"curated/staff/year={YEAR}/batch=one.parquet"
    put_parquet(store, key, staff_rows("S00001", "a1", 3), staff_rows("S00002", "b1", 5))
    upload_and_record(store, "S00001", "a1", "2023-09-01T00:00:00+00:00", key)
    upload_and_record(store, "S00002", "b1", "2023-09-01T00:00:00+00:00", key)
    store.delete(f"uploads/{YEAR}/S00002/staff.csv")  # withdrawn

    from_view = completeness_matrix(store, YEAR, read_ledger_view(store, [YEAR - 1, YEAR]))
    fresh = completeness_matrix(store, YEAR)

    assert from_view.equals(fresh)
    staff = fresh.filter(pl.col("dataset") == "staff").sort("school_code")
    assert staff.get_column("status").to_list() == ["accepted", "withdrawn"]
