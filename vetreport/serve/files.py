"""A read-only HTTP server for a folder bucket's reports/ and published/, and its lifecycle.

What belongs here: the server behind the links of a folder bucket
(``vetreport.bucket.links.public_url``: ``http://127.0.0.1:{VETREPORT_FILES_PORT}/{key}``).
The local Prefect server does not serve files, and browsers do not open ``file://`` links
from a web page, so this one does, and nothing more:

- it binds 127.0.0.1 only and answers GET and HEAD;
- it serves files whose key is under reports/ or published/ (a path ending in ``/`` gets
  that folder's ``index.html``, such as a school's upload list), never a folder listing,
  never a hidden file (``.tmp-*``, ``.claim``), and answers 404 to anything else: keys
  with ``..``, other zones (uploads/, ledger/, curated/), symbolic links out of the zone;
- ``/.vetreport-files`` says which folder it serves, so a second command can tell its own
  server from another checkout's or from an unrelated program on the port.

``ensure_file_server`` (called by ``vetreport up``, ``demo``, ``serve``, ``run`` and
``publish`` for a folder bucket) reuses a file server that already serves the same folder,
starts one otherwise, as a detached process like the local Prefect server (so the links
in the UI still open after ``vetreport demo`` has exited), and refuses when the port is
held by anything else. ``vetreport server stop`` (``make down``) stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from vetreport.bucket.links import FILES_HOST, files_base_url, is_served
from vetreport.bucket.store import validate_key
from vetreport.paths import REPOSITORY_ROOT
from vetreport.serve.prefect_server import ServerConflict, stop_recorded_process
from vetreport.settings import load_settings

SERVICE = "vetreport-files"
IDENTITY_PATH = "/.vetreport-files"
INDEX_NAME = "index.html"
START_TIMEOUT_SECONDS = 30
CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".parquet": "application/vnd.apache.parquet",
}
logger = logging.getLogger("vetreport.serve.files")


def resolve_request(root: Path, url_path: str) -> Path | None:
    """The file a request path names under reports/ or published/ of root, or None."""
    key = unquote(urlsplit(url_path).path).lstrip("/")
    if key.endswith("/"):
        key += INDEX_NAME
    try:
        validate_key(key)
    except ValueError:
        return None
    if not is_served(key) or any(part.startswith(".") for part in key.split("/")):
        return None
    zone = (root / key.split("/", 1)[0]).resolve()
    try:
        path = (root / key).resolve(strict=True)
    except OSError:
        return None
    if not path.is_relative_to(zone) or not path.is_file():
        return None
    return path


def content_type(path: Path) -> str:
    """The Content-Type of a served file (text as UTF-8)."""
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def make_file_server(root: Path, port: int) -> ThreadingHTTPServer:
    """A server (not yet serving) for root's reports/ and published/ on 127.0.0.1:port."""
    served_root = Path(root).resolve()

    class Handler(BaseHTTPRequestHandler):
        server_version = SERVICE

        def do_GET(self) -> None:  # noqa: N802
            self._answer(send_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            if urlsplit(self.path).path == IDENTITY_PATH:
                body = json.dumps({"service": SERVICE, "root": str(served_root)}).encode()
                self._headers(HTTPStatus.OK, "application/json", len(body))
                if send_body:
                    self.wfile.write(body)
                return
            path = resolve_request(served_root, self.path)
            if path is None:
                body = b"not found\n"
                self._headers(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", len(body))
                if send_body:
                    self.wfile.write(body)
                return
            with path.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                self._headers(HTTPStatus.OK, content_type(path), size)
                if send_body:
                    shutil.copyfileobj(stream, self.wfile)

        def _headers(self, status: HTTPStatus, kind: str, length: int) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(length))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            logger.info("%s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((FILES_HOST, port), Handler)
    server.daemon_threads = True
    return server


# -- lifecycle ---------------------------------------------------------------------------


def state_dir() -> Path:
    """Where the started file server keeps its pid file and log (var/files/)."""
    return load_settings().var_dir.resolve() / "files"


def served_by(port: int) -> Path | None | bool:
    """Who holds 127.0.0.1:port.

    The folder a vetreport file server serves there; None when nothing listens; False
    when something else does.
    """
    try:
        socket.create_connection((FILES_HOST, port), timeout=2).close()
    except OSError:
        return None
    try:
        with urllib.request.urlopen(files_base_url(port) + IDENTITY_PATH, timeout=2) as reply:
            document = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    if not isinstance(document, dict) or document.get("service") != SERVICE:
        return False
    return Path(document["root"])


def ensure_file_server(root: Path, port: int | None = None) -> str:
    """Make sure a file server serves root on VETREPORT_FILES_PORT; return its address.

    Raises ServerConflict when the port is held by anything else: a file server of
    another folder (the links would open that bucket's files) or another program.
    """
    port = port or load_settings().files_port
    root = Path(root).resolve()
    base = files_base_url(port)
    holder = served_by(port)
    if holder is None:
        _start(root, port)
        return base
    if holder == root:
        return base
    if holder is False:
        raise ServerConflict(
            f"{FILES_HOST}:{port} is held by a program that is not vetreport's file server, "
            "so the links in the Prefect artifacts would not open. Set VETREPORT_FILES_PORT "
            "to a free port."
        )
    raise ServerConflict(
        f"vetreport's file server on {base} serves {holder}, not {root}: the links in the "
        f"Prefect artifacts would open that bucket's files. Stop it (`vetreport server "
        f"stop` with the VETREPORT_VAR_DIR that started it) or set VETREPORT_FILES_PORT to "
        "another port."
    )


def _start(root: Path, port: int) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "vetreport.serve.files", str(root), "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPOSITORY_ROOT,
        start_new_session=True,
    )
    (directory / "server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while served_by(port) != root:
        if process.poll() is not None or time.monotonic() > deadline:
            raise ServerConflict(f"the file server did not start on port {port}; see {log}")
        time.sleep(0.1)


def stop_file_server() -> bool:
    """Stop a file server this module started; return whether one was running."""
    return stop_recorded_process(state_dir() / "server.pid")


def main(argv: list[str] | None = None) -> int:
    """``python -m vetreport.serve.files ROOT [--port P]``: serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="the bucket folder")
    parser.add_argument("--port", type=int, default=None)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = make_file_server(arguments.root, arguments.port or load_settings().files_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logger.info("serving %s on %s", arguments.root.resolve(), files_base_url(server.server_port))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
