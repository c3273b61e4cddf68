"""Per-school sign-in secrets of the portal: issued by the bureau, stored only as hashes.

What belongs here: making a school's secret (``vetreport portal issue-token SCHOOL``),
storing its scrypt hash and salt, and checking a secret a clerk typed. The hashes are kept
in the bucket under ``portal/tokens/{code}.json``: a zone no school identity may read or
list (``vetreport.bucket.identities`` grants schools only their uploads/, reports/ and
templates/), which the pipeline's identity (and so the portal) can, and which a folder
bucket's file server does not serve. Issuing again replaces the school's secret: the old
one stops working at once.

A secret is 16 characters from an alphabet without look-alikes (no 0/O, 1/I/L), printed in
groups of four (``K7QX-3MPA-...``): 80 random bits, typed by a clerk from a letter. Case,
spaces and dashes do not matter when it is typed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import UTC, datetime

from vetreport.bucket.store import KeyNotFound, ObjectStore

TOKENS_PREFIX = "portal/tokens/"
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SECRET_LENGTH = 16
GROUP = 4
# scrypt's cost: about 50 ms and 16 MiB per check on a small server.
SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES = 2**14, 8, 1, 32
SCHOOL_CODE = re.compile(r"[0-9A-Za-z]{6,20}", re.ASCII)


class TokenError(ValueError):
    """A school code that cannot have a secret."""


def token_key(school_code: str) -> str:
    """Where the school's secret hash is kept."""
    if not SCHOOL_CODE.fullmatch(school_code):
        raise TokenError(f"not a school code: {school_code!r}")
    return f"{TOKENS_PREFIX}{school_code}.json"


def normalise_secret(typed: str) -> str:
    """The secret as it is hashed: upper case, without spaces and dashes."""
    return re.sub(r"[\s\-]", "", typed).upper()


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        normalise_secret(secret).encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=HASH_BYTES,
    )


def new_secret() -> str:
    """A fresh secret, grouped for reading: ``XXXX-XXXX-XXXX-XXXX``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return "-".join(raw[start : start + GROUP] for start in range(0, SECRET_LENGTH, GROUP))


def issue_token(store: ObjectStore, school_code: str) -> str:
    """Make a new secret for the school, store its hash (replacing any), return the secret."""
    key = token_key(school_code)
    secret = new_secret()
    salt = secrets.token_bytes(16)
    record = {
        "school_code": school_code,
        "algorithm": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "hash": _hash(secret, salt).hex(),
        "issued_at": datetime.now(UTC).isoformat(),
    }
    store.put(key, json.dumps(record, indent=2).encode("utf-8"), "application/json")
    return secret


def token_issued_at(store: ObjectStore, school_code: str) -> str | None:
    """When the school's current secret was issued (None: it has none).

    A session started with an earlier secret has ended, whatever its cookie says.
    """
    try:
        return str(json.loads(store.get(token_key(school_code)))["issued_at"])
    except (KeyNotFound, ValueError, KeyError):
        return None


def verify_token(store: ObjectStore, school_code: str, typed: str) -> bool:
    """Say whether the typed secret is the school's current one.

    An unknown school costs the same hash as a known one, so timing tells nothing.
    """
    try:
        record = json.loads(store.get(token_key(school_code)))
        salt, expected = bytes.fromhex(record["salt"]), bytes.fromhex(record["hash"])
    except (TokenError, KeyNotFound, ValueError, KeyError):
        _hash(typed, b"\0" * 16)
        return False
    return hmac.compare_digest(_hash(typed, salt), expected)
