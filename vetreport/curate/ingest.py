"""Ingest: one upload in, a report, curated rows and a ledger record out.

What belongs here: the steps of processing one object version, in the order that keeps
the bucket consistent if the process dies at any point:

1. skip if the ledger already has this submission (same key and version: a no-op);
2. read and validate (``vetreport.validate.checks``); a file that cannot be read at all is
   also copied to quarantine/ with its reason;
3. write the reports: JSON for machines, then the school-facing HTML page and annotated
   workbook from ``vetreport.school.feedback`` (a rendering failure is logged, never fatal);
4. write curated Parquet: one file per dataset and year for the accepted uploads of a
   whole batch, each row tagged with its submission (the key follows from the batch's
   submissions, so a retry overwrites the same object);
5. write each upload's ledger record last, with put-if-absent: only then does the
   submission count.

Prefect flows call ``ingest_keys`` on batches of keys; nothing here imports Prefect.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl

from schemas.catalogue import SCHEMA_VERSION, load_datasets
from vetreport.bucket.documents import document_bytes
from vetreport.bucket.keys import (
    CITY_SUBMITTER,
    LEDGER_ROOT,
    LayoutError,
    UploadKey,
    curated_key,
    key_owner,
    ledger_key,
    ledger_prefix,
    parse_ledger_record_key,
    parse_upload_key,
    printable_key,
    quarantine_key,
    report_key,
    submission_id,
    unsorted_ledger_key,
    unsorted_report_key,
    uploads_prefix,
    year_of_upload_key,
)
from vetreport.bucket.store import KeyNotFound, ObjectInfo, ObjectStore, StoreError
from vetreport.curate.collection import (
    EXPLANATIONS_DATASET,
    LOCKED_RULE,
    SIGNED_OFF_OUTCOME,
    SIGNOFF,
    SIGNOFF_REFUSED,
    SIGNOFF_REFUSED_OUTCOME,
    SIGNOFF_STEM,
    explanation_findings,
    locked_schools,
    read_school_status,
    record_warnings,
    release_raced_lock,
    signoff_refusals,
)
from vetreport.curate.curated import read_curated_rows
from vetreport.curate.ledger import (
    HELD,
    current_submissions,
    processed_submission_ids,
    read_records_under,
    write_record,
)
from vetreport.curate.school_index import write_school_index
from vetreport.school.feedback import annotate_workbook, render_html
from vetreport.settings import Settings, load_settings
from vetreport.validate.checks import (
    BUREAU,
    REJECTED,
    SCHOOL,
    DatasetResult,
    UploadContext,
    build_report,
    build_reports,
    validate_uploads,
)
from vetreport.validate.normalise import finding_rows, with_constants
from vetreport.validate.read import MAX_UPLOAD_BYTES, SOURCE_ROW

QUARANTINE_RULE_LAYERS = ("file",)
WITHDRAWN = "withdrawn"
BAD_KEY_STEM = "_bad_key"  # the ledger folder of a school's uploads whose key broke the layout
# Uploads validated together: at most this many bytes of files held in memory at once.
BATCH_BYTES = 64 * 1024 * 1024
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What happened to one upload."""

    key: str
    submission_id: str
    outcome: str
    was_skipped: bool
    report_key: str | None
    datasets: tuple[str, ...] = ()
    # Whether what counts changed: always for an accepted upload; for a rejected upload
    # or a deletion, when its key counted something before (that is now taken away).
    changes_what_counts: bool = False


def registry_codes(store: ObjectStore, year: int) -> frozenset[str] | None:
    """The school codes of the year's current accepted registry, or None if there is none."""
    prefix = f"{ledger_prefix(year)}{CITY_SUBMITTER}/school_registry/"
    current_versions = {
        info.key: info.version_token for info in store.list(uploads_prefix(year, CITY_SUBMITTER))
    }
    current = current_submissions(read_records_under(store, [prefix]), current_versions)
    if current.height == 0:
        return None
    rows = read_curated_rows(store, current.head(1))["school_registry"]
    return frozenset(rows.get_column("school_code").drop_nulls().to_list())


def order_for_ingest(keys: list[str]) -> list[str]:
    """Bureau files first (the registry decides which schools count), then the rest.

    Of the schools' files, their data comes before their sign-offs and explanations
    (``is_workflow_key``).
    """
    return sorted(
        keys, key=lambda key: (f"/{CITY_SUBMITTER}/" not in key, is_workflow_key(key), key)
    )


def is_workflow_key(key: str) -> bool:
    """A school's sign-off or explanations: judged against the school's data as recorded.

    Each goes alone, after every data file of the same call has its record, so that a
    school that sends its corrected file and its sign-off together is judged on the file.
    """
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return f"/{CITY_SUBMITTER}/" not in key and stem in (SIGNOFF_STEM, EXPLANATIONS_DATASET)


def ingest_keys(
    store: ObjectStore, keys: list[str], batch_bytes: int = BATCH_BYTES
) -> list[IngestResult]:
    """Ingest upload keys; each key's failure is contained to that key.

    Bureau files go first, one at a time (the registry they carry decides which school
    codes count). The schools' files are then validated together in batches of up to
    ``batch_bytes`` of uploads (see ``validate_uploads``) and each is written out on its
    own, in the order of the module docstring. A key that no longer exists is a deletion:
    its data is withdrawn (one record and one report, once). An upload whose earlier
    processing died with its worker is tried once more on its own, then refused.

    A storage error ends the call (StoreError, which the flow retries) and is not taken
    for a death: the call releases the uploads it had marked as being processed, or, when
    the store cannot be told yet, a retry in this process takes them over.
    """
    settings = load_settings()  # once: building it costs more than reading a small file
    attempts = _read_attempts(store, settings.attempt_stale_seconds)
    results: list[IngestResult] = []
    registries: dict[int, frozenset[str] | None] = {}
    is_locked = _lock_checker(store)
    batch: list[ObjectInfo] = []
    size = 0

    def run(infos: list[ObjectInfo], tries: int = 1) -> list[IngestResult]:
        marker = _mark_batch(store, infos, tries)
        try:
            done = _ingest_batch(
                store, infos, registries, settings, marker=marker, is_locked=is_locked
            )
            _release_raced_locks(store, done)
            _write_school_indexes(store, done)
        except StoreError:
            _abandon(store, marker)  # the store failed, not the worker: no attempt spent
            _MARKERS.pop(marker, None)
            raise
        # Not reached when the worker dies: the marker says so, and whoever retires it
        # removes the batch's unrecorded curated files and rewrites its schools' indexes.
        store.delete(marker)
        _MARKERS.pop(marker, None)
        return done

    loose: list[IngestResult] = []  # results of no batch: withdrawals, refusals

    ordered = order_for_ingest(keys)
    for key, info in zip(ordered, _heads(store, ordered), strict=True):
        if isinstance(info, KeyNotFound):
            if not is_locked(key):  # a deletion while locked waits, like any change, for reopening
                loose += _withdraw(store, key)
            continue
        if isinstance(info, ValueError):  # a name no folder can hold: "", "." or ".."
            loose.append(_reject_bad_key(store, _nameless_info(key)))
            continue
        submission = submission_id(info.key, info.version_token)
        if submission in attempts.running:
            continue  # another worker has it; its record will say what happened
        died = attempts.died.get(submission, 0)
        if died >= 2:
            loose.append(_refuse_poison(store, info))
            continue
        if is_workflow_key(key) and batch:
            results += run(batch)  # the data first: a sign-off is judged on it
            batch, size = [], 0
        if f"/{CITY_SUBMITTER}/" in key or died or is_workflow_key(key):
            # the bureau's files, and a file that may have killed a worker, go alone
            results += run([info], died + 1)
            if f"/{CITY_SUBMITTER}/" in key:
                registries.clear()  # a new registry may have arrived
            continue
        batch.append(info)
        size += info.size_bytes
        if size >= batch_bytes:
            results += run(batch)
            batch, size = [], 0
    if batch:
        results += run(batch)
    _release_raced_locks(store, loose)
    _write_school_indexes(store, loose)
    _retire_markers(store, attempts)
    return results + loose


def _heads(store: ObjectStore, keys: list[str]) -> list[ObjectInfo | Exception]:
    """Each key's object info, or the KeyNotFound / ValueError its HEAD raised.

    On threads: on a remote store each HEAD is a round trip, and a sweep asks for hundreds.
    A storage error ends the call, as it would one HEAD at a time.
    """

    def head(key: str) -> ObjectInfo | Exception:
        try:
            return store.head(key)
        except (KeyNotFound, ValueError) as error:
            return error

    if not getattr(store, "is_remote", True):
        return [head(key) for key in keys]
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        return list(pool.map(head, keys))


def _lock_checker(store: ObjectStore) -> Callable[[str], bool]:
    """Whether an upload key's school has its year locked (one read of each year's events)."""
    locks: dict[int, frozenset[str]] = {}

    def is_locked(key: str) -> bool:
        owner = key_owner(key)
        if owner is None or owner[1] == CITY_SUBMITTER:
            return False
        if owner[0] not in locks:
            locks[owner[0]] = locked_schools(store, owner[0])
        return owner[1] in locks[owner[0]]

    return is_locked


def _release_raced_locks(store: ObjectStore, results: list[IngestResult]) -> None:
    """After recording: reopen a year the bureau locked while these uploads were in flight.

    The lock was checked when the call started; an approval recorded since then did not
    see these changes (``collection.release_raced_lock``). One read of each year's events,
    then the few schools locked now.
    """
    changed = {
        owner
        for result in results
        if not result.was_skipped
        and result.outcome != HELD
        and (owner := key_owner(result.key)) is not None
        and owner[1] != CITY_SUBMITTER
    }
    locked = {year: locked_schools(store, year) for year in {year for year, _ in changed}}
    for year, school in sorted(changed):
        if school in locked[year] and release_raced_lock(store, year, school):
            LOGGER.warning("%s %s: locked while an upload was in flight; reopened", school, year)


def _write_school_indexes(store: ObjectStore, results: list[IngestResult]) -> None:
    """Rewrite the upload list of every school whose uploads were just processed.

    Like the report pages, a courtesy: a failure is logged and the ingest still counts.
    """
    touched = set()
    for result in results:
        if result.was_skipped or result.report_key is None:
            continue
        owner = key_owner(result.key)
        if owner is not None:
            touched.add(owner)

    def write(owner: tuple[int, str]) -> None:
        try:
            write_school_index(store, *owner)
        except Exception:
            LOGGER.exception("could not write the upload list of %s %s", *owner)

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(write, sorted(touched)))


# -- attempts: a file that kills its worker is refused, not retried forever ----------------

ATTEMPTS_PREFIX = f"{LEDGER_ROOT}_attempts/"


@dataclass(frozen=True)
class _Attempts:
    """What earlier ingest runs left unfinished: markers of batches that never completed.

    ``running``: submissions a live worker is on (its marker is younger than the stale
    age). ``died``: submission -> how many times a worker died on it (its batch's marker
    is stale). ``stale_markers``: the markers those came from.
    """

    running: frozenset[str]
    died: dict[str, int]
    stale_markers: tuple[str, ...]
    died_keys: frozenset[str] = frozenset()  # the keys of ``died``, as the markers print them


def suspect_keys(store: ObjectStore, keys: list[str]) -> set[str]:
    """Those of ``keys`` that a worker died on: a stale attempt marker names them.

    A caller that runs batches side by side must run these apart, after the others and
    one call for them all (``ingest_keys`` then tries each alone, in turn): when a file
    kills its process, every batch in flight in that process (or in its process pool)
    dies with it, and a file that was only beside the culprit must not be counted as
    having killed a worker a second time. One listing of the markers (usually none).
    """
    died = _read_attempts(store, load_settings().attempt_stale_seconds).died_keys
    return {key for key in keys if printable_key(key) in died}


# Markers this process left behind when the store failed under it and could not delete
# them: the process did not die, so they say nothing about the files. Prefect retries a
# task in the same process; the retry ignores them instead of waiting for them to go stale.
_ABANDONED: set[str] = set()


def _abandon(store: ObjectStore, marker: str) -> None:
    """Withdraw a batch's marker after a storage error (or remember it, if that fails too).

    A storage error is not a worker's death: the batch's uploads must neither wait for the
    marker to go stale nor move towards being refused as files that kill their reader.
    """
    try:
        store.delete(marker)
    except (StoreError, OSError):
        _ABANDONED.add(marker)


def _read_attempts(store: ObjectStore, stale_seconds: float) -> _Attempts:
    """One listing (usually empty) of the markers ingest writes before each batch."""
    now = datetime.now(UTC)
    running: set[str] = set()
    died: dict[str, int] = {}
    died_keys: set[str] = set()
    stale: list[str] = []
    for marker_key in store.list_keys(ATTEMPTS_PREFIX):  # names only: no checksums
        if marker_key in _ABANDONED:
            store.delete(marker_key)  # ours, from a storage error: not a death
            _ABANDONED.discard(marker_key)
            continue
        try:
            marker = json.loads(store.get(marker_key))
        except KeyNotFound:
            continue  # finished meanwhile
        age = (now - datetime.fromisoformat(marker["started_at"])).total_seconds()
        if age < stale_seconds:
            running.update(marker["submissions"])
            continue
        stale.append(marker_key)
        died_keys.update(marker["keys"])
        for submission in marker["submissions"]:
            died[submission] = max(died.get(submission, 0), marker["attempts"])
    return _Attempts(frozenset(running), died, tuple(stale), frozenset(died_keys))


# What this process wrote in each of its live markers, so naming the curated files in one
# (``_name_curated_files``) costs one write, not a read and a write.
_MARKERS: dict[str, dict[str, Any]] = {}


def _mark_batch(store: ObjectStore, infos: list[ObjectInfo], attempts: int) -> str:
    """Say, before reading anything, which uploads this worker is about to process."""
    key = f"{ATTEMPTS_PREFIX}{uuid.uuid4().hex}.marker"
    marker = {
        "submissions": [submission_id(info.key, info.version_token) for info in infos],
        "keys": [printable_key(info.key) for info in infos],
        "attempts": attempts,
        "started_at": datetime.now(UTC).isoformat(),
    }
    store.put(key, json.dumps(marker, ensure_ascii=False).encode("utf-8"), "application/json")
    _MARKERS[key] = marker
    return key


def _name_curated_files(store: ObjectStore, marker_key: str, curated_keys: list[str]) -> None:
    """Add to a batch's marker the curated files it is about to write."""
    marker = _MARKERS.get(marker_key) or json.loads(store.get(marker_key))
    marker["curated_keys"] = curated_keys
    body = json.dumps(marker, ensure_ascii=False).encode("utf-8")
    store.put(marker_key, body, "application/json")


def _retire_markers(store: ObjectStore, attempts: _Attempts) -> None:
    """Clear up after dead batches once each of their uploads has its record.

    A batch that died may have written some of its reports, school indexes and curated
    files but not all its records. Its uploads were processed again since (that is why
    they all have records now), but an upload list written before the death, or never,
    would still be missing the result, and a curated file of the dead batch that no
    record names would hold rows nobody counts: the schools' indexes are rewritten and
    such files removed, then the marker.
    """
    if not attempts.stale_markers:
        return
    done = processed_submission_ids(store)
    for key in attempts.stale_markers:
        try:
            marker = json.loads(store.get(key))
        except KeyNotFound:
            continue
        if not set(marker["submissions"]) <= done:
            continue
        owners = sorted({owner for name in marker["keys"] if (owner := key_owner(name))})
        if marker.get("curated_keys"):
            prefixes = [ledger_prefix(year, submitter) for year, submitter in owners]
            submissions = set(marker["submissions"])
            counted = {
                entry.get("curated_key")
                for record in read_records_under(store, prefixes)
                if record["submission_id"] in submissions
                for entry in record.get("datasets", [])
            }
            for curated in marker["curated_keys"]:
                if curated not in counted:
                    store.delete(curated)
        for owner in owners:
            try:
                write_school_index(store, *owner)
            except StoreError:
                raise
            except Exception:
                LOGGER.exception("could not write the upload list of %s %s", *owner)
        store.delete(key)


def _refuse_poison(store: ObjectStore, info: ObjectInfo) -> IngestResult:
    """Refuse, without reading it again, an upload that twice stopped the worker reading it."""
    detail = "processing this file stopped the reader twice; it was set aside unread"
    return _ingest_refused(store, info, "file.reader_crashed", detail, read_bytes=False)


# -- one batch ------------------------------------------------------------------------------


@dataclass
class _Pending:
    """An upload read and placed, waiting for its batch's validation (or already judged)."""

    info: ObjectInfo
    upload: UploadKey
    submission: str
    context: UploadContext
    registry: frozenset[str] | None
    data: bytes
    verdict: list[DatasetResult] | None = None  # refused before reading: not validated
    explained: list[dict[str, Any]] | None = None  # an explanations upload: what it explains


def _ingest_batch(
    store: ObjectStore,
    infos: list[ObjectInfo],
    registries: dict[int, frozenset[str] | None],
    settings: Settings,
    marker: str | None = None,
    is_locked: Callable[[str], bool] | None = None,
) -> list[IngestResult]:
    """Ingest a batch of object versions: done ones skipped, the rest validated together.

    Results come in the order of ``infos``. The same version twice in a batch is processed
    once; the second is reported as skipped, as it would be in a later batch. ``marker``
    is the batch's attempt marker: the curated files are named in it before they are
    written, so that a batch that dies before its records leaves nothing unaccounted for.
    ``is_locked`` is the calling ingest's lock check (its reads of the year's events are
    shared by all its batches); a batch alone makes its own.
    """
    firsts: dict[str, ObjectInfo] = {}
    is_locked = is_locked or _lock_checker(store)
    locked: dict[str, bool] = {}
    for info in infos:
        year = _year_of(info.key)
        is_school_file = f"/{CITY_SUBMITTER}/" not in info.key
        if year is not None and year not in registries and is_school_file:
            registries[year] = registry_codes(store, year)
        submission = submission_id(info.key, info.version_token)
        if submission not in firsts:
            firsts[submission] = info
            locked[submission] = is_locked(info.key)  # here: one read of a year's events

    def start(info: ObjectInfo) -> IngestResult | _Pending:
        year = _year_of(info.key)
        registry = registries.get(year) if year else None
        submission = submission_id(info.key, info.version_token)
        return _start(store, info, registry, settings, locked[submission])

    # Reading the uploads (and looking for their records) is a round trip or two each on
    # a remote store: on threads, in the batch's order.
    if getattr(store, "is_remote", True) and len(firsts) > 1:
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            in_order = list(pool.map(start, firsts.values()))
        started_by_submission = dict(zip(firsts, in_order, strict=True))
    else:
        started_by_submission = {sub: start(info) for sub, info in firsts.items()}
    slots: list[IngestResult | _Pending | str] = []
    pending: dict[str, _Pending] = {}
    for info in infos:
        submission = submission_id(info.key, info.version_token)
        if submission in pending:
            slots.append(submission)  # a repeat of an upload earlier in this batch
            continue
        started = started_by_submission[submission]
        if isinstance(started, _Pending):
            pending[submission] = started
        slots.append(started)
    to_validate = [entry for entry in pending.values() if entry.verdict is None]
    validated = validate_uploads([(entry.data, entry.context) for entry in to_validate])
    verdicts = {id(entry): results for entry, results in zip(to_validate, validated, strict=True)}
    for entry in to_validate:
        _check_explanations(store, entry, verdicts[id(entry)])
    reported = _report(
        store, [(entry, entry.verdict or verdicts[id(entry)]) for entry in pending.values()]
    )
    curated_keys = _write_curated(store, reported, marker)
    # last, once every report and curated file is written: the records that make them count
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        records = list(pool.map(lambda done: _record(store, done, curated_keys), reported))
    finished = {
        done.pending.submission: record for done, record in zip(reported, records, strict=True)
    }
    ordered: list[IngestResult] = []
    for slot in slots:
        if isinstance(slot, IngestResult):
            ordered.append(slot)
        elif isinstance(slot, _Pending):
            ordered.append(finished[slot.submission])
        else:
            first = finished[slot]
            ordered.append(replace(first, was_skipped=True, datasets=()))
    return ordered


def _year_of(key: str) -> int | None:
    try:
        return parse_upload_key(key).year
    except LayoutError:
        return None


def ingest_object(
    store: ObjectStore, info: ObjectInfo, registry: frozenset[str] | None = None
) -> IngestResult:
    """Process one object version end to end; idempotent per (key, version)."""
    owner = key_owner(info.key)
    is_locked = owner is not None and owner[1] in locked_schools(store, owner[0])
    started = _start(store, info, registry, load_settings(), is_locked)
    if isinstance(started, IngestResult):
        return started
    results = started.verdict
    if results is None:
        results = validate_uploads([(started.data, started.context)])[0]
        _check_explanations(store, started, results)
    reported = _report(store, [(started, results)])[0]
    result = _record(store, reported, _write_curated(store, [reported]))
    _release_raced_locks(store, [result])
    return result


def _start(
    store: ObjectStore,
    info: ObjectInfo,
    registry: frozenset[str] | None,
    settings: Settings,
    is_locked: bool = False,
) -> IngestResult | _Pending:
    """Skip a processed version, refuse what the key alone refuses, else read the upload.

    Refused from the key alone, without validating the content: a key outside the layout,
    a year not open for collection, a dataset the submitter may not send (a school sending
    the bureau's registry, the bureau sending a school's roster).
    """
    submission = submission_id(info.key, info.version_token)
    try:
        upload = parse_upload_key(info.key)
    except LayoutError:
        return _reject_bad_key(store, info)

    record_key = ledger_key(
        upload.year, upload.submitter, upload.stem, submission, upload.extension
    )
    if store.exists(record_key):
        record = json.loads(store.get(record_key))
        return IngestResult(info.key, submission, record["outcome"], True, record.get("report_key"))
    if is_locked and not upload.is_city_file:
        return _hold(store, info, upload)
    if upload.stem == SIGNOFF_STEM and not upload.is_city_file:
        return _sign_off_upload(store, info, upload)

    datasets = load_datasets()
    dataset_id = None if upload.is_workbook else upload.stem
    context = UploadContext(
        key=info.key,
        year=upload.year,
        school_code=upload.school_code,
        dataset_id=dataset_id,
        extension=upload.extension,
        registry_school_codes=None if upload.is_city_file else registry,
        submitter_role=BUREAU if upload.is_city_file else SCHOOL,
    )
    refusal: tuple[str, str] | None = None
    if upload.year not in settings.open_year_set():
        refusal = (
            "file.year_not_open",
            f"{upload.year} is not open for collection (open: {settings.open_years})",
        )
    elif dataset_id in datasets and datasets[dataset_id].submitted_by != context.submitter_role:
        who = "the bureau" if upload.is_city_file else "a school"
        refusal = ("file.dataset_not_allowed", f"{who} may not submit {dataset_id}")
    data = store.get(info.key) if info.size_bytes <= MAX_UPLOAD_BYTES else b""
    pending = _Pending(info, upload, submission, context, registry, data)
    if refusal is not None:
        pending.verdict = [_refused(dataset_id, *refusal)]
    return pending


# -- the collection workflow: explanations, sign-off, the lock -------------------------------


def _check_explanations(
    store: ObjectStore, pending: _Pending, results: list[DatasetResult]
) -> None:
    """Check an explanations upload (file or workbook sheet) against the school's warnings.

    The school's current warnings are read from its ledger records: an explanation refers
    to a report the school has already seen (the pre-filled file is written beside it).
    """
    school = pending.upload.school_code
    for result in results:
        if result.dataset_id != EXPLANATIONS_DATASET or school is None:
            continue
        if result.frame is None or result.outcome == REJECTED:
            continue
        status = read_school_status(store, pending.upload.year, school)
        findings, explained = explanation_findings(result.frame, status.warnings)
        result.findings = pl.concat([result.findings, findings], how="vertical_relaxed")
        pending.explained = explained


def _collection_report(
    upload: UploadKey,
    info: ObjectInfo,
    submission: str,
    findings: list[dict[str, Any]],
    outcome: str,
) -> dict[str, Any]:
    """The report of an upload the collection workflow answers (sign-off, held upload)."""
    context = UploadContext(
        key=info.key,
        year=upload.year,
        school_code=upload.school_code,
        dataset_id=None,
        extension=upload.extension,
    )
    report = build_report([DatasetResult(None, None, finding_rows(findings))], context, submission)
    report["outcome"] = outcome
    return report


def _write_collection_record(
    store: ObjectStore,
    info: ObjectInfo,
    upload: UploadKey,
    submission: str,
    report: dict[str, Any],
    **fields: Any,
) -> IngestResult:
    """Write the report (JSON and the school's page) and the record of such an upload."""
    json_report_key = report_key(upload.year, upload.submitter, submission, "json")
    body = document_bytes(report)
    writes: list[_Write] = [(json_report_key, body, "application/json")]
    try:
        html = render_html(report).encode("utf-8")
        writes.append(
            (report_key(upload.year, upload.submitter, submission, "html"), html, "text/html")
        )
    except Exception:  # rendering must never fail ingest
        LOGGER.exception("could not render the report of %s", info.key)
    _put_all(store, writes)
    record = {
        **_record_fields(info, upload, submission, report, [key for key, _, _ in writes]),
        "datasets": [],
        **fields,
    }
    store.put_if_absent(
        ledger_key(upload.year, upload.submitter, upload.stem, submission, upload.extension),
        document_bytes(record, sort_keys=True),
        "application/json",
    )
    return IngestResult(info.key, submission, report["outcome"], False, json_report_key)


def _record_fields(
    info: ObjectInfo,
    upload: UploadKey,
    submission: str,
    report: dict[str, Any],
    report_keys: list[str],
) -> dict[str, Any]:
    """What every upload's ledger record says of the object, the upload and its report."""
    return {
        "submission_id": submission,
        "key": info.key,
        "stem": upload.stem,
        "extension": upload.extension,
        "version_token": info.version_token,
        "etag": info.etag,
        "version_id": info.version_id,
        "size_bytes": info.size_bytes,
        "uploaded_at": info.last_modified.astimezone(UTC).isoformat(),
        "processed_at": datetime.now(UTC).isoformat(),
        "year": upload.year,
        "submitter": upload.submitter,
        "school_code": upload.school_code,
        "outcome": report["outcome"],
        "error_count": report["error_count"],
        "warning_count": report["warning_count"],
        "report_key": report_keys[0],
        "report_keys": report_keys,
        "schema_version": SCHEMA_VERSION,
    }


def _hold(store: ObjectStore, info: ObjectInfo, upload: UploadKey) -> IngestResult:
    """An upload of a locked year: kept, recorded as held, reported as locked; counts nothing.

    Its record has its own submission id (``held:`` + version), so once the bureau reopens
    the year the same version is still unprocessed and the sweep ingests it for real.
    """
    held = submission_id(info.key, f"held:{info.version_token}")
    record_key = _record_key(upload, held)
    if store.exists(record_key):
        record = json.loads(store.get(record_key))
        return IngestResult(info.key, held, HELD, True, record.get("report_key"))
    detail = "the year is locked by the bureau; this upload is kept as a revision request"
    finding = {
        "rule_id": LOCKED_RULE,
        "detail": detail,
        "detail_zh": "已锁定：已转交教育局作为修订。",
    }
    report = _collection_report(upload, info, held, [finding], HELD)
    return _write_collection_record(
        store,
        info,
        upload,
        held,
        report,
        version_token=f"held:{info.version_token}",
        held_version=info.version_token,
    )


SIGNOFF_FIELDS = ("signed_by", "title", "note")  # what a sign-off file may say (all optional)


def _sign_off_upload(store: ObjectStore, info: ObjectInfo, upload: UploadKey) -> IngestResult:
    """``uploads/{year}/{school}/signoff.json``: the school signs off its year.

    Whose sign-off it is comes from the key's prefix (the school's own), never from the
    file; the file may name who signed (``signed_by``, ``title``, ``note``). Accepted only
    when nothing is rejected and every warning that needs an explanation has one;
    otherwise the report lists what is still open.
    """
    submission = submission_id(info.key, info.version_token)
    school = upload.school_code or ""
    status = read_school_status(store, upload.year, school)
    refusals = signoff_refusals(status)
    outcome = SIGNOFF_REFUSED_OUTCOME if refusals else SIGNED_OFF_OUTCOME
    report = _collection_report(upload, info, submission, refusals, outcome)
    report["status_before"] = status.state
    said = _signoff_fields(store.get(info.key) if info.size_bytes <= 64 * 1024 else b"")
    return _write_collection_record(
        store,
        info,
        upload,
        submission,
        report,
        collection_event=SIGNOFF_REFUSED if refusals else SIGNOFF,
        by="school",
        refusals=[item["rule_id"] for item in refusals],
        **said,
    )


def _signoff_fields(data: bytes) -> dict[str, str]:
    """The optional fields of a sign-off file (JSON object), as short text; else none."""
    try:
        content = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(content, dict):
        return {}
    return {
        name: str(content[name])[:200]
        for name in SIGNOFF_FIELDS
        if isinstance(content.get(name), str | int)
    }


def _record_key(upload: UploadKey, submission: str) -> str:
    return ledger_key(upload.year, upload.submitter, upload.stem, submission, upload.extension)


def _refused(dataset_id: str | None, rule_id: str, detail: str) -> DatasetResult:
    return DatasetResult(dataset_id, None, finding_rows([{"rule_id": rule_id, "detail": detail}]))


@dataclass
class _Reported:
    """An upload judged and reported, waiting for its batch's curated rows and its record."""

    pending: _Pending
    results: list[DatasetResult]
    report: dict[str, Any]
    report_keys: list[str]

    @property
    def is_rejected(self) -> bool:
        return bool(self.report["outcome"] == REJECTED)


def _report(
    store: ObjectStore, judged: list[tuple[_Pending, list[DatasetResult]]]
) -> list[_Reported]:
    """The reports of a batch's uploads, built together and written one by one.

    For each upload: the JSON report, then the school's page and annotated workbook, and
    quarantine for a file refused as a file.
    """
    with_registry = [
        (pending, _with_registry_check(pending, results)) for pending, results in judged
    ]
    reports = build_reports(
        [(results, pending.context, pending.submission) for pending, results in with_registry]
    )
    reported = []
    writes: list[_Write] = []
    for (pending, results), report in zip(with_registry, reports, strict=True):
        upload, submission, data = pending.upload, pending.submission, pending.data
        json_report_key = report_key(upload.year, upload.submitter, submission, "json")
        body = document_bytes(report)
        pages = _school_report_writes(upload.year, upload.submitter, submission, data, report)
        writes += [(json_report_key, body, "application/json"), *pages]
        if _is_file_level_failure(report):
            writes += _quarantine_writes(pending.info, upload.year, submission, data, report)
        report_keys = [json_report_key, *(key for key, _, _ in pages)]
        reported.append(_Reported(pending, results, report, report_keys))
    _put_all(store, writes)
    return reported


_Write = tuple[str, bytes, str | None]  # key, body, content type
WRITE_THREADS = 8  # object writes in flight at once: a PUT or an fsync mostly waits


def _put_all(store: ObjectStore, writes: list[_Write]) -> None:
    """Write many objects at once; the first storage error is raised once all have ended."""
    if len(writes) <= 1:
        for key, body, content_type in writes:
            store.put(key, body, content_type)
        return
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        futures = [pool.submit(store.put, *write) for write in writes]
    for future in futures:
        future.result()


def _with_registry_check(pending: _Pending, results: list[DatasetResult]) -> list[DatasetResult]:
    """An upload whose path names a school missing from the year's registry is told so."""
    registry, school_code = pending.registry, pending.upload.school_code
    if registry is None or school_code is None or school_code in registry:
        return results
    return [_with_unknown_school(result, school_code) for result in results]


def _curated_rows(done: _Reported) -> list[tuple[str, pl.DataFrame]]:
    """(dataset, rows to curate) of one upload: nothing of a rejected upload is curated.

    One upload, one verdict: when the upload is rejected, none of its datasets is curated,
    however many of a workbook's sheets were valid (the school was told it did not count).
    """
    if done.is_rejected:
        return []
    year, submission = done.pending.upload.year, done.pending.submission
    rows = []
    for result in done.results:
        if result.outcome == REJECTED or result.frame is None or result.dataset_id is None:
            continue
        frame = result.frame
        if SOURCE_ROW in frame.columns and "source_row_number" not in frame.columns:
            frame = frame.clone()  # renamed in place: a rename would be a Polars query
            frame.columns = [
                "source_row_number" if name == SOURCE_ROW else name for name in frame.columns
            ]
        else:
            frame = frame.rename({SOURCE_ROW: "source_row_number"})
        frame = with_constants(
            frame, {"year": (year, pl.Int64), "submission_id": (submission, pl.Utf8)}
        )
        if "school_code" not in frame.columns:
            frame = with_constants(frame, {"school_code": (None, pl.Utf8)})
        rows.append((result.dataset_id, frame))
    return rows


def _write_curated(
    store: ObjectStore, batch: list[_Reported], marker: str | None = None
) -> dict[tuple[str, str], str]:
    """One Parquet per dataset and year with the accepted rows of a batch's uploads.

    Returns (submission, dataset) -> curated key. Each row keeps its ``submission_id``, so a
    reader takes the rows of the submissions that count and leaves the rest. The keys are
    added to the batch's attempt marker first (see ``_retire_markers``).
    """
    groups: dict[tuple[str, int], list[tuple[str, pl.DataFrame]]] = {}
    for done in batch:
        for dataset_id, frame in _curated_rows(done):
            key = (dataset_id, done.pending.upload.year)
            groups.setdefault(key, []).append((done.pending.submission, frame))
    written: dict[tuple[str, str], str] = {}
    writes: list[_Write] = []
    for (dataset_id, year), parts in groups.items():
        submissions = [submission for submission, _ in parts]
        key = curated_key(dataset_id, year, submissions)
        buffer = io.BytesIO()
        pl.concat([frame for _, frame in parts], how="vertical_relaxed").write_parquet(
            buffer, compression="zstd"
        )
        writes.append((key, buffer.getvalue(), "application/vnd.apache.parquet"))
        written.update({(submission, dataset_id): key for submission in submissions})
    if marker is not None and writes:
        _name_curated_files(store, marker, [key for key, _, _ in writes])
    _put_all(store, writes)
    return written


def _record(
    store: ObjectStore, done: _Reported, curated_keys: dict[tuple[str, str], str]
) -> IngestResult:
    """The ledger record of one upload, written last: only then does the upload count."""
    info, upload, submission = done.pending.info, done.pending.upload, done.pending.submission
    report = done.report
    entries = [
        {
            "dataset": result.dataset_id,
            "outcome": REJECTED if done.is_rejected else result.outcome,
            "row_count": result.row_count,
            "curated_key": curated_keys.get((submission, result.dataset_id or "")),
        }
        for result in done.results
    ]
    json_report_key = done.report_keys[0]
    record = {
        **_record_fields(info, upload, submission, report, done.report_keys),
        "datasets": entries,
    }
    if not done.is_rejected:
        record["warnings"] = record_warnings(report)
        if done.pending.explained is not None:
            record["explained_warnings"] = done.pending.explained
    write_record(store, record)
    return IngestResult(
        info.key,
        submission,
        report["outcome"],
        False,
        json_report_key,
        tuple(entry["dataset"] for entry in entries if entry["dataset"]),
        changes_what_counts=not done.is_rejected or _key_counted_before(store, upload, submission),
    )


def _key_counted_before(store: ObjectStore, upload: UploadKey, submission: str) -> bool:
    """Whether the key's newest earlier record was accepted (so a refusal takes data away)."""
    folder = ledger_prefix(upload.year, upload.submitter) + f"{upload.stem}/"
    earlier = [
        record
        for record in read_records_under(store, [folder])
        if record["key"] == upload.key and record["submission_id"] != submission
    ]
    if not earlier:
        return False
    newest = max(earlier, key=lambda record: record.get("processed_at", ""))
    return str(newest["outcome"]).startswith("accepted")


# -- deletions: the object is gone, so is its data -----------------------------------------


def _withdraw(store: ObjectStore, key: str) -> list[IngestResult]:
    """A deleted upload: record and report its withdrawal once; nothing when never seen."""
    try:
        upload = parse_upload_key(key)
    except LayoutError:
        return []
    folder = ledger_prefix(upload.year, upload.submitter) + f"{upload.stem}/"
    records = [record for record in read_records_under(store, [folder]) if record["key"] == key]
    if not records:
        return []
    latest = max(records, key=lambda record: record.get("processed_at", ""))
    if latest["outcome"] == WITHDRAWN:
        return [IngestResult(key, latest["submission_id"], WITHDRAWN, True, latest["report_key"])]
    submission = submission_id(key, f"withdrawn:{latest['version_token']}")
    now = datetime.now(UTC).isoformat()
    report = {
        "submission_id": submission,
        "key": key,
        "year": upload.year,
        "school_code": upload.school_code,
        "outcome": WITHDRAWN,
        "withdrawn_submission_id": latest["submission_id"],
        "message_zh": "此文件已从存储桶中删除，其数据已撤回，不再计入统计。",
        "message_en": "The file was deleted from the bucket; its data no longer counts.",
        "datasets": [],
        "error_count": 0,
        "warning_count": 0,
        "counts_by_rule": [],
        "findings": [],
        "finding_limit": 0,
        "is_truncated": False,
        "schema_version": SCHEMA_VERSION,
    }
    json_report_key = report_key(upload.year, upload.submitter, submission, "json")
    store.put(
        json_report_key,
        document_bytes(report),
        "application/json",
    )
    report_keys = [
        json_report_key,
        *_write_school_reports(store, upload.year, upload.submitter, submission, b"", report),
    ]
    datasets = [entry["dataset"] for entry in latest.get("datasets", []) if entry["dataset"]]
    record = {
        "submission_id": submission,
        "key": key,
        "stem": upload.stem,
        "extension": upload.extension,
        "version_token": f"withdrawn:{latest['version_token']}",
        "withdrawn_submission_id": latest["submission_id"],
        "uploaded_at": now,
        "processed_at": now,
        "year": upload.year,
        "submitter": upload.submitter,
        "school_code": upload.school_code,
        "outcome": WITHDRAWN,
        "error_count": 0,
        "warning_count": 0,
        "report_key": json_report_key,
        "report_keys": report_keys,
        "datasets": [
            {"dataset": dataset, "outcome": WITHDRAWN, "row_count": 0, "curated_key": None}
            for dataset in datasets
        ],
        "schema_version": SCHEMA_VERSION,
    }
    write_record(store, record)
    counted = str(latest["outcome"]).startswith("accepted")
    return [
        IngestResult(key, submission, WITHDRAWN, False, json_report_key, tuple(datasets), counted)
    ]


def deleted_upload_keys(store: ObjectStore, year: int | None = None) -> list[str]:
    """Upload keys the ledger has records of but the bucket no longer holds, not yet withdrawn.

    Each record's name says which key it is about, so candidates come from two listings;
    only a candidate's own few records are read, to skip one already withdrawn.
    """
    present = set(store.list_keys(uploads_prefix(year)))
    by_key: dict[str, list[str]] = {}
    for record_key in store.list_keys(ledger_prefix(year)):
        if record_key.endswith(".json"):
            about = parse_ledger_record_key(record_key)[1]
            if about is not None and about not in present:
                by_key.setdefault(about, []).append(record_key)
    deleted = []
    for key, record_keys in sorted(by_key.items()):
        records = [json.loads(store.get(record_key)) for record_key in record_keys]
        latest = max(records, key=lambda record: record.get("processed_at", ""))
        if latest["outcome"] != WITHDRAWN:
            deleted.append(key)
    return deleted


# -- refused from the key alone -------------------------------------------------------------


def _nameless_info(key: str) -> ObjectInfo:
    """What is known of an object whose name the store cannot even look up."""
    return ObjectInfo(key=key, size_bytes=0, etag="", last_modified=datetime.fromtimestamp(0, UTC))


def _reject_bad_key(store: ObjectStore, info: ObjectInfo) -> IngestResult:
    """A key outside the layout: quarantined, recorded, and reported to the school it names."""
    detail = (
        "the key does not fit uploads/{year}/{school}/{dataset}.ext (ASCII only, no empty "
        f"or relative parts): {printable_key(info.key)}"
    )
    return _ingest_refused(store, info, "file.key_layout", detail, read_bytes=True)


def _ingest_refused(
    store: ObjectStore, info: ObjectInfo, rule_id: str, detail: str, read_bytes: bool
) -> IngestResult:
    """Record and report an upload refused without validating it, once per version.

    The report goes where the school it names can see it (reports/{year}/{school}/, and
    its upload list), or under reports/_unsorted/ for the operator when the key names no
    year and school. The bytes, when read, are kept in quarantine/.
    """
    submission = submission_id(info.key, info.version_token)
    shown_key = printable_key(info.key)
    try:
        upload: UploadKey | None = parse_upload_key(info.key)
    except LayoutError:
        upload = None
    owner = (upload.year, upload.submitter) if upload else key_owner(info.key)
    if upload is not None:
        record_key = ledger_key(
            upload.year, upload.submitter, upload.stem, submission, upload.extension
        )
    elif owner is not None:
        record_key = ledger_key(owner[0], owner[1], BAD_KEY_STEM, submission)
    else:
        record_key = unsorted_ledger_key(submission)
    if store.exists(record_key):
        record = json.loads(store.get(record_key))
        return IngestResult(shown_key, submission, REJECTED, True, record.get("report_key"))
    year, submitter = owner if owner is not None else (None, None)
    context = UploadContext(
        key=shown_key,
        year=year,
        school_code=None if submitter in (None, CITY_SUBMITTER) else submitter,
        dataset_id=upload.stem if upload and not upload.is_workbook else None,
        extension=shown_key.rsplit(".", 1)[-1].lower() if "." in shown_key else "",
    )
    report = build_report([_refused(context.dataset_id, rule_id, detail)], context, submission)
    body = document_bytes(report)
    can_read = read_bytes and 0 < info.size_bytes <= MAX_UPLOAD_BYTES
    data = store.get(info.key) if can_read else b""
    if owner is not None:
        json_report_key = report_key(owner[0], owner[1], submission, "json")
        store.put(json_report_key, body, "application/json")
        report_keys = [
            json_report_key,
            *_write_school_reports(store, owner[0], owner[1], submission, data, report),
        ]
    else:
        json_report_key = unsorted_report_key(submission, "json")
        store.put(json_report_key, body, "application/json")
        report_keys = [json_report_key]
    _quarantine(store, info, owner[0] if owner else "unsorted", submission, data, report)
    now = datetime.now(UTC).isoformat()
    record = {
        "submission_id": submission,
        "key": shown_key,
        "stem": upload.stem if upload else BAD_KEY_STEM,
        "extension": upload.extension if upload else None,
        "version_token": info.version_token,
        "etag": info.etag,
        "version_id": info.version_id,
        "size_bytes": info.size_bytes,
        "uploaded_at": info.last_modified.astimezone(UTC).isoformat(),
        "processed_at": now,
        "year": year,
        "submitter": submitter,
        "school_code": context.school_code,
        "outcome": REJECTED,
        "rule_id": rule_id,
        "detail": detail,
        "error_count": 1,
        "warning_count": 0,
        "report_key": json_report_key,
        "report_keys": report_keys,
        "datasets": [],
        "schema_version": SCHEMA_VERSION,
    }
    store.put_if_absent(record_key, document_bytes(record, sort_keys=True))
    counted = upload is not None and _key_counted_before(store, upload, submission)
    return IngestResult(shown_key, submission, REJECTED, False, json_report_key, (), counted)


def _write_school_reports(
    store: ObjectStore,
    year: int,
    submitter: str,
    submission: str,
    data: bytes,
    report: dict[str, Any],
) -> list[str]:
    """Render and write the HTML page and the annotated workbook; returns the keys written."""
    writes = _school_report_writes(year, submitter, submission, data, report)
    # a store failure is not a rendering failure: it fails the call, which is retried,
    # rather than leave the school without its page for good
    _put_all(store, writes)
    return [key for key, _, _ in writes]


def _school_report_writes(
    year: int, submitter: str, submission: str, data: bytes, report: dict[str, Any]
) -> list[_Write]:
    """The HTML page and the annotated workbook of one report, rendered, to be written.

    Feedback is a courtesy on top of the JSON report: a failure to render it is logged and
    the upload is still processed.
    """
    extension = report["key"].rsplit(".", 1)[-1].lower()
    renderers = [
        ("html", "text/html; charset=utf-8", lambda: render_html(report).encode("utf-8")),
    ]
    # The annotated workbook marks bad cells; a clean upload has none to mark, and copying
    # every accepted file into a workbook would cost more than validating it.
    if report["findings"]:
        renderers.append(
            ("xlsx", XLSX_CONTENT_TYPE, lambda: annotate_workbook(data, extension, report))
        )
    writes: list[_Write] = []
    for suffix, content_type, render in renderers:
        try:
            body = render()
        except Exception:  # rendering must never fail ingest
            LOGGER.exception("could not render the %s report of %s", suffix, report["key"])
            continue
        writes.append((report_key(year, submitter, submission, suffix), body, content_type))
    return writes


def _with_unknown_school(result: DatasetResult, school_code: str) -> DatasetResult:

    extra = finding_rows(
        [
            {
                "rule_id": "cross_dataset.unknown_school",
                "column": "school_code",
                "value": school_code,
                "detail": "the school code in the upload path is not in the registry",
                "detail_zh": f"上传路径中的学校代码“{school_code}”不在本年度的学校名录中。",
            }
        ]
    )
    result.findings = pl.concat([extra, result.findings], how="vertical_relaxed")
    return result


def _is_file_level_failure(report: dict[str, Any]) -> bool:
    return any(
        item["rule_id"].split(".")[0] in QUARANTINE_RULE_LAYERS and item["severity"] == "error"
        for item in report["counts_by_rule"]
    )


def _quarantine(
    store: ObjectStore,
    info: ObjectInfo,
    year: int | str,
    submission: str,
    data: bytes,
    report: dict[str, Any],
) -> None:
    for write in _quarantine_writes(info, year, submission, data, report):
        store.put(*write)


def _quarantine_writes(
    info: ObjectInfo, year: int | str, submission: str, data: bytes, report: dict[str, Any]
) -> list[_Write]:
    """A file refused as a file, kept as it came, and why."""
    target = quarantine_key(year, submission, info.key)
    reason = {
        "key": printable_key(info.key),
        "version_token": info.version_token,
        "rules": [item["rule_id"] for item in report["counts_by_rule"]],
        "findings": report["findings"][:20],
    }
    body = json.dumps(reason, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    return [(target, data, None), (target + ".reason.json", body, "application/json")]


def unprocessed_upload_keys(store: ObjectStore, year: int | None = None) -> list[str]:
    """What the sweep hands to ingest: uploads with no record of their current version yet.

    That is, of one year or all: uploads whose current version has no ledger record, and
    deleted uploads whose withdrawal is not recorded yet.
    """
    done = processed_submission_ids(store)
    fresh = [
        info.key
        for info in store.list(uploads_prefix(year))
        if submission_id(info.key, info.version_token) not in done
    ]
    return fresh + deleted_upload_keys(store, year)


def upload_years(store: ObjectStore) -> list[int]:
    """Every year that has anything under uploads/, ascending."""
    years = {year_of_upload_key(key) for key in store.list_keys(uploads_prefix())}
    return sorted(year for year in years if year is not None)


def split_city_first(keys: list[str]) -> tuple[list[str], list[str]]:
    """(the bureau's keys, the schools' keys): bureau files go first, they decide the registry."""
    city = [key for key in keys if f"/{CITY_SUBMITTER}/" in key]
    return city, [key for key in keys if f"/{CITY_SUBMITTER}/" not in key]
