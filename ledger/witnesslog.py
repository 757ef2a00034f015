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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger import canonical, note
from ledger.errors import LedgerError
from ledger.keys import VerifyKey
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.record import leaf_hash

TIME_TOLERANCE_S = 120  # the cloud's clock against the TSA's


def entry_bytes(origin: str, size: int, root: bytes, cosigned_at: int, cosignature: str) -> bytes:
    return canonical.encode(
        {"log": origin, "size": size, "root": base64.b64encode(root).decode(), "t": cosigned_at, "cosig": cosignature}
    )


def note_digest(text: str) -> bytes:
    """What the timestamp authority stamps: SHA-256 of the witness checkpoint's note as stored."""
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass
class WitnessResult:
    """What ``verify_witness`` found: whether ``witness/*`` holds, and what its stamps and heads prove."""

    ok: bool
    detail: str
    times: list[datetime] = field(default_factory=list)  # every stamp that verified
    unstamped: int = 0  # how many of the bundle's checkpoints no verified stamp covers
    # each appliance checkpoint (origin, size) proven in the witness log: the earliest verified stamp covering it
    covered: dict[tuple[str, int], datetime | None] = field(default_factory=dict)
    # per log and role: "latest", the largest checkpoint the witness log had recorded of it at export, and "next",
    # the first one past the bundle's range; each {"size", "t" (cosigned at), "seq" (in the witness log)}
    heads: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def verify_witness(
    files: dict[str, bytes],
    appliance_checkpoints: dict[tuple[str, int], str],
    witness: VerifyKey,
    tsa_roots: bytes | None,
    *,
    linked: bool = False,
) -> WitnessResult:
    """Check ``witness/*`` against the bundle's cosigned appliance checkpoints ((origin, size) -> note).

    Every appliance checkpoint must be an entry of the cloud's signed log; every stamp must verify, and no
    cosignature may claim a time after the TSA stamped the witness checkpoint that holds it. With ``linked`` (a
    bundle of format 4 on), every witness checkpoint the bundle uses must be proven consistent with the latest one
    (``witness/consistency.jsonl``): they are then one history, and a stamp over any of them that is larger than an
    entry's position covers that entry; and ``witness/heads.jsonl`` gives, per log, the latest checkpoint the
    witness log recorded for it and the first past the bundle's range, proven in it. Without ``linked`` an entry is
    covered only by the stamps of the witness checkpoint its inclusion proof leads to.
    """
    if "witness/entries.jsonl" not in files:
        return WitnessResult(False, "the bundle has no witness log: its checkpoints are not in the cloud's signed log")
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
    one_history = _consistent(files, roots, problems) if linked else set()
    result = WitnessResult(False, "")
    for line in files["witness/entries.jsonl"].decode().splitlines():
        item = json.loads(line)
        fields = _proven(item, roots, problems)
        if fields is None:
            continue
        key = (fields.get("log"), fields.get("size"))
        appliance_note = appliance_checkpoints.get(key)  # type: ignore[arg-type]
        if appliance_note is None or not _matches(fields, appliance_note):
            problems.append(f"witness entry {item['seq']}: does not match the bundle's checkpoint {key}")
            continue
        size = item["size"]
        late = [t for t in stamped.get(size, []) if fields["t"] > t.timestamp() + TIME_TOLERANCE_S]
        if late:
            problems.append(
                f"checkpoint {key}: cosigned at {fields['t']}, after the TSA stamped it at {late[0].isoformat()}"
            )
        # the witness checkpoints that hold this entry: the one its proof leads to, and (one history) any larger
        holding = [w for w in one_history if w > item["seq"]] if size in one_history else [size]
        times = [t for w in holding for t in stamped.get(w, [])]
        result.covered[key] = min(times, default=None)  # type: ignore[index]
    if linked:
        for line in files.get("witness/heads.jsonl", b"").decode().splitlines():
            item = json.loads(line)
            fields = _proven(item, roots, problems)
            if fields is None:
                continue
            if fields.get("log") != item.get("log"):
                problems.append(f"witness entry {item['seq']}: is not an entry of {item.get('log')}")
                continue
            role = "next" if item.get("role") == "next" else "latest"
            result.heads.setdefault(item["log"], {})[role] = {
                "size": fields["size"],
                "t": fields["t"],
                "seq": item["seq"],
            }
    missing = sorted(set(appliance_checkpoints) - set(result.covered))
    if missing:
        problems.append(f"{len(missing)} checkpoints are not in the cloud's witness log, e.g. {missing[0]}")
    result.times = sorted(t for ts in stamped.values() for t in ts)
    result.unstamped = sum(1 for t in result.covered.values() if t is None)
    if problems:
        result.detail = "; ".join(problems[:5])
        return result
    times = result.times
    detail = f"{len(result.covered)} checkpoints in the cloud's signed log"
    detail += (
        f"; timestamped by a TSA ({len(times)} stamps, latest {times[-1].isoformat()})"
        if times
        else "; no TSA timestamp"
    )
    if linked:
        detail += f"; the {len(roots)} witness checkpoints used proven one history"
    if times and result.unstamped:
        detail += f"; {result.unstamped} of them under no stamp"
    result.ok, result.detail = True, detail
    return result


def _proven(item: dict[str, Any], roots: dict[int, bytes], problems: list[str]) -> dict[str, Any] | None:
    """A witness entry's fields, once its inclusion proof into the listed witness checkpoint verified."""
    data = item["data"].encode()
    size = item["size"]
    if size not in roots or not verify_inclusion(
        leaf_hash(data), item["seq"], size, [bytes.fromhex(h) for h in item["proof"]], roots[size]
    ):
        problems.append(f"witness entry {item['seq']}: its inclusion proof does not verify")
        return None
    return canonical.decode(data)


def _consistent(files: dict[str, bytes], roots: dict[int, bytes], problems: list[str]) -> set[int]:
    """The witness checkpoints proven to be one history: the largest, and each one with a consistency proof
    (RFC 9162) into it in ``witness/consistency.jsonl``. One without is a problem: a fork could hide behind it."""
    if not roots:
        return set()
    latest = max(roots)
    proofs = {}
    for line in files.get("witness/consistency.jsonl", b"").decode().splitlines():
        item = json.loads(line)
        proofs[item["from"]] = item
    linked = {latest}
    for size in sorted(roots):
        if size == latest:
            continue
        item = proofs.get(size)
        if (
            item is None
            or item.get("to") != latest
            or not verify_consistency(
                size, latest, roots[size], roots[latest], [bytes.fromhex(h) for h in item.get("proof", [])]
            )
        ):
            problems.append(
                f"witness checkpoint {size}: not proven consistent with witness checkpoint {latest} (a fork?)"
            )
            continue
        linked.add(size)
    return linked


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
