"""The portal's presigned POSTs, enforced by a real object store (the session's SeaweedFS).

What the store itself must refuse, whoever sends it: a policy issued for school A used
for school B's key, a file larger than the policy's ``content-length-range``, and a policy
someone edited. The portal signs with its own (the pipeline's) identity: SeaweedFS 4.48
authorises a browser POST against the whole bucket (``Write:bucket``), so a school's own
identity, limited to ``uploads/{year}/{code}/``, cannot sign one (last test: the evidence);
the policy's conditions are what confine the school, and SeaweedFS checks them.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest
import requests

from tests.conftest import SeaweedSession, make_bucket, point_stores_at
from vetreport.bucket.store import KeyNotFound, S3Store
from vetreport.portal.uploads import make_ticket

pytestmark = pytest.mark.integration
YEAR = 2023
SCHOOL, OTHER = "3133060001", "3133060002"
MAX_BYTES = 1000


@pytest.fixture
def store(seaweedfs: SeaweedSession, request, monkeypatch) -> S3Store:
    endpoint = point_stores_at("seaweedfs", request, monkeypatch)
    return S3Store(make_bucket(endpoint))


def post(url: str, fields: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(url, data=fields, files={"file": ("a.csv", body)}, timeout=30)


def ticket_for(store: S3Store, code: str) -> tuple[str, dict[str, str]]:
    key = f"uploads/{YEAR}/{code}/graduates.csv"
    issued = make_ticket(store, key, YEAR, code, MAX_BYTES, b"unused for S3")
    return issued.url, issued.fields


def absent(store: S3Store, key: str) -> bool:
    try:
        store.head(key)
    except KeyNotFound:
        return True
    return False


def test_a_policy_for_one_school_is_refused_for_another_schools_key(store: S3Store) -> None:
    url, fields = ticket_for(store, SCHOOL)
    assert post(url, fields, b"a,b\n1,2\n").status_code == 201
    assert store.get(f"uploads/{YEAR}/{SCHOOL}/graduates.csv") == b"a,b\n1,2\n"
    for key in (
        f"uploads/{YEAR}/{OTHER}/graduates.csv",
        f"uploads/{YEAR}/{SCHOOL}x/graduates.csv",
        f"uploads/{YEAR}/{SCHOOL}/staff.csv",  # its own prefix, but not the key it was given
        f"reports/{YEAR}/{SCHOOL}/forged.html",
    ):
        reply = post(url, {**fields, "key": key}, b"forged")
        assert reply.status_code == 403, (key, reply.text)
        assert "<Code>AccessDenied</Code>" in reply.text
        assert absent(store, key)


def test_a_file_larger_than_the_policy_allows_is_refused(store: S3Store) -> None:
    url, fields = ticket_for(store, SCHOOL)
    reply = post(url, fields, b"x" * (MAX_BYTES + 1))
    assert reply.status_code == 400 and "<Code>EntityTooLarge</Code>" in reply.text
    assert absent(store, f"uploads/{YEAR}/{SCHOOL}/graduates.csv")
    assert post(url, fields, b"x" * MAX_BYTES).status_code == 201  # the limit itself is fine


def test_an_edited_policy_is_refused(store: S3Store) -> None:
    url, fields = ticket_for(store, SCHOOL)
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [
        ["content-length-range", 1, 10**9]
        if isinstance(c, list) and c[0] == "content-length-range"
        else c
        for c in policy["conditions"]
    ]
    edited = {**fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    reply = post(url, edited, b"x" * (MAX_BYTES + 1))
    assert reply.status_code == 403 and "SignatureDoesNotMatch" in reply.text
    assert absent(store, f"uploads/{YEAR}/{SCHOOL}/graduates.csv")


def test_seaweedfs_refuses_posts_signed_by_a_schools_own_identity(
    seaweedfs: SeaweedSession,
) -> None:
    """Evidence for the module docstring: the school may PUT its key, not POST it."""
    identity = seaweedfs.identities[f"school-{SCHOOL}"]
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint,
        region_name="us-east-1",
        aws_access_key_id=identity.access_key,
        aws_secret_access_key=identity.secret_key,
    )
    key = f"uploads/{YEAR}/{SCHOOL}/portal_probe.csv"
    client.put_object(Bucket=seaweedfs.bucket, Key=key, Body=b"a\n")
    signed = client.generate_presigned_post(
        seaweedfs.bucket, key, Conditions=[["starts-with", "$key", f"uploads/{YEAR}/{SCHOOL}/"]]
    )
    reply = post(signed["url"], signed["fields"], b"a\n")
    assert reply.status_code == 403 and "AccessDenied" in reply.text
    client.delete_object(Bucket=seaweedfs.bucket, Key=key)
