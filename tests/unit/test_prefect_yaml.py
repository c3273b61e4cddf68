"""infra/prefect.yaml names flows that exist, and the backfill's deployments as the code does."""

from __future__ import annotations

import importlib

import yaml
from prefect import Flow

from flows.backfill import backfill_deployments
from vetreport.paths import REPOSITORY_ROOT


def yaml_deployments() -> list[dict]:
    text = (REPOSITORY_ROOT / "infra" / "prefect.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["deployments"]


def load(entrypoint: str) -> Flow:
    """A flow from ``flows/x.py:name`` (as prefect.yaml names it) or ``flows.x.name``."""
    if ":" in entrypoint:
        path, name = entrypoint.split(":")
        module = path.removesuffix(".py").replace("/", ".")
    else:
        module, name = entrypoint.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_every_entrypoint_is_a_flow() -> None:
    for deployment in yaml_deployments():
        assert isinstance(load(deployment["entrypoint"]), Flow), deployment["name"]


def test_the_backfill_deployments_match_the_registered_ones() -> None:
    in_yaml = {
        f"{load(d['entrypoint']).name}/{d['name']}": load(d["entrypoint"])
        for d in yaml_deployments()
    }
    registered = backfill_deployments("vetreport")
    assert {d.entrypoint for d in registered} == {
        "flows.backfill.ingest_shard",
        "flows.backfill.backfill",
    }
    for deployment in registered:
        name = f"{deployment.flow_name}/{deployment.name}"
        assert name in in_yaml
        assert in_yaml[name] is load(deployment.entrypoint)
        assert deployment.work_pool_name == "vetreport"
    assert "ingest-shard/backfill" in in_yaml  # what the backfill flow starts by default
