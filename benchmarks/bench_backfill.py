"""A national year on a work pool: the backfill on W process workers against one process.

Generates one synthetic national bucket (``vetreport.demo.national``, the report year only),
starts a throwaway ``prefect server start`` (SQLite), then:

- ``one process``: ``run_pipeline`` (what ``vetreport run`` starts: sweep, ingest in
  batches of 64 keys on threads, aggregate, publish) in a child process; its outputs are
  then moved aside, leaving the uploads;
- ``W workers`` for each W of ``VETREPORT_BENCH_WORKERS``: a fresh process work pool, W
  ``prefect worker start --type process --limit 1`` subprocesses polling it every second,
  and the ``backfill`` flow in a child process (listing and the bureau's files there,
  shards of ``VETREPORT_BENCH_SHARD_SCHOOLS`` schools on the workers, then aggregate and
  publish); its outputs are compared with the one-process run's (``tests.compare_buckets``,
  times masked) and moved aside.

The backfills run on the same uploads as the one-process run, not on a copy: a folder
bucket names an upload by its ETag and arrival time (the file's change time, which no copy
keeps), so a copy's uploads would be other uploads with other submission ids.

Figures: seconds (the child's work after its imports, and its wall time from the start of
its interpreter), files/s, CPU seconds (the child; the workers with their flow-run
processes; the Prefect server), the machine's CPU busy share over the phase (all processes,
others' too: the machine is shared) and the 1-minute load average at start and end. For a
backfill, the shards' timeline from the API: per shard, its start cost (from being taken by
a free worker to Running: a fresh interpreter importing Prefect, Polars and Pandera, and
loading the flow) and its work (Running to Completed).

Run:

    VETREPORT_BENCH_SCHOOLS=300 .venv/bin/python -m benchmarks.run bench_backfill
    VETREPORT_BENCH_WORKERS=1,2 ...         # one backfill per worker count (default 2)
    VETREPORT_BENCH_SHARD_SCHOOLS=50 ...    # schools per shard (default 50)
    VETREPORT_BENCH_BUCKET=var/backfill ... # keep the bucket and outputs (default: temporary)
    VETREPORT_BENCH_ONE=plain ...           # one process without Prefect (bench_national's
                                            # project phase) instead of run_pipeline
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from vetreport.paths import REPOSITORY_ROOT

DEFAULT_SCHOOLS = 300
DEFAULT_WORKERS = "2"
DEFAULT_SHARD_SCHOOLS = 50
SEED = 2023
YEAR = 2023


def main() -> None:
    """Generate, run one process and each backfill, print the figures."""
    schools = int(os.environ.get("VETREPORT_BENCH_SCHOOLS") or DEFAULT_SCHOOLS)
    counts = [int(part) for part in (os.environ.get("VETREPORT_BENCH_WORKERS") or "2").split(",")]
    shard = int(os.environ.get("VETREPORT_BENCH_SHARD_SCHOOLS") or DEFAULT_SHARD_SCHOOLS)
    kept = os.environ.get("VETREPORT_BENCH_BUCKET")
    print(
        f"backfill bench: {schools} schools, {YEAR}, workers {counts}, {shard} schools a "
        f"shard; {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{_load()}",
        flush=True,
    )
    work = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: the bench needs a fresh folder")
    try:
        _run(work, schools, counts, shard)
    finally:
        if not kept:
            shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, schools: int, counts: list[int], shard: int) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from vetreport.demo.national import write_national_bucket
    from vetreport.serve.prefect_server import is_healthy, start_server_process, stop_process_group

    bucket = work / "bucket"
    summary = write_national_bucket(bucket, schools, SEED, (YEAR,))
    print(f"  generated {summary.files} files ({summary.bad_files} bad)", flush=True)
    home = work / "prefect"
    home.mkdir()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = start_server_process(home, "127.0.0.1", port, {"PREFECT_UI_ENABLED": "false"})
    rows: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 180
        while not is_healthy(api):
            if time.monotonic() > deadline:
                raise SystemExit(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        with temporary_settings(updates={PREFECT_API_URL: api}):
            one = os.environ.get("VETREPORT_BENCH_ONE") or "flow"
            name = "one process" + (" (no Prefect)" if one == "plain" else "")
            rows.append(_measure(name, server.pid, lambda: _child(one, bucket, api)))
            _move_outputs(bucket, work / "one-process")
            for count in counts:
                rows.append(_backfill(work, bucket, api, server.pid, count, shard))
    finally:
        stop_process_group(server)
    _print_table(rows, summary.files)


def _backfill(
    work: Path, bucket: Path, api: str, server_pid: int, count: int, shard: int
) -> dict[str, Any]:
    from flows.backfill import register_backfill_deployments
    from tests.compare_buckets import compare
    from vetreport.serve.prefect_server import stop_process_group
    from vetreport.serve.workers import ensure_process_pool, online_workers, start_worker

    pool = f"bench-{count}w-{uuid4().hex[:6]}"
    ensure_process_pool(pool)
    register_backfill_deployments(pool)
    names = [f"{pool}-w{index}" for index in range(1, count + 1)]
    before = _children_cpu()
    workers = [start_worker(pool, name, api, work / f"{name}.log") for name in names]
    try:
        deadline = time.monotonic() + 120
        while not set(names) <= set(online_workers(pool)):
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not come online; see {work}")
            time.sleep(0.5)
        row = _measure(
            f"{count} worker{'s' if count > 1 else ''}",
            server_pid,
            lambda: _child("backfill", bucket, api, pool, str(shard)),
        )
    finally:
        for process in workers:
            stop_process_group(process)
    row["workers_cpu"] = _children_cpu() - before - row["child_cpu"]
    row["shards"] = _shard_timeline(pool)
    problems = compare(work / "one-process", bucket, ("published", "reports", "ledger", "curated"))
    row["differences"] = len(problems)
    for line in problems[:10]:
        print(f"    {line}")
    _move_outputs(bucket, work / f"backfill-{count}")
    return row


def _measure(name: str, server_pid: int, run: Any) -> dict[str, Any]:
    load_start, busy_start, server_start = _load(), _busy(), _session_cpu(server_pid)
    started = time.perf_counter()
    cpu_before = _children_cpu()
    figures = run()
    figures["wall"] = time.perf_counter() - started
    figures["child_cpu"] = _children_cpu() - cpu_before
    figures["server_cpu"] = _session_cpu(server_pid) - server_start
    figures["busy"] = _busy_share(busy_start, _busy())
    figures["load"] = f"{load_start} → {_load()}"
    figures["name"] = name
    print(f"  {name}: {figures['seconds']:.1f} s, wall {figures['wall']:.1f} s", flush=True)
    return figures


def _child(phase: str, bucket: Path, api: str, *rest: str) -> dict[str, Any]:
    environment = dict(os.environ, PREFECT_API_URL=api, DO_NOT_TRACK="1")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_backfill", "phase", phase, str(bucket), *rest],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-5000:] + completed.stderr[-5000:])
        raise SystemExit(f"phase {phase} failed with exit code {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _shard_timeline(pool: str) -> list[dict[str, Any]]:
    """Per shard run of the pool: worker, start cost and work, in seconds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])), limit=200
        )
    shards = []
    for run in runs:
        worker = next((t.split(":", 1)[1] for t in run.tags if t.startswith("worker:")), "")
        shards.append(
            {
                "worker": worker,
                "queued": run.expected_start_time or run.created,
                "start": run.start_time,
                "end": run.end_time,
            }
        )
    previous_end: dict[str, datetime] = {}
    for entry in sorted(shards, key=lambda entry: entry["start"]):
        taken = max(entry["queued"], previous_end.get(entry["worker"], entry["queued"]))
        entry["start_cost"] = (entry["start"] - taken).total_seconds()
        entry["work"] = (entry["end"] - entry["start"]).total_seconds()
        previous_end[entry["worker"]] = entry["end"]
    return shards


def _print_table(rows: list[dict[str, Any]], files: int) -> None:
    print("| run | seconds | wall | files/s | CPU s: run | workers | server | busy | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['name']} | {row['seconds']:.1f} | {row['wall']:.1f} | "
            f"{files / row['seconds']:.1f} | {row['child_cpu']:.0f} | "
            f"{row.get('workers_cpu', 0):.0f} | {row['server_cpu']:.0f} | "
            f"{row['busy']:.0%} | {row['load']} |"
        )
    for row in rows:
        if "shards" not in row:
            if "steps" in row:
                steps = ", ".join(
                    f"{name} {seconds:.1f} s" for name, seconds in row["steps"].items()
                )
                print(f"{row['name']}: steps: {steps}")
            continue
        shards = row["shards"]
        costs = [entry["start_cost"] for entry in shards]
        works = [entry["work"] for entry in shards]
        per_worker: dict[str, int] = {}
        for entry in shards:
            per_worker[entry["worker"]] = per_worker.get(entry["worker"], 0) + 1
        print(
            f"{row['name']}: {len(shards)} shards {per_worker}; start cost median "
            f"{statistics.median(costs):.1f} s (max {max(costs):.1f}), work median "
            f"{statistics.median(works):.1f} s (sum {sum(works):.0f}); before the first "
            f"shard {row['before_shards']:.1f} s, after the last {row['after_shards']:.1f} s; "
            f"differences from one process: {row['differences']}"
        )
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in row["steps"].items())
        print(f"{row['name']}: backfill steps: {steps}")


# -- measuring ----------------------------------------------------------------------------


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _busy_share(start: tuple[int, int], end: tuple[int, int]) -> float:
    return (end[0] - start[0]) / max(1, end[1] - start[1])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _session_cpu(session: int) -> float:
    """CPU seconds of the live processes of a session (the Prefect server and its children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat: the session id
            total += sum(int(value) for value in fields[11:15])
    return total / ticks


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _move_outputs(bucket: Path, target: Path) -> None:
    target.mkdir()
    for zone in bucket.iterdir():
        if zone.name not in ("uploads", "demo"):
            shutil.move(zone, target / zone.name)


# -- the children -------------------------------------------------------------------------


def _phase_plain(bucket: Path) -> dict[str, Any]:
    """bench_national's project phase: the sweep's work without Prefect, one process."""
    from benchmarks.bench_national import _phase_project

    figures = _phase_project(bucket)
    return {"seconds": figures["seconds"], "files": figures["files"], "steps": figures["steps"]}


def _phase_one(bucket: Path) -> dict[str, Any]:
    from flows.pipeline import run_pipeline

    started = time.perf_counter()
    summary = run_pipeline(str(bucket), YEAR)
    return {"seconds": time.perf_counter() - started, "files": summary["ingested"]}


def _phase_backfill(bucket: Path, pool: str, shard: str) -> dict[str, Any]:
    from flows.backfill import backfill

    started, wall_start = time.perf_counter(), time.time()
    summary = backfill(str(bucket), YEAR, schools_per_shard=int(shard), poll_seconds=1)
    seconds, wall_end = time.perf_counter() - started, time.time()
    first, last = _shard_span(pool)
    return {
        "seconds": seconds,
        "files": summary["keys"],
        "before_shards": first - wall_start,
        "after_shards": wall_end - last,
        "steps": summary["steps"],
    }


def _shard_span(pool: str) -> tuple[float, float]:
    """When the first shard run was created and the last one ended (epoch seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])), limit=200
        )
    return (
        min(run.created.timestamp() for run in runs),
        max(run.end_time.timestamp() for run in runs),
    )


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "phase":
        phase, root, *rest = sys.argv[2:]
        runner = {"flow": _phase_one, "plain": _phase_plain, "backfill": _phase_backfill}[phase]
        print(json.dumps(runner(Path(root), *rest)))
    else:
        main()
