"""The ``vetreport`` command line.

What belongs here: parsing arguments and calling the package or the flows; no data logic.
Commands:

    vetreport demo [--bucket DIR]          demo uploads -> Prefect flows -> published tables
    vetreport demo-data --out DIR          write the demo uploads as files (bucket layout)
    vetreport demo-data --national --schools N --out DIR [--years Y,Y]  a synthetic country
    vetreport run --bucket URL [--year Y]  run the pipeline on a bucket
    vetreport backfill --bucket URL [--workers N] [--pool P] [--schools-per-shard S]
                                           ingest as shard runs on a work pool's workers,
                                           then aggregate and publish once
    vetreport validate FILE...             validate files on disk, no bucket or server
    vetreport templates --year Y           blank Excel template of a year for schools
    vetreport dictionary [--out FILE]      the data dictionary, from the catalogue
    vetreport docs [--check]               rewrite (or check) every generated doc under docs/
    vetreport tables list|get [--region R] list published versions, get a table (a region's rows)
    vetreport publish --year Y [--final]   aggregate and publish (final: then revisions)
    vetreport server start|stop            the local Prefect server of the embedded default
    vetreport serve [--watch|--sqs-queue-url URL|--receiver-port P] [--create-bucket]
                                           the event-driven service
    vetreport up                           server + service + watcher on var/bucket
    vetreport up --s3 [--demo-data]        the same on a local SeaweedFS (s3://vetreport)
    vetreport receive --port P --token T   HTTP receiver for S3/MinIO notifications
    vetreport status [--year Y]            the status ladder: school x dataset, counts per state
    vetreport signoff SCHOOL --year Y      an operator signs off a school's year for it
    vetreport reopen SCHOOL --year Y [--note N]   reopen a locked year; held uploads follow
    vetreport explanations SCHOOL --year Y [--out FILE]   the school's pre-filled explanations
    vetreport identities --registry FILE --out DIR   S3 identities and policies per school
    vetreport portal [--host H] [--port P] [--bucket URL]   the school portal (web pages)
    vetreport portal issue-token SCHOOL    a school's sign-in secret for the portal
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from vetreport.paths import REPOSITORY_ROOT
from vetreport.settings import load_settings

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
# The figures printed in the 2023 Shaoxing report (the demo's oracle), with their notes.
SEED_YEAR = 2023
SEED_FIGURES = REPOSITORY_ROOT / "tests" / "backtests" / "seed_figures_shaoxing_2023.csv"
EXIT_SERVER_CONFLICT = 3  # a port is held by a server vetreport must not use unasked


def _store_url(value: str | None) -> str:
    text = value or load_settings().bucket
    if "://" in text:
        return text
    path = Path(text).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def command_demo(arguments: argparse.Namespace) -> int:
    """Run the whole pipeline on the demo data and print the tables."""
    console = Console(width=max(Console().width, 120))
    store_url = _store_url(arguments.bucket)
    from vetreport.serve.prefect_server import ensure_server

    api = ensure_server()  # first: a server it must not use stops the demo before any work
    console.print(f"Prefect API: {api}")
    _serve_files(store_url)
    from vetreport.demo.generator import write_demo_uploads

    written, unchanged = write_demo_uploads(store_url, arguments.seed)
    console.print(f"demo uploads: {written} written, {unchanged} unchanged in {store_url}")
    summary = _run_pipeline(store_url, arguments.year)
    report_year = summary["publish"]["report_year"]
    _print_published(console, store_url, report_year)
    if report_year == SEED_YEAR and SEED_FIGURES.is_file():
        _print_seed_contradictions(console, store_url, report_year)
    ui = api.removesuffix("/api")
    from vetreport.bucket.links import public_url
    from vetreport.bucket.store import open_store
    from vetreport.publish.reader import resolve_version
    from vetreport.publish.writer import REPORT_DOCX, REPORT_HTML

    prefix = summary["publish"]["prefix"]
    console.print(f"\n已发布 / published: {store_url}/{prefix}")
    console.print(f"报告 / report: {public_url(open_store(store_url), prefix + REPORT_HTML)}")
    manifest = resolve_version(store_url, report_year, summary["publish"]["version"])
    if REPORT_DOCX in manifest["files"]:
        link = public_url(open_store(store_url), prefix + REPORT_DOCX)
        console.print(f"质量报告 / report document: {link}")
    console.print(f"流程运行 / flow runs in the Prefect UI: {ui}/runs")
    console.print(f"校验报告 / validation reports: {store_url}/reports/")
    return 0


def _print_seed_contradictions(console: Console, store_url: str, report_year: int) -> None:
    """Where the printed 2023 Shaoxing report disagrees with the numbers just published."""
    from vetreport.cli.terminal import render_reconciliation
    from vetreport.publish.reconcile import (
        computed_values,
        differences,
        load_reference,
        reconcile,
        summary_counts,
    )

    values, source = computed_values(store_url, report_year)
    result = reconcile(values, load_reference(SEED_FIGURES))
    console.print("\n印刷版报告与数据不一致之处 / where the printed report contradicts the data:")
    render_reconciliation(differences(result), summary_counts(result), source, console)


def _serve_files(store_url: str) -> str | None:
    """Start (or reuse) the file server behind a folder bucket's links; None for S3."""
    if "://" in store_url:
        return None  # S3 links are presigned URLs
    from vetreport.serve.files import ensure_file_server

    address = ensure_file_server(Path(store_url))
    print(f"files / 文件: {address}/reports/… and {address}/published/… (the artifacts' links)")
    return address


def _run_pipeline(store_url: str, year: int | None) -> dict:
    from flows.pipeline import latest_upload_year, run_pipeline

    report_year = year or latest_upload_year(store_url)
    if report_year is None:
        raise SystemExit("no uploads in the bucket")
    summary = run_pipeline(store_url, report_year)
    publish = summary["publish"]
    state = "new version" if publish["is_new_version"] else "unchanged"
    print(
        f"ingested {summary['ingested']} uploads {summary['outcomes']}; "
        f"{report_year} v{publish['version']} ({state})"
    )
    return summary


def _print_published(console: Console, store_url: str, report_year: int) -> None:
    from schemas.indicators import load_table_specs
    from vetreport.bucket.store import open_store
    from vetreport.cli.terminal import render_city_table
    from vetreport.publish.reader import read_table

    store = open_store(store_url)
    for spec in load_table_specs():
        render_city_table(spec, read_table(store, spec.table_id, report_year), console)


def command_demo_data(arguments: argparse.Namespace) -> int:
    """Write the demo uploads into a folder laid out like the bucket."""
    if arguments.national:
        return _national_demo_data(arguments)
    if arguments.schools is not None or arguments.years is not None:
        print("--schools and --years go with --national", file=sys.stderr)
        return EXIT_USAGE
    from vetreport.demo.generator import write_demo_uploads

    written, unchanged = write_demo_uploads(_store_url(arguments.out), arguments.seed)
    print(f"{written} files written, {unchanged} unchanged under {arguments.out}")
    return 0


def _national_demo_data(arguments: argparse.Namespace) -> int:
    """Write a synthetic national collection (vetreport.demo.national) into a folder."""
    from vetreport.demo.national import DEFAULT_SCHOOLS, DEFAULT_YEARS, write_national_bucket

    try:
        years = (
            tuple(int(part) for part in arguments.years.split(","))
            if arguments.years
            else DEFAULT_YEARS
        )
    except ValueError:
        print(f"--years takes years separated by commas, not {arguments.years!r}", file=sys.stderr)
        return EXIT_USAGE
    schools = DEFAULT_SCHOOLS if arguments.schools is None else arguments.schools
    if schools < 1:
        print("--schools must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    step = max(1, schools // 20)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"  {done}/{total} schools", file=sys.stderr, flush=True)

    summary = write_national_bucket(
        Path(arguments.out), schools, arguments.seed, years, progress=progress
    )
    print(
        f"{summary.schools} schools in {summary.provinces} provinces and {summary.cities} "
        f"cities, years {','.join(map(str, summary.years))}: {summary.files} files "
        f"({summary.bad_files} bad), {summary.data_rows:,} data rows, "
        f"{summary.bytes_written / 2**20:.1f} MiB in {summary.seconds:.1f} s "
        f"({summary.files_per_second:.0f} files/s) under {arguments.out}"
    )
    return 0


def command_run(arguments: argparse.Namespace) -> int:
    """Run the pipeline on a bucket against the configured or local Prefect server."""
    from vetreport.serve.prefect_server import ensure_server

    ensure_server()
    store_url = _store_url(arguments.bucket)
    _serve_files(store_url)
    _run_pipeline(store_url, arguments.year)
    return 0


def command_backfill(arguments: argparse.Namespace) -> int:
    """Fan the unprocessed uploads out over a work pool's workers, then publish once.

    Registers the backfill's deployments on the pool (created, type process, if missing),
    starts ``--workers`` local workers (stopped at the end; workers on other machines
    join by polling the same pool), and runs the ``backfill`` flow in this process.
    """
    import time

    from flows.backfill import BackfillError, backfill, register_backfill_deployments
    from flows.ingest import DEFAULT_BATCH_SIZE
    from vetreport.publish.writer import FINAL
    from vetreport.serve.prefect_server import ensure_server, stop_process_groups
    from vetreport.serve.workers import (
        ensure_process_pool,
        online_workers,
        start_worker,
        worker_name,
    )

    arguments.batch_size = arguments.batch_size or DEFAULT_BATCH_SIZE
    if arguments.workers < 0 or arguments.schools_per_shard < 1 or arguments.batch_size < 1:
        print("--workers >= 0, --schools-per-shard and --batch-size >= 1", file=sys.stderr)
        return EXIT_USAGE
    api = ensure_server()
    store_url = _store_url(arguments.bucket)
    if "://" not in store_url and not (Path(store_url) / "uploads").is_dir():
        print(f"no uploads/ under {store_url}", file=sys.stderr)
        return EXIT_USAGE
    if ensure_process_pool(arguments.pool):
        print(f"created the work pool {arguments.pool} (type process)")
    register_backfill_deployments(arguments.pool)
    names = [worker_name(index) for index in range(1, arguments.workers + 1)]
    logs = load_settings().var_dir.resolve() / "workers"
    workers = [start_worker(arguments.pool, name, api, logs / f"{name}.log") for name in names]
    try:
        deadline = time.monotonic() + 120
        while not set(names) <= set(online := online_workers(arguments.pool)) or not online:
            if time.monotonic() > deadline:
                print(
                    f"no worker online in the pool {arguments.pool} after 120 s: start "
                    f"`prefect worker start --pool {arguments.pool} --type process` "
                    "somewhere, or pass --workers N" + (f" (logs: {logs})" if names else ""),
                    file=sys.stderr,
                )
                return EXIT_REJECTED
            time.sleep(1)
        print(f"workers online in {arguments.pool}: {', '.join(online)}", flush=True)
        started = time.perf_counter()
        try:
            summary = backfill(
                store_url,
                report_year=arguments.year,
                year=arguments.only_year,
                schools_per_shard=arguments.schools_per_shard,
                batch_size=arguments.batch_size,
                status=FINAL if arguments.final else None,
            )
        except BackfillError as error:
            print(f"backfill failed: {error}", file=sys.stderr)
            return EXIT_REJECTED
        seconds = time.perf_counter() - started
    finally:
        stop_process_groups(workers)
    for row in summary["shards"]:
        print(f"  {row['shard']} {row['schools']} on {row['worker']}: {row['message']}")
    print("seconds by step: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["steps"].items()))
    rate = summary["keys"] / seconds if seconds else 0.0
    print(
        f"{summary['keys']} uploads in {len(summary['shards'])} shards, {seconds:.1f} s "
        f"({rate:.1f} files/s)"
    )
    publish = summary["publish"]
    if publish:
        state = "new version" if publish["is_new_version"] else "unchanged"
        print(f"{publish['report_year']} v{publish['version']} ({state}) at {publish['prefix']}")
    return 0


def command_validate(arguments: argparse.Namespace) -> int:
    """Validate files on disk and print their reports.

    Exit 0 when every file is accepted (warnings allowed), 1 when any is rejected, 2 on a
    usage error: a missing file, an unsupported extension, an unknown --dataset, or a file
    name that names no dataset. Year, school and dataset come from a bucket-style path
    (uploads/{year}/{school}/{dataset}.ext) unless given as options.
    """
    from schemas.catalogue import load_datasets
    from vetreport.validate.checks import (
        REJECTED,
        UsageError,
        build_report,
        local_file_context,
        validate_upload,
    )

    datasets = load_datasets()
    if arguments.dataset is not None and arguments.dataset not in datasets:
        print(
            f"unknown dataset {arguments.dataset!r}; known: {', '.join(datasets)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    worst = EXIT_ACCEPTED
    reports = []
    several = len(arguments.files) > 1
    stems = [Path(name).stem for name in arguments.files]
    for index, name in enumerate(arguments.files):
        path = Path(name)
        try:
            context = local_file_context(
                path, arguments.year, arguments.school, arguments.dataset, datasets
            )
        except UsageError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return EXIT_USAGE
        data = path.read_bytes()
        report = build_report(validate_upload(data, context), context, None)
        reports.append(report)
        if report["outcome"] == REJECTED:
            worst = EXIT_REJECTED
        # Reports of several inputs go into a folder, named after each input (numbered when
        # two inputs share a name).
        label = stems[index] if stems.count(stems[index]) == 1 else f"{index + 1}-{stems[index]}"
        _write_feedback_files(arguments, path, data, report, label if several else None)
    if arguments.json:
        print(json.dumps(reports, ensure_ascii=False, indent=2, default=str))
    else:
        from vetreport.cli.terminal import render_validation_report

        for report in reports:
            render_validation_report(report, Console())
    return worst


def _write_feedback_files(
    arguments: argparse.Namespace, path: Path, data: bytes, report: dict, label: str | None
) -> None:
    """The school-facing reports (--html, --workbook): files, or folders for several inputs."""
    from vetreport.school.feedback import annotate_workbook, render_html

    outputs = (
        (arguments.html, "html", lambda: render_html(report).encode("utf-8")),
        (
            arguments.workbook,
            "xlsx",
            lambda: annotate_workbook(data, path.suffix.lower().lstrip("."), report),
        ),
    )
    for option, suffix, render in outputs:
        if not option:
            continue
        target = Path(option)
        if label is not None or target.is_dir():
            target = target / f"{label or path.stem}.{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(render())
        print(f"wrote {target}", file=sys.stderr)


def command_templates(arguments: argparse.Namespace) -> int:
    """Write the blank Excel template of a year to a folder and/or the bucket."""
    from vetreport.bucket.keys import template_key
    from vetreport.bucket.store import open_store
    from vetreport.school.blank_template import build_template

    body = build_template(arguments.year)
    key = template_key(arguments.year)
    if arguments.out:
        folder = Path(arguments.out)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / key.rsplit("/", 1)[-1]
        target.write_bytes(body)
        print(f"wrote {target}")
    if arguments.bucket or not arguments.out:
        store_url = _store_url(arguments.bucket)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        open_store(store_url).put(key, body, content_type)
        print(f"wrote {key} in {store_url}")
    return 0


def command_docs(arguments: argparse.Namespace) -> int:
    """Rewrite every generated document (or, with --check, list the stale ones)."""
    from vetreport.docs.generate import stale_documents, write_documents

    if arguments.check:
        stale = stale_documents()
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in write_documents():
        print(f"rewrote {path}")
    return 0


def command_dictionary(arguments: argparse.Namespace) -> int:
    """Write the data dictionary (Markdown) generated from the catalogue."""
    from vetreport.docs.data_dictionary import render_dictionary

    text = render_dictionary()
    if arguments.out:
        Path(arguments.out).parent.mkdir(parents=True, exist_ok=True)
        Path(arguments.out).write_text(text, encoding="utf-8")
        print(f"wrote {arguments.out}")
    else:
        sys.stdout.write(text)
    return 0


def command_tables(arguments: argparse.Namespace) -> int:
    """List published versions, or write one table (checksum verified) to a file or stdout."""
    from vetreport.bucket.store import KeyNotFound, open_store
    from vetreport.publish.reader import list_versions, published_years, read_table_bytes

    store = open_store(_store_url(arguments.bucket))
    if arguments.action == "list":
        years = [y for y in published_years(store) if not arguments.year or y == arguments.year]
        if not years:
            print("nothing published" + (f" for {arguments.year}" if arguments.year else ""))
        for year in years:
            print(f"{year}:")
            for entry in list_versions(store, year):
                status = entry["status"]
                if entry["revision_of"]:
                    status += f" of v{entry['revision_of']}"
                changed = entry["cells_changed"]
                print(
                    f"  v{entry['version']:<4} {status:<20} {entry['created_at']}  "
                    f"{entry['tables']} tables"
                    + (
                        ", first version"
                        if entry["previous_version"] is None
                        else f", {changed} cells changed"
                    )
                    + ("  <- latest" if entry["is_latest"] else "")
                )
        return 0
    try:
        body = read_table_bytes(
            store,
            arguments.table,
            arguments.year,
            arguments.version,
            arguments.format,
            region=arguments.region,
        )
    except (KeyNotFound, KeyError) as error:
        print(f"not found: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # a malformed region, or one the table has no column for
        print(f"cannot read: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.out:
        target = Path(arguments.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(body)
        os.replace(temporary, target)
        print(f"wrote {target}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    return 0


def command_publish(arguments: argparse.Namespace) -> int:
    """Aggregate a year and publish it: provisional, or final with --final.

    After a final exists, any change is published as a revision of it; unchanged data
    publishes nothing.
    """
    from flows.aggregate import aggregate_and_publish
    from vetreport.publish.writer import FINAL
    from vetreport.serve.prefect_server import ensure_server

    ensure_server()
    store_url = _store_url(arguments.bucket)
    _serve_files(store_url)
    status = FINAL if arguments.final else None
    summary = aggregate_and_publish(store_url, arguments.year, status)
    for year, entry in [(arguments.year, summary), *summary.get("later_years", {}).items()]:
        state = "new version" if entry["is_new_version"] else "unchanged"
        print(f"{year} v{entry['version']} {entry['status']} ({state}) at {entry['prefix']}")
    return 0


def command_report_build(arguments: argparse.Namespace) -> int:
    """Build report.docx (and a PDF where LibreOffice is) into a published version."""
    from vetreport.bucket.store import KeyNotFound, open_store
    from vetreport.report.build import ReportTemplateError, build_report, publish_report
    from vetreport.report.pdf import PdfConversionError, soffice_path

    store = open_store(_store_url(arguments.bucket))
    template = Path(arguments.template) if arguments.template else None
    started = time.monotonic()
    try:
        if arguments.out:  # a draft on disk; the version is left as it is
            built = build_report(store, arguments.year, template, arguments.version, arguments.city)
            Path(arguments.out).write_bytes(built.docx)
            written = [arguments.out]
        else:
            built, manifest = publish_report(
                store,
                arguments.year,
                template,
                arguments.version,
                arguments.city,
                with_pdf=not arguments.no_pdf,
            )
            prefix = f"published/{arguments.year}/v{built.version}/"
            written = [prefix + name for name in ("report.docx", "report.pdf")]
            written = [key for key in written if key.removeprefix(prefix) in manifest["files"]]
    except (ReportTemplateError, KeyNotFound, PdfConversionError) as error:
        print(f"report not built: {error}", file=sys.stderr)
        return EXIT_REJECTED
    print(
        f"{arguments.year} v{built.version} ({built.status}), {built.city_name}: "
        f"{len(built.values)} figures, {len(built.changes)} changed since the previous "
        f"version, in {time.monotonic() - started:.1f} s"
    )
    for key in written:
        print(f"wrote {key}")
    if not arguments.out and not arguments.no_pdf and soffice_path() is None:
        print("no PDF: LibreOffice (soffice) is not installed", file=sys.stderr)
    return 0


def command_report_check(arguments: argparse.Namespace) -> int:
    """List every number of a hand-edited report that disagrees with the published data."""
    import polars as pl

    from vetreport.bucket.store import open_store
    from vetreport.publish.reader import read_table, resolve_version
    from vetreport.report.check import check_document, score

    store = open_store(_store_url(arguments.bucket))
    version = resolve_version(store, arguments.year, arguments.version)["version"]
    regions = read_table(store, "regions", arguments.year, version)
    cities = regions.filter(pl.col("region_level") == "city").get_column("city_name").to_list()
    city = arguments.city or (cities[0] if len(cities) == 1 else None)
    if city not in cities:
        print(f"name the city with --city: {', '.join(cities)}", file=sys.stderr)
        return EXIT_USAGE
    values = read_table(store, "indicator_values", arguments.year, version)
    result = check_document(Path(arguments.file), values, city, arguments.year)
    counts = result.counts()
    print(
        f"{arguments.file} against {arguments.year} v{version} ({city}): "
        f"{counts['agrees']} agree, {counts['disagrees']} disagree, "
        f"{counts['no_data']} without data, {counts['not_checked']} not checked"
    )
    for number in result.numbers:
        if number.status == "disagrees" or (arguments.all and number.status != "agrees"):
            data = f"{number.data_text} ({number.data_value:g})" if number.data_text else "—"
            print(
                f"{number.status}\t{number.location}\t{number.printed}\t{data}\t"
                f"{number.indicator_zh or number.reason} {number.year or ''}\t…{number.context}…"
            )
    if arguments.expected:
        scored = score(result, pl.read_csv(arguments.expected, infer_schema=False))
        print(
            f"recall {scored['found']}/{scored['expected']} = {scored['recall']:.0%}; "
            f"false alarms: {len(scored['false_alarms'])}"
        )
        for missed in scored["missed"]:
            print(f"missed: {missed}")
        for alarm in scored["false_alarms"]:
            print(f"false alarm: {alarm}")
    return EXIT_REJECTED if result.disagreements else EXIT_ACCEPTED


def command_server(arguments: argparse.Namespace) -> int:
    """Start or stop the local Prefect server (stop: and the file server)."""
    from vetreport.serve.files import stop_file_server
    from vetreport.serve.prefect_server import ensure_server, stop_server

    if arguments.action == "start":
        print(ensure_server())
    else:
        print("stopped" if stop_server() else "no server started by vetreport is running")
        if stop_file_server():
            print("file server stopped")
    return 0


def command_serve(arguments: argparse.Namespace) -> int:
    """Serve the deployments (ingest, aggregate, sweep, rebuild) with their event sources."""
    from flows.service import serve_service
    from vetreport.serve.prefect_server import ensure_server

    api = ensure_server()
    store_url = _store_url(arguments.bucket)
    _serve_files(store_url)
    if getattr(arguments, "create_bucket", False) and store_url.startswith("s3://"):
        from vetreport.bucket.store import S3Store, open_store

        store = open_store(store_url)
        if isinstance(store, S3Store) and store.ensure_bucket(versioned=True):
            print(f"created the bucket {store.bucket} (versioned)")
    watch = Path(store_url) if arguments.watch and "://" not in store_url else None
    receiver = None
    if arguments.receiver_port:
        token = arguments.token or load_settings().receiver_token
        if not token:
            print("--receiver-port needs --token or VETREPORT_RECEIVER_TOKEN", file=sys.stderr)
            return EXIT_USAGE
        receiver = (arguments.host, arguments.receiver_port, token)
    print(f"Prefect API: {api}\nPrefect UI: {api.removesuffix('/api')}\nbucket: {store_url}")
    if getattr(arguments, "portal", False):
        _start_portal(store_url, arguments.host)
    serve_service(
        store_url,
        load_settings(),
        watch=watch,
        sqs_queue_url=arguments.sqs_queue_url or load_settings().sqs_queue_url,
        receiver=receiver,
    )
    return 0


def command_up(arguments: argparse.Namespace) -> int:
    """Everything on the embedded default: server, deployments and the folder watcher.

    With ``--s3`` the bucket is on a local SeaweedFS instead of a folder (see
    ``_up_on_seaweedfs``); the rest is the same.
    """
    arguments.watch = True
    arguments.sqs_queue_url = None
    arguments.receiver_port = None
    arguments.portal = not arguments.no_portal
    if arguments.s3:
        return _up_on_seaweedfs(arguments)
    return command_serve(arguments)


def _up_on_seaweedfs(arguments: argparse.Namespace) -> int:
    """``up`` with the bucket on a local SeaweedFS rather than a folder.

    Starts ``weed server -s3`` (data under var/seaweedfs/), creates the bucket (versioned),
    optionally writes the demo uploads, points the S3 settings at it, and serves as ``up``
    does; SeaweedFS stops when the service does.

    SeaweedFS sends no S3 bucket notifications, so uploads arrive through the sweep, every
    ``VETREPORT_SWEEP_SECONDS`` (10 here unless set). Without ``--identities`` the store
    accepts any keys (loopback only); with the folder ``vetreport identities`` wrote, it
    enforces them and the service uses the pipeline's keys from its credentials.csv.
    """
    from urllib.parse import urlparse

    from vetreport.bucket.identities import CREDENTIALS_FILE, PIPELINE_NAME
    from vetreport.bucket.identities import read_known_credentials as read_keys
    from vetreport.serve.seaweedfs import SeaweedUnavailable, ensure_bucket, start_seaweedfs

    target = urlparse(arguments.bucket or "s3://vetreport")
    if target.scheme != "s3" or not target.netloc:
        print("--s3 needs --bucket s3://NAME (default s3://vetreport)", file=sys.stderr)
        return EXIT_USAGE
    config = None
    if arguments.identities:
        folder = Path(arguments.identities)
        config = folder / "seaweedfs" / "s3.json"
        keys = read_keys(folder / CREDENTIALS_FILE).get(PIPELINE_NAME)
        if not config.is_file() or keys is None:
            print(f"{folder} holds no identities from `vetreport identities`", file=sys.stderr)
            return EXIT_USAGE
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = keys
    else:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "vetreport-local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "vetreport-local")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    data = load_settings().var_dir.resolve() / "seaweedfs"
    try:
        server = start_seaweedfs(
            data, s3_config=config, s3_port=arguments.s3_port, die_with_parent=True
        )
    except SeaweedUnavailable as error:
        print(f"SeaweedFS did not start: {error}", file=sys.stderr)
        return 1
    try:
        os.environ["VETREPORT_S3_ENDPOINT_URL"] = server.endpoint
        os.environ["VETREPORT_S3_ADDRESSING"] = "path"
        os.environ.setdefault("VETREPORT_SWEEP_SECONDS", "10")
        ensure_bucket(server.endpoint, target.netloc, versioned=True)
        arguments.bucket = f"s3://{target.netloc}{target.path}".rstrip("/")
        arguments.watch = False
        print(f"SeaweedFS S3: {server.endpoint} (data in {data})")
        if arguments.demo_data:
            from vetreport.demo.generator import write_demo_uploads

            written, unchanged = write_demo_uploads(arguments.bucket, arguments.seed)
            print(f"demo uploads: {written} written, {unchanged} unchanged")
        return command_serve(arguments)
    finally:
        server.stop()


def command_portal(arguments: argparse.Namespace) -> int:
    """Serve the school portal, or issue a school's sign-in secret."""
    store_url = _store_url(arguments.bucket)
    if arguments.action == "issue-token":
        if not arguments.school:
            print("usage: vetreport portal issue-token SCHOOL", file=sys.stderr)
            return EXIT_USAGE
        from vetreport.bucket.store import open_store
        from vetreport.curate.ingest import registry_codes
        from vetreport.portal.tokens import TokenError, issue_token

        store = open_store(store_url)
        registries = [registry_codes(store, year) for year in load_settings().open_year_set()]
        known = [codes for codes in registries if codes is not None]
        if known and not any(arguments.school in codes for codes in known):
            print(f"{arguments.school} is in no open year's school registry", file=sys.stderr)
            return EXIT_USAGE
        try:
            secret = issue_token(store, arguments.school)
        except TokenError as error:
            print(str(error), file=sys.stderr)
            return EXIT_USAGE
        print(f"学校 {arguments.school} 的门户登录口令 / portal secret: {secret}")
        print("Hand it to the school; any earlier secret of this school no longer works.")
        return 0
    from vetreport.portal.server import serve_portal

    port = arguments.port or load_settings().portal_port
    print(f"school portal / 学校门户: http://{arguments.host}:{port} (bucket {store_url})")
    serve_portal(store_url, arguments.host, port)
    return 0


def _start_portal(store_url: str, host: str) -> None:
    """Start the school portal in a thread beside the service (``vetreport up``)."""
    from vetreport.portal.server import start_portal_thread

    _server, address = start_portal_thread(store_url, host)
    print(f"school portal / 学校门户: {address}")


def command_receive(arguments: argparse.Namespace) -> int:
    """Run the HTTP receiver that turns S3/MinIO notifications into upload events."""
    from vetreport.receive.events import make_receiver

    token = arguments.token or load_settings().receiver_token
    if not token:
        print("the receiver needs --token or VETREPORT_RECEIVER_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    server = make_receiver(arguments.host, arguments.port, token)
    print(f"receiving S3 notifications on http://{arguments.host}:{arguments.port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()
    return 0


def command_status(arguments: argparse.Namespace) -> int:
    """Print the completeness matrix (school x dataset) of a year."""
    from rich.table import Table

    from flows.pipeline import latest_upload_year
    from vetreport.bucket.store import open_store
    from vetreport.curate.completeness import as_grid, completeness_matrix, ladder_counts
    from vetreport.publish.reader import read_pointer

    store_url = _store_url(arguments.bucket)
    year = arguments.year or latest_upload_year(store_url)
    if year is None:
        print("no uploads in the bucket", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(store_url)
    long = completeness_matrix(store, year)
    matrix = as_grid(long)
    pointer = read_pointer(store, year) or {}
    title = f"{year} 提交情况 / completeness"
    if pointer:
        title += f" — 已发布 v{pointer.get('version')} ({pointer.get('status')})"
    table = Table(title=title)
    colours = {
        "已接收": "green",
        "有警告": "yellow",
        "有警告（待说明）": "yellow",
        "有警告（已说明）": "green",
        "已退回": "red",
        "未提交": "dim",
        "已提交": "cyan",
        "有错误": "red",
        "待说明": "yellow",
        "已确认": "green",
        "已锁定": "bold green",
        "修订中": "magenta",
    }
    for column in matrix.columns:
        table.add_column(column)
    for row in matrix.iter_rows():
        table.add_row(
            *(
                f"[{colours[value]}]{value}[/]" if value in colours else str(value or "")
                for value in row
            )
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    if "状态" in matrix.columns:
        counts = ladder_counts(long)
        console.print(
            "  ".join(f"{row['状态']} {row['school_count']}" for row in counts.to_dicts())
        )
    return 0


def command_signoff(arguments: argparse.Namespace) -> int:
    """An operator signs off a school's year (as the school's signoff.json upload would)."""
    from vetreport.bucket.store import open_store
    from vetreport.curate.collection import sign_off
    from vetreport.curate.school_index import write_school_index

    store = open_store(_store_url(arguments.bucket))
    outcome = sign_off(store, arguments.year, arguments.school, by=arguments.by)
    write_school_index(store, arguments.year, arguments.school)
    print(f"{arguments.school} {arguments.year}: {outcome.status.state_zh}")
    for reason in outcome.refusals:
        print(f"  {reason['rule_id']}: {reason.get('detail_zh') or reason['detail']}")
    return EXIT_REJECTED if outcome.refusals else EXIT_ACCEPTED


def command_reopen(arguments: argparse.Namespace) -> int:
    """Reopen a locked year (the reopen-school flow): held uploads are ingested as revisions."""
    from flows.collection import reopen_school

    try:
        result = reopen_school(
            _store_url(arguments.bucket), arguments.year, arguments.school, arguments.note
        )
    except ValueError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    print(f"{arguments.school} {arguments.year}: {result['state']}, ingested {result['ingested']}")
    return 0


def command_explanations(arguments: argparse.Namespace) -> int:
    """Write the school's pre-filled explanations file (one row per current warning)."""
    from vetreport.bucket.store import open_store
    from vetreport.curate.collection import explanations_csv, read_school_status

    store = open_store(_store_url(arguments.bucket))
    body = explanations_csv(read_school_status(store, arguments.year, arguments.school))
    if arguments.out:
        Path(arguments.out).write_bytes(body)
    else:
        sys.stdout.write(body.decode("utf-8-sig"))
    return 0


def command_identities(arguments: argparse.Namespace) -> int:
    """Write the S3 identities of a registry: SeaweedFS, MinIO and AWS IAM renderings."""
    from urllib.parse import urlparse

    from vetreport.bucket.identities import RegistryError, write_identities
    from vetreport.settings import parse_years

    registry = Path(arguments.registry)
    if not registry.is_file():
        print(f"no such registry file: {registry}", file=sys.stderr)
        return EXIT_USAGE
    bucket = arguments.bucket_name
    if not bucket:
        configured = urlparse(load_settings().bucket)
        bucket = configured.netloc if configured.scheme == "s3" else "vetreport"
    if arguments.every_year:
        years = None
    else:
        years = parse_years(arguments.years) if arguments.years else load_settings().open_year_set()
    out = Path(arguments.out)
    try:
        issued = write_identities(registry.read_bytes(), out, bucket, years)
    except RegistryError as error:
        print(f"{registry}: {error}", file=sys.stderr)
        return EXIT_USAGE
    schools = sum(1 for principal in issued if principal.school_code)
    span = "every year" if years is None else ", ".join(str(year) for year in sorted(years))
    print(
        f"{schools} schools, the bureau and the pipeline on bucket {bucket} ({span}):\n"
        f"  {out / 'credentials.csv'}  (secrets: give each school its own row only)\n"
        f"  {out / 'seaweedfs' / 's3.json'}  (weed server -s3 -s3.config=...)\n"
        f"  {out / 'minio'}/  (policies/*.json and setup.sh: mc admin policy/user)\n"
        f"  {out / 'aws' / 'policies'}/  (IAM policy per identity)"
    )
    return 0


def command_reconcile(arguments: argparse.Namespace) -> int:
    """Compare computed figures with a reference file and list every difference (exit 0)."""
    from vetreport.publish.reconcile import (
        computed_values,
        differences,
        load_reference,
        reconcile,
        summary_counts,
    )

    values, source = computed_values(_store_url(arguments.bucket), arguments.year)
    # The report year's values cover every year its tables show: compare every figure.
    result = reconcile(values, load_reference(arguments.reference))
    shown = result if arguments.all else differences(result)
    if arguments.json:
        document = {
            "year": arguments.year,
            "reference": str(arguments.reference),
            "computed_from": source,
            "counts": summary_counts(result),
            "figures": shown.to_dicts(),
        }
        print(json.dumps(document, ensure_ascii=False, indent=2, default=str))
        return 0
    from vetreport.cli.terminal import render_reconciliation

    render_reconciliation(shown, summary_counts(result), source, Console())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="vetreport", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline on the demo data")
    demo.add_argument("--bucket", help="bucket folder or s3:// URL (default var/bucket)")
    demo.add_argument("--year", type=int, help="report year (default: the latest uploaded)")
    demo.add_argument("--seed", type=int, default=2023)
    demo.set_defaults(handler=command_demo)

    demo_data = commands.add_parser("demo-data", help="write the demo uploads to a folder")
    demo_data.add_argument("--out", required=True)
    demo_data.add_argument("--seed", type=int, default=2023)
    demo_data.add_argument(
        "--national",
        action="store_true",
        help="a synthetic national collection (31 provinces) instead of the Shaoxing demo",
    )
    demo_data.add_argument("--schools", type=int, help="with --national: schools (default 7000)")
    demo_data.add_argument(
        "--years", help="with --national: years separated by commas (default 2021,2022,2023)"
    )
    demo_data.set_defaults(handler=command_demo_data)

    run = commands.add_parser("run", help="ingest, aggregate and publish a bucket")
    run.add_argument("--bucket")
    run.add_argument("--year", type=int)
    run.set_defaults(handler=command_run)

    backfill = commands.add_parser(
        "backfill", help="ingest a bucket as shard runs on a work pool, then publish once"
    )
    backfill.add_argument("--bucket")
    backfill.add_argument("--year", type=int, help="report year (default: the latest uploaded)")
    backfill.add_argument(
        "--only-year", type=int, help="ingest only this year's uploads (default: every year)"
    )
    backfill.add_argument(
        "--workers",
        type=int,
        default=0,
        help="local process workers to start for the run (default 0: workers already polling)",
    )
    backfill.add_argument("--pool", default="vetreport", help="work pool (default vetreport)")
    backfill.add_argument("--schools-per-shard", type=int, default=50)
    backfill.add_argument(
        "--batch-size", type=int, default=None, help="keys per ingest task (default 2048)"
    )
    backfill.add_argument("--final", action="store_true", help="publish the final version")
    backfill.set_defaults(handler=command_backfill)

    validate = commands.add_parser("validate", help="validate files on disk")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--dataset")
    validate.add_argument("--school")
    validate.add_argument("--year", type=int)
    validate.add_argument("--json", action="store_true")
    validate.add_argument("--html", metavar="OUT", help="write the HTML report (file or folder)")
    validate.add_argument(
        "--workbook", metavar="OUT", help="write the annotated workbook (file or folder)"
    )
    validate.set_defaults(handler=command_validate)

    templates = commands.add_parser("templates", help="write the blank Excel template of a year")
    templates.add_argument("--year", type=int, required=True)
    templates.add_argument("--out", help="folder to write template_{year}.xlsx to")
    templates.add_argument("--bucket", help="bucket to write templates/{year}/ to")
    templates.set_defaults(handler=command_templates)

    dictionary = commands.add_parser("dictionary", help="write the data dictionary (Markdown)")
    dictionary.add_argument("--out", help="file to write (default: standard output)")
    dictionary.set_defaults(handler=command_dictionary)

    docs = commands.add_parser("docs", help="rewrite every generated doc under docs/")
    docs.add_argument("--check", action="store_true", help="list stale docs, exit 1 if any")
    docs.set_defaults(handler=command_docs)

    tables = commands.add_parser("tables", help="list published versions or get a table")
    tables.add_argument("action", choices=["list", "get"])
    tables.add_argument("table", nargs="?")
    tables.add_argument("--year", type=int)
    tables.add_argument("--version", type=int, help="default: the latest version")
    tables.add_argument("--format", choices=["csv", "parquet", "xlsx"], default="csv")
    tables.add_argument("--out", help="file to write (default: standard output)")
    tables.add_argument(
        "--region",
        help="only this region's rows: 全国, 浙江省, 浙江省/绍兴市 (a report table in the "
        "region's own shape; other tables cut to the rows inside it)",
    )
    tables.add_argument("--bucket")
    tables.set_defaults(handler=command_tables)

    publish = commands.add_parser("publish", help="aggregate and publish a year")
    publish.add_argument("--year", type=int, required=True)
    publish.add_argument(
        "--final", action="store_true", help="publish the final version (later: revisions)"
    )
    publish.add_argument("--bucket")
    publish.set_defaults(handler=command_publish)

    report = commands.add_parser("report", help="build or check the report document (.docx)")
    report_actions = report.add_subparsers(dest="action", required=True)
    report_build = report_actions.add_parser(
        "build", help="write report.docx (and report.pdf) into the latest published version"
    )
    report_build.add_argument("--year", type=int, required=True)
    report_build.add_argument("--template", help="a .docx template (default: the default one)")
    report_build.add_argument("--version", type=int, help="default: the latest version")
    report_build.add_argument("--city", help="the city, when the bucket has several")
    report_build.add_argument("--no-pdf", action="store_true", help="do not make report.pdf")
    report_build.add_argument(
        "--out", help="write the .docx to this file instead of into the version (a draft)"
    )
    report_build.add_argument("--bucket")
    report_build.set_defaults(handler=command_report_build)
    report_check = report_actions.add_parser(
        "check", help="list every number of a .docx that disagrees with the published data"
    )
    report_check.add_argument("file", help="the report as edited (.docx)")
    report_check.add_argument("--year", type=int, required=True)
    report_check.add_argument("--version", type=int, help="default: the latest version")
    report_check.add_argument("--city", help="the city, when the bucket has several")
    report_check.add_argument(
        "--expected", help="CSV of indicator_id,year,printed the check should flag: prints recall"
    )
    report_check.add_argument(
        "--all", action="store_true", help="also list numbers without data or not checked"
    )
    report_check.add_argument("--bucket")
    report_check.set_defaults(handler=command_report_check)

    reconcile = commands.add_parser("reconcile", help="compare computed figures with a reference")
    reconcile.add_argument("--year", type=int, required=True)
    reconcile.add_argument("--reference", required=True, help="CSV like seed_figures.csv")
    reconcile.add_argument("--bucket")
    reconcile.add_argument("--json", action="store_true")
    reconcile.add_argument(
        "--all", action="store_true", help="list every figure, not only differences"
    )
    reconcile.set_defaults(handler=command_reconcile)

    server = commands.add_parser("server", help="start or stop the local Prefect server")
    server.add_argument("action", choices=["start", "stop"])
    server.set_defaults(handler=command_server)

    serve = commands.add_parser("serve", help="serve the event-driven deployments")
    serve.add_argument("--bucket")
    serve.add_argument("--watch", action="store_true", help="watch a local bucket's uploads/")
    serve.add_argument("--sqs-queue-url", help="poll this SQS queue of S3 notifications")
    serve.add_argument("--receiver-port", type=int, help="also run the HTTP receiver")
    serve.add_argument("--token", help="shared token of the receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--create-bucket",
        action="store_true",
        help="create the s3:// bucket (versioned) if missing",
    )
    serve.set_defaults(handler=command_serve)

    up = commands.add_parser("up", help="server, deployments and watcher on the local bucket")
    up.add_argument("--bucket", help="folder (default var/bucket); with --s3 s3://NAME")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--s3", action="store_true", help="the bucket on a local SeaweedFS")
    up.add_argument("--s3-port", type=int, default=8333, help="SeaweedFS's S3 port (--s3)")
    up.add_argument("--identities", help="folder from `vetreport identities`: enforce them (--s3)")
    up.add_argument("--demo-data", action="store_true", help="write the demo uploads first (--s3)")
    up.add_argument("--seed", type=int, default=2023)
    up.add_argument(
        "--no-portal", action="store_true", help="do not start the school portal beside it"
    )
    up.set_defaults(handler=command_up)

    portal = commands.add_parser("portal", help="the school portal, or a school's secret")
    portal.add_argument("action", nargs="?", choices=["serve", "issue-token"], default="serve")
    portal.add_argument("school", nargs="?", help="school code (issue-token)")
    portal.add_argument("--bucket", help="folder (default var/bucket) or s3://NAME")
    portal.add_argument("--host", default="127.0.0.1")
    portal.add_argument("--port", type=int, help="default VETREPORT_PORTAL_PORT (4290)")
    portal.set_defaults(handler=command_portal)

    receive = commands.add_parser("receive", help="HTTP receiver for S3/MinIO notifications")
    receive.add_argument("--port", type=int, default=8787)
    receive.add_argument("--token")
    receive.add_argument("--host", default="127.0.0.1")
    receive.set_defaults(handler=command_receive)

    identities = commands.add_parser(
        "identities", help="S3 identities and policies: one per school, bureau, pipeline"
    )
    identities.add_argument("--registry", required=True, help="school registry CSV")
    identities.add_argument("--out", required=True, help="folder to write into")
    identities.add_argument(
        "--bucket-name",
        help="bucket the policies name (default: VETREPORT_BUCKET's, else vetreport)",
    )
    span = identities.add_mutually_exclusive_group()
    span.add_argument("--years", help="years schools may upload for (default VETREPORT_OPEN_YEARS)")
    span.add_argument(
        "--every-year", action="store_true", help="any year (uploads/????/CODE/), no renewal"
    )
    identities.set_defaults(handler=command_identities)

    status = commands.add_parser("status", help="print the completeness matrix of a year")
    status.add_argument("--year", type=int)
    status.add_argument("--bucket")
    status.set_defaults(handler=command_status)

    signoff = commands.add_parser("signoff", help="sign off a school's year for it (operator)")
    signoff.add_argument("school")
    signoff.add_argument("--year", type=int, required=True)
    signoff.add_argument("--by", default="operator", help="who signs off (recorded)")
    signoff.add_argument("--bucket")
    signoff.set_defaults(handler=command_signoff)

    reopen = commands.add_parser("reopen", help="reopen a school's locked year for revision")
    reopen.add_argument("school")
    reopen.add_argument("--year", type=int, required=True)
    reopen.add_argument("--note", default="", help="why (shown to the school)")
    reopen.add_argument("--bucket")
    reopen.set_defaults(handler=command_reopen)

    explain = commands.add_parser(
        "explanations", help="a school's pre-filled explanations file (one row per warning)"
    )
    explain.add_argument("school")
    explain.add_argument("--year", type=int, required=True)
    explain.add_argument("--out")
    explain.add_argument("--bucket")
    explain.set_defaults(handler=command_explanations)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vetreport`` command."""
    # The runtime sends nothing off the machine: no Prefect usage telemetry (set
    # DO_NOT_TRACK=0 to allow it). Set before Prefect is imported.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_ACCEPTED
    if (
        arguments.command == "tables"
        and arguments.action == "get"
        and not (arguments.table and arguments.year)
    ):
        parser.error("tables get needs TABLE and --year")
    from vetreport.serve.prefect_server import ServerConflict

    try:
        return int(arguments.handler(arguments) or 0)
    except ServerConflict as error:
        Console(stderr=True, soft_wrap=True).print(
            f"vetreport: {error}", style="bold red", markup=False
        )
        return EXIT_SERVER_CONFLICT


if __name__ == "__main__":
    sys.exit(main())
