"""Object storage: one small interface over the bucket, with a local-folder and an S3 backend.

What belongs here: reading, writing and listing objects by key, and nothing about what the
keys mean (that is ``vetreport.bucket.keys``). Both backends give the same guarantees:

- ``put`` is atomic: a reader sees the old object or the new one, never a half-written one
  (S3 PUT is atomic by itself; the local backend writes a temporary file and renames it).
- ``put_if_absent`` writes only when the key does not exist yet and says whether it wrote
  (S3 conditional writes with ``If-None-Match: *``; locally an exclusive hard link).
- ``list`` yields ``ObjectInfo`` with an ETag and a last-modified time, so the pipeline can
  tell versions of an upload apart without reading it.

The store is chosen by URL: a plain path or ``file://`` for the embedded default, and
``s3://bucket[/prefix]`` for any S3-compatible endpoint (AWS, MinIO, Aliyun OSS). Endpoint,
addressing style and credentials come from the environment, never from code.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from vetreport.settings import load_settings

# Ledger and aggregation read with up to 16 threads; boto3's default pool (10) would
# open and discard connections ("Connection pool is full").
MAX_POOL_CONNECTIONS = 32


class StoreError(Exception):
    """A storage operation failed in a way worth retrying (network, throttling, server)."""


class KeyNotFound(KeyError):
    """The object does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object."""

    key: str
    size_bytes: int
    etag: str
    last_modified: datetime
    version_id: str | None = None

    @property
    def version_token(self) -> str:
        """What tells one upload of this key from another: its ETag and its time.

        The ETag alone would make a school that reverts to bytes it sent before look like
        a duplicate event; the upload's time tells the two uploads apart, while the same
        object seen twice (two events, a listing and a HEAD) keeps one token. A version id
        is not used even where the bucket keeps versions: a listing does not carry it, and
        the sweep must name an object exactly as ingest does. S3 reports whole seconds
        (two identical uploads within one second are one upload); a folder bucket,
        microseconds.
        """
        return f"{self.etag}@{self.last_modified.astimezone(UTC).isoformat()}"


class ObjectStore(Protocol):
    """The operations the pipeline needs from a bucket."""

    url: str

    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise KeyNotFound when it does not exist."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata; raise KeyNotFound when it does not exist."""
        ...

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write the object atomically, replacing any previous one."""
        ...

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Write the object only if the key is free; return whether it was written."""
        ...

    def exists(self, key: str) -> bool:
        """Say whether the key exists."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with prefix, in key order."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield the key of every object under prefix, in key order, and nothing else.

        For whoever needs only names: a folder bucket then skips each file's MD5.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object if it exists."""
        ...


def validate_key(key: str) -> str:
    """Reject keys that could escape the bucket or that no layout produces (for writes)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key: {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key: {key!r}")
    return key


def validate_read_key(key: str) -> str:
    """Reject only keys that could escape a folder bucket; others may be read as they are.

    Uploads arrive under whatever name a school gave them (a backslash, bytes that are
    not UTF-8): the pipeline must read such an object to report on it, not fail on it.
    """
    if not key or key.startswith("/") or "\x00" in key:
        raise ValueError(f"invalid object key: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key: {key!r}")
    return key


class LocalStore:
    """The bucket as a folder on local disk: the embedded default, no server needed."""

    # A request costs microseconds: a few reads go faster one after another than on threads.
    is_remote = False

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _read_path(self, key: str) -> Path:
        return self.root / validate_read_key(key)

    def _info(self, key: str, path: str | Path) -> ObjectInfo:
        stat = os.stat(path)
        # The change time, not the modification time: a copy that keeps an old mtime
        # (cp -p, an archive) is still a new upload, and st_ctime cannot be set back.
        arrived = max(stat.st_mtime, stat.st_ctime)
        return ObjectInfo(
            key=key,
            size_bytes=stat.st_size,
            etag=_md5_of_file(path, stat),
            last_modified=datetime.fromtimestamp(arrived, tz=UTC),
        )

    def get(self, key: str) -> bytes:
        """Return the object's bytes."""
        try:
            return self._read_path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise KeyNotFound(key) from error

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata."""
        path = self._read_path(key)
        if not path.is_file():
            raise KeyNotFound(key)
        return self._info(key, path)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write to a temporary file beside the target, then rename it into place."""
        path = self._path(key)
        temporary = self._write_temporary(path, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        stat = path.stat()
        return ObjectInfo(
            key=key,
            size_bytes=stat.st_size,
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),  # not read back
            last_modified=datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), tz=UTC),
        )

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Link a finished temporary file to the key; the link fails if the key exists."""
        path = self._path(key)
        temporary = self._write_temporary(path, data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def exists(self, key: str) -> bool:
        """Say whether the key exists."""
        return self._read_path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk the folder under prefix, skipping temporary files."""
        base = str(self.root) + os.sep
        for key in self._walk(prefix):
            try:
                yield self._info(key, base + key)
            except FileNotFoundError:
                continue

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """The keys ``list`` would give, from the folder's names alone (no file is read)."""
        yield from self._walk(prefix)

    def _walk(self, prefix: str) -> list[str]:
        """The keys under prefix, sorted: names joined as text (30,000 Paths cost seconds)."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(str(self.root), folder) if folder else str(self.root)
        if not os.path.isdir(start):
            return []
        cut = len(str(self.root)) + 1
        keys = []
        for directory, _subdirs, files in os.walk(start):
            relative = directory[cut:].replace(os.sep, "/")
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = f"{relative}/{name}" if relative else name
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return keys

    def delete(self, key: str) -> None:
        """Remove the object if it exists."""
        self._path(key).unlink(missing_ok=True)

    @staticmethod
    def _write_temporary(path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        return Path(name)


# The MD5 of files already hashed, by what identifies a file's content on disk: any write
# changes the change time (st_ctime_ns, which cannot be set back), a replace the inode.
# A listing of 30,000 uploads then reads none of them again. Only a file whose last change
# is older than the settle time is remembered: file times advance in coarse ticks, and two
# writes within one tick would otherwise look alike.
_MD5_BY_FILE_STATE: dict[tuple[int, int, int, int, int], str] = {}
_MD5_CACHE_LIMIT = 1_000_000
_MD5_SETTLE_NS = 2_000_000_000


def _md5_of_file(path: str | Path, stat: os.stat_result) -> str:
    state = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    known = _MD5_BY_FILE_STATE.get(state)
    if known is not None:
        return known
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    after = os.stat(path)
    is_settled = time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > _MD5_SETTLE_NS
    unchanged = state == (
        after.st_dev,
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )
    if is_settled and unchanged:
        if len(_MD5_BY_FILE_STATE) >= _MD5_CACHE_LIMIT:
            _MD5_BY_FILE_STATE.clear()
        _MD5_BY_FILE_STATE[state] = digest.hexdigest()
    return digest.hexdigest()


class S3Store:
    """A bucket on any S3-compatible endpoint, through boto3.

    Settings from the environment: ``VETREPORT_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``),
    ``VETREPORT_S3_ADDRESSING`` (``path``, ``virtual`` or ``auto``; Aliyun OSS needs
    ``virtual``), ``AWS_REGION``, and the usual AWS credential variables or profile.
    """

    # Every request is a round trip (milliseconds on a LAN, 100 ms or more across regions):
    # whoever reads many objects reads them on threads.
    is_remote = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        addressing_style: str | None = None,
        region_name: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        settings = load_settings()
        endpoint_url = (
            endpoint_url or settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        )
        addressing_style = addressing_style or settings.s3_addressing
        config = Config(
            s3={"addressing_style": addressing_style},
            # what requests use anyway; said explicitly, presigned URLs are SigV4 too
            # (botocore would presign with the deprecated SigV2 in us-east-1)
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            connect_timeout=5,
            read_timeout=60,
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name or os.environ.get("AWS_REGION", "us-east-1"),
            config=config,
        )
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _read_key(self, key: str) -> str:
        # S3 keys are names, not paths: any key an upload arrived under can be read back.
        if not key:
            raise ValueError("empty object key")
        return self.prefix + key

    def _info(self, key: str, response: dict) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size_bytes=int(response.get("ContentLength", response.get("Size", 0))),
            etag=str(response["ETag"]).strip('"'),
            # HEAD says whole seconds, a listing may say milliseconds: agree on seconds
            last_modified=response["LastModified"].replace(microsecond=0),
            version_id=_real_version(response.get("VersionId")),
        )

    def get(self, key: str) -> bytes:
        """Return the object's bytes."""
        with _translated_errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._read_key(key))
            return response["Body"].read()

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata."""
        with _translated_errors(key):
            response = self.client.head_object(Bucket=self.bucket, Key=self._read_key(key))
        return self._info(key, response)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write the object; S3 makes a PUT visible all at once."""
        extra = {"ContentType": content_type} if content_type else {}
        with _translated_errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        return self.head(key)

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Conditional write with If-None-Match; a 412 means another writer was first."""
        from botocore.exceptions import ClientError

        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", **extra
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (
                409,
                412,
            ):
                return False
            raise _as_store_error(error, key) from error
        return True

    def exists(self, key: str) -> bool:
        """Say whether the key exists."""
        try:
            self.head(key)
        except KeyNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Page through ListObjectsV2 under prefix, then yield the objects in key order.

        S3 promises UTF-8 binary order, but not every server keeps it: SeaweedFS lists a
        folder's objects in its own order (in a versioned bucket ``毕业生.csv`` before
        ``100%.csv``; ``a/x`` before ``a-b/x`` everywhere), so the listing is sorted here,
        and a key a server repeats across pages is yielded once.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        found: dict[str, ObjectInfo] = {}
        with _translated_errors(prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    found[key] = self._info(key, item)
        for key in sorted(found):  # code point order is UTF-8 byte order
            yield found[key]

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """The keys of ``list``: a listing brings each object's ETag anyway."""
        for info in self.list(prefix):
            yield info.key

    def delete(self, key: str) -> None:
        """Remove the object if it exists."""
        with _translated_errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def presigned_get_url(
        self, key: str, expires_seconds: int, download_name: str | None = None
    ) -> str:
        """A URL that lets whoever holds it GET the object until it expires.

        No request is made: the URL is signed locally with the store's credentials. With
        ``download_name`` the browser saves the object under that name instead of showing it.
        """
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if download_name:
            params["ResponseContentDisposition"] = _attachment(download_name)
        return self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_seconds
        )

    def presigned_post(
        self, key: str, starts_with: str, max_bytes: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        """The URL and form fields with which a browser may POST one object to ``key``.

        The policy, signed locally with the store's credentials, pins the key (exactly, and
        with a ``starts-with`` condition on ``starts_with``) and allows 1 to ``max_bytes``
        bytes, so the store itself refuses any other key or size. The store answers 201.
        """
        full_key, prefix = self._key(key), self.prefix + validate_key(starts_with + "x")[:-1]
        if not full_key.startswith(prefix):
            raise ValueError(f"{key} is not under {starts_with}")
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=full_key,
            Fields={"success_action_status": "201"},
            Conditions=[
                ["starts-with", "$key", prefix],
                ["content-length-range", 1, max_bytes],
                {"success_action_status": "201"},
            ],
            ExpiresIn=expires_seconds,
        )
        return post["url"], {name: str(value) for name, value in post["fields"].items()}

    def ensure_bucket(self, versioned: bool = True) -> bool:
        """Create the bucket unless it exists, with versioning on; return whether it was made.

        Versioning is turned on for a bucket that exists too (it is never turned off).
        Needs rights over the bucket itself (the pipeline's identity has them).
        """
        from botocore.exceptions import ClientError

        created = False
        with _translated_errors(self.bucket):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                self.client.create_bucket(Bucket=self.bucket)
                created = True
            if versioned:
                self.client.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )
        return created


def _attachment(name: str) -> str:
    """A Content-Disposition that saves under name (RFC 6266, UTF-8 names too)."""
    from urllib.parse import quote

    fallback = name.encode("ascii", "replace").decode("ascii").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _real_version(version_id: str | None) -> str | None:
    return None if version_id in (None, "", "null") else version_id


class _translated_errors:
    """Turn botocore errors into KeyNotFound or StoreError so callers need not know boto."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            raise _as_store_error(error, self.key) from error
        if isinstance(error, BotoCoreError):
            raise StoreError(f"{self.key}: {error}") from error
        return False


def _as_store_error(error: Exception, key: str) -> Exception:
    response = getattr(error, "response", {}) or {}
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return KeyNotFound(key)
    if code in ("AccessDenied", "403") or status == 403:
        return PermissionError(f"access denied to {key}")
    return StoreError(f"{key}: {code or status}: {error}")


def open_store(url: str | Path) -> ObjectStore:
    """Open the store a URL names: a folder path, ``file://...`` or ``s3://bucket/prefix``."""
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        return S3Store(bucket=parsed.netloc, prefix=parsed.path)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme in ("", "c", "d") or len(parsed.scheme) == 1:
        return LocalStore(Path(text))
    raise ValueError(f"unsupported store URL: {text}")
