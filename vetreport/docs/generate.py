"""Every generated document in one place: ``vetreport docs`` rewrites them all.

What belongs here: the list of generated files and the function that writes (or checks)
each. A test fails when a committed file differs from what this would write. Besides the
docs, the shared school policies under infra/ are generated, from the access rules of
``vetreport.bucket.identities``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vetreport.bucket.identities import render_shared_policy
from vetreport.docs.data_dictionary import render_dictionary
from vetreport.docs.indicator_docs import DOCS_PATH as INDICATORS_PATH
from vetreport.docs.indicator_docs import render_indicator_docs
from vetreport.docs.settings_table import OPERATIONS_PATH, with_settings_table
from vetreport.paths import DOCS_DIR, INFRA_DIR


def generated_documents() -> dict[Path, Callable[[str], str]]:
    """Each generated file and how to make its text from its current text."""
    return {
        DOCS_DIR / "data-dictionary.md": lambda _current: render_dictionary(),
        INDICATORS_PATH: lambda _current: render_indicator_docs(),
        OPERATIONS_PATH: with_settings_table,
        INFRA_DIR / "minio-school-upload-policy.json": lambda _: render_shared_policy("minio"),
        INFRA_DIR / "aws-school-upload-policy.json": lambda _: render_shared_policy("aws"),
    }


def stale_documents() -> list[Path]:
    """The generated files whose committed text differs from what would be written."""
    stale = []
    for path, render in generated_documents().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if render(current) != current:
            stale.append(path)
    return stale


def write_documents() -> list[Path]:
    """Rewrite every generated file; return those that changed."""
    changed = []
    for path, render in generated_documents().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        text = render(current)
        if text != current:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
