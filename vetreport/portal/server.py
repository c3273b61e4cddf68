"""Running the portal: in the foreground, or beside the service in a thread.

``vetreport portal`` runs it in the foreground; ``vetreport up`` starts it in a thread of
the service's own process.

What belongs here: building the uvicorn server for an app and the bucket, nothing else.
The portal binds 127.0.0.1 by default; put it behind a TLS proxy to open it to schools
(and set VETREPORT_PORTAL_HTTPS_ONLY and VETREPORT_PORTAL_SESSION_SECRET).
"""

from __future__ import annotations

import threading
import time

import uvicorn

from vetreport.portal.app import create_app
from vetreport.settings import load_settings

START_TIMEOUT_SECONDS = 30


def portal_server(
    store_url: str, host: str = "127.0.0.1", port: int | None = None
) -> uvicorn.Server:
    """A uvicorn server (not yet running) of the portal for the bucket."""
    config = uvicorn.Config(
        create_app(store_url),
        host=host,
        port=port or load_settings().portal_port,
        log_level="warning",
        proxy_headers=False,  # the client address the rate limit counts is the socket's
    )
    return uvicorn.Server(config)


def serve_portal(store_url: str, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the portal until interrupted."""
    portal_server(store_url, host, port).run()


def start_portal_thread(
    store_url: str, host: str = "127.0.0.1", port: int | None = None
) -> tuple[uvicorn.Server, str]:
    """Start the portal in a daemon thread; return the server and its address once it listens."""
    server = portal_server(store_url, host, port)
    thread = threading.Thread(target=server.run, name="vetreport-portal", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the portal did not start on {host}:{server.config.port}")
        time.sleep(0.05)
    return server, f"http://{host}:{server.config.port}"
