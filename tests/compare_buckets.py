"""Compare two buckets' pipeline outputs, ignoring only timestamps: is a refactor behaviour-free?

Usage (from the repository root; exit 0 when equal, 1 with the differing files listed)::

    .venv/bin/python -m tests.compare_buckets BEFORE AFTER [--zones published reports ...]
        [--catalogue-version OLD NEW]

Every object under the zones compared (by default published/, reports/, ledger/ and
curated/) must exist in both buckets with the same content once moments in time are
masked: JSON values under keys ending in ``_at`` and any ISO-8601 date-time text. Parquet
is compared as its rows, a workbook member by member, a DuckDB file table by table, so
that the container's own metadata (writer times, page layout) does not count. SHA-256
checksums and recorded file sizes are masked too: each describes a file that is itself
compared, and a file with a time in it has a new checksum (and compressed size) every run. A change to any file under schemas/ gives a new
catalogue version, printed in several outputs; ``--catalogue-version OLD NEW`` says the
two are expected to differ (nothing else may).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from vetreport.curate.ledger import DIGEST_ROOT

DEFAULT_ZONES = ("published", "reports", "ledger", "curated")
CHECKSUM = re.compile(r"\b[0-9a-f]{64}\b")
MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?|"
    r"\d{4}年\d{1,2}月\d{1,2}日 ?\d{1,2}:\d{2}"
)


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "<time>"
            if key.endswith("_at")
            else "<size>"
            if key == "size_bytes"
            else "<curated file>"
            if key == "curated_key" and item is not None
            else _mask_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_json(item) for item in value]
    if isinstance(value, str):
        return CHECKSUM.sub("<sha256>", MOMENT.sub("<time>", value))
    return value


def _mask_text(data: bytes) -> bytes:
    text = MOMENT.sub("<time>", data.decode("utf-8", errors="replace"))
    return CHECKSUM.sub("<sha256>", text).encode()


def _duckdb_tables(data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "copy.duckdb"
        path.write_bytes(data)
        connection = duckdb.connect(str(path), read_only=True)
        try:
            names = [row[0] for row in connection.execute("show tables").fetchall()]
            parts = []
            for name in sorted(names):
                frame = connection.execute(f'select * from "{name}"').pl()
                parts.append(f"== {name}\n{frame.write_csv()}")
        finally:
            connection.close()
    return _mask_text("\n".join(parts).encode())


def normalised(name: str, data: bytes) -> bytes:
    """The content of one object with moments in time masked."""
    if name.endswith(".json"):
        return json.dumps(_mask_json(json.loads(data)), sort_keys=True).encode()
    if name.endswith(".parquet"):
        # which batch file holds an upload's rows depends on how uploads were batched
        frame = pl.read_parquet(io.BytesIO(data)).drop("curated_key", strict=False)
        return _mask_text(frame.write_csv().encode())
    if name.endswith(".xlsx"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [
                member.encode() + b"\n" + _mask_text(archive.read(member))
                for member in sorted(archive.namelist())
                if member != "docProps/core.xml"  # the writer's creation time
            ]
        return b"\n".join(members)
    if name.endswith(".duckdb"):
        return _duckdb_tables(data)
    return _mask_text(data)


def _curated_rows(root: Path) -> dict[str, bytes]:
    """Each curated dataset's rows (and the measure cache), whichever batch file holds them.

    Ingest writes one curated file per batch, named after its submissions: how the uploads
    were split into batches (one process, or shards on workers) changes the files, not the
    rows. The measure cache's fingerprints name those files too, so they are left out.
    """
    frames: dict[str, list[pl.DataFrame]] = {}
    for path in sorted((root / "curated").rglob("*.parquet")):
        dataset = path.relative_to(root / "curated").parts[0]
        frame = pl.read_parquet(path)
        if dataset == "_measures":
            frame = frame.drop("measures_fingerprint", strict=False)
        frames.setdefault(dataset, []).append(frame)
    texts = {}
    for dataset, parts in frames.items():
        rows = pl.concat(parts, how="diagonal_relaxed")
        texts[dataset] = _mask_text(rows.sort(rows.columns, nulls_last=True).write_csv().encode())
    return texts


def _object_names(root: Path, zone: str) -> set[str]:
    """The objects of a zone of a folder bucket: a writer killed mid-write leaves its
    temporary file (``.tmp-…``) beside the target, which no listing shows as an object.

    The ledger's digests are left out: a cache of the records (which are compared), named
    at random by whichever aggregation wrote it.
    """
    return {
        name
        for path in (root / zone).rglob("*")
        if not path.name.startswith(".tmp-")
        and not (name := path.relative_to(root).as_posix()).startswith(DIGEST_ROOT)
    }


def compare(
    before: Path, after: Path, zones: tuple[str, ...], catalogue: tuple[str, str] | None = None
) -> list[str]:
    """Lines describing each difference (empty when the buckets match).

    The curated zone is compared as each dataset's rows (``_curated_rows``), and ledger
    records without the name of the curated file that holds an upload's rows.
    """
    problems = []
    for zone in zones:
        if zone == "curated":
            rows_before, rows_after = _curated_rows(before), _curated_rows(after)
            for dataset in sorted(rows_before.keys() | rows_after.keys()):
                if rows_before.get(dataset) != rows_after.get(dataset):
                    problems.append(f"differs: curated rows of {dataset}")
            continue
        names_before, names_after = _object_names(before, zone), _object_names(after, zone)
        for name in sorted(names_before ^ names_after):
            side = "before" if name in names_before else "after"
            problems.append(f"only {side}: {name}")
        for name in sorted(names_before & names_after):
            left, right = before / name, after / name
            if left.is_dir() or right.is_dir():
                continue
            left_text = normalised(name, left.read_bytes())
            right_text = normalised(name, right.read_bytes())
            if catalogue is not None:
                right_text = right_text.replace(catalogue[1].encode(), catalogue[0].encode())
            if left_text != right_text:
                problems.append(f"differs: {name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Compare two bucket folders and print what differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--zones", nargs="+", default=list(DEFAULT_ZONES))
    parser.add_argument("--catalogue-version", nargs=2, metavar=("OLD", "NEW"))
    arguments = parser.parse_args(argv)
    catalogue = tuple(arguments.catalogue_version) if arguments.catalogue_version else None
    problems = compare(arguments.before, arguments.after, tuple(arguments.zones), catalogue)
    counted = sum(
        1
        for zone in arguments.zones
        for path in (arguments.before / zone).rglob("*")
        if path.is_file()
    )
    for line in problems:
        print(line)
    print(f"{counted} objects compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
