"""The bucket layout: how keys are built and parsed, in one place.

What belongs here: the zones of the bucket (uploads, curated, ledger, reports, quarantine,
published, templates) and the functions that turn identifiers into keys and back. Nothing
here reads or writes objects.

    uploads/{year}/{school_code}/{dataset}.{csv|xlsx|parquet}
    uploads/{year}/{school_code}/workbook.xlsx
    uploads/{year}/_city/{dataset}.csv
    curated/{dataset}/year={year}/batch={batch_id}.parquet  (the rows of many submissions)
    curated/_measures/year={year}/school_measures.parquet   (aggregation's cache)
    ledger/{year}/{school_code}/{dataset}/{submission_id}.json
    reports/{year}/{school_code}/{submission_id}.{json,html,xlsx}
    quarantine/{year}/{submission_id}/{original file name}
    published/{year}/v{n}/...  and published/{year}/latest.json
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

UPLOADS_ROOT = "uploads/"
LEDGER_ROOT = "ledger/"
PUBLISHED_ROOT = "published/"
REPORTS_ROOT = "reports/"
CITY_SUBMITTER = "_city"
WORKBOOK_NAME = "workbook"
UPLOAD_EXTENSIONS = ("csv", "xlsx", "parquet")

# Canonical keys are ASCII: [0-9] and not \d, which also matches full-width and other digits.
_UPLOAD_PATTERN = re.compile(
    r"^uploads/(?P<year>[0-9]{4})/(?P<submitter>_city|[0-9A-Za-z]{6,20})/"
    r"(?P<stem>[a-z][a-z0-9_]{1,40})\.(?P<extension>[A-Za-z]{3,7})$",
    re.ASCII,
)
# Whose a key is, read leniently, so a key that breaks the layout can still be reported to
# the school it names: the first parts, when they look like a year and a school code.
_OWNER_PATTERN = re.compile(
    r"^uploads/(?P<year>[0-9]{4})/(?P<submitter>_city|[0-9A-Za-z]{6,20})/", re.ASCII
)


class LayoutError(ValueError):
    """A key does not fit the bucket layout."""


@dataclass(frozen=True)
class UploadKey:
    """An upload's key, parsed: which year, which submitter, which dataset."""

    key: str
    year: int
    submitter: str
    stem: str
    extension: str

    @property
    def is_city_file(self) -> bool:
        """True for the bureau's own files under uploads/{year}/_city/."""
        return self.submitter == CITY_SUBMITTER

    @property
    def is_workbook(self) -> bool:
        """True for one workbook holding several datasets as sheets."""
        return self.stem == WORKBOOK_NAME

    @property
    def school_code(self) -> str | None:
        """The school the key belongs to, or None for a bureau file."""
        return None if self.is_city_file else self.submitter


def decode_event_key(raw_key: str) -> str:
    """Decode a key as S3 event notifications send it (URL-encoded, '+' for spaces)."""
    return unquote_plus(raw_key)


def parse_upload_key(key: str) -> UploadKey:
    """Parse an uploads/ key, raising LayoutError for anything outside the layout.

    The layout is strict: ASCII only, exactly uploads/{year}/{submitter}/{stem}.{ext},
    no empty, ``.`` or ``..`` parts, no backslashes. Everything else is a bad key.
    """
    match = _UPLOAD_PATTERN.fullmatch(key)
    if not match:
        raise LayoutError(f"key does not fit uploads/{{year}}/{{school}}/{{dataset}}.ext: {key}")
    # Any extension fits the layout; which file types are accepted is validation's call
    # (file.extension, file.macro), so a school sending .xls or .xlsm gets a report.
    extension = match["extension"].lower()
    return UploadKey(
        key=key,
        year=int(match["year"]),
        submitter=match["submitter"],
        stem=match["stem"],
        extension=extension,
    )


def uploads_prefix(year: int | None = None, submitter: str | None = None) -> str:
    """The uploads of every year, of one year, or of one submitter in a year."""
    if year is None:
        return UPLOADS_ROOT
    return f"{UPLOADS_ROOT}{year}/" + (f"{submitter}/" if submitter else "")


def upload_key(year: int, submitter: str, stem: str, extension: str) -> str:
    """The key a school (or the bureau, as ``_city``) uploads one file to."""
    return f"{UPLOADS_ROOT}{year}/{submitter}/{stem}.{extension}"


def year_of_upload_key(key: str) -> int | None:
    """The year an uploads/ key names (its second part), or None when it names none."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != UPLOADS_ROOT.rstrip("/"):
        return None
    return int(parts[1]) if parts[1].isascii() and parts[1].isdigit() else None


def key_owner(key: str) -> tuple[int, str] | None:
    """(year, submitter) a key names, even when the rest of it breaks the layout; else None."""
    match = _OWNER_PATTERN.match(key)
    if match is None:
        return None
    return int(match["year"]), match["submitter"]


def printable_key(key: str) -> str:
    """A key as text safe to store and show: bytes that are not UTF-8 are escaped."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def submission_id(key: str, version_token: str) -> str:
    """A stable id for one version of one upload: the same object gives the same id."""
    text = f"{key}\n{version_token}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()[:20]


def curated_key(dataset: str, year: int, submissions: list[str]) -> str:
    """Where the accepted rows of a dataset from one ingest batch are kept.

    One file holds the rows of every submission of the batch (each row says its
    ``submission_id``); its name follows from those submissions, so processing the same
    batch again writes the same object.
    """
    batch = hashlib.sha256("\n".join(sorted(submissions)).encode("ascii")).hexdigest()[:20]
    return f"curated/{dataset}/year={year}/batch={batch}.parquet"


def school_measures_key(year: int) -> str:
    """Aggregation's cache of a year's per-school measures, each school with its fingerprint."""
    return f"curated/_measures/year={year}/school_measures.parquet"


def ledger_prefix(year: int | None = None, submitter: str | None = None) -> str:
    """The ledger records of every year, of one year, or of one submitter in a year."""
    if year is None:
        return LEDGER_ROOT
    return f"{LEDGER_ROOT}{year}/" + (f"{submitter}/" if submitter else "")


def parse_ledger_key(key: str) -> tuple[int, str] | None:
    """(year, submitter) of a ledger record key, or None for one outside a year."""
    parts = key.split("/")
    if len(parts) >= 4 and parts[0] == LEDGER_ROOT.rstrip("/") and parts[1].isdecimal():
        return int(parts[1]), parts[2]
    return None


def unsorted_ledger_key(submission: str) -> str:
    """The ledger record of an upload whose key fits no year and submitter."""
    return f"{LEDGER_ROOT}unsorted/{submission}.json"


def ledger_key(
    year: int, submitter: str, stem: str, submission: str, extension: str | None = None
) -> str:
    """The ledger record of one processed upload event.

    ``ledger/{year}/{submitter}/{stem}/{submission}.{extension}.json``: the name says which
    upload key the record is about (``uploads/{year}/{submitter}/{stem}.{extension}``), so
    the sweep can tell a deleted upload from a listing alone. Records of keys outside the
    layout have no extension in their name.
    """
    name = f"{submission}.{extension}" if extension else submission
    return f"{LEDGER_ROOT}{year}/{submitter}/{stem}/{name}.json"


def parse_ledger_record_key(key: str) -> tuple[str, str | None]:
    """(submission id, the upload key the record is about or None) from a record's key."""
    parts = key.split("/")
    name = parts[-1].removesuffix(".json")
    submission, _, extension = name.partition(".")
    if extension and len(parts) == 5 and parts[0] == LEDGER_ROOT.rstrip("/"):
        return submission, upload_key(int(parts[1]), parts[2], parts[3], extension)
    return submission, None


def report_key(year: int | str, submitter: str, submission: str, extension: str) -> str:
    """The validation report sent back to the school (``_unsorted`` when no school is named)."""
    return f"{REPORTS_ROOT}{year}/{submitter}/{submission}.{extension}"


def unsorted_report_key(submission: str, extension: str) -> str:
    """The report of an upload whose key names no year and school: for operators only."""
    return f"reports/_unsorted/{submission}.{extension}"


def history_report_key(year: int, school_code: str) -> str:
    """A school's history-layer warnings (changes against last year) for a year."""
    return f"reports/{year}/{school_code}/history.json"


def school_numbers_key(year: int, school_code: str, extension: str) -> str:
    """A school's own indicators beside its city and peers (``numbers.json`` / ``.html``)."""
    return f"reports/{year}/{school_code}/numbers.{extension}"


def school_index_key(year: int, submitter: str, extension: str) -> str:
    """The page listing a school's uploads of a year with links to their reports."""
    return f"reports/{year}/{submitter}/index.{extension}"


def quarantine_key(year: int | str, submission: str, original_key: str) -> str:
    """Where an unreadable or disallowed upload is copied, with its reason beside it."""
    # the original name as a safe key part: a school's name may hold anything
    name = re.sub(r"[^0-9A-Za-z._-]", "_", original_key.rsplit("/", 1)[-1]).strip(".") or "object"
    return f"quarantine/{year}/{submission}/{name}"


def published_prefix(year: int | None = None) -> str:
    """The versions published for one report year (every year without one)."""
    return PUBLISHED_ROOT if year is None else f"{PUBLISHED_ROOT}{year}/"


def published_year_of_pointer(key: str) -> int | None:
    """The report year of a ``published/{year}/latest.json`` key, None for other keys."""
    parts = key.split("/")
    if len(parts) == 3 and parts[2] == "latest.json" and parts[1].isdigit():
        return int(parts[1])
    return None


def published_version_prefix(year: int, version: int) -> str:
    """One published version."""
    return f"published/{year}/v{version}/"


def published_pointer_key(year: int) -> str:
    """The pointer to the newest complete version; written last."""
    return f"published/{year}/latest.json"


def template_key(year: int) -> str:
    """The blank Excel template schools download for a year."""
    return f"templates/{year}/template_{year}.xlsx"
