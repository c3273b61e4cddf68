"""The text of a PDF as LibreOffice writes it, for the tests (no PDF library is installed).

Reads every object, inflates FlateDecode streams, maps each font's glyph codes to Unicode
through its ToUnicode CMap, and collects the strings shown by Tj/TJ in the page content
streams, in order. Enough for LibreOffice's own output (classic xref, Type0 fonts with
ToUnicode); not a general PDF reader.
"""

from __future__ import annotations

import re
import zlib

_OBJECT = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.DOTALL)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def _objects(pdf: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    objects = {}
    for match in _OBJECT.finditer(pdf):
        body = match[2]
        stream = _STREAM.search(body)
        data = None
        if stream:
            data = stream[1]
            if b"FlateDecode" in body[: stream.start()]:
                try:
                    data = zlib.decompress(data)
                except zlib.error:
                    data = None
        objects[int(match[1])] = (body, data)
    return objects


def _cmap(data: bytes) -> dict[int, str]:
    mapping: dict[int, str] = {}
    text = data.decode("latin-1")
    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.DOTALL):
        for source, target in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(source, 16)] = bytes.fromhex(target).decode("utf-16-be")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.DOTALL):
        for low, high, target in re.findall(
            r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            start = int(target, 16)
            for offset, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                mapping[code] = chr(start + offset)
    return mapping


def pdf_text(pdf: bytes) -> str:
    """Every string the pages show, decoded, in content-stream order."""
    objects = _objects(pdf)
    fonts: dict[bytes, tuple[dict[int, str], int]] = {}
    for body, _ in objects.values():
        for name, number in re.findall(rb"/(F\d+)\s+(\d+) 0 R", body):
            font_body = objects.get(int(number), (b"", None))[0]
            unicode_ref = re.search(rb"/ToUnicode\s+(\d+) 0 R", font_body)
            if unicode_ref and objects.get(int(unicode_ref[1]), (b"", None))[1]:
                width = 2 if b"Type0" in font_body else 1
                fonts[name] = (_cmap(objects[int(unicode_ref[1])][1] or b""), width)
    pieces: list[str] = []
    for _, data in objects.values():
        if data is None or b"Tf" not in data:
            continue
        current: tuple[dict[int, str], int] = ({}, 1)
        for token in re.finditer(rb"/(F\d+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]*)>|\((.*?)(?<!\\)\)", data):
            if token[1]:
                current = fonts.get(token[1], ({}, 1))
            elif token[2] is not None:
                mapping, width = current
                raw = bytes.fromhex(token[2].decode())
                for index in range(0, len(raw) - width + 1, width):
                    code = int.from_bytes(raw[index : index + width], "big")
                    pieces.append(mapping.get(code, ""))
            elif token[3] is not None:
                mapping, _ = current
                pieces.extend(mapping.get(byte, chr(byte)) for byte in token[3])
    return "".join(pieces)
