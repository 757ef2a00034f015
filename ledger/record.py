"""One record of a punch log: canonical bytes, leaf hash, chain link and signature.

    version 1:  leaf = SHA-256(0x00 || canonical_bytes)              (RFC 9162 leaf hash; also the chain link)
    version 2:  leaf = SHA-256(0x00 || tag || SHA-256(canonical_bytes))    tag: the record's owner tag (32 bytes)
    signature = Ed25519(key, "punchlog/record/v1\\n" || leaf)

An owner tag is ``HMAC-SHA256(k_E, "punchproof/tag/v1\\n" || log || "\\n" || seq)`` for a record of employee
E (``k_E`` from E's ``tagkey`` record in the same log), 32 random bytes for a record of nobody's: whoever holds
k_E recognises E's records among the undisclosed ones, nobody else learns whose they are (FORMAT.md, "Version 2").

Every record carries the common fields below; the rest depends on ``type``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ledger import canonical
from ledger.errors import Malformed
from ledger.keys import SigningKey, VerifyKey

FORMAT_VERSION = 2  # what new records are written in; a log switches at a ``format`` record (FORMAT.md)
FORMAT_VERSIONS = (1, 2)  # what this code reads
TAG_DOMAIN = b"punchproof/tag/v1\n"
TAG_SIZE = 32
RECORD_DOMAIN = b"punchlog/record/v1\n"
KEYROT_DOMAIN = b"punchlog/keyrot/v1\n"  # the new key's consent to a rotation
GENESIS_PREV = bytes(32)  # the "prev" of record 0
RECORD_TYPES = frozenset(
    {"punch", "boot", "clock", "seal", "keyrot", "incident", "correction", "dayfact", "action", "alert"}
    | {"contact", "receipt", "case_action"}  # the cloud's evidence log (FORMAT.md, "The cloud's evidence log")
    | {"keyreg", "keyrevoke"}  # the cloud's evidence log: appliance keys registered and revoked (FORMAT.md)
    | {"tagkey", "format", "tagindex"}  # owner tags: a worker's tag key at a log's switch to v2; tags of v1 records
)
OWNER_TYPES = ("tagkey", "format", "tagindex")
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
    "tagkey": {"emp": str, "tagkey": str},
    "format": {"to": int},
    "tagindex": {"from": int, "to": int, "tags": str},
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
    """The version 1 leaf (and the RFC 9162 leaf of the witness log's entries): SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def tagged_leaf(tag: bytes, record_hash: bytes) -> bytes:
    """A version 2 leaf from what a bundle shows of an undisclosed record: its tag and SHA-256 of its bytes."""
    return hashlib.sha256(b"\x00" + tag + record_hash).digest()


def owner_tag(key: bytes, log: str, seq: int) -> bytes:
    """``HMAC-SHA256(k_E, "punchproof/tag/v1\\n" || log || "\\n" || seq)``, seq in decimal ASCII digits."""
    return hmac.new(key, TAG_DOMAIN + log.encode("utf-8") + b"\n" + str(seq).encode("ascii"), hashlib.sha256).digest()


def record_leaf(data: bytes, fields: dict[str, Any] | None = None) -> bytes:
    """The leaf hash of a record's canonical bytes, by its version: v1 ``SHA-256(0x00 || data)``, v2
    ``SHA-256(0x00 || tag || SHA-256(data))`` with the tag the record itself carries. ``fields`` when parsed."""
    if fields is None:
        try:
            fields = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise Malformed(f"not canonical JSON: {err}") from err
        if not isinstance(fields, dict):
            raise Malformed("a record must be a JSON object")
    if fields.get("v") == 1:
        return leaf_hash(data)
    if fields.get("v") != 2:
        raise Malformed(f"record format version {fields.get('v')!r} is not supported")
    tag = fields.get("tag")
    if not isinstance(tag, str):
        raise Malformed("a version 2 record has no tag")
    return tagged_leaf(unb64(tag, what="tag", size=TAG_SIZE), hashlib.sha256(data).digest())


def record_tag(data: bytes) -> bytes | None:
    """The owner tag a version 2 record carries (None for version 1)."""
    fields = orjson.loads(data)
    tag = fields.get("tag") if fields.get("v") == 2 else None
    return unb64(tag, what="tag", size=TAG_SIZE) if isinstance(tag, str) else None


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
    known_leaf: bytes | None = field(default=None, compare=False, repr=False)  # computed once, by make_record

    @property
    def leaf(self) -> bytes:
        if self.known_leaf is None:
            object.__setattr__(self, "known_leaf", record_leaf(self.data))
        return self.known_leaf  # type: ignore[return-value]

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
    tag: bytes | None = None,
    version: int = FORMAT_VERSION,
    **body: Any,
) -> SignedRecord:
    """Build, canonicalise and sign one record.

    A version 2 record (the default) carries ``tag``: its owner's tag (``owner_tag``), or, for a record of
    nobody's, 32 random bytes when None. ``version=1`` builds the records of a log before its switch (the
    ``format`` record itself, and logs made by older software in tests): no tag.

    With ``rotate_to`` the record is a key rotation: it names the new key, carries the new key's
    signature over the record without that signature (``proof``), and is signed by ``key``, the
    old one. Records after it are signed by the new key.
    """
    fields = {
        "v": version,
        "log": log,
        "seq": seq,
        "type": type,
        "salt": b64(salt if salt is not None else secrets.token_bytes(16)),
        "prev": b64(prev),
        "t_wall_ms": t_wall_ms,
        "kid": key.kid,
        **body,
    }
    if version >= 2:
        fields["tag"] = b64(tag if tag is not None else secrets.token_bytes(TAG_SIZE))
    elif tag is not None:
        raise ValueError("a version 1 record carries no tag")
    if rotate_to is not None:
        if type != "keyrot":
            raise ValueError("rotate_to is only for keyrot records")
        fields |= {"new_key": b64(rotate_to.verify_key.raw()), "new_kid": rotate_to.verify_key.kid}
        fields["proof"] = b64(rotate_to.sign(_rotation_message(fields)))
    _check_schema(fields)
    data = canonical.encode(fields)
    leaf = record_leaf(data, fields)
    return SignedRecord(data=data, sig=key.sign(RECORD_DOMAIN + leaf), known_leaf=leaf)


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
    if fields["v"] not in FORMAT_VERSIONS:
        raise Malformed(f"record format version {fields['v']} is not supported (this software reads 1 and 2)")
    if fields["v"] == 2:
        tag = fields.get("tag")
        if type(tag) is not str or not _PREV.fullmatch(tag):
            raise Malformed("a version 2 record's tag must be the base64 of 32 bytes")
        if record_type == "format":
            raise Malformed("a format record is written in the version it switches from (1)")
    elif "tag" in fields:
        raise Malformed("a version 1 record carries no tag")
    elif record_type in ("tagkey", "tagindex"):
        raise Malformed(f"a {record_type} record exists only in version 2")
    if "tagkey" in fields:
        if fields["v"] < 2 or type(fields["tagkey"]) is not str or not _PREV.fullmatch(fields["tagkey"]):
            raise Malformed("tagkey must be the base64 of 32 bytes, in a version 2 record")
        if employee_of(fields) is None:
            raise Malformed("a tagkey belongs in a record of an employee's")
    if record_type == "tagindex":
        tags = unb64(fields["tags"], what="tags")
        if (
            fields["from"] < 0
            or fields["to"] < fields["from"]
            or len(tags) != TAG_SIZE * (fields["to"] - fields["from"])
        ):
            raise Malformed("a tagindex record holds one 32-byte tag for each seq from 'from' up to 'to'")
    elif record_type == "format" and fields["to"] != 2:
        raise Malformed(f"a format record switching to version {fields['to']} is not supported")
    if fields["seq"] < 0:
        raise Malformed("seq must not be negative")
    if not (_SALT.fullmatch(fields["salt"]) and _PREV.fullmatch(fields["prev"])):  # the details, on failure:
        unb64(fields["salt"], what="salt", size=16)
        unb64(fields["prev"], what="prev", size=32)
        raise Malformed("salt or prev is not canonical base64")
