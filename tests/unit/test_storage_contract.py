"""The same contract for every store: the local folder, S3 over HTTP on moto, and a real
SeaweedFS with bucket versioning off and on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import STORE_KINDS, open_test_store, point_stores_at
from vetreport.bucket.store import KeyNotFound, LocalStore, open_store, validate_key


@pytest.fixture(params=[*STORE_KINDS, "seaweedfs-versioned"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Every kind of store, and a SeaweedFS bucket that keeps versions."""
    return open_test_store(request.param, request, tmp_path, monkeypatch)


def test_put_get_head_roundtrip(store_url: str) -> None:
    store = open_store(store_url)
    info = store.put("uploads/2023/3133060001/graduates.csv", b"a,b\n1,2\n")
    assert store.get("uploads/2023/3133060001/graduates.csv") == b"a,b\n1,2\n"
    head = store.head("uploads/2023/3133060001/graduates.csv")
    assert head.size_bytes == 8
    assert head.etag == info.etag
    assert head.version_token


def test_missing_key_raises_key_not_found(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(KeyNotFound):
        store.get("uploads/none.csv")
    with pytest.raises(KeyNotFound):
        store.head("uploads/none.csv")
    assert not store.exists("uploads/none.csv")


def test_new_content_gets_a_new_etag(store_url: str) -> None:
    store = open_store(store_url)
    first = store.put("k/a.csv", b"one")
    second = store.put("k/a.csv", b"two")
    assert first.etag != second.etag
    assert store.get("k/a.csv") == b"two"


def test_list_is_sorted_and_filtered_by_prefix(store_url: str) -> None:
    store = open_store(store_url)
    for key in ["b/2.txt", "a/1.txt", "a/0.txt", "ab/x.txt"]:
        store.put(key, key.encode())
    assert [info.key for info in store.list("a/")] == ["a/0.txt", "a/1.txt"]
    assert [info.key for info in store.list("")] == ["a/0.txt", "a/1.txt", "ab/x.txt", "b/2.txt"]
    assert list(store.list("missing/")) == []
    for prefix in ("a/", "", "a", "ab", "missing/"):
        assert list(store.list_keys(prefix)) == [info.key for info in store.list(prefix)]


def test_put_if_absent_writes_once(store_url: str) -> None:
    store = open_store(store_url)
    assert store.put_if_absent("ledger/x.json", b"first") is True
    assert store.put_if_absent("ledger/x.json", b"second") is False
    assert store.get("ledger/x.json") == b"first"


def test_put_if_absent_has_one_winner_under_contention(store_url: str) -> None:
    store = open_store(store_url)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def contender(index: int) -> None:
        barrier.wait()
        wins.append(store.put_if_absent("ledger/race.json", str(index).encode()))

    threads = [threading.Thread(target=contender, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_delete_is_idempotent(store_url: str) -> None:
    store = open_store(store_url)
    store.put("x/y.txt", b"1")
    store.delete("x/y.txt")
    store.delete("x/y.txt")
    assert not store.exists("x/y.txt")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a/../b", ""])
def test_keys_that_escape_the_bucket_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


def test_local_put_never_leaves_a_partial_file(tmp_path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    store.put("p/file.bin", b"old")

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("vetreport.bucket.store.os.replace", broken_replace)
    with pytest.raises(OSError):
        store.put("p/file.bin", b"new" * 1000)
    monkeypatch.undo()
    assert store.get("p/file.bin") == b"old"
    assert [path.name for path in (tmp_path / "p").iterdir()] == ["file.bin"]


def test_s3_store_uses_virtual_host_addressing_when_asked(monkeypatch) -> None:
    from vetreport.bucket.store import S3Store

    store = S3Store("bucket", addressing_style="virtual", endpoint_url="https://oss.example.com")
    assert store.client.meta.config.s3["addressing_style"] == "virtual"


ODD_NAMES = [
    "a b.csv",
    "a+b.csv",
    "a%20b.csv",
    "100%.csv",
    "毕业生.csv",
    "a&b=c;d.csv",
    "#hash?.csv",
    "(1) [2] {3}.csv",
    "~tilde'quote\".csv",
    "tab\there.csv",
]


def test_keys_with_odd_characters_list_and_read_back_exactly(store_url: str) -> None:
    store = open_store(store_url)
    keys = [f"uploads/2023/3133060001/{name}" for name in ODD_NAMES]
    for index, key in enumerate(keys):
        store.put(key, str(index).encode())
    listed = [info.key for info in store.list("uploads/2023/3133060001/")]
    assert listed == sorted(keys)
    assert list(store.list_keys("uploads/2023/3133060001/")) == listed
    for index, key in enumerate(keys):
        assert store.get(key) == str(index).encode()
        assert store.head(key).key == key


def test_a_listing_and_a_head_name_an_object_alike(store_url: str) -> None:
    """The sweep (a listing) and ingest (a HEAD) must give one upload one version token."""
    store = open_store(store_url)
    written = store.put("uploads/2023/3133060001/staff.csv", b"a,b\n1,2\n")
    [listed] = store.list("uploads/2023/3133060001/")
    head = store.head("uploads/2023/3133060001/staff.csv")
    assert written.version_token == listed.version_token == head.version_token
    assert listed.etag == head.etag and listed.size_bytes == head.size_bytes == 8


def test_an_overwrite_gets_a_new_version_token(store_url: str) -> None:
    store = open_store(store_url)
    first = store.put("uploads/2023/3133060001/staff.csv", b"one")
    second = store.put("uploads/2023/3133060001/staff.csv", b"two")
    assert first.version_token != second.version_token
    [listed] = store.list("uploads/2023/3133060001/")
    assert listed.version_token == second.version_token


@pytest.mark.parametrize("server", ["s3", "seaweedfs"])
def test_a_missing_bucket_is_created_versioned_once(
    server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from vetreport.bucket.store import S3Store

    point_stores_at(server, request, monkeypatch)
    store = open_store(f"s3://vet-{uuid.uuid4().hex[:12]}")
    assert isinstance(store, S3Store)
    assert store.ensure_bucket(versioned=True) is True
    assert store.ensure_bucket(versioned=True) is False
    status = store.client.get_bucket_versioning(Bucket=store.bucket)["Status"]
    assert status == "Enabled"
    store.put("uploads/2023/3133060001/staff.csv", b"1")
    assert store.exists("uploads/2023/3133060001/staff.csv")


def test_a_folder_listing_hashes_a_settled_file_once_and_a_rewrite_again(
    tmp_path, monkeypatch
) -> None:
    import hashlib
    import time

    from vetreport.bucket import store as store_module

    monkeypatch.setattr(store_module, "_MD5_SETTLE_NS", 0)
    monkeypatch.setattr(store_module, "_MD5_BY_FILE_STATE", {})
    local = store_module.LocalStore(tmp_path)
    local.put("uploads/2023/3306000001/staff.csv", b"first")
    etag = next(iter(local.list("uploads/"))).etag
    assert etag == hashlib.md5(b"first").hexdigest()
    assert list(store_module._MD5_BY_FILE_STATE.values()) == [etag]
    time.sleep(0.05)
    path = tmp_path / "uploads/2023/3306000001/staff.csv"
    path.write_bytes(b"other")  # the same size, written in place: the change time moves
    assert next(iter(local.list("uploads/"))).etag == hashlib.md5(b"other").hexdigest()


def test_a_file_changed_within_the_settle_time_is_hashed_again(tmp_path, monkeypatch) -> None:
    import hashlib

    from vetreport.bucket import store as store_module

    monkeypatch.setattr(store_module, "_MD5_BY_FILE_STATE", {})
    local = store_module.LocalStore(tmp_path)
    path = tmp_path / "uploads/2023/3306000001/staff.csv"
    path.parent.mkdir(parents=True)
    for body in (b"first", b"other", b"third"):
        path.write_bytes(body)
        assert local.head("uploads/2023/3306000001/staff.csv").etag == hashlib.md5(body).hexdigest()
    assert store_module._MD5_BY_FILE_STATE == {}


def test_a_folder_listing_of_keys_reads_no_file(tmp_path, monkeypatch) -> None:
    from vetreport.bucket import store as store_module

    local = store_module.LocalStore(tmp_path)
    for key in ("ledger/2023/S1/a.json", "ledger/2023/S1/b.json", "ledger/2024/S2/c.json"):
        local.put(key, b"{}")
    (tmp_path / "ledger/2023/S1/.tmp-half").write_bytes(b"{")  # a write in progress

    def no_hashing(*args: object) -> str:
        raise AssertionError("list_keys hashed a file")

    monkeypatch.setattr(store_module, "_md5_of_file", no_hashing)
    assert list(local.list_keys("ledger/2023/")) == [
        "ledger/2023/S1/a.json",
        "ledger/2023/S1/b.json",
    ]
    assert list(local.list_keys("ledger/")) == [
        "ledger/2023/S1/a.json",
        "ledger/2023/S1/b.json",
        "ledger/2024/S2/c.json",
    ]
    with pytest.raises(AssertionError):
        list(local.list("ledger/"))
