"""Prefect process workers on this machine: the work pool, and workers started and stopped.

What belongs here: making sure a work pool of type ``process`` exists, starting ``prefect
worker start`` processes for it (each in its own session, stopped with its flow runs by
``stop_process_group``) and asking the API which workers of a pool are online. Which
deployments run on the pool is the flows' business (``flows/backfill.py``).

A process worker starts every flow run as a fresh interpreter (``python -m
prefect.engine``, a new process image, not a fork), so a flow run never inherits the
threads Polars starts in its parent: forking a process after Polars has started its
thread pool can deadlock the child. The worker itself imports Prefect only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from vetreport.paths import REPOSITORY_ROOT

POOL_TYPE = "process"
# How often a worker asks for scheduled runs. Prefect's default (10 s) leaves a worker idle
# for up to that long after each shard; a backfill's shards are queued all at once.
WORKER_QUERY_SECONDS = "1"


def ensure_process_pool(name: str) -> bool:
    """Create the work pool (type process, Prefect's default job template) if it is missing.

    Return whether it was created. A pool of another type under that name is an error.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=POOL_TYPE,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="vetreport: backfill shards and the service's flows",
                )
            )
            return True
    if pool.type != POOL_TYPE:
        raise RuntimeError(f"work pool {name!r} is of type {pool.type!r}, not {POOL_TYPE!r}")
    return False


def online_workers(pool: str) -> list[str]:
    """The names of the pool's workers that the API sees as online."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import WorkerStatus

    with get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(pool)
    return sorted(worker.name for worker in workers if worker.status == WorkerStatus.ONLINE)


def worker_environment(api_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker started here, which its flow runs inherit.

    The API, the worker's poll interval (unless set), and this checkout first on
    ``PYTHONPATH``, so flow runs import the same code as the command that started them
    (the deployments name their flows by module path, e.g. ``flows.backfill.ingest_shard``).
    """
    environment = dict(os.environ)
    environment["PREFECT_API_URL"] = api_url
    environment.setdefault("PREFECT_WORKER_QUERY_SECONDS", WORKER_QUERY_SECONDS)
    environment.setdefault("DO_NOT_TRACK", "1")
    paths = [str(REPOSITORY_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(":"))]
    environment["PYTHONPATH"] = ":".join(dict.fromkeys(paths))
    environment.update(extra or {})
    return environment


def worker_name(index: int) -> str:
    """``{host}-{pid}-w{index}``: unique per machine and command, readable in the UI."""
    return f"{socket.gethostname()}-{os.getpid()}-w{index}"


def start_worker(
    pool: str,
    name: str,
    api_url: str,
    log: Path,
    limit: int = 1,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[Any]:
    """``prefect worker start --type process`` for the pool, in its own session.

    ``limit`` is how many flow runs it executes at once: 1 for a CPU-bound shard per core.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        POOL_TYPE,
        "--name",
        name,
        "--limit",
        str(limit),
    ]
    return subprocess.Popen(
        command,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=worker_environment(api_url, extra_env),
        cwd=REPOSITORY_ROOT,
        start_new_session=True,
    )
