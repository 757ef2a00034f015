"""The cloud's witness log: its entry format, and its checks inside an evidence bundle.

Each entry is one appliance checkpoint the cloud cosigned, as canonical JSON::

    {"cosig": "<the cosignature line>", "log": "<origin>", "root": "<base64>", "size": n, "t": <unix s>}

The entries are the leaves (``SHA-256(0x00 || bytes)``) of an RFC 9162 tree whose checkpoints the
cloud signs with its witness key (origin ``punchproof-cloud/checkpoints``), and which an RFC 3161
timestamp authority stamps over ``SHA-256(note text)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from ledger import canonical, note
from ledger.errors import LedgerError
from ledger.keys import VerifyKey
from ledger.merkle import verify_inclusion
from ledger.record import leaf_hash

TIME_TOLERANCE_S = 120  # the cloud's clock against the TSA's


def entry_bytes(origin: str, size: int, root: bytes, cosigned_at: int, cosignature: str) -> bytes:
    return canonical.encode(
        {"log": origin, "size": size, "root": base64.b64encode(root).decode(), "t": cosigned_at, "cosig": cosignature}
    )


def note_digest(text: str) -> bytes:
    """What the timestamp authority stamps: SHA-256 of the witness checkpoint's note as stored."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def verify_witness(
    files: dict[str, bytes],
    appliance_checkpoints: dict[tuple[str, int], str],
    witness: VerifyKey,
    tsa_roots: bytes | None,
) -> tuple[bool, str, list[datetime], int]:
    """Check ``witness/*`` against the bundle's cosigned appliance checkpoints ((origin, size) -> note).

    Returns (ok, detail, the TSA's times, how many of the bundle's checkpoints no verified TSA stamp
    covers). Every appliance checkpoint must be an entry of the cloud's signed log; every stamp must
    verify, and no cosignature may claim a time after the TSA stamped the witness checkpoint that
    holds it. An entry is covered when the witness checkpoint its inclusion proof leads to carries a
    stamp that verified.
    """
    if "witness/entries.jsonl" not in files:
        return False, "the bundle has no witness log: its checkpoints are not in the cloud's signed log", [], 0
    problems: list[str] = []
    roots: dict[int, bytes] = {}
    stamped: dict[int, list[datetime]] = {}
    for line in files["witness/checkpoints.jsonl"].decode().splitlines():
        item = json.loads(line)
        try:
            checkpoint = note.verify(item["note"], witness)
        except LedgerError as err:
            problems.append(f"witness checkpoint {item.get('size')}: {err}")
            continue
        if checkpoint.size != item["size"]:
            problems.append(f"witness checkpoint listed as {item['size']} is signed as {checkpoint.size}")
            continue
        roots[checkpoint.size] = checkpoint.root
        for stamp in item.get("stamps", []):
            try:
                stamped.setdefault(checkpoint.size, []).append(_check_stamp(files, stamp, item["note"], tsa_roots))
            except LedgerError as err:
                problems.append(f"timestamp {stamp.get('file')}: {err}")
    proven: set[tuple[str, int]] = set()
    unstamped: set[tuple[str, int]] = set()
    for line in files["witness/entries.jsonl"].decode().splitlines():
        item = json.loads(line)
        data = item["data"].encode()
        fields = canonical.decode(data)
        key = (fields.get("log"), fields.get("size"))
        size = item["size"]
        if size not in roots or not verify_inclusion(
            leaf_hash(data), item["seq"], size, [bytes.fromhex(h) for h in item["proof"]], roots[size]
        ):
            problems.append(f"witness entry {item['seq']}: its inclusion proof does not verify")
            continue
        appliance_note = appliance_checkpoints.get(key)  # type: ignore[arg-type]
        if appliance_note is None or not _matches(fields, appliance_note):
            problems.append(f"witness entry {item['seq']}: does not match the bundle's checkpoint {key}")
            continue
        late = [t for t in stamped.get(size, []) if fields["t"] > t.timestamp() + TIME_TOLERANCE_S]
        if late:
            problems.append(
                f"checkpoint {key}: cosigned at {fields['t']}, after the TSA stamped it at {late[0].isoformat()}"
            )
        proven.add(key)
        if not stamped.get(size):
            unstamped.add(key)
    missing = sorted(set(appliance_checkpoints) - proven)
    if missing:
        problems.append(f"{len(missing)} checkpoints are not in the cloud's witness log, e.g. {missing[0]}")
    times = sorted(t for ts in stamped.values() for t in ts)
    if problems:
        return False, "; ".join(problems[:5]), times, len(unstamped)
    detail = f"{len(proven)} checkpoints in the cloud's signed log"
    detail += (
        f"; timestamped by a TSA ({len(times)} stamps, latest {times[-1].isoformat()})"
        if times
        else "; no TSA timestamp"
    )
    if times and unstamped:
        detail += f"; {len(unstamped)} of them under no stamp"
    return True, detail, times, len(unstamped)


def _matches(fields: dict[str, Any], appliance_note: str) -> bool:
    checkpoint, _signatures = note.parse(appliance_note)
    cosignature = appliance_note.rstrip("\n").rsplit("\n", 1)[-1]
    return fields.get("root") == base64.b64encode(checkpoint.root).decode() and fields.get("cosig") == cosignature


def _check_stamp(files: dict[str, bytes], stamp: dict[str, Any], text: str, tsa_roots: bytes | None) -> datetime:
    from ledger.timestamp import verify_timestamp

    roots = tsa_roots if tsa_roots is not None else files.get("witness/tsa-ca.pem")
    if roots is None:
        raise LedgerError("no TSA certificate to check it with (pin one with --tsa-ca)")
    reply = files.get(stamp.get("file", ""))
    if reply is None:
        raise LedgerError("the stamp file is missing")
    return verify_timestamp(reply, note_digest(text), roots)
