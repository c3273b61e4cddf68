"""An event storm on the running service, and the invariants it must keep.

What belongs here: driving the storm on a service from ``tests.service_harness`` and
checking its outcome; tests/integration/test_event_storm.py runs a reduced storm,
benchmarks/bench_event_storm.py the full one (every school dataset) and prints figures.

The storm: every stormed upload key (each school of the demo year, each dataset asked
for) is uploaded within seconds, three rounds over: round 1 every key, round 2 a share of
them, round 3 every key again, each round with other bytes (the demo generator under
another seed: same keys, same registry, other numbers). Each round's bucket notifications
reach the queue as S3 sends them, and a share of them is sent again, shuffled, some
twice; from round 2 on, a share of the notifications of the earlier rounds' versions of
the re-uploaded keys is sent again too, after the new ones (stale events).

A round is a burst: the next starts once every version of the round has its ledger record
and the year's aggregation has gone quiet. A version overwritten before the service read
it would never be ingested (a run reads the object's current version whatever its event
named, so events out of order converge): separating the rounds is what makes "every
uploaded version has a record" an invariant rather than a race.

Invariants (``storm_problems`` lists every one broken):

- one aggregate run (``aggregate-{year}``) per round, no more, none left unfinished;
- no run Crashed (nothing died: a crash would be the service misjudging a live run);
- every uploaded version has exactly one ledger record and its report, and the ledger
  holds no record of a version nobody uploaded;
- the submission that counts for each key is its newest version (when accepted);
- the published tables equal those of a clean run: the final files put into a folder
  bucket and ingested, aggregated and published directly, without the service.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import polars as pl

from tests.compare_buckets import normalised
from tests.conftest import wait_for

ROUND_SEEDS = (2024, 2025, 2026)  # the demo generator's seed for each round's bytes
ROUND_TWO_SHARE = 0.5  # of the keys re-uploaded in round 2 (rounds 1 and 3: every key)
RESENT_SHARE = 0.4  # of a round's notifications sent again; of the stale ones too
TWICE_SHARE = 0.5  # of those sent again, the share sent a third time
UPLOAD_THREADS = 8


@dataclass(frozen=True)
class Upload:
    """One version of one key as the storm put it."""

    round: int
    key: str
    body: bytes
    version_id: str
    etag: str
    token: str  # the version token the pipeline names the upload by (ETag and time)

    @property
    def submission_id(self) -> str:
        from vetreport.bucket.keys import submission_id

        return submission_id(self.key, self.token)


@dataclass
class Round:
    """What happened in one round: its uploads, the notifications sent, its runs."""

    number: int
    uploads: list[Upload]
    upload_seconds: float
    notifications_resent: int = 0
    settled_seconds: float = 0.0
    aggregate_runs: list[Any] = field(default_factory=list)
    ingest_runs: int = 0
    published_before: int = 0
    published_after: int = 0


@dataclass
class StormResult:
    year: int
    stormed_keys: list[str]
    rounds: list[Round]
    seconds: float
    ledger_records: list[dict[str, Any]] = field(default_factory=list)
    recorded_before: set[str] = field(default_factory=set)  # submission ids before the storm
    failure_calls: int = 0

    @property
    def uploads(self) -> list[Upload]:
        return [upload for storm_round in self.rounds for upload in storm_round.uploads]


def stormed_keys(year: int, datasets: tuple[str, ...] | None) -> list[str]:
    """The demo year's school upload keys of these datasets (every dataset when None)."""
    from vetreport.demo.generator import build_demo_uploads

    keys = build_demo_uploads(ROUND_SEEDS[0], years=(year,))
    return sorted(
        key
        for key in keys
        if key.startswith(f"uploads/{year}/")
        and "/_city/" not in key
        and (datasets is None or key.rsplit("/", 1)[1].split(".")[0] in datasets)
    )


def round_bodies(year: int, keys: list[str], rng: random.Random) -> list[dict[str, bytes]]:
    """The bytes each round uploads: every key, then a share, then every key again."""
    from vetreport.demo.generator import build_demo_uploads

    chosen = [set(keys), set(rng.sample(keys, round(len(keys) * ROUND_TWO_SHARE))), set(keys)]
    rounds = []
    for seed, wanted in zip(ROUND_SEEDS, chosen, strict=True):
        bodies = build_demo_uploads(seed, years=(year,))
        rounds.append({key: bodies[key] for key in sorted(wanted)})
    return rounds


def put_round(service: dict, number: int, bodies: dict[str, bytes]) -> Round:
    """Upload a round's files as schools would, from several threads at once."""
    s3, bucket, store = service["s3"], service["bucket"], service["store"]

    def put(item: tuple[str, bytes]) -> Upload:
        key, body = item
        reply = s3.put_object(Bucket=bucket, Key=key, Body=body)
        info = store.head(key)  # nobody else writes this key in the round
        return Upload(
            number, key, body, reply["VersionId"], reply["ETag"].strip('"'), info.version_token
        )

    started = time.monotonic()
    items = list(bodies.items())
    random.Random(number).shuffle(items)
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        uploads = list(pool.map(put, items))
    return Round(number, uploads, time.monotonic() - started)


def notification(upload: Upload) -> str:
    """The S3 notification of one upload, as AWS and moto send it to SQS."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": datetime.now(UTC).isoformat(),
        "s3": {"object": {"key": quote_plus(upload.key, safe="/"), "eTag": upload.etag}},
    }
    record["s3"]["object"]["versionId"] = upload.version_id
    return json.dumps({"Records": [record]})


def resend(service: dict, storm_round: Round, earlier: list[Upload], rng: random.Random) -> int:
    """Send a shuffled share of the round's notifications again (some twice), then a
    shuffled share of the earlier rounds' notifications of the keys this round re-uploaded
    (stale ones: older versions, named after the newer)."""
    uploads = storm_round.uploads
    again = rng.sample(uploads, round(len(uploads) * RESENT_SHARE))
    again += rng.sample(again, round(len(again) * TWICE_SHARE))
    rng.shuffle(again)
    rewritten = {upload.key for upload in uploads}
    superseded = [upload for upload in earlier if upload.key in rewritten]
    stale = rng.sample(superseded, round(len(superseded) * RESENT_SHARE))
    messages = [notification(upload) for upload in again + stale]
    sqs, queue = service["sqs"], service["queue_url"]
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(index), "MessageBody": body}
            for index, body in enumerate(messages[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    return len(messages)


def runs_since(flow_name: str, since: datetime) -> list[Any]:
    """Every run of a flow created at or after a moment (paged: storms make hundreds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    found: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                limit=200,
                offset=len(found),
            )
            found += page
            if len(page) < 200:
                break
    return sorted(
        (run for run in found if run.created and run.created >= since), key=lambda r: r.created
    )


def crashed_runs() -> list[str]:
    """The names of the runs that ended Crashed, with the reason Prefect gives."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    crashed = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED]))
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=crashed, limit=50)
    return [f"{run.name} ({run.state.message if run.state else ''})" for run in runs]


def published_version(store: Any, year: int) -> int:
    from vetreport.publish.reader import read_pointer

    return (read_pointer(store, year) or {}).get("version", 0)


def settle(
    service: dict, storm_round: Round, year: int, since: datetime, quiet: float, last: bool
) -> None:
    """Wait until every version of the round has its record and the aggregation is over:
    no aggregate run since the round began is unfinished. After the last round, also wait
    a whole quiet window (plus a margin) for a second aggregation that should not come;
    after the others there is no need: one would be created after the next round began,
    and counted in that round's, which would then have two."""
    from vetreport.curate.ledger import processed_submission_ids

    started = time.monotonic()
    wanted = {upload.submission_id for upload in storm_round.uploads}
    store = service["store"]
    prefix = f"ledger/{year}/"
    wait_for(
        lambda: wanted <= processed_submission_ids(store, prefix),
        600,
        f"the records of round {storm_round.number}'s {len(wanted)} uploads",
        step=2,
    )

    def quiet_and_finished() -> list[Any] | None:
        runs = runs_since("aggregate", since)
        if not runs or any(run.state is None or not run.state.is_final() for run in runs):
            return None
        return runs

    storm_round.aggregate_runs = wait_for(
        quiet_and_finished, 300, f"round {storm_round.number}'s aggregation", step=2
    )
    if last:
        time.sleep(quiet + 5)  # a second aggregation of the burst would have begun by now
        storm_round.aggregate_runs = wait_for(
            quiet_and_finished, 300, f"round {storm_round.number}'s aggregation to end", step=2
        )
    storm_round.ingest_runs = len(runs_since("ingest-upload", since))
    storm_round.settled_seconds = time.monotonic() - started
    storm_round.published_after = published_version(store, year)


def run_storm(
    service: dict,
    year: int,
    datasets: tuple[str, ...] | None,
    quiet_seconds: float,
    seed: int = 13,
    progress: Callable[[Round], None] | None = None,
) -> StormResult:
    """Storm the service (three rounds) and return what happened; nothing is checked here."""
    from vetreport.curate.ledger import processed_submission_ids, read_records

    rng = random.Random(seed)
    recorded_before = processed_submission_ids(service["store"], f"ledger/{year}/")
    keys = stormed_keys(year, datasets)
    rounds_bodies = round_bodies(year, keys, rng)
    started = time.monotonic()
    rounds: list[Round] = []
    for number, bodies in enumerate(rounds_bodies, start=1):
        since = datetime.now(UTC)
        before = published_version(service["store"], year)
        storm_round = put_round(service, number, bodies)
        storm_round.published_before = before
        earlier = [upload for done in rounds for upload in done.uploads]
        storm_round.notifications_resent = resend(service, storm_round, earlier, rng)
        last = number == len(rounds_bodies)
        settle(service, storm_round, year, since, quiet_seconds, last)
        rounds.append(storm_round)
        if progress:
            progress(storm_round)
    result = StormResult(year, keys, rounds, time.monotonic() - started)
    result.ledger_records = read_records(service["store"], [year])
    result.recorded_before = recorded_before
    return result


def clean_run_tables(final: dict[str, bytes], year: int, root: Path) -> dict[str, bytes]:
    """The published tables of a run without the service: the final files in a folder
    bucket, ingested, aggregated and published directly (normalised, by file name)."""
    from vetreport.aggregate.compute import aggregate
    from vetreport.bucket.store import LocalStore
    from vetreport.curate.ingest import ingest_keys
    from vetreport.publish.writer import publish

    store = LocalStore(root)
    for key, body in final.items():
        store.put(key, body)
    ingest_keys(store, sorted(final))
    publish(store, aggregate(store, year))
    return published_tables(store, year)


def published_tables(store: Any, year: int) -> dict[str, bytes]:
    """The latest published version's tables (Parquet), normalised, by file name.

    Besides what ``normalised`` masks (moments in time), the column ``submission_id``
    (the completeness table's) is left out: it names the upload's version in its own
    bucket, which a copy of the same bytes elsewhere cannot share; that it names the
    newest version is checked on the ledger instead.
    """
    version = published_version(store, year)
    prefix = f"published/{year}/v{version}/tables/"
    tables = {}
    for info in store.list(prefix):
        if info.key.endswith(".parquet"):
            frame = pl.read_parquet(io.BytesIO(store.get(info.key)))
            buffer = io.BytesIO()
            frame.drop("submission_id", strict=False).write_parquet(buffer)
            tables[info.key.removeprefix(prefix)] = normalised(info.key, buffer.getvalue())
    return tables


def storm_problems(service: dict, result: StormResult, clean_root: Path) -> list[str]:
    """Every invariant the storm broke, one line each (empty when all held)."""
    from vetreport.curate.ledger import ACCEPTED_OUTCOMES, current_submissions
    from vetreport.curate.ledger import current_upload_versions as current_versions

    year, store = result.year, service["store"]
    problems: list[str] = []
    for storm_round in result.rounds:
        names = [run.name for run in storm_round.aggregate_runs]
        if names != [f"aggregate-{year}"]:
            problems.append(
                f"round {storm_round.number}: {len(names)} aggregate runs, not one: {names}"
            )
        states = [run.state_name for run in storm_round.aggregate_runs]
        if any(state != "Completed" for state in states):
            problems.append(f"round {storm_round.number}: aggregate runs ended {states}")

    # no process died in the storm: a Crashed run is one the service misjudged (a run whose
    # heartbeats came late under load, crashed by the silent-run automation) or lost
    crashed = crashed_runs()
    if crashed:
        problems.append(f"{len(crashed)} runs crashed: {crashed[:5]}")

    records = result.ledger_records
    counts = Counter(record["submission_id"] for record in records)
    by_id = {record["submission_id"]: record for record in records}
    uploads = result.uploads
    expected = {upload.submission_id for upload in uploads}
    for upload in uploads:
        count = counts.get(upload.submission_id, 0)
        if count != 1:
            problems.append(f"{upload.key} (round {upload.round}): {count} ledger records")
            continue
        report_key = by_id[upload.submission_id].get("report_key")
        if not report_key or not store.exists(report_key):
            problems.append(f"{upload.key} (round {upload.round}): no report at {report_key}")
    strangers = sorted(
        record["key"]
        for record in records
        if record["submission_id"] not in expected | result.recorded_before
    )
    if strangers:
        problems.append(f"{len(strangers)} records of versions nobody uploaded: {strangers[:5]}")

    current = current_submissions(records, current_versions(store, [year]))
    counting = dict(zip(current["key"].to_list(), current["submission_id"].to_list(), strict=True))
    for key in result.stormed_keys:
        newest = [upload for upload in uploads if upload.key == key][-1].submission_id
        accepted = by_id.get(newest, {}).get("outcome") in ACCEPTED_OUTCOMES
        # (a rejected newest version: what counts then is the clean run's business)
        if accepted and counting.get(key) != newest:
            problems.append(f"{key}: counts {counting.get(key)}, not its newest version")

    final = {info.key: store.get(info.key) for info in store.list(f"uploads/{year}/")}
    for upload in uploads:  # and the bucket holds what the storm put last
        if final.get(upload.key) != upload.body and upload.round == max(
            other.round for other in uploads if other.key == upload.key
        ):
            problems.append(f"{upload.key}: the bucket does not hold round {upload.round}'s")
    clean = clean_run_tables(final, year, clean_root)
    served = published_tables(store, year)
    for name in sorted(clean.keys() | served.keys()):
        if clean.get(name) != served.get(name):
            problems.append(f"published table {name} differs from a clean run's")
    return problems


def describe_round(storm_round: Round) -> str:
    """One line on a round."""
    return (
        f"round {storm_round.number}: {len(storm_round.uploads)} uploads in "
        f"{storm_round.upload_seconds:.1f} s, {storm_round.notifications_resent} "
        f"notifications re-sent; {storm_round.ingest_runs} ingest-upload runs, "
        f"{len(storm_round.aggregate_runs)} aggregate run(s), published "
        f"v{storm_round.published_before} -> v{storm_round.published_after}; settled "
        f"{storm_round.settled_seconds:.1f} s after the uploads"
    )


def describe(result: StormResult) -> str:
    """The storm's figures, a line per round and a total."""
    lines = [describe_round(storm_round) for storm_round in result.rounds]
    lines.append(
        f"storm: {len(result.stormed_keys)} keys, {len(result.uploads)} uploads, "
        f"{sum(r.ingest_runs for r in result.rounds)} ingest-upload runs, "
        f"{sum(len(r.aggregate_runs) for r in result.rounds)} aggregate runs, "
        f"{result.seconds:.0f} s"
    )
    return "\n".join(lines)
