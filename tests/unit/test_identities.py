"""The identities of a registry and their renderings (no server: see
tests/integration/test_identities_on_seaweedfs.py for a store enforcing them)."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from vetreport.bucket.identities import (
    EVERY_YEAR,
    RegistryError,
    principals,
    read_registry_codes,
    s3_policy,
    school_principal,
    seaweedfs_actions,
    write_identities,
)
from vetreport.cli.main import main

REGISTRY = "学校代码,学校名称,省份,地市,区县,办学性质\n3133060001,甲,浙江省,绍兴市,越城区,公办\n"


def test_the_registry_is_read_by_any_header_the_catalogue_knows() -> None:
    assert read_registry_codes(REGISTRY.encode("utf-8-sig")) == ["3133060001"]
    assert read_registry_codes(REGISTRY.encode("gb18030")) == ["3133060001"]
    english = "school_name,school_code\nA,3133060002\nB,3133060001\nA,3133060002\n,\n"
    assert read_registry_codes(english.encode()) == ["3133060002", "3133060001"]


@pytest.mark.parametrize(
    "text",
    [
        "学校名称\n甲\n",  # no code column
        "学校代码\n31330*0001\n",  # a wildcard in a policy
        "学校代码\n../../x\n",
        "学校代码\n３１３３０６０００１\n",  # full-width digits
        "学校代码\n",
    ],
)
def test_a_registry_without_proper_codes_is_refused(text: str) -> None:
    with pytest.raises(RegistryError):
        read_registry_codes(text.encode())


def test_a_school_writes_its_uploads_of_its_years_and_reads_its_reports() -> None:
    actions = seaweedfs_actions(school_principal("3133060001", [2023, 2024]), "vet")
    assert actions == [
        "Write:vet/uploads/2023/3133060001/*",
        "Write:vet/uploads/2024/3133060001/*",
        "Read:vet/reports/2023/3133060001/*",
        "Read:vet/reports/2024/3133060001/*",
        "Read:vet/templates/*",
        "List:vet/uploads/2023/3133060001/*",
        "List:vet/uploads/2024/3133060001/*",
        "List:vet/reports/2023/3133060001/*",
        "List:vet/reports/2024/3133060001/*",
    ]


def test_every_year_is_four_characters_never_a_star() -> None:
    policy = s3_policy(school_principal("3133060001"), "vet")
    text = json.dumps(policy)
    assert f"uploads/{EVERY_YEAR}/3133060001/*" in text
    assert "uploads/*/" not in text and "reports/*/" not in text


def test_the_policies_allow_only_what_the_rules_say() -> None:
    school, bureau, pipeline = (
        s3_policy(p, "vet") for p in principals(["3133060001"], [2023])[0:3]
    )
    statements = {statement["Sid"]: statement for statement in school["Statement"]}
    assert statements["WriteOwnPrefixes"]["Resource"] == [
        "arn:aws:s3:::vet/uploads/2023/3133060001/*"
    ]
    assert "s3:DeleteObject" in statements["WriteOwnPrefixes"]["Action"]
    assert statements["ListOwnPrefixes"]["Resource"] == ["arn:aws:s3:::vet"]
    assert statements["ListOwnPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        "uploads/2023/3133060001/*",
        "reports/2023/3133060001/*",
    ]
    bureau_writes = next(s for s in bureau["Statement"] if s["Sid"] == "WriteOwnPrefixes")
    assert bureau_writes["Resource"] == ["arn:aws:s3:::vet/uploads/2023/_city/*"]
    assert pipeline["Statement"][0]["Resource"] == ["arn:aws:s3:::vet", "arn:aws:s3:::vet/*"]
    for document in (school, bureau):
        assert all(statement["Effect"] == "Allow" for statement in document["Statement"])
        assert "s3:*" not in json.dumps(document)


def test_written_identities_keep_their_keys_and_hide_their_secrets(tmp_path: Path) -> None:
    first = write_identities(REGISTRY.encode(), tmp_path, "vet", [2023])
    larger = REGISTRY + "3133060002,乙,浙江省,绍兴市,越城区,公办\n"
    second = write_identities(larger.encode(), tmp_path, "vet", [2023, 2024])
    keys = {p.name: (p.access_key, p.secret_key) for p in first}
    assert all(keys[p.name] == (p.access_key, p.secret_key) for p in second if p.name in keys)
    assert [p.name for p in second] == [
        "school-3133060001",
        "school-3133060002",
        "vetreport-bureau",
        "vetreport-pipeline",
    ]
    assert len({p.secret_key for p in second}) == 4
    for private in (tmp_path / "credentials.csv", tmp_path / "seaweedfs" / "s3.json"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    config = json.loads((tmp_path / "seaweedfs" / "s3.json").read_text())
    assert [identity["name"] for identity in config["identities"]] == [p.name for p in second]
    with (tmp_path / "credentials.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert rows[1]["access_key"] == "3133060002" and rows[1]["school_code"] == "3133060002"
    for target in ("minio", "aws"):
        written = sorted(path.name for path in (tmp_path / target / "policies").iterdir())
        assert written == sorted(f"{p.name}.json" for p in second)
    script = (tmp_path / "minio" / "setup.sh").read_text()
    assert "mc admin policy attach vet vetreport-school-3133060002 --user 3133060002" in script
    assert second[1].secret_key not in script


def test_the_command_writes_them_for_a_registry_file(tmp_path: Path, capsys) -> None:
    registry = tmp_path / "school_registry.csv"
    registry.write_bytes(REGISTRY.encode("utf-8-sig"))
    out = tmp_path / "identities"
    assert main(["identities", "--registry", str(registry), "--out", str(out)]) == 0
    assert "1 schools" in capsys.readouterr().out
    config = json.loads((out / "seaweedfs" / "s3.json").read_text())
    assert "Write:vetreport/uploads/2023/3133060001/*" in config["identities"][0]["actions"]
    assert main(["identities", "--registry", str(registry), "--out", str(out), "--every-year"]) == 0
    config = json.loads((out / "seaweedfs" / "s3.json").read_text())
    assert config["identities"][0]["actions"][0] == "Write:vetreport/uploads/????/3133060001/*"
    registry.write_text("学校名称\n甲\n", encoding="utf-8")
    assert main(["identities", "--registry", str(registry), "--out", str(out)]) == 2
