"""Shards of a backfill: the schools' upload keys cut into pieces that workers share.

What belongs here: deciding, without Prefect, which keys go together into one shard. A
shard holds whole schools (every key of a school, in every year, is in the same shard), so
two workers never write one school's upload list (``reports/{year}/{school}/index.html``)
or ledger folder at the same time, and a school's files are validated in the same batches
whatever the number of workers. The cut is deterministic: the same keys and shard size
always give the same shards, named the same, so a re-run of a backfill over the same
unprocessed keys starts the same shards.

The bureau's files (``uploads/{year}/_city/``) are not sharded: they decide which school
codes count, so the backfill ingests them itself before any shard starts
(``vetreport.curate.ingest.split_city_first``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from vetreport.bucket.keys import key_owner

# Keys that name no school (their path breaks the layout before the school part) are
# kept together, under this pseudo school, in the shard of the first schools.
NO_SCHOOL = ""
# A spawned process imports Prefect, Polars and Pandera before its first batch: 3 to 6 s of
# CPU on this project's 2-core reference machine, about what ingesting 1,000 uploads takes.
# A sweep takes a second process from this many uploads on (docs/benchmarks.md).
KEYS_PER_PROCESS = 4096


@dataclass(frozen=True)
class Shard:
    """One piece of a backfill: a run of whole schools and every key they uploaded."""

    index: int  # 1-based
    count: int  # shards in the backfill
    schools: tuple[str, ...]
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        """``shard-03-of-12``: sortable, and the same for the same keys and shard size."""
        width = len(str(self.count))
        return f"shard-{self.index:0{width}d}-of-{self.count}"

    @property
    def label(self) -> str:
        """The name with the first and last school: what an operator sees in the UI."""
        first, last = self.schools[0] or "no-school", self.schools[-1] or "no-school"
        span = first if first == last else f"{first}-{last}"
        return f"{self.name}-{span}"


def school_of(key: str) -> str:
    """The school (submitter) a key belongs to, or ``NO_SCHOOL`` when it names none."""
    owner = key_owner(key)
    return NO_SCHOOL if owner is None else owner[1]


def shard_by_school(keys: list[str], schools_per_shard: int) -> list[Shard]:
    """Cut keys into shards of up to ``schools_per_shard`` whole schools, in school order.

    Schools are ordered by code and keys within a shard by key, so the result depends only
    on the set of keys and the shard size.
    """
    if schools_per_shard < 1:
        raise ValueError(f"schools_per_shard must be at least 1, not {schools_per_shard}")
    by_school: dict[str, list[str]] = {}
    for key in set(keys):
        by_school.setdefault(school_of(key), []).append(key)
    schools = sorted(by_school)
    groups = [
        schools[start : start + schools_per_shard]
        for start in range(0, len(schools), schools_per_shard)
    ]
    return [
        Shard(
            index=number,
            count=len(groups),
            schools=tuple(group),
            keys=tuple(sorted(key for school in group for key in by_school[school])),
        )
        for number, group in enumerate(groups, start=1)
    ]


def whole_school_batches(keys: list[str], size: int) -> list[list[str]]:
    """Keys in batches of about ``size``, never splitting a school across two batches.

    A shard's batches, and a sweep's, run side by side; each ends by rewriting the upload
    list of every school it touched, so a school in two concurrent batches could have its
    list written from a ledger that lacks the other batch's records. Whole schools per batch
    rule that out. A batch closes once it holds ``size`` keys or more (one large school may
    exceed it). A key given twice stays twice, in the same batch (ingest answers each: the
    second is skipped as already processed).
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    by_school: dict[str, list[str]] = {}
    for key in sorted(keys):
        by_school.setdefault(school_of(key), []).append(key)
    batches: list[list[str]] = []
    batch: list[str] = []
    for school in sorted(by_school):
        batch.extend(by_school[school])
        if len(batch) >= size:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def batch_processes(batches: list[list[str]], setting: int) -> int:
    """How many processes a sweep's batches run on.

    ``setting`` is ``VETREPORT_INGEST_PROCESSES``: a number of processes, or 0 for one
    per CPU where the sweep is large enough to pay for them (``KEYS_PER_PROCESS`` keys
    each). Never more processes than batches, and 1 means the sweep's own process.
    """
    if setting:
        wanted = setting
    else:
        keys = sum(len(batch) for batch in batches)
        wanted = min(os.cpu_count() or 1, math.ceil(keys / KEYS_PER_PROCESS))
    return max(1, min(wanted, len(batches)))
