"""Every file of the messy-file corpus (tests/corpus/) gets its expected outcome and rules."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.corpus.make_corpus import FILES
from vetreport.validate.checks import UploadContext, build_report, validate_upload

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _expected() -> list[dict[str, str]]:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


EXPECTED = _expected()


def test_every_generated_file_has_an_expectation_and_is_committed() -> None:
    assert len(EXPECTED) >= 40
    assert {row["file"] for row in EXPECTED} == set(FILES)
    for name, make in FILES.items():
        assert (CORPUS / name).read_bytes() == make(), f"{name} is stale: run make_corpus"


@pytest.mark.parametrize("row", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_corpus_file(row: dict[str, str]) -> None:
    path = CORPUS / row["file"]
    context = UploadContext(
        key=f"uploads/{row['year']}/{row['school']}/{row['file']}",
        year=int(row["year"]),
        school_code=row["school"],
        dataset_id=row["dataset"] or None,
        extension=path.suffix.lstrip("."),
    )
    report = build_report(validate_upload(path.read_bytes(), context), context, "corpus")
    rule_ids = {item["rule_id"] for item in report["counts_by_rule"]}
    expected_rules = {rule for rule in row["rule_ids"].split("|") if rule}
    assert (report["outcome"], rule_ids) == (row["outcome"], expected_rules)
