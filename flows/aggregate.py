"""The aggregate flow: current accepted submissions in, a published version out if changed.

Aggregation reads the ledger and curated zone of the report year and the years its tables
show, computes every indicator, and hands the tables to the publish step, which writes a
new version only when the numbers differ from the latest one.

In the service, accepted-submission events start it (debounced by the deployment trigger),
and a global concurrency limit named ``aggregate-{year}`` lets one run per year work at a
time. Without an explicit status it publishes provisional versions before the year's
collection deadline and final ones (revisions) after it. A year's run also aggregates the
published later years whose tables show that year.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.ingest import artifact_key, retry_on_storage_errors, tag_flow_run
from vetreport.aggregate.compute import AggregateResult, aggregate
from vetreport.aggregate.school_feedback import PEER_GROUP_MINIMUM
from vetreport.bucket.store import StoreError, open_store
from vetreport.curate.completeness import as_grid, ladder_counts
from vetreport.curate.school_index import write_history_and_indexes
from vetreport.publish.policy import status_for
from vetreport.publish.reader import later_years_showing
from vetreport.publish.summary import version_markdown
from vetreport.publish.writer import publish
from vetreport.school.numbers_page import write_school_numbers
from vetreport.settings import load_settings

AGGREGATE_LIMIT_PREFIX = "aggregate-"
# Every task of this flow reads or writes the bucket: retry transient storage failures only.
STORAGE_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [5, 30],
    "retry_condition_fn": retry_on_storage_errors,
}


@task(
    name="aggregate-year",
    **STORAGE_RETRIES,
)
def aggregate_year(store_url: str, report_year: int) -> AggregateResult:
    """Compute the report year's indicators and tables."""
    return aggregate(open_store(store_url), report_year)


@task(
    name="write-history-reports",
    **STORAGE_RETRIES,
)
def write_school_history(store_url: str, result: AggregateResult) -> int:
    """Write each school's changes beyond tolerance back to it as history warnings.

    A school whose warnings changed has its index page and pre-filled explanations file
    rewritten too, so that what it is asked to explain is what now stands.
    """
    changed = write_history_and_indexes(
        open_store(store_url), result.history_findings, result.report_year, result.schools_in_year
    )
    return len(changed)


@task(
    name="write-school-numbers",
    **STORAGE_RETRIES,
)
def write_school_numbers_pages(store_url: str, result: AggregateResult) -> int:
    """Show each school its own indicators beside its city and peers, before publication."""
    return write_school_numbers(
        open_store(store_url),
        result.school_feedback,
        result.history_findings,
        result.report_year,
        PEER_GROUP_MINIMUM,
    )


@task(
    name="publish-version",
    **STORAGE_RETRIES,
)
def publish_version(store_url: str, result: AggregateResult, status: str) -> dict[str, Any]:
    """Publish the tables as a new version when they changed."""
    published = publish(open_store(store_url), result, status)
    return {
        "report_year": published.report_year,
        "version": published.version,
        "status": published.status,  # a change after a final is published as a revision
        "revision_of": published.revision_of,
        "is_new_version": published.is_new_version,
        "prefix": published.prefix,
        "tables": {
            name: entry["row_count"] for name, entry in published.manifest["tables"].items()
        },
    }


@task(name="build-report-document", **STORAGE_RETRIES)
def build_report_document(store_url: str, report_year: int, version: int) -> dict[str, Any]:
    """Write report.docx (and report.pdf if asked) into a new version of a one-city bucket.

    A bucket with several cities (a province's or the nation's) has no single city report:
    its documents are built per city with ``vetreport report build --city``.
    """
    from vetreport.publish.reader import read_table
    from vetreport.report.build import ReportTemplateError, publish_report
    from vetreport.report.pdf import PdfConversionError

    settings = load_settings()
    store = open_store(store_url)
    regions = read_table(store, "regions", report_year, version)
    cities = regions.filter(regions["region_level"] == "city").height
    if not settings.report_document or cities != 1:
        reason = "switched off" if not settings.report_document else f"{cities} cities"
        return {"built": False, "reason": reason}
    started = time.monotonic()
    try:
        built, _ = publish_report(
            store, report_year, settings.report_template, version, with_pdf=settings.report_pdf
        )
    except (ReportTemplateError, PdfConversionError) as error:
        # The tables are published; a template a writer broke must not fail the pipeline.
        get_run_logger().error("%s v%s: report.docx not built: %s", report_year, version, error)
        return {"built": False, "error": str(error)}
    except StoreError:
        raise  # the task's retry builds it (the version is published; the build is not)
    except Exception as error:  # a template that divides by zero, data it did not expect
        get_run_logger().exception("%s v%s: report.docx not built", report_year, version)
        return {"built": False, "error": f"{type(error).__name__}: {error}"}
    seconds = round(time.monotonic() - started, 1)
    get_run_logger().info(
        "%s v%s: report.docx built in %s s (%s figures, %s changed since the previous version)",
        report_year,
        version,
        seconds,
        len(built.values),
        len(built.changes),
    )
    return {
        "built": True,
        "values": len(built.values),
        "changed_figures": len(built.changes),
        "seconds": seconds,
    }


def _document_note(document: dict[str, Any] | None) -> str:
    """A line for the publish artifact when the report document could not be built."""
    if not document or "error" not in document:
        return ""
    return f"\n\n报告文档未生成 / report document not built: {document['error']}\n"


# The run renews its hold on the year's limit while it works; a run killed with its process
# stops renewing, and the year is free again this long after (Prefect's default: 300 s).
YEAR_LIMIT_LEASE_SECONDS = 60.0


def year_limit(report_year: int) -> str:
    """The name of the global concurrency limit that serialises one year's aggregations."""
    return f"{AGGREGATE_LIMIT_PREFIX}{report_year}"


def _ensure_year_limit(report_year: int) -> bool:
    """Create the year's limit (1 slot) if missing; False when there is no API to ask."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(year_limit(report_year), 1)
    except Exception:  # e.g. no server in a plain unit test: run unguarded
        return False
    return True


@flow(name="aggregate", flow_run_name="aggregate-{report_year}", log_prints=True)
def aggregate_and_publish(
    store_url: str,
    report_year: int,
    status: str | None = None,
    include_later_years: bool = True,
) -> dict[str, Any]:
    """Aggregate a report year and publish it if anything changed (one run per year at once).

    With ``include_later_years`` (the default), the published years after it whose tables
    show it are aggregated next, each under its own year's limit and publish status, so a
    corrected 2022 file also reaches the 2023 report's 2022 column. Their summaries are
    under ``later_years``.
    """
    logger = get_run_logger()
    summary = _one_year(store_url, report_year, status, logger)
    if include_later_years:
        later = later_years_showing(open_store(store_url), report_year)
        if later:
            logger.info("%s is shown by %s: aggregating them too", report_year, later)
        summary["later_years"] = {year: _one_year(store_url, year, None, logger) for year in later}
    return summary


def _one_year(store_url: str, report_year: int, status: str | None, logger: Any) -> dict[str, Any]:
    from prefect.concurrency.sync import concurrency

    if _ensure_year_limit(report_year):  # also means there is an API: tag the run
        tag_flow_run(f"year:{report_year}")
        with concurrency(
            year_limit(report_year), occupy=1, lease_duration=YEAR_LIMIT_LEASE_SECONDS
        ):
            return _aggregate_and_publish(store_url, report_year, status, logger)
    return _aggregate_and_publish(store_url, report_year, status, logger)


def _aggregate_and_publish(
    store_url: str, report_year: int, status: str | None, logger: Any
) -> dict[str, Any]:
    store = open_store(store_url)
    status = status or status_for(store, report_year)
    result = aggregate_year(store_url, report_year)
    logger.info(
        "%s: measures recomputed for %s schools whose submissions changed, %s from the cache",
        report_year,
        result.recomputed_school_count,
        result.reused_school_count,
    )
    write_school_history(store_url, result)
    write_school_numbers_pages(store_url, result)
    summary = publish_version(store_url, result, status)
    summary["recomputed_school_count"] = result.recomputed_school_count
    verb = "published" if summary["is_new_version"] else "unchanged; still"
    logger.info("%s: %s v%s at %s", report_year, verb, summary["version"], summary["prefix"])
    if summary["is_new_version"]:
        summary["report_document"] = build_report_document(
            store_url, report_year, summary["version"]
        )
    matrix = as_grid(result.completeness)
    counts = " · ".join(
        f"{row['状态']} {row['school_count']}"
        for row in ladder_counts(result.completeness).to_dicts()
    )
    create_table_artifact(
        key=artifact_key("completeness", report_year),
        table=matrix.to_dicts(),
        description=f"{report_year} 提交情况 / completeness (school × dataset): {counts}",
    )
    if summary["is_new_version"]:
        create_markdown_artifact(
            key=artifact_key("publish", report_year),
            markdown=version_markdown(store, report_year, summary["version"])
            + _document_note(summary.get("report_document")),
            description=f"{report_year} v{summary['version']}: what changed, with links",
        )
    return summary
