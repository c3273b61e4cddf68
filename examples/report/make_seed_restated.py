"""Writes seed_restated.docx: the 2023 Shaoxing report's figures, restated in our own words.

What belongs here: the test document of ``vetreport report check``. Every figure is the
one the seed report prints (tests/backtests/seed_figures_shaoxing_2023.csv), as it prints
it, contradictions included; the sentences around them are ours (the seed's text is not
ours to copy). expected_disagreements.csv beside it lists the figures the check must flag:
the known contradictions of docs/backtest.md that concern published figures.

    .venv/bin/python examples/report/make_seed_restated.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from docx import Document

OUTPUT = Path(__file__).with_name("seed_restated.docx")

# (kind, content): h = heading, p = paragraph, t = (caption, header, rows) a table
CONTENT: list[tuple[str, object]] = [
    ("h", "绍兴市中等职业教育质量年度报告（2023年度）核对稿"),
    ("h", "1.1 规模结构"),
    (
        "p",
        "2023年末全市常住人口533.7万。全市共有中等职业学校17所，其中公办学校15所、民办"
        "学校2所。在校生共46760人，其中中职生37111人，技工学生9649人，校均规模2750人。"
        "各校占地面积约193万平方米，校舍建筑面积147万余平方米。全市拥有国家级改革发展示范校"
        "4所、省级改革发展示范校7所、浙江省名校6所、浙江省高水平学校建设单位5所。",
    ),
    (
        "p",
        "2023年，全市普高招生28749人，中职招生15011人，中职学校招生占高中段招生比例为34.30%。",
    ),
    (
        "t",
        (
            "表1 招生普职比情况",
            ["年份", "普高招生数（人）", "中职招生数（人）", "中职学校招生占高中段招生比例（%）"],
            [
                ["2021年", "28052", "15972", "36.28"],
                ["2022年", "27579", "15697", "36.27"],
                ["2023年", "28749", "15011", "34.30"],
            ],
        ),
    ),
    ("h", "1.2 设施设备"),
    (
        "p",
        "2023年，生均教学实习仪器设备值为16398元，比上年增长3%。各校藏有纸质图书217万余册，"
        "生均纸质图书53.61册；另有电子图书194万余册。",
    ),
    (
        "t",
        (
            "表2 设施设备情况",
            ["年份", "教学实习仪器设备生均值（元）", "纸质图书（册）", "生均纸质图书（册）"],
            [
                ["2021年", "14455", "1990658", "41.55"],
                ["2022年", "15919", "2118868", "47.39"],
                ["2023年", "16398", "2178548", "53.61"],
            ],
        ),
    ),
    ("h", "1.3 教师队伍"),
    (
        "p",
        "全市中职学校现有教职工3406人，其中在编3162人；专任教师3196人，其中在编2989人。"
        "专任教师与在校中职生之比为1:14.63。",
    ),
    (
        "p",
        "在专任教师中，本科及以上学历的有2923人，占91.4%；研究生及以上学历的有221人，"
        "占6.92%；具有高级职称的有1114人，占34.8%。",
    ),
    (
        "t",
        (
            "表3 教师队伍数量",
            ["年份", "教职工数（人）", "专任教师（人）", "师生比（1:x）"],
            [
                ["2021年", "3550", "3238", "1:14.79"],
                ["2022年", "3413", "3202", "1:13.63"],
                ["2023年", "3406", "3196", "1:14.63"],
            ],
        ),
    ),
    (
        "t",
        (
            "表4 专任教师队伍情况",
            [
                "年份",
                "专任教师（人）",
                "本科及以上（人）",
                "本科及以上占比（%）",
                "研究生及以上（人）",
                "研究生及以上占比（%）",
                "高级职称（人）",
                "高级职称占比（%）",
            ],
            [
                ["2021年", "3238", "3156", "97.5", "249", "7.69", "1061", "32.8"],
                ["2022年", "3202", "3143", "98.2", "216", "6.75", "1080", "33.7"],
                ["2023年", "3196", "2923", "91.4", "221", "6.92", "1114", "34.8"],
            ],
        ),
    ),
    ("h", "2.3 技能大赛"),
    (
        "p",
        "师生在2023年全国职业院校技能大赛上共夺得11金、7银、3铜。2020-2023年，全市教师在"
        "全国教学能力比赛中累计收获12金8银5铜。",
    ),
    ("h", "2.4 就业质量"),
    (
        "p",
        "2023届毕业生共15903人，其中直接就业4672人，一次就业率（含升学）达99.6%，"
        "专业对口率为86.3%，初次就业月收入为3858元。",
    ),
    (
        "t",
        (
            "表5 就业质量情况",
            ["年份", "初次就业率（%）", "对口就业率（%）", "初次就业月收入（元）"],
            [
                ["2021年", "99.64", "96.89", "3133"],
                ["2022年", "99.65", "86.3", "2899"],
                ["2023年", "99.6", "96.5", "3858"],
            ],
        ),
    ),
    ("h", "2.5 升学情况"),
    (
        "p",
        "2023年升入高校的毕业生有11086人，其中通过单考单招升学5649人，其他途径升学5437人，"
        "升学率为69.7%；本科上线461人。",
    ),
    (
        "t",
        (
            "表6 升学质量情况",
            [
                "年份",
                "单考单招升学人数（人）",
                "其他升学人数（人）",
                "升学率（%）",
                "本科上线人数（人）",
            ],
            [
                ["2021年", "4903", "4966", "69.21", "452"],
                ["2022年", "5088", "6001", "69.67", "486"],
                ["2023年", "5649", "5437", "69.7", "465"],
            ],
        ),
    ),
    ("h", "3 服务贡献"),
    (
        "p",
        "一年来，各校承接企业技术攻关项目105项，助力企业技术创新68项；开展社会培训项目544项、"
        "117946人次；参与东西协作的学校有8所。",
    ),
    ("h", "6 产教融合"),
    (
        "p",
        "截至目前，全市累计建成产业学院65个、校企合作实训工厂（实验室）218个，组建职教集团26个。",
    ),
    ("h", "7 发展保障"),
    (
        "p",
        "2023年全市一般公共预算教育经费155.61亿元，比上年增长6.42%；中职生均一般公共预算教育"
        "经费29860.31元，增长4.37%。",
    ),
    (
        "p",
        "全市开设中高职一体化五年制专业166个、区域中高职一体化专业3个、中本一体化专业6个，"
        "长学制培养招生计划占比45.17%，比上年提高20%。",
    ),
]


def make_document(path: Path = OUTPUT) -> Path:
    """Write the test document to ``path``."""
    document = Document()
    for kind, content in CONTENT:
        if kind == "h":
            document.add_heading(str(content), level=1)
        elif kind == "p":
            document.add_paragraph(str(content))
        else:
            caption, header, rows = content  # type: ignore[misc]
            document.add_paragraph(caption)
            table = document.add_table(rows=len(rows) + 1, cols=len(header))
            for column, title in enumerate(header):
                table.cell(0, column).text = title
            for line, row in enumerate(rows, start=1):
                for column, text in enumerate(row):
                    table.cell(line, column).text = text
    document.save(path)
    return path


if __name__ == "__main__":
    print(make_document(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT))
