"""The sweep's batches run side by side, so none may hold part of a school another one holds.

Each batch ends by rewriting the upload list of every school it touched from the ledger as
it sees it; a school split across two concurrent batches could be left with a list that
misses the other batch's uploads. The sweep runs here against the session's Prefect test
server on a local bucket holding two years of the demo, with batches far smaller than a
school's uploads, and every batch the flow hands to ingest is recorded.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from vetreport.bucket.keys import school_index_key
from vetreport.bucket.store import open_store
from vetreport.curate.shards import school_of
from vetreport.demo.generator import build_demo_uploads

pytestmark = pytest.mark.integration
YEARS = (2022, 2023)


def test_a_sweep_never_splits_a_school_between_batches(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.ingest
    from vetreport.curate.ingest import ingest_keys

    store = open_store(tmp_path / "bucket")
    uploads = {
        key: body
        for year in YEARS
        for key, body in build_demo_uploads(year).items()
        if key.startswith(f"uploads/{year}/")
    }
    for key, body in uploads.items():
        store.put(key, body)
    batches: list[list[str]] = []
    lock = threading.Lock()

    def recording_ingest_keys(store_arg, keys, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            batches.append(list(keys))
        return ingest_keys(store_arg, keys, *args, **kwargs)

    monkeypatch.setattr(flows.ingest, "ingest_keys", recording_ingest_keys)
    # A school has about ten uploads a year: batches of 7 keys would cut every one of
    # them in two if keys were simply sliced.
    results = flows.ingest.ingest_uploads(
        str(tmp_path / "bucket"), sorted(uploads), label="small", batch_size=7
    )

    assert sorted(result["key"] for result in results) == sorted(uploads)
    school_batches = [batch for batch in batches if "/_city/" not in batch[0]]
    assert len(school_batches) > 2
    seen: dict[str, int] = {}
    for number, batch in enumerate(school_batches):
        for key in batch:
            assert seen.setdefault(school_of(key), number) == number, (
                f"{school_of(key)} is in batches {seen[school_of(key)]} and {number}"
            )
    # ... and every school's upload list names every one of its uploads
    for year in YEARS:
        for school in {school_of(key) for key in uploads if f"/{year}/" in key} - {"_city"}:
            index = json.loads(store.get(school_index_key(year, school, "json")))
            listed = {entry["key"] for entry in index["uploads"]}
            expected = {key for key in uploads if key.startswith(f"uploads/{year}/{school}/")}
            assert expected <= listed, f"{year} {school}: missing {sorted(expected - listed)}"
