"""The school portal on a folder bucket: sign-in, CSRF, rate limits, one school's walls,
the local upload endpoint's policy checks, the verdict of an upload, and escaping.

The app runs in process (Starlette's TestClient); uploads are ingested with the same
``ingest_keys`` the ingest flow calls. The S3 side (presigned POST policies enforced by a
real SeaweedFS) is tests/integration/test_portal_on_seaweedfs.py; the browser, the
tests/integration/test_portal_browser.py scenarios.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2, which is not installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from vetreport.bucket.store import LocalStore
from vetreport.curate import collection
from vetreport.curate.ingest import ingest_keys
from vetreport.demo import walkthrough
from vetreport.portal.app import create_app
from vetreport.portal.limits import SignInLimiter
from vetreport.portal.tokens import issue_token, token_key, verify_token
from vetreport.portal.uploads import UploadRefused, key_for
from vetreport.settings import Settings

YEAR = walkthrough.YEAR
SCHOOL, OTHER = walkthrough.SCHOOL, "3133060001"
MAX_BYTES = 200_000
FILES = walkthrough.build_files()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bucket(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "bucket")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(bucket: LocalStore, clock: Clock):
    settings = Settings(
        portal_session_secret="s" * 48,
        portal_max_upload_bytes=MAX_BYTES,
        open_years=str(YEAR),
    )
    return create_app(str(bucket.root), settings, SignInLimiter(clock=clock))


@pytest.fixture
def secrets_(bucket: LocalStore) -> dict[str, str]:
    return {code: issue_token(bucket, code) for code in (SCHOOL, OTHER)}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match[1]


def sign_in(client: TestClient, code: str, secret: str) -> str:
    """Sign in; return the CSRF token of the school's page."""
    token = csrf_of(client.get("/signin").text)
    reply = client.post("/signin", data={"csrf_token": token, "school_code": code, "token": secret})
    assert reply.status_code == 200 and reply.url.path == "/", reply.text[:300]
    return csrf_of(reply.text)


def client_of(app, code: str, secret: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1")
    return client, sign_in(client, code, secret)


def send(
    client: TestClient, csrf: str, body: bytes, dataset: str = "graduates", claimed: int = 0
) -> dict:
    """Ask for a ticket and post the file as the page's script does; return the ticket.

    ``claimed``: the size the browser says the file has (default its real size).
    """
    size = claimed or len(body)
    ticket = client.post(
        "/api/ticket",
        json={"year": YEAR, "dataset": dataset, "file_name": "毕业生.csv", "size_bytes": size},
        headers={"X-CSRF-Token": csrf},
    )
    assert ticket.status_code == 200, ticket.text
    document = ticket.json()
    reply = client.post(
        document["url"],
        data=document["fields"],
        files={"file": ("毕业生.csv", body)},
        headers={"X-CSRF-Token": csrf},
    )
    document["reply"] = reply
    return document


# -- secrets and sign-in -----------------------------------------------------------------


def test_a_secret_is_stored_hashed_and_replaced_when_issued_again(bucket: LocalStore) -> None:
    secret = issue_token(bucket, SCHOOL)
    stored = bucket.get(token_key(SCHOOL)).decode()
    assert secret not in stored and secret.replace("-", "") not in stored
    assert verify_token(bucket, SCHOOL, secret)
    assert verify_token(bucket, SCHOOL, " " + secret.lower().replace("-", " "))
    assert not verify_token(bucket, SCHOOL, secret[:-1] + ("2" if secret[-1] != "2" else "3"))
    assert not verify_token(bucket, OTHER, secret)  # no secret issued for it
    assert not verify_token(bucket, "../x", secret)
    again = issue_token(bucket, SCHOOL)
    assert not verify_token(bucket, SCHOOL, secret) and verify_token(bucket, SCHOOL, again)


def test_sign_in_without_the_csrf_token_is_refused(app, secrets_) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    client.get("/signin")
    reply = client.post("/signin", data={"school_code": SCHOOL, "token": secrets_[SCHOOL]})
    assert reply.status_code == 403
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"


def test_sign_in_is_rate_limited_per_school_and_per_address(app, secrets_, clock) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    token = csrf_of(client.get("/signin").text)

    def attempt(code: str, secret: str) -> int:
        token = csrf_of(client.get("/signin").text)  # a sign-in gives the session a new one
        data = {"csrf_token": token, "school_code": code, "token": secret}
        return client.post("/signin", data=data, follow_redirects=False).status_code

    assert [attempt(SCHOOL, "WRONG-WRONG") for _ in range(5)] == [401] * 5
    refused = client.post(
        "/signin", data={"csrf_token": token, "school_code": SCHOOL, "token": secrets_[SCHOOL]}
    )
    assert refused.status_code == 429 and "分钟后再试" in refused.text  # even the right one
    assert attempt(OTHER, secrets_[OTHER]) == 303  # another school is not held up
    clock.now += 15 * 60 + 1
    assert attempt(SCHOOL, secrets_[SCHOOL]) == 303
    # one address trying many codes: 20 failures, then nothing more from it
    for number in range(20):
        assert attempt(f"999999{number:04d}", "WRONG") == 401
    assert attempt(OTHER, secrets_[OTHER]) == 429


def test_the_sign_in_page_escapes_what_was_typed(app) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    token = csrf_of(client.get("/signin").text)
    typed = '"><script>alert(1)</script>'
    reply = client.post("/signin", data={"csrf_token": token, "school_code": typed, "token": "x"})
    assert reply.status_code == 401
    assert "<script>alert(1)" not in reply.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in reply.text
    assert "script-src 'self'" in reply.headers["content-security-policy"]


# -- CSRF on the APIs and forms ------------------------------------------------------------


def test_every_change_without_the_csrf_token_is_refused(app, secrets_, bucket) -> None:
    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    body = {"year": YEAR, "dataset": "graduates", "file_name": "a.csv", "size_bytes": 10}
    assert client.post("/api/ticket", json=body).status_code == 403
    forged = {"X-CSRF-Token": "forged"}
    assert client.post("/api/ticket", json=body, headers=forged).status_code == 403
    ticket = client.post("/api/ticket", json=body, headers={"X-CSRF-Token": csrf}).json()
    upload = client.post(ticket["url"], data=ticket["fields"], files={"file": ("a.csv", b"a,b\n")})
    assert upload.status_code == 403
    assert not bucket.exists(ticket["key"])
    assert client.post("/api/uploaded", json={"key": ticket["key"]}).status_code == 403
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200  # still signed in


# -- one school's walls ----------------------------------------------------------------------


def test_another_schools_session_reaches_nothing_of_this_school(app, secrets_, bucket) -> None:
    mine, my_csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    theirs, their_csrf = client_of(app, OTHER, secrets_[OTHER])
    sent = send(mine, my_csrf, b"a,b\n1,2\n")
    assert sent["reply"].status_code == 201
    key = sent["key"]
    assert key == f"uploads/{YEAR}/{SCHOOL}/graduates.csv"
    report = f"reports/{YEAR}/{SCHOOL}/{'a' * 20}.xlsx"
    bucket.put(report, b"the report")
    assert mine.get(f"/files/{YEAR}/{'a' * 20}.xlsx").content == b"the report"
    # the other school: its /files/ look in its own folder, and it cannot name ours
    assert theirs.get(f"/files/{YEAR}/{'a' * 20}.xlsx").status_code == 404
    assert theirs.get(f"/files/{YEAR}/..%2F{SCHOOL}%2F{'a' * 20}.xlsx").status_code == 404
    status = theirs.get("/api/status", params={"key": key, "submission": "a" * 20})
    assert status.status_code == 403
    assert (
        theirs.post(
            "/api/uploaded", json={"key": key}, headers={"X-CSRF-Token": their_csrf}
        ).status_code
        == 403
    )
    # our ticket replayed in their session, and their ticket with our key: both refused
    before = bucket.head(key)
    for fields in (sent["fields"], {**send(theirs, their_csrf, b"x,y\n")["fields"], "key": key}):
        reply = theirs.post(
            "/store/upload",
            data=fields,
            files={"file": ("f.csv", b"forged\n")},
            headers={"X-CSRF-Token": their_csrf},
        )
        assert reply.status_code == 403, reply.text
    assert bucket.get(key) == b"a,b\n1,2\n" and bucket.head(key).etag == before.etag
    # a ticket for another year or dataset never names another school's prefix
    assert bucket.exists(f"uploads/{YEAR}/{OTHER}/graduates.csv")
    assert [info.key for info in bucket.list(f"uploads/{YEAR}/{SCHOOL}/")] == [key]
    # signed out, nothing at all
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    assert anonymous.get("/api/history").status_code == 401
    assert (
        anonymous.get(f"/files/{YEAR}/{'a' * 20}.xlsx", follow_redirects=False).status_code == 303
    )


def test_the_local_endpoint_refuses_an_oversize_file_and_a_wrong_key(app, secrets_, bucket) -> None:
    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    asked = {
        "year": YEAR,
        "dataset": "graduates",
        "file_name": "a.csv",
        "size_bytes": MAX_BYTES + 1,
    }
    refused = client.post("/api/ticket", json=asked, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 400 and "0.2 MB" in refused.json()["error_zh"]
    too_big = send(client, csrf, b"x" * (MAX_BYTES + 1), claimed=10)  # a browser that lies
    assert too_big["reply"].status_code == 400
    assert not bucket.exists(too_big["key"])
    ticket = send(client, csrf, b"a,b\n")
    renamed = {**ticket["fields"], "key": f"uploads/{YEAR}/{SCHOOL}/staff.csv"}
    reply = client.post(
        "/store/upload",
        data=renamed,
        files={"file": ("a.csv", b"a\n")},
        headers={"X-CSRF-Token": csrf},
    )
    assert reply.status_code == 403
    assert not bucket.exists(f"uploads/{YEAR}/{SCHOOL}/staff.csv")
    tampered = {**ticket["fields"], "policy": ticket["fields"]["policy"][:-4] + "AAAA"}
    reply = client.post(
        "/store/upload",
        data=tampered,
        files={"file": ("a.csv", b"a\n")},
        headers={"X-CSRF-Token": csrf},
    )
    assert reply.status_code == 403


def test_the_key_comes_from_the_catalogue_and_the_extension() -> None:
    assert key_for(YEAR, SCHOOL, "staff", "教职工.XLSX") == f"uploads/{YEAR}/{SCHOOL}/staff.xlsx"
    assert (
        key_for(YEAR, SCHOOL, "workbook", "全部.xlsx") == f"uploads/{YEAR}/{SCHOOL}/workbook.xlsx"
    )
    for stem, name in [
        ("staff", "a.exe"),
        ("nope", "a.csv"),
        ("workbook", "a.csv"),
        ("staff", "csv"),
    ]:
        with pytest.raises(UploadRefused):
            key_for(YEAR, SCHOOL, stem, name)


# -- the verdict -------------------------------------------------------------------------------


def test_an_upload_shows_processing_then_its_verdict_findings_and_workbook(
    app, secrets_, bucket
) -> None:
    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    sent = send(client, csrf, FILES["graduates-with-errors.csv"])
    assert sent["reply"].status_code == 201
    submission = client.post(
        "/api/uploaded", json={"key": sent["key"]}, headers={"X-CSRF-Token": csrf}
    ).json()["submission"]
    query = {"key": sent["key"], "submission": submission}
    assert client.get("/api/status", params=query).json() == {"state": "processing"}
    ingest_keys(bucket, [sent["key"]])
    verdict = client.get("/api/status", params=query).json()
    assert verdict["state"] == "done" and verdict["verdict_zh"] == "未通过"
    errors = [item for item in verdict["findings"] if item["severity"] == "error"]
    assert verdict["error_count"] == len(errors) == 5
    assert {(item["row_number"], item["header"]) for item in errors} >= {
        (3, "毕业去向"),
        (5, "初次就业月收入"),
        (8, "专业名称"),
    }
    workbook = client.get(verdict["workbook_url"])
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    assert "attachment" in workbook.headers["content-disposition"]
    report = client.get(verdict["report_url"])
    assert "sandbox" in report.headers["content-security-policy"] and "面议" in report.text
    history = client.get("/api/history").json()["uploads"]
    assert [(item["key"], item["verdict_zh"]) for item in history] == [(sent["key"], "未通过")]
    assert "未通过" in client.get("/").text  # the page's history, rendered


def test_values_a_school_wrote_are_escaped_in_its_report_and_never_set_as_html(
    app, secrets_, bucket
) -> None:
    header, rows = walkthrough.demo_rows()
    rows[0][header.index("毕业去向")] = "<img src=x onerror=alert(1)>"
    body = ("\r\n".join(",".join(row) for row in [header, *rows]) + "\r\n").encode("utf-8-sig")
    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    sent = send(client, csrf, body)
    submission = client.post(
        "/api/uploaded", json={"key": sent["key"]}, headers={"X-CSRF-Token": csrf}
    ).json()["submission"]
    ingest_keys(bucket, [sent["key"]])
    verdict = client.get("/api/status", params={"key": sent["key"], "submission": submission})
    assert verdict.headers["content-type"] == "application/json"
    assert "<img src=x onerror=alert(1)>" in [item["value"] for item in verdict.json()["findings"]]
    report = client.get(verdict.json()["report_url"]).text
    assert "<img src=x" not in report and "&lt;img src=x onerror=alert(1)&gt;" in report
    script = client.get("/static/portal.js").text
    assert "textContent" in script
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/portal.js">']
    json.loads(client.get("/api/history").text)  # JSON, never HTML


# -- the command ---------------------------------------------------------------------------------


def test_issue_token_prints_a_secret_that_signs_in_and_refuses_unknown_schools(
    bucket: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from vetreport.cli.main import EXIT_USAGE, main
    from vetreport.demo.generator import build_demo_uploads

    where = ["--bucket", str(bucket.root)]
    assert main(["portal", "issue-token", *where]) == EXIT_USAGE
    assert main(["portal", "issue-token", "../etc", *where]) == EXIT_USAGE
    assert main(["portal", "issue-token", SCHOOL, *where]) == 0
    secret = re.search(r"portal secret: (\S+)", capsys.readouterr().out)[1]
    assert verify_token(bucket, SCHOOL, secret)
    registry = f"uploads/{YEAR}/_city/school_registry.csv"
    bucket.put(registry, build_demo_uploads(YEAR, years=(YEAR,))[registry])
    ingest_keys(bucket, [registry])
    assert main(["portal", "issue-token", "9999999999", *where]) == EXIT_USAGE
    assert "in no open year's school registry" in capsys.readouterr().err
    assert not bucket.exists(token_key("9999999999"))
    assert main(["portal", "issue-token", OTHER, *where]) == 0  # in the registry


def test_the_page_may_talk_to_the_store_it_presigns_for_and_no_other(monkeypatch) -> None:
    monkeypatch.delenv("VETREPORT_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("VETREPORT_S3_ADDRESSING", "virtual")
    for public, origin in [
        (None, "https://vet-bucket.s3.amazonaws.com"),  # virtual-hosted, as the URLs say
        ("https://s3.city.example/", "https://s3.city.example"),
    ]:
        settings = Settings(portal_session_secret="s" * 48, portal_s3_public_endpoint=public)
        client = TestClient(create_app("s3://vet-bucket", settings), base_url="http://127.0.0.1")
        policy = client.get("/signin").headers["content-security-policy"]
        assert f"connect-src 'self' {origin};" in policy
        assert f"form-action 'self' {origin};" in policy


def test_a_school_sees_its_own_numbers_page_and_not_another_schools(app, secrets_, bucket) -> None:
    bucket.put(f"reports/{YEAR}/{SCHOOL}/numbers.html", f"<p>本校指标 {SCHOOL}</p>".encode())
    bucket.put(f"reports/{YEAR}/{OTHER}/numbers.html", f"<p>本校指标 {OTHER}</p>".encode())
    mine, _ = client_of(app, SCHOOL, secrets_[SCHOOL])
    page = mine.get("/")
    assert f'href="/numbers/{YEAR}"' in page.text
    shown = mine.get(f"/numbers/{YEAR}")
    assert shown.status_code == 200 and shown.text == f"<p>本校指标 {SCHOOL}</p>"
    assert "sandbox" in shown.headers["content-security-policy"]
    assert mine.get(f"/numbers/{YEAR + 1}").status_code == 404  # not aggregated yet
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    assert anonymous.get(f"/numbers/{YEAR}", follow_redirects=False).status_code == 303


# -- 情况说明与确认: the explanations and sign-off forms -------------------------------------

GRADUATES_HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入"
REASON_FIELD = re.compile(r'name="(reason\.[0-9a-f]{16})"')


def graduates_csv(school: str, matched_without_job: int) -> bytes:
    """Clean graduates, plus rows 'matched' without a job (a warning that needs explaining)."""
    lines = [GRADUATES_HEADER]
    lines += [f"{school},G{index:04d},数控技术,直接就业,是,4200" for index in range(3)]
    lines += [
        f"{school},U{index:04d},数控技术,单考单招,是," for index in range(matched_without_job)
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def state_word(html: str) -> str:
    match = re.search(r'id="state-word"[^>]*>([^<]*)<', html)
    assert match, html[:500]
    return match[1]


def follow_form(client: TestClient, bucket: LocalStore, reply) -> tuple[str, dict]:
    """The form's redirect: the page polls the object written; ingest it; its verdict."""
    assert reply.status_code == 303, reply.text[:500]
    page = client.get(reply.headers["location"]).text
    key = re.search(r'data-pending-key="([^"]+)"', page)[1]
    submission = re.search(r'data-pending-submission="([0-9a-f]{20})"', page)[1]
    query = {"key": key, "submission": submission}
    assert client.get("/api/status", params=query).json() == {"state": "processing"}
    ingest_keys(bucket, [key])
    return key, client.get("/api/status", params=query).json()


def test_a_school_explains_its_warning_and_signs_off_through_the_forms(
    app, secrets_, bucket
) -> None:
    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    sent = send(client, csrf, graduates_csv(SCHOOL, matched_without_job=1))
    ingest_keys(bucket, [sent["key"]])
    page = client.get("/").text
    assert state_word(page) == "待说明" and "请在说明表中写明原因" in page
    (field,) = REASON_FIELD.findall(page)  # one warning, one reason to write
    assert re.search(r'id="signoff-submit"[^>]* disabled', page)
    assert "尚未说明" in page  # the refusal's reason, before anyone tries

    # signing off now is refused with its reasons, and nothing is written
    early = client.post(
        "/collection/signoff", data={"csrf_token": csrf, "year": YEAR, "confirm": "yes"}
    )
    assert early.status_code == 409 and "暂不能确认提交" in early.text and "尚未说明" in early.text
    assert not bucket.exists(f"uploads/{YEAR}/{SCHOOL}/signoff.json")

    # the explanations form writes the school's explanations.csv, as it would upload it
    reason = "学生升学前已在对口企业兼职 <b>兼职</b>"
    reply = client.post(
        "/collection/explanations",
        data={"csrf_token": csrf, "year": YEAR, field: reason},
        follow_redirects=False,
    )
    key, verdict = follow_form(client, bucket, reply)
    assert key == f"uploads/{YEAR}/{SCHOOL}/explanations.csv"
    written = bucket.get(key).decode("utf-8-sig").splitlines()
    assert written[0] == "学校代码,数据集,规则编号,行号,字段,警告内容,说明"
    assert written[1].startswith(f"{SCHOOL},graduates,row.matched_only_if_employed,")
    assert written[1].endswith("," + reason) and len(written) == 2
    assert (verdict["outcome"], verdict["error_count"]) == ("accepted", 0)
    assert verdict["collection"]["state_zh"] == "已提交"
    assert verdict["collection"]["can_sign_off"] is True
    page = client.get("/").text
    assert state_word(page) == "已提交"
    assert "<b>兼职" not in page and "&lt;b&gt;兼职&lt;/b&gt;" in page  # shown back, escaped
    assert not re.search(r'id="signoff-submit"[^>]* disabled', page)

    # the sign-off form needs its confirmation, then writes signoff.json
    unconfirmed = client.post("/collection/signoff", data={"csrf_token": csrf, "year": YEAR})
    assert unconfirmed.status_code == 400
    assert not bucket.exists(f"uploads/{YEAR}/{SCHOOL}/signoff.json")
    said = {"signed_by": "王某", "title": "校长", "note": ""}
    reply = client.post(
        "/collection/signoff",
        data={"csrf_token": csrf, "year": YEAR, "confirm": "yes", **said},
        follow_redirects=False,
    )
    key, verdict = follow_form(client, bucket, reply)
    assert key == f"uploads/{YEAR}/{SCHOOL}/signoff.json"
    assert json.loads(bucket.get(key)) == {"signed_by": "王某", "title": "校长"}
    assert (verdict["outcome"], verdict["verdict_zh"]) == ("signed_off", "已确认提交")
    assert verdict["collection"]["state_zh"] == "已确认"
    page = client.get("/").text
    assert state_word(page) == "已确认" and 'id="signed-off"' in page
    again = client.post(
        "/collection/signoff", data={"csrf_token": csrf, "year": YEAR, "confirm": "yes"}
    )
    assert again.status_code == 409  # one sign-off waits for the bureau at a time

    # the bureau approves: the page says 已锁定 and the forms are closed
    collection.decide(bucket, YEAR, SCHOOL, approve=True, by="bureau")
    page = client.get("/").text
    assert state_word(page) == "已锁定" and 'id="collection-closed"' in page
    assert "/collection/explanations" not in page and "/collection/signoff" not in page
    late = client.post(
        "/collection/explanations", data={"csrf_token": csrf, "year": YEAR, field: "再说明"}
    )
    assert late.status_code == 409 and "已锁定" in late.text


def test_the_forms_need_csrf_and_write_only_the_signed_in_schools_prefix(
    app, secrets_, bucket
) -> None:
    mine, my_csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    ingest_keys(bucket, [send(mine, my_csrf, graduates_csv(SCHOOL, 1))["key"]])
    (field,) = REASON_FIELD.findall(mine.get("/").text)
    theirs, their_csrf = client_of(app, OTHER, secrets_[OTHER])
    # the other school has nothing yet: its sign-off is refused, and says why
    page = theirs.get("/").text
    assert state_word(page) == "未提交" and "尚未提交任何数据，不能确认提交" in page
    # without the CSRF token (or with a forged one) nothing is written
    for token in ("", "forged"):
        for path, data in (
            ("/collection/explanations", {field: "原因"}),
            ("/collection/signoff", {"confirm": "yes"}),
        ):
            reply = mine.post(path, data={"csrf_token": token, "year": YEAR, **data})
            assert reply.status_code == 403, path
    # our warning's field in their session names no warning of theirs: refused
    forged = theirs.post(
        "/collection/explanations",
        data={"csrf_token": their_csrf, "year": YEAR, field: "原因", "school_code": SCHOOL},
    )
    assert forged.status_code == 409
    # a school that may sign off writes its own signoff.json, whatever the form claims
    ingest_keys(bucket, [send(theirs, their_csrf, graduates_csv(OTHER, 0))["key"]])
    reply = theirs.post(
        "/collection/signoff",
        data={"csrf_token": their_csrf, "year": YEAR, "confirm": "yes", "school_code": SCHOOL},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    assert bucket.exists(f"uploads/{YEAR}/{OTHER}/signoff.json")
    assert [info.key for info in bucket.list(f"uploads/{YEAR}/{SCHOOL}/")] == [
        f"uploads/{YEAR}/{SCHOOL}/graduates.csv"
    ]
    # signed out: sent to the sign-in page, nothing written
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    reply = anonymous.post(
        "/collection/signoff", data={"year": YEAR, "confirm": "yes"}, follow_redirects=False
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/signin"
    # the pre-filled file offered on the page is the school's own
    offered = mine.get(f"/download/explanations?year={YEAR}")
    assert offered.text.lstrip("\ufeff").splitlines()[1].startswith(f"{SCHOOL},graduates,")
    assert len(theirs.get(f"/download/explanations?year={YEAR}").text.splitlines()) == 1


def test_an_upload_held_while_the_year_is_locked_shows_its_verdict(app, secrets_, bucket) -> None:
    """Ingest records a held upload under its own id (``held:`` + version); the page, which
    knows the upload's plain id, must still find it and say the year is locked."""
    from vetreport.bucket.keys import parse_upload_key
    from vetreport.curate.ingest import _hold

    mine, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    key = send(mine, csrf, b"a,b\n1,2\n")["key"]
    uploaded = mine.post("/api/uploaded", json={"key": key}, headers={"X-CSRF-Token": csrf})
    query = {"key": key, "submission": uploaded.json()["submission"]}
    assert mine.get("/api/status", params=query).json()["state"] == "processing"
    _hold(bucket, bucket.head(key), parse_upload_key(key))  # what ingest does when locked
    verdict = mine.get("/api/status", params=query).json()
    assert verdict["outcome"] == "held" and verdict["verdict_zh"].startswith("已锁定")


def test_a_new_secret_ends_the_sessions_of_the_old_one_and_sessions_end_after_a_day(
    app, secrets_, bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as clock_module

    import vetreport.portal.app as portal_app

    monkeypatch.setattr(portal_app, "ISSUE_CACHE_SECONDS", 0)
    mine, _ = client_of(app, SCHOOL, secrets_[SCHOOL])
    assert mine.get("/api/history").status_code == 200
    clock_module.sleep(0.01)  # the new secret's issue time differs from the old one's
    issue_token(bucket, SCHOOL)  # the bureau issues a new secret (a clerk left, a leak)
    assert mine.get("/api/history").status_code == 401  # the cookie alone no longer signs in
    assert mine.get("/", follow_redirects=False).status_code == 303

    again, _ = client_of(app, OTHER, secrets_[OTHER])
    later = clock_module.time() + portal_app.SESSION_SECONDS + 1
    monkeypatch.setattr(portal_app.time, "time", lambda: later)
    assert again.get("/api/history").status_code == 401  # active or not, it has ended


def test_a_change_against_last_year_is_explained_through_the_same_form(
    app, secrets_, bucket
) -> None:
    """history.json's warnings (written by aggregation) are rows of the form like others."""
    from vetreport.school.history_report import write_history_reports

    client, csrf = client_of(app, SCHOOL, secrets_[SCHOOL])
    ingest_keys(bucket, [send(client, csrf, graduates_csv(SCHOOL, matched_without_job=0))["key"]])
    from tests.unit.test_collection import HISTORY as change

    write_history_reports(bucket, {SCHOOL: [change]}, YEAR, [SCHOOL])
    page = client.get("/").text
    assert "较上年变化" in page and "在校生数：较上年变化 +50.0%" in page
    (field,) = REASON_FIELD.findall(page)
    reply = client.post(
        "/collection/explanations",
        data={"csrf_token": csrf, "year": YEAR, field: "新校区启用后扩大招生"},
        follow_redirects=False,
    )
    key, verdict = follow_form(client, bucket, reply)
    written = bucket.get(key).decode("utf-8-sig").splitlines()
    assert written[1].startswith(
        f"{SCHOOL},history,history.change_beyond_tolerance,,enrolled_students_count,"
    )
    assert (verdict["outcome"], verdict["error_count"]) == ("accepted", 0)
    [row] = verdict["collection"]["rows"]
    assert (row["dataset_zh"], row["is_explained"], row["reason"]) == (
        "较上年变化",
        True,
        "新校区启用后扩大招生",
    )
