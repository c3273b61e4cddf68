"""Reading the curated zone: the rows of the submissions that count, each file read once.

What belongs here: turning a frame of current submissions (``ledger.current_submissions``:
one row per counting submission, with its dataset, submission id and ``curated_key``) into
the curated rows of those submissions, one frame per dataset. Writing curated files is
ingest's (``vetreport.curate.ingest``).

A curated Parquet file holds the rows of many submissions (one file per dataset, year and
ingest batch: ``bucket.keys.curated_key``), or of one in buckets curated before batches:
every row carries its ``submission_id``. So each distinct key is read once, however many submissions
name it, and only the rows of the submissions that count for that dataset are kept: a
file shared with a superseded or withdrawn submission never lets that submission's rows
back in.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from vetreport.bucket.store import ObjectStore

READ_THREADS = 16


def _kept_rows(body: bytes, submission_ids: frozenset[str]) -> pl.DataFrame:
    """The rows of one curated file that belong to the given submissions."""
    frame = pl.read_parquet(io.BytesIO(body))
    named = frame.get_column("submission_id")
    if named.null_count() == 0 and (frame.height == 0 or named.min() == named.max()):
        # One submission's file (the usual case): keep it whole or not at all.
        return frame if frame.height == 0 or named.min() in submission_ids else frame.clear()
    return frame.filter(pl.col("submission_id").is_in(sorted(submission_ids)))


def read_curated_rows(
    store: ObjectStore, current: pl.DataFrame, threads: int = READ_THREADS
) -> dict[str, pl.DataFrame]:
    """The curated rows of the submissions in ``current``, one frame per dataset named.

    ``current`` needs ``dataset``, ``submission_id`` and ``curated_key``; rows without a
    curated key are skipped. Each distinct key is fetched and decoded once (in parallel)
    and filtered to the submissions ``current`` names for its dataset with that key;
    files are concatenated in ``current``'s order of first appearance. Datasets with no
    curated file in ``current`` are absent from the result.
    """
    files = (
        current.filter(pl.col("curated_key").is_not_null())
        .group_by("dataset", "curated_key", maintain_order=True)
        .agg(pl.col("submission_id").unique(maintain_order=True))
    )
    by_key: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for dataset, key, submission_ids in files.iter_rows():
        by_key.setdefault(key, []).append((dataset, frozenset(submission_ids)))

    def read(key: str) -> list[tuple[str, pl.DataFrame]]:
        body = store.get(key)
        return [(dataset, _kept_rows(body, ids)) for dataset, ids in by_key[key]]

    parts: dict[str, list[pl.DataFrame]] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for read_parts in pool.map(read, list(by_key)):
            for dataset, frame in read_parts:
                parts.setdefault(dataset, []).append(frame)
    return {dataset: pl.concat(frames, how="diagonal_relaxed") for dataset, frames in parts.items()}
