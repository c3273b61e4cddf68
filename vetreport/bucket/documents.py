"""How the pipeline's JSON documents are written to the bucket: one serialisation.

What belongs here: turning a report, a ledger record, a school's upload list or numbers
page into the bytes stored, so that every writer stores JSON the same way and a reader (or
a test comparing two runs) never meets two spellings of one document.
"""

from __future__ import annotations

import json
from typing import Any


def document_bytes(document: Any, sort_keys: bool = False) -> bytes:
    """A document as the pipeline stores it: UTF-8 JSON on one line.

    Not indented: Python's JSON encoder indents in pure Python, five times slower than its
    C encoder, and the pipeline writes several documents for every upload and every school
    (pipe one through ``jq`` to read it).
    """
    return json.dumps(document, ensure_ascii=False, default=str, sort_keys=sort_keys).encode()
