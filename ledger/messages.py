"""Messages between an appliance and the cloud: a batch (a contiguous range of one log's
records) going up, and the cloud's application acknowledgement coming down.

A batch is identified by (log, first seq, last seq); the cloud stores a range at most once and
answers every batch, duplicates included, with its head: the highest seq it holds contiguously
for that log and that record's leaf hash, so the appliance can check the cloud holds *its*
history (not a fork) before it moves its cursor.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ledger import canonical
from ledger.errors import Forged, Malformed
from ledger.keys import SigningKey, VerifyKey
from ledger.record import SignedRecord, b64, unb64

# Mosquitto is configured with message_size_limit above this; batches are split below it.
MAX_MESSAGE_BYTES = 512 * 1024
ACK_STATUSES = frozenset({"ok", "duplicate", "gap", "rejected"})
ACK_DOMAIN = b"punchproof/ack/v1\n"
_RAW_CONTROL = re.compile(rb"[\x00-\x1f]")  # bytes JSON escapes inside a string, besides the quote and backslash


@dataclass(frozen=True, slots=True)
class Batch:
    """A contiguous range of one log. When ``checkpoint`` is set it is the log's signed note for the
    tree that ends with this range's last record: the receiver checks the root instead of every
    record's signature."""

    log: str
    first: int
    records: tuple[SignedRecord, ...]
    checkpoint: str = ""

    @property
    def last(self) -> int:
        return self.first + len(self.records) - 1

    def encode(self) -> bytes:
        """The canonical bytes of the batch. A record's bytes are canonical JSON already, so inside the
        batch they need only their quotes and backslashes escaped: done on the bytes, a backlog's batch
        costs a fraction of a general JSON encoding (a record holding a raw control byte, which no
        canonical record does, takes the general path)."""
        if not (_seq(self.first) and _seq(self.last)):
            raise Malformed(f"batch seqs {self.first!r}..{self.last!r} are outside the record format")
        envelope = {"checkpoint": self.checkpoint, "first": self.first, "kind": "batch", "log": self.log}
        if any(_RAW_CONTROL.search(r.data) for r in self.records):
            records = [[r.data.decode("utf-8"), b64(r.sig)] for r in self.records]
            return canonical.encode_trusted(envelope | {"records": records, "v": 1})
        items = b",".join(
            b'["' + r.data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'","' + base64.b64encode(r.sig) + b'"]'
            for r in self.records
        )
        # the keys sort as checkpoint, first, kind, log, records, v: the envelope's object, then the rest
        encoded = canonical.encode_trusted(envelope)[:-1] + b',"records":[' + items + b'],"v":1}'
        try:
            encoded.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Malformed(f"a record of the batch is not UTF-8: {err}") from err
        return encoded

    @classmethod
    def decode(cls, payload: bytes) -> Batch:
        message = _load(payload, "batch")
        first, records = message.get("first"), message.get("records")
        if not isinstance(records, list) or not records or not _seq(first) or not _seq(first + len(records) - 1):
            raise Malformed(
                f"batch needs a 'first' seq from 0 to {canonical.MAX_SAFE_INT} and a non-empty 'records' list within it"
            )
        parsed = []
        for index, item in enumerate(records):
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise Malformed(f"batch record {index} must be [record, signature]")
            parsed.append(SignedRecord(data=item[0].encode("utf-8"), sig=unb64(item[1], what="signature", size=64)))
        checkpoint = message.get("checkpoint", "")
        if not isinstance(checkpoint, str):
            raise Malformed("batch checkpoint must be a signed note")
        return cls(log=message["log"], first=first, records=tuple(parsed), checkpoint=checkpoint)


@dataclass(frozen=True, slots=True)
class Ack:
    """The cloud's answer to a batch. ``head_seq`` is -1 while the cloud holds nothing.

    The cloud signs every acknowledgement with its witness key (``sig``): anyone on the broker
    can read a log's hashes, so only the signature tells the appliance the cloud really said it.
    """

    log: str
    status: str
    head_seq: int
    head_hash: str
    first: int
    last: int
    reason: str = ""
    cosignature: str = ""  # the cloud's signed note line cosigning the batch's checkpoint, with its time
    sig: str = ""

    def _fields(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "ack",
            "log": self.log,
            "status": self.status,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first": self.first,
            "last": self.last,
            "reason": self.reason,
            "cosignature": self.cosignature,
        }

    def encode(self) -> bytes:
        return canonical.encode(self._fields() | {"sig": self.sig})

    def signed(self, key: SigningKey) -> Ack:
        signature = key.sign(ACK_DOMAIN + canonical.encode(self._fields()))
        return dataclasses.replace(self, sig=b64(signature))

    def verify(self, key: VerifyKey) -> None:
        """Raise ``Forged`` unless ``key`` signed exactly this acknowledgement."""
        if not self.sig:
            raise Forged("the acknowledgement is not signed")
        signature = unb64(self.sig, what="acknowledgement signature", size=64)
        key.verify(signature, ACK_DOMAIN + canonical.encode(self._fields()))

    @classmethod
    def decode(cls, payload: bytes) -> Ack:
        message = _load(payload, "ack")
        try:
            ack = cls(
                log=message["log"],
                status=message["status"],
                head_seq=message["head_seq"],
                head_hash=message["head_hash"],
                first=message["first"],
                last=message["last"],
                reason=message.get("reason", ""),
                cosignature=message.get("cosignature", ""),
                sig=message.get("sig", ""),
            )
        except KeyError as err:
            raise Malformed(f"ack lacks {err}") from err
        if ack.status not in ACK_STATUSES or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (ack.head_seq, ack.first, ack.last)
        ):
            raise Malformed(f"ack has an unknown status {ack.status!r} or non-integer positions")
        if not all(isinstance(v, str) for v in (ack.head_hash, ack.reason, ack.cosignature, ack.sig)):
            raise Malformed("ack fields head_hash, reason, cosignature and sig must be strings")
        return ack


def _seq(value: object) -> bool:
    """A position in a log: what a record's ``seq`` may be (the acknowledgement carries it back, signed)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= canonical.MAX_SAFE_INT


def _load(payload: bytes, kind: str) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise Malformed(f"{kind} of {len(payload)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        message = orjson.loads(payload)  # a batch is ~200 KB of escaped records: 5x faster than json
    except orjson.JSONDecodeError as err:
        raise Malformed(f"{kind} is not JSON: {err}") from err
    if not isinstance(message, dict) or message.get("kind") != kind or message.get("v") != 1:
        raise Malformed(f"not a version-1 {kind} message")
    if not isinstance(message.get("log"), str):
        raise Malformed(f"{kind} lacks its log name")
    return message
