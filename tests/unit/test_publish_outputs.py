"""Every file of a published version: checksums, lineage, atomicity, changelog, statuses,
the workbook, the DuckDB database, the dictionary, the HTML report (in headless Chromium)
and the readers (Python and CLI), on the local and the S3 store.

The tables are shaped by the real aggregation code (``shape_tables``) from synthetic
indicator values for every indicator of the catalogue, so every table of tables.csv is
covered in its own layout, whatever tables the catalogue holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import threading
import zlib

import duckdb
import openpyxl
import polars as pl
import pytest

import vetreport
from schemas.indicators import indicator_definitions, load_table_specs
from tests.chromium import CHROMIUM_FLAGS, require_chromium
from vetreport.aggregate.compute import AggregateResult, shape_tables
from vetreport.bucket.store import open_store
from vetreport.cli.main import main
from vetreport.publish.reader import (
    ChecksumError,
    list_versions,
    read_pointer,
    read_table,
    read_table_bytes,
    read_version_file,
    table_lineage,
    verify_version,
)
from vetreport.publish.writer import FINAL, PROVISIONAL, REVISION, publish

YEAR = 2023
CITY = "绍兴市"
SCHOOLS = pl.DataFrame(
    {
        "school_code": ["3133060001", "3133060002", "3133060003", "3133060004"],
        "school_name": ["绍兴市中等专业学校", "柯桥区职业教育中心", "上虞区职业中专", "新昌县职校"],
        "county_name": ["越城区", "柯桥区", "上虞区", "新昌县"],
    }
)
VERSION_FILES = {
    "tables.xlsx",
    "tables.duckdb",
    "data_dictionary.md",
    "data_dictionary.json",
    "changelog.json",
    "changelog.md",
    "changelog_cells.parquet",
    "report.html",
    "submissions.parquet",
}


def synthetic_values(overrides: dict[tuple[str, str | None, int], float] | None = None):
    """Indicator values for every catalogue indicator: city rows and school rows."""
    definitions = indicator_definitions().select("indicator_id", "is_school_level")
    years = pl.DataFrame({"year": [YEAR - 2, YEAR - 1, YEAR]})
    city = definitions.join(years, how="cross").with_columns(
        pl.lit("city").alias("region_level"),
        pl.lit(None, pl.Utf8).alias("school_code"),
        pl.lit(None, pl.Utf8).alias("school_name"),
        pl.lit(None, pl.Utf8).alias("county_name"),
    )
    school = (
        definitions.filter(pl.col("is_school_level"))
        .join(years, how="cross")
        .join(SCHOOLS, how="cross")
        .with_columns(pl.lit("school").alias("region_level"))
    )
    values = (
        pl.concat([city, school], how="diagonal")
        .with_row_index("n")
        .with_columns(
            pl.lit(CITY).alias("city_name"),
            ((pl.col("n") * 37 % 900) + 50).cast(pl.Float64).alias("indicator_value"),
        )
        .drop("n", "is_school_level")
    )
    overrides = {
        ("vocational_admissions_share_pct", None, YEAR): 34.3,
        ("staff_count", None, YEAR): 3406.0,
        **(overrides or {}),
    }
    for (indicator, school_code, year), value in overrides.items():
        where = (
            (pl.col("indicator_id") == indicator)
            & (pl.col("year") == year)
            & (
                pl.col("school_code").is_null()
                if school_code is None
                else pl.col("school_code") == school_code
            )
        )
        values = values.with_columns(
            pl.when(where).then(value).otherwise(pl.col("indicator_value")).alias("indicator_value")
        )
    return values.with_columns(pl.col("indicator_value").alias("value_unrounded"))


def submissions(*ids: str) -> pl.DataFrame:
    datasets = ["staff", "enrollment", "graduates", "school_registry"]
    return pl.DataFrame(
        {
            "year": [YEAR] * len(ids),
            "dataset": [datasets[index % len(datasets)] for index in range(len(ids))],
            "submitter": ["3133060001"] * len(ids),
            "key": [f"uploads/{YEAR}/3133060001/{i}.csv" for i in ids],
            "version_token": [f"etag-{i}" for i in ids],
            "submission_id": list(ids),
        }
    )


def make_result(overrides=None, subs=("s1", "s2", "s3", "s4")) -> AggregateResult:
    values = synthetic_values(overrides)
    tables = shape_tables(values, YEAR)
    tables["notes"] = pl.DataFrame(
        {"school_code": ["3133060001", "3133060002"], "note": ['=HYPERLINK("x")', "@ok"]}
    )
    return AggregateResult(YEAR, values, tables, submissions(*subs))


@pytest.fixture(scope="module")
def base_result() -> AggregateResult:
    return make_result()


def version_keys(store, prefix: str) -> set[str]:
    return {
        info.key
        for info in store.list(prefix)
        if not info.key.endswith((".claim", "manifest.json"))
    }


def test_every_file_is_in_the_manifest_with_checksum_and_lineage(store_url, base_result) -> None:
    store = open_store(store_url)
    published = publish(store, base_result)
    manifest = json.loads(store.get(published.prefix + "manifest.json"))
    listed = {
        entry["key"]: entry
        for table in manifest["tables"].values()
        for entry in table["files"].values()
    } | {entry["key"]: entry for entry in manifest["files"].values()}
    assert version_keys(store, published.prefix) == set(listed)
    assert set(manifest["files"]) == VERSION_FILES
    for key, entry in listed.items():
        body = store.get(key)
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], key
        assert entry["size_bytes"] == len(body)
    for table_id, table in manifest["tables"].items():
        assert table["lineage"]["submission_count"], table_id
        assert table_lineage(store, table_id, YEAR).height == table["lineage"]["submission_count"]
    # staff, enrollment (students per teacher) and the registry; not graduates (s3)
    staff_lineage = table_lineage(store, "staff_size", YEAR)
    assert set(staff_lineage["submission_id"]) == {"s1", "s2", "s4"}
    assert set(staff_lineage.columns) >= {"key", "version_token", "submission_id"}
    assert manifest["submission_count"] == base_result.submissions.height
    every_table = set(base_result.tables) | {"indicator_values"}
    assert set(manifest["tables"]) == every_table
    for entry in manifest["files"].values():
        assert set(entry["tables"]) == every_table
    pointer = read_pointer(store, YEAR)
    assert (
        pointer["manifest_sha256"]
        == hashlib.sha256(store.get(published.prefix + "manifest.json")).hexdigest()
    )
    assert verify_version(store, YEAR)["version"] == 1


def test_a_reader_never_sees_a_mix_of_versions(store_url, base_result) -> None:
    store = open_store(store_url)
    reader_store = open_store(store_url)
    publish(store, base_result)
    expected = {1: 3406.0}
    stop = threading.Event()
    seen: list[int] = []
    failures: list[str] = []

    def read_forever() -> None:
        while not stop.is_set():
            try:
                pointer = read_pointer(reader_store, YEAR)
                manifest = verify_version(reader_store, YEAR)  # every file, every checksum
                if manifest["version"] < pointer["version"]:
                    failures.append(f"manifest v{manifest['version']} < v{pointer['version']}")
                staff = read_table(reader_store, "staff_size", YEAR, manifest["version"])
                value = staff.filter(pl.col("year") == YEAR).item(0, "staff_count")
                if value != expected[manifest["version"]]:
                    failures.append(f"v{manifest['version']} shows {value}")
                seen.append(manifest["version"])
            except Exception as error:  # any failure is a test failure
                failures.append(repr(error))
            stop.wait(0.02)  # let the publisher (and moto, in this process) breathe

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for version in (2, 3):
            value = 3406.0 + version
            expected[version] = value
            result = make_result({("staff_count", None, YEAR): value})
            assert publish(store, result).version == version
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not failures, failures[:5]
    assert len(seen) >= 3
    assert seen == sorted(seen)  # the pointer only moves forward
    assert read_pointer(store, YEAR)["version"] == 3


def test_unchanged_data_creates_no_version(tmp_path, base_result) -> None:
    store = open_store(str(tmp_path / "bucket"))
    first = publish(store, base_result)
    before = sorted((info.key, info.etag) for info in store.list("published/"))
    again = publish(store, make_result())
    assert (again.version, again.is_new_version) == (first.version, False)
    assert sorted((info.key, info.etag) for info in store.list("published/")) == before
    assert [entry["version"] for entry in list_versions(store, YEAR)] == [1]


def test_changelog_lists_changed_cells_and_the_submissions_that_caused_them(
    tmp_path, base_result
) -> None:
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    corrected = make_result(
        {("staff_count", None, YEAR): 3410.0, ("staff_count", "3133060002", YEAR): 222.0},
        subs=("s1", "s2", "s3", "s5"),
    )
    second = publish(store, corrected)
    changelog = json.loads(read_version_file(store, YEAR, "changelog.json"))
    assert changelog["previous_version"] == 1
    assert changelog["submissions"]["added"][0]["submission_id"] == "s5"
    assert changelog["submissions"]["removed"][0]["submission_id"] == "s4"
    tables = {entry["table_id"]: entry for entry in changelog["tables"]}
    staff = tables["staff_size"]
    assert staff["change"] == "changed"
    assert staff["cells"] == [
        {
            "row": {"year": YEAR, "city_name": CITY},
            "column": "staff_count",
            "column_zh": "教职工数",
            "old": 3406,
            "new": 3410,
            "change": "changed",
        }
    ]
    school_cells = tables["staff_size_by_school"]["cells"]
    assert [(c["row"]["school_code"], c["old"], c["new"]) for c in school_cells] == [
        ("3133060002", pytest.approx(school_cells[0]["old"]), 222)
    ]
    assert "s5" in staff["submissions_added"] and "s4" in staff["submissions_removed"]
    assert tables["admissions"]["change"] == "unchanged"
    cells = pl.read_parquet(io.BytesIO(read_version_file(store, YEAR, "changelog_cells.parquet")))
    assert cells.filter(pl.col("table_id") == "staff_size").height == 1
    markdown = read_version_file(store, YEAR, "changelog.md").decode()
    assert "| 3406 | 3410 |" in markdown.replace(".0 |", " |")
    assert "s5" in markdown and "s4" in markdown
    assert second.manifest["changelog"]["cells_changed"] == changelog["summary"]["cells_changed"]


def test_final_then_a_correction_is_a_revision_and_the_final_stays_readable(
    tmp_path, base_result
) -> None:
    # storage behaviour is covered on both stores above; this is about statuses
    store = open_store(str(tmp_path / "bucket"))
    assert publish(store, base_result).status == PROVISIONAL
    final = publish(store, base_result, FINAL)
    assert (final.version, final.status, final.is_new_version) == (2, FINAL, True)
    final_changelog = json.loads(read_version_file(store, YEAR, "changelog.json"))
    assert final_changelog["summary"]["cells_changed"] == 0
    # unchanged data after a final publishes nothing, whatever status is asked for
    assert publish(store, base_result, PROVISIONAL).is_new_version is False
    assert publish(store, base_result, FINAL).is_new_version is False
    corrected = make_result({("staff_count", None, YEAR): 3500.0})
    revision = publish(store, corrected, PROVISIONAL)
    assert (revision.version, revision.status, revision.revision_of) == (3, REVISION, 2)
    again = publish(store, make_result({("staff_count", None, YEAR): 3501.0}), FINAL)
    assert (again.version, again.status, again.revision_of) == (4, REVISION, 2)
    changelog = json.loads(read_version_file(store, YEAR, "changelog.json"))
    assert changelog["status"] == REVISION and changelog["revision_of"] == 2
    assert changelog["tables"]
    staff_final = read_table(store, "staff_size", YEAR, 2).filter(pl.col("year") == YEAR)
    assert staff_final.item(0, "staff_count") == 3406.0
    staff_latest = read_table(store, "staff_size", YEAR).filter(pl.col("year") == YEAR)
    assert staff_latest.item(0, "staff_count") == 3501.0
    versions = list_versions(store, YEAR)
    assert [(v["version"], v["status"], v["revision_of"], v["is_latest"]) for v in versions] == [
        (1, PROVISIONAL, None, False),
        (2, FINAL, None, False),
        (3, REVISION, 2, False),
        (4, REVISION, 2, True),
    ]
    html = read_version_file(store, YEAR, "report.html").decode()
    assert "修订版" in html


def test_workbook_has_a_sheet_per_table_with_titles_headers_and_formats(
    tmp_path, base_result
) -> None:
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    workbook = openpyxl.load_workbook(io.BytesIO(read_version_file(store, YEAR, "tables.xlsx")))
    manifest = verify_version(store, YEAR)
    sheets = {table_id: entry["sheet"] for table_id, entry in manifest["tables"].items()}
    assert len(workbook.sheetnames) == len(manifest["tables"]) + 1  # + 目录
    assert set(sheets.values()) == set(workbook.sheetnames) - {"目录"}
    first = workbook[sheets["admissions"]]
    assert first["A1"].value == "表1 招生普职比情况"
    headers = [cell.value for cell in first[3]]
    assert headers == [
        "年份",
        "普高招生数（人）",
        "中职招生数（人）",
        "中职学校招生占高中段招生比例（%）",
    ]
    last = [cell for cell in first[6]]
    assert last[0].value == YEAR
    assert last[3].value == pytest.approx(34.3)
    assert last[3].number_format == '0.00"%"'
    assert last[1].number_format == "0"
    staff = workbook[sheets["staff_size"]]
    ratio_column = [cell.value for cell in staff[3]].index("师生比（1:x）") + 1
    assert staff.cell(4, ratio_column).number_format == '"1:"0.00'
    for spec in load_table_specs():
        sheet = workbook[sheets[spec.table_id]]
        assert sheet["A1"].value == f"{spec.report_label} {spec.title_zh}"
        if spec.layout == "indicators_as_rows":
            header = [cell.value for cell in sheet[3]]
            assert header[:2] == ["指标", "单位"]
            assert header[2:] == [f"{year}年" for year in range(YEAR - 2, YEAR + 1)]
            units = {row[1].value: row[2].number_format for row in sheet.iter_rows(min_row=4)}
            if "%" in units:
                assert units["%"] == '0.00"%"'
    notes = workbook[sheets["notes"]]
    values = [notes.cell(row, 2).value for row in (4, 5)]
    assert values == ['\'=HYPERLINK("x")', "'@ok"]
    assert notes.cell(4, 2).data_type == "s"


def test_duckdb_file_opens_read_only_and_answers_queries(tmp_path, base_result) -> None:
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    path = tmp_path / "tables.duckdb"
    path.write_bytes(read_version_file(store, YEAR, "tables.duckdb"))
    with duckdb.connect(str(path), read_only=True) as connection:
        share = connection.execute(
            "select vocational_admissions_share_pct from admissions where year = ?", [YEAR]
        ).fetchone()[0]
        assert share == pytest.approx(34.3)
        tables = {row[0] for row in connection.execute("show tables").fetchall()}
        assert set(base_result.tables) | {"indicator_values", "_tables", "_columns"} <= tables
        name = connection.execute(
            "select name_zh from _columns where table_id = 'staff_size' "
            "and column_name = 'staff_count'"
        ).fetchone()[0]
        assert name == "教职工数"
        version = connection.execute("select version, status from _version").fetchone()
        assert version == (1, PROVISIONAL)


def test_data_dictionary_covers_every_table_and_column(tmp_path, base_result) -> None:
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    dictionary = json.loads(read_version_file(store, YEAR, "data_dictionary.json"))
    tables = {table["table_id"]: table for table in dictionary["tables"]}
    assert set(tables) == set(base_result.tables) | {"indicator_values"}
    for table_id, frame in base_result.tables.items():
        assert [column["name"] for column in tables[table_id]["columns"]] == frame.columns
    share = next(
        c for c in tables["admissions"]["columns"] if c["name"] == "vocational_admissions_share_pct"
    )
    assert share["name_zh"] == "中职学校招生占高中段招生比例" and share["unit"] == "%"
    assert [t["measure_id"] for t in share["formula"]["denominator"]] == [
        "admissions_count",
        "general_high_school_admissions_count",
    ]
    assert share["source_datasets"] == ["enrollment", "city_reference"]
    assert tables["admissions"]["files"]["csv"] == "tables/admissions.csv"
    scorecard = tables["scorecard"]
    assert scorecard["layout"] == "indicators_as_rows" and scorecard["indicator_rows"]
    markdown = read_version_file(store, YEAR, "data_dictionary.md").decode()
    assert "## admissions — 表1 招生普职比情况" in markdown
    assert "`vocational_admissions_share_pct`" in markdown


def test_readers_verify_checksums_of_every_format(store_url, base_result) -> None:
    store = open_store(store_url)
    published = publish(store, base_result)
    csv = read_table_bytes(store, "admissions", YEAR, file_format="csv")
    assert csv.startswith(b"\xef\xbb\xbf") and b"34.3" in csv
    xlsx = read_table_bytes(store, "admissions", YEAR, 1, "xlsx")
    assert openpyxl.load_workbook(io.BytesIO(xlsx))["表1 招生普职比情况"]["A1"].value
    frame = vetreport.read_table(store_url, "admissions", YEAR)
    assert frame.filter(pl.col("year") == YEAR).item(0, "vocational_admissions_share_pct") == 34.3
    store.put(published.prefix + "tables/admissions.csv", csv.replace(b"34.3", b"43.3"))
    with pytest.raises(ChecksumError):
        read_table_bytes(store, "admissions", YEAR, file_format="csv")
    store.put(published.prefix + "report.html", b"<html>tampered</html>")
    with pytest.raises(ChecksumError):
        read_version_file(store, YEAR, "report.html")
    with pytest.raises(ChecksumError):
        verify_version(store, YEAR)


def test_cli_lists_versions_and_gets_tables(tmp_path, capsys, base_result) -> None:
    bucket = tmp_path / "bucket"
    store = open_store(str(bucket))
    publish(store, base_result)
    publish(store, base_result, FINAL)
    publish(store, make_result({("staff_count", None, YEAR): 3500.0}))
    assert main(["tables", "list", "--bucket", str(bucket)]) == 0
    listing = capsys.readouterr().out
    assert "v1" in listing and "final" in listing and "revision of v2" in listing
    assert listing.strip().splitlines()[-1].endswith("<- latest")
    out = tmp_path / "staff.xlsx"
    argv = ["tables", "get", "staff_size", "--year", str(YEAR), "--version", "2"]
    assert main([*argv, "--format", "xlsx", "--out", str(out), "--bucket", str(bucket)]) == 0
    sheet = openpyxl.load_workbook(out)["表3 教师队伍数量"]
    assert sheet["A1"].value == "表3 教师队伍数量"
    assert main([*argv, "--bucket", str(bucket)]) == 0
    printed = capsys.readouterr().out
    assert "3406" in printed and "3500" not in printed
    parquet = tmp_path / "staff.parquet"
    assert main([*argv, "--format", "parquet", "--out", str(parquet), "--bucket", str(bucket)]) == 0
    assert pl.read_parquet(parquet).equals(read_table(store, "staff_size", YEAR, 2))
    assert main(["tables", "get", "nope", "--year", str(YEAR), "--bucket", str(bucket)]) == 2
    # the report's own names work as well as the ids (full-width digits folded)
    for name in ("表3", "表３", "教师队伍数量"):
        assert main(["tables", "get", name, "--year", str(YEAR), "--bucket", str(bucket)]) == 0
        assert "3500" in capsys.readouterr().out


# -- the HTML report in a real browser -----------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed image data of a PNG (no library needed)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    position, idat = 8, b""
    width = height = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(tmp_path, base_result) -> None:
    browser = require_chromium()
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    page = tmp_path / "report.html"
    page.write_bytes(read_version_file(store, YEAR, "report.html"))
    profile = tmp_path / "profile"
    flags = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count("<svg") >= 20  # trend charts of 表1–表6 and per-school bar charts
    assert "<path" in dom and "<rect" in dom and "<circle" in dom
    assert "34.30%" in dom and "3406" in dom
    assert "表1 招生普职比情况" in dom and "分学校比较" in dom
    assert "http://" not in dom.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    assert shot.stat().st_size > 20_000
    assert len(set(pixels[: 1280 * 4 * 600])) > 20  # more than a blank page


def test_status_must_be_known(tmp_path, base_result) -> None:
    store = open_store(str(tmp_path / "bucket"))
    with pytest.raises(ValueError, match="status"):
        publish(store, base_result, "draft")
    with pytest.raises(ValueError, match="final"):
        publish(store, base_result, REVISION)


def test_the_publish_artifact_lists_only_what_changed_with_links_that_open(
    store_url, base_result, monkeypatch
) -> None:
    import re
    import urllib.request
    from pathlib import Path

    from vetreport.publish.summary import version_markdown
    from vetreport.serve.files import make_file_server

    store = open_store(store_url)
    publish(store, base_result)
    corrected = make_result(
        {("staff_count", None, YEAR): 3410.0, ("staff_count", "3133060002", YEAR): 222.0}
    )
    assert publish(store, corrected).version == 2
    changelog = json.loads(read_version_file(store, YEAR, "changelog.json", 2))
    changed = [entry["table_id"] for entry in changelog["tables"] if entry["change"] != "unchanged"]
    unchanged = len(changelog["tables"]) - len(changed)
    assert changed and unchanged  # the test means something only with both kinds
    files = None
    if "://" not in store_url:  # a folder bucket links to its file server
        files = make_file_server(Path(store_url), 0)
        threading.Thread(target=files.serve_forever, daemon=True).start()
        monkeypatch.setenv("VETREPORT_FILES_PORT", str(files.server_address[1]))
    try:
        markdown = version_markdown(store, YEAR, 2)
        assert markdown.startswith(f"# {YEAR} v2 (provisional)")
        cells = changelog["summary"]["cells_changed"]
        assert f"**{len(changed)} tables changed, {cells} cells changed**" in markdown
        assert f"({len(changed)}; {unchanged} unchanged not listed)" in markdown
        listed = re.findall(r"^\| [^|]+ \| `([a-z0-9_]+)` \| 变化 changed \|", markdown, re.M)
        assert listed == changed
        assert "file://" not in markdown
        links = dict(re.findall(r"\[([^\]]+)\]\((http[^)]+)\)", markdown))
        with urllib.request.urlopen(links["报告 report"], timeout=10) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
        staff_csv = re.search(r"`staff_size` .*\[csv\]\((http[^)]+)\)", markdown)[1]
        with urllib.request.urlopen(staff_csv, timeout=10) as reply:
            assert reply.read() == read_table_bytes(store, "staff_size", YEAR, 2, "csv")
    finally:
        if files is not None:
            files.shutdown()
            files.server_close()

    first = version_markdown(store, YEAR, 1)
    assert "第一个版本 First version" in first
    assert len(re.findall(r"\| 新增 added \|", first)) == len(changelog["tables"])


def test_a_sheet_shows_at_most_the_configured_rows(tmp_path, base_result, monkeypatch) -> None:
    monkeypatch.setenv("VETREPORT_WORKBOOK_SHEET_ROWS", "2")
    store = open_store(str(tmp_path / "bucket"))
    publish(store, base_result)
    workbook = openpyxl.load_workbook(io.BytesIO(read_version_file(store, YEAR, "tables.xlsx")))
    manifest = verify_version(store, YEAR)
    entry = manifest["tables"]["indicator_values"]
    assert entry["row_count"] > 2
    sheet = workbook[entry["sheet"]]
    assert sheet.max_row == 3 + 2  # title, subtitle, header, two rows
    assert f"共 {entry['row_count']} 行" in sheet["A2"].value
    assert read_table(store, "indicator_values", YEAR).height == entry["row_count"]
