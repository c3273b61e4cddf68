"""Checks on untrusted upload bytes, run before any parsing library touches them.

What belongs here: guards that look only at the raw bytes of an upload (CSV, XLSX, or an
OLE2 file sent instead of an XLSX) and decide whether the bytes are safe to hand to the
parsers (fastexcel/calamine, Polars). They protect the process, not the data: no upload may
make the pipeline use more than about 1 GiB of memory or abort it. Each check returns or
raises ``UntrustedFileError`` with a rule id from schemas/rules.csv and a short English
detail. Nothing here reads cell values or knows what a column means (that is
``vetreport.readers`` and ``vetreport.normalize``), and only the standard library is used,
so the guards do not share the parsers' weaknesses.

How lies are caught
-------------------
* Zip headers are only used to refuse early (an honest bomb declares its size). Every
  member is then actually inflated in 1 MiB pieces with ``zlib.decompressobj`` and
  counted: one member may not exceed ``max_member_bytes``, all of them together
  ``max_uncompressed_bytes``, and a member past ``ratio_check_min_bytes`` may not inflate
  more than ``max_compression_ratio`` times its compressed bytes so far. The deflate
  stream is followed to its own end, not to the declared compressed size, and the sizes
  and CRC found must equal the declared ones. ``zipfile`` alone is not enough: it cuts a
  member at its declared size, so a lie with a matching CRC reads as a short, valid file
  (and ``ZipFile.read`` inflates the whole stream in one call before cutting it).
* A worksheet is scanned while it inflates, for the cell references that are really
  present (``r="XFD1048576"``), cells without a reference (placed after the previous
  one, as calamine does) and the ``<dimension ref>`` it declares. calamine allocates the
  whole rectangle between the extreme cells, so a sheet with cells at A1 and XFD1048576
  asks for 512 GiB and aborts the process. Sheets written the usual way (every cell tag
  opens with ``<c r="..."``) are read by counting and searching bytes, about 50 MB of XML
  a second; any other form, or any doubt, sends the sheet to a slower tag-by-tag scan
  that follows calamine's rules exactly (about 300,000 tags a second). Row and cell
  entries are bounded too, which bounds the time a hostile sheet can cost.
* Sheet parts are found through ``xl/_rels/workbook.xml.rels`` (they may be named
  anything) and, in case that is bypassed, every part under ``xl/worksheets/`` is
  scanned too. Part names are compared the way calamine looks them up: case-insensitive,
  with backslashes as slashes.
* Shared strings are copied once per cell that uses them, so a 32 KiB string used by a
  million cells is 32 GB of text. Cells are charged the length of the string they use.
* Anything ambiguous (duplicate member names, local and central headers that disagree,
  malformed cell tags, duplicate attributes) is refused rather than guessed at, so this
  module and the parser cannot read different things from the same bytes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

_MIB = 1024 * 1024


class UntrustedFileError(Exception):
    """An upload was refused before parsing; ``rule_id`` names the rule, ``detail`` says why."""

    def __init__(self, rule_id: str, detail: str) -> None:
        super().__init__(f"{rule_id}: {detail}")
        self.rule_id = rule_id
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """What an upload may cost. The defaults keep one upload well below 1 GiB of memory.

    Sizes are bytes. ``max_uncompressed_bytes`` and ``max_member_bytes`` are measured while
    actually inflating, never taken from zip headers. ``max_compression_ratio`` applies to
    members that inflate past ``ratio_check_min_bytes``: real sheet XML compresses about
    5-30 to 1, zeros and other padding about 1000 to 1, so 200 only refuses padding.
    ``max_sheet_cells`` bounds rows x columns of a sheet's used range (calamine allocates
    that rectangle, about 32 bytes a cell, so 5 million cells is about 160 MB) and also the
    number of cell entries in a sheet; ``max_sheet_rows`` is Excel's own row limit and
    ``max_sheet_columns`` 1000 (column ALL), far more than any template uses. Sheets are
    also bounded together (``max_workbook_cells``), because every sheet's grid is kept.
    ``max_shared_strings`` bounds the shared-string table calamine holds (about 60 bytes a
    string) and the count it pre-allocates from ``uniqueCount``; ``max_text_bytes`` bounds
    the text the cells expand to when each shared-string cell gets its own copy.
    """

    max_upload_bytes: int = 50 * _MIB
    max_uncompressed_bytes: int = 200 * _MIB
    max_member_bytes: int = 100 * _MIB
    max_zip_members: int = 2000
    max_compression_ratio: float = 200.0
    ratio_check_min_bytes: int = 4 * _MIB
    max_sheet_cells: int = 5_000_000
    max_sheet_rows: int = 1_048_576
    max_sheet_columns: int = 1000
    max_workbook_cells: int = 10_000_000
    max_shared_strings: int = 2_000_000
    max_text_bytes: int = 200 * _MIB


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class SheetSummary:
    """One sheet of a checked workbook, as found in its XML (not as declared).

    ``extent`` is ``(min_row, min_col, max_row, max_col)``, 1-based, over every cell entry
    present (empty styled cells included), or None when the sheet has no cells.
    ``dimension`` is the ``<dimension ref>`` the sheet declares, if any.
    """

    name: str
    part: str
    state: str
    extent: tuple[int, int, int, int] | None
    dimension: str | None
    cell_count: int

    @property
    def hidden(self) -> bool:
        """True for hidden and very hidden sheets."""
        return self.state != "visible"


@dataclass(frozen=True)
class XlsxSummary:
    """What ``check_xlsx_bytes`` found: the sheets in workbook order, and the bytes inflated."""

    sheets: tuple[SheetSummary, ...]
    uncompressed_bytes: int

    @property
    def sheet_names(self) -> list[str]:
        """The sheet names in workbook order."""
        return [sheet.name for sheet in self.sheets]


def _refuse(rule_id: str, detail: str) -> NoReturn:
    raise UntrustedFileError(rule_id, detail)


def _check_upload_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_upload_bytes:
        _refuse(
            "file.too_large",
            f"the file is {len(data):,} bytes; the limit is {limits.max_upload_bytes:,}",
        )


# --- CSV -------------------------------------------------------------------------------------

# Control characters other than tab, line feed and carriage return. In UTF-8, GBK/GB18030
# and the other ASCII-compatible encodings these bytes are never part of a multi-byte
# character, so they can be searched for in the raw bytes.
_ALLOWED_TEXT_BYTES = bytes(byte for byte in range(256) if byte in (9, 10, 13) or 32 <= byte != 127)
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# The readers size a CSV grid by the widest of the first 60 lines in the first 65,536
# characters (vetreport.readers); 4 bytes a character cover that window in any encoding.
_CSV_HEAD_CHARS = 65536
_CSV_HEAD_BYTES = 4 * _CSV_HEAD_CHARS
_CSV_HEAD_LINES = 60
_TEXT_STEP = _MIB


def check_csv_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse CSV bytes that are too large, binary, or would make too large a grid.

    UTF-8 (with or without BOM), GBK/GB18030 and UTF-16 with a BOM pass. Control bytes
    other than tab and line breaks are refused anywhere in the file (``file.binary``); a
    UTF-16 file is decoded in full instead, so its zero bytes are allowed but damaged
    UTF-16 (a lone surrogate, an odd byte at the end) is ``file.encoding``. The grid is
    estimated as lines x the widest of the first lines, as the readers build it.
    """
    _check_upload_size(data, limits)
    if data.startswith(_UTF16_BOMS):
        head, lines = _scan_utf16(data)
    else:
        # Deleting every allowed byte is a fast way to learn whether any other is there.
        match = _CONTROL_BYTE.search(data) if data.translate(None, _ALLOWED_TEXT_BYTES) else None
        if match:
            _refuse(
                "file.binary",
                f"control byte 0x{match.group()[0]:02x} at offset {match.start():,}; "
                "a text file has none",
            )
        # Latin-1 keeps every ASCII byte (delimiters, quotes, line breaks) where it was.
        head = data[:_CSV_HEAD_BYTES].decode("latin-1")
        lines = max(data.count(b"\n"), data.count(b"\r")) + 1
    _check_csv_grid(head, lines, limits)


def _scan_utf16(data: bytes) -> tuple[str, int]:
    decoder = codecs.getincrementaldecoder("utf-16")("strict")
    head: list[str] = []
    head_chars = 0
    newlines = returns = position = 0
    for start in range(0, len(data) + 1, _TEXT_STEP):
        piece = data[start : start + _TEXT_STEP]
        final = start + _TEXT_STEP > len(data)
        try:
            text = decoder.decode(piece, final)
        except UnicodeDecodeError as error:
            _refuse("file.encoding", f"the UTF-16 text is damaged at byte {start + error.start:,}")
        match = _CONTROL_CHAR.search(text)
        if match:
            _refuse(
                "file.binary",
                f"control character U+{ord(match.group()):04X} at character "
                f"{position + match.start():,}; a text file has none",
            )
        newlines += text.count("\n")
        returns += text.count("\r")
        if head_chars < _CSV_HEAD_CHARS:
            head.append(text[: _CSV_HEAD_CHARS - head_chars])
            head_chars += len(head[-1])
        position += len(text)
        if final:
            break
    return "".join(head), max(newlines, returns) + 1


def _check_csv_grid(head: str, lines: int, limits: Limits) -> None:
    head_lines = head.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:_CSV_HEAD_LINES]
    width = 1
    for delimiter in (",", "\t", ";"):
        try:
            widest = max(
                (len(row) for row in csv.reader(head_lines, delimiter=delimiter)), default=1
            )
        except csv.Error:
            widest = max(line.count(delimiter) for line in head_lines) + 1
        width = max(width, widest)
    if width > limits.max_sheet_columns:
        _refuse(
            "file.sheet_too_large",
            f"the CSV has {width:,} columns; the limit is {limits.max_sheet_columns:,}",
        )
    if lines > limits.max_sheet_rows:
        _refuse(
            "file.sheet_too_large",
            f"the CSV has {lines:,} lines; the limit is {limits.max_sheet_rows:,}",
        )
    if lines * width > limits.max_sheet_cells:
        _refuse(
            "file.sheet_too_large",
            f"the CSV has up to {lines:,} lines x {width:,} columns = {lines * width:,} cells; "
            f"the limit is {limits.max_sheet_cells:,}",
        )


# --- OLE2 / Compound File Binary --------------------------------------------------------------

_CFB_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
_CFB_LAST_REGULAR_SECTOR = 0xFFFFFFF9
_CFB_ENCRYPTION_STREAMS = {"encryptedpackage", "encryptioninfo"}
_CFB_WORKBOOK_STREAMS = {"workbook", "book"}


def check_ole_bytes(data: bytes) -> NoReturn:
    """Say why an OLE2 (Compound File) upload cannot be read; always raises.

    A password-protected .xlsx is an OLE2 file holding ``EncryptionInfo`` and
    ``EncryptedPackage`` streams: ``file.encrypted``. A workbook stream is an old-format
    .xls and anything else another OLE2 document: both ``file.type_mismatch``. Stream names
    come from the directory, followed through the FAT; if that is damaged, the names are
    looked for anywhere in the bytes.
    """
    if not data.startswith(_CFB_MAGIC):
        _refuse("file.type_mismatch", "the bytes are not an OLE2 compound file")
    names = _cfb_names(data)
    if names is None:
        lowered = data.lower()
        names = {
            name
            for name in _CFB_ENCRYPTION_STREAMS | _CFB_WORKBOOK_STREAMS
            if name.encode("utf-16-le") in lowered
        }
    if names & _CFB_ENCRYPTION_STREAMS:
        _refuse(
            "file.encrypted",
            "the workbook is password-protected (an encrypted OOXML package); "
            "remove the password and save it again",
        )
    if names & _CFB_WORKBOOK_STREAMS:
        _refuse(
            "file.type_mismatch",
            "the file is an old-format .xls (Excel 97-2003) workbook, not .xlsx; save it as .xlsx",
        )
    _refuse(
        "file.type_mismatch", "the file is an OLE2 document (such as an old .doc), not a workbook"
    )


def _cfb_names(data: bytes) -> set[str] | None:
    """The case-folded names in a CFB directory, or None when the structure is damaged."""
    try:
        shift = struct.unpack_from("<H", data, 30)[0]
        if shift not in (9, 12):
            return None
        size = 1 << shift
        sector_count = len(data) // size - 1

        def sector(number: int) -> bytes:
            if number >= sector_count:
                raise ValueError("sector out of range")
            return data[(number + 1) * size : (number + 2) * size]

        fat_sectors = [
            n for n in struct.unpack_from("<109L", data, 76) if n <= _CFB_LAST_REGULAR_SECTOR
        ]
        difat = struct.unpack_from("<L", data, 68)[0]
        for _ in range(sector_count):
            if difat > _CFB_LAST_REGULAR_SECTOR:
                break
            entries = struct.unpack(f"<{size // 4}L", sector(difat))
            fat_sectors += [n for n in entries[:-1] if n <= _CFB_LAST_REGULAR_SECTOR]
            difat = entries[-1]
        per_sector = size // 4

        def next_sector(number: int) -> int:
            fat = sector(fat_sectors[number // per_sector])
            return struct.unpack_from("<L", fat, (number % per_sector) * 4)[0]

        names: set[str] = set()
        current = struct.unpack_from("<L", data, 48)[0]
        for _ in range(sector_count):
            if current > _CFB_LAST_REGULAR_SECTOR:
                return names
            directory = sector(current)
            for offset in range(0, size, 128):
                name_bytes = struct.unpack_from("<H", directory, offset + 64)[0]
                kind = directory[offset + 66]
                if kind in (1, 2, 5) and 2 <= name_bytes <= 64:
                    raw = directory[offset : offset + name_bytes - 2]
                    names.add(raw.decode("utf-16-le", "replace").casefold())
            current = next_sector(current)
        return None  # the chain does not end: a loop
    except (struct.error, ValueError, IndexError):
        return None


# --- XLSX: zip members ------------------------------------------------------------------------

_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_IN_STEP = 64 * 1024
_OUT_STEP = _MIB
_MAX_METADATA_BYTES = 16 * _MIB
_MAX_TAG_BYTES = _MIB
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DOCTYPE = re.compile(rb"<!\s*doctype|<!\s*entity", re.IGNORECASE)
_PROLOG_BYTES = 4096  # a DTD can only stand before the root element


@dataclass(frozen=True)
class _Member:
    name: str
    key: str  # how calamine looks names up: lower case, forward slashes
    method: int
    flags: int
    crc: int
    compressed_size: int
    declared_size: int
    data_start: int


def _member_key(name: str) -> str:
    return name.replace("\\", "/").lower()


def _read_members(data: bytes, limits: Limits) -> list[_Member]:
    # Each central directory entry starts with this signature, so its count bounds the
    # number of entries zipfile would build before the member limit could be checked.
    headers = data.count(b"PK\x01\x02")
    if headers > limits.max_zip_members:
        _refuse(
            "file.too_large",
            f"the zip holds {headers:,} member headers; the limit is {limits.max_zip_members:,}",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as error:  # zipfile raises many types on hostile bytes; all mean damaged
        _refuse("file.unreadable", f"the zip directory is damaged ({str(error)[:80]})")
    if len(infos) > limits.max_zip_members:
        _refuse(
            "file.too_large",
            f"the zip holds {len(infos):,} members; the limit is {limits.max_zip_members:,}",
        )
    members: list[_Member] = []
    seen: set[str] = set()
    for info in infos:
        key = _member_key(info.orig_filename)
        if key in seen:
            _refuse("file.unreadable", f"the zip holds two members named {info.orig_filename!r}")
        seen.add(key)
        members.append(_member(data, info))
    _check_declared_sizes(members, limits)
    return members


def _member(data: bytes, info: zipfile.ZipInfo) -> _Member:
    name = info.orig_filename
    if info.flag_bits & 0x1:
        _refuse("file.encrypted", f"zip member {name!r} is password-protected")
    if info.compress_type not in _METHODS:
        _refuse(
            "file.unreadable", f"zip member {name!r} uses compression method {info.compress_type}"
        )
    offset = info.header_offset
    if offset < 0 or offset + _LOCAL_HEADER.size > len(data):
        _refuse("file.unreadable", f"the local header of {name!r} is outside the file")
    signature, _, flags, method, _, _, _, _, _, name_length, extra_length = (
        _LOCAL_HEADER.unpack_from(data, offset)
    )
    if signature != b"PK\x03\x04":
        _refuse("file.unreadable", f"the local header of {name!r} is missing")
    local_name = data[offset + 30 : offset + 30 + name_length]
    if (
        method != info.compress_type
        or local_name.decode("utf-8" if flags & 0x800 else "cp437", "replace") != name
    ):
        _refuse("file.unreadable", f"the local and central headers of {name!r} disagree")
    data_start = offset + 30 + name_length + extra_length
    if data_start > len(data):
        _refuse("file.unreadable", f"the data of {name!r} is outside the file")
    return _Member(
        name=name,
        key=_member_key(name),
        method=info.compress_type,
        flags=info.flag_bits,
        crc=info.CRC,
        compressed_size=info.compress_size,
        declared_size=info.file_size,
        data_start=data_start,
    )


def _check_declared_sizes(members: list[_Member], limits: Limits) -> None:
    """Refuse honest bombs from their headers alone, before inflating anything."""
    for member in members:
        if member.declared_size > limits.max_member_bytes:
            _refuse(
                "file.too_large",
                f"{member.name} declares {member.declared_size:,} bytes unpacked; "
                f"the limit for one member is {limits.max_member_bytes:,}",
            )
        ratio = member.declared_size / max(member.compressed_size, 1)
        if (
            member.declared_size > limits.ratio_check_min_bytes
            and ratio > limits.max_compression_ratio
        ):
            _refuse(
                "file.too_large",
                f"{member.name} declares a compression ratio of {ratio:,.0f}:1; "
                f"the limit is {limits.max_compression_ratio:,.0f}:1",
            )
    total = sum(member.declared_size for member in members)
    if total > limits.max_uncompressed_bytes:
        _refuse(
            "file.too_large",
            f"the members declare {total:,} bytes unpacked; "
            f"the limit is {limits.max_uncompressed_bytes:,}",
        )


class _Inflater:
    """Inflates members for real, counting every byte against the limits."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.view = memoryview(data)
        self.limits = limits
        self.total = 0

    def chunks(self, member: _Member) -> Iterator[bytes]:
        """Yield the member's bytes in pieces of at most 1 MiB, then check size and CRC."""
        produced = 0
        crc = 0
        for chunk, consumed in self._pieces(member):
            if produced == 0 and _DOCTYPE.search(chunk[:_PROLOG_BYTES]):
                # Excel never writes a DTD; one in a workbook is there for entity tricks
                # (billion laughs, external entities) aimed at the XML readers after us.
                _refuse("file.unreadable", f"{member.name} declares a DTD (<!DOCTYPE …>)")
            produced += len(chunk)
            self.total += len(chunk)
            self._check_growth(member, produced, consumed)
            crc = zlib.crc32(chunk, crc)
            yield chunk
        if produced != member.declared_size:
            _refuse(
                "file.unreadable",
                f"{member.name} declares {member.declared_size:,} bytes but holds {produced:,}",
            )
        if crc != member.crc:
            _refuse("file.unreadable", f"{member.name} fails its CRC check (damaged data)")

    def _pieces(self, member: _Member) -> Iterator[tuple[bytes, int]]:
        data = self.data
        if member.method == zipfile.ZIP_STORED:
            end = member.data_start + member.compressed_size
            if end > len(data):
                _refuse("file.unreadable", f"the data of {member.name} is cut off")
            for start in range(member.data_start, end, _OUT_STEP):
                stop = min(start + _OUT_STEP, end)
                yield data[start:stop], stop - member.data_start
            return
        # Deflate: follow the stream to its own end, whatever the headers say its size is.
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        position = member.data_start
        pending: bytes | memoryview = b""
        while not decompressor.eof:
            if not pending:
                if position >= len(data):
                    _refuse("file.unreadable", f"the compressed data of {member.name} is cut off")
                pending = self.view[position : position + _IN_STEP]
                position += len(pending)
            before = len(pending)
            try:
                chunk = decompressor.decompress(pending, _OUT_STEP)
            except zlib.error as error:
                _refuse(
                    "file.unreadable", f"the compressed data of {member.name} is damaged ({error})"
                )
            pending = decompressor.unconsumed_tail
            if chunk:
                yield chunk, position - member.data_start - len(pending)
            elif len(pending) == before and not decompressor.eof:
                _refuse("file.unreadable", f"the compressed data of {member.name} is damaged")
        consumed = position - member.data_start - len(decompressor.unused_data)
        if consumed != member.compressed_size:
            _refuse(
                "file.unreadable",
                f"{member.name} declares {member.compressed_size:,} compressed bytes "
                f"but its stream is {consumed:,}",
            )

    def _check_growth(self, member: _Member, produced: int, consumed: int) -> None:
        limits = self.limits
        if produced > limits.max_member_bytes:
            _refuse(
                "file.too_large",
                f"{member.name} unpacks to more than {limits.max_member_bytes:,} bytes "
                f"(its header says {member.declared_size:,}); "
                f"the limit for one member is {limits.max_member_bytes:,}",
            )
        if self.total > limits.max_uncompressed_bytes:
            _refuse(
                "file.too_large",
                f"the members unpack to more than {limits.max_uncompressed_bytes:,} bytes "
                f"(reached in {member.name}); the limit is {limits.max_uncompressed_bytes:,}",
            )
        ratio = produced / max(consumed, 1)
        if produced > limits.ratio_check_min_bytes and ratio > limits.max_compression_ratio:
            _refuse(
                "file.too_large",
                f"{member.name} inflates {ratio:,.0f}:1 ({produced:,} bytes from {consumed:,}); "
                f"the limit is {limits.max_compression_ratio:,.0f}:1",
            )

    def read_all(self, member: _Member, cap: int) -> bytes:
        """The member's bytes, refused when longer than ``cap`` (for small XML parts)."""
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks(member):
            size += len(chunk)
            if size > cap:
                _refuse("file.too_large", f"{member.name} is larger than {cap:,} bytes")
            parts.append(chunk)
        return b"".join(parts)


# --- XLSX: XML scanning -----------------------------------------------------------------------

_PREFIX = rb"(?:[^\s<>/!?]+:)?"
# The rest of a start tag, quote-aware: '>' may appear inside a quoted value.
_TAG_BODY = rb"""([^<>"']*(?:(?:"[^"<]*"|'[^'<]*')[^<>"']*)*)"""
_COMPLETE_TAG = re.compile(rb"<" + _TAG_BODY + rb">")
_ATTRIBUTE = rb"""\s+([^\s=<>"'/]+)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')"""
_ATTRIBUTE_PAIRS = re.compile(_ATTRIBUTE)
# A well-formed attribute list: nothing between or after the attributes but white space.
_ATTRIBUTE_LIST = re.compile(rb"""(?:\s+[^\s=<>"'/]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*/?""")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6}|lt|gt|amp|quot|apos);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _element_pattern(name: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """A pattern for complete start tags of ``name`` (any prefix), and one for any start."""
    start = rb"<" + _PREFIX + name + rb"(?=[\s/>])"
    return re.compile(start + _TAG_BODY + rb">"), re.compile(start)


_SHEET_TAG = _element_pattern(b"sheet")
_RELATIONSHIP_TAG = _element_pattern(b"Relationship")
_DIMENSION_TAG = _element_pattern(b"dimension")
_SST_TAG = _element_pattern(b"sst")
_SHARED_STRING_START = re.compile(rb"<" + _PREFIX + rb"si(?=[\s/>])")


def _attributes(body: bytes, where: str) -> dict[bytes, bytes]:
    """Attributes of a well-formed start tag; anything else is refused, never guessed."""
    if not _ATTRIBUTE_LIST.fullmatch(body):
        _refuse("file.unreadable", f"{where}: a tag is malformed")
    pairs = _ATTRIBUTE_PAIRS.findall(body)
    attributes = {key: double or single for key, double, single in pairs}
    if len(attributes) != len(pairs):
        _refuse("file.unreadable", f"{where}: a tag repeats an attribute")
    return attributes


def _elements(
    xml: bytes, pattern: tuple[re.Pattern[bytes], re.Pattern[bytes]], where: str
) -> list[dict[bytes, bytes]]:
    complete, start = pattern
    found = [_attributes(match.group(1), where) for match in complete.finditer(xml)]
    if len(found) != len(start.findall(xml)):
        _refuse("file.unreadable", f"{where}: a tag is malformed")
    return found


def _xml_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return _ENTITY.sub(_entity, text) if "&" in text else text


def _entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if not name.startswith("#"):
        return _NAMED_ENTITIES[name]
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


class _TagSplitter:
    """Cuts a stream of XML pieces so that no tag is split between two of them."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        """Return the text up to the last complete tag; keep an unfinished tag for later."""
        text = self.carry + chunk if self.carry else chunk
        cut = text.rfind(b"<")
        if cut < 0 or _COMPLETE_TAG.match(text, cut):
            self.carry = b""
            return text
        self.carry = text[cut:]
        if len(self.carry) > _MAX_TAG_BYTES:
            _refuse(
                "file.unreadable", f"{self.where} has a tag longer than {_MAX_TAG_BYTES:,} bytes"
            )
        return text[:cut]

    def finish(self) -> bytes:
        """Return whatever is left at the end of the stream."""
        rest, self.carry = self.carry, b""
        return rest


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number


def _column_name(number: int) -> str:
    name = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        name = chr(65 + remainder) + name
    return name


_REFERENCE = re.compile(rb"([A-Za-z]*)([0-9]+)")
_COLUMNS: dict[bytes, int] = {}


def _reference(value: bytes, where: str, *, need_column: bool = True) -> tuple[int, int]:
    """(row, column) of a cell reference such as ``XFD1048576``, 1-based; column 0 if none."""
    match = _REFERENCE.fullmatch(value)
    if not match or (need_column and not match.group(1)):
        _refuse("file.unreadable", f"{where}: {value[:20]!r} is not a cell reference")
    letters, digits = match.groups()
    if len(letters) > 3 or len(digits) > 7:
        _refuse("file.sheet_too_large", f"{where}: {value[:20].decode()} is outside Excel's grid")
    row = int(digits)
    if row == 0:
        _refuse("file.unreadable", f"{where}: {value.decode()} has row 0")
    letters = letters.upper()
    column = _COLUMNS.get(letters)
    if column is None:
        column = _COLUMNS[letters] = _column_number(letters)
    return row, column


class _SharedStrings:
    """Lengths of the shared strings (raw XML bytes, an upper bound on their text)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.lengths = array("Q")
        self.max_length = 0

    def feed(self, xml: bytes, where: str) -> None:
        """Account for the next piece of sharedStrings.xml (cut between tags)."""
        if b"sst" in xml:
            self._check_declared_count(xml, where)
        pieces = _SHARED_STRING_START.split(xml)
        if self.lengths:
            self.lengths[-1] += len(pieces[0])
            self.max_length = max(self.max_length, self.lengths[-1])
        if len(pieces) > 1:
            new = array("Q", map(len, pieces[1:]))
            self.lengths.extend(new)
            self.max_length = max(self.max_length, max(new))
        if len(self.lengths) > self.limits.max_shared_strings:
            _refuse(
                "file.too_large",
                f"the workbook has more than {self.limits.max_shared_strings:,} shared strings; "
                f"the limit is {self.limits.max_shared_strings:,}",
            )

    def _check_declared_count(self, xml: bytes, where: str) -> None:
        # calamine reserves room for uniqueCount strings before reading any of them.
        for attributes in _elements(xml, _SST_TAG, where):
            declared = attributes.get(b"uniqueCount", b"").strip().lstrip(b"+")
            if declared.isdigit() and (
                len(declared) > 18 or int(declared) > self.limits.max_shared_strings
            ):
                _refuse(
                    "file.too_large",
                    f"the shared-string table declares {declared[:20].decode()} strings; "
                    f"the limit is {self.limits.max_shared_strings:,}",
                )

    def total_length(self, indexes: list[bytes]) -> int:
        """Text bytes charged for cells using these string indexes (unknown ones: none)."""
        lengths = self.lengths
        try:
            return sum(map(lengths.__getitem__, map(int, indexes)))
        except IndexError:  # calamine refuses a cell whose index is out of range
            count = len(lengths)
            return sum(lengths[i] for i in map(int, indexes) if i < count)


class _NotCanonical(Exception):
    """The sheet XML is not in the plain form the fast scan can read exactly."""


# The fast scan reads sheets written the usual way (Excel, openpyxl, xlsxwriter, LibreOffice):
# every cell tag starts with its reference, <c r="B7" ...>. It only counts and searches
# bytes; any other form sends the whole sheet to the exact, tag-by-tag scan.
_CANONICAL_CELL_ROW = re.compile(rb'<c r="[A-Z]{1,3}([1-9][0-9]{0,6})"')
_CANONICAL_CELL_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[1-9]')
_OTHER_CELL_START = re.compile(rb'<c(?! r=")[\s/>]')
_PREFIXED_CELL_START = re.compile(rb"<[^\s<>/!?]+:c[\s/>]")
# calamine reads a shared-string cell's index from <v>; t="s" usually comes last.
_SHARED_INDEX = re.compile(rb' t="s"><v>([0-9]{1,10})</v>')
# Whitespace and quotes become spaces, so attribute keys can be counted with bytes.count:
# in `<c r="A1" t="s">` the keys are then always preceded by a space and followed by '='.
_BLANKS = bytes.maketrans(b"\t\n\r\"'", b"     ")
# The exact scan: every row start or end tag and every cell start tag, complete or not.
_ROW_OR_CELL_TAG = re.compile(
    rb"<(/(?=" + _PREFIX + rb"row[\s>]))?" + _PREFIX + rb"(row|c)(?=[\s/>])" + _TAG_BODY + rb"(>?)"
)
_VALUE_AFTER_CELL = re.compile(rb"\s*<" + _PREFIX + rb"v>\s*([0-9]{1,10})\s*<")


class _SheetScan:
    """Extent, cell count, declared dimension and text of one worksheet part."""

    def __init__(
        self,
        where: str,
        limits: Limits,
        strings: _SharedStrings,
        text_allowance: int,
        *,
        exact: bool,
    ) -> None:
        self.where = where
        self.limits = limits
        self.strings = strings
        self.text_allowance = text_allowance
        self.exact = exact
        self.min_row = self.min_col = 1 << 62
        self.max_row = self.max_col = 0
        self.cells = 0
        self.row_tags = 0
        self.text_bytes = 0
        self.dimension: str | None = None
        # calamine's cursor for cells without a reference (0-based, as calamine keeps it).
        self.row_index = 0
        self.col_index = 0

    @property
    def extent(self) -> tuple[int, int, int, int] | None:
        """(min_row, min_col, max_row, max_col), or None when no cell was found."""
        if not self.max_row:
            return None
        return self.min_row, self.min_col, self.max_row, self.max_col

    @property
    def used_cells(self) -> int:
        """Rows x columns of the rectangle between the extreme cells."""
        if not self.max_row:
            return 0
        return (self.max_row - self.min_row + 1) * (self.max_col - self.min_col + 1)

    def feed(self, xml: bytes) -> None:
        """Scan the next piece of sheet XML (cut between tags)."""
        if b"dimension" in xml:
            self._dimensions(xml)
        if self.exact:
            self._feed_exact(xml)
        else:
            self._feed_fast(xml)

    def _feed_fast(self, xml: bytes) -> None:
        cells = xml.count(b'<c r="')
        if _OTHER_CELL_START.search(xml) or (b":c" in xml and _PREFIXED_CELL_START.search(xml)):
            raise _NotCanonical
        blanked = xml.translate(_BLANKS)
        # No whitespace around '=', and no key `r` but the one that opens each cell or row.
        if b" =" in blanked or b"=  " in blanked:
            raise _NotCanonical
        if blanked.count(b" r=") != cells + xml.count(b'<row r="'):
            raise _NotCanonical
        self._count_rows(xml.count(b"<row"))
        rows = _CANONICAL_CELL_ROW.findall(xml)
        if len(rows) != cells:
            raise _NotCanonical
        if not cells:
            return
        row_numbers = list(map(int, set(rows)))
        columns = [_column_number(letters) for letters in set(_CANONICAL_CELL_COLUMN.findall(xml))]
        self._add(min(row_numbers), min(columns), max(row_numbers), max(columns), cells)
        shared = blanked.count(b" t= s ")
        if shared and self.strings.max_length:
            indexes = _SHARED_INDEX.findall(xml)
            unknown = max(shared - len(indexes), 0)
            self._charge(self.strings.total_length(indexes) + unknown * self.strings.max_length)

    def _feed_exact(self, xml: bytes) -> None:
        """Follow every row and cell tag as calamine does, placing cells without ``r``."""
        rows: list[int] = []
        columns: list[int] = []
        text_bytes = 0
        lengths = self.strings.lengths
        row_tags = 0
        row_index, col_index = self.row_index, self.col_index  # 0-based, like calamine's
        for match in _ROW_OR_CELL_TAG.finditer(xml):
            closing, name, body, end = match.groups()
            if not end:
                _refuse("file.unreadable", f"{self.where}: a {name.decode()} tag is malformed")
            if closing:  # </row>
                row_index += 1
                col_index = 0
                continue
            attributes = _attributes(body, self.where)
            reference = attributes.get(b"r")
            if name == b"row":
                row_tags += 1
                if reference is not None:
                    row_index = _reference(reference, self.where, need_column=False)[0] - 1
                if body.endswith(b"/"):  # <row/> is a start and an end
                    row_index += 1
                    col_index = 0
                continue
            if reference is None:
                row, column = row_index + 1, col_index + 1
            else:
                row, column = _reference(reference, self.where)
            col_index = column
            rows.append(row)
            columns.append(column)
            if attributes.get(b"t") == b"s" and not body.endswith(b"/") and lengths:
                value = _VALUE_AFTER_CELL.match(xml, match.end())
                if value is None:  # not the usual <v>index</v>: charge the longest string
                    text_bytes += self.strings.max_length
                elif (index := int(value.group(1))) < len(lengths):
                    text_bytes += lengths[index]
        self.row_index, self.col_index = row_index, col_index
        self._count_rows(row_tags)
        if rows:
            self._add(min(rows), min(columns), max(rows), max(columns), len(rows))
        if text_bytes:
            self._charge(text_bytes)

    def _dimensions(self, xml: bytes) -> None:
        for attributes in _elements(xml, _DIMENSION_TAG, self.where):
            ref = attributes.get(b"ref")
            if ref is None:
                continue
            corners = [_reference(corner, self.where) for corner in ref.split(b":")]
            if len(corners) > 2:
                _refuse("file.unreadable", f"{self.where}: the dimension {ref[:40]!r} is malformed")
            (top, left), (bottom, right) = corners[0], corners[-1]
            if bottom < top or right < left:
                _refuse(
                    "file.unreadable", f"{self.where}: the dimension {ref.decode()} is inverted"
                )
            if self.dimension is None:
                self.dimension = ref.decode()
            self._check_rectangle(
                top, left, bottom, right, f'declares <dimension ref="{ref.decode()}">'
            )

    def _count_rows(self, row_tags: int) -> None:
        self.row_tags += row_tags
        if self.row_tags > self.limits.max_sheet_rows:
            _refuse(
                "file.sheet_too_large",
                f"{self.where} has at least {self.row_tags:,} row entries; "
                f"the limit is {self.limits.max_sheet_rows:,}",
            )

    def _add(self, top: int, left: int, bottom: int, right: int, cells: int) -> None:
        self.min_row = min(self.min_row, top)
        self.min_col = min(self.min_col, left)
        self.max_row = max(self.max_row, bottom)
        self.max_col = max(self.max_col, right)
        self.cells += cells
        limits = self.limits
        if self.cells > limits.max_sheet_cells:
            _refuse(
                "file.sheet_too_large",
                f"{self.where} has at least {self.cells:,} cell entries; "
                f"the limit is {limits.max_sheet_cells:,}",
            )
        self._check_rectangle(self.min_row, self.min_col, self.max_row, self.max_col, None)

    def _check_rectangle(
        self, top: int, left: int, bottom: int, right: int, what: str | None
    ) -> None:
        limits = self.limits
        cells = (bottom - top + 1) * (right - left + 1)
        if (
            right <= limits.max_sheet_columns
            and bottom <= limits.max_sheet_rows
            and cells <= limits.max_sheet_cells
        ):
            return
        if what is None:
            what = f"has cells over {_column_name(left)}{top}:{_column_name(right)}{bottom}"
        if right > limits.max_sheet_columns:
            _refuse(
                "file.sheet_too_large",
                f"{self.where} {what}, reaching column {right:,}; "
                f"the limit is {limits.max_sheet_columns:,} columns",
            )
        if bottom > limits.max_sheet_rows:
            _refuse(
                "file.sheet_too_large",
                f"{self.where} {what}, reaching row {bottom:,}; "
                f"the limit is {limits.max_sheet_rows:,} rows",
            )
        _refuse(
            "file.sheet_too_large",
            f"{self.where} {what} = {cells:,} cells; the limit is {limits.max_sheet_cells:,}",
        )

    def _charge(self, text_bytes: int) -> None:
        self.text_bytes += text_bytes
        if self.text_bytes > self.text_allowance:
            _refuse(
                "file.too_large",
                f"the cells expand to more than {self.limits.max_text_bytes:,} bytes of text "
                f"(reached in {self.where}); the limit is {self.limits.max_text_bytes:,}",
            )


# --- XLSX: the workbook -----------------------------------------------------------------------

_ROOT_RELS = "_rels/.rels"
_WORKBOOK = "xl/workbook.xml"
_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
_SHARED_STRINGS = "xl/sharedstrings.xml"
_SHEET_STATES = {b"visible": "visible", b"hidden": "hidden", b"veryHidden": "veryHidden"}


def check_xlsx_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> XlsxSummary:
    """Check .xlsx bytes before fastexcel reads them, and say what the workbook holds.

    Refuses: too large (``file.too_large``, upload size, or members, text and shared strings
    measured while inflating), damaged (``file.unreadable``), macros (``file.macro``), a zip
    that is not a workbook or an old .xls (``file.type_mismatch``), a password-protected
    workbook (``file.encrypted``) and sheets whose cells or declared dimension exceed the
    limits (``file.sheet_too_large``). Returns the sheets found, with their real extents.
    """
    _check_upload_size(data, limits)
    if data.startswith(_CFB_MAGIC):
        check_ole_bytes(data)
    if not data.startswith(b"PK\x03\x04"):
        _refuse("file.type_mismatch", "the bytes are not a zip package, so not an .xlsx workbook")
    try:
        return _WorkbookCheck(data, limits).run()
    except (ValueError, IndexError, KeyError, OverflowError, struct.error, zlib.error) as error:
        # A hostile structure that got past the explicit checks: refuse it, never crash.
        _refuse("file.unreadable", f"the workbook is damaged ({type(error).__name__})")


@dataclass(frozen=True)
class _SheetEntry:
    name: str
    state: str
    part: _Member


class _WorkbookCheck:
    def __init__(self, data: bytes, limits: Limits) -> None:
        self.limits = limits
        self.members = _read_members(data, limits)
        self.by_key = {member.key: member for member in self.members}
        self.inflater = _Inflater(data, limits)
        self.done: set[str] = set()

    def run(self) -> XlsxSummary:
        for member in self.members:
            if member.key.endswith("vbaproject.bin") or member.key.startswith("xl/macrosheets/"):
                _refuse("file.macro", f"the workbook contains macros ({member.name})")
        if _WORKBOOK not in self.by_key:
            _refuse(
                "file.type_mismatch", "the zip file is not an Excel workbook (no xl/workbook.xml)"
            )
        self._check_package_root()
        entries = self._sheet_entries()
        strings = self._shared_strings()
        names = {entry.part.key: f"sheet {entry.name!r}" for entry in entries}
        parts = [entry.part for entry in entries] + [
            member
            for member in self.members
            if member.key.startswith("xl/worksheets/") and member.key.endswith(".xml")
        ]
        scans: dict[str, _SheetScan] = {}
        text_bytes = 0
        for part in parts:
            if part.key in scans:
                continue
            where = names.get(part.key, part.name)
            scan = self._scan_sheet(part, where, strings, self.limits.max_text_bytes - text_bytes)
            scans[part.key] = scan
            text_bytes += scan.text_bytes
        self._check_workbook_cells(scans)
        for member in self.members:  # every byte is inflated and CRC-checked once
            if member.key not in self.done:
                self.done.add(member.key)
                for _ in self.inflater.chunks(member):
                    pass
        return XlsxSummary(
            sheets=tuple(
                SheetSummary(
                    name=entry.name,
                    part=entry.part.name,
                    state=entry.state,
                    extent=scans[entry.part.key].extent,
                    dimension=scans[entry.part.key].dimension,
                    cell_count=scans[entry.part.key].cells,
                )
                for entry in entries
            ),
            uncompressed_bytes=self.inflater.total,
        )

    def _read_xml(self, key: str) -> bytes | None:
        member = self.by_key.get(key)
        if member is None:
            return None
        self.done.add(key)
        return self.inflater.read_all(member, _MAX_METADATA_BYTES)

    def _check_package_root(self) -> None:
        """The package root names the workbook calamine opens; it must be xl/workbook.xml."""
        xml = self._read_xml(_ROOT_RELS)
        if xml is None:
            return
        for relationship in _elements(xml, _RELATIONSHIP_TAG, _ROOT_RELS):
            if relationship.get(b"Type", b"").endswith(b"/officeDocument"):
                target = _xml_text(relationship.get(b"Target", b""))
                if _member_key(target.lstrip("/")) != _WORKBOOK:
                    _refuse(
                        "file.type_mismatch",
                        f"the package's main part is {target[:60]!r}, not xl/workbook.xml",
                    )

    def _sheet_entries(self) -> list[_SheetEntry]:
        workbook = self._read_xml(_WORKBOOK) or b""
        rels = self._read_xml(_WORKBOOK_RELS) or b""
        targets = {
            relationship.get(b"Id"): _xml_text(relationship.get(b"Target", b""))
            for relationship in _elements(rels, _RELATIONSHIP_TAG, _WORKBOOK_RELS)
        }
        entries = []
        for sheet in _elements(workbook, _SHEET_TAG, _WORKBOOK):
            name = _xml_text(sheet.get(b"name", b""))
            ids = [value for key, value in sheet.items() if key == b"id" or key.endswith(b":id")]
            if len(ids) != 1 or ids[0] not in targets:
                _refuse("file.unreadable", f"sheet {name!r} has no valid relationship")
            target = targets[ids[0]]
            path = target[1:] if target.startswith("/") else "xl/" + target
            part = self.by_key.get(_member_key(path))
            if part is None:
                _refuse(
                    "file.unreadable", f"sheet {name!r} points at a missing part {target[:60]!r}"
                )
            state = _SHEET_STATES.get(sheet.get(b"state", b"visible"))
            if state is None:
                _refuse("file.unreadable", f"sheet {name!r} has an unknown state")
            entries.append(_SheetEntry(name, state, part))
        return entries

    def _shared_strings(self) -> _SharedStrings:
        strings = _SharedStrings(self.limits)
        member = self.by_key.get(_SHARED_STRINGS)
        if member is not None:
            self.done.add(member.key)
            splitter = _TagSplitter(member.name)
            for chunk in self.inflater.chunks(member):
                strings.feed(splitter.feed(chunk), member.name)
            strings.feed(splitter.finish(), member.name)
        return strings

    def _scan_sheet(
        self, part: _Member, where: str, strings: _SharedStrings, text_allowance: int
    ) -> _SheetScan:
        self.done.add(part.key)
        counted = self.inflater.total
        try:
            return self._scan(
                part, _SheetScan(where, self.limits, strings, text_allowance, exact=False)
            )
        except _NotCanonical:
            self.inflater.total = counted  # the part is inflated again, not twice as large
            return self._scan(
                part, _SheetScan(where, self.limits, strings, text_allowance, exact=True)
            )

    def _scan(self, part: _Member, scan: _SheetScan) -> _SheetScan:
        splitter = _TagSplitter(scan.where)
        for chunk in self.inflater.chunks(part):
            scan.feed(splitter.feed(chunk))
        scan.feed(splitter.finish())
        return scan

    def _check_workbook_cells(self, scans: dict[str, _SheetScan]) -> None:
        limits = self.limits
        used = sum(scan.used_cells for scan in scans.values())
        entries = sum(scan.cells for scan in scans.values())
        if max(used, entries) > limits.max_workbook_cells:
            _refuse(
                "file.sheet_too_large",
                f"the sheets together span {max(used, entries):,} cells; "
                f"the limit is {limits.max_workbook_cells:,}",
            )
