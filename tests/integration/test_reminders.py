"""The bureau's calendar as docs/operations.md walks through it, and the reminders it sends.

The calendar is the JSON block of docs/operations.md ("The bureau's calendar"): its steps
come out in the walkthrough's order, and each reminder date is a schedule of the reminder
deployment. A reminder run over the 17 demo schools, 3 of them not yet signed off, posts
exactly 3 notices to a local HTTP receiver (through the default webhook notification
block), and none once they have signed off.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import free_port, seed_demo_year
from vetreport.bucket.store import open_store
from vetreport.curate.collection import read_school_status, sign_off
from vetreport.paths import REPOSITORY_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
YEAR = 2023


def walkthrough_calendar() -> str:
    text = (REPOSITORY_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    match = re.search(
        r"<!-- calendar:begin -->\s*```json\n(.*?)```\s*<!-- calendar:end -->", text, re.S
    )
    assert match, "docs/operations.md lost its calendar block"
    return match.group(1)


class Receiver(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notify"
    server.shutdown()
    server.server_close()


def test_the_calendar_walkthrough_and_its_reminders(
    prefect_server: None,
    receiver: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.collection import remind_schools
    from flows.service import deployment_specs
    from vetreport.publish.policy import load_calendar
    from vetreport.settings import load_settings

    monkeypatch.setenv("VETREPORT_DEADLINES", walkthrough_calendar())
    monkeypatch.setenv("VETREPORT_REMINDER_WEBHOOK_URL", receiver)
    monkeypatch.setenv("VETREPORT_OPEN_YEARS", str(YEAR))
    calendar = load_calendar()[YEAR]
    steps = [name for name, _ in calendar.steps()]
    assert steps == [
        "open",
        "reminder",
        "reminder",
        "school_deadline",
        "bureau_lock",
        "publication",
    ]
    specs = {flow.name: options for flow, options in deployment_specs("x", load_settings())}
    assert len(specs["remind-schools"]["schedules"]) == len(calendar.reminders) == 2

    store = open_store(tmp_path / "bucket")
    uploads = seed_demo_year(store, YEAR, ("/_city/", "/school_profile."))
    schools = sorted({key.split("/")[2] for key in uploads} - {"_city"})
    assert len(schools) == 17
    late, on_time = schools[:3], schools[3:]
    for school in on_time:
        assert not sign_off(store, YEAR, school, by="test").refusals
    assert read_school_status(store, YEAR, late[0]).state_zh == "已提交"

    Receiver.posts.clear()
    result = remind_schools(str(tmp_path / "bucket"), YEAR)
    assert result["reminded"] == late
    notices = [json.loads(post["body"]) for post in Receiver.posts]
    assert sorted(notice["school_code"] for notice in notices) == late
    assert {notice["state_zh"] for notice in notices} == {"已提交"}
    assert all("年度数据采集提醒" in post["subject"] for post in Receiver.posts)

    for school in late:
        assert not sign_off(store, YEAR, school, by="test").refusals
    Receiver.posts.clear()
    assert remind_schools(str(tmp_path / "bucket"), YEAR)["reminded"] == []
    assert Receiver.posts == []
