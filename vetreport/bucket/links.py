"""Links to objects that open in a browser: the one place that makes them.

What belongs here: ``public_url(store, key)`` for the objects people are sent to (reports
and published versions), used by every artifact and message that links to the bucket.

- An S3 bucket gives a presigned GET URL, valid for ``LINK_EXPIRY_SECONDS`` (7 days, the
  longest SigV4 allows; shorter if the credentials that sign it expire sooner).
- A folder bucket gives an ``http://127.0.0.1:{VETREPORT_FILES_PORT}/{key}`` link to the
  read-only file server (``vetreport.serve.files``) that `vetreport up`, `demo` and
  `serve` start beside the service. Never ``file://``: browsers refuse those from a page.

Only keys under ``SERVED_ZONES`` get a link, and the file server serves only those.
"""

from __future__ import annotations

from urllib.parse import quote

from vetreport.bucket.keys import PUBLISHED_ROOT, REPORTS_ROOT
from vetreport.bucket.store import LocalStore, ObjectStore, S3Store, validate_key
from vetreport.settings import load_settings

SERVED_ZONES = (REPORTS_ROOT, PUBLISHED_ROOT)
FILES_HOST = "127.0.0.1"
LINK_EXPIRY_SECONDS = 7 * 24 * 3600


def is_served(key: str) -> bool:
    """Say whether a key is in a zone people get links to (reports/, published/)."""
    return key.startswith(SERVED_ZONES)


def files_base_url(port: int | None = None) -> str:
    """The address of the local file server: ``http://127.0.0.1:{VETREPORT_FILES_PORT}``."""
    return f"http://{FILES_HOST}:{port or load_settings().files_port}"


def public_url(store: ObjectStore, key: str) -> str:
    """A link to an object under reports/ or published/ that opens in a browser."""
    validate_key(key)
    if not is_served(key):
        raise ValueError(f"no links to objects outside {', '.join(SERVED_ZONES)}: {key}")
    if isinstance(store, S3Store):
        return store.presigned_get_url(key, LINK_EXPIRY_SECONDS)
    if isinstance(store, LocalStore):
        return f"{files_base_url()}/{quote(key, safe='/')}"
    raise TypeError(f"no links for a store of type {type(store).__name__}")
