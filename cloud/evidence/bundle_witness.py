"""The witness part of an evidence bundle: the cloud's own log of the checkpoints it cosigned.

For every appliance checkpoint in the bundle, its entry in the cloud's witness log with an
inclusion proof into a signed witness checkpoint: the first one an RFC 3161 timestamp authority
stamped, if any, else the latest. The stamps themselves go in as DER files with the TSA's
certificate, so that ``openssl ts -verify`` can check them by hand.

The latest witness checkpoint (stamped for this export) always goes in, with a consistency proof from every
other witness checkpoint used into it: one history, so that a stamp over a larger checkpoint covers every entry
before it (the earliest stamp over each punch: ledger/FORMAT.md, "Third-party time per record"). And for each log
of the bundle, the latest checkpoint the witness log recorded for it and the first one past the bundle's range
(``witness/heads.jsonl``): a range that ends short of a checkpoint witnessed before the period's end was cut
(ledger/FORMAT.md, "A log cut short"). Where the witness checkpoints commit per-log heads (``heads/1``), each one used
comes with the line of every log of the bundle in its heads and that line's inclusion proof
(``witness/log-heads.jsonl``): the heads above are then the ones the stamped witness log committed, and the entry past
the range names the range's last entry as the previous one of its log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from cloud.evidence.witness_log import heads_at, leaves
from cloud.store import CloudCheckpoint, WitnessCheckpoint, WitnessEntry, WitnessStamp
from ledger import note
from ledger.merkle import consistency_proof, inclusion_proofs
from ledger.witnesslog import committed_heads, head_leaves, head_line


def export_witness(
    files: dict[str, bytes],
    checkpoint_ids: Iterable[int],
    tsa_ca: Path | bytes | None,
    evidence_sizes: Iterable[int] = (),
    *,
    ends: dict[int, int] | None = None,
    evidence_log: bool = False,
) -> int:
    """Add ``witness/*`` to ``files``; return how many checkpoints (appliances', and the cloud evidence log's at
    ``evidence_sizes``) were proven in the witness log. ``tsa_ca`` is the TSAs' root certificates (PEM, or a
    file of them). ``ends`` (appliance id -> the size its range in the bundle ends at) and ``evidence_log`` name the
    logs whose latest witnessed checkpoint, and (appliances) first witnessed checkpoint past the range, go in
    ``witness/heads.jsonl``."""
    entries = list(
        WitnessEntry.select()
        .where(WitnessEntry.checkpoint.in_(list(checkpoint_ids)) | WitnessEntry.evidence.in_(list(evidence_sizes)))
        .order_by(WitnessEntry.seq)
    )
    latest = WitnessCheckpoint.select().order_by(WitnessCheckpoint.size.desc()).first()
    if not entries or latest is None:
        return 0
    stamped = sorted({s.checkpoint_id for s in WitnessStamp.select(WitnessStamp.checkpoint)})
    all_leaves = leaves(latest.size)
    targets = {entry.seq: next((s for s in stamped if s > entry.seq), latest.size) for entry in entries}
    heads = _heads(ends or {}, evidence_log, latest.size)
    for _role, entry in heads:
        targets.setdefault(entry.seq, latest.size)
    used = {size: WitnessCheckpoint.get_by_id(size) for size in {*targets.values(), latest.size}}
    proofs = {
        (seq, size): proof
        for size in used
        for seq, proof in inclusion_proofs(all_leaves[:size], [s for s, t in targets.items() if t == size]).items()
    }
    lines = [
        json.dumps(
            {
                "seq": entry.seq,
                "data": bytes(entry.data).decode(),
                "size": targets[entry.seq],
                "proof": [h.hex() for h in proofs[entry.seq, targets[entry.seq]]],
            }
        )
        for entry in entries
    ]
    files["witness/entries.jsonl"] = ("\n".join(lines) + "\n").encode()
    files["witness/heads.jsonl"] = "".join(
        json.dumps(
            {
                "log": json.loads(bytes(entry.data))["log"],
                "role": role,
                "seq": entry.seq,
                "data": bytes(entry.data).decode(),
                "size": targets[entry.seq],
                "proof": [h.hex() for h in proofs[entry.seq, targets[entry.seq]]],
            }
        )
        + "\n"
        for role, entry in heads
    ).encode()
    files["witness/consistency.jsonl"] = "".join(
        json.dumps({"from": size, "to": latest.size, "proof": [h.hex() for h in consistency_proof(all_leaves, size)]})
        + "\n"
        for size in sorted(used)
        if size != latest.size
    ).encode()
    committing = [size for size, c in used.items() if committed_heads(note.parse(c.note)[0]) is not None]
    logs = {json.loads(bytes(entry.data))["log"] for _role, entry in heads}
    if committing:  # a witness log from before per-log heads has none to give
        files["witness/log-heads.jsonl"] = "".join(json.dumps(x) + "\n" for x in _log_heads(committing, logs)).encode()
    checkpoints = []
    for size, checkpoint in sorted(used.items()):
        stamps = []
        for index, stamp in enumerate(checkpoint.stamps.order_by(WitnessStamp.gen_time_ms)):
            name = f"witness/stamps/{size}-{index}.tsr"
            files[name] = bytes(stamp.token)
            stamps.append({"file": name, "reason": stamp.reason, "tsa": stamp.tsa_url})
        files[f"witness/checkpoint-{size}.note"] = checkpoint.note.encode()  # what the TSA stamped, as a file
        checkpoints.append(json.dumps({"size": size, "note": checkpoint.note, "stamps": stamps}, ensure_ascii=False))
    files["witness/checkpoints.jsonl"] = ("\n".join(checkpoints) + "\n").encode()
    if tsa_ca is not None and any(c.stamps.count() for c in used.values()):
        files["witness/tsa-ca.pem"] = tsa_ca if isinstance(tsa_ca, bytes) else tsa_ca.read_bytes()
    return len(entries)


def _log_heads(sizes: list[int], logs: set[str]) -> list[dict[str, object]]:
    """For each witness checkpoint size in ``sizes`` and each log of ``logs`` its heads hold: the log's line
    (``seq``, the position of its latest entry then), its index among the sorted lines, and its inclusion proof."""
    lines = []
    for size, heads in sorted(heads_at(sizes).items()):
        leaves = head_leaves(heads)
        order = sorted(heads, key=lambda origin: head_line(origin, heads[origin]))
        index = {origin: i for i, origin in enumerate(order)}
        proofs = inclusion_proofs(leaves, [index[origin] for origin in logs if origin in heads])
        for origin in sorted(logs & heads.keys()):
            proof = proofs[index[origin]]
            lines.append(
                {
                    "size": size,
                    "log": origin,
                    "seq": heads[origin],
                    "index": index[origin],
                    "proof": [h.hex() for h in proof],
                }
            )
    return lines


def _heads(ends: dict[int, int], evidence_log: bool, below: int) -> list[tuple[str, WitnessEntry]]:
    """Per log, the witness entry of the largest checkpoint of it the witness log holds ("latest": what the cloud had
    witnessed of that log when the bundle was made) and, for an appliance log, of the first checkpoint past the
    bundle's range ("next"); among the witness log's first ``below`` entries."""
    heads = []
    for appliance, end in ends.items():
        of_it = (
            WitnessEntry.select()
            .join(CloudCheckpoint, on=(WitnessEntry.checkpoint == CloudCheckpoint.id))
            .where((CloudCheckpoint.appliance == appliance) & (WitnessEntry.seq < below))
        )
        latest = of_it.order_by(CloudCheckpoint.size.desc()).first()
        if latest is None:
            continue
        heads.append(("latest", latest))
        after = of_it.where(CloudCheckpoint.size > end).order_by(CloudCheckpoint.size).first()
        if after is not None:
            heads.append(("next", after))
    if evidence_log:
        head = (
            WitnessEntry.select()
            .where(WitnessEntry.evidence.is_null(False) & (WitnessEntry.seq < below))
            .order_by(WitnessEntry.evidence.desc())
        )
        if (first := head.first()) is not None:
            heads.append(("latest", first))
    return heads
