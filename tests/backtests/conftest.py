"""The demo bucket published once through the Prefect flows, shared by the backtests."""

from __future__ import annotations

import pytest

from vetreport.demo.generator import write_demo_uploads


@pytest.fixture(scope="package")
def published(prefect_server, tmp_path_factory) -> dict:
    """The demo uploads of 2021–2023 run through the pipeline twice (the second changes
    nothing); the flow also builds report.docx into the version."""
    from flows.pipeline import run_pipeline

    store_url = str(tmp_path_factory.mktemp("backtest") / "bucket")
    write_demo_uploads(store_url, seed=2023)
    first = run_pipeline(store_url, 2023)
    second = run_pipeline(store_url, 2023)
    return {"store_url": store_url, "first": first, "second": second}
