"""The operator walkthrough's files: one demo school resubmits its graduates, badly then right.

What belongs here: the two example files of docs/operations.md "Try it" and the command
that writes them to examples/walkthrough/. Both derive from the demo school's own 2023
graduates file, so they fit the demo bucket that ``make up`` serves:

- ``graduates-with-errors.csv``: the resubmission as a school might first send it, with
  four faults a school makes (an unknown destination, income written as text, a
  graduate listed twice, a missing major). Dropping it in gives a rejected report that
  names each row and column; the accepted file before it stays current.
- ``graduates-corrected.csv``: the faults fixed, and the school's real correction: 15
  graduates it had marked as working outside their field were in fact working in it.
  Dropping it in gives an accepted report, and the city's 表5 and 附表1 change, so the
  service publishes a new version.

``python -m vetreport.demo.walkthrough`` rewrites the files; a test fails when they are stale.
"""

from __future__ import annotations

import csv
import io
import sys
from functools import cache
from pathlib import Path

from vetreport import paths
from vetreport.bucket.keys import upload_key
from vetreport.demo.generator import build_demo_uploads

SCHOOL = "3133060002"
YEAR = 2023
DATASET = "graduates"
UPLOAD_KEY = upload_key(YEAR, SCHOOL, DATASET, "csv")
EXAMPLES_DIR = paths.EXAMPLES_DIR / "walkthrough"
CORRECTED_MATCH_COUNT = 15

# (row number in the file counting the header as row 1, column, wrong value)
FAULTS = (
    (3, "毕业去向", "打工"),
    (5, "初次就业月收入", "面议"),
    (8, "专业名称", ""),
)
# Optional columns (2024 contract) the faulty row leaves empty besides its wrong destination.
EMPTIED_WITH_DESTINATION = ("就业地", "就业行业")
DUPLICATED_ROW = 10  # this row's graduate appears again at the end of the file


@cache
def _demo_text() -> str:
    return build_demo_uploads(YEAR)[UPLOAD_KEY].decode("utf-8-sig")


def demo_rows() -> tuple[list[str], list[list[str]]]:
    """The header and rows of the demo school's own 2023 graduates file (fresh lists)."""
    header, *rows = list(csv.reader(io.StringIO(_demo_text())))
    return header, rows


def _encode(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def corrected_rows() -> tuple[list[str], list[list[str]]]:
    """The demo file with the first graduates employed outside their field moved inside it."""
    header, rows = demo_rows()
    destination = header.index("毕业去向")
    matched = header.index("是否对口就业")
    moved = 0
    for row in rows:
        if moved == CORRECTED_MATCH_COUNT:
            break
        if row[destination] == "直接就业" and row[matched] == "否":
            row[matched] = "是"
            moved += 1
    if moved < CORRECTED_MATCH_COUNT:
        raise ValueError(f"the demo file has only {moved} graduates to correct")
    return header, rows


def build_files() -> dict[str, bytes]:
    """The walkthrough's files by name."""
    header, rows = corrected_rows()
    faulty = [list(row) for row in rows]
    for row_number, column, value in FAULTS:
        faulty[row_number - 2][header.index(column)] = value
        if column == "毕业去向":
            # The clerk who typed 打工 left the employer's location and sector empty, so the
            # findings stay the ones docs/operations.md shows (5 errors, 2 warnings).
            for optional in EMPTIED_WITH_DESTINATION:
                faulty[row_number - 2][header.index(optional)] = ""
    faulty.append(list(faulty[DUPLICATED_ROW - 2]))
    return {
        "graduates-with-errors.csv": _encode(header, faulty),
        "graduates-corrected.csv": _encode(header, rows),
    }


def write_files(directory: Path = EXAMPLES_DIR) -> list[Path]:
    """Write the files to a folder (default examples/walkthrough/) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in build_files().items():
        path = directory / name
        path.write_bytes(body)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_files(Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES_DIR):
        print(f"wrote {path}")
