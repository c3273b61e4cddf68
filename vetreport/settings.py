"""Every ``VETREPORT_*`` setting, with its default and what it does: one object, read once.

What belongs here: the ``Settings`` class (pydantic-settings) and ``load_settings()``. Any
module that needs a knob takes it from here; nothing else reads ``VETREPORT_*`` variables.
docs/operations.md's settings table is generated from these fields (``vetreport docs``).
Credentials for S3 are the standard ``AWS_*`` variables boto3 reads itself; Prefect's own
are ``PREFECT_*``: neither is repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vetreport.paths import INFRA_DIR

MIN_QUIET_SECONDS = 10.0  # Prefect's proactive triggers need a window of at least 10 s
MINIMUM_HEARTBEAT_SECONDS = 30  # Prefect's engine beats at most this often (flow_engine)


class Settings(BaseSettings):
    """The pipeline's settings, from ``VETREPORT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VETREPORT_", extra="ignore", frozen=True)

    # -- where things are ----------------------------------------------------------------
    bucket: str = Field(
        "var/bucket",
        description="The bucket: a folder (the embedded default) or s3://bucket[/prefix].",
    )
    var_dir: Path = Field(
        Path("var"),
        description="Where the local Prefect server (var/prefect/) and file server "
        "(var/files/) keep their state and logs.",
    )
    prefect_port: int = Field(
        4200, description="Port of the local Prefect server that `make demo` and `make up` use."
    )
    files_port: int = Field(
        4280,
        description="Port (on 127.0.0.1) of the read-only file server for a folder bucket's "
        "reports/ and published/, started by `vetreport up`, `demo` and `serve`: the links "
        "in the Prefect artifacts point at it.",
    )
    # -- the school portal ------------------------------------------------------------------
    portal_port: int = Field(
        4290,
        description="Port of the school portal (`vetreport portal`, started by `vetreport up`).",
    )
    portal_session_secret: str | None = Field(
        None,
        description="Key that signs the portal's session cookies (at least 32 characters). "
        "Unset: a random key per portal process, so every sign-in ends when it restarts.",
    )
    portal_https_only: bool = Field(
        False,
        description="Send the portal's session cookie over HTTPS only (set it behind TLS).",
    )
    portal_max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        description="Largest file a school may upload through the portal; the presigned "
        "POST's policy carries it, so the object store itself refuses a larger one.",
        ge=1,
    )
    portal_s3_public_endpoint: str | None = Field(
        None,
        description="The S3 endpoint as schools' browsers reach it, when it differs from "
        "VETREPORT_S3_ENDPOINT_URL (the portal's presigned POSTs and GETs are sent there).",
    )
    portal_prefect_ui_url: str | None = Field(
        None,
        description="The Prefect UI the portal links operators to; unset: "
        "http://127.0.0.1:{VETREPORT_PREFECT_PORT}.",
    )
    # -- object store ----------------------------------------------------------------------
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint (MinIO, SeaweedFS, Aliyun OSS); AWS_ENDPOINT_URL also works.",
    )
    s3_addressing: Literal["auto", "path", "virtual"] = Field(
        "auto", description="S3 addressing style; Aliyun OSS needs `virtual`."
    )
    sqs_endpoint_url: str | None = Field(
        None, description="SQS endpoint for bucket notifications (defaults to the S3 endpoint)."
    )
    sqs_queue_url: str | None = Field(
        None, description="SQS queue that receives the bucket's notifications (AWS)."
    )
    receiver_token: str | None = Field(
        None, description="Shared secret the MinIO webhook sends to the notification receiver."
    )
    # -- the service ---------------------------------------------------------------------
    sweep_seconds: float = Field(
        60, description="How often the sweep compares uploads/ with the ledger."
    )
    nightly_cron: str = Field("0 2 * * *", description="When the nightly rebuild runs (cron).")
    timezone: str = Field("Asia/Shanghai", description="Time zone of the schedules.")
    aggregate_quiet_seconds: float = Field(
        MIN_QUIET_SECONDS,
        description="Aggregation starts once no upload was accepted for this long (>= 10 s).",
    )
    runner_poll_seconds: float = Field(
        0.5, description="How often the served deployments' runner asks for scheduled runs."
    )
    runner_limit: int = Field(8, description="Flow runs the runner executes at once.")
    runner_start: Literal["forkserver", "spawn"] = Field(
        "forkserver",
        description="How the runner starts flow-run processes: a preloaded fork server, or "
        "Prefect's default spawn.",
    )
    run_heartbeat_seconds: int = Field(
        30,
        description="Served flow runs send a heartbeat event this often (>= 30, Prefect's "
        "minimum; 0: none). A run silent for three beats (its process or machine died) is "
        "marked Crashed, which frees its deployment's concurrency slot.",
    )
    failure_webhook_url: str | None = Field(
        None, description="POSTed to when a flow run fails or crashes."
    )
    ingest_processes: int = Field(
        0,
        description="Processes a sweep validates its batches of uploads on at once: 0 for one "
        "per CPU of the machine, but only one per 4,096 uploads (a process spends seconds on "
        "its imports); 1 for the sweep's own process (its batches then share it on threads). "
        "A sweep of one batch, or an upload's own run, stays in its process.",
        ge=0,
    )
    # -- aggregation and publishing memory -------------------------------------------------
    duckdb_memory_limit: str = Field(
        "1GiB",
        description="Memory a DuckDB connection of aggregation or publishing may hold before "
        "it spills to VETREPORT_DUCKDB_TEMP_DIR (DuckDB's `memory_limit`, e.g. `512MiB`).",
    )
    duckdb_temp_dir: Path | None = Field(
        None,
        description="Where DuckDB spills what exceeds its memory limit; unset: a "
        "`vetreport-duckdb` folder in the system's temporary directory.",
    )
    aggregate_schools_per_chunk: int = Field(
        500,
        description="Schools whose curated rows aggregation loads at once to compute their "
        "measures: bounds its memory whatever the number of schools.",
        ge=1,
    )
    workbook_sheet_rows: int = Field(
        50_000,
        description="Rows a sheet of a published workbook (tables.xlsx) shows at most (its "
        "contents sheet says which were cut); the full tables are in Parquet, CSV and DuckDB. "
        "Writing cells is most of publishing's time: a national bucket's indicator_values "
        "alone is 218,000 rows at 1,000 schools, and every city's tables are far smaller.",
        ge=1,
    )
    # -- the report document -------------------------------------------------------------
    report_document: bool = Field(
        True,
        description="Build the report document (report.docx) into every new version of a "
        "bucket with one city, before the publish artifact (docs/report-writing.md).",
    )
    report_template: Path | None = Field(
        None,
        description="The .docx template the publish flow builds report.docx from; the "
        "default template (vetreport/report/templates/default_report.docx) when unset.",
    )
    report_pdf: bool = Field(
        False,
        description="Also convert each flow-built report.docx to report.pdf with LibreOffice "
        "(about 5 s more per version; `vetreport report build` makes one by default).",
    )
    # -- the collection calendar -----------------------------------------------------------
    open_years: str = Field(
        "2021-2023",
        description="Report years open for collection, e.g. `2021-2023` or `2023,2024`; an "
        "upload for any other year is refused with a report, whatever its key says.",
    )
    attempt_stale_seconds: float = Field(
        600,
        description="An upload whose processing started this long ago without finishing is "
        "taken to have killed its worker: tried once more alone, then refused.",
    )
    deadlines: str | None = Field(
        None,
        description='Collection deadline per report year as JSON, e.g. {"2023": '
        '"2024-03-31T18:00:00+08:00"}; overrides the deadlines file.',
    )
    deadlines_file: Path = Field(
        INFRA_DIR / "deadlines.json",
        description="JSON file of collection deadlines (see infra/deadlines.example.json).",
    )
    reminder_block: str | None = Field(
        None,
        description="Name of the Prefect notification block (webhook, email ...) that reminds "
        "schools below 已确认 on the calendar's reminder dates; overrides the webhook URL.",
    )
    reminder_webhook_url: str | None = Field(
        None,
        description="URL the reminders are POSTed to as JSON (one request per school) "
        "when no reminder block is named.",
    )

    @field_validator("open_years")
    @classmethod
    def _years_parse(cls, value: str) -> str:
        parse_years(value)
        return value

    def open_year_set(self) -> frozenset[int]:
        """The report years open for collection."""
        return parse_years(self.open_years)

    @field_validator("aggregate_quiet_seconds")
    @classmethod
    def _at_least_prefects_minimum(cls, value: float) -> float:
        return max(MIN_QUIET_SECONDS, value)

    @field_validator("run_heartbeat_seconds")
    @classmethod
    def _heartbeat_none_or_prefects_minimum(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (no heartbeats) or a number of seconds")
        return max(MINIMUM_HEARTBEAT_SECONDS, value) if value else 0

    @field_validator(
        "s3_endpoint_url",
        "sqs_endpoint_url",
        "sqs_queue_url",
        "receiver_token",
        "portal_session_secret",
        "portal_s3_public_endpoint",
        "portal_prefect_ui_url",
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("failure_webhook_url", "deadlines", "reminder_block", "reminder_webhook_url")
    @classmethod
    def _empty_text_is_unset(cls, value: str | None) -> str | None:
        return value or None


def parse_years(text: str) -> frozenset[int]:
    """Years from ``2021-2023,2025``: ranges and single years, ASCII digits only."""
    years: set[int] = set()
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        first, _, last = part.partition("-")
        if not (
            first.isascii() and first.isdigit() and (not last or last.isascii() and last.isdigit())
        ):
            raise ValueError(f"not a year or a range of years: {part!r}")
        start, end = int(first), int(last or first)
        if not 1990 <= start <= end <= 2100:
            raise ValueError(f"years must run forwards between 1990 and 2100: {part!r}")
        years.update(range(start, end + 1))
    return frozenset(years)


def load_settings() -> Settings:
    """The settings as the environment says now (cheap: read at each call, never cached)."""
    return Settings()
