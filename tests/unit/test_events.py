"""Event sources: the HTTP receiver, the SQS poller (against moto) and the local watcher."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.conftest import make_bucket
from vetreport.receive.events import (
    UPLOAD_EVENT,
    LocalWatcher,
    SqsPoller,
    UploadNotice,
    make_receiver,
    notices_from_s3_body,
    upload_event,
)

TOKEN = "s3cret"


def s3_body(key: str, name: str = "ObjectCreated:Put", etag: str = "abc") -> dict:
    return {
        "Records": [
            {
                "eventName": name,
                "eventTime": "2024-03-01T08:00:00.000Z",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": etag, "size": 3}},
            }
        ]
    }


@pytest.fixture
def receiver():
    received: list[UploadNotice] = []
    server = make_receiver("127.0.0.1", 0, TOKEN, emit=received.extend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def post(url: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_receiver_refuses_a_missing_or_wrong_token(receiver) -> None:
    url, received = receiver
    assert post(url, s3_body("uploads/2023/3133060001/staff.csv"))[0] == 401
    bad = {"Authorization": "Bearer nope"}
    assert post(url, s3_body("uploads/2023/3133060001/staff.csv"), bad)[0] == 401
    assert post(url + "/?token=nope", s3_body("uploads/2023/3133060001/staff.csv"))[0] == 401
    assert received == []


def test_receiver_accepts_bearer_or_query_token_and_decodes_keys(receiver) -> None:
    url, received = receiver
    key = "uploads/2023/3133060001/school_profile.csv"
    encoded = "uploads%2F2023%2F3133060001%2Fschool_profile.csv"
    status, body = post(url, s3_body(encoded), {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["accepted"] == [key]
    assert post(url + f"/minio?token={TOKEN}", s3_body(key, "s3:ObjectCreated:Put"))[0] == 200
    assert [notice.key for notice in received] == [key, key]
    assert received[0].school == "3133060001" and received[0].dataset == "school_profile"


def test_receiver_ignores_test_events_and_refuses_other_keys(receiver) -> None:
    url, received = receiver
    auth = {"Authorization": f"Bearer {TOKEN}"}
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    assert post(url, test_event, auth) == (200, {"accepted": [], "refused": []})
    status, body = post(url, s3_body("published/2023/latest.json"), auth)
    assert status == 422 and body["refused"] == ["published/2023/latest.json"]
    assert post(url, b"not json", auth)[0] == 400
    assert post(url, {"no": "records"}, auth)[0] == 400
    assert received == []


def test_receiver_answers_503_when_prefect_does_not_take_the_event() -> None:
    def fail(_notices):
        raise ConnectionError("no server")

    server = make_receiver("127.0.0.1", 0, TOKEN, emit=fail)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, _ = post(
            url, s3_body("uploads/2023/3133060001/staff.csv"), {"Authorization": f"Bearer {TOKEN}"}
        )
    finally:
        server.shutdown()
        server.server_close()
    assert status == 503


def test_upload_event_shape_and_stable_id() -> None:
    notice = UploadNotice(key="uploads/2023/3133060001/staff.csv", version="v1", etag="e")
    event = upload_event(notice)
    assert event["event"] == UPLOAD_EVENT
    assert event["resource"]["prefect.resource.id"] == f"vetreport.upload.{notice.key}"
    assert event["payload"] | {"source": None} == {
        "key": notice.key,
        "version": "v1",
        "etag": "e",
        "year": 2023,
        "school": "3133060001",
        "dataset": "staff",
        "source": None,
    }
    assert upload_event(notice)["id"] == event["id"]
    assert upload_event(UploadNotice(key=notice.key, version="v2"))["id"] != event["id"]


def test_a_deletion_is_an_upload_event_and_other_records_are_skipped() -> None:
    notices, refused = notices_from_s3_body(
        s3_body("uploads/2023/x1234567/staff.csv", "ObjectRemoved:Delete")
    )
    assert [notice.key for notice in notices] == ["uploads/2023/x1234567/staff.csv"]
    assert notices[0].version.startswith("deleted:") and refused == []
    notices, refused = notices_from_s3_body(
        s3_body("uploads/2023/x1234567/staff.csv", "ObjectTagging:Put")
    )
    assert notices == [] and refused == []


@pytest.mark.integration
def test_sqs_poller_against_moto_notifications(s3_endpoint: str) -> None:
    bucket = make_bucket(s3_endpoint, versioned=True)
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName=f"q-{bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    key = "uploads/2023/3133060001/school profile.csv"  # a space: arrives as '+'
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=bucket, Key="templates/2023/x.xlsx", Body=b"x")
    sent: list[UploadNotice] = []
    poller = SqsPoller(queue_url, emit=sent.extend, wait_seconds=0, client=sqs)
    for _ in range(5):
        poller.poll_once()
    assert [notice.key for notice in sent] == [key]  # TestEvent and templates/ dropped
    # AWS sends versionId for a versioned bucket; moto sends only the eTag.
    assert sent[0].version in (put["VersionId"], put["ETag"].strip('"'))
    assert sent[0].etag == put["ETag"].strip('"')
    left = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert left == "0"


def test_sqs_poller_keeps_the_message_when_sending_fails(s3_endpoint: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="q-keep", Attributes={"VisibilityTimeout": "0"})[
        "QueueUrl"
    ]
    sqs.send_message(
        QueueUrl=queue_url, MessageBody=json.dumps(s3_body("uploads/2023/x1234567/staff.csv"))
    )

    def fail(_notices):
        raise ConnectionError("no server")

    with pytest.raises(ConnectionError):
        SqsPoller(queue_url, emit=fail, wait_seconds=0, client=sqs).poll_once()
    sent: list[UploadNotice] = []
    SqsPoller(queue_url, emit=sent.extend, wait_seconds=0, client=sqs).poll_once()
    assert [notice.key for notice in sent] == ["uploads/2023/x1234567/staff.csv"]


def test_local_watcher_reports_settled_new_and_changed_files(tmp_path: Path) -> None:
    folder = tmp_path / "uploads" / "2023" / "3133060001"
    folder.mkdir(parents=True)
    (folder / "staff.csv").write_text("old")
    sent: list[UploadNotice] = []
    watcher = LocalWatcher(tmp_path, emit=sent.extend)
    assert watcher.poll_once() == []  # baseline
    (folder / "graduates.csv").write_text("new")
    assert watcher.poll_once() == []  # seen once: not settled yet
    assert [n.key for n in watcher.poll_once()] == ["uploads/2023/3133060001/graduates.csv"]
    assert watcher.poll_once() == []
    (folder / "staff.csv").write_text("changed!")
    watcher.poll_once()
    changed = watcher.poll_once()
    assert [n.key for n in changed] == ["uploads/2023/3133060001/staff.csv"]
    assert changed[0].etag == hashlib.md5(b"changed!").hexdigest()
    assert changed[0].version.startswith(changed[0].etag + "@")
    # the earlier bytes again, with their old modification time: a new event all the same
    old_version = changed[0].version
    (folder / "staff.csv").write_text("old")
    os.utime(folder / "staff.csv", ns=(0, 0))
    watcher.poll_once()
    [reverted] = watcher.poll_once()
    assert reverted.key.endswith("staff.csv") and reverted.version != old_version
    # a deletion is reported too, so its data is withdrawn
    (folder / "graduates.csv").unlink()
    [deleted] = watcher.poll_once()
    assert deleted.key.endswith("graduates.csv") and deleted.version.startswith("deleted:")


def test_many_events_go_in_requests_of_a_bounded_size() -> None:
    import json as json_module
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from vetreport.receive.events import EVENTS_PER_REQUEST, send_events

    received: list[int] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler's name is http.server's
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(len(json_module.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *arguments: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        events = [{"event": "vetreport.upload.accepted", "id": str(n)} for n in range(1201)]
        send_events(events, f"http://127.0.0.1:{server.server_port}/api")
    finally:
        server.shutdown()
    assert received == [EVENTS_PER_REQUEST, EVENTS_PER_REQUEST, 1201 - 2 * EVENTS_PER_REQUEST]
