"""Checkpoints and cosignatures as C2SP signed notes (c2sp.org/signed-note, tlog-checkpoint,
tlog-cosignature), so that standard transparency-log tooling can read them.

    <origin>\\n<size>\\n<base64 root>\\n          the checkpoint body (the note text)
    [<extension line>\\n ...]                      optional extension lines, signed with the rest
    \\n
    — <origin> base64(key id || Ed25519 signature over the body)          the log's signature
    — <witness> base64(key id || u64 time || Ed25519 signature over       a witness cosignature
          "cosignature/v1\\ntime <time>\\n" || body)

Key id = SHA-256(key name || 0x0A || type || 32-byte public key)[:4]; type 0x01 for the log's
signature, 0x04 for a timestamped cosignature. Unknown signature lines are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass

from ledger.errors import Forged, Malformed
from ledger.keys import SigningKey, VerifyKey

DASH = "\u2014"
ED25519 = 0x01
COSIGNATURE = 0x04
MAX_SIGNATURES = 16


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()  # C2SP extension lines after the root (no newline), part of the signed body

    def body(self) -> str:
        extra = "".join(f"{line}\n" for line in self.extensions)
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n{extra}"

    @classmethod
    def parse_body(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0] or not lines[1].isdigit():
            raise Malformed("a checkpoint body is 'origin', 'size' and 'root' lines")
        if lines[1] != str(int(lines[1])):
            raise Malformed("checkpoint size has leading zeros")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except ValueError as err:
            raise Malformed(f"checkpoint root is not base64: {err}") from err
        if len(root) != 32:
            raise Malformed("checkpoint root is not 32 bytes")
        extensions = tuple(lines[3:-1])
        if not all(extensions):
            raise Malformed("a checkpoint's extension lines are not empty")
        return cls(lines[0], int(lines[1]), root, extensions)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def key_id(name: str, kind: int, key: VerifyKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + key.raw()).digest()[:4]


def sign(checkpoint: Checkpoint, key: SigningKey) -> NoteSignature:
    """The log's signature, named after its origin."""
    name = checkpoint.origin
    return NoteSignature(name, key_id(name, ED25519, key.verify_key), key.sign(checkpoint.body().encode()))


def cosign(checkpoint: Checkpoint, key: SigningKey, name: str, timestamp: int) -> NoteSignature:
    """A witness's timestamped statement that this is the largest consistent tree it has seen."""
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.body().encode()
    payload = struct.pack(">Q", timestamp) + key.sign(message)
    return NoteSignature(name, key_id(name, COSIGNATURE, key.verify_key), payload)


def render(checkpoint: Checkpoint, signatures: list[NoteSignature]) -> str:
    return checkpoint.body() + "\n" + "".join(s.line() for s in signatures)


def parse(note: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Split a note into its checkpoint and its signature lines (not yet verified)."""
    if _CONTROL.search(note):
        raise Malformed("a signed note has no control characters but newlines")
    body, separator, tail = note.rpartition("\n\n")
    if not separator:
        raise Malformed("a signed note needs a blank line before its signatures")
    signatures = []
    for line in tail.split("\n")[:-1] if tail.endswith("\n") else [None]:
        if line is None or not line.startswith(DASH + " "):
            raise Malformed("malformed signature line")
        name, _, encoded = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as err:
            raise Malformed(f"signature of {name!r} is not base64") from err
        if not name or len(raw) < 5:
            raise Malformed("malformed signature line")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise Malformed(f"a signed note has 1 to {MAX_SIGNATURES} signatures")
    return Checkpoint.parse_body(body + "\n"), signatures


def verify(note: str, key: VerifyKey) -> Checkpoint:
    """Return the checkpoint if the log's key signed it; raise ``Forged`` otherwise."""
    checkpoint, signatures = parse(note)
    wanted = key_id(checkpoint.origin, ED25519, key)
    found = [s for s in signatures if s.name == checkpoint.origin and s.key_id == wanted]
    if not found:
        raise Forged(f"checkpoint of {checkpoint.origin} size {checkpoint.size} is not signed by key {key.kid}")
    for signature in found:
        key.verify(signature.signature, checkpoint.body().encode())
    return checkpoint


def verify_cosignature(note: str, witness: VerifyKey, name: str) -> int:
    """Return the time the witness cosigned this checkpoint; raise ``Forged`` if it did not."""
    checkpoint, signatures = parse(note)
    wanted = key_id(name, COSIGNATURE, witness)
    found = [s for s in signatures if s.name == name and s.key_id == wanted]
    if not found:
        raise Forged(f"checkpoint of {checkpoint.origin} size {checkpoint.size} has no cosignature by {name}")
    for signature in found:
        if len(signature.signature) != 8 + 64:
            raise Forged(f"cosignature by {name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.body().encode()
        witness.verify(signature.signature[8:], message)
    return timestamp
