"""The aggregate flow: current accepted submissions in, a published version out if changed.

Aggregation reads the ledger and curated zone of the report year and the years its tables
show, computes every indicator, and hands the tables to the publish step, which writes a
new version only when the numbers differ from the latest one.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.ingest import retry_on_storage_errors
from vetreport.aggregate import AggregateResult, aggregate
from vetreport.publish import PROVISIONAL, publish
from vetreport.storage import open_store


@task(
    name="aggregate-year",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_on_storage_errors,
)
def aggregate_year(store_url: str, report_year: int) -> AggregateResult:
    """Compute the report year's indicators and tables."""
    return aggregate(open_store(store_url), report_year)


@task(
    name="publish-version",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_on_storage_errors,
)
def publish_version(store_url: str, result: AggregateResult, status: str) -> dict[str, Any]:
    """Publish the tables as a new version when they changed."""
    published = publish(open_store(store_url), result, status)
    return {
        "report_year": published.report_year,
        "version": published.version,
        "is_new_version": published.is_new_version,
        "prefix": published.prefix,
        "tables": {
            name: entry["row_count"] for name, entry in published.manifest["tables"].items()
        },
    }


@flow(name="aggregate", flow_run_name="aggregate-{report_year}", log_prints=True)
def aggregate_and_publish(
    store_url: str, report_year: int, status: str = PROVISIONAL
) -> dict[str, Any]:
    """Aggregate a report year and publish it if anything changed."""
    logger = get_run_logger()
    result = aggregate_year(store_url, report_year)
    summary = publish_version(store_url, result, status)
    verb = "published" if summary["is_new_version"] else "unchanged; still"
    logger.info("%s: %s v%s at %s", report_year, verb, summary["version"], summary["prefix"])
    if summary["is_new_version"]:
        create_markdown_artifact(
            key=f"publish-{report_year}",
            markdown=(
                f"# {report_year} v{summary['version']} ({status})\n\n"
                f"Published at `{store_url}/{summary['prefix']}`\n\n"
                + "\n".join(f"- {name}: {rows} rows" for name, rows in summary["tables"].items())
            ),
        )
    return summary
