"""The whole pipeline in one flow run: sweep the uploads, ingest, aggregate and publish.

This is what ``make demo`` and ``vetreport run`` start. The event-driven service runs the
same pieces as separate deployments.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.aggregate import aggregate_and_publish
from flows.collection import announce_signoffs_again
from flows.ingest import sweep_uploads
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import upload_years
from vetreport.curate.school_index import write_every_school_index


def latest_upload_year(store_url: str) -> int | None:
    """The most recent year that has anything under uploads/."""
    years = upload_years(open_store(store_url))
    return max(years) if years else None


@flow(name="pipeline", flow_run_name="pipeline-{report_year}", log_prints=True)
def run_pipeline(store_url: str, report_year: int, status: str | None = None) -> dict[str, Any]:
    """Ingest every unprocessed upload, then aggregate and publish the report year."""
    ingested = sweep_uploads(store_url)
    summary = aggregate_and_publish(store_url, report_year, status)
    outcomes: dict[str, int] = {}
    for result in ingested:
        outcomes[result["outcome"]] = outcomes.get(result["outcome"], 0) + 1
    return {"ingested": len(ingested), "outcomes": outcomes, "publish": summary}


@task(name="refresh-school-indexes", retries=2, retry_delay_seconds=[5, 30])
def refresh_school_indexes(store_url: str) -> int:
    """Rewrite every school's upload list (an ingest race may have left one stale)."""
    return write_every_school_index(open_store(store_url))


@flow(name="rebuild", flow_run_name="rebuild-nightly", log_prints=True)
def rebuild(store_url: str) -> dict[int, dict[str, Any]]:
    """The nightly rebuild: sweep, then aggregate every year with uploads.

    Publishing stays change-only, so a night without changes publishes nothing; it
    catches whatever an event missed and picks up catalogue changes. Last, a sign-off that
    no approval run waits on (its event lost) is announced again, so the bureau gets its
    form by the next morning.
    """
    sweep_uploads(store_url)
    refresh_school_indexes(store_url)
    # every year in turn, oldest first, so no year needs to cascade to the later ones
    summaries = {
        year: aggregate_and_publish(store_url, year, include_later_years=False)
        for year in upload_years(open_store(store_url))
    }
    announce_signoffs_again(store_url)
    return summaries
