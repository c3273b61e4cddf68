"""A school's upload list: newest first, what counts now, links to reports that exist."""

from __future__ import annotations

import json
import time

from vetreport.bucket.keys import school_index_key
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys
from vetreport.demo import walkthrough


def test_the_upload_list_follows_the_file_now_in_the_bucket(tmp_path) -> None:
    store = open_store(str(tmp_path / "bucket"))
    key = walkthrough.UPLOAD_KEY
    files = walkthrough.build_files()
    year, school = walkthrough.YEAR, walkthrough.SCHOOL

    def uploads_listed() -> list[dict]:
        return json.loads(store.get(school_index_key(year, school, "json")))["uploads"]

    for name in ("graduates-corrected.csv", "graduates-with-errors.csv"):
        store.put(key, files[name])
        ingest_keys(store, [key])
        time.sleep(0.02)  # distinct upload times
    uploads = uploads_listed()
    # the refused file replaced the good one under the same name: nothing of it counts
    assert [(u["outcome"], u["is_current"]) for u in uploads] == [
        ("rejected", False),  # the newest, listed first
        ("accepted", False),
    ]
    # the school puts back the file it sent first: a new upload, reported and counted again
    store.put(key, files["graduates-corrected.csv"])
    [again] = ingest_keys(store, [key])
    assert not again.was_skipped and again.outcome == "accepted"
    assert [(u["outcome"], u["is_current"]) for u in uploads_listed()] == [
        ("accepted", True),
        ("rejected", False),
        ("accepted", False),
    ]
    assert uploads[0]["error_count"] == 5 and uploads[0]["datasets"] == "毕业生去向"
    for upload in uploads:
        for link in upload["links"]:
            assert store.exists(f"reports/{year}/{school}/{link['href']}")
    page = store.get(school_index_key(year, school, "html")).decode("utf-8")
    assert page.index("退回") < page.index("通过")
    assert 'href="' + uploads[0]["links"][0]["href"] + '"' in page


def test_a_skipped_repeat_does_not_rewrite_the_list(tmp_path) -> None:
    store = open_store(str(tmp_path / "bucket"))
    key = walkthrough.UPLOAD_KEY
    store.put(key, walkthrough.build_files()["graduates-corrected.csv"])
    ingest_keys(store, [key])
    index = school_index_key(walkthrough.YEAR, walkthrough.SCHOOL, "html")
    store.delete(index)
    ingest_keys(store, [key])  # the same version again: nothing processed
    assert not store.exists(index)


def test_history_rewrites_the_lists_of_the_schools_whose_warnings_changed(tmp_path) -> None:
    """A first history file with no warning changes nothing a school sees; a warning does."""
    from tests.unit.test_collection import HISTORY
    from vetreport.curate.school_index import write_history_and_indexes

    store = open_store(str(tmp_path / "bucket"))
    year, school = walkthrough.YEAR, walkthrough.SCHOOL
    store.put(walkthrough.UPLOAD_KEY, walkthrough.build_files()["graduates-corrected.csv"])
    ingest_keys(store, [walkthrough.UPLOAD_KEY])
    index = school_index_key(year, school, "json")
    store.delete(index)  # rewritten or not, it is seen from here on

    assert write_history_and_indexes(store, {}, year, [school]) == []
    assert store.exists(f"reports/{year}/{school}/history.json")
    assert not store.exists(index)

    assert write_history_and_indexes(store, {school: [HISTORY]}, year, [school]) == [school]
    listed = json.loads(store.get(index))["status"]["warnings"]
    assert [(item["dataset"], item["column"]) for item in listed] == [
        ("history", HISTORY["indicator_id"])
    ]

    store.delete(index)
    assert write_history_and_indexes(store, {school: [HISTORY]}, year, [school]) == []
    assert not store.exists(index)
    assert write_history_and_indexes(store, {}, year, [school]) == [school]  # the warning goes
    assert json.loads(store.get(index))["status"]["warnings"] == []
