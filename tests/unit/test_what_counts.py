"""What counts is the object now at each key, and only what its sender may send.

These tests feed the classes of trouble a careless or hostile school brings (docs/
operations.md, "What counts, and when") through the folder bucket; the same rules run
against S3 in tests/integration/test_what_counts_on_s3.py:

- a school's file or workbook sheet of a bureau dataset, and the reverse;
- keys that are not canonical ASCII, years not open for collection;
- one upload, one verdict: no sheet of a rejected workbook counts;
- overwrites, reverts to earlier bytes, old clocks and deletions;
- a key that breaks the layout is reported to the school it names, and the batch goes on;
- a file that keeps killing its worker is refused after a second try.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from vetreport.bucket.store import LocalStore, ObjectStore, open_store
from vetreport.curate.completeness import completeness_matrix
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.curate.ledger import current_submissions, current_upload_versions, read_records

SCHOOL = "3133060003"
OTHER = "3133060004"
YEAR = 2023
STAFF_HEADER = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"


def staff_csv(school: str, count: int) -> bytes:
    rows = [f"{school},T{index:05d},是,是,大学本科,中级" for index in range(count)]
    return ("\n".join([STAFF_HEADER, *rows]) + "\n").encode()


BROKEN_STAFF = "学校代码,教职工编号,是否在编\n3133060003,T0001,也许\n".encode()


def staff_key(school: str = SCHOOL, extension: str = "csv") -> str:
    return f"uploads/{YEAR}/{school}/staff.{extension}"


def counted_staff(store: ObjectStore, school: str = SCHOOL) -> int | None:
    """Rows of the staff submission that counts for a school now (None: nothing counts)."""
    current = current_submissions(
        read_records(store, [YEAR]), current_upload_versions(store, [YEAR])
    ).filter((pl.col("submitter") == school) & (pl.col("dataset") == "staff"))
    return current.item(0, "row_count") if current.height else None


def records_of(store: ObjectStore, key: str) -> list[dict]:
    return [record for record in read_records(store, [YEAR]) if record["key"] == key]


def workbook(sheets: dict[str, list[list[str]]]) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for row_number, row in enumerate(rows):
            sheet.write_row(row_number, 0, row)
    book.close()
    return buffer.getvalue()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A fresh bucket of each kind: a folder, and an unversioned bucket on an S3 endpoint."""
    if request.param == "local":
        return open_store(str(tmp_path / "bucket"))
    from tests.conftest import make_bucket

    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(f"s3://{make_bucket(endpoint)}")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """A folder bucket, for what only a file system can do (raw names, old clocks)."""
    return open_store(str(tmp_path / "bucket"))


# -- who may send what -------------------------------------------------------------------------


def test_a_school_cannot_send_the_bureaus_datasets_as_a_file(store: LocalStore) -> None:
    key = f"uploads/{YEAR}/{SCHOOL}/school_registry.csv"
    store.put(
        key,
        "学校代码,学校名称,省份,地市,区县,办学性质\nX1234567,假学校,浙江省,绍兴市,越城区,公办\n".encode(),
    )
    [result] = ingest_keys(store, [key])
    assert result.outcome == "rejected"
    report = json.loads(store.get(result.report_key))
    assert [item["rule_id"] for item in report["counts_by_rule"]] == ["file.dataset_not_allowed"]
    assert not list(store.list("curated/"))


def test_a_school_workbook_with_a_bureau_sheet_is_refused_whole(store: LocalStore) -> None:
    key = f"uploads/{YEAR}/{SCHOOL}/workbook.xlsx"
    staff_rows = [row.split(",") for row in staff_csv(SCHOOL, 3).decode().splitlines()]
    body = workbook(
        {
            "staff": staff_rows,
            "city_reference": [["地市", "常住人口"], ["绍兴市", "1"]],
        }
    )
    store.put(key, body)
    [result] = ingest_keys(store, [key])
    report = json.loads(store.get(result.report_key))
    assert result.outcome == "rejected"
    assert "structure.sheet_not_allowed" in {item["rule_id"] for item in report["counts_by_rule"]}
    # one upload, one verdict: the valid staff sheet does not count either
    assert counted_staff(store) is None
    [record] = records_of(store, key)
    assert {entry["outcome"] for entry in record["datasets"]} == {"rejected"}


def test_the_bureau_cannot_send_a_schools_roster(store: LocalStore) -> None:
    key = f"uploads/{YEAR}/_city/staff.csv"
    store.put(key, staff_csv(SCHOOL, 2))
    [result] = ingest_keys(store, [key])
    assert result.outcome == "rejected"
    assert counted_staff(store) is None


# -- keys and years ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(f"uploads/２０２３/{SCHOOL}/staff.csv", id="full-width year"),
        pytest.param(f"uploads/2023/{SCHOOL}/staff\\copy.csv", id="backslash"),
        pytest.param(f"uploads/2023/{SCHOOL}/sub/staff.csv", id="extra folder"),
        pytest.param(f"uploads/2023/{SCHOOL}/Staff.CSV ", id="trailing space"),
        pytest.param(f"uploads/2023/{SCHOOL}/员工.csv", id="chinese file name"),
    ],
)
def test_a_non_canonical_key_is_refused_and_reported(store: LocalStore, key: str) -> None:
    put_raw(store, key, staff_csv(SCHOOL, 2))
    good = staff_key(OTHER)
    store.put(good, staff_csv(OTHER, 4))
    results = ingest_keys(store, [key, good])
    outcomes = {result.key: result.outcome for result in results}
    assert outcomes[key] == "rejected" and outcomes[good] == "accepted"
    assert counted_staff(store) is None and counted_staff(store, OTHER) == 4
    bad = next(result for result in results if result.key == key)
    report = json.loads(store.get(bad.report_key))
    assert report["counts_by_rule"][0]["rule_id"] == "file.key_layout"
    if "２" not in key:  # the school it names sees the report on its upload list
        assert bad.report_key.startswith(f"reports/2023/{SCHOOL}/")
        listing = json.loads(store.get(f"reports/2023/{SCHOOL}/index.json"))
        assert [upload["outcome"] for upload in listing["uploads"]] == ["rejected"]
    # processed once: a sweep does not meet it again
    assert key not in unprocessed_upload_keys(store)


def put_raw(store: ObjectStore, key: str, data: bytes) -> None:
    """Write an object under any name, as a school's own client would (no layout check)."""
    if isinstance(store, LocalStore):
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(f"uploads/2023/{SCHOOL}//staff.csv", id="empty part"),
        pytest.param(f"uploads/2023/{SCHOOL}/../{SCHOOL}/staff.csv", id="dot-dot"),
        pytest.param(f"uploads/2023/{SCHOOL}/./staff.csv", id="dot"),
    ],
)
def test_on_s3_names_no_folder_could_hold_are_refused_and_reported(
    store: ObjectStore, key: str
) -> None:
    if isinstance(store, LocalStore):
        pytest.skip("a folder bucket cannot hold these names; S3 can")
    put_raw(store, key, staff_csv(SCHOOL, 2))
    store.put(staff_key(OTHER), staff_csv(OTHER, 4))
    keys = unprocessed_upload_keys(store)
    assert key in keys
    results = {result.key: result for result in ingest_keys(store, keys)}
    assert results[key].outcome == "rejected"
    assert results[staff_key(OTHER)].outcome == "accepted"
    assert results[key].report_key.startswith(f"reports/2023/{SCHOOL}/")
    assert key not in unprocessed_upload_keys(store)


def test_a_file_name_that_is_not_utf8_does_not_stop_the_batch(local_store: LocalStore) -> None:
    folder = local_store.root / "uploads" / "2023" / SCHOOL
    folder.mkdir(parents=True)
    with open(os.fsencode(folder) + b"/staff\xff.csv", "wb") as stream:
        stream.write(staff_csv(SCHOOL, 2))
    local_store.put(staff_key(OTHER), staff_csv(OTHER, 3))
    keys = unprocessed_upload_keys(local_store)
    assert len(keys) == 2
    results = ingest_keys(local_store, keys)
    assert sorted(result.outcome for result in results) == ["accepted", "rejected"]
    assert unprocessed_upload_keys(local_store) == []
    bad = next(result for result in results if result.outcome == "rejected")
    assert "\\xff" in json.loads(local_store.get(bad.report_key))["key"]


@pytest.mark.parametrize("year", [9999, 1900, 2030])
def test_a_year_not_open_for_collection_is_refused(store: LocalStore, year: int) -> None:
    key = f"uploads/{year}/{SCHOOL}/staff.csv"
    store.put(key, staff_csv(SCHOOL, 2))
    [result] = ingest_keys(store, [key])
    assert result.outcome == "rejected"
    report = json.loads(store.get(result.report_key))
    assert report["counts_by_rule"][0]["rule_id"] == "file.year_not_open"
    assert not list(store.list("curated/"))


def test_the_open_years_come_from_the_settings(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETREPORT_OPEN_YEARS", "2024")
    store.put(staff_key(), staff_csv(SCHOOL, 2))
    [result] = ingest_keys(store, [staff_key()])
    assert result.outcome == "rejected"


# -- the object now at the key --------------------------------------------------------------------


def test_overwrite_with_a_refused_file_counts_nothing_and_a_revert_counts_again(
    store: LocalStore,
) -> None:
    key = staff_key()
    store.put(key, staff_csv(SCHOOL, 5))
    ingest_keys(store, [key])
    assert counted_staff(store) == 5
    store.put(key, BROKEN_STAFF)
    [rejected] = ingest_keys(store, [key])
    assert rejected.outcome == "rejected" and counted_staff(store) is None
    # the school puts back exactly the bytes it sent first: a new upload, a new report
    # (S3 tells uploads of the same bytes apart by their time in whole seconds)
    if not isinstance(store, LocalStore):
        time.sleep(1.1)
    store.put(key, staff_csv(SCHOOL, 5))
    [reverted] = ingest_keys(store, [key])
    assert not reverted.was_skipped and reverted.outcome == "accepted"
    assert counted_staff(store) == 5
    assert len(records_of(store, key)) == 3  # one record per upload


def test_a_file_with_an_old_modification_time_still_replaces_the_newer_one(
    local_store: LocalStore,
) -> None:
    key = staff_key()
    local_store.put(key, staff_csv(SCHOOL, 5))
    ingest_keys(local_store, [key])
    local_store.put(key, staff_csv(SCHOOL, 7))
    os.utime(local_store.root / key, (1_000_000_000, 1_000_000_000))  # as cp -p or an archive would
    [result] = ingest_keys(local_store, [key])
    assert not result.was_skipped
    assert counted_staff(local_store) == 7


def test_a_deleted_upload_is_withdrawn_once_and_shown_as_such(store: LocalStore) -> None:
    key = staff_key()
    store.put(key, staff_csv(SCHOOL, 5))
    ingest_keys(store, [key])
    store.delete(key)
    assert unprocessed_upload_keys(store) == [key]  # the sweep finds the deletion
    [withdrawn] = ingest_keys(store, [key])
    assert withdrawn.outcome == "withdrawn" and not withdrawn.was_skipped
    assert counted_staff(store) is None
    report = json.loads(store.get(withdrawn.report_key))
    assert report["outcome"] == "withdrawn" and "撤回" in report["message_zh"]
    status = completeness_matrix(store, YEAR).filter(
        (pl.col("school_code") == SCHOOL) & (pl.col("dataset") == "staff")
    )
    assert status.item(0, "status") == "withdrawn"
    # once: the sweep is satisfied and a repeated event changes nothing
    assert unprocessed_upload_keys(store) == []
    [again] = ingest_keys(store, [key])
    assert again.was_skipped
    assert len(records_of(store, key)) == 2


def test_a_key_never_processed_and_then_deleted_leaves_nothing(store: LocalStore) -> None:
    assert ingest_keys(store, [staff_key()]) == []
    assert not list(store.list("ledger/"))


# -- a file that kills its worker -------------------------------------------------------------------


def test_a_file_that_killed_its_worker_is_tried_alone_then_refused_unread(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vetreport.curate.ingest as ingest_module

    monkeypatch.setenv("VETREPORT_ATTEMPT_STALE_SECONDS", "0")
    key = staff_key()
    local_store.put(key, staff_csv(SCHOOL, 5))
    batches: list[int] = []

    def dies(store_, infos, registries, settings, **_):  # the worker is killed reading
        batches.append(len(infos))
        raise MemoryError("killed")

    monkeypatch.setattr(ingest_module, "_ingest_batch", dies)
    for _ in range(2):
        with pytest.raises(MemoryError):
            ingest_keys(local_store, [key])
    monkeypatch.undo()
    monkeypatch.setenv("VETREPORT_ATTEMPT_STALE_SECONDS", "0")
    [result] = ingest_keys(local_store, [key])
    assert batches == [1, 1]
    assert result.outcome == "rejected"
    report = json.loads(local_store.get(result.report_key))
    assert report["counts_by_rule"][0]["rule_id"] == "file.reader_crashed"
    assert unprocessed_upload_keys(local_store) == []
    assert not list(local_store.list(ingest_module.ATTEMPTS_PREFIX))  # markers retired


def test_an_upload_another_worker_is_processing_is_left_to_it(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vetreport.curate.ingest as ingest_module

    key = staff_key()
    local_store.put(key, staff_csv(SCHOOL, 5))
    info = local_store.head(key)
    marker = ingest_module._mark_batch(local_store, [info], 1)  # another worker started it
    assert ingest_keys(local_store, [key]) == []  # still running elsewhere: not touched
    local_store.delete(marker)
    [result] = ingest_keys(local_store, [key])
    assert result.outcome == "accepted"
    # a finished batch leaves no marker behind; a dead one is retired once it is redone
    assert not list(local_store.list(ingest_module.ATTEMPTS_PREFIX))


# -- hostile files: judged within limits, reported, never a crash -----------------------------


def parquet_bomb() -> bytes:
    """A Parquet file of a few hundred KB that decodes to 400 MB of one repeated string."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    value = "学校代码" * 10_000  # 120 KB a cell, 3,400 cells
    table = pa.table({"学校代码": pa.array([value] * 3_400)})
    buffer = io.BytesIO()
    parquet.write_table(table, buffer, compression="zstd", use_dictionary=False)
    return buffer.getvalue()


def parquet_grid(rows: int, columns: int) -> bytes:
    """A small Parquet file of many zeros: far more cells than any school file holds."""
    frame = pl.DataFrame({f"c{index}": pl.zeros(rows, eager=True) for index in range(columns)})
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def hostile_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the rule the school must be told), built in memory."""
    from tests.unit.test_untrusted_files import (
        ENCRYPTED,
        cells,
        cfb,
        honest,
        lying_bomb,
        one_sheet,
        raw_zip,
        workbook_members,
    )

    bomb = raw_zip(
        [
            *workbook_members([("Data", "<worksheet/>")])[:-1],
            lying_bomb("xl/worksheets/sheet1.xml", "size"),
        ]
    )
    nul_csv = staff_csv(SCHOOL, 3000) + b"\x00\x00" + staff_csv(SCHOOL, 1)
    return {
        "staff.xlsx|lying zip sizes": (bomb, "file.too_large"),
        "staff.xlsx|far-corner cell": (
            one_sheet(cells("A1", "XFD1048576")),
            "file.sheet_too_large",
        ),
        "staff.xlsx|password": (cfb(ENCRYPTED), "file.encrypted"),
        "staff.csv|NUL after 64 KiB": (nul_csv, "file.binary"),
        "staff.xls|old Excel": (cfb(["Workbook"]), "file.type_mismatch"),
        "staff.xlsm|macros": (
            raw_zip(
                [*workbook_members([("Data", "<worksheet/>")]), honest("xl/vbaProject.bin", "x")]
            ),
            "file.macro",
        ),
        "staff.pdf|not a table": (b"%PDF-1.4 ...", "file.extension"),
        "staff.parquet|unpacks to 400 MB": (parquet_bomb(), "file.too_large"),
        "staff.parquet|too many columns": (parquet_grid(2, 1001), "file.sheet_too_large"),
    }


@pytest.mark.parametrize("case", list(hostile_files()))
def test_a_hostile_file_is_refused_with_a_report_the_school_sees(
    local_store: LocalStore, case: str
) -> None:
    import resource

    data, rule = hostile_files()[case]
    name = case.split("|")[0]
    key = f"uploads/{YEAR}/{SCHOOL}/{name}"
    local_store.put(key, data)
    local_store.put(staff_key(OTHER), staff_csv(OTHER, 3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = ingest_keys(local_store, [key, staff_key(OTHER)])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 512, f"{case}: peak memory grew by {grown_mib:.0f} MiB"
    outcomes = {result.key: result for result in results}
    assert outcomes[staff_key(OTHER)].outcome == "accepted"  # the rest of the batch goes on
    bad = outcomes[key]
    assert bad.outcome == "rejected"
    report = json.loads(local_store.get(bad.report_key))
    assert rule in {item["rule_id"] for item in report["counts_by_rule"]}, report["counts_by_rule"]
    assert bad.report_key.startswith(f"reports/{YEAR}/{SCHOOL}/")
    assert local_store.exists(bad.report_key.replace(".json", ".html"))
    assert list(local_store.list(f"quarantine/{YEAR}/{bad.submission_id}/"))


def test_only_uploads_that_change_what_counts_are_announced(store: ObjectStore) -> None:
    key = staff_key()
    store.put(key, BROKEN_STAFF)
    [first_refusal] = ingest_keys(store, [key])
    assert not first_refusal.changes_what_counts  # nothing counted before, nothing changes
    store.put(key, staff_csv(SCHOOL, 5))
    [accepted] = ingest_keys(store, [key])
    assert accepted.changes_what_counts
    store.put(key, BROKEN_STAFF + b"\n")
    [refusal] = ingest_keys(store, [key])
    assert refusal.changes_what_counts  # the accepted rows of this key no longer count
    store.delete(key)
    [withdrawal] = ingest_keys(store, [key])
    assert not withdrawal.changes_what_counts  # the key counted nothing any more
