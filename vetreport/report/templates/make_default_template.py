"""Writes default_report.docx, the default report template, from the text below.

What belongs here: the default template's chapters (laid out like a city's 中等职业教育质量
年度报告), its sample narrative (our own wording) and its placeholders. The .docx is
committed beside this script; re-make it with

    .venv/bin/python vetreport/report/templates/make_default_template.py

A bureau edits the .docx in Word instead (docs/report-writing.md); this script is the
reviewable source of the default one. Every paragraph is written as one run, so docxtpl
sees each placeholder whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt

OUTPUT = Path(__file__).with_name("default_report.docx")
EAST_ASIAN_FONT = "宋体"
HEADING_FONT = "黑体"


def V(indicator_id: str, decimals: int, year: str = "year", **options: str) -> str:  # noqa: N802
    """A placeholder as a writer types it."""
    extra = "".join(f', {name}="{value}"' for name, value in options.items())
    return f'{{{{ v("{indicator_id}", {year}, {decimals}{extra}) }}}}'


# (kind, text): kind is title, subtitle, h1, h2, p (body) or block (a {{p ...}} line)
CONTENT: list[tuple[str, str]] = [
    ("title", "{{ city }}中等职业教育质量年度报告"),
    ("subtitle", "（{{ year }}年度）"),
    ("subtitle", "{{ status_zh }} · 数据版本 v{{ version }} · 发布于 {{ published_at }}"),
    ("subtitle", "{{ city }}教育局"),
    ("block", "{{p changelog() }}"),
    ("h1", "1. 基本情况"),
    ("h2", "1.1 规模结构"),
    (
        "p",
        f"截至{{{{ year }}}}年底，全市常住人口{V('resident_population_count', 0, scale='万')}万人，"
        f"共有中等职业学校{V('school_count', 0)}所，其中公办{V('public_school_count', 0)}所、"
        f"民办{V('private_school_count', 0)}所；在校生{V('enrolled_students_count', 0)}人，"
        f"其中中职在校生{V('enrolled_secondary_students_count', 0)}人、技工学校在校生"
        f"{V('enrolled_technician_students_count', 0)}人，校均规模"
        f"{V('avg_school_size_count', 0)}人。",
    ),
    (
        "p",
        f"全市中职学校校园占地面积约{V('land_area_m2', 0, scale='万')}万平方米，校舍建筑面积约"
        f"{V('building_area_m2', 0, scale='万')}万平方米。现有国家级改革发展示范校"
        f"{V('national_demo_school_count', 0)}所、省级改革发展示范校"
        f"{V('provincial_demo_school_count', 0)}所、浙江省名校"
        f"{V('provincial_famous_school_count', 0)}所、省高水平学校建设单位"
        f"{V('provincial_high_level_school_count', 0)}所。",
    ),
    (
        "p",
        f"{{{{ year }}}}年全市中职学校招生{V('vocational_admissions_count', 0)}人，"
        f"占高中段招生的{V('vocational_admissions_share_pct', 2)}%，普职比保持大体相当。",
    ),
    ("block", '{{p table("表1") }}'),
    ("h2", "1.2 设施设备"),
    (
        "p",
        f"生均教学实习仪器设备值{V('equipment_value_per_student_yuan', 0)}元，"
        f"比上一年的{V('equipment_value_per_student_yuan', 0, 'year - 1')}元有所提高；"
        f"纸质图书约{V('paper_books_count', 0, scale='万')}万册，生均"
        f"{V('paper_books_per_student_count', 2)}册，电子图书约"
        f"{V('ebooks_count', 0, scale='万')}万册；生均实践场所面积"
        f"{V('practice_area_per_student_m2', 2)}平方米。",
    ),
    ("block", '{{p table("表2") }}'),
    ("h2", "1.3 教师队伍"),
    (
        "p",
        f"全市中职学校共有教职工{V('staff_count', 0)}人，其中在编"
        f"{V('established_staff_count', 0)}人；专任教师{V('full_time_teacher_count', 0)}人，"
        f"其中在编{V('established_full_time_teacher_count', 0)}人，生师比为"
        f"1:{V('students_per_full_time_teacher_ratio', 2)}。",
    ),
    (
        "p",
        f"专任教师中本科及以上学历{V('bachelor_plus_teacher_count', 0)}人，占"
        f"{V('bachelor_plus_teacher_share_pct', 2)}%；研究生及以上"
        f"{V('postgraduate_teacher_count', 0)}人，占{V('postgraduate_teacher_share_pct', 2)}%；"
        f"具有高级职称{V('senior_title_teacher_count', 0)}人，占"
        f"{V('senior_title_teacher_share_pct', 2)}%；双师型教师占专业课教师的"
        f"{V('dual_qualified_teacher_share_pct', 1)}%。市级以上名优教师占专任教师的"
        f"{V('famous_teacher_share_pct', 1)}%，本年新增国家级名优教师"
        f"{V('new_national_famous_teacher_count', 0)}人次、省市级名优教师"
        f"{V('new_provincial_city_famous_teacher_count', 0)}人次。",
    ),
    ("block", '{{p table("表3") }}'),
    ("block", '{{p table("表4") }}'),
    ("h1", "2. 人才培养"),
    ("h2", "2.1 党建引领"),
    ("p", "（此处由各地填写党建引领、立德树人的做法与成效，可引用典型案例。）"),
    ("h2", "2.2 技能大赛"),
    (
        "p",
        f"{{{{ year }}}}年全市中职学校在全国职业院校技能大赛中获得金牌"
        f"{V('national_skills_gold_count', 0)}枚、银牌{V('national_skills_silver_count', 0)}枚、"
        f"铜牌{V('national_skills_bronze_count', 0)}枚；学生获国家级竞赛奖项"
        f"{V('national_student_award_count', 0)}项、省级奖项"
        f"{V('provincial_student_award_count', 0)}项。在本市承办的赛项中，师生获金牌"
        f"{V('hosted_event_gold_count', 0)}枚、银牌{V('hosted_event_silver_count', 0)}枚、"
        f"铜牌{V('hosted_event_bronze_count', 0)}枚；德育与思政相关赛项获金牌"
        f"{V('national_moral_education_gold_count', 0)}枚、银牌"
        f"{V('national_moral_education_silver_count', 0)}枚。",
    ),
    ("h2", "2.3 就业质量"),
    (
        "p",
        f"{{{{ year }}}}届毕业生{V('graduates_count', 0)}人，直接就业"
        f"{V('direct_employment_count', 0)}人，初次就业率（含升学）"
        f"{V('initial_employment_rate_pct', 1)}%，对口就业率"
        f"{V('matched_employment_rate_pct', 1)}%（上一年为"
        f"{V('matched_employment_rate_pct', 1, 'year - 1')}%），初次就业月收入"
        f"{V('starting_monthly_income_yuan', 0)}元。毕业生满意度"
        f"{V('graduate_satisfaction_pct', 2)}%，用人单位满意度"
        f"{V('employer_satisfaction_pct', 2)}%。直接就业的毕业生中，在本地就业的占"
        f"{V('local_employment_rate_pct', 1)}%，在第三产业就业的占"
        f"{V('tertiary_industry_employment_share_pct', 1)}%；毕业生双证书获取率"
        f"{V('dual_certificate_rate_pct', 1)}%，1+X证书获取率"
        f"{V('one_x_certificate_rate_pct', 1)}%，巩固率{V('retention_rate_pct', 1)}%。",
    ),
    ("block", '{{p table("表5") }}'),
    ("h2", "2.4 升学情况"),
    (
        "p",
        f"升入高校的毕业生{V('further_study_count', 0)}人，升学率"
        f"{V('further_study_rate_pct', 1)}%；其中单考单招升学"
        f"{V('exam_track_further_study_count', 0)}人，其他途径升学"
        f"{V('other_further_study_count', 0)}人，本科上线{V('undergraduate_line_count', 0)}人；"
        f"升入本科{V('undergraduate_entrants_count', 0)}人，其中中本一体化"
        f"{V('integrated_undergraduate_entrants_count', 0)}人。",
    ),
    ("block", '{{p table("表6") }}'),
    ("h1", "3. 服务贡献"),
    (
        "p",
        f"各校承接企业技术攻关项目{V('enterprise_projects_count', 0)}项，助力企业技术创新"
        f"{V('enterprise_innovations_count', 0)}项；开展社会培训项目"
        f"{V('social_training_programs_count', 0)}项、"
        f"{V('social_training_person_times', 0)}人次，约为在校生数的"
        f"{V('social_training_per_student_ratio', 1)}倍；参与东西部协作的学校"
        f"{V('east_west_cooperation_school_count', 0)}所。",
    ),
    (
        "p",
        f"东西部协作班在读学生{V('east_west_students_count', 0)}人，各校派出教师"
        f"{V('east_west_teacher_batches_count', 0)}批次，帮扶捐赠"
        f"{V('east_west_donation_yuan', 1, scale='万')}万元，东西协作合作企业"
        f"{V('east_west_partner_enterprises_count', 0)}家；协作班毕业生"
        f"{V('east_west_graduates_count', 0)}人，本地就业率"
        f"{V('east_west_local_employment_rate_pct', 1)}%。各校申请专利"
        f"{V('patent_applications_count', 0)}项（其中发明专利"
        f"{V('invention_patent_applications_count', 0)}项），纵向科研到款额"
        f"{V('vertical_research_income_yuan', 1, scale='万')}万元，技术交易到款额"
        f"{V('technology_transaction_income_yuan', 1, scale='万')}万元。",
    ),
    ("h1", "4. 文化传承"),
    ("p", "（此处由各地填写校园文化建设、传承中华优秀传统文化的做法，可引用典型案例。）"),
    ("h1", "5. 国际合作"),
    (
        "p",
        f"全日制国（境）外留学生{V('international_students_count', 0)}人，中外合作办学项目"
        f"{V('international_cooperation_projects_count', 0)}个。",
    ),
    ("h1", "6. 产教融合"),
    (
        "p",
        f"累计建成产业学院{V('industry_colleges_count', 0)}个、校企合作实训工厂（实验室）"
        f"{V('training_factories_count', 0)}个，参与职教集团"
        f"{V('led_vocational_groups_count', 0)}个，"
        f"合作企业{V('partner_enterprises_count', 0)}家。",
    ),
    ("h1", "7. 发展保障"),
    (
        "p",
        f"全市一般公共预算教育经费{V('public_education_budget_yuan', 2, scale='亿')}亿元，"
        "比上年增长"
        '{{ d("public_education_budget_change_pct", year, 2) }}%；'
        f"中职生均一般公共预算教育经费{V('fiscal_appropriation_per_student_yuan', 2)}元，比上年增长"
        '{{ d("fiscal_appropriation_per_student_change_pct", year, 2) }}%；'
        f"开设中高职一体化五年制专业{V('five_year_integrated_programs_count', 0)}个、"
        f"中本一体化专业{V('undergraduate_integrated_programs_count', 0)}个，长学制培养招生计划占比"
        f"{V('long_program_plan_share_pct', 2)}%。本年新建、改扩建投入"
        f"{V('capital_construction_yuan', 2, scale='亿')}亿元。",
    ),
    ("h1", "8. 面临挑战"),
    ("p", "（此处由各地填写面临的挑战与下一步打算。）"),
    ("h1", "附表"),
    ("block", '{{p table("附表1") }}'),
    ("block", '{{p table("附表2") }}'),
    ("block", '{{p table("附表3") }}'),
    ("block", '{{p table("附表4") }}'),
    ("block", '{{p table("附表5") }}'),
    ("block", '{{p table("附表6") }}'),
]


def _east_asian(style_or_run: object, font: str) -> None:
    element = style_or_run.element  # type: ignore[attr-defined]
    properties = element.get_or_add_rPr()
    fonts = properties.find(qn("w:rFonts"))
    if fonts is None:
        fonts = properties.makeelement(qn("w:rFonts"), {})
        properties.append(fonts)
    fonts.set(qn("w:eastAsia"), font)


def make_template(path: Path = OUTPUT) -> Path:
    """Write the default template to ``path``."""
    document = Document()
    normal = document.styles["Normal"]
    normal.font.size = Pt(12)
    _east_asian(normal, EAST_ASIAN_FONT)
    for name in ("Title", "Heading 1", "Heading 2"):
        _east_asian(document.styles[name], HEADING_FONT)
    for kind, text in CONTENT:
        if kind == "title":
            paragraph = document.add_heading(text, level=0)
        elif kind == "h1":
            paragraph = document.add_heading(text, level=1)
        elif kind == "h2":
            paragraph = document.add_heading(text, level=2)
        else:
            paragraph = document.add_paragraph(text)
        if kind in ("title", "subtitle"):
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        if kind == "p":
            paragraph.paragraph_format.first_line_indent = Pt(24)
    document.core_properties.title = "中等职业教育质量年度报告（模板）"
    document.core_properties.author = "vetreport"
    document.save(path)
    return path


if __name__ == "__main__":
    print(make_template(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT))
