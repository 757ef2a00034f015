"""The cloud's evidence log in an evidence bundle: laid out exactly like an appliance's log (``logs/<n>/``), so
``punchproof verify`` checks it with the same code — exact bytes, signatures by the evidence key, chain,
inclusion proofs, checkpoints cosigned by the witness and entered in the witness log.

Disclosed: the employee's own records (contact attempts, receipts, people's actions on the employee's
cases) one file each with an inclusion proof; every other record of the range only as its salted leaf hash.
Beside them, what the records name by hash: the notices' PDFs (``cloud/notices/<sha256>.pdf``), for each
contact what went on the wire (``logs/<n>/requests/<seq>``, for e-mail the exact RFC 5322 message), so a
reader can hold the signed record to the very bytes the worker received; and each document a person's action
names (``ledger.evidence.named_documents``): a 解除证明 or 公告 text produced on the case (kept as a notice,
``cloud/notices/<sha256>.pdf``), a file HR uploaded or a draft a confirmation reviewed (kept with the case,
``cloud/documents/<sha256><suffix>``).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Collection
from pathlib import PurePosixPath

import peewee as pw

from cloud.channels.contact_log import ContactAttempt
from cloud.escalation.casefiles import CaseDocument
from cloud.evidence.log import ORIGIN, EvidenceCheckpoint, EvidenceRecord
from cloud.notices.records import NoticeDocument
from ledger import VerifyKey
from ledger.evidence import named_documents
from ledger.merkle import CompactRange, inclusion_proofs
from ledger.ownertags import undisclosed_line
from ledger.record import b64

APPLIANCE = "cloud"  # how the bundle's manifest names this log's "appliance"
KEY_TYPES = ("keyreg", "keyrevoke")  # appliance keys registered, accepted by rotation, revoked


def export_cloud_log(
    files: dict[str, bytes],
    base: str,
    employee: str,
    plant_ids: list[str],
    start_ms: int,
    end_ms: int,
    key: VerifyKey,
    origins: Collection[str] = (),
) -> tuple[dict[str, object] | None, list[int], dict[str, object] | None]:
    """Add ``base/*``; returns the manifest's entry, the evidence checkpoints used, and the key's registry entry.
    Besides the employee's records, every registration and revocation of a key of the logs ``origins`` is
    disclosed (``system.jsonl``, proven by ``leaves.txt``): the dated fingerprints a reader pins, and the points
    from which a stolen Pi's records are untrusted. The range then reaches back to the first of them."""
    own_query = EvidenceRecord.select().where(
        (EvidenceRecord.employee == employee)
        & EvidenceRecord.plant.in_(plant_ids)
        & (EvidenceRecord.t_wall_ms >= start_ms)
        & (EvidenceRecord.t_wall_ms < end_ms)
    )
    own = list(own_query.order_by(EvidenceRecord.seq))
    given = _tag_key_record(employee, plant_ids)  # the employee's tag key: wherever it lies, it goes in
    if given is not None and given.seq not in {r.seq for r in own}:
        own = sorted([*own, given], key=lambda r: r.seq)
    keys = [
        r
        for r in EvidenceRecord.select().where(EvidenceRecord.type.in_(KEY_TYPES)).order_by(EvidenceRecord.seq)
        if json.loads(bytes(r.data))["key_log"] in origins
    ]
    latest = EvidenceCheckpoint.select(pw.fn.MAX(EvidenceCheckpoint.size)).scalar() or 0
    keys = [r for r in keys if r.seq < latest]  # not checkpointed yet: the next export has them
    system = keys + _late_tags(own + keys)  # and the tags given late to the range's records older than the switch
    if not [r for r in own if r is not given] and not keys:
        return None, [], None
    period = [r for r in own if r is not given] + keys  # the key's record may lie before the range: proven alone
    first = min(r.seq for r in period)
    last = max(r.seq for r in own + system)
    cover = EvidenceCheckpoint.select().where(EvidenceCheckpoint.size > last).order_by(EvidenceCheckpoint.size).first()
    if cover is None:
        return None, [], None  # not checkpointed yet: the caller brings the log up to date first
    end = cover.size
    # every record of the employee's in the range goes in, of the period or not: a reader checks that none of the
    # range's records carrying their owner tag is withheld
    in_range = EvidenceRecord.select().where(
        (EvidenceRecord.employee == employee)
        & EvidenceRecord.plant.in_(plant_ids)
        & (EvidenceRecord.seq >= first)
        & (EvidenceRecord.seq < end)
    )
    held = {r.seq for r in own}
    own = sorted([*own, *(r for r in in_range if r.seq not in held)], key=lambda r: r.seq)
    leaves, lines = [], []
    for r in (
        EvidenceRecord.select(EvidenceRecord.seq, EvidenceRecord.leaf, EvidenceRecord.data)
        .where(EvidenceRecord.seq < end)
        .order_by(EvidenceRecord.seq)
        .iterator()
    ):
        leaves.append(bytes(r.leaf))
        if r.seq >= first:  # version 2: each record's owner tag beside the hash of its bytes
            lines.append(undisclosed_line(bytes(r.data), leaves[-1]))
    tree = CompactRange()
    tree.extend(leaves[:first])
    proofs = inclusion_proofs(leaves, [r.seq for r in own])
    attempts = {
        a.id: a
        for a in ContactAttempt.select().where(
            ContactAttempt.id.in_([r.source_id for r in own if r.source_kind == "attempt"])
        )
    }
    for record in own:
        files[f"{base}/records/{record.seq}.json"] = bytes(record.data)
        files[f"{base}/records/{record.seq}.sig"] = bytes(record.sig)
        files[f"{base}/records/{record.seq}.proof.json"] = json.dumps(
            {"index": record.seq, "size": end, "hashes": [h.hex() for h in proofs[record.seq]]}
        ).encode()
        if record.type == "case_action":
            _documents(files, record)
        attempt = attempts.get(record.source_id) if record.source_kind == "attempt" else None
        if attempt is None:
            continue
        if attempt.request:
            files[f"{base}/requests/{record.seq}"] = bytes(attempt.request)
        for item in json.loads(attempt.attachments or "[]"):
            doc = NoticeDocument.get_or_none(NoticeDocument.pdf_sha256 == item["sha256"])
            if doc is not None:
                files[f"cloud/notices/{item['sha256']}.pdf"] = bytes(doc.pdf)
    files[f"{base}/system.jsonl"] = "".join(
        json.dumps({"seq": r.seq, "data": bytes(r.data).decode(), "sig": b64(bytes(r.sig))}) + "\n"
        for r in sorted(system, key=lambda r: r.seq)
    ).encode()
    covering = _covering(own + system, first, end)  # the first cosigned after each record: its time's bound
    files[f"{base}/checkpoints.jsonl"] = "".join(
        json.dumps({"size": c.size, "note": c.note + c.cosignature}) + "\n" for c in covering
    ).encode()
    files[f"{base}/leaves.txt"] = "".join(line + "\n" for line in lines).encode()
    plant = plant_ids[0] if len(plant_ids) == 1 or not period else own[0].plant
    files[f"{base}/log.json"] = json.dumps(
        {
            "log": ORIGIN,
            "kind": "cloud",
            "plant": plant,
            "appliance": APPLIANCE,
            "from_seq": first,
            "to_size": end,
            "compact": [h.hex() for h in tree.hashes],
            "witnessed_to": True,
        },
        indent=1,
    ).encode()
    name = f"{hashlib.sha256(key.kid.encode()).hexdigest()[:16]}.pem"
    files[f"keys/{name}"] = key.pem().encode()
    registry = {
        "log": ORIGIN,
        "kid": key.kid,
        "file": name,
        "valid_from_seq": 0,
        "valid_to_seq": None,
        "revoked_at": None,
    }
    entry = {
        "log": ORIGIN,
        "kind": "cloud",
        "plant": plant,
        "appliance": APPLIANCE,
        "from_seq": first,
        "to_size": end,
        "disclosed": len(own) + len(system),
        "key_records": len(keys),
    }
    return entry, [c.size for c in covering], registry


def _covering(records: list[EvidenceRecord], first: int, end: int) -> list[EvidenceCheckpoint]:
    """The checkpoints a reader needs: for each disclosed record in the range the first one covering it (the latest
    it can have been written: a tag key written at export comes after the records it lies beside), and the end."""
    sizes = [
        c.size
        for c in EvidenceCheckpoint.select(EvidenceCheckpoint.size)
        .where((EvidenceCheckpoint.size > first) & (EvidenceCheckpoint.size <= end))
        .order_by(EvidenceCheckpoint.size)
    ]
    wanted = {end}
    for record in records:
        index = bisect.bisect_right(sizes, record.seq)
        if record.seq >= first and index < len(sizes):
            wanted.add(sizes[index])
    return list(
        EvidenceCheckpoint.select().where(EvidenceCheckpoint.size.in_(sorted(wanted))).order_by(EvidenceCheckpoint.size)
    )


def _tag_key_record(employee: str, plant_ids: list[str]) -> EvidenceRecord | None:
    """The record that gave the employee their tag key in this log (their first, or a ``tagkey`` record: of the
    log's switch to version 2, or made at export for a worker without records); None if there is none yet."""
    query = (
        EvidenceRecord.select()
        .where((EvidenceRecord.employee == employee) & EvidenceRecord.plant.in_(plant_ids))
        .order_by(EvidenceRecord.seq)
    )
    for record in query.iterator():
        if b'"tagkey":"' in bytes(record.data):
            return record
    return None


def _late_tags(records: list[EvidenceRecord]) -> list[EvidenceRecord]:
    """The ``format`` and ``tagindex`` records of the log's switch to owner tags, when ``records`` reach back
    before it (they tag those records late); none otherwise."""
    switch = EvidenceRecord.get_or_none(EvidenceRecord.type == "format")
    if switch is None or not records or min(r.seq for r in records) > switch.seq:
        return []
    index = EvidenceRecord.select().where(EvidenceRecord.type == "tagindex").order_by(EvidenceRecord.seq)
    return [switch, *index]


_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


def _documents(files: dict[str, bytes], record: EvidenceRecord) -> None:
    """Add what a person's action names by hash, from its own case only (a hash typed into a note never brings
    in another worker's file): the notices kept for the case, then the files kept with it."""
    named = named_documents(json.loads(bytes(record.data)))
    if not named:
        return
    case_id = record.case_ref.removeprefix("case-")
    notices = NoticeDocument.select().where(
        NoticeDocument.pdf_sha256.in_(sorted(named)) & NoticeDocument.case_ref.in_((record.case_ref, case_id))
    )
    for notice in notices:
        files[f"cloud/notices/{notice.pdf_sha256}.pdf"] = bytes(notice.pdf)
        named.discard(notice.pdf_sha256)
    if not named or not case_id.isdigit():
        return
    for doc in CaseDocument.select().where(
        CaseDocument.sha256.in_(sorted(named)) & (CaseDocument.case_id == int(case_id))
    ):
        suffix = PurePosixPath(doc.name).suffix.lower()
        files[f"cloud/documents/{doc.sha256}{suffix if _SUFFIX.fullmatch(suffix) else ''}"] = bytes(doc.data)


CLAIMED = {"contact": "contacts", "receipt": "receipts", "case_action": "actions"}


def case_claim(files: dict[str, bytes], base: str | None, case_ref: str) -> tuple[dict[str, object], list[int]]:
    """The manifest's ``case`` of a case's bundle: every record of the case in the evidence log (contacts,
    receipts, people's actions, by seq), every notice its contacts attached or its people produced (by SHA-256,
    ``cloud/notices/``) and every other document its people's actions name (by SHA-256: uploads, reviewed
    drafts, ``cloud/documents/``), which ``punchproof verify`` then requires in the bundle. Also the case's
    records up to the exported range's end that ``base`` (the bundle's copy of the evidence log) lacks: an
    export must not leave any out."""
    end = json.loads(files[f"{base}/log.json"])["to_size"] if base else None
    listed: dict[str, list[int]] = {name: [] for name in CLAIMED.values()}
    notices: set[str] = set()
    documents: set[str] = set()
    left_out: list[int] = []
    query = EvidenceRecord.select().where(EvidenceRecord.case_ref == case_ref).order_by(EvidenceRecord.seq)
    for record in query:
        if end is not None and record.seq >= end:
            break  # logged after the export's checkpoint
        if base is None or f"{base}/records/{record.seq}.json" not in files:
            left_out.append(record.seq)
            continue
        listed[CLAIMED[record.type]].append(record.seq)
        if record.type == "contact":
            notices |= {item["sha256"] for item in json.loads(bytes(record.data))["attachments"]}
        for sha in named_documents(json.loads(bytes(record.data))):
            # a notice produced on the case is where notices are; anything else, found or not, is a document
            (notices if f"cloud/notices/{sha}.pdf" in files else documents).add(sha)
    claim = {"ref": case_ref, "log": ORIGIN, **listed, "notices": sorted(notices)}
    return {**claim, "documents": sorted(documents - notices)}, left_out
