"""Does the signed log agree with its own latest checkpoint?

A checkpoint says "the first ``size`` records of this log hash to ``root``", signed. One that does
not match the records would break every evidence bundle that cites it, so the daemon checks the
latest one before it appends anything (``LogDamaged`` stops it: a damaged log is never extended
silently) and ``appliance doctor`` checks it on demand.

The check re-hashes the leaves into the Merkle tree and compares the root, the size and the stored
compact range (from which the writer restarts) with the checkpoint's. It reads everything in one
read transaction: a WAL snapshot, so a record and checkpoint the daemon commits meanwhile cannot
make a sound log look damaged (two separate reads once did, in a test).

Re-hashing a year of a large plant's log takes minutes on a Pi, so the daemon starts from the
largest checkpoint an earlier check already verified (``log_check``) and hashes only what came
after; the doctor, which only reads, starts from genesis.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import Forged, Malformed, VerifyKey, note, parse
from ledger.merkle import CompactRange
from ledger.record import rotation_key

FETCH = 4096  # leaves read per round trip

VERIFIED_TABLE = "log_check"  # appliance.store.LogCheckState


class LogDamaged(RuntimeError):
    """The log's latest checkpoint does not match its records."""


@dataclass(frozen=True)
class LogCheck:
    records: int  # records in the log
    checkpoint: int  # the latest checkpoint's size (0: none yet)
    hashed_from: int  # leaves re-hashed from this index (0: from genesis)
    signature: str  # "verified by <kid>" | "no key here to check it" | "" (no checkpoint)


def check_latest_checkpoint(
    conn: sqlite3.Connection, *, keys: Iterable[VerifyKey] = (), from_size: int = 0
) -> LogCheck:
    """Check the latest checkpoint against the log; raise ``LogDamaged`` saying what differs.

    ``from_size``: the size of a checkpoint verified before (its stored compact range is trusted and
    the leaves before it are not hashed again); 0 hashes from genesis. ``keys``: public keys the note
    may be signed with (the appliance's own, and those its key rotations name); the signature is
    checked when one of them is the signer's.
    """
    opened = not conn.in_transaction
    if opened:
        conn.execute("BEGIN")  # deferred: the snapshot starts at the first read and holds until the end
    try:
        return _check(conn, list(keys), from_size)
    finally:
        if opened:
            conn.execute("ROLLBACK")


def _check(conn: sqlite3.Connection, keys: list[VerifyKey], from_size: int) -> LogCheck:
    records, top = conn.execute("SELECT count(*), coalesce(max(seq), -1) FROM log_record").fetchone()
    if top != records - 1:
        raise LogDamaged(f"the log has {records} records but its last seq is {top}: records are missing")
    latest = conn.execute("SELECT size, root, note, compact FROM checkpoint ORDER BY size DESC LIMIT 1").fetchone()
    if latest is None:
        return LogCheck(records, 0, 0, "")
    size, root, text, compact = latest[0], bytes(latest[1]), latest[2], latest[3]
    if size > records:
        raise LogDamaged(f"the latest checkpoint covers {size} records, but the log holds only {records}")
    tree = _start_tree(conn, min(from_size, size))
    hashed_from = tree.size
    for leaves in _leaves(conn, tree.size, size):
        tree.extend(leaves)
    if tree.root() != root:
        raise LogDamaged(
            f"the latest checkpoint (size {size}) has root {root.hex()[:16]}…, but the log's first {size} "
            f"records hash to {tree.root().hex()[:16]}…"
        )
    if _compact(compact) != tree.hashes:
        raise LogDamaged(f"the latest checkpoint's stored compact range (size {size}) is not the log's")
    try:
        body, signatures = note.parse(text)
    except Malformed as err:
        raise LogDamaged(f"the latest checkpoint's signed note is malformed: {err}") from err
    if (body.size, body.root) != (size, root):
        raise LogDamaged(f"the latest checkpoint's signed note says size {body.size}, its row says {size}")
    return LogCheck(records, size, hashed_from, _signature(text, body, signatures, keys))


def _signature(text: str, body: note.Checkpoint, signatures: list[note.NoteSignature], keys: list[VerifyKey]) -> str:
    ids = {s.key_id for s in signatures if s.name == body.origin}
    for key in keys:
        if note.key_id(body.origin, note.ED25519, key) in ids:
            try:
                note.verify(text, key)
            except Forged as err:
                raise LogDamaged(f"the latest checkpoint's signature does not verify: {err}") from err
            return f"verified by {key.kid}"
    return "no key here to check it"


def _start_tree(conn: sqlite3.Connection, from_size: int) -> CompactRange:
    if from_size <= 0:
        return CompactRange()
    row = conn.execute("SELECT compact FROM checkpoint WHERE size = ?", (from_size,)).fetchone()
    if row is None:  # that checkpoint is gone (a restored backup): start over
        return CompactRange()
    return CompactRange(from_size, _compact(row[0]))


def _compact(text: str) -> list[bytes]:
    try:
        return [base64.b64decode(h) for h in json.loads(text)]
    except (ValueError, TypeError) as err:
        raise LogDamaged(f"a checkpoint's stored compact range is unreadable: {err}") from err


def _leaves(conn: sqlite3.Connection, start: int, end: int) -> Iterable[list[bytes]]:
    cursor = conn.execute("SELECT seq, leaf FROM log_record WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end))
    expected = start
    while rows := cursor.fetchmany(FETCH):
        if rows[-1][0] != expected + len(rows) - 1:
            raise LogDamaged(f"the log has a gap after seq {expected - 1}")
        expected += len(rows)
        yield [bytes(leaf) for _, leaf in rows]
    if expected != end:
        raise LogDamaged(f"the log ends at seq {expected - 1}, before its checkpoint's size {end}")


def rotation_keys(conn: sqlite3.Connection) -> list[VerifyKey]:
    """The keys the log's own rotation records hand over to (each signs the checkpoints after it)."""
    rows = conn.execute("SELECT data FROM log_record WHERE type = 'keyrot' ORDER BY seq").fetchall()
    return [rotation_key(parse(bytes(data))) for (data,) in rows]


def verified_size(conn: sqlite3.Connection) -> int:
    """The largest checkpoint size a check on this database already verified (0: none)."""
    row = conn.execute(f"SELECT size FROM {VERIFIED_TABLE} WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def mark_verified(conn: sqlite3.Connection, size: int) -> None:
    conn.execute(f"INSERT OR REPLACE INTO {VERIFIED_TABLE} (id, size) VALUES (1, ?)", (size,))
