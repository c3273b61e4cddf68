"""Where the repository's non-Python parts are: sql/, schemas/, infra/, docs/, examples/.

What belongs here: the few filesystem anchors that code outside its own folder needs, so no
module counts ``parent.parent`` to find them. Nothing here reads a file.
"""

from __future__ import annotations

from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPOSITORY_ROOT / "sql"
INFRA_DIR = REPOSITORY_ROOT / "infra"
DOCS_DIR = REPOSITORY_ROOT / "docs"
EXAMPLES_DIR = REPOSITORY_ROOT / "examples"
