"""The same contract for both stores: the local folder and S3 over HTTP (moto)."""

from __future__ import annotations

import threading

import pytest

from vetreport.bucket.store import KeyNotFound, LocalStore, open_store, validate_key


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
