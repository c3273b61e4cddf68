"""Hostile uploads against vetreport.validate.untrusted, each built in memory by its test.

No fixture file is committed: zips that lie about their sizes, sheets that reach XFD1048576,
encrypted OOXML and old .xls containers, binary CSVs and damaged workbooks are all made
here from raw bytes, zipfile, openpyxl or xlsxwriter.
"""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, NoReturn

import openpyxl
import pytest
import xlsxwriter

from vetreport.validate import untrusted
from vetreport.validate.untrusted import (
    Limits,
    UntrustedFileError,
    XlsxSummary,
    check_csv_bytes,
    check_ole_bytes,
    check_xlsx_bytes,
)

MiB = 1024 * 1024
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def refused(call: Callable[..., object], *args: object) -> UntrustedFileError:
    """Run a check that must refuse, and return its error."""
    with pytest.raises(UntrustedFileError) as caught:
        call(*args)
    return caught.value


# --- building zips by hand, lies included -----------------------------------------------------


@dataclass(frozen=True)
class RawMember:
    """One zip member exactly as written: payload as stored, headers as declared."""

    name: str
    payload: bytes
    method: int
    crc: int
    compressed_size: int
    file_size: int
    flags: int = 0
    local_name: str | None = None


def deflate(content: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(content) + compressor.flush()


def honest(name: str, content: bytes | str) -> RawMember:
    raw = content.encode() if isinstance(content, str) else content
    payload = deflate(raw)
    return RawMember(name, payload, 8, zlib.crc32(raw), len(payload), len(raw))


def raw_zip(members: list[RawMember]) -> bytes:
    """A zip whose local and central headers say exactly what each RawMember declares."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        name = m.name.encode()
        local = (m.local_name or m.name).encode()
        out.write(
            struct.pack(
                "<4sHHHHHLLLHH",
                b"PK\x03\x04",
                20,
                m.flags,
                m.method,
                0,
                0x21,
                m.crc,
                m.compressed_size,
                m.file_size,
                len(local),
                0,
            )
            + local
            + m.payload
        )
        central.append(
            struct.pack(
                "<4sHHHHHHLLLHHHHHLL",
                b"PK\x01\x02",
                20,
                20,
                m.flags,
                m.method,
                0,
                0x21,
                m.crc,
                m.compressed_size,
                m.file_size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    directory = b"".join(central)
    start = out.tell()
    out.write(directory)
    out.write(
        struct.pack(
            "<4sHHHHLLH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0
        )
    )
    return out.getvalue()


# --- minimal workbooks -------------------------------------------------------------------------


def sheet_xml(rows: str, dimension: str | None = None, extra_ns: str = "") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"{extra_ns}>{dim}'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def cells(*refs: str) -> str:
    """Numeric cells at the given references, grouped into rows in the usual form."""
    by_row: dict[int, list[str]] = {}
    for ref in refs:
        row = int("".join(ch for ch in ref if ch.isdigit()))
        by_row.setdefault(row, []).append(f'<c r="{ref}"><v>1</v></c>')
    return "".join(f'<row r="{row}">{"".join(cs)}</row>' for row, cs in sorted(by_row.items()))


def workbook_parts(
    sheets: list[tuple[str, str]],
    *,
    parts: list[str] | None = None,
    shared_strings: str | None = None,
    states: dict[str, str] | None = None,
) -> dict[str, str]:
    """The parts calamine needs for these sheets (part targets relative to xl/ by default)."""
    parts = parts or [f"worksheets/sheet{i}.xml" for i in range(1, len(sheets) + 1)]
    states = states or {}
    sheet_tags = "".join(
        f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"'
        + (f' state="{states[name]}"' if name in states else "")
        + "/>"
        for i, (name, _) in enumerate(sheets, 1)
    )
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{REL_NS}/worksheet" Target="{part}"/>'
        for i, part in enumerate(parts, 1)
    )
    contents = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.'
        'org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
        "</Types>",
        "_rels/.rels": f'<?xml version="1.0"?><Relationships xmlns="{PKG_REL_NS}"><Relationship '
        f'Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
        f"<sheets>{sheet_tags}</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0"?><Relationships xmlns="{PKG_REL_NS}">'
        f"{rels}</Relationships>",
    }
    for part, (_, xml) in zip(parts, sheets, strict=True):
        contents[part[1:] if part.startswith("/") else f"xl/{part}"] = xml
    if shared_strings is not None:
        contents["xl/sharedStrings.xml"] = shared_strings
    return contents


def workbook_members(sheets: list[tuple[str, str]], **kwargs: Any) -> list[RawMember]:
    """The parts of a minimal workbook as honest zip members, in the usual order."""
    return [honest(name, xml) for name, xml in workbook_parts(sheets, **kwargs).items()]


def workbook(sheets: list[tuple[str, str]], **kwargs: Any) -> bytes:
    return raw_zip(workbook_members(sheets, **kwargs))


def one_sheet(rows: str, dimension: str | None = None, extra_ns: str = "") -> bytes:
    return workbook([("Data", sheet_xml(rows, dimension, extra_ns))])


def shared_strings_xml(strings: list[str], unique_count: int | str | None = None) -> str:
    count = len(strings) if unique_count is None else unique_count
    items = "".join(f"<si><t>{text}</t></si>" for text in strings)
    return f'<?xml version="1.0"?><sst xmlns="{MAIN_NS}" count="{count}" uniqueCount="{count}">{items}</sst>'


def openpyxl_workbook() -> bytes:
    book = openpyxl.Workbook()
    data = book.active
    data.title = "学生"
    data["B2"] = "姓名"
    data["C2"] = "成绩"
    data["B3"] = "张三"
    data["D5"] = 91.5
    notes = book.create_sheet("Notes")
    notes.sheet_state = "hidden"
    notes["A1"] = "internal"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- 1. lying sizes ----------------------------------------------------------------------------


@cache
def zeros_stream(mebibytes: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mebibytes` MiB of zeros, and its CRC, built without the zeros.

    A fresh compressor's output for 1 MiB of zeros, ended with a full flush, is a
    self-contained, byte-aligned run of non-final blocks: repeating it repeats the data.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    block = bytes(MiB)
    for _ in range(mebibytes):
        crc = zlib.crc32(block, crc)
    return segment * mebibytes + b"\x03\x00", crc  # \x03\x00: an empty final block


def lying_bomb(name: str, lie: str) -> RawMember:
    """300 MiB of zeros whose headers declare 1,000 bytes (and, for "both", 100 compressed)."""
    stream, crc = zeros_stream(300)
    if lie == "both":
        return RawMember(name, stream, 8, zlib.crc32(bytes(1000)), 100, 1000)
    return RawMember(name, stream, 8, crc, len(stream), 1000)


def measured(call: Callable[[], object]) -> tuple[UntrustedFileError, float, int]:
    """Run `call`, returning (error, seconds, peak bytes allocated by Python meanwhile)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refused(call)
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, elapsed, peak


def test_the_deflate_helper_really_makes_zeros() -> None:
    stream, crc = zeros_stream(3)
    inflated = zlib.decompress(stream, -zlib.MAX_WBITS)
    assert inflated == bytes(3 * MiB) and zlib.crc32(inflated) == crc
    assert len(zeros_stream(300)[0]) < MiB


@pytest.mark.parametrize("lie", ["uncompressed", "both"], ids=["size-lies", "both-sizes-lie"])
def test_a_sheet_that_lies_about_its_size_is_stopped_early_and_cheaply(lie: str) -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members[-1] = lying_bomb("xl/worksheets/sheet1.xml", lie)
    data = raw_zip(members)
    assert len(data) < MiB

    error, elapsed, peak = measured(lambda: check_xlsx_bytes(data))

    assert error.rule_id == "file.too_large"
    assert "sheet1.xml" in error.detail and ":1" in error.detail  # the ratio it measured
    assert elapsed < 2
    assert peak < 16 * MiB


@pytest.mark.parametrize("lie", ["uncompressed", "both"], ids=["size-lies", "both-sizes-lie"])
def test_without_the_ratio_check_the_member_cap_still_stops_the_inflation(lie: str) -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members.append(lying_bomb("xl/media/image1.png", lie))
    data = raw_zip(members)
    no_ratio = Limits(max_compression_ratio=float("inf"))

    error, elapsed, peak = measured(lambda: check_xlsx_bytes(data, no_ratio))

    assert error.rule_id == "file.too_large"
    assert (
        "image1.png unpacks to more than 104,857,600 bytes (its header says 1,000)" in error.detail
    )
    assert elapsed < 3
    assert peak < 16 * MiB


def test_zipfile_alone_is_fooled_by_a_consistent_lie() -> None:
    """Why sizes are measured: zipfile stops at the declared size and checks that prefix."""
    consistent = raw_zip([lying_bomb("xl/media/image1.png", "both")])
    with (
        zipfile.ZipFile(io.BytesIO(consistent)) as archive,
        archive.open("xl/media/image1.png") as member,
    ):
        assert member.read(4096) == bytes(1000)  # no error at all
    # Only the CRC gives this one away. (archive.read() would first inflate all 300 MiB in
    # one call, and only then cut them to the declared 1,000 bytes.)
    truthful_crc = raw_zip([lying_bomb("xl/media/image1.png", "uncompressed")])
    with (
        zipfile.ZipFile(io.BytesIO(truthful_crc)) as archive,
        archive.open("xl/media/image1.png") as member,
        pytest.raises(zipfile.BadZipFile),
    ):
        member.read(4096)


def test_the_total_is_counted_while_inflating_too() -> None:
    stream, crc = zeros_stream(30)
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members.append(RawMember("xl/media/image1.png", stream, 8, crc, len(stream), 10))
    limits = Limits(max_compression_ratio=float("inf"), max_uncompressed_bytes=20 * MiB)
    error = refused(check_xlsx_bytes, raw_zip(members), limits)
    assert error.rule_id == "file.too_large"
    assert "the members unpack to more than 20,971,520 bytes" in error.detail


def test_a_small_lie_is_damage_not_size() -> None:
    content = b"<x/>" * 100
    member = replace(honest("xl/media/a.xml", content), file_size=10)
    members = workbook_members([("Data", sheet_xml(cells("A1")))]) + [member]
    error = refused(check_xlsx_bytes, raw_zip(members))
    assert error.rule_id == "file.unreadable"
    assert "declares 10 bytes but holds 400" in error.detail


# --- 2. honest bombs ---------------------------------------------------------------------------


def test_an_honest_bomb_is_refused_from_its_headers_without_inflating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_inflating(*args: object) -> NoReturn:
        raise AssertionError("inflated a member the headers already condemned")

    monkeypatch.setattr(untrusted.zlib, "decompressobj", no_inflating)
    garbage = RawMember("xl/worksheets/sheet1.xml", b"\xff" * 1000, 8, 0, 1000, 300 * MiB)
    members = workbook_members([("Data", sheet_xml(cells("A1")))])[:-1] + [garbage]
    error = refused(check_xlsx_bytes, raw_zip(members))
    assert error.rule_id == "file.too_large"
    assert "declares 314,572,800 bytes unpacked" in error.detail


def test_an_honest_bomb_that_fits_the_member_cap_is_refused_by_its_declared_ratio() -> None:
    stream, crc = zeros_stream(50)
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members.append(RawMember("xl/media/image1.png", stream, 8, crc, len(stream), 50 * MiB))
    error = refused(check_xlsx_bytes, raw_zip(members))
    assert error.rule_id == "file.too_large"
    assert "declares a compression ratio of" in error.detail


def test_honest_members_over_the_total_are_refused_from_their_headers() -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members += [RawMember(f"xl/media/{i}.bin", b"", 8, 0, 10 * MiB, 90 * MiB) for i in range(3)]
    error = refused(check_xlsx_bytes, raw_zip(members))
    assert error.rule_id == "file.too_large"
    declared = sum(member.file_size for member in members)
    assert f"the members declare {declared:,} bytes unpacked" in error.detail


def test_too_many_members() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(2001):
            archive.writestr(f"xl/media/{i}.txt", "")
    error = refused(check_xlsx_bytes, buffer.getvalue())
    assert error.rule_id == "file.too_large"
    assert "2,001" in error.detail and "2,000" in error.detail


# --- 3. sheets that reach too far --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "dimension", "expected"),
    [
        (cells("A1", "XFD1048576"), "A1:XFD1048576", 'declares <dimension ref="A1:XFD1048576">'),
        (cells("A1", "XFD1048576"), None, "has cells over A1:XFD1048576"),
        (cells("XFD1048576"), None, "reaching column 16,384"),
        (cells("A1", "B2"), "A1:XFD1048576", 'ref="A1:XFD1048576">, reaching column 16,384'),
        (cells("A1", "B2"), "A1:ALL1048576", "= 1,048,576,000 cells"),
        (cells("A1", "ALL5001"), None, "= 5,001,000 cells"),
    ],
    ids=[
        "truthful-dimension",
        "no-dimension",
        "one-far-cell",
        "lying-dimension",
        "lying-dimension-in-columns",
        "wide-and-long",
    ],
)
def test_a_sheet_reaching_too_far_is_refused(
    rows: str, dimension: str | None, expected: str
) -> None:
    error = refused(check_xlsx_bytes, one_sheet(rows, dimension))
    assert error.rule_id == "file.sheet_too_large"
    assert expected in error.detail
    assert "sheet 'Data'" in error.detail


@pytest.mark.parametrize(
    "rows",
    [
        # cells without r are placed after the previous one, as calamine places them
        '<row r="1">' + "<c><v>1</v></c>" * 1001 + "</row>",
        '<row r="1"><c r="ZZ1"/>' + "<c/>" * 300 + "</row>",
        # '>' inside a quoted value must not hide the reference that follows it
        '<row r="1"><c foo="a>b" r="XFD1048576"><v>1</v></c></row>',
        # namespace prefixes, lower case, single quotes, odd spacing
        '<row r="1"><x:c r="XFD1"><x:v>1</x:v></x:c></row>',
        "<row r=\"1\"><c r='XFD1'><v>1</v></c></row>",
        '<row r="1"><c r="xfd1048576"><v>1</v></c></row>',
        '<row r="1"><c\n r = "XFD1"><v>1</v></c></row>',
        '<row r="1"><c r="A99999999"><v>1</v></c></row>',
    ],
    ids=[
        "positional",
        "positional-after-ref",
        "gt-in-value",
        "prefixed",
        "single-quotes",
        "lower-case",
        "whitespace",
        "outside-grid",
    ],
)
def test_cells_in_unusual_forms_are_still_found(rows: str) -> None:
    error = refused(check_xlsx_bytes, one_sheet(rows, extra_ns=f' xmlns:x="{MAIN_NS}"'))
    assert error.rule_id == "file.sheet_too_large"


@pytest.mark.parametrize(
    ("rows", "dimension", "expected"),
    [
        ('<row r="1"><c r="A1" r="XFD1"><v>1</v></c></row>', None, "repeats an attribute"),
        ('<row r="1"><c r="A1"\tr="XFD1"><v>1</v></c></row>', None, "repeats an attribute"),
        ('<row r="1"><c x r="XFD1"><v>1</v></c></row>', None, "malformed"),
        ('<row r="1"><c r="A0"><v>1</v></c></row>', None, "row 0"),
        ('<row r="1"><c r="1A"><v>1</v></c></row>', None, "not a cell reference"),
        (cells("A1"), "B2:A1", "inverted"),
    ],
    ids=[
        "duplicate-r",
        "duplicate-r-after-tab",
        "bare-word",
        "row-zero",
        "digits-first",
        "inverted",
    ],
)
def test_ambiguous_cell_tags_are_refused_not_guessed(
    rows: str, dimension: str | None, expected: str
) -> None:
    error = refused(check_xlsx_bytes, one_sheet(rows, dimension))
    assert error.rule_id == "file.unreadable"
    assert expected in error.detail


def test_a_sheet_part_may_be_named_anything_and_is_still_scanned() -> None:
    far = workbook([("Data", sheet_xml(cells("A1", "XFD1048576")))], parts=["data/x.bin"])
    assert refused(check_xlsx_bytes, far).rule_id == "file.sheet_too_large"

    near = workbook([("Data", sheet_xml(cells("B2", "C3")))], parts=["../odd/Place.XML"])
    members = workbook_members([("Data", sheet_xml(cells("B2", "C3")))], parts=["/odd/Place.XML"])
    for data in (near, raw_zip(members)):
        sheet = check_xlsx_bytes(data).sheets[0]
        assert sheet.extent == (2, 2, 3, 3)
    assert check_xlsx_bytes(raw_zip(members)).sheets[0].part == "odd/Place.XML"


def test_an_orphan_sheet_under_worksheets_is_scanned_too() -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members.append(honest("xl/worksheets/sheet9.xml", sheet_xml(cells("A1", "XFD1048576"))))
    assert refused(check_xlsx_bytes, raw_zip(members)).rule_id == "file.sheet_too_large"


def test_a_sheet_pointing_at_a_missing_part_is_unreadable() -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])[:-1]
    assert "missing part" in refused(check_xlsx_bytes, raw_zip(members)).detail


@pytest.mark.parametrize("step", [1, 7, 64])
def test_references_split_across_chunk_boundaries_are_found(
    monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    monkeypatch.setattr(untrusted, "_OUT_STEP", step)
    monkeypatch.setattr(untrusted, "_IN_STEP", 3)
    error = refused(check_xlsx_bytes, one_sheet(cells("A1", "B2", "XFD1048576")))
    assert "A1:XFD1048576" in error.detail
    lying = refused(check_xlsx_bytes, one_sheet(cells("A1"), "A1:XFD1048576"))
    assert lying.rule_id == "file.sheet_too_large"
    positional = refused(check_xlsx_bytes, one_sheet('<row r="3">' + "<c/>" * 1001 + "</row>"))
    assert positional.rule_id == "file.sheet_too_large"
    data = openpyxl_workbook()
    in_pieces = check_xlsx_bytes(data)
    monkeypatch.undo()
    assert in_pieces == check_xlsx_bytes(data)


def test_cells_without_references_get_calamine_positions() -> None:
    rows = (
        "<row><c/><c/></row>"  # row 1: A1 B1
        '<row r="5"><c r="C5"/><c/></row>'  # C5, then D5
        "<row/>"  # row 6, empty
        "<row><c/><c/><c/></row>"  # row 7: A7 B7 C7
    )
    sheet = check_xlsx_bytes(one_sheet(rows)).sheets[0]
    assert sheet.extent == (1, 1, 7, 4)
    assert sheet.cell_count == 7


def test_cell_entries_and_whole_workbooks_are_bounded_too() -> None:
    same_cell = '<row r="1">' + '<c r="A1"/>' * 101 + "</row>"
    error = refused(check_xlsx_bytes, one_sheet(same_cell), Limits(max_sheet_cells=100))
    assert "101 cell entries" in error.detail
    for same_row in ('<row r="1"/>' * 101, "<row/>" * 50 + '<row r="1"/>' * 51):
        error = refused(check_xlsx_bytes, one_sheet(same_row), Limits(max_sheet_rows=100))
        assert "101 row entries" in error.detail
    ten_by_ten = cells(*(f"{col}{row}" for col in "ABCDEFGHIJ" for row in range(1, 7)))
    two = workbook([("One", sheet_xml(ten_by_ten)), ("Two", sheet_xml(ten_by_ten))])
    error = refused(check_xlsx_bytes, two, Limits(max_workbook_cells=100))
    assert error.rule_id == "file.sheet_too_large"
    assert "together span 120 cells" in error.detail


def test_a_shared_string_table_that_lies_about_its_size() -> None:
    strings = shared_strings_xml(["a"], unique_count="4000000000")
    data = workbook([("Data", sheet_xml(cells("A1")))], shared_strings=strings)
    error = refused(check_xlsx_bytes, data)
    assert error.rule_id == "file.too_large"
    assert "declares 4000000000 strings" in error.detail


@pytest.mark.parametrize("form", ['<c r="{}" t="s"><v>0</v></c>', '<c t="s" r="{}"><v>0</v></c>'])
def test_one_long_shared_string_used_by_many_cells_is_too_much_text(form: str) -> None:
    strings = shared_strings_xml(["x" * 40_000, "short"])
    refs = [f"{col}{row}" for row in range(1, 601) for col in "ABCDEFGHIJ"]
    rows = "".join(
        f'<row r="{row}">'
        + "".join(form.format(ref) for ref in refs[(row - 1) * 10 : row * 10])
        + "</row>"
        for row in range(1, 601)
    )
    data = workbook([("Data", sheet_xml(rows))], shared_strings=strings)
    error = refused(check_xlsx_bytes, data)
    assert error.rule_id == "file.too_large"
    assert "bytes of text" in error.detail
    fine = rows.replace("<v>0</v>", "<v>1</v>")  # the same cells using the short string
    assert check_xlsx_bytes(workbook([("Data", sheet_xml(fine))], shared_strings=strings))


# --- 4. normal workbooks -----------------------------------------------------------------------


def expected_openpyxl_summary() -> XlsxSummary:
    return XlsxSummary(
        sheets=(
            untrusted.SheetSummary(
                "学生", "xl/worksheets/sheet1.xml", "visible", (2, 2, 5, 4), "B2:D5", 4
            ),
            untrusted.SheetSummary(
                "Notes", "xl/worksheets/sheet2.xml", "hidden", (1, 1, 1, 1), "A1:A1", 1
            ),
        ),
        uncompressed_bytes=0,
    )


def test_an_openpyxl_workbook_passes_with_the_right_summary() -> None:
    summary = check_xlsx_bytes(openpyxl_workbook())
    assert summary.sheet_names == ["学生", "Notes"]
    assert [sheet.hidden for sheet in summary.sheets] == [False, True]
    assert summary.sheets == expected_openpyxl_summary().sheets
    assert summary.uncompressed_bytes > 0


def test_an_xlsxwriter_workbook_passes_with_the_right_summary() -> None:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer)
    data = book.add_worksheet("Data & more")
    data.write_row("C3", ["学校代码", 3133060001, 3.5])
    data.write("E9", "=C3&D3")
    book.add_worksheet("Empty")
    secret = book.add_worksheet("Secret")
    secret.write("A1", "x")
    secret.very_hidden()
    book.close()
    summary = check_xlsx_bytes(buffer.getvalue())
    assert summary.sheet_names == ["Data & more", "Empty", "Secret"]
    assert [(s.extent, s.state) for s in summary.sheets] == [
        ((3, 3, 9, 5), "visible"),
        (None, "visible"),
        ((1, 1, 1, 1), "veryHidden"),
    ]


def test_fifty_thousand_rows_by_ten_columns_pass() -> None:
    rows = []
    for r in range(1, 50_001):
        row = "".join(
            f'<c r="{col}{r}" t="s"><v>{r % 997}</v></c>'
            if i % 2
            else f'<c r="{col}{r}"><v>{r * i}</v></c>'
            for i, col in enumerate("ABCDEFGHIJ")
        )
        rows.append(f'<row r="{r}" spans="1:10">{row}</row>')
    strings = shared_strings_xml([f"专业 {i}" for i in range(997)])
    parts = workbook_parts(
        [("Data", sheet_xml("".join(rows), "A1:J50000"))], shared_strings=strings
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    data = buffer.getvalue()

    # how fast is a benchmark's question (benchmarks/bench_validate.py), not a test's
    summary = check_xlsx_bytes(data)
    assert summary.sheets[0].extent == (1, 1, 50_000, 10)
    assert summary.sheets[0].cell_count == 500_000


# --- 5. encrypted OOXML and old .xls -----------------------------------------------------------

FREE, END_OF_CHAIN, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def cfb(streams: list[str], sector_size: int = 512) -> bytes:
    """A minimal Compound File: header, one FAT sector, a directory of (empty) streams."""
    entries = [("Root Entry", 5)] + [(name, 2) for name in streams]
    per_sector = sector_size // 128
    directory_sectors = -(-len(entries) // per_sector)
    fat = [FAT_SECTOR] + [sector + 1 for sector in range(1, directory_sectors)] + [END_OF_CHAIN]
    fat += [FREE] * (sector_size // 4 - len(fat))
    header = struct.pack(
        "<8s16sHHHHH6sLLLLLLLLLL",
        bytes.fromhex("d0cf11e0a1b11ae1"),
        bytes(16),
        0x3E,
        3 if sector_size == 512 else 4,
        0xFFFE,
        sector_size.bit_length() - 1,
        6,
        bytes(6),
        0,
        1,  # one FAT sector
        1,  # the directory starts at sector 1
        0,
        4096,
        END_OF_CHAIN,
        0,
        END_OF_CHAIN,
        0,
        0,  # DIFAT[0]: the FAT is sector 0
    )
    header += struct.pack("<108L", *[FREE] * 108)
    header = header.ljust(sector_size, b"\0")
    directory = b""
    for name, kind in entries:
        encoded = name.encode("utf-16-le") + b"\0\0"
        directory += struct.pack(
            "<64sHBBLLL16sL16sLQ",
            encoded,
            len(encoded),
            kind,
            1,
            NO_STREAM,
            NO_STREAM,
            NO_STREAM,
            bytes(16),
            0,
            bytes(16),
            END_OF_CHAIN,
            0,
        )
    directory = directory.ljust(directory_sectors * sector_size, b"\0")
    return header + struct.pack(f"<{sector_size // 4}L", *fat) + directory


ENCRYPTED = ["\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"]


@pytest.mark.parametrize(
    "data",
    [
        cfb(ENCRYPTED),
        cfb(["\x05SummaryInformation", "a", "b", "c", "d", "e", "EncryptedPackage"]),  # 2 sectors
        cfb(ENCRYPTED, sector_size=4096),
        cfb(ENCRYPTED)[:48] + b"\xff\xff\xff\x7f" + cfb(ENCRYPTED)[52:],  # broken directory chain
    ],
    ids=["plain", "directory-over-two-sectors", "version-4", "damaged-directory"],
)
def test_a_password_protected_workbook_is_encrypted(data: bytes) -> None:
    assert refused(check_ole_bytes, data).rule_id == "file.encrypted"
    assert refused(check_xlsx_bytes, data).rule_id == "file.encrypted"  # uploaded as .xlsx


@pytest.mark.parametrize("stream", ["Workbook", "Book"])
def test_an_old_xls_is_a_type_mismatch_that_says_so(stream: str) -> None:
    error = refused(check_ole_bytes, cfb(["\x05SummaryInformation", stream]))
    assert error.rule_id == "file.type_mismatch"
    assert "old-format .xls" in error.detail


def test_other_ole_and_non_ole_bytes_are_type_mismatches() -> None:
    assert "not a workbook" in refused(check_ole_bytes, cfb(["WordDocument"])).detail
    assert "not an OLE2" in refused(check_ole_bytes, b"PK\x03\x04").detail
    assert (
        refused(check_ole_bytes, bytes.fromhex("d0cf11e0a1b11ae1")).rule_id == "file.type_mismatch"
    )


# --- 6. CSV ------------------------------------------------------------------------------------

CSV_TEXT = "学校代码,毕业生编号,专业名称\t备注\r\n3133060001,G0001,护理,\r\n" * 200


@pytest.mark.parametrize(
    "data",
    [
        CSV_TEXT.encode("utf-8"),
        CSV_TEXT.encode("utf-8-sig"),
        CSV_TEXT.encode("gbk"),
        CSV_TEXT.encode("gb18030"),
        CSV_TEXT.encode("utf-16"),
        b"\xff\xfe" + CSV_TEXT.encode("utf-16-le"),
        b"\xfe\xff" + CSV_TEXT.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8-bom", "gbk", "gb18030", "utf-16", "utf-16-le-bom", "utf-16-be-bom"],
)
def test_text_in_the_usual_encodings_passes(data: bytes) -> None:
    check_csv_bytes(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\r\n" * 20_000 + b"1,\x002\r\n", "control byte 0x00 at offset 100,002"),
        (b"a,b\n" * 20_000 + b"\x01", "control byte 0x01 at offset 80,000"),
        (b"\x1b[31ma,b\n", "control byte 0x1b at offset 0"),
        ("a,b\n".encode("utf-16") + "\x00x".encode("utf-16-le"), "U+0000 at character 4"),
        (b"a\x00,\x00b\x00", "control byte 0x00 at offset 1"),  # UTF-16 without a BOM
    ],
    ids=["nul-after-64k", "soh-at-the-end", "escape", "nul-in-utf-16", "utf-16-without-bom"],
)
def test_control_bytes_anywhere_make_a_csv_binary(data: bytes, expected: str) -> None:
    error = refused(check_csv_bytes, data)
    assert error.rule_id == "file.binary"
    assert expected in error.detail


@pytest.mark.parametrize(
    "data",
    [
        "a,b\n".encode("utf-16") + b"x",
        b"\xff\xfe" + "a".encode("utf-16-le") + b"\x00\xd8" + b"b\x00",
    ],
    ids=["odd-length", "lone-surrogate"],
)
def test_damaged_utf16_is_an_encoding_error(data: bytes) -> None:
    assert refused(check_csv_bytes, data).rule_id == "file.encoding"


def test_csv_size_and_grid_limits() -> None:
    assert refused(check_csv_bytes, b"a" * (50 * MiB + 1)).rule_id == "file.too_large"
    wide = refused(check_csv_bytes, b"," * 5000 + b"\n")
    assert wide.rule_id == "file.sheet_too_large" and "5,001 columns" in wide.detail
    long = refused(check_csv_bytes, b"a,b,c\n" * 2_000_000)
    assert long.rule_id == "file.sheet_too_large" and "2,000,001 lines" in long.detail
    check_csv_bytes(b'"a,b,c,d",e\n' * 10, Limits(max_sheet_columns=2))  # quoted commas


# --- 7. damage ---------------------------------------------------------------------------------


def test_a_truncated_workbook_is_unreadable() -> None:
    data = openpyxl_workbook()
    for cut in (30, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        assert refused(check_xlsx_bytes, data[:cut]).rule_id == "file.unreadable"


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_a_flipped_byte_inside_member_data_is_unreadable(method: int) -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(openpyxl_workbook())) as source,
        zipfile.ZipFile(buffer, "w", method) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x55
    assert refused(check_xlsx_bytes, bytes(data)).rule_id == "file.unreadable"


def test_fuzzed_workbooks_only_ever_raise_untrusted_file_error() -> None:
    original = openpyxl_workbook()
    rng = random.Random(20240611)
    outcomes: dict[str, int] = {}
    for _ in range(200):
        data = bytearray(original)
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.4:
            data = data[: rng.randrange(len(data))]
        try:
            check_xlsx_bytes(bytes(data))
            outcome = "passed"
        except UntrustedFileError as error:
            outcome = error.rule_id
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("file.unreadable", 0) > 100


# --- the rest of the structure ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "xl/vbaProject.bin",
        "XL/VBAPROJECT.BIN",
        "customUI/VbaProject.bin",
        "xl/macrosheets/sheet1.xml",
    ],
)
def test_macros_anywhere_in_any_case(name: str) -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))]) + [honest(name, b"\0" * 10)]
    error = refused(check_xlsx_bytes, raw_zip(members))
    assert error.rule_id == "file.macro"


def test_zips_that_are_not_workbooks_are_type_mismatches() -> None:
    assert refused(check_xlsx_bytes, raw_zip([honest("word/document.xml", "<w/>")])).rule_id == (
        "file.type_mismatch"
    )
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    members[1] = honest(
        "_rels/.rels",
        f'<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" '
        f'Type="{REL_NS}/officeDocument" Target="/evil/workbook.xml"/></Relationships>',
    )
    assert "evil/workbook.xml" in refused(check_xlsx_bytes, raw_zip(members)).detail
    assert refused(check_xlsx_bytes, b"%PDF-1.7").rule_id == "file.type_mismatch"
    assert refused(check_xlsx_bytes, b"x" * (50 * MiB + 1)).rule_id == "file.too_large"


def test_ambiguous_zip_structure_is_unreadable() -> None:
    members = workbook_members([("Data", sheet_xml(cells("A1")))])
    duplicate = members + [honest("XL\\Worksheets\\Sheet1.xml", sheet_xml(cells("XFD1")))]
    assert "two members named" in refused(check_xlsx_bytes, raw_zip(duplicate)).detail
    disguised = members[:-1] + [replace(members[-1], local_name="xl/worksheets/other.xml")]
    assert "disagree" in refused(check_xlsx_bytes, raw_zip(disguised)).detail
    encrypted = members[:-1] + [replace(members[-1], flags=1)]
    assert refused(check_xlsx_bytes, raw_zip(encrypted)).rule_id == "file.encrypted"
    bzip2 = members[:-1] + [replace(members[-1], method=12)]
    assert "compression method 12" in refused(check_xlsx_bytes, raw_zip(bzip2)).detail


def test_untrusted_file_error_carries_rule_and_detail() -> None:
    error = UntrustedFileError("file.binary", "control byte 0x00 at offset 3")
    assert (error.rule_id, error.detail) == ("file.binary", "control byte 0x00 at offset 3")
    assert str(error) == "file.binary: control byte 0x00 at offset 3"


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>',
        '<!DOCTYPE worksheet SYSTEM "file:///etc/passwd">',
    ],
)
def test_a_workbook_part_with_a_dtd_is_refused(prolog: str) -> None:
    xml = sheet_xml(cells("A1")).replace("?>\n", "?>\n" + prolog, 1)
    error = refused(check_xlsx_bytes, workbook([("Data", xml)]))
    assert error.rule_id == "file.unreadable" and "DTD" in error.detail
