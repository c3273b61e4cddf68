"""Small static charts as inline SVG text, generated from the data with no library.

What belongs here: a line chart (a few years, one line per series, values labelled) and a
horizontal bar chart (one bar per school, an optional dashed reference line for the city
value). The SVG is plain markup meant to be inlined in the HTML report, so the page needs
no script and no network to show it. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#2f6db5", "#d9822b", "#3a9e5c", "#b5443a", "#7a5fb5", "#4aa3a8", "#8c6d31")
FONT = "font-family=\"'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif\""

Formatter = Callable[[float | None], str]


def _range(values: Sequence[float], from_zero: bool) -> tuple[float, float]:
    low, high = min(values), max(values)
    if from_zero:
        low = min(low, 0.0)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        return low - (0 if from_zero else pad), high + pad
    pad = (high - low) * 0.15
    return (low if from_zero else low - pad), high + pad


def line_chart(
    title: str,
    years: Sequence[int],
    series: Sequence[tuple[str, Sequence[float | None]]],
    formatter: Formatter,
    width: int = 300,
    height: int = 190,
) -> str:
    """A line chart of a few years, one line per series, each point labelled."""
    left, right, top, bottom = 16, 16, 40, 28
    present = [value for _name, values in series for value in values if value is not None]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top - 12}" width="{width - left - right}" '
        f'height="{height - top - bottom + 12}" fill="#fafbfd" stroke="#e3e6ea"/>',
    ]
    if not present or not years:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="12" '
            'fill="#888">无数据</text></svg>'
        )
        return "".join(parts)
    low, high = _range(present, from_zero=False)
    inset = 36  # room for the value labels of the first and last points
    plot_width = width - left - right - 2 * inset
    step = plot_width / max(len(years) - 1, 1)

    def x(index: int) -> float:
        return left + inset + (index * step if len(years) > 1 else plot_width / 2)

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * (height - top - bottom - 8)

    for index, year in enumerate(years):
        parts.append(
            f'<text x="{x(index):.1f}" y="{height - 10}" text-anchor="middle" '
            f'font-size="11" fill="#555">{year}</text>'
        )
    for number, (name, values) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        commands = []
        pen_down = False
        for index, value in enumerate(values):
            if value is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x(index):.1f},{y(value):.1f}")
            pen_down = True
        if commands:
            parts.append(
                f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" '
                'stroke-width="2.2" stroke-linejoin="round"/>'
            )
        for index, value in enumerate(values):
            if value is None:
                continue
            parts.append(
                f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}"/>'
                f'<text x="{x(index):.1f}" y="{y(value) - 8:.1f}" text-anchor="middle" '
                f'font-size="11" fill="#222">{escape(formatter(value))}</text>'
            )
        if len(series) > 1:
            parts.append(
                f'<text x="{left + 4}" y="{top + 2 + 12 * number}" font-size="10" '
                f'fill="{colour}">■ {escape(name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    formatter: Formatter,
    reference: float | None = None,
    reference_label: str = "",
    width: int = 820,
) -> str:
    """A horizontal bar per label (in the order given), with an optional reference line."""
    label_width, value_width, top, bar_height, gap = 260, 70, 34, 16, 6
    height = top + len(labels) * (bar_height + gap) + 24
    present = [value for value in values if value is not None]
    scale_max = max([*present, reference or 0.0, 0.0]) or 1.0
    plot_width = width - label_width - value_width - 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        row_y = top + index * (bar_height + gap)
        parts.append(
            f'<text x="{label_width - 8}" y="{row_y + bar_height - 3}" text-anchor="end" '
            f'font-size="12" fill="#333">{escape(label)}</text>'
        )
        if value is None:
            parts.append(
                f'<text x="{label_width + 4}" y="{row_y + bar_height - 3}" font-size="11" '
                'fill="#888">无数据</text>'
            )
            continue
        bar = max(value, 0.0) / scale_max * plot_width
        parts.append(
            f'<rect x="{label_width}" y="{row_y}" width="{bar:.1f}" height="{bar_height}" '
            f'fill="{PALETTE[0]}" rx="2"/>'
            f'<text x="{label_width + bar + 5:.1f}" y="{row_y + bar_height - 3}" '
            f'font-size="11" fill="#222">{escape(formatter(value))}</text>'
        )
    if reference is not None:
        line_x = label_width + max(reference, 0.0) / scale_max * plot_width
        bottom = top + len(labels) * (bar_height + gap)
        parts.append(
            f'<path d="M{line_x:.1f},{top - 6} L{line_x:.1f},{bottom}" stroke="{PALETTE[3]}" '
            'stroke-width="1.5" stroke-dasharray="5,3" fill="none"/>'
            f'<text x="{line_x:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="11" '
            f'fill="{PALETTE[3]}">{escape(reference_label)} {escape(formatter(reference))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
