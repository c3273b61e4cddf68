"""The ledger's digests: a cache of immutable records that never changes what is read.

A reader with digests must return exactly the records, in the same order, that reading
every record object returns; digests only save the reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vetreport.bucket.store import KeyNotFound, LocalStore
from vetreport.curate import ledger
from vetreport.curate.ledger import (
    digest_prefix,
    read_ledger_view,
    read_records,
    read_records_under,
    write_record,
)

YEAR = 2023


class CountingStore(LocalStore):
    """A folder store that counts reads of ledger record objects and can lose digests."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.record_reads = 0
        self.lost: set[str] = set()

    def get(self, key: str) -> bytes:
        if key in self.lost:
            raise KeyNotFound(key)
        if key.startswith(f"ledger/{YEAR}/") and key.endswith(".json"):
            self.record_reads += 1
        return super().get(key)

    def reads_of(self, read: Any) -> tuple[Any, int]:
        """What ``read()`` returns, and how many record objects it read."""
        self.record_reads = 0
        result = read()
        return result, self.record_reads


def record(school: str, n: int) -> dict[str, Any]:
    return {
        "year": YEAR,
        "submitter": school,
        "school_code": school,
        "stem": "staff",
        "extension": "csv",
        "key": f"uploads/{YEAR}/{school}/staff.csv",
        "submission_id": f"{school}{n:04d}",
        "version_token": f"v{n}",
        "uploaded_at": f"2023-09-01T00:00:{n:02d}+00:00",
        "processed_at": f"2023-09-01T00:01:{n:02d}+00:00",
        "outcome": "accepted",
        "datasets": [{"dataset": "staff", "outcome": "accepted", "row_count": n}],
        "note": "含中文",
    }


def truth(store: LocalStore) -> list[dict[str, Any]]:
    """Every record object read one by one, in listing order (what digests must equal)."""
    return read_records_under(store, [f"ledger/{YEAR}/"])


def digests(store: LocalStore) -> list[str]:
    return [info.key for info in store.list(digest_prefix(YEAR))]


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    bucket = CountingStore(tmp_path / "bucket")
    for n in range(12):
        write_record(bucket, record(f"S{n % 4:05d}", n))
    return bucket


def test_a_reader_takes_the_records_from_the_digest_the_last_one_left(
    store: CountingStore,
) -> None:
    assert read_records(store, [YEAR]) == truth(store)
    assert digests(store) == []  # a plain reader leaves nothing
    expected = truth(store)
    view = store.reads_of(lambda: read_ledger_view(store, [YEAR], write_digest=True))
    assert (view[0].records, view[1]) == (expected, 12)
    assert len(digests(store)) == 1
    assert store.reads_of(lambda: read_records(store, [YEAR])) == (expected, 0)  # the digest
    # a record written since is read alone, and the next writer digests it
    write_record(store, record("S00009", 40))
    expected = truth(store)
    assert store.reads_of(lambda: read_records(store, [YEAR], write_digest=True)) == (expected, 1)
    assert len(digests(store)) == 2
    assert store.reads_of(lambda: read_records(store, [YEAR])) == (expected, 0)


def test_a_digest_never_brings_back_a_record_that_is_gone_or_unreadable(
    store: CountingStore,
) -> None:
    read_records(store, [YEAR], write_digest=True)
    [digest] = digests(store)
    gone = next(info.key for info in store.list(f"ledger/{YEAR}/S00001/"))
    store.delete(gone)
    assert read_records(store, [YEAR]) == truth(store)
    assert len(truth(store)) == 11
    # merged away between the listing and the read: its records are read alone
    store.lost.add(digest)
    expected = truth(store)
    assert store.reads_of(lambda: read_records(store, [YEAR])) == (expected, 11)
    store.lost.clear()
    # an unreadable digest is passed over, with the same result
    store.put(digest, b"not gzip at all")
    assert read_records(store, [YEAR]) == truth(store)


def test_many_digests_are_merged_into_one(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "DIGESTS_BEFORE_MERGE", 2)
    for n in range(3):
        write_record(store, record("S00008", 50 + n))
        read_records(store, [YEAR], write_digest=True)
    assert len(digests(store)) == 3
    write_record(store, record("S00008", 60))
    expected = truth(store)
    assert read_records(store, [YEAR], write_digest=True) == expected
    [merged] = digests(store)
    assert store.reads_of(lambda: read_records(store, [YEAR])) == (expected, 0)
    lines = store.get(merged)
    import gzip

    keys = [json.loads(line)["key"] for line in gzip.decompress(lines).splitlines()]
    assert len(keys) == len(truth(store)) == len(set(keys))


def test_what_counts_read_a_year_at_a_time_is_what_counts_read_at_once(tmp_path: Path) -> None:
    """current_submissions_of_years gives the frame the records of every year at once give."""
    from polars.testing import assert_frame_equal

    from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
    from vetreport.curate.ledger import current_submissions_of_years
    from vetreport.demo.national import write_national_bucket

    years = (2021, 2022, 2023)
    root = tmp_path / "bucket"
    write_national_bucket(root, schools=6, seed=YEAR, years=years)
    store = LocalStore(root)
    ingest_keys(store, unprocessed_upload_keys(store))
    before = read_ledger_view(store, years).current_submissions()
    # a key uploaded again in one year, and one deleted in another: what counts moves
    again = next(key for key in store.list_keys("uploads/2022/") if "/graduates." in key)
    store.put(again, store.get(again) + b"\n")
    [result] = ingest_keys(store, [again])
    assert result.outcome != "rejected"
    store.delete(next(key for key in store.list_keys("uploads/2021/") if "/staff." in key))

    at_once = read_ledger_view(store, years).current_submissions()
    assert at_once.height > 0 and set(at_once["year"]) == set(years)
    assert not at_once.equals(before)
    assert_frame_equal(current_submissions_of_years(store, years), at_once)
    report_year = read_ledger_view(store, [2023])
    assert_frame_equal(current_submissions_of_years(store, years, known=report_year), at_once)
    assert_frame_equal(
        current_submissions_of_years(store, []), read_ledger_view(store, []).current_submissions()
    )
