"""The layer contract in pyproject.toml holds today, and catches an upward import.

The stages of the pipeline may import only the stages below them (``[tool.importlinter]``).
These tests run ``lint-imports`` as ``make lint`` does, on the real tree and on a copy of
it with one deliberately wrong import added, and expect it to pass and to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("vetreport", "flows", "schemas")

pytestmark = pytest.mark.integration


def run_lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_tree(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_tree_keeps_the_contract() -> None:
    result = run_lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "message"),
    [
        pytest.param(
            "vetreport/bucket/shortcut.py",
            "from vetreport.publish.reader import read_pointer\n",
            "vetreport.bucket is not allowed to import vetreport.publish",
            id="bucket imports publish",
        ),
        pytest.param(
            "vetreport/validate/shortcut.py",
            "def late():\n    from vetreport.curate import ledger\n    return ledger\n",
            "vetreport.validate is not allowed to import vetreport.curate",
            id="an import inside a function is still seen",
        ),
        pytest.param(
            "schemas/shortcut.py",
            "import vetreport.settings\n",
            "schemas is not allowed to import vetreport.settings",
            id="the catalogue imports the package",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract(
    tmp_path: Path, module: str, bad_import: str, message: str
) -> None:
    tree = copy_of_the_tree(tmp_path)
    (tree / module).write_text(f'"""A deliberately wrong import."""\n\n{bad_import}')
    result = run_lint_imports(tree)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout
