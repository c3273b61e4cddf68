"""The process running an ingest batch is SIGKILLed (a crash, an OOM kill, a node lost) in
the middle of the batch, at several points, and the sweep comes after it.

The ingest runs in a child process that kills itself with SIGKILL at the n-th write of one
kind (an upload's report, the batch's curated file, a ledger record), so no handler, no
``finally`` and no flush runs: what the store holds is exactly what was written before the
kill. The sweep then runs as the service would run it (the uploads without a record, the
dead batch's marker taken as stale), and the year is aggregated and published.

What must hold, as on a run that never died: the published tables equal a clean run's;
every upload has exactly one ledger record and one report, equal to the clean run's, and
every school's upload list too; no upload is refused as a file that killed its worker (the
batch died once, not the file); no attempt marker is left behind, and no curated file
that no record names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compare_buckets import compare
from vetreport.aggregate.compute import aggregate
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ATTEMPTS_PREFIX, ingest_keys, unprocessed_upload_keys
from vetreport.curate.ledger import read_records
from vetreport.demo.generator import build_demo_uploads
from vetreport.publish.writer import publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

YEAR = 2023
# the bureau's files and two schools' files: one batch of twenty uploads
PARTS = ("/_city/", "/3133060001/", "/3133060002/")

# Where the process dies: at the n-th write of a key of that kind.
KILL_POINTS = {
    "writing reports": ("reports/", ".json", 4),
    "writing the curated batch": ("curated/", ".parquet", 1),
    "writing ledger records": ("ledger/", ".json", 12),
}

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import ingest_keys

    root, prefix, suffix, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    keys = sys.argv[5:]
    seen = [0]

    def dying(write):
        def wrapped(store, key, data, content_type=None):
            if key.startswith(prefix) and key.endswith(suffix) and "/_attempts/" not in key:
                seen[0] += 1
                if seen[0] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            return write(store, key, data, content_type)
        return wrapped

    LocalStore.put = dying(LocalStore.put)
    LocalStore.put_if_absent = dying(LocalStore.put_if_absent)
    ingest_keys(LocalStore(root), keys)
    print("finished without being killed")
    """
)


OUTPUT_ZONES = ("published", "reports", "ledger", "curated", "quarantine")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str], Path]]:
    """The uploads, and the outputs of a run that was never killed, kept aside.

    Every run of this module reads the same uploads: a folder bucket names an upload by
    its ETag and arrival time (the file's change time, which no copy keeps), so a copy's
    uploads would be other uploads, with other submission ids in every output.
    """
    root = tmp_path_factory.mktemp("bucket")
    store = LocalStore(root)
    uploads = {
        key: body
        for key, body in build_demo_uploads(YEAR).items()
        if key.startswith(f"uploads/{YEAR}/") and any(part in key for part in PARTS)
    }
    for key, body in uploads.items():
        store.put(key, body)
    keys = sorted(uploads)
    ingest_keys(store, keys)
    publish(store, aggregate(store, YEAR))
    clean = tmp_path_factory.mktemp("clean")
    for zone in OUTPUT_ZONES:
        if (root / zone).exists():
            shutil.move(root / zone, clean / zone)
    yield root, keys, clean


def one_record_and_one_report_each(store: LocalStore, keys: list[str]) -> None:
    records = read_records(store, [YEAR])
    assert sorted(record["key"] for record in records) == keys
    for record in records:
        assert store.exists(record["report_key"]), record["key"]
        report = json.loads(store.get(record["report_key"]))
        rules = {count["rule_id"] for count in report.get("counts_by_rule", [])}
        assert "file.reader_crashed" not in rules, record["key"]


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_an_ingest_killed_mid_batch_then_swept_publishes_what_a_clean_run_does(
    point: str, bucket: tuple[Path, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, keys, clean = bucket
    for zone in OUTPUT_ZONES:  # what an earlier kill point of this module left
        shutil.rmtree(root / zone, ignore_errors=True)
    store = LocalStore(root)
    prefix, suffix, nth = KILL_POINTS[point]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), prefix, suffix, str(nth), *keys],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.returncode == -9, f"the child was not killed: {child.stdout}{child.stderr}"
    assert list(store.list(ATTEMPTS_PREFIX)), "the dead batch left no marker"
    left = unprocessed_upload_keys(store, YEAR)
    assert left, "the kill came after the batch had finished: move the kill point earlier"

    # the sweep, once the dead batch's marker is taken as stale
    monkeypatch.setenv("VETREPORT_ATTEMPT_STALE_SECONDS", "0")
    ingest_keys(store, left)
    assert unprocessed_upload_keys(store, YEAR) == []
    assert list(store.list(ATTEMPTS_PREFIX)) == []
    one_record_and_one_report_each(store, keys)

    publish(store, aggregate(store, YEAR))
    # The curated zone may hold rows twice: a batch killed while writing its records left
    # a curated file that the records written before the kill still name (a reader takes
    # from each file only the rows of the submissions that name it). What it must not hold
    # is a file no record names.
    assert compare(clean, root, tuple(zone for zone in OUTPUT_ZONES if zone != "curated")) == []
    named = {
        entry["curated_key"]
        for record in read_records(store, [YEAR])
        for entry in record["datasets"]
        if entry.get("curated_key")
    }
    batch_files = {info.key for info in store.list("curated/") if "/batch=" in info.key}
    assert batch_files - named == set(), "curated files no record names"
