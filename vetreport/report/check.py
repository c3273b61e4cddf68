"""Checking a hand-edited report: every number it prints against the published data.

What belongs here: reading a .docx as the bureau finally edited it (paragraphs and tables,
in document order), finding each figure (``vetreport.report.numbers``), deciding which
indicator, year and region it states from the words around it, and comparing it with the
published value at the precision it is printed with. The words are data:
``schemas/report_terms.csv`` (regular expressions per indicator, alternatives split at
``|``, each standing ``before`` the number or right ``after`` it as in 11金; every
indicator's own Chinese name counts too). The command is ``vetreport report check``.

Which indicator a number states, in a paragraph: within its sentence (up to 。；!?), the
term ending nearest before the number whose indicator's unit fits the number (a % figure
binds only to a percentage, 1:x only to a ratio, a plain number to a count or amount, and
a unit word after it, such as 元 or 所, has to match); of two terms ending at the same place
the longer wins (中职在校生 over 在校生). The year is the last year named before it in the
sentence (2023年, 2023届), a year earlier after 上年/上一年/去年, else the report year. A county
or school of the city named in the sentence makes it that county's or school's figure.

Not checked (listed, never flagged): a change (a % right after 增长/提高/下降...), a figure
over several years (2020—2023年, 累计 with a year range, 近三年), numbers no term claims.

When a number agrees: rounded half-up to the decimals it is printed with (in 万 or 亿 when
it is written so), the published value must give exactly the printed digits (34.86 → 34.9,
so 34.8 disagrees); either the value before the catalogue's rounding or the published
(rounded) value may give it. 约/左右 allow one unit of the last printed digit either way;
余/多/以上 mean the value lies between the printed figure and one unit above it (217万余:
2,170,000 to 2,180,000).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import polars as pl
from docx import Document
from docx.oxml.ns import qn

from schemas.catalogue import CATALOGUE_DIR
from schemas.indicators import indicator_definitions
from vetreport.report.numbers import PrintedNumber, find_numbers, normalise
from vetreport.report.values import round_half_up

TERMS_CSV = CATALOGUE_DIR / "report_terms.csv"
SENTENCE_END = re.compile(r"[。；;！!？?\n]")
YEAR_MENTION = re.compile(r"((?:19|20)\d\d)\s*(?:年|届|学年)")
PREVIOUS_YEAR = re.compile(r"上一?年|去年|前一年|上年度")
CHANGE_WORDS = re.compile(r"(?:增长|增加|提高|提升|下降|减少|降低|上升|增幅|降幅|涨幅|翻)了?\s*$")
MULTI_YEAR = re.compile(
    r"(?:19|20)\d\d\s*(?:年)?\s*[-—–~～至到]\s*(?:(?:19|20)\d\d|\d\d)|近[两二三四五十]年|[两二三四五十]年来|历年"
)
UNIT_WORDS = {
    "人次": "人次",
    "人日": "人日",
    "平方米": "平方米",
    "课时": "课时",
    "人": "人",
    "名": "人",
    "所": "所",
    "元": "元",
    "册": "册",
    "枚": "枚",
    "项": "项",
    "个": "个",
    "家": "个",
    "倍": "倍",
}


@dataclass(frozen=True)
class Term:
    """A pattern that names an indicator in running text."""

    indicator_id: str
    pattern: re.Pattern[str]
    after: bool = False  # the term follows the number (11金): it must start right after it


@dataclass
class CheckedNumber:
    """One number of the document and what the check made of it."""

    location: str
    context: str
    printed: str
    figure: str
    status: str  # agrees, disagrees, no_data, not_checked
    indicator_id: str = ""
    indicator_zh: str = ""
    year: int | None = None
    region: str = ""
    data_value: float | None = None
    data_text: str = ""
    reason: str = ""


@dataclass
class CheckResult:
    """Every number of a document, checked."""

    numbers: list[CheckedNumber] = field(default_factory=list)

    @property
    def disagreements(self) -> list[CheckedNumber]:
        """The numbers that disagree with the data."""
        return [number for number in self.numbers if number.status == "disagrees"]

    def counts(self) -> dict[str, int]:
        """How many numbers of each status."""
        counts = {"agrees": 0, "disagrees": 0, "no_data": 0, "not_checked": 0}
        for number in self.numbers:
            counts[number.status] += 1
        return counts


def load_terms(path: Path = TERMS_CSV) -> list[Term]:
    """The terms of every indicator: report_terms.csv, then each indicator's own names."""
    definitions = indicator_definitions()
    known = set(definitions.get_column("indicator_id").to_list())
    frame = pl.read_csv(path, infer_schema=False)
    unknown = sorted(set(frame.get_column("indicator_id").to_list()) - known)
    if unknown:
        raise ValueError(f"{path.name}: no indicator {unknown} in indicators.csv")
    terms = []
    for row in frame.iter_rows(named=True):
        for alternative in row["term"].split("|"):  # each on its own: the longest match wins
            try:
                after = (row.get("position") or "before") == "after"
                pattern = re.compile(f"^(?:{alternative})" if after else alternative)
                terms.append(Term(row["indicator_id"], pattern, after))
            except re.error as error:
                raise ValueError(
                    f"{path.name}: bad term {alternative!r} of {row['indicator_id']}: {error}"
                ) from None
    names = pl.read_csv(CATALOGUE_DIR / "indicators.csv", infer_schema=False)
    for row in names.select("indicator_id", "name_zh").unique().iter_rows(named=True):
        full = row["name_zh"].removeprefix("其中：").strip()
        short = re.sub(r"[（(][^）)]*[)）]$", "", full).strip()
        for name in {full, short, re.sub(r"(?:人数|数量|数)$", "", short)}:
            if len(name) > 1:
                terms.append(Term(row["indicator_id"], re.compile(re.escape(name))))
    return terms


def _unit_fits(number: PrintedNumber, unit: str, after: str) -> bool:
    if unit == "%":
        return number.kind == "percent"
    if unit == "1:x":
        return number.kind in ("ratio", "plain")
    if number.kind != "plain":
        return False
    for word, family in UNIT_WORDS.items():
        if after.startswith(word):
            return family == unit or (family == "元" and unit.startswith("元"))
    return True


class _Data:
    """The published values of one city, by indicator, region and year."""

    def __init__(self, indicator_values: pl.DataFrame, city_name: str, report_year: int) -> None:
        frame = indicator_values.filter(pl.col("city_name") == city_name)
        self.city_name = city_name
        self.report_year = report_year
        self.values: dict[tuple[str, str, int], tuple[float | None, float | None]] = {}
        for row in frame.iter_rows(named=True):
            level = row["region_level"]
            region = {
                "city": city_name,
                "county": row["county_name"],
                "school": row["school_name"],
            }.get(level)
            if region is not None:
                self.values[(row["indicator_id"], region, row["year"])] = (
                    row["value_unrounded"],
                    row["indicator_value"],
                )
        self.regions = sorted(
            {key[1] for key in self.values if key[1] != city_name}, key=len, reverse=True
        )
        definitions = indicator_definitions()
        self.units = dict(zip(definitions["indicator_id"], definitions["unit"], strict=True))
        self.names = dict(zip(definitions["indicator_id"], definitions["name_zh"], strict=True))
        catalogue = pl.read_csv(CATALOGUE_DIR / "indicators.csv", infer_schema=False)
        self.by_name = dict(zip(catalogue["name_zh"], catalogue["indicator_id"], strict=True))


def agrees(number: PrintedNumber, unrounded: float, published: float | None) -> bool:
    """Whether a printed figure can come from the value (module docstring)."""
    unit = Decimal(1).scaleb(-number.decimals)
    printed = number.printed
    candidates = [value for value in (unrounded, published) if value is not None]
    for value in candidates:
        scaled = Decimal(repr(value)) / number.scale
        if number.approximation == "about":
            if abs(scaled - printed) <= unit:
                return True
        elif number.approximation == "at_least":
            if scaled.quantize(unit, rounding=ROUND_FLOOR) == printed:
                return True
        elif round_half_up(float(scaled), number.decimals) == printed:
            return True
    return False


def _figure(number: PrintedNumber) -> str:
    return format(number.printed.quantize(Decimal(1).scaleb(-number.decimals)), "f")


def _compare(
    data: _Data, number: PrintedNumber, indicator_id: str, year: int, region: str, checked: Any
) -> None:
    checked.indicator_id = indicator_id
    checked.indicator_zh = data.names[indicator_id]
    checked.year = year
    checked.region = region
    found = data.values.get((indicator_id, region, year))
    if found is None or found[0] is None:
        checked.status = "no_data"
        return
    unrounded, published = found
    checked.data_value = published
    checked.data_text = f"{round_half_up(unrounded / float(number.scale), number.decimals)}"
    checked.status = "agrees" if agrees(number, unrounded, published) else "disagrees"


def _check_sentence_number(
    data: _Data, terms: list[Term], text: str, number: PrintedNumber, location: str
) -> CheckedNumber:
    sentence_start = max((m.end() for m in SENTENCE_END.finditer(text, 0, number.start)), default=0)
    prefix = text[sentence_start : number.start]
    after = text[number.end :]
    context = text[max(sentence_start, number.start - 30) : number.end + 8].strip()
    checked = CheckedNumber(location, context, number.text, _figure(number), "not_checked")
    if number.kind == "percent" and CHANGE_WORDS.search(prefix[-6:]):
        checked.reason = "a change against another year (not checked yet)"
        return checked
    if MULTI_YEAR.search(prefix):
        checked.reason = "a figure over several years (not checked yet)"
        return checked
    following = [
        term.indicator_id
        for term in terms
        if term.after and term.pattern.match(after) and number.kind == "plain"
    ]
    candidates = [(len(prefix) + 1, 0, following[0])] if following else []
    for term in terms:
        if term.after:
            continue
        for match in term.pattern.finditer(prefix):
            if _unit_fits(number, data.units[term.indicator_id], after):
                candidates.append((match.end(), match.end() - match.start(), term.indicator_id))
    if not candidates:
        checked.reason = "no indicator's words before it"
        return checked
    end, _, indicator_id = max(candidates, key=lambda item: (item[0], item[1]))
    between = prefix[min(end, len(prefix)) :]
    years = YEAR_MENTION.findall(prefix)
    year = int(years[-1]) if years else data.report_year
    if PREVIOUS_YEAR.search(between):
        year -= 1
    region = _region_named(data, prefix)
    _compare(data, number, indicator_id, year, region, checked)
    return checked


def _region_named(data: _Data, prefix: str) -> str:
    """The county or school named last before the number in its sentence, else the city."""
    mentions = [(prefix.rfind(word), data.city_name) for word in ("全市", data.city_name)]
    mentions += [(prefix.rfind(name), name) for name in data.regions]
    position, region = max(mentions, key=lambda item: (item[0], len(item[1])))
    return region if position >= 0 else data.city_name


def _cell_texts(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        texts, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            texts.append(normalise(cell.text.strip()))
        rows.append(texts)
    return rows


def _year_of(text: str) -> int | None:
    match = re.fullmatch(r"\s*((?:19|20)\d\d)\s*(?:年|年度)?\s*", text)
    return int(match[1]) if match else None


def _header_indicator(terms: list[Term], data: _Data, header: str, kind: str) -> str | None:
    best = None
    for term in terms:
        for match in term.pattern.finditer(header):
            unit = data.units[term.indicator_id]
            fits = (unit == "%") == (kind == "percent") and (unit == "1:x") == (kind == "ratio")
            if fits and (best is None or match.end() - match.start() > best[0]):
                best = (match.end() - match.start(), term.indicator_id)
    return best[1] if best else None


def _kind_of(header: str) -> str:
    if "%" in header or "％" in header or "率" in header and "比" not in header:
        return "percent"
    if re.search(r"1\s*[:：]\s*[xX]|师生比|生师比", header):
        return "ratio"
    return "plain"


def _check_table(
    data: _Data, terms: list[Term], rows: list[list[str]], label: str
) -> list[CheckedNumber]:
    results: list[CheckedNumber] = []
    if len(rows) < 2:
        return results
    header = rows[0]
    if any(_year_of(row[0]) for row in rows[1:] if row):  # years as rows
        for column, title in enumerate(header[1:], start=1):
            kind = _kind_of(title)
            indicator_id = _header_indicator(terms, data, title, kind)
            for line, row in enumerate(rows[1:], start=2):
                year = _year_of(row[0]) if row else None
                if column >= len(row) or year is None:
                    continue
                results += _table_cell(
                    data, row[column], kind, indicator_id, year, label, line, column
                )
        return results
    years = {column: _year_of(title) for column, title in enumerate(header)}
    if any(years.values()):  # indicators as rows
        unit_column = next((c for c, t in enumerate(header) if t == "单位"), None)
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            unit = row[unit_column] if unit_column is not None and unit_column < len(row) else ""
            kind = _kind_of(f"{row[0]}（{unit}）" if unit else row[0])
            if unit and unit not in ("%", "％") and "1:" not in unit:
                kind = "ratio" if kind == "ratio" else "plain"
            indicator_id = data.by_name.get(row[0]) or _header_indicator(terms, data, row[0], kind)
            for column, year in years.items():
                if year is None or column >= len(row):
                    continue
                results += _table_cell(
                    data, row[column], kind, indicator_id, year, label, line, column
                )
    return results


def _table_cell(
    data: _Data,
    text: str,
    kind: str,
    indicator_id: str | None,
    year: int,
    label: str,
    line: int,
    column: int,
) -> list[CheckedNumber]:
    numbers = find_numbers(text)
    if not numbers:
        return []
    number = numbers[0]
    if kind != number.kind:
        number = PrintedNumber(**{**number.__dict__, "kind": kind})
    location = f"{label} 第{line}行第{column + 1}列"
    checked = CheckedNumber(location, text, number.text, _figure(number), "not_checked")
    if indicator_id is None:
        checked.reason = "no indicator's words in the row or column title"
        return [checked]
    _compare(data, number, indicator_id, year, data.city_name, checked)
    return [checked]


def check_document(
    docx: bytes | Path,
    indicator_values: pl.DataFrame,
    city_name: str,
    report_year: int,
    terms: list[Term] | None = None,
) -> CheckResult:
    """Every number of a .docx compared with the published values of a city."""
    source = io.BytesIO(docx) if isinstance(docx, bytes) else str(docx)
    document = Document(source)
    data = _Data(indicator_values, city_name, report_year)
    terms = load_terms() if terms is None else terms
    result = CheckResult()
    paragraph_number, table_number, caption = 0, 0, ""
    for element in document.element.body.iterchildren():
        if element.tag == qn("w:p"):
            text = normalise("".join(node.text or "" for node in element.iter(qn("w:t"))))
            if not text.strip():
                continue
            paragraph_number += 1
            if re.match(r"\s*(?:附表|表)\s*\d", text):
                caption = text.strip()[:20]
            for number in find_numbers(text):
                location = f"第{paragraph_number}段"
                result.numbers.append(_check_sentence_number(data, terms, text, number, location))
        elif element.tag == qn("w:tbl"):
            table_number += 1
            table = next(t for t in document.tables if t._tbl is element)
            label = caption or f"第{table_number}个表格"
            result.numbers += _check_table(data, terms, _cell_texts(table), label)
            caption = ""
    return result


def score(result: CheckResult, expected: pl.DataFrame) -> dict[str, Any]:
    """Recall and false alarms against an expected list (indicator_id, year, printed)."""
    wanted = {
        (row["indicator_id"], int(row["year"]), str(row["printed"]))
        for row in expected.iter_rows(named=True)
    }
    flagged = {(n.indicator_id, n.year, n.figure) for n in result.disagreements}
    found = wanted & flagged
    return {
        "expected": len(wanted),
        "found": len(found),
        "recall": len(found) / len(wanted) if wanted else 1.0,
        "false_alarms": sorted(flagged - wanted, key=str),
        "missed": sorted(wanted - flagged, key=str),
    }
