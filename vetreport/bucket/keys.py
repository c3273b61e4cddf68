"""The bucket layout: how keys are built and parsed, in one place.

What belongs here: the zones of the bucket (uploads, curated, ledger, reports, quarantine,
published, templates) and the functions that turn identifiers into keys and back. Nothing
here reads or writes objects.

    uploads/{year}/{school_code}/{dataset}.{csv|xlsx|parquet}
    uploads/{year}/{school_code}/workbook.xlsx
    uploads/{year}/_city/{dataset}.csv
    curated/{dataset}/year={year}/school={code}/{submission_id}.parquet
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

_UPLOAD_PATTERN = re.compile(
    r"^uploads/(?P<year>\d{4})/(?P<submitter>_city|[0-9A-Za-z]{6,20})/"
    r"(?P<stem>[a-z][a-z0-9_]{1,40})\.(?P<extension>[A-Za-z]{3,7})$"
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
    """Parse an uploads/ key, raising LayoutError for anything outside the layout."""
    match = _UPLOAD_PATTERN.match(key)
    if not match:
        raise LayoutError(f"key does not fit uploads/{{year}}/{{school}}/{{dataset}}.ext: {key}")
    extension = match["extension"].lower()
    if extension not in UPLOAD_EXTENSIONS:
        raise LayoutError(f"file type .{extension} is not accepted: {key}")
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


def submission_id(key: str, version_token: str) -> str:
    """A stable id for one version of one upload: the same object gives the same id."""
    digest = hashlib.sha256(f"{key}\n{version_token}".encode()).hexdigest()
    return digest[:20]


def curated_key(dataset: str, year: int, school_code: str, submission: str) -> str:
    """Where an accepted submission's normalised rows are kept."""
    return f"curated/{dataset}/year={year}/school={school_code}/{submission}.parquet"


def ledger_prefix(year: int | None = None, submitter: str | None = None) -> str:
    """The ledger records of every year, of one year, or of one submitter in a year."""
    if year is None:
        return LEDGER_ROOT
    return f"{LEDGER_ROOT}{year}/" + (f"{submitter}/" if submitter else "")


def parse_ledger_key(key: str) -> tuple[int, str] | None:
    """(year, submitter) of a ledger record key, or None for one outside a year."""
    parts = key.split("/")
    if len(parts) >= 4 and parts[0] == LEDGER_ROOT.rstrip("/") and parts[1].isdigit():
        return int(parts[1]), parts[2]
    return None


def unsorted_ledger_key(submission: str) -> str:
    """The ledger record of an upload whose key fits no year and submitter."""
    return f"{LEDGER_ROOT}unsorted/{submission}.json"


def ledger_key(year: int, submitter: str, dataset: str, submission: str) -> str:
    """The ledger record of one processed upload (one per dataset for a workbook)."""
    return f"ledger/{year}/{submitter}/{dataset}/{submission}.json"


def report_key(year: int, submitter: str, submission: str, extension: str) -> str:
    """The validation report sent back to the school."""
    return f"{REPORTS_ROOT}{year}/{submitter}/{submission}.{extension}"


def history_report_key(year: int, school_code: str) -> str:
    """A school's history-layer warnings (changes against last year) for a year."""
    return f"reports/{year}/{school_code}/history.json"


def school_index_key(year: int, submitter: str, extension: str) -> str:
    """The page listing a school's uploads of a year with links to their reports."""
    return f"reports/{year}/{submitter}/index.{extension}"


def quarantine_key(year: int | str, submission: str, original_key: str) -> str:
    """Where an unreadable or disallowed upload is copied, with its reason beside it."""
    name = original_key.rsplit("/", 1)[-1] or "object"
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
