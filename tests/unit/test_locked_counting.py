"""While the bureau has locked a school's year, deleting a file changes nothing that counts:
the deletion waits for the year to be reopened, like a re-upload does."""

from __future__ import annotations

from typing import Any

from vetreport.curate.ledger import (
    LOCK_EVENT,
    UNLOCK_EVENT,
    counting_records,
    current_submissions,
    locked_owners,
)

YEAR, SCHOOL, OTHER = 2023, "3133060001", "3133060002"
KEY = f"uploads/{YEAR}/{SCHOOL}/graduates.csv"
OTHER_KEY = f"uploads/{YEAR}/{OTHER}/graduates.csv"


def upload_record(key: str, school: str, token: str, at: str) -> dict[str, Any]:
    return {
        "submission_id": f"{school}-{token}",
        "key": key,
        "year": YEAR,
        "submitter": school,
        "school_code": school,
        "version_token": token,
        "uploaded_at": at,
        "processed_at": at,
        "outcome": "accepted",
        "datasets": [
            {"dataset": "graduates", "outcome": "accepted", "row_count": 3, "curated_key": "c"}
        ],
    }


def event(kind: str, school: str, at: str) -> dict[str, Any]:
    return {
        "submission_id": f"{at}-{kind}",
        "collection_event": kind,
        "year": YEAR,
        "submitter": school,
        "school_code": school,
        "key": "",
        "version_token": "",
        "uploaded_at": at,
        "processed_at": at,
        "outcome": kind,
        "datasets": [],
    }


UPLOADS = [
    upload_record(KEY, SCHOOL, "v1", "2024-01-01T00:00:00+00:00"),
    upload_record(OTHER_KEY, OTHER, "w1", "2024-01-01T00:00:00+00:00"),
]
LOCKED = [event(LOCK_EVENT, SCHOOL, "2024-02-01T00:00:00+00:00")]
BOTH_DELETED: dict[str, str] = {}  # neither key is in the bucket any more


def counted_keys(records: list[dict[str, Any]], current: dict[str, str]) -> list[str]:
    return sorted(record["key"] for record in counting_records(records, current))


def test_a_deletion_counts_as_a_withdrawal_when_nothing_is_locked() -> None:
    assert counted_keys(UPLOADS, BOTH_DELETED) == []


def test_a_locked_schools_deleted_file_still_counts_and_no_one_elses() -> None:
    records = UPLOADS + LOCKED
    assert locked_owners(records) == {(YEAR, SCHOOL)}
    assert counted_keys(records, BOTH_DELETED) == [KEY]
    submissions = current_submissions(records, BOTH_DELETED)
    assert submissions.get_column("submission_id").to_list() == [f"{SCHOOL}-v1"]


def test_after_reopening_the_deletion_withdraws() -> None:
    records = UPLOADS + LOCKED + [event(UNLOCK_EVENT, SCHOOL, "2024-03-01T00:00:00+00:00")]
    assert locked_owners(records) == frozenset()
    assert counted_keys(records, BOTH_DELETED) == []
