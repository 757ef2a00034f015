"""Damage a signed log the way a defect in the writer would (tests of appliance.capture.logcheck)."""

from __future__ import annotations

import base64
import json
import sqlite3

from ledger import SigningKey, note
from ledger.merkle import CompactRange


def checkpoint_over_other_leaves(conn: sqlite3.Connection, key: SigningKey, origin: str, size: int) -> None:
    """Append a checkpoint of ``size`` records, properly signed by ``key``, over the log's first
    ``size - 1`` leaves and one that is not the log's: what an in-memory tree surviving a rolled-back
    commit would sign. A checkpoint of that size already there is replaced (past the table's
    append-only trigger, which the daemon puts back when it opens the database)."""
    conn.execute("DROP TRIGGER IF EXISTS checkpoint_no_delete")
    conn.execute("DELETE FROM checkpoint WHERE size = ?", (size,))
    tree = CompactRange()
    for (leaf,) in conn.execute("SELECT leaf FROM log_record WHERE seq < ? ORDER BY seq", (size - 1,)):
        tree.append(bytes(leaf))
    while tree.size < size:
        tree.append(b"\x11" * 32)
    body = note.Checkpoint(origin, size, tree.root())
    conn.execute(
        "INSERT INTO checkpoint (size, root, note, compact, created_ms) VALUES (?, ?, ?, ?, 0)",
        (
            size,
            tree.root(),
            note.render(body, [note.sign(body, key)]),
            json.dumps([base64.b64encode(h).decode() for h in tree.hashes]),
        ),
    )
    conn.commit()
