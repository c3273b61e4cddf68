"""Who may touch which keys: one S3 identity per school, the bureau's and the pipeline's.

What belongs here: the access rules of the bucket layout (``vetreport.bucket.keys``) as
data, read from the bureau's school registry, and their renderings for the object stores
the service runs on: SeaweedFS's identities file (``weed server -s3.config``), MinIO
policies (``mc admin policy create``) and AWS IAM policies. Nothing here talks to a server.

The rules, for a bucket ``B`` and the years ``Y`` (the open years, or every year):

- school ``C``: write (put, delete, multipart) ``uploads/{Y}/C/``; read ``reports/{Y}/C/``
  and ``templates/``; list its own ``uploads/{Y}/C/`` and ``reports/{Y}/C/`` only;
- the bureau: write ``uploads/{Y}/_city/``; read and list ``published/``, ``reports/``,
  ``templates/``; list its own ``uploads/{Y}/_city/``;
- the pipeline: everything in the bucket, and the bucket itself (create it, versioning).

"Every year" is written ``????`` (one character each) rather than ``*``: in S3 policies and
SeaweedFS actions ``*`` also matches ``/``, so ``uploads/*/C/*`` would let school C write
``uploads/2023/D/C/x.csv`` into school D's folder.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from schemas.catalogue import header_lookup, load_datasets, normalise_header
from vetreport.bucket.keys import CITY_SUBMITTER, UPLOADS_ROOT

READ, WRITE, LIST, ADMIN = "read", "write", "list", "admin"
SCHOOL, BUREAU, PIPELINE = "school", "bureau", "pipeline"
EVERY_YEAR = "????"
BUREAU_NAME = "vetreport-bureau"
PIPELINE_NAME = "vetreport-pipeline"
CREDENTIALS_FILE = "credentials.csv"

# What each kind of grant allows, in S3 policy actions (AWS and MinIO).
S3_ACTIONS = {
    WRITE: ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
    READ: ["s3:GetObject"],
}
# ... and in SeaweedFS's own action names ("Write" includes delete and multipart).
SEAWEEDFS_ACTIONS = {WRITE: "Write", READ: "Read", LIST: "List", ADMIN: "Admin"}


class RegistryError(ValueError):
    """The registry file has no school code column or a code that is not one."""


@dataclass(frozen=True)
class Grant:
    """One permission: an action on every key under a prefix ("" is the whole bucket)."""

    action: str
    prefix: str


@dataclass(frozen=True)
class Principal:
    """One S3 identity: its name, what it is, its grants and (once issued) its keys."""

    name: str
    role: str
    grants: tuple[Grant, ...]
    school_code: str | None = None
    access_key: str = ""
    secret_key: str = ""

    def prefixes(self, action: str) -> list[str]:
        """The prefixes this identity may use the action on, in order."""
        return [grant.prefix for grant in self.grants if grant.action == action]


# -- the registry ------------------------------------------------------------------------


def read_registry_codes(data: bytes) -> list[str]:
    """The school codes of a registry CSV (UTF-8 with or without BOM, or GB18030).

    The code column is found by any header the catalogue knows for ``school_registry``'s
    ``school_code`` (学校代码, 学校标识码, school_code, ...). Codes must match the
    catalogue's pattern; they become parts of keys and policies. Order kept, repeats dropped.
    """
    text = _decode(data)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RegistryError("the registry is empty")
    lookup = header_lookup("school_registry")
    columns = [lookup.get(normalise_header(cell)) for cell in rows[0]]
    if "school_code" not in columns:
        raise RegistryError(f"no school code column among the headers {rows[0]}")
    index = columns.index("school_code")
    pattern = re.compile(_code_pattern())
    codes: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        code = row[index].strip() if index < len(row) else ""
        if not pattern.fullmatch(code) or not code.isascii():
            raise RegistryError(f"row {number}: {code!r} is not a school code")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise RegistryError("the registry lists no school")
    return codes


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RegistryError("the registry is neither UTF-8 nor GB18030 text")


def _code_pattern() -> str:
    for column in load_datasets()["school_registry"].columns:
        if column.column_name == "school_code" and column.pattern:
            return column.pattern
    return r"^[0-9A-Za-z]{6,20}$"


# -- the rules ---------------------------------------------------------------------------


def _year_parts(years: Iterable[int] | None) -> list[str]:
    return [EVERY_YEAR] if years is None else [str(year) for year in sorted(set(years))]


def school_principal(code: str, years: Iterable[int] | None = None) -> Principal:
    """A school's identity: its own uploads and reports of the years, and the templates."""
    parts = _year_parts(years)
    uploads = [f"{UPLOADS_ROOT}{year}/{code}/" for year in parts]
    reports = [f"reports/{year}/{code}/" for year in parts]
    grants = (
        *(Grant(WRITE, prefix) for prefix in uploads),
        *(Grant(READ, prefix) for prefix in reports),
        Grant(READ, "templates/"),
        *(Grant(LIST, prefix) for prefix in [*uploads, *reports]),
    )
    return Principal(f"school-{code}", SCHOOL, grants, school_code=code)


def bureau_principal(years: Iterable[int] | None = None) -> Principal:
    """The bureau: its own files under _city/, and every report and published version."""
    uploads = [f"{UPLOADS_ROOT}{year}/{CITY_SUBMITTER}/" for year in _year_parts(years)]
    shared = ["published/", "reports/", "templates/"]
    grants = (
        *(Grant(WRITE, prefix) for prefix in uploads),
        *(Grant(READ, prefix) for prefix in shared),
        *(Grant(LIST, prefix) for prefix in [*uploads, *shared]),
    )
    return Principal(BUREAU_NAME, BUREAU, grants)


def pipeline_principal() -> Principal:
    """The pipeline: everything in the bucket, and the bucket itself (create, versioning)."""
    grants = (Grant(ADMIN, ""), Grant(READ, ""), Grant(WRITE, ""), Grant(LIST, ""))
    return Principal(PIPELINE_NAME, PIPELINE, grants)


def principals(codes: Sequence[str], years: Iterable[int] | None = None) -> list[Principal]:
    """Every identity of a registry: one per school, then the bureau and the pipeline."""
    year_list = None if years is None else sorted(set(years))
    return [
        *(school_principal(code, year_list) for code in codes),
        bureau_principal(year_list),
        pipeline_principal(),
    ]


def issue_credentials(
    principals_: Sequence[Principal], known: dict[str, tuple[str, str]] | None = None
) -> list[Principal]:
    """Give each identity an access key and a secret; keep the keys of known names.

    A school's access key is its code (MinIO's policies name the user by it); the secret
    is 40 random URL-safe characters. Regenerating for a new registry or year keeps every
    existing identity's keys, so only new schools get new ones.
    """
    known = known or {}
    issued = []
    for principal in principals_:
        access, secret = known.get(principal.name) or (
            principal.school_code or principal.name,
            secrets.token_urlsafe(30),
        )
        issued.append(replace(principal, access_key=access, secret_key=secret))
    return issued


# -- SeaweedFS -------------------------------------------------------------------------------


def seaweedfs_actions(principal: Principal, bucket: str) -> list[str]:
    """SeaweedFS's actions of one identity: ``Write:bucket/prefix*``, ``List:bucket`` ...

    An action with a wildcard is matched against ``{Action}:{bucket}/{key}`` (a listing's
    key is its prefix); one without, against the whole bucket.
    """
    actions = []
    for grant in principal.grants:
        name = SEAWEEDFS_ACTIONS[grant.action]
        actions.append(f"{name}:{bucket}/{grant.prefix}*" if grant.prefix else f"{name}:{bucket}")
    return actions


def seaweedfs_config(principals_: Sequence[Principal], bucket: str) -> dict:
    """The identities file of ``weed server -s3.config`` (or ``weed s3 -config``)."""
    return {
        "identities": [
            {
                "name": principal.name,
                "credentials": [
                    {"accessKey": principal.access_key, "secretKey": principal.secret_key}
                ],
                "actions": seaweedfs_actions(principal, bucket),
            }
            for principal in principals_
        ]
    }


# -- AWS IAM and MinIO -------------------------------------------------------------------------


def s3_policy(principal: Principal, bucket: str) -> dict:
    """The identity's IAM policy document (AWS IAM and MinIO read the same JSON)."""
    arn = f"arn:aws:s3:::{bucket}"
    if principal.role == PIPELINE:
        return _policy(
            [_statement("Everything", ["s3:*"], [arn, f"{arn}/*"])],
        )
    statements = []
    for action, sid in ((WRITE, "WriteOwnPrefixes"), (READ, "ReadPrefixes")):
        prefixes = principal.prefixes(action)
        if prefixes:
            resources = [f"{arn}/{prefix}*" for prefix in prefixes]
            statements.append(_statement(sid, S3_ACTIONS[action], resources))
    listed = principal.prefixes(LIST)
    if listed:
        statement = _statement("ListOwnPrefixes", ["s3:ListBucket"], [arn])
        statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in listed]}}
        statements.append(statement)
    return _policy(statements)


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _policy(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}


def shared_school_policy(bucket: str, code_variable: str) -> dict:
    """One policy for every school, the school code a policy variable of the caller.

    MinIO: ``${aws:username}`` (each school's user is named by its code); AWS:
    ``${aws:PrincipalTag/school_code}``. Every year, as ``????``.
    """
    return s3_policy(school_principal(code_variable), bucket)


def minio_setup_script(principals_: Sequence[Principal], alias: str = "vet") -> str:
    """``mc`` commands that create each policy and user and attach one to the other."""
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by `vetreport identities`: MinIO users and policies of the vetreport",
        f"# bucket. Needs `mc alias set {alias} URL ADMIN_USER ADMIN_PASSWORD` first.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
    ]
    for principal in principals_:
        name = principal.name
        policy = name if name.startswith("vetreport-") else f"vetreport-{name}"
        lines += [
            f"mc admin policy create {alias} {policy} policies/{principal.name}.json",
            f"mc admin user add {alias} {principal.access_key} "
            f'"$(awk -F, \'$1=="{principal.name}" {{print $5}}\' ../{CREDENTIALS_FILE})"',
            f"mc admin policy attach {alias} {policy} --user {principal.access_key}",
        ]
    return "\n".join(lines) + "\n"


# -- writing them out --------------------------------------------------------------------


def read_known_credentials(path: Path) -> dict[str, tuple[str, str]]:
    """The keys issued before, by identity name, from an earlier credentials.csv."""
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as stream:
        return {
            row["name"]: (row["access_key"], row["secret_key"]) for row in csv.DictReader(stream)
        }


def write_identities(
    registry: bytes, out_dir: Path, bucket: str, years: Iterable[int] | None = None
) -> list[Principal]:
    """Write every rendering of the registry's identities under ``out_dir``; return them.

    ``credentials.csv`` (secrets: hand each school its row), ``seaweedfs/s3.json``,
    ``minio/policies/*.json`` with ``minio/setup.sh``, ``aws/policies/*.json``. Files with
    secrets are written readable by their owner only. Keys in an existing credentials.csv
    are kept.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    credentials_path = out_dir / CREDENTIALS_FILE
    issued = issue_credentials(
        principals(read_registry_codes(registry), years), read_known_credentials(credentials_path)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "role", "school_code", "access_key", "secret_key"])
    for principal in issued:
        writer.writerow(
            [
                principal.name,
                principal.role,
                principal.school_code or "",
                principal.access_key,
                principal.secret_key,
            ]
        )
    _write_private(credentials_path, buffer.getvalue())
    _write_private(out_dir / "seaweedfs" / "s3.json", _json(seaweedfs_config(issued, bucket)))
    for target in ("minio", "aws"):
        folder = out_dir / target / "policies"
        folder.mkdir(parents=True, exist_ok=True)
        for principal in issued:
            (folder / f"{principal.name}.json").write_text(
                _json(s3_policy(principal, bucket)), encoding="utf-8"
            )
    script = out_dir / "minio" / "setup.sh"
    script.write_text(minio_setup_script(issued), encoding="utf-8")
    script.chmod(0o755)
    return issued


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _json(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def render_shared_policy(target: str) -> str:
    """The committed infra/{target}-school-upload-policy.json (``vetreport docs``)."""
    if target == "minio":
        return _json(shared_school_policy("vetreport", "${aws:username}"))
    return _json(
        shared_school_policy("${VETREPORT_BUCKET_NAME}", "${aws:PrincipalTag/school_code}")
    )
