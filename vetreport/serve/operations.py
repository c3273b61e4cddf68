"""The running service's settings and the questions operators ask of it.

What belongs here (no flow definitions; those are in ``flows/``):

- ``ServiceSettings``: every knob of ``vetreport serve`` from the environment (sweep
  interval, nightly rebuild, aggregation quiet window, runner limits);
- collection deadlines per report year (``VETREPORT_DEADLINES`` as JSON, or the file
  ``VETREPORT_DEADLINES_FILE``, default ``infra/deadlines.json``) and the publish status
  they imply: provisional before the deadline, final from it on (later changes are new
  final versions, i.e. revisions with a changelog);
- the completeness matrix (``vetreport.curate.completeness``) as a school x dataset grid in
  Chinese, for ``vetreport status`` and the aggregate artifact;
- what changed between two published versions;
- the failure automation that calls ``VETREPORT_FAILURE_WEBHOOK_URL`` when a run fails.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.paths import INFRA_DIR

DEFAULT_DEADLINES_FILE = INFRA_DIR / "deadlines.json"
FAILURE_AUTOMATION_NAME = "vetreport-run-failed-webhook"
FAILURE_WEBHOOK_BLOCK = "vetreport-failure-webhook"
WATCHED_FLOWS = ("ingest-upload", "ingest", "aggregate", "sweep", "rebuild")

STATUS_WORDS = {
    "accepted": "已接收",
    "accepted_with_warnings": "有警告",
    "rejected": "已退回",
    "missing": "未提交",
}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class ServiceSettings:
    """The knobs of the running service, read from the environment."""

    store_url: str
    sweep_seconds: float = 60
    nightly_cron: str = "0 2 * * *"
    timezone: str = "Asia/Shanghai"
    aggregate_quiet_seconds: float = 10
    runner_poll_seconds: float = 0.5
    runner_limit: int = 8
    failure_webhook_url: str | None = None

    @classmethod
    def from_env(cls, store_url: str) -> ServiceSettings:
        """Settings from ``VETREPORT_*`` variables, with the defaults above."""
        return cls(
            store_url=store_url,
            sweep_seconds=_env_float("VETREPORT_SWEEP_SECONDS", 60),
            nightly_cron=os.environ.get("VETREPORT_NIGHTLY_CRON", "0 2 * * *"),
            timezone=os.environ.get("VETREPORT_TIMEZONE", "Asia/Shanghai"),
            # Prefect's proactive triggers need a window of at least 10 s.
            aggregate_quiet_seconds=max(10.0, _env_float("VETREPORT_AGGREGATE_QUIET_SECONDS", 10)),
            runner_poll_seconds=_env_float("VETREPORT_RUNNER_POLL_SECONDS", 0.5),
            runner_limit=int(_env_float("VETREPORT_RUNNER_LIMIT", 8)),
            failure_webhook_url=os.environ.get("VETREPORT_FAILURE_WEBHOOK_URL") or None,
        )


# -- deadlines and publish status -------------------------------------------------------


def load_deadlines() -> dict[int, datetime]:
    """The collection deadline of each report year (aware datetimes)."""
    text = os.environ.get("VETREPORT_DEADLINES")
    if not text:
        path = Path(os.environ.get("VETREPORT_DEADLINES_FILE", DEFAULT_DEADLINES_FILE))
        text = path.read_text(encoding="utf-8") if path.is_file() else "{}"
    raw = json.loads(text)
    deadlines = {}
    for year, value in raw.items():
        if str(year).startswith("_"):
            continue  # comments
        moment = datetime.fromisoformat(str(value))
        deadlines[int(year)] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return deadlines


def status_for(store: ObjectStore, report_year: int, now: datetime | None = None) -> str:
    """Provisional until the year's deadline; final from then on, and once final, final."""
    from vetreport.publish.writer import FINAL, PROVISIONAL, read_pointer

    deadline = load_deadlines().get(report_year)
    if deadline is not None and (now or datetime.now(UTC)) >= deadline:
        return FINAL
    pointer = read_pointer(store, report_year) or {}
    return FINAL if pointer.get("status") == FINAL else PROVISIONAL


def deadline_rrule(moment: datetime) -> str:
    """A one-off RRULE for a moment (Prefect schedules are recurring; COUNT=1 is a one-off)."""
    utc = moment.astimezone(UTC)
    return f"DTSTART:{utc:%Y%m%dT%H%M%SZ}\nRRULE:FREQ=YEARLY;COUNT=1"


# -- completeness -----------------------------------------------------------------------


def completeness(store: ObjectStore, year: int) -> pl.DataFrame:
    """School x dataset status for a year (Chinese status words), schools as rows."""
    from vetreport.curate.completeness import completeness_matrix

    return as_grid(completeness_matrix(store, year))


def as_grid(long: pl.DataFrame) -> pl.DataFrame:
    """Pivot a long (school, dataset, status) frame to schools x datasets in Chinese words."""
    if not {"school_code", "dataset", "status"} <= set(long.columns):
        return long
    index = [name for name in ("school_code", "school_name") if name in long.columns]
    datasets = list(dict.fromkeys(long.get_column("dataset").to_list()))
    grid = (
        long.with_columns(pl.col("status").replace(STATUS_WORDS).alias("status"))
        .pivot(on="dataset", index=index, values="status", aggregate_function="first")
        .sort("school_code")
    )
    return grid.select(*index, *[name for name in datasets if name in grid.columns])


# -- published changes ------------------------------------------------------------------


def version_changes(store: ObjectStore, report_year: int, version: int) -> list[dict[str, Any]]:
    """Per table: added, changed or unchanged against the previous version, with links."""
    from vetreport.publish.writer import read_manifest

    manifest = read_manifest(store, report_year, version)
    previous_tables: dict[str, Any] = {}
    if manifest.get("previous_version"):
        try:
            previous_tables = read_manifest(store, report_year, manifest["previous_version"])[
                "tables"
            ]
        except KeyNotFound:
            previous_tables = {}
    changes = []
    for table_id, entry in sorted(manifest["tables"].items()):
        before = previous_tables.get(table_id)
        digest = entry["files"]["csv"]["sha256"]
        if before is None:
            change = "新增 added"
        elif before["files"]["csv"]["sha256"] != digest:
            change = "变化 changed"
        else:
            change = "未变 unchanged"
        changes.append(
            {
                "table": table_id,
                "change": change,
                "rows": entry["row_count"],
                "previous_rows": before["row_count"] if before else None,
                "csv": f"{store.url}/{entry['files']['csv']['key']}",
            }
        )
    return changes


# -- failure webhook --------------------------------------------------------------------


def ensure_failure_automation(webhook_url: str) -> Any:
    """Create (or recreate) the automation that POSTs to a webhook when a run fails."""
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = Webhook(method="POST", url=webhook_url, allow_private_urls=True)
    block_id = block.save(FAILURE_WEBHOOK_BLOCK, overwrite=True)
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(FAILURE_AUTOMATION_NAME):
            client.delete_automation(existing.id)
    payload = json.dumps(
        {
            "text": "vetreport: {{ flow_run.name }} {{ flow_run.state.name }}",
            "flow_run": "{{ flow_run.name }}",
            "flow_run_id": "{{ flow_run.id }}",
            "state": "{{ flow_run.state.name }}",
            "message": "{{ flow_run.state.message }}",
            "tags": "{{ flow_run.tags }}",
        },
        ensure_ascii=False,
    )
    automation = Automation(
        name=FAILURE_AUTOMATION_NAME,
        description="POST to VETREPORT_FAILURE_WEBHOOK_URL when a vetreport flow run fails",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.role": "flow",
                "prefect.resource.name": list(WATCHED_FLOWS),
            },
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=payload)],
    )
    return automation.create()
