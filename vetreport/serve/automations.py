"""Prefect automations the service installs: a failure webhook, and silent runs crashed.

What belongs here: creating (or recreating) automations and the blocks they use, from the
settings. The deployments themselves are in flows/service.py.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.automations import Automation
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import CallWebhook, ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture

FAILURE_AUTOMATION_NAME = "vetreport-run-failed-webhook"
FAILURE_WEBHOOK_BLOCK = "vetreport-failure-webhook"
WATCHED_FLOWS = ("ingest-upload", "ingest", "aggregate", "sweep", "rebuild")
SILENT_RUN_AUTOMATION_NAME = "vetreport-crash-silent-runs"
# The tag of the deployments whose runs send heartbeats (flows/service.py adds it when
# VETREPORT_RUN_HEARTBEAT_SECONDS is on): only their runs are watched. A run of a work
# pool's worker that was not told to beat (PREFECT_FLOWS_HEARTBEAT_FREQUENCY) would
# otherwise be crashed for its silence.
HEARTBEAT_TAG = "sends-heartbeats"
# A run handed to a process (Pending; a runner names it Submitting) beats within seconds:
# one killed before its first beat holds its deployment's slot as well.
STARTING_RUN_EVENTS = frozenset({"prefect.flow-run.Pending", "prefect.flow-run.Submitting"})
# Events after which a run rightly stops beating: it ended, or it was suspended (an
# approval waiting for the bureau gives its process back) or paused.
QUIET_RUN_EVENTS = frozenset(
    f"prefect.flow-run.{state}"
    for state in ("Completed", "Failed", "Cancelled", "Crashed", "Suspended", "Paused")
)


def _what_it_does(automation: Automation) -> tuple[Any, ...]:
    return (
        automation.description,
        automation.enabled,
        automation.trigger.model_dump(exclude={"id"}),
        [action.model_dump() for action in automation.actions],
    )


def _keep_or_replace(automation: Automation) -> Any:
    """Create ``automation``, unless one of its name already does exactly the same.

    Keeping it matters for a proactive trigger: its open windows (a run that beat and
    has not beaten again) live with the automation, and a service restarted after a crash
    that recreated it would forget the very runs that died with the crash.
    """
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(automation.name)
        same = [one for one in existing if _what_it_does(one) == _what_it_does(automation)]
        for other in existing:
            if not same or other.id != same[0].id:
                client.delete_automation(other.id)
    return same[0] if same else automation.create()


def ensure_silent_run_automation(silent_seconds: float) -> Any:
    """Create (or recreate) the automation that crashes a service run whose heartbeats stop.

    A flow-run process killed with its service (SIGKILL, OOM, a lost machine) leaves its
    run Running: a deployment with a concurrency limit (the sweep's, 1 with CANCEL_NEW)
    keeps the slot until Prefect's lease expires, and every run started meanwhile is
    cancelled. Served runs beat every ``VETREPORT_RUN_HEARTBEAT_SECONDS``; a run of the
    service's deployments that was handed to a process or beat, and then went
    ``silent_seconds`` without a beat or an end (or a suspension), is marked Crashed,
    which releases its slot. This is Prefect's own zombie-run recipe, restricted to runs
    tagged ``HEARTBEAT_TAG``, and extended to runs killed before their first beat.
    """
    automation = Automation(
        name=SILENT_RUN_AUTOMATION_NAME,
        description=(
            f"Mark a vetreport flow run Crashed when it sent no heartbeat for {silent_seconds:g} s"
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", *STARTING_RUN_EVENTS},
            expect={"prefect.flow-run.heartbeat", *QUIET_RUN_EVENTS},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.tag.{HEARTBEAT_TAG}"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silent_seconds,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {silent_seconds:g} s: its process or machine died",
            )
        ],
    )
    return _keep_or_replace(automation)


def ensure_failure_automation(webhook_url: str) -> Any:
    """Create the automation that POSTs to a webhook when a run fails (kept if unchanged)."""
    block = Webhook(method="POST", url=webhook_url, allow_private_urls=True)
    block_id = block.save(FAILURE_WEBHOOK_BLOCK, overwrite=True)
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
    return _keep_or_replace(automation)
