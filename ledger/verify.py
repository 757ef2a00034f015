"""Verification of a contiguous range of one log: schema, chain, key, and either every record's
signature or one signed checkpoint whose Merkle root the records must reproduce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import note
from ledger.errors import ChainBroken, Forged, Malformed
from ledger.keys import VerifyKey
from ledger.merkle import CompactRange
from ledger.messages import Batch
from ledger.record import SignedRecord, b64, rotation_key


@dataclass(frozen=True)
class VerifiedRange:
    records: list[tuple[dict[str, Any], bytes]]  # each record's fields and leaf hash
    checkpoint: note.Checkpoint | None  # the signed checkpoint the range ends at, if it came with one
    tree: CompactRange  # the log's tree after the range
    rotations: list[tuple[int, VerifyKey]] = field(default_factory=list)  # (keyrot seq, the key after it)


def verify_range(
    batch: Batch,
    *,
    key: VerifyKey,
    prev: bytes,
    tree: CompactRange,
    parsed: list[tuple[dict[str, Any], bytes]] | None = None,
) -> VerifiedRange:
    """Check ``batch`` as the continuation of a log whose tree is ``tree`` and whose last leaf is ``prev``.

    With a checkpoint, its signature is checked first, and then the records must hash to its
    root: one signature covers the whole range (this is what makes a backlog of a million
    records quick to verify). Without one, every record's signature is checked before the
    record is parsed. Raises ``Malformed``, ``ChainBroken`` or ``Forged`` naming the problem.

    ``parsed`` is ``parse_range(batch)``, done ahead (it is used only for a checkpointed range).

    ``key`` is the key in force at ``batch.first``. A key rotation hands over to the new key for
    the records after it; in a checkpointed range it must be the last record (the appliance
    checkpoints with the old key right after rotating), and its own signature is checked too.
    """
    if tree.size != batch.first:
        raise ChainBroken(f"{batch.log}: the range starts at seq {batch.first}, the log has {tree.size} records")
    checkpoint = _checkpoint(batch.log, batch.last, batch.checkpoint, key) if batch.checkpoint else None
    if checkpoint is None:
        parsed = None  # every signature is checked before its record is parsed
    records, rotations = _check_records(batch, key=key, prev=prev, signatures=checkpoint is None, parsed=parsed)
    if checkpoint is not None and rotations and rotations[-1][0] != batch.last:
        raise Malformed(f"{batch.log} seq {rotations[-1][0]}: a key rotation must end its checkpointed range")
    tree = CompactRange(tree.size, tree.hashes)
    tree.extend(leaf for _, leaf in records)
    if checkpoint is not None and tree.root() != checkpoint.root:
        raise Forged(f"{batch.log}: the records do not hash to the root of the signed checkpoint {checkpoint.size}")
    return VerifiedRange(records, checkpoint, tree, rotations)


def verify_parsed(
    log: str,
    first: int,
    checkpoint_note: str,
    *,
    leaves: list[bytes],
    first_prev: str,
    kids: list[str],
    key: VerifyKey,
    prev: bytes,
    tree: CompactRange,
) -> tuple[note.Checkpoint, CompactRange]:
    """The rest of checking a checkpointed range that ``parse_range`` checked ahead, from a summary of
    it: each record's leaf hash and key id, and the first record's link. (A backlog's ranges are parsed
    in other processes; passing a summary back instead of every record's fields halves the cost of the
    crossing.) Checks, like ``verify_range``: the range continues the log, the checkpoint is signed by
    ``key`` and ends the range, the first record links to ``prev``, every record names ``key``, and the
    records hash to the checkpoint's root. A range holding a key rotation needs ``verify_range``.

    Returns the checkpoint and the log's tree after the range."""
    if tree.size != first:
        raise ChainBroken(f"{log}: the range starts at seq {first}, the log has {tree.size} records")
    checkpoint = _checkpoint(log, first + len(leaves) - 1, checkpoint_note, key)
    if first_prev != b64(prev):
        raise ChainBroken(f"{log} seq {first}: does not link to the previous record")
    for offset, kid in enumerate(kids):
        if kid != key.kid:
            raise Forged(f"{log} seq {first + offset}: names key {kid}, but the key in force is {key.kid}")
    after = CompactRange(tree.size, tree.hashes)
    after.extend(leaves)
    if after.root() != checkpoint.root:
        raise Forged(f"{log}: the records do not hash to the root of the signed checkpoint {checkpoint.size}")
    return checkpoint, after


def _checkpoint(log: str, last: int, checkpoint_note: str, key: VerifyKey) -> note.Checkpoint:
    """The range's signed checkpoint, which must be this log's tree ending at ``last``."""
    checkpoint = note.verify(checkpoint_note, key)
    if checkpoint.origin != log or checkpoint.size != last + 1:
        raise Malformed(
            f"{log}: the checkpoint is for {checkpoint.origin} size {checkpoint.size}, "
            f"not for this range ending at seq {last}"
        )
    return checkpoint


def verify_batch(batch: Batch, *, key: VerifyKey, prev: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Check a range on its own: every record's signature, and the chain from ``prev``."""
    return _check_records(batch, key=key, prev=prev, signatures=True)[0]


def parse_range(batch: Batch) -> list[tuple[dict[str, Any], bytes]]:
    """The part of checking a checkpointed range that needs nothing but the range: every record parsed
    (canonical bytes, schema), in its log at its position, linked to the record before it; with each
    record's leaf hash. It may run ahead of the log's state, in another process (a backlog is parsed on
    every core); ``verify_range(..., parsed=)`` then does the rest. Nothing parsed here is acted upon
    before the checkpoint's signature and root are checked."""
    out: list[tuple[dict[str, Any], bytes]] = []
    previous = ""
    for offset, record in enumerate(batch.records):
        seq = batch.first + offset
        fields = _parse(batch, record, seq)
        if offset and fields["prev"] != previous:
            raise ChainBroken(f"{batch.log} seq {seq}: does not link to the previous record")
        leaf = record.leaf
        previous = b64(leaf)
        out.append((fields, leaf))
    return out


def _parse(batch: Batch, record: SignedRecord, seq: int) -> dict[str, Any]:
    try:
        fields = record.fields()
    except Malformed as err:
        raise Malformed(f"{batch.log} seq {seq}: {err}") from err
    if fields["log"] != batch.log:
        raise Malformed(f"seq {seq} belongs to log {fields['log']!r}, not {batch.log!r}")
    if fields["seq"] != seq:
        raise ChainBroken(f"{batch.log}: record at position {seq} carries seq {fields['seq']}")
    return fields


def _check_records(
    batch: Batch,
    *,
    key: VerifyKey,
    prev: bytes,
    signatures: bool,
    parsed: list[tuple[dict[str, Any], bytes]] | None = None,
) -> tuple[list[tuple[dict[str, Any], bytes]], list[tuple[int, VerifyKey]]]:
    out = []
    rotations: list[tuple[int, VerifyKey]] = []
    for offset, record in enumerate(batch.records):
        seq = batch.first + offset
        if signatures:
            try:  # nothing unsigned is parsed for meaning
                record.verify(key)
            except Forged as err:
                raise Forged(f"{batch.log} seq {seq}: {err}") from err
        if parsed is None:
            fields, leaf = _parse(batch, record, seq), record.leaf
            if fields["prev"] != b64(prev):
                raise ChainBroken(f"{batch.log} seq {seq}: does not link to the previous record")
        else:  # parse_range checked the rest of the links
            fields, leaf = parsed[offset]
            if offset == 0 and fields["prev"] != b64(prev):
                raise ChainBroken(f"{batch.log} seq {seq}: does not link to the previous record")
        if fields["kid"] != key.kid:
            raise Forged(f"{batch.log} seq {seq}: names key {fields['kid']}, but the key in force is {key.kid}")
        if fields["type"] == "keyrot":
            try:  # a rotation's signature is checked on its own even under a checkpoint
                record.verify(key)
                key = rotation_key(fields)
            except (Malformed, Forged) as err:
                raise Forged(f"{batch.log} seq {seq}: the key rotation is invalid: {err}") from err
            rotations.append((seq, key))
        prev = leaf
        out.append((fields, leaf))
    return out, rotations
