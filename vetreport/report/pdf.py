"""The PDF of a report document, by LibreOffice where it is installed.

What belongs here: finding ``soffice`` (Debian's libreoffice-writer) and converting a .docx
to PDF in a scratch folder with its own LibreOffice profile, so two conversions at once do
not share one. Without LibreOffice there is no PDF (the .docx is the document; the PDF is a
convenience) and ``pdf_bytes`` says so by returning None.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CONVERT_TIMEOUT_SECONDS = 180


class PdfConversionError(RuntimeError):
    """LibreOffice is installed but did not produce a PDF."""


def soffice_path() -> str | None:
    """LibreOffice's command, or None where it is not installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def pdf_bytes(docx: bytes) -> bytes | None:
    """The PDF of a .docx, or None when LibreOffice is not installed."""
    soffice = soffice_path()
    if soffice is None:
        return None
    with tempfile.TemporaryDirectory(prefix="vetreport-pdf-") as scratch:
        folder = Path(scratch)
        source = folder / "report.docx"
        source.write_bytes(docx)
        command = [
            soffice,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(folder),
            str(source),
        ]
        try:
            finished = subprocess.run(
                command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired as error:
            raise PdfConversionError(
                f"LibreOffice took over {CONVERT_TIMEOUT_SECONDS} s to convert"
            ) from error
        target = folder / "report.pdf"
        if not target.is_file():
            raise PdfConversionError(
                f"LibreOffice made no PDF (exit {finished.returncode}): "
                f"{(finished.stderr or finished.stdout).strip()[:500]}"
            )
        return target.read_bytes()
