"""The report document's two small languages, by hand-made cases: what a placeholder prints
(precision, half-up rounding, 万, grain, the errors that name it) and how a printed number
is read back (full-width digits, thousands separators, %, 1:x, 万/亿, 约/余) and judged
against a value at its printed precision."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from docx import Document

from vetreport.report.build import ReportTemplateError, _render
from vetreport.report.check import agrees, check_document, load_terms
from vetreport.report.numbers import find_numbers
from vetreport.report.values import PlaceholderError, PublishedValues


def _row(level: str, indicator_id: str, year: int, value: float, **names: str) -> dict:
    return {
        "year": year,
        "region_level": level,
        "province_name": "浙江省",
        "city_name": "绍兴市",
        "county_name": names.get("county"),
        "school_code": names.get("code"),
        "school_name": names.get("school"),
        "indicator_id": indicator_id,
        "numerator": None,
        "denominator": None,
        "value_unrounded": value,
        "indicator_value": round(value, 2),
    }


VALUES = pl.DataFrame(
    [
        _row("city", "senior_title_teacher_share_pct", 2023, 1114 / 3196 * 100),  # 34.8561...
        _row("city", "senior_title_teacher_share_pct", 2022, 1080 / 3202 * 100),
        _row("city", "avg_school_size_count", 2023, 46760 / 17),  # 2750.588...
        _row("city", "paper_books_count", 2023, 2178548.0),
        _row("city", "postgraduate_teacher_share_pct", 2023, 221 / 3196 * 100),  # 6.9149...
        _row("city", "students_per_full_time_teacher_ratio", 2023, 46760 / 3196),  # 14.6307...
        _row("city", "matched_employment_rate_pct", 2023, 96.485),
        _row("county", "enrolled_students_count", 2023, 9120.0, county="柯桥区"),
        _row(
            "school",
            "enrolled_students_count",
            2023,
            2500.0,
            code="3133060016",
            school="绍兴示例民办职业学校甲",
            county="柯桥区",
        ),
        _row("city", "enrolled_students_count", 2023, 46760.0),
    ]
)


@pytest.fixture
def values() -> PublishedValues:
    return PublishedValues(VALUES, "绍兴市", 2023)


@pytest.mark.parametrize(
    ("indicator_id", "year", "decimals", "options", "printed"),
    [
        ("senior_title_teacher_share_pct", 2023, 2, {}, "34.86"),
        ("senior_title_teacher_share_pct", 2023, 1, {}, "34.9"),  # the seed's 34.8 is wrong
        ("senior_title_teacher_share_pct", 2023, None, {}, "34.86"),  # the catalogue's 2
        ("senior_title_teacher_share_pct", 2022, 0, {}, "34"),
        ("avg_school_size_count", 2023, 0, {}, "2751"),  # half-up, not truncated (2750)
        ("postgraduate_teacher_share_pct", 2023, 2, {}, "6.91"),
        ("students_per_full_time_teacher_ratio", 2023, 2, {}, "14.63"),
        ("matched_employment_rate_pct", 2023, 2, {}, "96.49"),  # 96.485 as a double is below
        ("matched_employment_rate_pct", 2023, 1, {}, "96.5"),  # once, from the unrounded
        ("paper_books_count", 2023, 0, {"scale": "万"}, "218"),
        ("paper_books_count", 2023, 1, {"scale": "万"}, "217.9"),
        ("enrolled_students_count", 2023, 0, {"region": "柯桥区"}, "9120"),
        ("enrolled_students_count", 2023, 0, {"region": "绍兴示例民办职业学校甲"}, "2500"),
        ("enrolled_students_count", 2023, 0, {"region": "3133060016"}, "2500"),
        ("enrolled_students_count", 2021, 0, {}, "—"),  # a year shown, but no data yet
    ],
)
def test_a_placeholder_prints_the_value_at_its_precision(
    values, indicator_id, year, decimals, options, printed
) -> None:
    bound = values.bind(indicator_id, year, decimals, **options)
    assert bound.text == printed
    expected_grain = (
        "school"
        if "3133" in options.get("region", "") or "学校" in options.get("region", "")
        else "county"
        if options.get("region")
        else "city"
    )
    assert bound.grain == expected_grain


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("senior_title_share", 2023, 1),
            'v("senior_title_share", 2023, 1): no indicator '
            "'senior_title_share'; did you mean senior_title_teacher_share_pct",
        ),
        (
            ("senior_title_teacher_share_pct", 2020, 1),
            'v("senior_title_teacher_share_pct", '
            "2020, 1): the report shows the years 2021, 2022, 2023, not 2020",
        ),
        (("senior_title_teacher_share_pct", "2023", 1), "not '2023'"),
        (("senior_title_teacher_share_pct", 2023, 9), "a whole number of decimals 0–6"),
        (
            ("senior_title_teacher_share_pct", 2023, 1, "柯桥"),
            "no county or school '柯桥'; did you mean 柯桥区",
        ),
        (("paper_books_count", 2023, 0, "", "千"), "scale must be 万 or 亿"),
    ],
)
def test_a_wrong_placeholder_is_named_in_the_error(values, arguments, message) -> None:
    with pytest.raises(PlaceholderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        values.bind(*arguments)


def _template(*paragraphs: str) -> bytes:
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


MANIFEST = {"report_year": 2023, "version": 1, "status": "final", "created_at": "2024-04-01"}


def _rendered(template: bytes, values: PublishedValues) -> list[str]:
    docx, _ = _render(template, "t.docx", None, MANIFEST, values, None, [])  # type: ignore[arg-type]
    return [p.text for p in Document(io.BytesIO(docx)).paragraphs]


def test_a_template_renders_with_the_cover_words(values) -> None:
    template = _template(
        "{{ city }}（{{ year }}年度）{{ status_zh }}",
        '高级职称占比{{ v("senior_title_teacher_share_pct", year, 1) }}%，上年'
        '{{ v("senior_title_teacher_share_pct", year - 1, 2) }}%。',
    )
    assert _rendered(template, values) == [
        "绍兴市（2023年度）正式版",
        "高级职称占比34.9%，上年33.73%。",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{{ v("senior_title_teacher_share_pct", year, 1 }}', "placeholder syntax error"),
        ("{{ vv('x', 2023, 1) }}", "'vv' is undefined; the names a template may use are"),
        ('{{ v("nope", year, 1) }}', 't.docx: placeholder v("nope", 2023, 1): no indicator'),
    ],
)
def test_template_errors_name_the_template_and_placeholder(values, text, message) -> None:
    with pytest.raises(ReportTemplateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _rendered(_template("前文。", text), values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("在校生46760人", [("46760", "46760", 0, "plain", "exact")]),
        ("在校生46,760人", [("46,760", "46760", 0, "plain", "exact")]),
        ("在校生４６７６０人", [("46760", "46760", 0, "plain", "exact")]),
        ("占３４．８％", [("34.8%", "34.8", 1, "percent", "exact")]),
        ("占34.8 %。", [("34.8 %", "34.8", 1, "percent", "exact")]),
        ("师生比为1：14.63", [("1:14.63", "14.63", 2, "ratio", "exact")]),
        ("纸质图书217万余册", [("217万余", "2170000", 0, "plain", "at_least")]),
        ("约193万平方米", [("193万", "1930000", 0, "plain", "about")]),
        ("155.61亿元", [("155.61亿", "15561000000", 2, "plain", "exact")]),
        ("2.5万人次左右", [("2.5万", "25000", 1, "plain", "about")]),
        ("100多家企业", [("100多", "100", 0, "plain", "at_least")]),
        ("2020—2023年，2022、2023年", []),
        ("2023年12月31日，2023届，2022学年", []),
        ("表5 就业质量情况；附表1；案例3；第2章", []),
        ("1.1 规模结构", []),
        ("2. 人才培养", []),
        ("发布于2024-03-31", []),
        ("实施2+1.5+1.5模式", []),
    ],
)
def test_numbers_are_read_as_printed(text, expected) -> None:
    found = [
        (n.text, format(n.value.normalize(), "f"), n.decimals, n.kind, n.approximation)
        for n in find_numbers(text)
    ]
    assert found == expected


@pytest.mark.parametrize(
    ("printed", "unrounded", "published", "agree"),
    [
        ("34.8%", 34.856, 34.86, False),  # half-up gives 34.9: the reference's contradiction
        ("34.9%", 34.856, 34.86, True),
        ("34.86%", 34.856, 34.86, True),
        ("2750", 2750.588, 2751.0, False),  # truncated
        ("2751", 2750.588, 2751.0, True),
        ("6.92%", 6.9149, 6.91, False),
        ("96.5%", 96.485, 96.49, True),  # from the published 96.49 (and the unrounded)
        ("34.9%", 34.849, 34.85, True),  # twice rounded (34.85 -> 34.9): accepted
        ("217万余", 2178548.0, 2178548.0, True),  # 217万 ≤ value < 218万
        ("218万余", 2178548.0, 2178548.0, False),
        ("约193万", 1930412.0, 1930412.0, True),
        ("约195万", 1930412.0, 1930412.0, False),
        ("218万", 2178548.0, 2178548.0, True),  # 217.85万 rounds to 218
        ("217万", 2178548.0, 2178548.0, False),
        ("1:14.63", 14.6307, 14.63, True),
    ],
)
def test_a_printed_figure_agrees_only_at_its_printed_precision(
    printed, unrounded, published, agree
) -> None:
    (number,) = find_numbers(printed)
    assert agrees(number, unrounded, published) is agree


def test_check_reads_words_units_years_and_regions(values) -> None:
    document = Document()
    document.add_paragraph(
        "全市高级职称教师占34.8%，上一年为33.73%；平均每校在校生规模即校均规模2751人。"
    )
    document.add_paragraph("柯桥区在校生9120人，全市在校生4.676万人，生师比1:14.63，比上年增长3%。")
    document.add_paragraph("2020—2023年累计培养高级职称教师50人。")
    buffer = io.BytesIO()
    document.save(buffer)
    result = check_document(buffer.getvalue(), VALUES, "绍兴市", 2023, load_terms())
    seen = [(n.printed, n.status, n.indicator_id, n.year, n.region) for n in result.numbers]
    assert seen == [
        ("34.8%", "disagrees", "senior_title_teacher_share_pct", 2023, "绍兴市"),
        ("33.73%", "agrees", "senior_title_teacher_share_pct", 2022, "绍兴市"),
        ("2751", "agrees", "avg_school_size_count", 2023, "绍兴市"),
        ("9120", "agrees", "enrolled_students_count", 2023, "柯桥区"),
        ("4.676万", "agrees", "enrolled_students_count", 2023, "绍兴市"),  # 全市 is nearer
        ("1:14.63", "agrees", "students_per_full_time_teacher_ratio", 2023, "绍兴市"),
        ("3%", "not_checked", "", None, ""),
        ("50", "not_checked", "", None, ""),
    ]
    assert result.disagreements[0].data_text == "34.9"


def test_a_bad_terms_catalogue_is_refused_naming_the_row(tmp_path) -> None:
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("indicator_id,term,position,note\nno_such_indicator,词,before,\n")
    with pytest.raises(ValueError, match=r"unknown.csv: no indicator \['no_such_indicator'\]"):
        load_terms(unknown)
    broken = tmp_path / "broken.csv"
    broken.write_text("indicator_id,term,position,note\nschool_count,学校(,before,\n")
    with pytest.raises(ValueError, match=r"broken.csv: bad term '学校\(' of school_count"):
        load_terms(broken)


DERIVED_CASES = Path(__file__).parent / "derived_cases"


def _derived_values() -> PublishedValues:
    frame = pl.read_csv(
        DERIVED_CASES / "indicator_values.csv", schema_overrides={"value_unrounded": pl.Float64}
    ).with_columns(
        pl.lit("浙江省").alias("province_name"),
        pl.lit("绍兴市").alias("city_name"),
        pl.col("value_unrounded").alias("indicator_value"),
    )
    return PublishedValues(frame, "绍兴市", 2023)


@pytest.mark.parametrize(
    "case",
    pl.read_csv(DERIVED_CASES / "expected.csv", infer_schema=False).iter_rows(named=True),
    ids=lambda case: f"{case['figure_id']}-{case['year']}-{case['region'] or 'city'}",
)
def test_derived_figures_equal_the_hand_computed_cases(case) -> None:
    bound = _derived_values().bind_derived(
        case["figure_id"], int(case["year"]), int(case["decimals"]), case["region"] or ""
    )
    assert bound.text == case["expected"], case["working"]
    assert bound.placeholder.startswith(f'd("{case["figure_id"]}"')


def test_a_wrong_derived_figure_is_named_in_the_error() -> None:
    values = _derived_values()
    with pytest.raises(PlaceholderError, match="no derived figure 'budget_change'"):
        values.bind_derived("budget_change", 2023, 2)
    with pytest.raises(PlaceholderError, match="a rank is a school's: name the school"):
        values.bind_derived("enrolled_students_rank", 2023, 0)


def test_a_derived_figure_renders_in_a_template() -> None:
    template = _template(
        '教育经费比上年增长{{ d("public_education_budget_change_pct", year, 2) }}%，'
        '在校生最多的学校为{{ d("enrolled_students_top3", year) }}。'
    )
    assert _rendered(template, _derived_values()) == [
        "教育经费比上年增长6.42%，在校生最多的学校为甲区中专、乙区职教中心、甲区职业高中。"
    ]


def test_a_bad_derived_catalogue_is_refused(tmp_path) -> None:
    from vetreport.report.derived import load_derived_figures

    path = tmp_path / "derived.csv"
    header = "figure_id,name_zh,kind,indicator_id,other_indicator_id,years,unit,decimals,note\n"
    path.write_text(header + "x,甲,average,graduates_count,,,人,0,\n")
    with pytest.raises(ValueError, match=r"line 2 \(x\): kind must be one of"):
        load_derived_figures(str(path))
    path.write_text(header + "y,乙,share,graduates_count,,,%,2,\n")
    with pytest.raises(ValueError, match=r"line 2 \(y\): a share needs other_indicator_id"):
        load_derived_figures(str(path))


def test_only_the_report_document_can_be_added_to_a_published_version(tmp_path) -> None:
    from vetreport.bucket.store import open_store
    from vetreport.publish.writer import attach_files

    store = open_store(str(tmp_path))
    with pytest.raises(ValueError, match=r"only report.docx, report.pdf can be attached"):
        attach_files(store, 2023, 1, {"tables.xlsx": b"x"})
    assert list(store.list("published/")) == []
