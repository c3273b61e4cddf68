"""The report document end to end, on the demo bucket the pipeline flow published.

The flow builds report.docx into v1; opened with python-docx its figures equal the published
values at each placeholder's precision (recomputed here from the template's own text and
the published indicator_values, with this test's own rounding) and it holds 表1–表6 and
附表1–6. A writer's edit (a sentence, a precision, a placeholder Word split across runs)
shows after a rebuild; a wrong indicator stops the build naming the placeholder; a
revision's document says so on its cover and lists the changed figures; the check flags
exactly the seed's contradictions; the PDF has Chinese text.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest
from docx import Document

from tests.pdf_text import pdf_text
from vetreport.bucket.store import open_store
from vetreport.cli.main import main
from vetreport.publish.reader import (
    read_manifest,
    read_table,
    read_version_file,
    resolve_version,
    verify_version,
)
from vetreport.report.build import DEFAULT_TEMPLATE, ReportTemplateError, build_report
from vetreport.report.pdf import pdf_bytes, soffice_path

EXAMPLES = Path(__file__).parents[2] / "examples" / "report"
PLACEHOLDER = re.compile(
    r'\{\{\s*v\("(?P<id>\w+)",\s*(?P<year>year(?:\s*-\s*\d)?|\d{4}),\s*(?P<decimals>\d)'
    r'(?:,\s*scale="(?P<scale>[万亿])")?\)\s*\}\}'
)
CHANGE = re.compile(r'\{\{\s*d\("(?P<id>\w+_change_pct)",\s*year,\s*(?P<decimals>\d)\)\s*\}\}')
CHANGED_INDICATOR = {  # the default template's year-on-year changes, and what they change
    "public_education_budget_change_pct": "public_education_budget_yuan",
    "fiscal_appropriation_per_student_change_pct": "fiscal_appropriation_per_student_yuan",
}
LABELS = [f"表{n}" for n in range(1, 7)] + [f"附表{n}" for n in range(1, 7)]


def _half_up(value: float, decimals: int) -> str:
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP))


def _expected_paragraphs(template: Path, values: pl.DataFrame, year: int) -> list[str]:
    """The template's paragraphs with every v() replaced by the published value, by hand."""
    city = values.filter(pl.col("region_level") == "city")

    def value(match: re.Match[str]) -> str:
        wanted = year - int(match["year"].split("-")[1]) if "-" in match["year"] else year
        row = city.filter((pl.col("indicator_id") == match["id"]) & (pl.col("year") == wanted)).row(
            0, named=True
        )
        scale = {"万": 10_000, "亿": 100_000_000}.get(match["scale"] or "", 1)
        return _half_up(row["value_unrounded"] / scale, int(match["decimals"]))

    def change(match: re.Match[str]) -> str:
        rows = city.filter(pl.col("indicator_id") == CHANGED_INDICATOR[match["id"]])
        now, before = (
            rows.filter(pl.col("year") == y).item(0, "value_unrounded") for y in (year, year - 1)
        )
        return _half_up((now - before) / before * 100, int(match["decimals"]))

    texts = []
    for paragraph in Document(str(template)).paragraphs:
        if "v(" in paragraph.text:
            text = PLACEHOLDER.sub(value, paragraph.text.replace("{{ year }}", str(year)))
            texts.append(CHANGE.sub(change, text))
    return texts


@pytest.fixture(scope="module")
def report_docx(published) -> bytes:
    return read_version_file(published["store_url"], 2023, "report.docx")


def test_the_flow_writes_report_docx_into_v1_with_its_values(published, report_docx) -> None:
    assert published["first"]["publish"]["report_document"]["built"] is True
    manifest = verify_version(published["store_url"], 2023)  # every checksum, the .docx too
    assert manifest["version"] == 1
    entry = manifest["files"]["report.docx"]
    assert entry["key"] == "published/2023/v1/report.docx"
    values = read_table(published["store_url"], "indicator_values", 2023)
    city = values.filter(pl.col("region_level") == "city")
    derived = {r["indicator_id"]: r["text"] for r in entry["values"] if r["placeholder"][0] == "d"}
    assert derived == {
        "public_education_budget_change_pct": "6.42",
        "fiscal_appropriation_per_student_change_pct": "4.37",
    }
    for record in (r for r in entry["values"] if r["placeholder"].startswith("v(")):
        row = city.filter(
            (pl.col("indicator_id") == record["indicator_id"]) & (pl.col("year") == record["year"])
        ).row(0, named=True)
        assert record["value_unrounded"] == row["value_unrounded"]
        scale = {"万": 10_000, "亿": 100_000_000}.get(record["scale"], 1)
        assert record["text"] == _half_up(row["value_unrounded"] / scale, record["decimals"])
    assert len(entry["values"]) >= 60
    from vetreport.publish.summary import version_markdown

    artifact = version_markdown(open_store(published["store_url"]), 2023, 1)
    assert "质量报告 report document (.docx)](" in artifact
    assert "published/2023/v1/report.docx)" in artifact


def test_the_documents_figures_are_the_published_values(published, report_docx) -> None:
    values = read_table(published["store_url"], "indicator_values", 2023)
    expected = _expected_paragraphs(DEFAULT_TEMPLATE, values, 2023)
    document = Document(io.BytesIO(report_docx))
    built = [p.text for p in document.paragraphs]
    assert len(expected) == 14  # the paragraphs of the default template with figures
    for text in expected:
        assert "{{" not in text  # every placeholder of the paragraph was recomputed here
        assert text in built
    # the contradicted figures, as the data gives them at the template's precision
    body = "\n".join(built)
    assert "对口就业率96.5%（上一年为86.3%）" in body
    assert "本科上线465人" in body and "校均规模2751人" in body and "占34.86%" in body
    assert "征求意见稿" in body  # v1 is provisional: the cover says so
    assert "155.61亿元，比上年增长6.42%" in body  # the seed's figures, derived from the data
    assert "29860.31元，比上年增长4.37%" in body


def test_the_document_holds_every_table_from_the_published_version(published, report_docx) -> None:
    document = Document(io.BytesIO(report_docx))
    body = document.element.body
    captions = {}
    for element in body.iterchildren():
        text = "".join(t.text or "" for t in element.iter(f"{{{element.nsmap['w']}}}t"))
        label = text.split(" ")[0]
        if element.tag.endswith("}p") and label in LABELS:
            following = element.getnext()
            assert following is not None and following.tag.endswith("}tbl"), label
            captions[label] = following
    assert sorted(captions) == sorted(LABELS)
    employment = next(t for t in document.tables if t._tbl is captions["表5"])
    published_table = read_table(published["store_url"], "employment", 2023).sort("year")
    rows = [[cell.text for cell in row.cells] for row in employment.rows]
    assert rows[0][2] == "对口就业率（%）"
    assert [row[2] for row in rows[1:]] == [
        f"{value:.2f}" for value in published_table["matched_employment_rate_pct"]
    ]


def _edited_template(path: Path) -> Path:
    """The default template as a writer changes it in Word: a new sentence, one placeholder's
    precision from 1 to 2 decimals, and a placeholder split over three runs."""
    document = Document(str(DEFAULT_TEMPLATE))
    paragraph = next(p for p in document.paragraphs if "matched_employment_rate_pct" in p.text)
    text = paragraph.text.replace(
        'v("matched_employment_rate_pct", year, 1)', 'v("matched_employment_rate_pct", year, 2)'
    )
    text = text.replace("对口就业率", "专业对口就业率达到", 1)
    first, rest = text.split('v("graduates_count"', 1)  # first ends with "{{ "
    for run in paragraph.runs[1:]:
        run._r.getparent().remove(run._r)
    # Word's proofing and revision marks cut runs anywhere: between the braces, inside a name
    paragraph.runs[0].text = first[:-2]  # ends with one "{"
    paragraph.add_run('{ v("graduates_')
    paragraph.add_run('count"' + rest)
    document.add_paragraph("本报告由编写组根据已发布数据生成，并经人工审核。")
    document.save(path)
    return path


def test_a_writers_edit_shows_after_a_rebuild(published, tmp_path, capsys) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(published["store_url"], bucket)
    template = _edited_template(tmp_path / "edited.docx")
    code = main(
        [
            "report",
            "build",
            "--year",
            "2023",
            "--template",
            str(template),
            "--no-pdf",
            "--bucket",
            str(bucket),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "wrote published/2023/v1/report.docx" in capsys.readouterr().out
    document = Document(io.BytesIO(read_version_file(str(bucket), 2023, "report.docx")))
    body = "\n".join(p.text for p in document.paragraphs)
    assert "专业对口就业率达到96.49%（上一年为86.3%）" in body
    assert "届毕业生15903人" in body
    assert "本报告由编写组根据已发布数据生成，并经人工审核。" in body
    entry = resolve_version(str(bucket), 2023)["files"]["report.docx"]
    assert entry["template"] == "edited.docx"
    assert {
        "indicator_id": "matched_employment_rate_pct",
        "decimals": 2,
        "text": "96.49",
    }.items() <= next(
        v
        for v in entry["values"]
        if v["indicator_id"] == "matched_employment_rate_pct" and v["year"] == 2023
    ).items()
    verify_version(str(bucket), 2023)  # the pointer follows the rewritten manifest


def test_a_wrong_indicator_or_year_stops_the_build_naming_the_placeholder(
    published, tmp_path, capsys
) -> None:
    store = open_store(published["store_url"])
    before = read_manifest(store, 2023, 1)
    for wrong, message in (
        (
            'v("matched_employment_rate", year, 1)',
            'v("matched_employment_rate", 2023, 1): no '
            "indicator 'matched_employment_rate'; did you mean matched_employment_rate_pct",
        ),
        (
            'v("matched_employment_rate_pct", 2019, 1)',
            "the report shows the years 2021, 2022, 2023, not 2019",
        ),
    ):
        document = Document(str(DEFAULT_TEMPLATE))
        paragraph = next(p for p in document.paragraphs if "graduates_count" in p.text)
        paragraph.add_run("{{ " + wrong + " }}")
        document.save(tmp_path / "wrong.docx")
        with pytest.raises(ReportTemplateError, match=re.escape(message)):
            build_report(store, 2023, tmp_path / "wrong.docx")
        code = main(
            [
                "report",
                "build",
                "--year",
                "2023",
                "--template",
                str(tmp_path / "wrong.docx"),
                "--bucket",
                published["store_url"],
            ]
        )
        assert code == 1
        assert "wrong.docx: placeholder" in capsys.readouterr().err
    assert read_manifest(store, 2023, 1) == before  # nothing was written


def test_a_revision_says_so_on_its_cover_and_lists_the_changed_figures(published, tmp_path) -> None:
    from vetreport.aggregate.compute import aggregate
    from vetreport.publish.writer import FINAL, publish
    from vetreport.report.build import publish_report

    bucket = tmp_path / "bucket"
    shutil.copytree(published["store_url"], bucket)
    store = open_store(str(bucket))
    result = aggregate(store, 2023)
    assert publish(store, result, FINAL).version == 2
    corrected = (pl.col("indicator_id") == "undergraduate_line_count") & (pl.col("year") == 2023)
    values = result.indicator_values.with_columns(
        pl.when(corrected & (pl.col("region_level") == "city"))
        .then(461.0)
        .otherwise(pl.col(name))
        .alias(name)
        for name in ("value_unrounded", "indicator_value", "numerator")
    )
    revision = publish(store, replace(result, indicator_values=values))
    assert (revision.version, revision.status, revision.revision_of) == (3, "revision", 2)
    built, manifest = publish_report(store, 2023, with_pdf=False)
    assert built.version == 3
    document = Document(io.BytesIO(read_version_file(store, 2023, "report.docx", 3)))
    body = "\n".join(p.text for p in document.paragraphs)
    assert "修订版（修订第 2 版正式版）" in body
    assert "修订说明" in body and "本科上线461人" in body
    changes = manifest["files"]["report.docx"]["changed_figures"]
    assert [(c["indicator_id"], c["previous_text"], c["text"]) for c in changes] == [
        ("undergraduate_line_count", "465", "461")
    ]
    table = next(t for t in document.tables if t.rows[0].cells[0].text == "指标")
    cell = table.rows[1].cells[4]
    assert cell.text == "461"
    assert cell.paragraphs[0].runs[0].font.highlight_color is not None


def test_check_flags_exactly_the_seeds_contradictions(published, capsys) -> None:
    code = main(
        [
            "report",
            "check",
            str(EXAMPLES / "seed_restated.docx"),
            "--year",
            "2023",
            "--expected",
            str(EXAMPLES / "expected_disagreements.csv"),
            "--bucket",
            published["store_url"],
        ]
    )
    out = capsys.readouterr().out
    assert code == 1  # disagreements found
    assert "recall 8/8 = 100%; false alarms: 0" in out
    flagged = {
        tuple(line.split("\t")[2:4]) for line in out.splitlines() if line.startswith("disagrees")
    }
    assert ("34.8%", "34.9 (34.86)") in flagged
    assert ("86.3%", "96.5 (96.49)") in flagged
    assert ("461", "465 (465)") in flagged


def test_the_built_document_passes_its_own_check(published, report_docx, tmp_path) -> None:
    from vetreport.report.check import check_document

    values = read_table(published["store_url"], "indicator_values", 2023)
    result = check_document(report_docx, values, "绍兴市", 2023)
    assert result.disagreements == []
    assert result.counts()["agrees"] > 300


def test_the_pdf_renders_chinese(report_docx) -> None:
    if soffice_path() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("LibreOffice is required under CI (apt-get install -y libreoffice-writer)")
        pytest.skip("LibreOffice (soffice) is not installed; not under CI")
    pdf = pdf_bytes(report_docx)
    assert pdf is not None and pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "绍兴市中等职业教育质量年度报告" in text
    assert "对口就业率96.5%" in text
    assert re.search(r"表5\s*就业质量情况", text)
    json.dumps(text)  # decodable text, not glyph ids


def test_a_broken_template_leaves_the_published_version_and_says_why(
    published, tmp_path, monkeypatch
) -> None:
    from flows.aggregate import _document_note, build_report_document

    bucket = tmp_path / "bucket"
    shutil.copytree(published["store_url"], bucket)
    before = resolve_version(str(bucket), 2023)
    broken = tmp_path / "broken.docx"
    document = Document(str(DEFAULT_TEMPLATE))
    document.add_paragraph('{{ v("no_such_indicator", year, 1) }}')
    document.save(broken)
    monkeypatch.setenv("VETREPORT_REPORT_TEMPLATE", str(broken))
    outcome = build_report_document(str(bucket), 2023, 1)  # a task run on the test server
    assert outcome["built"] is False
    assert 'broken.docx: placeholder v("no_such_indicator", 2023, 1)' in outcome["error"]
    assert "report document not built: broken.docx" in _document_note(outcome)
    assert resolve_version(str(bucket), 2023) == before  # the version is as published
