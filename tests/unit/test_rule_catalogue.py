"""Every rule id the code can emit is in schemas/rules.csv, with messages in both languages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from schemas.catalogue import LAYERS, load_rules

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "vetreport").rglob("*.py")), *sorted((ROOT / "flows").glob("*.py"))]
RULE_ID = re.compile(rf"^({'|'.join(LAYERS)})\.[a-z0-9_]+$")


def rule_id_literals() -> dict[str, str]:
    """Every string constant in the package that has the shape of a rule id, and where."""
    found: dict[str, str] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and RULE_ID.match(node.value):
                found.setdefault(node.value, f"{path.name}:{node.lineno}")
    return found


def test_the_scan_finds_the_rules_the_validator_emits() -> None:
    found = rule_id_literals()
    assert {"file.type_mismatch", "field.privacy_person_name", "row.total_row"} <= set(found)


def test_every_rule_id_in_the_code_is_in_the_catalogue() -> None:
    rules = load_rules()
    missing = {
        rule_id: where for rule_id, where in rule_id_literals().items() if rule_id not in rules
    }
    assert missing == {}


def test_every_rule_has_chinese_and_english_messages_and_a_fix() -> None:
    for rule in load_rules().values():
        assert rule.message_zh.strip() and re.search(r"[\u4e00-\u9fff]", rule.message_zh), rule
        assert re.search(r"[A-Za-z]{3}", rule.message_en), rule.rule_id
        assert rule.fix_zh.strip(), rule.rule_id
        assert rule.rule_id.split(".")[0] == rule.layer, rule.rule_id
