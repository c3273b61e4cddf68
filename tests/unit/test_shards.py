"""Backfill shards: whole schools, deterministic, every key exactly once."""

from __future__ import annotations

import math
import random

import pytest

from vetreport.curate.shards import (
    KEYS_PER_PROCESS,
    NO_SCHOOL,
    batch_processes,
    shard_by_school,
    whole_school_batches,
)

DATASETS = ("school_profile.csv", "staff.csv", "graduates.xlsx")


def keys_of(schools: list[str], years: tuple[int, ...] = (2022, 2023)) -> list[str]:
    return [
        f"uploads/{year}/{school}/{name}"
        for year in years
        for school in schools
        for name in DATASETS
    ]


SCHOOLS = [f"33{index:08d}" for index in range(23)]


def test_shards_hold_whole_schools_and_every_key_once() -> None:
    keys = keys_of(SCHOOLS) + ["uploads/2023/3300000004/年报.csv"]  # a bad name still has a school
    shards = shard_by_school(keys, 5)
    assert [len(shard.schools) for shard in shards] == [5, 5, 5, 5, 3]
    assert sorted(key for shard in shards for key in shard.keys) == sorted(keys)
    for shard in shards:
        # every key of a school, of every year, is in that school's shard
        assert set(shard.keys) == {key for key in keys if key.split("/")[2] in shard.schools}
    assert [shard.name for shard in shards] == [f"shard-{n}-of-5" for n in range(1, 6)]
    assert shards[0].label == "shard-1-of-5-3300000000-3300000004"


def test_the_cut_depends_only_on_the_keys_and_the_size() -> None:
    keys = keys_of(SCHOOLS)
    shuffled = random.Random(7).sample(keys + keys[:4], len(keys) + 4)  # order, duplicates
    assert shard_by_school(shuffled, 4) == shard_by_school(keys, 4)
    assert shard_by_school(keys, 4) != shard_by_school(keys, 5)
    assert shard_by_school([], 4) == []


def test_keys_that_name_no_school_go_together() -> None:
    keys = [*keys_of(SCHOOLS[:2]), "uploads/2023/", "uploads//x.csv"]
    shards = shard_by_school(keys, 1)
    assert shards[0].schools == (NO_SCHOOL,)
    assert set(shards[0].keys) == {"uploads/2023/", "uploads//x.csv"}
    assert shards[0].label.endswith("no-school")


def test_batches_never_split_a_school() -> None:
    keys = keys_of(SCHOOLS)  # 6 keys a school
    batches = whole_school_batches(keys, 10)
    assert sorted(key for batch in batches for key in batch) == sorted(keys)
    assert all(len(batch) == 12 for batch in batches[:-1])  # two schools pass 10
    seen: dict[str, int] = {}
    for number, batch in enumerate(batches):
        for key in batch:
            assert seen.setdefault(key.split("/")[2], number) == number
    assert whole_school_batches(keys, 1) == [
        sorted(key for key in keys if key.split("/")[2] == school) for school in SCHOOLS
    ]


@pytest.mark.parametrize("size", [0, -1])
def test_sizes_below_one_are_refused(size: int) -> None:
    with pytest.raises(ValueError):
        shard_by_school(keys_of(SCHOOLS), size)
    with pytest.raises(ValueError):
        whole_school_batches(keys_of(SCHOOLS), size)


def test_a_key_given_twice_stays_twice_in_one_batch() -> None:
    keys = keys_of(SCHOOLS[:2], (2023,))
    twice = [keys[0], *keys]
    batches = whole_school_batches(twice, 1)
    assert sorted(key for batch in batches for key in batch) == sorted(twice)
    assert batches[0].count(keys[0]) == 2


def test_a_sweep_takes_processes_by_its_size_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    small = [["k"] * 512] * 3  # 1,536 keys: not worth a process's imports
    large = [["k"] * 512] * 20  # 10,240 keys
    assert batch_processes(small, 0) == 1
    assert batch_processes(large, 0) == math.ceil(10_240 / KEYS_PER_PROCESS) == 3
    assert batch_processes([["k"] * 512] * 40, 0) == 4  # one per CPU at most
    assert batch_processes(small, 2) == 2  # told: as many as told...
    assert batch_processes(small, 8) == 3  # ... but never more than batches
    assert batch_processes(large, 1) == 1
    assert batch_processes([], 0) == 1
