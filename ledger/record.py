"""One record of a punch log: canonical bytes, leaf hash, chain link and signature.

    leaf_hash = SHA-256(0x00 || canonical_bytes)        (RFC 9162 leaf hash; also the chain link)
    signature = Ed25519(key, "punchlog/record/v1\\n" || leaf_hash)

Every record carries the common fields below; the rest depends on ``type``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import canonical
from ledger.errors import Malformed
from ledger.keys import SigningKey, VerifyKey

FORMAT_VERSION = 1
RECORD_DOMAIN = b"punchlog/record/v1\n"
KEYROT_DOMAIN = b"punchlog/keyrot/v1\n"  # the new key's consent to a rotation
GENESIS_PREV = bytes(32)  # the "prev" of record 0
RECORD_TYPES = frozenset(
    {"punch", "boot", "clock", "seal", "keyrot", "incident", "correction", "dayfact", "action"}
    | {"contact", "receipt", "case_action"}  # the cloud's evidence log (FORMAT.md, "The cloud's evidence log")
    | {"keyreg", "keyrevoke"}  # the cloud's evidence log: appliance keys registered and revoked (FORMAT.md)
)
# name -> required Python type of the common fields
COMMON_FIELDS: dict[str, type] = {
    "v": int,
    "log": str,
    "seq": int,
    "type": str,
    "salt": str,
    "prev": str,
    "t_wall_ms": int,
    "kid": str,
}
PUNCH_TERM_FIELDS: dict[str, type] = {"sn": str, "t": str, "tz": str, "state": int, "verify": int}
TYPE_FIELDS: dict[str, dict[str, type]] = {
    "punch": {"emp": str, "term": dict},
    "boot": {"boot_id": str},
    "incident": {"kind": str},
    "keyrot": {"new_key": str, "new_kid": str, "proof": str},
    # the cloud's evidence log; ``tv`` is the type's own version, so a type can grow without a new format
    "contact": {
        "tv": int,
        "emp": str,
        "plant": str,
        "case": str,
        "step": str,
        "channel": str,
        "provider": str,
        "recipient": str,
        "template": str,
        "content_sha256": str,
        "status": str,
        "provider_id": str,
        "operator": str,
        "at_ms": int,
        "attempt": int,
        "attachments": list,
    },
    "receipt": {
        "tv": int,
        "emp": str,
        "plant": str,
        "case": str,
        "contact_seq": int,
        "provider": str,
        "provider_id": str,
        "status": str,
        "raw": str,
        "received_ms": int,
    },
    "case_action": {
        "tv": int,
        "emp": str,
        "plant": str,
        "case": str,
        "entry": int,
        "entry_hash": str,
        "kind": str,
        "actor": str,
        "text": str,
        "at_ms": int,
    },
    "keyreg": {
        "tv": int,
        "key_log": str,
        "plant": str,
        "appliance": str,
        "key_kid": str,
        "public_key": str,
        "valid_from_seq": int,
        "how": str,
        "at_ms": int,
    },
    "keyrevoke": {
        "tv": int,
        "key_log": str,
        "plant": str,
        "appliance": str,
        "key_kid": str,
        "revoked_ms": int,
        "since_seq": int,
        "since": str,
        "by": str,
    },
}
# the versions of ``tv`` this code understands
TYPE_VERSIONS = {"contact": 1, "receipt": 1, "case_action": 1, "keyreg": 1, "keyrevoke": 1}


_SALT = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")  # base64 of exactly 16 bytes
_PREV = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")  # base64 of exactly 32 bytes


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, *, what: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise Malformed(f"{what} is not base64: {err}") from err
    if size is not None and len(raw) != size:
        raise Malformed(f"{what} has {len(raw)} bytes, expected {size}")
    return raw


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """Canonical record bytes and their signature, exactly as stored and transmitted."""

    data: bytes
    sig: bytes

    @property
    def leaf(self) -> bytes:
        return leaf_hash(self.data)

    def fields(self) -> dict[str, Any]:
        return parse(self.data)

    def verify(self, key: VerifyKey) -> None:
        """Raise ``Forged`` unless the signature is the key's over this record's leaf hash."""
        key.verify(self.sig, RECORD_DOMAIN + self.leaf)


def employee_of(fields: dict[str, Any]) -> str | None:
    """Whose record it is: punches and actions name ``emp``, day facts ``fact.emp``; system records nobody."""
    emp = fields.get("emp")
    if emp is None and isinstance(fields.get("fact"), dict):
        emp = fields["fact"].get("emp")
    return emp if isinstance(emp, str) else None


def make_record(
    *,
    key: SigningKey,
    log: str,
    seq: int,
    type: str,  # noqa: A002 - the field is called "type" in the format
    prev: bytes,
    t_wall_ms: int,
    salt: bytes | None = None,
    rotate_to: SigningKey | None = None,
    **body: Any,
) -> SignedRecord:
    """Build, canonicalise and sign one record.

    With ``rotate_to`` the record is a key rotation: it names the new key, carries the new key's
    signature over the record without that signature (``proof``), and is signed by ``key``, the
    old one. Records after it are signed by the new key.
    """
    fields = {
        "v": FORMAT_VERSION,
        "log": log,
        "seq": seq,
        "type": type,
        "salt": b64(salt if salt is not None else secrets.token_bytes(16)),
        "prev": b64(prev),
        "t_wall_ms": t_wall_ms,
        "kid": key.kid,
        **body,
    }
    if rotate_to is not None:
        if type != "keyrot":
            raise ValueError("rotate_to is only for keyrot records")
        fields |= {"new_key": b64(rotate_to.verify_key.raw()), "new_kid": rotate_to.verify_key.kid}
        fields["proof"] = b64(rotate_to.sign(_rotation_message(fields)))
    _check_schema(fields)
    data = canonical.encode(fields)
    return SignedRecord(data=data, sig=key.sign(RECORD_DOMAIN + leaf_hash(data)))


def rotation_key(fields: dict[str, Any]) -> VerifyKey:
    """The new key a keyrot record hands over to, once its ``proof`` shows the new key agreed.

    The record's own signature (by the old key) is checked by the caller, like any record's.
    """
    raw = unb64(fields["new_key"], what="new_key", size=32)
    new = VerifyKey.from_raw(raw)
    if new.kid != fields["new_kid"]:
        raise Malformed(f"keyrot seq {fields['seq']}: new_kid does not match new_key")
    if new.kid == fields["kid"]:
        raise Malformed(f"keyrot seq {fields['seq']}: rotates to the key it is signed with")
    new.verify(unb64(fields["proof"], what="proof", size=64), _rotation_message(fields))
    return new


def _rotation_message(fields: dict[str, Any]) -> bytes:
    unsigned = {name: value for name, value in fields.items() if name != "proof"}
    return KEYROT_DOMAIN + leaf_hash(canonical.encode(unsigned))


def parse(data: bytes) -> dict[str, Any]:
    """Decode canonical record bytes and check the schema; raise ``Malformed`` otherwise."""
    fields = canonical.decode(data)
    _check_schema(fields)
    return fields


def _wrong_types(values: dict[str, Any], required: dict[str, type], prefix: str = "") -> list[str]:
    """The fields whose type is not exactly the required one (so ``True`` is no int)."""
    for name, kind in required.items():  # the usual case, without building a list
        if type(values.get(name)) is not kind:
            break
    else:
        return []
    return [
        f"{prefix}{name} must be {kind.__name__}"
        for name, kind in required.items()
        if type(values.get(name)) is not kind
    ]


def _check_schema(fields: dict[str, Any]) -> None:
    record_type = fields.get("type")
    if type(record_type) is not str or record_type not in RECORD_TYPES:  # a list or object is unhashable
        raise Malformed(f"unknown record type {record_type!r}")
    problems = _wrong_types(fields, COMMON_FIELDS) + _wrong_types(fields, TYPE_FIELDS.get(record_type, {}))
    if record_type == "punch" and not problems:
        term = fields["term"]
        problems = _wrong_types(term, PUNCH_TERM_FIELDS, "term.")
        try:
            datetime.fromisoformat(term.get("t", ""))
        except (TypeError, ValueError):
            problems.append("term.t must be an ISO date-time")
    if not problems and record_type in TYPE_VERSIONS and fields["tv"] != TYPE_VERSIONS[record_type]:
        problems.append(f"tv {fields['tv']} is not supported (this software reads tv {TYPE_VERSIONS[record_type]})")
    if problems:
        raise Malformed(f"{record_type} record: " + "; ".join(problems))
    if fields["v"] != FORMAT_VERSION:
        raise Malformed(f"record format version {fields['v']} is not supported")
    if fields["seq"] < 0:
        raise Malformed("seq must not be negative")
    if not (_SALT.fullmatch(fields["salt"]) and _PREV.fullmatch(fields["prev"])):  # the details, on failure:
        unb64(fields["salt"], what="salt", size=16)
        unb64(fields["prev"], what="prev", size=32)
        raise Malformed("salt or prev is not canonical base64")
