"""A file that kills the process validating it, in a sweep whose batches run on processes.

When a child of the sweep's process pool dies, the pool breaks: every batch in flight in
it dies too, and the flow run fails. The attempt markers then say which uploads a worker
died on. What must hold over the sweeps that follow, against the session's Prefect test
server, with the culprit killing its process every time it is read:

- the culprit is refused (``file.reader_crashed``), never read a third time;
- no other upload is refused, though each was in a batch that died beside it: the uploads
  a worker died on are tried alone, one after the other, after every other batch, so the
  culprit's second death takes nothing with it;
- every other upload gets the outcome it gets in a run that never died, exactly one
  ledger record each, and no attempt marker is left.

The child processes are spawned, so a test's monkeypatching does not reach them: a
``sitecustomize`` module on their ``PYTHONPATH`` makes the store's read of the culprit's
key kill the reading process with SIGKILL (no handler, no ``finally``), and only in a
process started while the variable naming the culprit is set. It kills at the worst
moment it can: while another batch of the sweep is in flight (waiting a few seconds for
one), so that a sweep that runs a suspect beside anything loses that too.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_sweep_batches import demo_uploads
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ATTEMPTS_PREFIX, ingest_keys
from vetreport.curate.ledger import read_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

YEAR = 2023
CULPRIT_VARIABLE = "VETREPORT_TEST_KEY_THAT_KILLS"
# How long the culprit waits for another batch to be in flight before it kills its process.
OTHERS_WAIT_SECONDS = 10
SITECUSTOMIZE = textwrap.dedent(
    f"""
    import json, os, signal, time
    from datetime import datetime, timezone

    culprit = os.environ.get({CULPRIT_VARIABLE!r})
    if culprit:
        from vetreport.bucket.store import KeyNotFound, LocalStore

        started = datetime.now(timezone.utc)
        read = LocalStore.get

        def others_in_flight(store):
            # batches this sweep started that do not hold the culprit
            for key in store.list_keys({ATTEMPTS_PREFIX!r}):
                try:
                    marker = json.loads(read(store, key))
                except KeyNotFound:
                    continue
                is_new = datetime.fromisoformat(marker["started_at"]) >= started
                if is_new and culprit not in marker["keys"]:
                    return True
            return False

        def dying_get(store, key):
            if key == culprit:
                # the worst moment: while another batch is in flight, if one comes
                deadline = time.monotonic() + {OTHERS_WAIT_SECONDS}
                while time.monotonic() < deadline and not others_in_flight(store):
                    time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGKILL)
            return read(store, key)

        LocalStore.get = dying_get
    """
)


def sweep(bucket: Path, keys: list[str], label: str) -> bool:
    """One sweep of the keys on two processes; whether the flow run finished."""
    import flows.ingest

    try:
        flows.ingest.ingest_uploads(str(bucket), keys, label=label, batch_size=20, announce=False)
    except Exception:
        return False
    return True


def unrecorded(store: LocalStore, keys: list[str]) -> list[str]:
    """The keys without a ledger record: what the next sweep finds to do."""
    recorded = {record["key"] for record in read_records(store, [YEAR])}
    return [key for key in keys if key not in recorded]


def test_a_file_that_kills_its_process_is_refused_and_nothing_beside_it(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = demo_uploads((YEAR,))
    keys = sorted(uploads)
    culprit = next(key for key in keys if "/_city/" not in key and key.endswith("staff.csv"))

    # what a run that never dies gives each upload
    clean = LocalStore(tmp_path / "clean")
    for key, body in uploads.items():
        clean.put(key, body)
    expected = {result.key: result.outcome for result in ingest_keys(clean, keys)}

    bucket = tmp_path / "bucket"
    store = LocalStore(bucket)
    for key, body in uploads.items():
        store.put(key, body)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    repository = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", f"{hooks}:{repository}")
    monkeypatch.setenv(CULPRIT_VARIABLE, culprit)
    monkeypatch.setenv("VETREPORT_INGEST_PROCESSES", "2")
    monkeypatch.setenv("VETREPORT_ATTEMPT_STALE_SECONDS", "0")  # a marker left is a death

    # 1: the culprit's process dies in a batch; the pool breaks and the flow run fails
    assert not sweep(bucket, keys, "first"), "the culprit did not kill its process"
    markers = [json.loads(store.get(key)) for key in store.list_keys(ATTEMPTS_PREFIX)]
    assert any(culprit in marker["keys"] for marker in markers), "no marker names the culprit"
    assert all(marker["attempts"] == 1 for marker in markers)

    # 2: the others first, then those a process died on, alone: the culprit dies again
    assert not sweep(bucket, unrecorded(store, keys), "second"), "the culprit was not read again"
    markers = [json.loads(store.get(key)) for key in store.list_keys(ATTEMPTS_PREFIX)]
    alone = [marker for marker in markers if marker["attempts"] == 2]
    assert [marker["keys"] for marker in alone] == [[culprit]], (
        f"the second death took others with it: {alone}"
    )

    # 3: the culprit is refused unread; everything else is judged as in the clean run
    assert sweep(bucket, unrecorded(store, keys), "third")
    records = read_records(store, [YEAR])
    assert sorted(record["key"] for record in records) == keys, "not exactly one record each"
    outcomes = {record["key"]: record["outcome"] for record in records}
    report = json.loads(store.get(next(r for r in records if r["key"] == culprit)["report_key"]))
    assert {count["rule_id"] for count in report["counts_by_rule"]} == {"file.reader_crashed"}
    assert outcomes.pop(culprit) == "rejected"
    expected.pop(culprit)
    judged_otherwise = {key: outcomes[key] for key in outcomes if outcomes[key] != expected[key]}
    assert judged_otherwise == {}, "judged otherwise than in a run that never died"
    assert list(store.list_keys(ATTEMPTS_PREFIX)) == [], "attempt markers left behind"
