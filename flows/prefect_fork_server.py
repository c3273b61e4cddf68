"""The one place vetreport patches Prefect: served flow runs start from a warm fork server.

What belongs here, and only here: replacing ``prefect.flow_engine``'s ``multiprocessing``
with a "forkserver" context whose server has the pipeline's modules imported. A unit test
pins the Prefect internals this relies on, so an upgrade that changes them fails loudly.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import prefect.flow_engine as engine

# Modules the flow-run processes need, imported once in the fork server (see below).
PRELOAD_MODULES = [
    "prefect.flow_engine",
    "flows.ingest",
    "flows.aggregate",
    "flows.pipeline",
    "vetreport.curate.ingest",
    "vetreport.aggregate.compute",
    "vetreport.publish.writer",
    "vetreport.validate.checks",
    "vetreport.validate.read",
    "vetreport.validate.normalise",
    "vetreport.publish.policy",
]


class _ForkServerMultiprocessing:
    """Stands in for ``multiprocessing`` inside ``prefect.flow_engine``: forkserver, not spawn."""

    def __init__(self) -> None:
        self._real = multiprocessing
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD_MODULES)

    def get_context(self, method: str | None = None) -> Any:
        return self._context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def use_fork_server() -> None:
    """Start served flow runs from a fork server that has our modules already imported.

    Prefect's runner starts each served flow run with ``multiprocessing`` "spawn", so every
    run pays a fresh interpreter and imports of Prefect, Polars and Pandera (5 s and more
    on a small machine), which alone misses the 3 s upload-to-report target. A
    "forkserver" context with the modules preloaded forks a warm, single-threaded process
    instead. Everything else (state handling, logs, cancellation) is Prefect's own code.
    Set ``VETREPORT_RUNNER_START=spawn`` to keep Prefect's default.
    """
    if not isinstance(engine.multiprocessing, _ForkServerMultiprocessing):
        engine.multiprocessing = _ForkServerMultiprocessing()  # type: ignore[assignment]
