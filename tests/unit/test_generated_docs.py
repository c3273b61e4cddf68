"""Every generated document under docs/ is what `vetreport docs` would write today."""

from __future__ import annotations

from vetreport.docs.generate import generated_documents, stale_documents
from vetreport.docs.settings_table import BEGIN, END, render_settings_table, with_settings_table
from vetreport.settings import Settings


def test_no_generated_document_is_stale() -> None:
    stale = [path.name for path in stale_documents()]
    assert stale == [], f"run `.venv/bin/vetreport docs` to rewrite: {stale}"


def test_the_settings_table_lists_every_setting_with_its_default() -> None:
    table = render_settings_table()
    for name, field in Settings.model_fields.items():
        assert f"`VETREPORT_{name.upper()}`" in table
        assert field.description, f"setting {name} has no description"
    assert "| `VETREPORT_SWEEP_SECONDS` | `60` |" in table


def test_the_settings_table_replaces_only_its_block() -> None:
    document = f"before\n{BEGIN}\nold table\n{END}\nafter\n"
    rewritten = with_settings_table(document)
    assert rewritten.startswith("before\n") and rewritten.endswith(f"{END}\nafter\n")
    assert "old table" not in rewritten
    assert with_settings_table(rewritten) == rewritten


def test_the_generated_list_names_the_documents_and_the_shared_policies() -> None:
    names = sorted(path.name for path in generated_documents())
    assert names == [
        "aws-school-upload-policy.json",
        "data-dictionary.md",
        "indicators.md",
        "minio-school-upload-policy.json",
        "operations.md",
    ]
