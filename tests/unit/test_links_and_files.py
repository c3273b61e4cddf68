"""Links that open in a browser: presigned S3 URLs, and the file server of a folder bucket."""

from __future__ import annotations

import http.client
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, make_bucket
from vetreport.bucket.links import LINK_EXPIRY_SECONDS, public_url
from vetreport.bucket.store import open_store
from vetreport.serve.files import (
    ensure_file_server,
    make_file_server,
    served_by,
    stop_file_server,
)
from vetreport.serve.prefect_server import ServerConflict

REPORT = "reports/2023/3133060002/abc.html"


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    """A raw request (the path sent as given, not normalised by a URL library)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        reply = connection.getresponse()
        return reply.status, reply.read(), dict(reply.getheaders())
    finally:
        connection.close()


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    store = open_store(root)
    store.put(REPORT, "<p>报告</p>".encode())
    store.put("reports/2023/3133060002/index.html", b"<p>uploads</p>")
    store.put("published/2023/v1/tables/staff_size.csv", "年份,人数\n2023,3\n".encode())
    store.put("published/2023/v1/.claim", b"claimed")
    store.put("uploads/2023/3133060002/graduates.csv", b"secret,upload\n")
    store.put("ledger/2023/3133060002/graduates/abc.json", b"{}")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "reports" / "escape.txt").symlink_to(tmp_path / "outside.txt")
    return root


@pytest.fixture
def file_server(bucket: Path) -> Iterator[int]:
    server = make_file_server(bucket, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_folder_bucket_links_over_http_to_the_file_server(
    bucket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETREPORT_FILES_PORT", "4999")
    store = open_store(bucket)
    assert public_url(store, REPORT) == f"http://127.0.0.1:4999/{REPORT}"
    assert public_url(store, "published/2023/v1/report.html").startswith("http://127.0.0.1:")
    for key in ("uploads/2023/3133060002/graduates.csv", "ledger/x.json", "reports/../x"):
        with pytest.raises(ValueError):
            public_url(store, key)


def test_an_s3_bucket_links_with_a_presigned_url_that_opens(s3_endpoint: str) -> None:
    store = open_store(f"s3://{make_bucket(s3_endpoint)}/prefix")
    store.put(REPORT, "<p>报告</p>".encode(), "text/html; charset=utf-8")
    url = public_url(store, REPORT)
    assert url.startswith(s3_endpoint) and f"X-Amz-Expires={LINK_EXPIRY_SECONDS}" in url
    assert "/prefix/reports/" in url
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.read() == "<p>报告</p>".encode()


def test_the_file_server_serves_reports_and_published_files(file_server: int) -> None:
    status, body, headers = get(file_server, "/" + REPORT)
    assert status == 200 and body == "<p>报告</p>".encode()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    status, body, headers = get(file_server, "/published/2023/v1/tables/staff_size.csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    status, body, _ = get(file_server, "/reports/2023/3133060002/")  # the school's upload list
    assert status == 200 and body == b"<p>uploads</p>"
    status, body, headers = get(file_server, "/" + REPORT, method="HEAD")
    assert (
        status == 200
        and body == b""
        and headers["Content-Length"] == str(len("<p>报告</p>".encode()))
    )


@pytest.mark.parametrize(
    "path",
    [
        "/uploads/2023/3133060002/graduates.csv",  # other zones
        "/ledger/2023/3133060002/graduates/abc.json",
        "/reports/../uploads/2023/3133060002/graduates.csv",  # climbing out
        "/reports/%2e%2e/uploads/2023/3133060002/graduates.csv",
        "/reports//2023/3133060002/abc.html",
        "/reports/escape.txt",  # a symbolic link out of the zone
        "/published/2023/v1/.claim",  # hidden files
        "/reports/2023/",  # a folder without an index: no listing
        "/published/",
        "/",
    ],
)
def test_the_file_server_refuses_everything_else(file_server: int, path: str) -> None:
    status, body, _ = get(file_server, path)
    assert status == 404 and b"secret" not in body


def test_the_file_server_is_read_only(file_server: int) -> None:
    assert get(file_server, "/" + REPORT, method="PUT")[0] == 501
    assert get(file_server, "/" + REPORT, method="DELETE")[0] == 501


class Stranger(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.service
@pytest.mark.service
def test_ensure_starts_one_file_server_reuses_it_and_refuses_a_port_held_by_another(
    bucket: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETREPORT_VAR_DIR", str(tmp_path / "var"))
    port = free_port()
    try:
        assert ensure_file_server(bucket, port) == f"http://127.0.0.1:{port}"
        pid = (tmp_path / "var" / "files" / "server.pid").read_text()
        assert served_by(port) == bucket.resolve()
        assert get(port, "/" + REPORT)[0] == 200
        assert ensure_file_server(bucket, port) == f"http://127.0.0.1:{port}"  # reused
        assert (tmp_path / "var" / "files" / "server.pid").read_text() == pid
        other = tmp_path / "other-bucket"
        other.mkdir()
        with pytest.raises(ServerConflict, match="serves .*bucket, not .*other-bucket"):
            ensure_file_server(other, port)
    finally:
        assert stop_file_server()
    assert not stop_file_server()

    stranger = ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ServerConflict, match="not vetreport's file server"):
            ensure_file_server(bucket, stranger.server_address[1])
    finally:
        stranger.shutdown()
        stranger.server_close()
