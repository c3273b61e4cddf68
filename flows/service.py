"""The long-running service: the flows as Prefect deployments with their triggers and schedules.

Deployments (all served by one ``prefect.serve`` process, or by workers of a work pool
through ``infra/prefect.yaml``):

- ``ingest-upload/on-upload``: one run per ``vetreport.upload.created`` event, parameters
  from the event payload (key, year, school, dataset, version);
- ``aggregate/on-accepted``: started by ``vetreport.submission.accepted`` events through a
  *proactive* trigger per year: each accepted event restarts a quiet window, and the run
  starts once no event came for ``VETREPORT_AGGREGATE_QUIET_SECONDS`` (>= 10 s). A burst
  of uploads gives one run; a global concurrency limit ``aggregate-{year}`` keeps one run
  per year at a time. It also carries one schedule per collection deadline (status final);
- ``sweep/every-minute``: lists uploads/ against the ledger (catches lost events);
- ``rebuild/nightly``: sweep plus re-aggregation of every year, then a sign-off whose event
  was lost (no approval run waits on it) is announced again;
- ``approve-signoff/on-signoff``: one run per accepted sign-off (``vetreport.school.signed-off``),
  paused until the bureau approves (locks) or sends the year back in the UI;
- ``remind-schools/on-calendar``: one schedule per reminder date of each year's calendar;
- ``reopen-school/by-operator``: no trigger: an operator runs it from the UI (school, year
  and a note are its form) to reopen a locked year; held uploads are then ingested.

Prefect's ``serve`` recreates deployment automations on each start (events in that gap are
left to the sweep) and, with ``pause_on_shutdown=False``, leaves schedules running. Served
runs send heartbeats, and an automation marks a run Crashed once they stop (its process
died with the service): the sweep's concurrency slot is free again within a minute or two
instead of when Prefect's five-minute lease runs out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events.schemas.automations import Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron, Interval, RRule

from flows.aggregate import aggregate_and_publish
from flows.collection import approve_signoff, remind_schools, reopen_school
from flows.ingest import SIGNED_OFF_EVENT, ingest_upload, sweep_uploads
from flows.pipeline import rebuild
from flows.prefect_fork_server import use_fork_server
from vetreport.publish.policy import deadline_rrule, load_calendar, load_deadlines
from vetreport.publish.writer import FINAL
from vetreport.receive.events import (
    ACCEPTED_EVENT,
    UPLOAD_EVENT,
    LocalWatcher,
    SqsPoller,
    make_receiver,
)
from vetreport.serve.automations import (
    HEARTBEAT_TAG,
    ensure_failure_automation,
    ensure_silent_run_automation,
)
from vetreport.settings import Settings

logger = logging.getLogger("flows.service")


def ingest_trigger(store_url: str) -> DeploymentEventTrigger:
    """One ingest run per upload event, parameters rendered from the event payload."""
    return DeploymentEventTrigger(
        name="vetreport-ingest-on-upload",
        description="Ingest an upload as soon as its event arrives",
        expect={UPLOAD_EVENT},
        match={"prefect.resource.id": "vetreport.upload.*"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
        parameters={
            "store_url": store_url,
            "key": "{{ event.payload.key }}",
            "year": "{{ event.payload.year }}",
            "school": "{{ event.payload.school }}",
            "dataset": "{{ event.payload.dataset }}",
            "version": "{{ event.payload.version }}",
        },
    )


def aggregate_trigger(store_url: str, quiet_seconds: float) -> DeploymentEventTrigger:
    """Debounced re-aggregation: fire once a year's accepted events have gone quiet.

    ``after`` and ``expect`` name the same event, so each event restarts the window and
    the trigger fires (proactively) when a window passes without one.
    """
    return DeploymentEventTrigger(
        name="vetreport-aggregate-when-quiet",
        description=f"Aggregate a year {quiet_seconds:g} s after its last accepted submission",
        after={ACCEPTED_EVENT},
        expect={ACCEPTED_EVENT},
        match={"prefect.resource.id": "vetreport.submission.*"},
        for_each={"vetreport.year"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=quiet_seconds),
        parameters={"store_url": store_url, "report_year": "{{ event.payload.year }}"},
    )


def signoff_trigger(store_url: str) -> DeploymentEventTrigger:
    """One approval run per accepted sign-off, for the school and year the event names."""
    return DeploymentEventTrigger(
        name="vetreport-approve-on-signoff",
        description="Ask the bureau to approve a school's signed-off year",
        expect={SIGNED_OFF_EVENT},
        match={"prefect.resource.id": "vetreport.school.*"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
        parameters={
            "store_url": store_url,
            "year": "{{ event.payload.year }}",
            "school": "{{ event.payload.school }}",
        },
    )


def deployment_specs(store_url: str, settings: Settings) -> list[tuple[Any, dict[str, Any]]]:
    """Each deployment as (flow, options); the options fit ``to_deployment`` and ``add_flow``."""
    deadline_schedules = [
        RRule(
            deadline_rrule(moment),
            parameters={"store_url": store_url, "report_year": year, "status": FINAL},
            slug=f"deadline-{year}",
        )
        for year, moment in sorted(load_deadlines().items())
    ]
    reminder_schedules = [
        RRule(
            deadline_rrule(moment),
            parameters={"store_url": store_url, "year": year},
            slug=f"reminder-{year}-{number}",
        )
        for year, calendar in sorted(load_calendar().items())
        for number, moment in enumerate(calendar.reminders, start=1)
    ]
    specs = [
        (
            ingest_upload,
            {
                "name": "on-upload",
                "parameters": {"store_url": store_url},
                "triggers": [ingest_trigger(store_url)],
                "tags": ["vetreport", "ingest"],
                "description": "Validate one upload and report to its school",
            },
        ),
        (
            aggregate_and_publish,
            {
                "name": "on-accepted",
                "parameters": {"store_url": store_url},
                "triggers": [aggregate_trigger(store_url, settings.aggregate_quiet_seconds)],
                "schedules": deadline_schedules,
                "tags": ["vetreport", "aggregate"],
                "description": "Aggregate a year and publish when the tables changed",
            },
        ),
        (
            sweep_uploads,
            {
                "name": "every-minute",
                "parameters": {"store_url": store_url},
                "schedules": [Interval(timedelta(seconds=settings.sweep_seconds), slug="sweep")],
                # a late sweep while one is running has nothing to add: drop it
                "concurrency_limit": ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
                ),
                "tags": ["vetreport", "sweep"],
                "description": "Ingest uploads that no event brought in",
            },
        ),
        (
            rebuild,
            {
                "name": "nightly",
                "parameters": {"store_url": store_url},
                "schedules": [
                    Cron(settings.nightly_cron, timezone=settings.timezone, slug="nightly")
                ],
                "tags": ["vetreport", "rebuild"],
                "description": "Sweep and re-aggregate every year",
            },
        ),
        (
            approve_signoff,
            {
                "name": "on-signoff",
                "parameters": {"store_url": store_url},
                "triggers": [signoff_trigger(store_url)],
                "tags": ["vetreport", "approval"],
                "description": "Wait for the bureau to approve (lock) or send back a sign-off",
            },
        ),
        (
            remind_schools,
            {
                "name": "on-calendar",
                "parameters": {"store_url": store_url},
                "schedules": reminder_schedules,
                "tags": ["vetreport", "reminders"],
                "description": "Remind schools below 已确认 on the calendar's reminder dates",
            },
        ),
        (
            reopen_school,
            {
                "name": "by-operator",
                "parameters": {"store_url": store_url},
                "tags": ["vetreport", "reopen"],
                "description": "Reopen a school's locked year; its held uploads become revisions",
            },
        ),
    ]
    return _with_heartbeat_tag(specs, settings)


def _with_heartbeat_tag(
    specs: list[tuple[Any, dict[str, Any]]], settings: Settings
) -> list[tuple[Any, dict[str, Any]]]:
    """Tag the deployments whose runs will beat, so the silent-run automation watches them."""
    if not settings.run_heartbeat_seconds:
        return specs
    return [
        (flow, {**options, "tags": [*options["tags"], HEARTBEAT_TAG]}) for flow, options in specs
    ]


def build_deployments(store_url: str, settings: Settings) -> list[Any]:
    """The service's deployments as RunnerDeployments (for ``prefect.serve`` or a work pool)."""
    return [
        flow.to_deployment(**options) for flow, options in deployment_specs(store_url, settings)
    ]


def start_event_sources(
    stop: threading.Event,
    watch: Path | None = None,
    sqs_queue_url: str | None = None,
    receiver: tuple[str, int, str] | None = None,
) -> list[threading.Thread]:
    """Start the event sources this process runs beside the deployments, as daemon threads."""
    threads: list[threading.Thread] = []
    if watch is not None:
        watcher = LocalWatcher(watch)
        threads.append(threading.Thread(target=watcher.run, args=(stop,), name="watcher"))
    if sqs_queue_url:
        poller = SqsPoller(sqs_queue_url)
        threads.append(threading.Thread(target=poller.run, args=(stop,), name="sqs"))
    if receiver is not None:
        host, port, token = receiver
        server = make_receiver(host, port, token)
        threads.append(threading.Thread(target=server.serve_forever, name="receiver"))

        def close_receiver() -> None:
            stop.wait()
            server.shutdown()

        threads.append(threading.Thread(target=close_receiver, name="receiver-stop"))
    for thread in threads:
        thread.daemon = True
        thread.start()
    return threads


API_WAIT_SECONDS = 300
SILENT_HEARTBEATS = 3  # a run that missed this many heartbeats in a row is marked Crashed
RUNNER_RESTART_SECONDS = 5


def _when_the_api_answers(
    call: Callable[[], Any], what: str, wait_seconds: float | None = API_WAIT_SECONDS
) -> Any:
    """Run ``call``, retrying while the Prefect API cannot be reached.

    The service may start before its server (a compose file starts both at once) or while
    the server restarts: it waits for it instead of exiting, up to ``wait_seconds`` when
    starting (a wrong API URL should fail the start) and for ever (None) once it has
    served (an outage of any length must not end the service).
    """
    import httpx

    deadline = time.monotonic() + (wait_seconds if wait_seconds is not None else float("inf"))
    pause = 1.0
    while True:
        try:
            return call()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as error:
            if time.monotonic() > deadline:
                raise
            logger.warning("%s: the Prefect API does not answer (%s); retrying", what, error)
            time.sleep(pause)
            pause = min(pause * 2, 15.0)


def serve_service(
    store_url: str,
    settings: Settings,
    watch: Path | None = None,
    sqs_queue_url: str | None = None,
    receiver: tuple[str, int, str] | None = None,
) -> None:
    """Serve the deployments (blocking) with the chosen event sources beside them.

    Like ``prefect.serve`` with ``pause_on_shutdown=False``, but the flows are added with
    ``Runner.add_flow`` so runs start from the in-memory flow (no code download), from a
    preloaded fork server unless ``VETREPORT_RUNNER_START=spawn``.
    """
    import asyncio
    import signal

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    if settings.run_heartbeat_seconds:
        # before the fork server starts: its flow-run processes read Prefect's settings
        # from the environment they inherit
        os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.run_heartbeat_seconds)
        silent = SILENT_HEARTBEATS * settings.run_heartbeat_seconds
        _when_the_api_answers(lambda: ensure_silent_run_automation(silent), "crash silent runs")
    if settings.runner_start == "forkserver":
        use_fork_server()
    if settings.failure_webhook_url:
        url = settings.failure_webhook_url
        _when_the_api_answers(lambda: ensure_failure_automation(url), "the failure automation")
        logger.info("failure webhook automation created")
    specs = deployment_specs(store_url, settings)

    def started_runner(wait_seconds: float | None = API_WAIT_SECONDS) -> Runner:
        runner = Runner(
            name="vetreport-service",
            pause_on_shutdown=False,
            limit=settings.runner_limit,
            query_seconds=settings.runner_poll_seconds,
        )
        for flow, options in specs:
            _when_the_api_answers(
                lambda flow=flow, options=options: runner.add_flow(flow, **options),
                f"adding {flow.name}",
                wait_seconds,
            )
        return runner

    runner = started_runner()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # stop the runner (and its flow-run processes) cleanly

    signal.signal(signal.SIGTERM, terminate)
    stop = threading.Event()
    start_event_sources(stop, watch, sqs_queue_url, receiver)
    print(
        "serving: " + ", ".join(f"{f.name}/{o['name']}" for f, o in specs),
        flush=True,  # operators and tests wait for this line in a log file
    )
    try:
        while True:
            try:
                asyncio.run(runner.start())
                reason: object = "it returned"
            except (KeyboardInterrupt, TerminationSignal):
                logger.info("shutting down")
                return
            except Exception as error:
                reason = error
            # Prefect's runner stops for good after three polls in a row cannot reach the
            # API (a server restart, a network blip of a few seconds). The service must
            # outlive that: start a runner again once the API answers. The event sources
            # run on meanwhile (a notification is acknowledged only once its event is
            # sent) and the sweep covers whatever was missed.
            logger.warning("the runner stopped (%r); restarting it", reason)
            time.sleep(RUNNER_RESTART_SECONDS)
            runner = started_runner(wait_seconds=None)
            print("serving again", flush=True)
    finally:
        stop.set()
