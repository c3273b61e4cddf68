"""Prefect automations the service installs: today, a webhook called when a run fails.

What belongs here: creating (or recreating) automations and the blocks they use, from the
settings. The deployments themselves are in flows/service.py.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.automations import Automation
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.events.actions import CallWebhook
from prefect.events.schemas.automations import EventTrigger, Posture

FAILURE_AUTOMATION_NAME = "vetreport-run-failed-webhook"
FAILURE_WEBHOOK_BLOCK = "vetreport-failure-webhook"
WATCHED_FLOWS = ("ingest-upload", "ingest", "aggregate", "sweep", "rebuild")


def ensure_failure_automation(webhook_url: str) -> Any:
    """Create (or recreate) the automation that POSTs to a webhook when a run fails."""
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
