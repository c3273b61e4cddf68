"""The collection flows: the bureau approves a school's sign-off, or reopens a locked year.

- ``approve-signoff``: started by a school's accepted sign-off (event
  ``vetreport.school.signed-off``); lists what the bureau should look at (explained
  warnings with the school's reasons, datasets not submitted) in an artifact and in the
  form of a waiting run (the typed ``ApprovalInput``). The operator resumes the run in the
  UI: approve (the year is locked) or send back with a note. A served run *suspends*
  (``suspend_flow_run``): its process exits and gives the runner's slot back, however long
  the bureau takes, and the resumed run starts again from the top, finds the same sign-off
  and gets the decision; a run called directly (a script, a test) *pauses* in its process.
  The wait is keyed by the sign-off: if the school changes its data or signs off again
  meanwhile, a decision taken on what the form showed is never applied to anything else.
- ``remind-schools``: on each reminder date of the year's calendar, every school of the
  registry whose state is below 已确认 gets a notice through a Prefect notification block
  (a named block, or a webhook from ``VETREPORT_REMINDER_WEBHOOK_URL``), and the run writes
  a ``reminders-{year}`` artifact listing who was reminded and why.
- ``reopen-school``: run from the UI (its parameters are the form) or by ``vetreport
  reopen``: the locked year is reopened, and the uploads held while it was locked are
  ingested now, as revisions.

Each run leaves the school's status artifact (``collection-{year}-{school}``), the ladder
word an operator and the school see. The logic is in ``vetreport.curate.collection``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.blocks.notifications import CustomWebhookNotificationBlock, NotificationBlock
from prefect.events import emit_event
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from flows.ingest import (
    SIGNED_OFF_EVENT,
    artifact_key,
    ingest_uploads,
    status_artifact,
    tag_flow_run,
)
from vetreport.bucket.keys import CITY_SUBMITTER, key_owner
from vetreport.bucket.store import open_store
from vetreport.curate.collection import (
    LADDER,
    NEXT_STEP_ZH,
    SIGNED_OFF,
    SIGNOFF,
    decide,
    read_school_status,
    reopen,
    status_markdown,
    year_statuses,
)
from vetreport.curate.completeness import completeness_matrix
from vetreport.curate.ingest import unprocessed_upload_keys, upload_years
from vetreport.curate.ledger import read_ledger_view
from vetreport.curate.school_index import write_school_index
from vetreport.settings import load_settings

APPROVAL_TIMEOUT_SECONDS = 30 * 24 * 3600  # a paused approval waits up to a month
ANNOUNCE_AGAIN_AFTER_SECONDS = 600  # a sign-off's event may take this long to start its run


class ApprovalInput(RunInput):
    """The bureau's decision on a school's signed-off year (the form of the paused run)."""

    approve: bool = Field(
        default=True, description="通过并锁定 approve and lock (untick to send it back)"
    )
    note: str = Field(default="", description="给学校的说明 note to the school (why sent back)")


@flow(name="approve-signoff", flow_run_name="approve-{year}-{school}", log_prints=True)
def approve_signoff(
    store_url: str, year: int, school: str, timeout_seconds: int = APPROVAL_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Wait for the bureau's decision on a signed-off year, then lock it or send it back."""
    logger = get_run_logger()
    tag_flow_run(f"year:{year}", f"school:{school}", "approval")
    store = open_store(store_url)
    status = read_school_status(store, year, school)
    if status.state != SIGNED_OFF:
        logger.info("%s %s is %s: nothing to approve", school, year, status.state_zh)
        status_artifact(store, status)
        return {"school": school, "year": year, "state": status.state, "decided": False}
    status_artifact(store, status)
    signoff = _signoff_id(status)
    tag_flow_run(signoff_tag(signoff))
    waiting = _earlier_approval_of(signoff)
    if waiting is not None:  # a re-announced sign-off whose first run still waits
        logger.info("%s %s: sign-off %s already waits in run %s", school, year, signoff, waiting)
        return {"school": school, "year": year, "state": status.state, "decided": False}
    form = ApprovalInput.with_initial_data(
        description=status_markdown(store, status)
        + "\n勾选 approve 即锁定；不勾选并写明原因即退回学校。",
        approve=True,
    )
    wait = suspend_flow_run if _is_served() else pause_flow_run
    # keyed by the sign-off (an operator's sign-off id has capitals: keys may not)
    key = artifact_key("approval", signoff)
    decision = wait(wait_for_input=form, timeout=timeout_seconds, key=key)
    now = read_school_status(store, year, school)
    if now.state != SIGNED_OFF or _signoff_id(now) != signoff:
        logger.warning("%s %s changed while the bureau decided: not recorded", school, year)
        status_artifact(store, now)
        return {"school": school, "year": year, "state": now.state, "decided": False}
    try:
        outcome = decide(store, year, school, decision.approve, by="bureau", note=decision.note)
    except ValueError as error:  # the school uploaded meanwhile, or another run decided
        logger.warning("%s; the decision was not recorded", error)
        status = read_school_status(store, year, school)
        status_artifact(store, status)
        return {"school": school, "year": year, "state": status.state, "decided": False}
    write_school_index(store, year, school)
    status_artifact(store, outcome.status)
    logger.info("%s %s: %s", school, year, outcome.status.state_zh)
    return {
        "school": school,
        "year": year,
        "state": outcome.status.state,
        "decided": True,
        "approved": decision.approve,
        "note": decision.note,
    }


def _signoff_id(status: Any) -> str:
    """The id of the sign-off a school's SIGNED_OFF state rests on (its latest)."""
    signoffs = [event for event in status.events if event.get("collection_event") == SIGNOFF]
    if not signoffs:
        return str(status.last_changed_at or "")
    return str(max(signoffs, key=lambda event: event.get("processed_at", ""))["submission_id"])


def signoff_tag(signoff: str) -> str:
    """The tag naming the sign-off an approval run decides on."""
    return f"signoff:{signoff}"


def approval_runs(signoff: str) -> list[Any]:
    """The approval runs (any state) of one sign-off, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["approve-signoff"])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[signoff_tag(signoff)])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )


def _is_waiting(run: Any) -> bool:
    """A run that has not ended: scheduled, running, or paused/suspended for the bureau."""
    return run.state is not None and not run.state.is_final()


def _earlier_approval_of(signoff: str) -> str | None:
    """Another unfinished approval run of the same sign-off, created before this one.

    The oldest run keeps the form; a later one (a sign-off announced again) ends at once.
    Runs started together both see each other, and only the younger gives way.
    """
    from prefect.runtime import flow_run

    me = flow_run.get_id()
    if not me:
        return None
    runs = approval_runs(signoff)
    mine = next((run for run in runs if str(run.id) == str(me)), None)
    for run in runs:
        if str(run.id) == str(me) or not _is_waiting(run):
            continue
        if mine is None or (run.created, str(run.id)) < (mine.created, str(mine.id)):
            return str(run.id)
    return None


def waiting_signoffs(
    store: Any, year: int, older_than_seconds: float = ANNOUNCE_AGAIN_AFTER_SECONDS
) -> list[tuple[str, str]]:
    """(school, sign-off id) of every signed-off school whose sign-off no run waits on.

    Its event was lost (the Prefect server down, the service restarting while automations
    were recreated) or its run ended without a decision (failed, crashed, or timed out):
    the bureau has no form to decide on. A sign-off younger than ``older_than_seconds`` is
    left alone: its event may still be on its way.
    """
    view = read_ledger_view(store, [year])
    records, versions = view.records, view.current_versions
    schools = sorted(
        {str(r.get("school_code") or r.get("submitter")) for r in records} - {CITY_SUBMITTER}
    )
    cutoff = (datetime.now(UTC) - timedelta(seconds=older_than_seconds)).isoformat()
    found = []
    for school, status in year_statuses(records, versions, year, schools).items():
        if status.state != SIGNED_OFF:
            continue
        signed = [e for e in status.events if e.get("collection_event") == SIGNOFF]
        if signed and max(e.get("processed_at", "") for e in signed) > cutoff:
            continue
        signoff = _signoff_id(status)
        if not any(_is_waiting(run) for run in approval_runs(signoff)):
            found.append((school, signoff))
    return found


@flow(name="announce-signoffs", flow_run_name="announce-signoffs", log_prints=True)
def announce_signoffs_again(
    store_url: str, older_than_seconds: float = ANNOUNCE_AGAIN_AFTER_SECONDS
) -> list[dict[str, Any]]:
    """Send ``vetreport.school.signed-off`` again for each sign-off no approval run waits on."""
    logger = get_run_logger()
    store = open_store(store_url)
    sent = []
    for year in upload_years(store):
        for school, signoff in waiting_signoffs(store, year, older_than_seconds):
            emit_event(
                event=SIGNED_OFF_EVENT,
                resource={
                    "prefect.resource.id": f"vetreport.school.{year}.{school}",
                    "vetreport.year": str(year),
                },
                payload={"year": year, "school": school, "signoff": signoff, "again": True},
            )
            logger.warning(
                "%s %s: sign-off %s had no approval run; announced again", school, year, signoff
            )
            sent.append({"year": year, "school": school, "signoff": signoff})
    return sent


def _is_served() -> bool:
    """Whether this flow run belongs to a deployment (only those can be suspended)."""
    from prefect.runtime import deployment

    return bool(deployment.id)


@flow(name="reopen-school", flow_run_name="reopen-{year}-{school}", log_prints=True)
def reopen_school(store_url: str, year: int, school: str, note: str = "") -> dict[str, Any]:
    """Reopen a locked year for revision and ingest what the school uploaded meanwhile."""
    logger = get_run_logger()
    tag_flow_run(f"year:{year}", f"school:{school}", "reopen")
    store = open_store(store_url)
    reopen(store, year, school, by="bureau", note=note)
    held = [key for key in unprocessed_upload_keys(store, year) if key_owner(key) == (year, school)]
    if held:
        ingest_uploads(store_url, held, label=f"reopen-{year}-{school}")
    write_school_index(store, year, school)
    status = read_school_status(store, year, school)
    status_artifact(store, status)
    logger.info("%s %s reopened: %d held uploads ingested", school, year, len(held))
    return {"school": school, "year": year, "state": status.state, "ingested": held}


def reminder_block(block_name: str = "") -> NotificationBlock:
    """The notification block reminders go through: a named block, else the settings' webhook.

    The webhook receives one JSON POST per school: ``{"subject": ..., "body": ...}`` where
    the body is the notice as JSON text (year, school, state, next step).
    """
    settings = load_settings()
    name = block_name or settings.reminder_block
    if name:
        return NotificationBlock.load(name)  # type: ignore[no-any-return]
    if not settings.reminder_webhook_url:
        raise ValueError("no reminder block named and VETREPORT_REMINDER_WEBHOOK_URL is unset")
    return CustomWebhookNotificationBlock(
        name="vetreport-reminders",
        url=settings.reminder_webhook_url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )


def schools_to_remind(matrix: Any) -> list[dict[str, str]]:
    """The registry's schools whose state is below 已确认 (one row each, by code)."""
    below = set(LADDER[: LADDER.index(SIGNED_OFF)])
    schools = matrix.select("school_code", "school_name", "school_state", "school_state_zh")
    return [
        row
        for row in schools.unique("school_code").sort("school_code").to_dicts()
        if row["school_state"] in below
    ]


@flow(name="remind-schools", flow_run_name="remind-{year}", log_prints=True)
def remind_schools(store_url: str, year: int, block_name: str = "") -> dict[str, Any]:
    """Remind every school below 已确认 of what it still has to do; return who was told."""
    logger = get_run_logger()
    store = open_store(store_url)
    targets = schools_to_remind(completeness_matrix(store, year))
    block = reminder_block(block_name) if targets else None
    failed: list[str] = []
    for row in targets:
        notice = {
            "year": year,
            "school_code": row["school_code"],
            "school_name": row["school_name"],
            "state": row["school_state"],
            "state_zh": row["school_state_zh"],
            "next_step_zh": NEXT_STEP_ZH[row["school_state"]],
        }
        assert block is not None
        try:
            block.notify(
                body=json.dumps(notice, ensure_ascii=False),
                subject=f"{year} 年度数据采集提醒：{row['school_code']} {row['school_state_zh']}",
            )
        except Exception:  # one unreachable address must not keep the others unreminded
            logger.exception("%s: the reminder to %s failed", year, row["school_code"])
            failed.append(row["school_code"])
    create_table_artifact(
        key=f"reminders-{year}",
        table=[
            {
                "school_code": row["school_code"],
                "school_name": row["school_name"],
                "状态": row["school_state_zh"],
                "提醒": "发送失败" if row["school_code"] in failed else "已发送",
            }
            for row in targets
        ],
        description=f"{year}: {len(targets)} schools below 已确认 reminded",
    )
    logger.info("%s: reminded %d schools below 已确认", year, len(targets))
    reminded = [row["school_code"] for row in targets if row["school_code"] not in failed]
    if failed:
        logger.error("%s: reminders not delivered to %s", year, failed)
    return {"year": year, "reminded": reminded, "failed": failed}
