"""Building report.docx from a template and a published version.

What belongs here: rendering a .docx template (docxtpl: Jinja2 inside Word) against one
published version of a report year: the placeholders a writer types (``v``, ``table``,
``changelog``, and the cover's words), the tables 表1–表6 and 附表1–6 inserted from the
version's own tables, the changelog against the previous version, and the record of every
value printed. ``publish_report`` writes the result (and its PDF, ``vetreport.report.pdf``) into the
version through ``vetreport.publish.writer.attach_files``; the command is ``vetreport
report build``.

Placeholders (docs/report-writing.md explains them for writers):

    {{ v("matched_employment_rate_pct", year, 1) }}           city value, 1 decimal
    {{ v("matched_employment_rate_pct", year - 1, 1) }}       the year before
    {{ v("enrolled_students_count", year, 0, region="柯桥区") }}  a county (or a school by
                                                              name or code)
    {{ v("paper_books_count", year, 0, scale="万") }}          in 万 (10,000), or 亿
    {{ d("public_education_budget_change_pct", year, 2) }}   a derived figure
                                                              (schemas/derived_figures.csv)
    {{p table("表5") }}                                       a whole table, on its own line
    {{p changelog() }}                                        what changed since the
                                                              previous version
    {{ city }} {{ year }} {{ status_zh }} {{ version }}        the cover's words

A wrong indicator id, year, region or precision stops the build with a message naming the
placeholder; nothing is written.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from docx import Document
from docx.enum.text import WD_COLOR_INDEX
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt
from docxtpl import DocxTemplate
from lxml import etree

from schemas.indicators import format_value, load_indicator_catalogue, load_table_specs
from vetreport.bucket.store import ObjectStore
from vetreport.publish.reader import read_table, resolve_version, sha256
from vetreport.publish.writer import REPORT_DOCX, REPORT_PDF, attach_files
from vetreport.report.pdf import pdf_bytes
from vetreport.report.values import BoundValue, PlaceholderError, PublishedValues

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "default_report.docx"
STATUS_WORDS = {"provisional": "征求意见稿（临时数据）", "final": "正式版", "revision": "修订版"}
BODY_FONT = "Noto Serif CJK SC"


class ReportTemplateError(ValueError):
    """The template cannot be rendered: a syntax error, an unknown name, a bad placeholder."""


@dataclass(frozen=True)
class ChangedFigure:
    """A figure the document prints differently from the previous version's numbers."""

    placeholder: str
    indicator_id: str
    region: str
    year: int
    previous_text: str
    text: str


@dataclass
class BuiltReport:
    """A rendered document and what it used."""

    report_year: int
    version: int
    status: str
    city_name: str
    template_name: str
    template_sha256: str
    docx: bytes
    values: list[BoundValue]
    changes: list[ChangedFigure]
    previous_version: int | None
    built_at: str

    def manifest_record(self) -> dict[str, Any]:
        """What the manifest says about the document beside its checksum."""
        return {
            "template": self.template_name,
            "template_sha256": self.template_sha256,
            "city_name": self.city_name,
            "built_at": self.built_at,
            "compared_with_version": self.previous_version,
            "changed_figures": [change.__dict__ for change in self.changes],
            "values": [value.as_record() for value in self.values],
        }


def status_words(manifest: dict[str, Any]) -> str:
    """The cover's status line: 正式版, 征求意见稿, or 修订版 naming the final it corrects."""
    words = STATUS_WORDS.get(manifest["status"], manifest["status"])
    if manifest["status"] == "revision" and manifest.get("revision_of"):
        words += f"（修订第 {manifest['revision_of']} 版正式版）"
    return words


def _city_of(store: ObjectStore, report_year: int, version: int, city_name: str | None) -> str:
    regions = read_table(store, "regions", report_year, version)
    cities = regions.filter(pl.col("region_level") == "city").get_column("city_name").to_list()
    if city_name is None:
        if len(cities) != 1:
            raise ReportTemplateError(
                f"{report_year} v{version} has {len(cities)} cities; name one with --city"
            )
        return cities[0]
    if city_name not in cities:
        raise ReportTemplateError(f"{report_year} v{version} has no city {city_name!r}")
    return city_name


def _set_cell(cell: Any, text: str, bold: bool = False) -> None:
    cell.text = ""
    run = cell.paragraphs[0].add_run(text)
    run.bold = bold
    run.font.size = Pt(9)


def _borders(table: Any) -> None:
    """Single borders on every cell, set on the table itself (no style the template lacks)."""
    properties = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        for name, value in (("val", "single"), ("sz", "4"), ("space", "0"), ("color", "000000")):
            element.set(qn(f"w:{name}"), value)
        borders.append(element)
    properties.append(borders)


class Block:
    """Paragraphs and tables made with python-docx, inserted where a ``{{p ...}}`` stands.

    docxtpl puts the text of the expression in place of the paragraph; this is the body XML
    of a scratch document (direct formatting only, so no style of the template is needed).
    """

    def __init__(self) -> None:
        self.document = Document()
        self.body = self.document.element.body

    def add_paragraph(self, text: str = "") -> Any:
        """A paragraph at the end of the block."""
        return self.document.add_paragraph(text)

    def add_table(self, rows: int, cols: int) -> Any:
        """A table at the end of the block."""
        return self.document.add_table(rows=rows, cols=cols)

    def __str__(self) -> str:
        return "".join(
            etree.tostring(child, encoding="unicode")
            for child in self.body
            if child.tag != qn("w:sectPr")
        )


class _Renderer:
    """The functions a template calls, bound to one version (and the previous one)."""

    def __init__(
        self,
        template: DocxTemplate,
        store: ObjectStore,
        manifest: dict[str, Any],
        values: PublishedValues,
        previous: PublishedValues | None,
        changes: list[ChangedFigure],
    ) -> None:
        self.template = template
        self.store = store
        self.manifest = manifest
        self.values = values
        self.previous = previous
        self.changes = changes
        self.bound: list[BoundValue] = []
        catalogue = load_indicator_catalogue()
        self.catalogue = catalogue
        self.specs = {spec.report_label: spec for spec in load_table_specs()}
        self.specs |= {spec.table_id: spec for spec in load_table_specs()}

    def value(
        self,
        indicator_id: str,
        year: int,
        decimals: int | None = None,
        region: str = "",
        scale: str = "",
    ) -> str:
        bound = self.values.bind(indicator_id, year, decimals, region, scale)
        self.bound.append(bound)
        return bound.text

    def derived(
        self, figure_id: str, year: int, decimals: int | None = None, region: str = ""
    ) -> str:
        bound = self.values.bind_derived(figure_id, year, decimals, region)
        self.bound.append(bound)
        return bound.text

    def table(self, name: str) -> Any:
        spec = self.specs.get(str(name).replace(" ", ""))
        if spec is None:
            raise PlaceholderError(
                f'placeholder table("{name}"): no such table; tables: '
                + ", ".join(s.report_label for s in load_table_specs() if s.report_label != "正文")
            )
        year, version = self.manifest["report_year"], self.manifest["version"]
        frame = read_table(self.store, spec.table_id, year, version).filter(
            pl.col("city_name") == self.values.city_name
        )
        rows = self.catalogue.filter(pl.col("table_id") == spec.table_id).sort("row_order")
        subdoc = Block()
        caption = subdoc.add_paragraph()
        caption.alignment = 1
        run = caption.add_run(f"{spec.report_label} {spec.title_zh}")
        run.bold = True
        if spec.layout == "years_as_rows":
            frame = frame.sort("year")
            table = subdoc.add_table(rows=frame.height + 1, cols=rows.height + 1)
            _set_cell(table.cell(0, 0), "年份", bold=True)
            for column, row in enumerate(rows.iter_rows(named=True), start=1):
                _set_cell(table.cell(0, column), f"{row['name_zh']}（{row['unit']}）", bold=True)
            for line, record in enumerate(frame.iter_rows(named=True), start=1):
                _set_cell(table.cell(line, 0), f"{record['year']}年")
                for column, row in enumerate(rows.iter_rows(named=True), start=1):
                    text = format_value(record[row["indicator_id"]], "", row["decimals"])
                    _set_cell(table.cell(line, column), text)
        else:
            year_columns = sorted(c for c in frame.columns if c.startswith("value_"))
            table = subdoc.add_table(rows=rows.height + 1, cols=len(year_columns) + 2)
            for column, title in enumerate(["指标", "单位", *[c[6:] + "年" for c in year_columns]]):
                _set_cell(table.cell(0, column), title, bold=True)
            by_id = {record["indicator_id"]: record for record in frame.iter_rows(named=True)}
            for line, row in enumerate(rows.iter_rows(named=True), start=1):
                record = by_id.get(row["indicator_id"], {})
                _set_cell(table.cell(line, 0), row["name_zh"])
                _set_cell(table.cell(line, 1), row["unit"])
                for column, name in enumerate(year_columns, start=2):
                    value = record.get(name)
                    _set_cell(table.cell(line, column), format_value(value, "", row["decimals"]))
        _borders(table)
        return subdoc

    def changelog(self) -> Any:
        subdoc = Block()
        previous = self.manifest.get("previous_version")
        if previous is None:
            return subdoc
        title = "修订说明" if self.manifest["status"] == "revision" else "与上一版本相比的变化"
        heading = subdoc.add_paragraph()
        heading.add_run(title).bold = True
        if not self.changes:
            subdoc.add_paragraph(
                f"本版（第 {self.manifest['version']} 版）与第 {previous} 版相比，"
                "报告中引用的数字没有变化。"
            )
            return subdoc
        subdoc.add_paragraph(
            f"本版（第 {self.manifest['version']} 版）与第 {previous} 版相比，报告中以下 "
            f"{len(self.changes)} 个数字有变化（新值以黄色标出）："
        )
        table = subdoc.add_table(rows=len(self.changes) + 1, cols=5)
        for column, title in enumerate(["指标", "范围", "年份", f"第 {previous} 版", "本版"]):
            _set_cell(table.cell(0, column), title, bold=True)
        names = {k: v["name_zh"] for k, v in self.values.definitions.items()}
        names |= {k: figure.name_zh for k, figure in self.values.derived.items()}
        for line, change in enumerate(self.changes, start=1):
            _set_cell(table.cell(line, 0), names.get(change.indicator_id, change.indicator_id))
            _set_cell(table.cell(line, 1), change.region)
            _set_cell(table.cell(line, 2), str(change.year))
            _set_cell(table.cell(line, 3), change.previous_text)
            _set_cell(table.cell(line, 4), change.text, bold=True)
            for run in table.cell(line, 4).paragraphs[0].runs:
                run.font.highlight_color = WD_COLOR_INDEX.YELLOW
        _borders(table)
        return subdoc


def _words_near(source: str, line_number: int) -> str:
    """The text (no XML) of the template around a syntax error."""
    lines = source.splitlines()
    line = lines[line_number - 1] if 0 < line_number <= len(lines) else ""
    return re.sub(r"<[^>]+>", "", line)[:120]


def _render(
    template_bytes: bytes,
    template_name: str,
    store: ObjectStore,
    manifest: dict[str, Any],
    values: PublishedValues,
    previous: PublishedValues | None,
    changes: list[ChangedFigure],
) -> tuple[bytes, list[BoundValue]]:
    template = DocxTemplate(io.BytesIO(template_bytes))
    renderer = _Renderer(template, store, manifest, values, previous, changes)
    context: dict[str, Any] = {
        "v": renderer.value,
        "d": renderer.derived,
        "table": renderer.table,
        "changelog": renderer.changelog,
        "year": manifest["report_year"],
        "city": values.city_name,
        "version": manifest["version"],
        "status": manifest["status"],
        "status_zh": status_words(manifest),
        "published_at": str(manifest["created_at"])[:10],
    }
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        template.render(context, environment)
    except PlaceholderError as error:
        raise ReportTemplateError(f"{template_name}: {error}") from None
    except jinja2.TemplateSyntaxError as error:
        raise ReportTemplateError(
            f"{template_name}: placeholder syntax error: {error.message} (near "
            f"{_words_near(error.source or '', error.lineno)!r}); see "
            "docs/report-writing.md"
        ) from None
    except (jinja2.UndefinedError, TypeError) as error:
        raise ReportTemplateError(
            f"{template_name}: {error}; the names a template may use are "
            f"{', '.join(sorted(context))}"
        ) from None
    output = io.BytesIO()
    template.save(output)
    return output.getvalue(), renderer.bound


def _changes(bound: list[BoundValue], previous: PublishedValues | None) -> list[ChangedFigure]:
    if previous is None:
        return []
    changes: dict[tuple, ChangedFigure] = {}
    for value in bound:
        region = "" if value.grain == "city" else value.region
        try:
            if value.placeholder.startswith("d("):
                before = previous.bind_derived(
                    value.indicator_id, value.year, value.decimals, region
                ).text
            else:
                before = previous.bind(
                    value.indicator_id, value.year, value.decimals, region, value.scale
                ).text
        except PlaceholderError:
            before = "—"
        if before != value.text and value.key() not in changes:
            changes[value.key()] = ChangedFigure(
                value.placeholder, value.indicator_id, value.region, value.year, before, value.text
            )
    return list(changes.values())


def build_report(
    store: ObjectStore,
    report_year: int,
    template: Path | None = None,
    version: int | None = None,
    city_name: str | None = None,
) -> BuiltReport:
    """Render a template against a published version (the latest unless given)."""
    template = template or DEFAULT_TEMPLATE
    try:
        template_bytes = Path(template).read_bytes()
    except OSError as error:
        raise ReportTemplateError(f"cannot read the template {template}: {error}") from None
    manifest = resolve_version(store, report_year, version)
    version = manifest["version"]
    city = _city_of(store, report_year, version, city_name)
    values = PublishedValues(
        read_table(store, "indicator_values", report_year, version), city, report_year
    )
    previous_number = manifest.get("previous_version")
    previous = None
    if previous_number is not None:
        previous = PublishedValues(
            read_table(store, "indicator_values", report_year, previous_number), city, report_year
        )
    name = Path(template).name
    docx, bound = _render(template_bytes, name, store, manifest, values, previous, [])
    changes = _changes(bound, previous)
    if changes:  # a second pass prints them in the changelog section, wherever it stands
        docx, bound = _render(template_bytes, name, store, manifest, values, previous, changes)
    return BuiltReport(
        report_year=report_year,
        version=version,
        status=manifest["status"],
        city_name=city,
        template_name=name,
        template_sha256=sha256(template_bytes),
        docx=docx,
        values=bound,
        changes=changes,
        previous_version=previous_number,
        built_at=datetime.now(UTC).isoformat(),
    )


def publish_report(
    store: ObjectStore,
    report_year: int,
    template: Path | None = None,
    version: int | None = None,
    city_name: str | None = None,
    with_pdf: bool = True,
) -> tuple[BuiltReport, dict[str, Any]]:
    """Build the document and write it (and its PDF where LibreOffice is) into the version.

    Nothing is written when the template fails. Returns the build and the new manifest.
    """
    built = build_report(store, report_year, template, version, city_name)
    files = {REPORT_DOCX: built.docx}
    if with_pdf:
        pdf = pdf_bytes(built.docx)
        if pdf is not None:
            files[REPORT_PDF] = pdf
    record = built.manifest_record()
    manifest = attach_files(
        store,
        report_year,
        built.version,
        files,
        {REPORT_DOCX: record, REPORT_PDF: {"made_from": REPORT_DOCX}},
    )
    return built, manifest
