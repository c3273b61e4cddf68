"""Uploads through the portal: the browser sends the file to the store, not to the portal.

What belongs here: the *ticket* the portal gives the browser for one upload (a URL and
the form fields to POST with the file) and the checks the folder bucket's endpoint makes.

- An S3 bucket gets a presigned POST (``S3Store.presigned_post``): its signed policy pins
  the key to ``uploads/{year}/{code}/{dataset}.{ext}`` (exactly, and ``starts-with`` the
  school's prefix) and caps the size (``content-length-range``), so the store refuses any
  other key or a larger file, whoever sends it. The portal never sees the bytes.
- A folder bucket has no server of its own, so the portal takes the POST itself
  (``/store/upload``) with a policy of the same shape, signed with the portal's session
  key (HMAC-SHA256), and checks what an S3 store would: signature, expiry, key, size;
  and, as the portal knows who is signed in, that the policy was issued to that school.

The key is the portal's choice, not the clerk's: the dataset picked from the catalogue (or
``workbook`` for a whole workbook) and the file's extension.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from vetreport.bucket.keys import UPLOAD_EXTENSIONS, WORKBOOK_NAME, upload_key, uploads_prefix
from vetreport.bucket.store import LocalStore, ObjectStore, S3Store
from vetreport.school.blank_template import school_datasets

TICKET_SECONDS = 15 * 60
LOCAL_UPLOAD_PATH = "/store/upload"
SIGNATURE_FIELD = "x-vetreport-signature"


class UploadRefused(ValueError):
    """An upload request or a local POST that breaks its policy (the message is Chinese)."""

    def __init__(self, message_zh: str, status: int = 403) -> None:
        super().__init__(message_zh)
        self.status = status


@dataclass(frozen=True)
class Ticket:
    """What the browser needs to send one file: where, which form fields, the key."""

    url: str
    fields: dict[str, str]
    key: str
    max_bytes: int


def upload_choices() -> list[tuple[str, str]]:
    """(stem, label) of what a school may upload: each school dataset, then a workbook."""
    choices = [
        (spec.dataset_id, f"{spec.name_zh}（{spec.dataset_id}）") for spec in school_datasets()
    ]
    return [*choices, (WORKBOOK_NAME, "整本工作簿（多个数据表，xlsx）")]


def key_for(year: int, school_code: str, stem: str, file_name: str) -> str:
    """The key of an upload: the chosen dataset and the file's extension."""
    if stem not in dict(upload_choices()):
        raise UploadRefused("请选择要上传的数据表。", 400)
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if extension not in UPLOAD_EXTENSIONS:
        raise UploadRefused("只能上传 .xlsx、.csv 或 .parquet 文件。", 400)
    if stem == WORKBOOK_NAME and extension != "xlsx":
        raise UploadRefused("整本工作簿须为 .xlsx 文件。", 400)
    return upload_key(year, school_code, stem, extension)


def make_ticket(
    store: ObjectStore,
    key: str,
    year: int,
    school_code: str,
    max_bytes: int,
    signing_key: bytes,
    public_endpoint: str | None = None,
) -> Ticket:
    """The ticket for one upload to key (which must be in the school's prefix)."""
    prefix = uploads_prefix(year, school_code)
    if not key.startswith(prefix):
        raise UploadRefused("只能上传到本校的文件夹。")
    if isinstance(store, S3Store):
        url, fields = store.presigned_post(key, prefix, max_bytes, TICKET_SECONDS)
        return Ticket(public_endpoint_url(url, public_endpoint), fields, key, max_bytes)
    if isinstance(store, LocalStore):
        policy = {
            "expiration": (datetime.now(UTC) + timedelta(seconds=TICKET_SECONDS)).isoformat(),
            "school": school_code,
            "conditions": [
                {"key": key},
                ["starts-with", "$key", prefix],
                ["content-length-range", 1, max_bytes],
            ],
        }
        encoded = base64.b64encode(json.dumps(policy).encode("utf-8")).decode("ascii")
        fields = {"key": key, "policy": encoded, SIGNATURE_FIELD: _sign(encoded, signing_key)}
        return Ticket(LOCAL_UPLOAD_PATH, fields, key, max_bytes)
    raise TypeError(f"no uploads to a store of type {type(store).__name__}")


def public_endpoint_url(url: str, public_endpoint: str | None) -> str:
    """The URL with the browser-facing endpoint's scheme and host, when one is set."""
    if not public_endpoint:
        return url
    endpoint, target = urlsplit(public_endpoint), urlsplit(url)
    path = endpoint.path.rstrip("/") + target.path
    return urlunsplit((endpoint.scheme, endpoint.netloc, path, target.query, ""))


def _sign(encoded_policy: str, signing_key: bytes) -> str:
    return hmac.new(signing_key, encoded_policy.encode("ascii"), hashlib.sha256).hexdigest()


def check_local_post(
    fields: dict[str, str], size_bytes: int, school_code: str, signing_key: bytes
) -> str:
    """Check a POST to the folder bucket against its policy; return the key to write.

    Raises UploadRefused (403 for a key or signature, 400 for a size) as S3 would.
    """
    encoded, signature = fields.get("policy", ""), fields.get(SIGNATURE_FIELD, "")
    if not encoded or not hmac.compare_digest(_sign(encoded, signing_key), signature):
        raise UploadRefused("上传凭证无效，请刷新页面后重试。")
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
        expires = datetime.fromisoformat(policy["expiration"])
    except (ValueError, KeyError, TypeError) as error:
        raise UploadRefused("上传凭证无效，请刷新页面后重试。") from error
    if expires < datetime.now(UTC):
        raise UploadRefused("上传凭证已过期，请重新选择文件上传。")
    if policy.get("school") != school_code:
        raise UploadRefused("只能上传到本校的文件夹。")
    key = fields.get("key", "")
    for condition in policy["conditions"]:
        if isinstance(condition, dict) and key != condition.get("key"):
            raise UploadRefused("只能上传到本校的文件夹。")
        is_prefix = isinstance(condition, list) and condition[0] == "starts-with"
        if is_prefix and not key.startswith(condition[2]):
            raise UploadRefused("只能上传到本校的文件夹。")
        if isinstance(condition, list) and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if not low <= size_bytes <= high:
                raise UploadRefused(f"文件大小须在 {low} 到 {high} 字节之间。", 400)
    return key
