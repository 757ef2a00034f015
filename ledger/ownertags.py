"""Owner tags, for the writers of a log (the appliance's, the cloud's evidence log): each employee's tag key, the
tag each new record carries, and the ``tagindex`` records that tag, late, the records a log holds from before its
switch to version 2 (FORMAT.md, "Version 2: owner tags").

A log gives each owner one key, in the owner's first record of the log (its ``tagkey`` field; for the owners of
an older log's records, a ``tagkey`` record at the switch). The key is in the clear in that record: the record is
the owner's, disclosed only in the owner's bundles, and in any other it is one more undisclosed leaf whose tag
says nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from ledger.record import TAG_SIZE, b64, employee_of, owner_tag, record_tag, unb64

TAGINDEX_SPAN = 1024  # tags per tagindex record: 32 KiB of tags, 44 KiB of base64, well inside a batch message


def appliance_owner(fields: dict[str, Any]) -> str | None:
    """Whose record an appliance's is: its ``emp`` (punches, actions, corrections, tag keys) or ``fact.emp``."""
    return employee_of(fields) or None


def cloud_owner(fields: dict[str, Any]) -> str | None:
    """Whose record the cloud's evidence log's is: a worker is a badge number at a plant."""
    emp = employee_of(fields)
    return f"{fields.get('plant', '')}/{emp}" if emp else None


class TagKeys:
    """The tag keys a log has given out, by owner (``owner`` maps a record's fields to its owner, or None)."""

    def __init__(self, owner: Callable[[dict[str, Any]], str | None] = appliance_owner) -> None:
        self.owner = owner
        self._keys: dict[str, bytes] = {}

    def __contains__(self, owner: str) -> bool:
        return owner in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def learn(self, fields: dict[str, Any]) -> None:
        """Take the tag key a record read back from the log gives its owner (its ``tagkey`` field)."""
        owner = self.owner(fields)
        if owner is not None and isinstance(fields.get("tagkey"), str):
            self._keys.setdefault(owner, unb64(fields["tagkey"], what="tagkey", size=TAG_SIZE))

    def add(self, owner: str, key: bytes) -> None:
        self._keys.setdefault(owner, key)

    def key(self, owner: str) -> bytes:
        return self._keys[owner]

    def tag(self, log: str, seq: int, owner: str | None) -> bytes:
        """The tag of the record at ``seq``: its owner's HMAC, or 32 random bytes for a record of nobody's."""
        if owner is None:
            return secrets.token_bytes(TAG_SIZE)
        return owner_tag(self._keys[owner], log, seq)

    def copy(self) -> TagKeys:
        other = TagKeys(self.owner)
        other._keys = dict(self._keys)
        return other


def new_key_body(fields_of_owner: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The body of a ``tagkey`` record for the owner of ``fields_of_owner``: ``emp`` (and the cloud's ``plant``)."""
    emp = employee_of(fields_of_owner)
    body: dict[str, Any] = {"emp": emp, "tagkey": b64(key)}
    if "plant" in fields_of_owner:
        body["plant"] = fields_of_owner["plant"]
    return body


def new_key() -> bytes:
    return secrets.token_bytes(TAG_SIZE)


def late_tag_bodies(log: str, records: Iterable[tuple[int, dict[str, Any]]], keys: TagKeys) -> list[dict[str, Any]]:
    """The bodies of the ``tagindex`` records for a log's version 1 records (seq, fields), in seq order from 0: for
    each seq its owner's tag, computed now with the keys ``keys`` holds (random for a record of nobody's)."""
    bodies: list[dict[str, Any]] = []
    chunk: list[bytes] = []
    first = 0
    for seq, fields in records:
        if not chunk:
            first = seq
        chunk.append(keys.tag(log, seq, keys.owner(fields)))
        if len(chunk) == TAGINDEX_SPAN:
            bodies.append({"from": first, "to": seq + 1, "tags": b64(b"".join(chunk))})
            chunk = []
    if chunk:
        bodies.append({"from": first, "to": first + len(chunk), "tags": b64(b"".join(chunk))})
    return bodies


def undisclosed_line(data: bytes, leaf: bytes) -> str:
    """A record's line in a bundle's ``leaves.txt`` when it is not disclosed: its owner tag and the SHA-256 of its
    bytes (version 2; the verifier rebuilds the leaf from them), or its leaf hash (version 1), hex."""
    tag = record_tag(data)
    return f"{tag.hex()} {hashlib.sha256(data).hexdigest()}" if tag is not None else leaf.hex()
