"""Numbers as reports print them: found in running Chinese text and read exactly.

What belongs here: finding every figure in a paragraph or table cell and reading it: full-width
digits (４６７６０), thousands separators (46,760), decimals, percent signs (%, ％), 1:x
ratios (1:14.63, 1：14.63), the Chinese multipliers 万 and 亿 (217万, 1.56亿), and the words
that make a figure approximate: 约/近/大约/左右 (about) and 余/多/逾/以上/超过 (a lower
bound, as in 217万余册). What is not a figure is skipped: years (2023年, 2023届, 2022学年),
dates, and labels such as 表5, 附表1, 案例3, 第2章 and section numbers at a line's start.
Whole numbers written in Chinese numerals (十七所) are not read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

SCALE_WORDS = {"万": Decimal(10_000), "亿": Decimal(100_000_000), "万亿": Decimal(10**12)}
ABOUT_BEFORE = ("大约", "约", "近", "将近", "接近")
AT_LEAST_BEFORE = ("超过", "逾", "超")
AT_LEAST_AFTER = ("余", "多", "以上")

_NUMBER = re.compile(
    r"(?P<ratio>1\s*[:：]\s*)?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?P<scale>万亿|万|亿)?"
    r"(?P<after_scale>余|多)?"
    r"(?P<percent>\s*%)?"
)
_NOT_A_FIGURE_AFTER = re.compile(r"^\s*(?:年|届|学年|月|日|号|章|节|条|版)")
_LABEL_BEFORE = re.compile(r"(?:附表|表|图|案例|挑战|第|附件|v|V)\s*$")
_SECTION_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*\.?\s")
_YEAR_LIST = re.compile(r"^\s*(?:[-—–~～至到、,，和及与]\s*(?:19|20)\d\d)+\s*(?:年|届)")
_ABOUT_AFTER = re.compile(r"^[^\d，。；,;]{0,3}?左右")
_DATE = re.compile(r"^-\d{1,2}(?:-\d{1,2})?|^/\d")


@dataclass(frozen=True)
class PrintedNumber:
    """One figure as printed, and its value in the figure's own unit."""

    text: str
    start: int
    end: int
    value: Decimal  # 217万 -> 2170000; 34.8% -> 34.8; 1:14.63 -> 14.63
    decimals: int  # decimals printed, in the scaled unit: 2.5万 -> 1
    scale: Decimal  # 1, 10000 (万) or 100000000 (亿)
    kind: str  # percent, ratio or plain
    approximation: str  # exact, about or at_least

    @property
    def printed(self) -> Decimal:
        """The number as printed, in its scaled unit (217万 -> 217)."""
        return self.value / self.scale


def normalise(text: str) -> str:
    """Full-width digits and signs to ASCII (NFKC), same length so positions still hold."""
    out = []
    for character in text:
        folded = unicodedata.normalize("NFKC", character)
        out.append(folded if len(folded) == 1 and folded in "0123456789.%:" else character)
    return "".join(out)


def find_numbers(text: str) -> list[PrintedNumber]:
    """Every figure in a piece of text, in order (years, dates and labels left out)."""
    text = normalise(text)
    found: list[PrintedNumber] = []
    for match in _NUMBER.finditer(text):
        start, end = match.span()
        before, after = text[:start], text[end:]
        digits = match["digits"]
        if before[-1:].isdigit() or before[-1:] == ".":  # the middle of 2+1.5 or 1.1.2
            continue
        if _LABEL_BEFORE.search(before) and not match["ratio"]:
            continue
        if _NOT_A_FIGURE_AFTER.match(after) and not match["percent"] and not match["scale"]:
            continue
        if not before.strip() and _SECTION_NUMBER.match(text[start:]):
            continue  # "1.1 规模结构", "2. 人才培养"
        if re.fullmatch(r"(?:19|20)\d\d", digits) and _YEAR_LIST.match(after):
            continue  # 2020—2023年, 2022、2023年
        if _DATE.match(after) or before.endswith("-"):
            continue  # 2024-03-31
        if before.endswith("+") or after.startswith("+"):
            continue  # a formula or a programme's name: 2+1.5+1.5
        plain = digits.replace(",", "")
        scale = SCALE_WORDS.get(match["scale"] or "", Decimal(1))
        decimals = len(plain.split(".", 1)[1]) if "." in plain else 0
        approximation = "exact"
        if match["after_scale"] or after.startswith(AT_LEAST_AFTER):
            approximation = "at_least"
        elif _ABOUT_AFTER.match(after) or before.endswith(ABOUT_BEFORE):
            approximation = "about"
        elif before.endswith(AT_LEAST_BEFORE):
            approximation = "at_least"
        kind = "percent" if match["percent"] else "ratio" if match["ratio"] else "plain"
        found.append(
            PrintedNumber(
                text=match.group(0).strip(),
                start=start,
                end=end,
                value=Decimal(plain) * scale,
                decimals=decimals,
                scale=scale,
                kind=kind,
                approximation=approximation,
            )
        )
    return found
