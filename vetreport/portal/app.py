"""The portal's web application (Starlette): sign-in, upload, verdict, history, downloads.

What belongs here: the routes and what each checks. Every page and API answers for the
school in the signed session cookie only: no URL names a school, so a school can reach
nothing of another's (files are looked up under its own ``reports/{year}/{code}/``, keys
must be under its own ``uploads/{year}/{code}/``). Every form and every API call that
changes something carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header) and is refused without it. Pages are Jinja templates in
templates/, autoescaped; the script (static/portal.js) writes school-supplied text with
``textContent`` only, and a Content-Security-Policy allows no inline script.

Routes: ``/`` the school's page; ``/signin``, ``/signout``; ``/api/ticket`` (where and how
to send a file), ``/store/upload`` (a folder bucket's stand-in for S3's POST),
``/api/uploaded`` (which version of the key the school just sent), ``/api/status`` (its
verdict once the ledger has it), ``/api/history``; ``/files/{year}/{name}`` (the school's
reports: the store's presigned GET on S3, streamed from a folder bucket);
``/download/template``, ``/download/dictionary``, ``/download/explanations``;
``/collection/explanations`` and
``/collection/signoff`` (the 情况说明与确认 forms: the portal writes the school's
``explanations.csv`` or ``signoff.json`` into its own upload prefix, see collection_forms).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from vetreport.bucket.keys import (
    LayoutError,
    ledger_key,
    parse_upload_key,
    report_key,
    school_numbers_key,
    submission_id,
    template_key,
)
from vetreport.bucket.store import KeyNotFound, LocalStore, ObjectStore, S3Store, open_store
from vetreport.curate.collection import (
    EXPLANATIONS_DATASET,
    SIGNOFF_STEM,
    explanations_csv,
    read_school_status,
)
from vetreport.curate.school_index import school_uploads
from vetreport.docs.data_dictionary import render_dictionary
from vetreport.portal.collection_forms import (
    FORM_STEMS,
    FormRefused,
    collection_view,
    explanations_body,
    form_key,
    signoff_body,
)
from vetreport.portal.limits import SignInLimiter
from vetreport.portal.tokens import SCHOOL_CODE, token_issued_at, verify_token
from vetreport.portal.uploads import (
    LOCAL_UPLOAD_PATH,
    UploadRefused,
    check_local_post,
    key_for,
    make_ticket,
    public_endpoint_url,
    upload_choices,
)
from vetreport.school.blank_template import build_template
from vetreport.settings import Settings, load_settings

SESSION_COOKIE = "vetreport_portal"
SESSION_SECONDS = 8 * 3600  # from sign-in, however active the session
ISSUE_CACHE_SECONDS = 5  # how stale the portal's view of a school's secret may be
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LINK_SECONDS = 10 * 60
FINDINGS_SHOWN = 200
MAX_API_BODY_BYTES = 16 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STATIC_DIR = Path(__file__).parent / "static"
REPORT_FILE = re.compile(r"(?P<submission>[0-9a-f]{20})\.(?P<extension>html|xlsx|json)", re.ASCII)
VERDICT_ZH = {
    "accepted": "通过",
    "accepted_with_warnings": "通过（有警告）",
    "rejected": "未通过",
    "withdrawn": "已撤回",
    "signed_off": "已确认提交",
    "signoff_refused": "确认未被接受",
    "held": "已锁定：已转交教育局作为修订",
}
FORM_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
MAX_FORM_FIELDS = 2000
SEVERITY_ZH = {"error": "错误", "warning": "警告"}

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("vetreport.portal", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class Portal:
    """The portal's state: the store, the settings, the limiter and the keys it signs with."""

    def __init__(self, store: ObjectStore, settings: Settings, limiter: SignInLimiter) -> None:
        self.store = store
        self.settings = settings
        self.limiter = limiter
        self.session_secret = settings.portal_session_secret or secrets.token_urlsafe(48)
        # a key of its own for local upload policies, derived from the session secret
        self.signing_key = hmac.new(
            self.session_secret.encode("utf-8"), b"vetreport-portal-upload", hashlib.sha256
        ).digest()
        self.years = sorted(settings.open_year_set())
        # school -> (when read, issued_at of its current secret): read again after a while
        self._issued: dict[str, tuple[float, str | None]] = {}

    def current_issue(self, school: str) -> str | None:
        """When the school's current secret was issued, read at most every few seconds."""
        now = time.monotonic()
        cached = self._issued.get(school)
        if cached is None or now - cached[0] > ISSUE_CACHE_SECONDS:
            cached = (now, token_issued_at(self.store, school))
            self._issued[school] = cached
        return cached[1]

    def store_origin(self) -> str:
        """The origin the browser talks to for presigned POSTs and GETs ('' for a folder)."""
        if not isinstance(self.store, S3Store):
            return ""
        # a URL signed locally (no request) says the host, virtual-hosted style included
        probe = self.store.presigned_get_url("portal/origin-probe", 60)
        parts = urlsplit(public_endpoint_url(probe, self.settings.portal_s3_public_endpoint))
        return f"{parts.scheme}://{parts.netloc}"

    def prefect_runs_url(self, year: int, school_code: str) -> str:
        """The Prefect UI's flow runs, searched for this school's ingest runs."""
        ui = self.settings.portal_prefect_ui_url or f"http://127.0.0.1:{self.settings.prefect_port}"
        return f"{ui.rstrip('/')}/runs?flow-run-search={quote(f'ingest-{year}-{school_code}')}"


# -- helpers -------------------------------------------------------------------------------


def _portal(request: Request) -> Portal:
    return request.app.state.portal


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and sent and hmac.compare_digest(expected, sent))


def _school(request: Request) -> str | None:
    """The signed-in school, while its session is valid.

    A session ends with the secret it was started with (the bureau issuing a new secret
    signs out every session of the old one, within ``ISSUE_CACHE_SECONDS``) and after
    ``SESSION_SECONDS`` from sign-in, however active it is (the cookie alone would slide).
    """
    code = request.session.get("school")
    if not (isinstance(code, str) and SCHOOL_CODE.fullmatch(code)):
        return None
    started = request.session.get("signed_in_at")
    issued = request.session.get("token_issued_at")
    portal = _portal(request)
    if (
        not isinstance(started, (int, float))
        or time.time() - started > SESSION_SECONDS
        or issued is None
        or issued != portal.current_issue(code)
    ):
        request.session.clear()
        return None
    return code


def _error(message_zh: str, status: int) -> JSONResponse:
    return JSONResponse({"error_zh": message_zh}, status_code=status)


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


def _year(request: Request, value: Any = None) -> int | None:
    portal = _portal(request)
    text = str(value if value is not None else request.query_params.get("year", ""))
    if not text:
        return portal.years[-1] if portal.years else None
    if not (text.isascii() and text.isdigit()) or int(text) not in portal.years:
        return None
    return int(text)


async def _json_body(request: Request) -> dict[str, Any] | None:
    body = await request.body()
    if len(body) > MAX_API_BODY_BYTES:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _api_guard(request: Request, needs_csrf: bool) -> tuple[str | None, JSONResponse | None]:
    """The signed-in school, or the refusal: 401 without a session, 403 without CSRF."""
    school = _school(request)
    if school is None:
        return None, _error("请先登录。", 401)
    if needs_csrf and not _csrf_ok(request, request.headers.get(CSRF_HEADER)):
        return None, _error("请求缺少有效的安全令牌（CSRF），请刷新页面后重试。", 403)
    return school, None


def _own_upload_key(key: Any, school: str) -> tuple[int, str] | None:
    """(year, key) when key is one of the school's upload keys, else None."""
    if not isinstance(key, str):
        return None
    try:
        parsed = parse_upload_key(key)
    except LayoutError:
        return None
    if parsed.submitter != school:
        return None
    return parsed.year, key


# -- pages ---------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    """The school's page: state, upload, verdict, history, downloads, explain and sign off.

    After a form was sent (``?sent=explanations&submission=…``) the page polls for the
    verdict of the object it wrote, as it does after an upload.
    """
    school = _school(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    year = _year(request)
    if year is None:
        return _page("message.html", 400, title="年份不可用", message="该年份不在收集期内。")
    pending_key = pending_submission = ""
    sent = request.query_params.get("sent", "")
    submission = request.query_params.get("submission", "")
    if sent in FORM_STEMS and re.fullmatch(r"[0-9a-f]{20}", submission):
        pending_key, pending_submission = form_key(year, school, sent), submission
    return _school_page(request, school, year, pending_key, pending_submission)


def _school_page(
    request: Request,
    school: str,
    year: int,
    pending_key: str = "",
    pending_submission: str = "",
    form_error: str = "",
    status: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    portal = _portal(request)
    collection = collection_view(read_school_status(portal.store, year, school))
    for row in collection["rows"]:  # what the clerk typed, shown back when refused
        row["reason"] = (typed or {}).get(row["field"], row["reason"])
    return _page(
        "portal.html",
        status,
        collection=collection,
        form_error=form_error,
        pending_key=pending_key,
        pending_submission=pending_submission,
        school=school,
        year=year,
        years=portal.years,
        choices=upload_choices(),
        csrf=_csrf(request),
        max_bytes=portal.settings.portal_max_upload_bytes,
        max_megabytes=round(portal.settings.portal_max_upload_bytes / 1024 / 1024, 1),
        uploads=_history(portal, year, school),
        prefect_runs_url=portal.prefect_runs_url(year, school),
    )


async def signin_form(request: Request) -> Response:
    """The sign-in form (with a CSRF token in an anonymous session)."""
    return _page("signin.html", csrf=_csrf(request), message="", school="")


async def signin(request: Request) -> Response:
    """Check CSRF, the rate limits, then the secret; start the school's session."""
    portal = _portal(request)
    form = await request.form()
    if not _csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
        return _page("message.html", 403, title="请求无效", message="表单已失效，请返回重新登录。")
    code = str(form.get("school_code", "")).strip()
    secret = str(form.get("token", ""))
    address = request.client.host if request.client else "unknown"
    wait = portal.limiter.retry_after(code, address)
    if wait > 0:
        minutes = int(wait // 60) + 1
        return _page(
            "signin.html",
            429,
            csrf=_csrf(request),
            school=code,
            message=f"登录失败次数过多，请 {minutes} 分钟后再试。",
        )
    if not SCHOOL_CODE.fullmatch(code) or not verify_token(portal.store, code, secret):
        portal.limiter.failed(code, address)
        return _page(
            "signin.html", 401, csrf=_csrf(request), school=code, message="学校代码或口令不正确。"
        )
    portal.limiter.succeeded(code)
    request.session.clear()
    request.session["school"] = code
    request.session["csrf"] = secrets.token_urlsafe(32)
    request.session["signed_in_at"] = time.time()
    request.session["token_issued_at"] = token_issued_at(portal.store, code)
    return RedirectResponse("/", status_code=303)


async def signout(request: Request) -> Response:
    """End the session (a form with the CSRF token)."""
    form = await request.form()
    if not _csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
        return _page("message.html", 403, title="请求无效", message="表单已失效，请刷新页面。")
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


# -- the 情况说明与确认 forms ---------------------------------------------------------------


async def _collection_form(request: Request, stem: str) -> Response:
    """Check the session, CSRF and year; write the school's explanations or sign-off."""
    school = _school(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    if not _csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
        return _page("message.html", 403, title="请求无效", message="表单已失效，请刷新页面。")
    year = _year(request, form.get("year", ""))
    if year is None:
        return _page("message.html", 400, title="年份不可用", message="该年份不在收集期内。")
    portal = _portal(request)
    typed = {name: value for name, value in form.items() if isinstance(value, str)}
    status = read_school_status(portal.store, year, school)
    try:
        if stem == EXPLANATIONS_DATASET:
            body = explanations_body(status, typed)
        else:
            if form.get("confirm") != "yes":
                raise FormRefused("请先勾选“我已核对本校本年度数据，确认提交”。")
            body = signoff_body(status, typed)
    except FormRefused as refused:
        return _school_page(
            request, school, year, form_error=str(refused), status=refused.status, typed=typed
        )
    # the key is the school's own prefix: the session's school, never a form field
    key = form_key(year, school, stem)
    portal.store.put(key, body, FORM_CONTENT_TYPES[FORM_STEMS[stem]])
    submission = submission_id(key, portal.store.head(key).version_token)  # as ingest reads it
    return RedirectResponse(
        f"/?year={year}&sent={stem}&submission={submission}#verdict", status_code=303
    )


async def explanations_form(request: Request) -> Response:
    """The explanations form: writes ``uploads/{year}/{school}/explanations.csv``."""
    return await _collection_form(request, EXPLANATIONS_DATASET)


async def signoff_form(request: Request) -> Response:
    """The sign-off form: writes ``uploads/{year}/{school}/signoff.json``."""
    return await _collection_form(request, SIGNOFF_STEM)


# -- uploads -------------------------------------------------------------------------------


async def ticket(request: Request) -> Response:
    """Where and how the browser sends one file: a presigned POST, or the local endpoint."""
    school, refusal = _api_guard(request, needs_csrf=True)
    if refusal:
        return refusal
    portal = _portal(request)
    body = await _json_body(request)
    if body is None:
        return _error("请求格式不正确。", 400)
    year = _year(request, body.get("year"))
    if year is None:
        return _error("该年份不在收集期内。", 400)
    size = body.get("size_bytes")
    max_bytes = portal.settings.portal_max_upload_bytes
    if isinstance(size, int) and size > max_bytes:
        return _error(f"文件超过 {max_bytes / 1048576:.1f} MB 上限，请拆分后上传。", 400)
    try:
        key = key_for(year, school, str(body.get("dataset", "")), str(body.get("file_name", "")))
        issued = make_ticket(
            portal.store,
            key,
            year,
            school,
            max_bytes,
            portal.signing_key,
            portal.settings.portal_s3_public_endpoint,
        )
    except UploadRefused as error:
        return _error(str(error), error.status)
    return JSONResponse(
        {"url": issued.url, "fields": issued.fields, "key": issued.key, "max_bytes": max_bytes}
    )


async def local_upload(request: Request) -> Response:
    """A folder bucket's stand-in for S3's POST: the same policy checks, then a put."""
    school, refusal = _api_guard(request, needs_csrf=True)
    if refusal:
        return refusal
    portal = _portal(request)
    if not isinstance(portal.store, LocalStore):
        return _error("此存储不接受经门户上传。", 404)
    max_bytes = portal.settings.portal_max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        return _error("文件过大（EntityTooLarge）。", 400)  # refused before reading it
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return _error("没有收到文件。", 400)
    data = await upload.read(max_bytes + 1)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    try:
        key = check_local_post(fields, len(data), school, portal.signing_key)
    except UploadRefused as error:
        return _error(str(error), error.status)
    info = portal.store.put(key, data)
    return JSONResponse({"key": key, "etag": info.etag}, status_code=201)


async def uploaded(request: Request) -> Response:
    """The submission id of the version now at the school's key (the one just sent)."""
    school, refusal = _api_guard(request, needs_csrf=True)
    if refusal:
        return refusal
    body = await _json_body(request)
    own = _own_upload_key((body or {}).get("key"), school)
    if own is None:
        return _error("只能查看本校的上传。", 403)
    try:
        info = _portal(request).store.head(own[1])
    except KeyNotFound:
        return _error("存储中没有这个文件：上传没有成功。", 404)
    return JSONResponse({"key": own[1], "submission": submission_id(own[1], info.version_token)})


async def status(request: Request) -> Response:
    """``processing`` until the ledger has the upload's record, then its verdict."""
    school, refusal = _api_guard(request, needs_csrf=False)
    if refusal:
        return refusal
    own = _own_upload_key(request.query_params.get("key"), school)
    submission = request.query_params.get("submission", "")
    if own is None or not re.fullmatch(r"[0-9a-f]{20}", submission):
        return _error("只能查看本校的上传。", 403)
    portal = _portal(request)
    parsed = parse_upload_key(own[1])
    record_key = ledger_key(parsed.year, school, parsed.stem, submission, parsed.extension)
    try:
        record = json.loads(portal.store.get(record_key))
    except KeyNotFound:
        record = _held_record(portal.store, own[1], school, submission)
        if record is None:
            return JSONResponse({"state": "processing"})
    verdict = _verdict(portal, record)
    verdict["collection"] = collection_view(read_school_status(portal.store, parsed.year, school))
    return JSONResponse(verdict)


def _held_record(
    store: ObjectStore, key: str, school: str, submission: str
) -> dict[str, Any] | None:
    """The record of an upload held while the school's year is locked, if this is one.

    A held upload is recorded under its own id (``held:`` + version, so that it is
    processed for real once the year is reopened); the page knows the upload's plain id.
    Only the few records of this file name are read, and only while no verdict is found.
    """
    parsed = parse_upload_key(key)
    prefix = ledger_key(parsed.year, school, parsed.stem, "x", parsed.extension).rsplit("/", 1)[0]
    for record_key in store.list_keys(prefix + "/"):
        record = json.loads(store.get(record_key))
        held = record.get("held_version")
        if record.get("key") == key and held and submission_id(key, held) == submission:
            return record
    return None


def _verdict(portal: Portal, record: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with contextlib.suppress(KeyNotFound, KeyError, ValueError):
        report = json.loads(portal.store.get(record["report_key"]))
    findings = sorted(report.get("findings", []), key=lambda item: item.get("severity") != "error")
    files = {key.rsplit(".", 1)[-1]: key for key in record.get("report_keys", [])}
    year = record["year"]

    def link(extension: str) -> str | None:
        if extension not in files:
            return None
        return f"/files/{year}/{files[extension].rsplit('/', 1)[-1]}"

    return {
        "state": "done",
        "outcome": record["outcome"],
        "verdict_zh": VERDICT_ZH.get(record["outcome"], record["outcome"]),
        "error_count": record.get("error_count", 0),
        "warning_count": record.get("warning_count", 0),
        "findings": [
            {
                "severity_zh": SEVERITY_ZH.get(item.get("severity"), item.get("severity")),
                "severity": item.get("severity"),
                "sheet": item.get("sheet"),
                "row_number": item.get("row_number"),
                "header": item.get("header"),
                "value": None if item.get("value") is None else str(item.get("value")),
                "message_zh": item.get("message_zh"),
                "detail_zh": item.get("detail_zh"),
                "fix_zh": item.get("fix_zh"),
            }
            for item in findings[:FINDINGS_SHOWN]
        ],
        "findings_cut": max(0, len(findings) - FINDINGS_SHOWN),
        "report_url": link("html"),
        "workbook_url": link("xlsx"),
    }


def _history(portal: Portal, year: int, school: str) -> list[dict[str, Any]]:
    uploads = school_uploads(portal.store, year, school)
    for upload in uploads:
        upload["links"] = [
            {"label": link["label"], "href": f"/files/{year}/{link['href']}"}
            for link in upload["links"]
            if REPORT_FILE.fullmatch(link["href"])
        ]
        upload["verdict_zh"] = VERDICT_ZH.get(upload["outcome"], upload["outcome_zh"])
    return uploads


async def history(request: Request) -> Response:
    """The school's uploads of a year, newest first (the index page's content)."""
    school, refusal = _api_guard(request, needs_csrf=False)
    if refusal:
        return refusal
    year = _year(request)
    if year is None:
        return _error("该年份不在收集期内。", 400)
    return JSONResponse({"year": year, "uploads": _history(_portal(request), year, school)})


# -- files -----------------------------------------------------------------------------------


async def report_file(request: Request) -> Response:
    """One of the school's own reports: redirect to a presigned GET, or stream it."""
    school = _school(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    year = _year(request, request.path_params["year"])
    match = REPORT_FILE.fullmatch(request.path_params["name"])
    if year is None or match is None:
        return Response("未找到", status_code=404, media_type="text/plain; charset=utf-8")
    portal = _portal(request)
    key = report_key(year, school, match["submission"], match["extension"])
    download = f"{school}-{match['submission']}-标注.xlsx" if match["extension"] == "xlsx" else None
    return _object_response(portal, key, download)


async def numbers_page(request: Request) -> Response:
    """The school's own numbers beside its city and peers (written by each aggregation)."""
    school = _school(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    year = _year(request, request.path_params["year"])
    if year is None:
        return Response("未找到", status_code=404, media_type="text/plain; charset=utf-8")
    return _object_response(_portal(request), school_numbers_key(year, school, "html"), None)


def _object_response(portal: Portal, key: str, download_name: str | None) -> Response:
    store = portal.store
    if not store.exists(key):
        return Response("未找到", status_code=404, media_type="text/plain; charset=utf-8")
    if isinstance(store, S3Store):
        url = store.presigned_get_url(key, LINK_SECONDS, download_name)
        url = public_endpoint_url(url, portal.settings.portal_s3_public_endpoint)
        return RedirectResponse(url, status_code=303)
    extension = key.rsplit(".", 1)[-1]
    kinds = {"html": "text/html; charset=utf-8", "xlsx": XLSX, "json": "application/json"}
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if extension == "html":  # shown in the page's frame: no script, nothing fetched
        headers["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; style-src 'unsafe-inline'"
        )
    if download_name:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download_name)}"
    return Response(store.get(key), media_type=kinds.get(extension), headers=headers)


async def download_template(request: Request) -> Response:
    """The year's blank Excel template: the bureau's copy in the bucket, else built now."""
    school = _school(request)
    year = _year(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    if year is None:
        return Response("未找到", status_code=404, media_type="text/plain; charset=utf-8")
    portal = _portal(request)
    name = f"填报模板_{year}.xlsx"
    if portal.store.exists(template_key(year)):
        return _object_response(portal, template_key(year), name)
    return Response(
        build_template(year),
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


async def download_explanations(request: Request) -> Response:
    """The pre-filled explanations file, made now from the school's current warnings."""
    school = _school(request)
    if school is None:
        return RedirectResponse("/signin", status_code=303)
    year = _year(request)
    if year is None:
        return Response("未找到", status_code=404, media_type="text/plain; charset=utf-8")
    body = explanations_csv(read_school_status(_portal(request).store, year, school))
    name = f"{school}_{year}_{EXPLANATIONS_DATASET}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


async def download_dictionary(request: Request) -> Response:
    """The data dictionary (Markdown) generated from the catalogue."""
    if _school(request) is None:
        return RedirectResponse("/signin", status_code=303)
    name = "数据字典.md"
    return Response(
        render_dictionary().encode("utf-8"),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


async def script(request: Request) -> Response:
    """The page's script (no inline script anywhere: the CSP forbids it)."""
    return FileResponse(STATIC_DIR / "portal.js", media_type="text/javascript; charset=utf-8")


# -- the application -------------------------------------------------------------------------


class SecurityHeaders:
    """CSP and friends on every answer (ASGI middleware)."""

    def __init__(self, app: Any, portal: Portal) -> None:
        self.app = app
        origin = portal.store_origin()
        extra = f" {origin}" if origin else ""
        self.headers = [
            (
                b"content-security-policy",
                (
                    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                    f"connect-src 'self'{extra}; frame-src 'self'{extra}; "
                    f"form-action 'self'{extra}; frame-ancestors 'self'; base-uri 'none'"
                ).encode(),
            ),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Add the headers to the start of every HTTP answer that does not set them."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self.headers if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, sending)


def create_app(
    store_url: str,
    settings: Settings | None = None,
    limiter: SignInLimiter | None = None,
) -> Starlette:
    """The portal for the bucket at store_url."""
    settings = settings or load_settings()
    portal = Portal(open_store(store_url), settings, limiter or SignInLimiter())
    routes = [
        Route("/", home),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/api/ticket", ticket, methods=["POST"]),
        Route(LOCAL_UPLOAD_PATH, local_upload, methods=["POST"]),
        Route("/api/uploaded", uploaded, methods=["POST"]),
        Route("/api/status", status),
        Route("/api/history", history),
        Route("/collection/explanations", explanations_form, methods=["POST"]),
        Route("/collection/signoff", signoff_form, methods=["POST"]),
        Route("/files/{year}/{name}", report_file),
        Route("/numbers/{year}", numbers_page),
        Route("/download/template", download_template),
        Route("/download/explanations", download_explanations),
        Route("/download/dictionary", download_dictionary),
        Route("/static/portal.js", script),
    ]
    middleware = [
        Middleware(SecurityHeaders, portal=portal),
        Middleware(
            SessionMiddleware,
            secret_key=portal.session_secret,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_SECONDS,
            same_site="strict",
            https_only=settings.portal_https_only,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.portal = portal
    return app
