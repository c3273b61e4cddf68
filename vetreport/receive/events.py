"""Upload events: S3 notifications, SQS messages and local file changes in, Prefect events out.

What belongs here: the one event every source produces (``vetreport.upload.created``), the
event the ingest flow emits for an accepted submission (``vetreport.submission.accepted``),
and the sources that notice uploads:

- ``notices_from_s3_body``: the standard ``Records`` JSON that AWS S3 and MinIO send (keys
  URL-encoded; ``s3:TestEvent`` ignored; only ``uploads/`` keys accepted);
- ``make_receiver``: an HTTP endpoint for MinIO webhooks (or anything that POSTs that
  JSON), guarded by a shared token (``Authorization: Bearer T`` or ``?token=T``);
- ``SqsPoller``: long-polls an SQS queue that an AWS bucket notifies, deleting a message
  only once its events are sent;
- ``LocalWatcher``: watches the embedded bucket's ``uploads/`` folder by comparing listings
  (no extra dependency; the scheduled sweep is the safety net anyway).

Events are sent synchronously with ``POST /api/events`` so a source knows whether Prefect
has them before it acknowledges a notification (a webhook answer, an SQS delete). Event ids
are derived from the object version, so Prefect drops a repeated notification within its
dedupe window; the ledger makes repeats harmless after that.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from vetreport.bucket.keys import (
    UPLOADS_ROOT,
    LayoutError,
    decode_event_key,
    parse_upload_key,
    submission_id,
)
from vetreport.settings import load_settings

UPLOAD_EVENT = "vetreport.upload.created"
ACCEPTED_EVENT = "vetreport.submission.accepted"
EVENT_NAMESPACE = uuid.UUID("6f1d1c55-3b0e-4d8e-9a51-7c1f0b6d2a10")
MAX_BODY_BYTES = 1024 * 1024

logger = logging.getLogger("vetreport.receive.events")


class BadNotification(ValueError):
    """A notification body that is not the S3 ``Records`` JSON."""


@dataclass(frozen=True)
class UploadNotice:
    """One upload, as a source saw it: which key, which version, what it is."""

    key: str
    version: str = ""
    etag: str = ""
    source: str = "unknown"
    occurred: datetime | None = None

    @property
    def year(self) -> int | None:
        """The year in the key, or None for a key outside the layout."""
        return _parsed(self.key)[0]

    @property
    def school(self) -> str:
        """The submitter in the key (a school code or ``_city``)."""
        return _parsed(self.key)[1]

    @property
    def dataset(self) -> str:
        """The dataset (file stem) in the key."""
        return _parsed(self.key)[2]


def _parsed(key: str) -> tuple[int | None, str, str]:
    try:
        upload = parse_upload_key(key)
    except LayoutError:
        parts = key.split("/")
        year = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        school = parts[2] if len(parts) > 2 else "unknown"
        return year, school or "unknown", parts[-1].split(".")[0] or "unknown"
    return upload.year, upload.submitter, upload.stem


# -- Prefect events ---------------------------------------------------------------------


def upload_event(notice: UploadNotice) -> dict[str, Any]:
    """The Prefect event for one upload (as JSON), with an id derived from its version."""
    version = notice.version or notice.etag
    year = notice.year
    return {
        "id": str(uuid.uuid5(EVENT_NAMESPACE, f"upload\n{notice.key}\n{version}")),
        "occurred": (notice.occurred or datetime.now(UTC)).isoformat(),
        "event": UPLOAD_EVENT,
        "resource": {
            "prefect.resource.id": f"vetreport.upload.{notice.key}",
            "vetreport.year": str(year or ""),
            "vetreport.school": notice.school,
            "vetreport.dataset": notice.dataset,
        },
        "payload": {
            "key": notice.key,
            "version": version,
            "etag": notice.etag,
            "year": year or 0,
            "school": notice.school,
            "dataset": notice.dataset,
            "source": notice.source,
        },
    }


def accepted_event(result: dict[str, Any]) -> dict[str, Any]:
    """The Prefect event for an accepted submission (``result`` is an IngestResult dict)."""
    year, school, dataset = _parsed(result["key"])
    return {
        "id": str(uuid.uuid5(EVENT_NAMESPACE, f"accepted\n{result['submission_id']}")),
        "occurred": datetime.now(UTC).isoformat(),
        "event": ACCEPTED_EVENT,
        "resource": {
            "prefect.resource.id": f"vetreport.submission.{result['submission_id']}",
            "vetreport.year": str(year or ""),
            "vetreport.school": school,
            "vetreport.dataset": dataset,
        },
        "payload": {
            "key": result["key"],
            "submission_id": result["submission_id"],
            "outcome": result["outcome"],
            "year": year or 0,
            "school": school,
            "dataset": dataset,
            "datasets": list(result.get("datasets", ())),
        },
    }


EVENTS_PER_REQUEST = 500


def send_events(events: list[dict[str, Any]], api_url: str | None = None) -> None:
    """POST events to the Prefect API and raise unless it took them all."""
    if not events:
        return
    import httpx
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    url = (api_url or PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or "").rstrip(
        "/"
    )
    if not url:
        raise RuntimeError("PREFECT_API_URL is not set: there is no Prefect server to tell")
    headers = {}
    key = PREFECT_API_KEY.value()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    auth_string = os.environ.get("PREFECT_API_AUTH_STRING")
    auth = tuple(auth_string.split(":", 1)) if auth_string and ":" in auth_string else None
    # A national sweep announces thousands of uploads: in requests a server answers in time.
    with httpx.Client(headers=headers, auth=auth, timeout=30) as client:  # type: ignore[arg-type]
        for start in range(0, len(events), EVENTS_PER_REQUEST):
            response = client.post(f"{url}/events", json=events[start : start + EVENTS_PER_REQUEST])
            response.raise_for_status()


def emit_uploads(notices: Iterable[UploadNotice], api_url: str | None = None) -> int:
    """Send the upload event of each notice; return how many were sent."""
    events = [upload_event(notice) for notice in notices]
    send_events(events, api_url)
    return len(events)


def changes_to_announce(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ingest results processed just now that change what counts: those to announce.

    An accepted upload adds data; a rejected upload or a deletion takes away what its key
    counted before (what counts is the object now at each key). A rejected first upload of
    a key changes nothing and starts no aggregation.
    """
    return [
        result
        for result in results
        if not result.get("was_skipped") and result.get("changes_what_counts", True)
    ]


def emit_accepted(results: Iterable[dict[str, Any]], api_url: str | None = None) -> int:
    """Send an event for each result that changes what counts (see ``changes_to_announce``).

    Aggregation is debounced on these events and publishes only when the tables changed.
    """
    events = [accepted_event(result) for result in changes_to_announce(results)]
    send_events(events, api_url)
    return len(events)


# -- S3 notifications -------------------------------------------------------------------


def _notice_version(event_name: str, obj: dict[str, Any], event_time: Any) -> str:
    """What tells this event from another of the same key (its event id is built from it)."""
    if "ObjectRemoved" in event_name:  # no ETag; each deletion has its own sequencer
        return f"deleted:{obj.get('versionId') or obj.get('sequencer') or event_time or ''}"
    return str(obj.get("versionId") or obj.get("eTag") or obj.get("sequencer") or "")


def notices_from_s3_body(body: Any, source: str = "s3") -> tuple[list[UploadNotice], list[str]]:
    """Parse an S3/MinIO notification; return (upload notices, refused keys).

    A test event (``s3:TestEvent``, sent when a notification is configured) gives nothing.
    Creations and deletions give notices (ingesting a deleted key withdraws its data);
    other events are skipped. Keys are URL-decoded; keys outside ``uploads/`` are
    refused (returned in the second list).
    """
    if not isinstance(body, dict):
        raise BadNotification("the notification is not a JSON object")
    if body.get("Event") == "s3:TestEvent" or body.get("EventName") == "s3:TestEvent":
        return [], []
    records = body.get("Records")
    if not isinstance(records, list):
        raise BadNotification("the notification has no Records list")
    notices: list[UploadNotice] = []
    refused: list[str] = []
    for record in records:
        try:
            name = str(record.get("eventName", ""))
            s3 = record["s3"]
            raw_key = s3["object"]["key"]
        except (AttributeError, KeyError, TypeError) as error:
            raise BadNotification(f"a record lacks s3.object.key: {error}") from error
        if name == "s3:TestEvent":
            continue
        if "ObjectCreated" not in name and "ObjectRemoved" not in name:
            continue  # a deletion is an upload event too: its data is withdrawn
        key = decode_event_key(str(raw_key))
        if not key.startswith(UPLOADS_ROOT) or ".." in key.split("/"):
            refused.append(key)
            continue
        obj = s3["object"]
        notices.append(
            UploadNotice(
                key=key,
                version=_notice_version(name, obj, record.get("eventTime")),
                etag=str(obj.get("eTag") or "").strip('"'),
                source=source,
                occurred=_event_time(record.get("eventTime")),
            )
        )
    return notices, refused


def _event_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


# -- HTTP receiver ----------------------------------------------------------------------


Emitter = Callable[[list[UploadNotice]], Any]


def make_receiver(
    host: str, port: int, token: str, emit: Emitter | None = None
) -> ThreadingHTTPServer:
    """An HTTP server that turns S3/MinIO notifications into upload events.

    Answers: 200 with counts when the body was handled (including test events), 400 for
    a body that is not the notification JSON, 401 for a missing or wrong token, 413 for
    a body over 1 MiB, 422 when every key lay outside ``uploads/``, 503 when Prefect
    did not take the events (so the sender retries).
    """
    if not token:
        raise ValueError("the receiver needs a shared token")
    send = emit or emit_uploads

    class Handler(BaseHTTPRequestHandler):
        server_version = "vetreport-receiver"

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s " + format, self.address_string(), *args)

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer ") and _same(header[7:].strip(), token):
                return True
            given = parse_qs(urlparse(self.path).query).get("token", [""])[0]
            return bool(given) and _same(given, token)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if urlparse(self.path).path == "/health":
                self._answer(HTTPStatus.OK, {"status": "ok"})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "POST notifications here"})

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            if not self._authorised():
                self._answer(HTTPStatus.UNAUTHORIZED, {"error": "bad or missing token"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                notices, refused = notices_from_s3_body(body, source="webhook")
            except (json.JSONDecodeError, UnicodeDecodeError, BadNotification) as error:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(error)})
                return
            if refused and not notices:
                self._answer(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    {"error": "keys outside uploads/", "refused": refused},
                )
                return
            try:
                send(notices)
            except Exception as error:  # Prefect unreachable: let the sender retry
                logger.exception("could not send upload events")
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error)})
                return
            self._answer(HTTPStatus.OK, {"accepted": [n.key for n in notices], "refused": refused})

    return ThreadingHTTPServer((host, port), Handler)


def _same(given: str, expected: str) -> bool:
    import hmac

    return hmac.compare_digest(given.encode(), expected.encode())


# -- SQS poller -------------------------------------------------------------------------


@dataclass
class SqsPoller:
    """Long-poll an SQS queue of S3 notifications and send their upload events.

    A message is deleted only after its events were sent (or it is a test event or
    unreadable), so a crash in between means a redelivery, which the event id and the
    ledger make harmless.
    """

    queue_url: str
    emit: Emitter = field(default=emit_uploads)
    wait_seconds: int = 1
    client: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3

            settings = load_settings()
            self.client = boto3.client(
                "sqs",
                endpoint_url=settings.sqs_endpoint_url
                or settings.s3_endpoint_url
                or os.environ.get("AWS_ENDPOINT_URL"),
                region_name=os.environ.get("AWS_REGION", "us-east-1"),
            )

    def poll_once(self) -> list[UploadNotice]:
        """Receive up to ten messages, send their events, delete them; return the notices."""
        reply = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_seconds,
        )
        sent: list[UploadNotice] = []
        for message in reply.get("Messages", []):
            try:
                notices, refused = notices_from_s3_body(json.loads(message["Body"]), "sqs")
            except (json.JSONDecodeError, BadNotification) as error:
                logger.warning("dropping an unreadable SQS message: %s", error)
                notices, refused = [], []
            if refused:
                logger.warning("ignoring keys outside uploads/: %s", refused)
            if notices:
                self.emit(notices)  # raises: the message stays and comes back
                sent.extend(notices)
            self.client.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return sent

    def run(self, stop: threading.Event) -> None:
        """Poll until stop is set; errors are logged and retried after a pause."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("SQS poll failed; retrying")
                stop.wait(5)


# -- Local watcher ----------------------------------------------------------------------


@dataclass
class LocalWatcher:
    """Watch ``uploads/`` of a local bucket folder and send an event per new or changed file.

    A file is reported once its size and modification time have stayed the same for one
    poll, so a file still being copied is not read half-written. The first listing is a
    baseline: files that arrived while nothing watched are the sweep's job.
    """

    root: Path
    emit: Emitter = field(default=emit_uploads)
    interval_seconds: float = 0.25
    report_existing: bool = False
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    _started: bool = False

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        base = Path(self.root)
        uploads = base / "uploads"
        found: dict[str, tuple[int, int]] = {}
        if not uploads.is_dir():
            return found
        for directory, _subdirs, files in os.walk(uploads):
            for name in files:
                if name.startswith(".tmp-") or name.startswith("."):
                    continue
                path = Path(directory) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                # ctime too: a copy that keeps an old mtime (cp -p) is still a new upload
                found[path.relative_to(base).as_posix()] = (
                    stat.st_size,
                    max(stat.st_mtime_ns, stat.st_ctime_ns),
                )
        return found

    def poll_once(self) -> list[UploadNotice]:
        """Compare the listing with the last one; send events for settled changes."""
        current = self._snapshot()
        if not self._started:
            self._started = True
            if not self.report_existing:
                self._seen = current
                return []
        ready = [
            key
            for key, stat in current.items()
            if self._seen.get(key) != stat and self._pending.get(key) == stat
        ]
        self._pending = {
            key: stat
            for key, stat in current.items()
            if self._seen.get(key) != stat and key not in ready
        }
        notices = []
        for key in sorted(ready):
            etag = _md5(Path(self.root) / key)
            if etag is None:
                continue
            # the time makes a re-upload of earlier bytes a new event, not a duplicate
            version = f"{etag}@{current[key][1]}"
            notices.append(UploadNotice(key=key, version=version, etag=etag, source="watcher"))
        deleted = sorted(set(self._seen) - set(current))
        for key in deleted:  # a deletion is an upload event too: its data is withdrawn
            version = f"deleted:{self._seen[key][1]}"
            notices.append(UploadNotice(key=key, version=version, source="watcher"))
        if notices:
            self.emit(notices)  # raises: nothing marked seen, retried next poll
        for notice in notices:
            if notice.key in current:
                self._seen[notice.key] = current[notice.key]
        for key in deleted:
            del self._seen[key]
        return notices

    def run(self, stop: threading.Event) -> None:
        """Poll until stop is set."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("watching %s failed; retrying", self.root)
                stop.wait(5)
            stop.wait(self.interval_seconds)


def _md5(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    except FileNotFoundError:
        return None


def upload_submission_id(notice: UploadNotice) -> str:
    """The submission id the ledger will give this upload version."""
    return submission_id(notice.key, notice.version or notice.etag)


def wait_until(predicate: Callable[[], bool], timeout_seconds: float, step: float = 0.2) -> bool:
    """Poll predicate until it is true or the time is up; return its last value."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
