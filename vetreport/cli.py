"""The ``vetreport`` command line.

What belongs here: parsing arguments and calling the package or the flows; no data logic.
Commands:

    vetreport demo [--bucket DIR]          demo uploads -> Prefect flows -> published tables
    vetreport demo-data --out DIR          write the demo uploads as files (bucket layout)
    vetreport run --bucket URL [--year Y]  run the pipeline on a bucket
    vetreport validate FILE...             validate files on disk, no bucket or server
    vetreport tables list|get              read published tables
    vetreport server start|stop            the local Prefect server of the embedded default
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

DEFAULT_BUCKET = Path("var/bucket")
EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _store_url(value: str | None) -> str:
    text = value or os.environ.get("VETREPORT_BUCKET") or str(DEFAULT_BUCKET)
    if "://" in text:
        return text
    path = Path(text).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def write_demo_uploads(store_url: str, seed: int) -> tuple[int, int]:
    """Put the demo uploads into a bucket as schools would; unchanged files are left alone."""
    import hashlib

    from vetreport.demo_data import build_demo_uploads
    from vetreport.storage import KeyNotFound, open_store

    store = open_store(store_url)
    written = unchanged = 0
    for key, body in sorted(build_demo_uploads(seed).items()):
        try:
            if store.head(key).etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
                unchanged += 1
                continue
        except KeyNotFound:
            pass
        store.put(key, body)
        written += 1
    return written, unchanged


def command_demo(arguments: argparse.Namespace) -> int:
    """Run the whole pipeline on the demo data and print the tables."""
    console = Console(width=max(Console().width, 120))
    store_url = _store_url(arguments.bucket)
    written, unchanged = write_demo_uploads(store_url, arguments.seed)
    console.print(f"demo uploads: {written} written, {unchanged} unchanged in {store_url}")
    from vetreport.prefect_server import ensure_server

    api = ensure_server()
    console.print(f"Prefect API: {api}")
    summary = _run_pipeline(store_url, arguments.year)
    _print_published(console, store_url, summary["publish"]["report_year"])
    ui = api.removesuffix("/api")
    console.print(f"\n已发布 / published: {store_url}/{summary['publish']['prefix']}")
    console.print(f"流程运行 / flow runs in the Prefect UI: {ui}/runs")
    console.print(f"校验报告 / validation reports: {store_url}/reports/")
    return 0


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
    from vetreport.aggregate import load_table_specs
    from vetreport.publish import read_table
    from vetreport.render import render_city_table
    from vetreport.storage import open_store

    store = open_store(store_url)
    for spec in load_table_specs():
        render_city_table(spec, read_table(store, spec.table_id, report_year), console)


def command_demo_data(arguments: argparse.Namespace) -> int:
    """Write the demo uploads into a folder laid out like the bucket."""
    written, unchanged = write_demo_uploads(_store_url(arguments.out), arguments.seed)
    print(f"{written} files written, {unchanged} unchanged under {arguments.out}")
    return 0


def command_run(arguments: argparse.Namespace) -> int:
    """Run the pipeline on a bucket against the configured or local Prefect server."""
    from vetreport.prefect_server import ensure_server

    ensure_server()
    _run_pipeline(_store_url(arguments.bucket), arguments.year)
    return 0


def command_validate(arguments: argparse.Namespace) -> int:
    """Validate files on disk and print their reports; exit 1 if any is rejected."""
    from vetreport.layout import LayoutError, parse_upload_key
    from vetreport.validation import REJECTED, UploadContext, build_report, validate_upload

    worst = EXIT_ACCEPTED
    reports = []
    for name in arguments.files:
        path = Path(name)
        if not path.is_file():
            print(f"no such file: {name}", file=sys.stderr)
            return EXIT_USAGE
        year, school, dataset = arguments.year, arguments.school, arguments.dataset
        parts = path.as_posix().split("/")
        try:
            upload = parse_upload_key("/".join(parts[parts.index("uploads") :]))
            year = year or upload.year
            school = school or upload.school_code
            dataset = dataset or (None if upload.is_workbook else upload.stem)
        except (ValueError, LayoutError):
            dataset = dataset or (path.stem if path.stem != "workbook" else None)
        extension = path.suffix.lower().lstrip(".")
        if extension not in ("csv", "xlsx", "parquet"):
            print(f"{name}: only .csv, .xlsx and .parquet files are accepted", file=sys.stderr)
            return EXIT_USAGE
        context = UploadContext(str(path), year, school, dataset, extension)
        report = build_report(validate_upload(path.read_bytes(), context), context, None)
        reports.append(report)
        if report["outcome"] == REJECTED:
            worst = EXIT_REJECTED
    if arguments.json:
        print(json.dumps(reports, ensure_ascii=False, indent=2, default=str))
    else:
        from vetreport.render import render_validation_report

        for report in reports:
            render_validation_report(report, Console())
    return worst


def command_tables(arguments: argparse.Namespace) -> int:
    """List or read published tables."""
    from vetreport.publish import read_pointer, read_table
    from vetreport.storage import open_store

    store = open_store(_store_url(arguments.bucket))
    if arguments.action == "list":
        years = sorted(
            {
                int(info.key.split("/")[1])
                for info in store.list("published/")
                if info.key.endswith("latest.json")
            }
        )
        for year in years:
            if arguments.year and year != arguments.year:
                continue
            pointer = read_pointer(store, year) or {}
            print(f"{year} v{pointer.get('version')} {pointer.get('status')}")
        return 0
    frame = read_table(store, arguments.table, arguments.year, arguments.version)
    if arguments.format == "parquet":
        frame.write_parquet(sys.stdout.buffer)
    else:
        frame.write_csv(sys.stdout)
    return 0


def command_server(arguments: argparse.Namespace) -> int:
    """Start or stop the local Prefect server."""
    from vetreport.prefect_server import ensure_server, stop_server

    if arguments.action == "start":
        print(ensure_server())
    else:
        print("stopped" if stop_server() else "no server started by vetreport is running")
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
    demo_data.set_defaults(handler=command_demo_data)

    run = commands.add_parser("run", help="ingest, aggregate and publish a bucket")
    run.add_argument("--bucket")
    run.add_argument("--year", type=int)
    run.set_defaults(handler=command_run)

    validate = commands.add_parser("validate", help="validate files on disk")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--dataset")
    validate.add_argument("--school")
    validate.add_argument("--year", type=int)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(handler=command_validate)

    tables = commands.add_parser("tables", help="read published tables")
    tables.add_argument("action", choices=["list", "get"])
    tables.add_argument("table", nargs="?")
    tables.add_argument("--year", type=int)
    tables.add_argument("--version", type=int)
    tables.add_argument("--format", choices=["csv", "parquet"], default="csv")
    tables.add_argument("--bucket")
    tables.set_defaults(handler=command_tables)

    server = commands.add_parser("server", help="start or stop the local Prefect server")
    server.add_argument("action", choices=["start", "stop"])
    server.set_defaults(handler=command_server)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vetreport`` command."""
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
    return int(arguments.handler(arguments) or 0)


if __name__ == "__main__":
    sys.exit(main())
