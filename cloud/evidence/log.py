"""The cloud's own signed log: every contact attempt, every delivery receipt and every person's action on a case;
and every appliance key head office registered, accepted by rotation or revoked (``keyreg``, ``keyrevoke``).

It is a log in the shared record format (``ledger.record``; types ``contact``, ``receipt``, ``case_action``,
FORMAT.md), hash-chained and signed record by record with the cloud's *evidence key*, with a checkpoint
(C2SP signed note by the evidence key, cosigned by the witness key) after each batch. Those checkpoints enter
the cloud's witness log like any appliance's, so that an RFC 3161 stamp covers them too, and an evidence
bundle carries this log exactly as it carries an appliance's.

Why a key of its own (not the witness key): the witness key vouches for *other* logs' checkpoints and signs
acknowledgements and configurations on every ingest host; the evidence key states what the cloud itself did.
Kept apart, each can be rotated or revoked without touching the other, and a reader pins two keys for two
different claims. The key lives on the host that runs ``punchproof cloud escalate``.

Records are appended by ``catch_up``, run after every escalation tick (and before an export): it takes the
contact log's attempts and receipts, the timelines' entries made by people, the appliance keys and their
revocations that are not in the log yet,
oldest first, under one lock (SQLite's write lock, or the state row on PostgreSQL). A source row is logged
once: (kind, id) is unique.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import peewee as pw

from cloud.appliances.revocations import KeyRevocation
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.clock import Clock, to_ms
from cloud.config import CloudSettings
from cloud.escalation.models import AbsenceCase, CaseEntry
from cloud.ingest.verifier import WITNESS_NAME
from cloud.keyfile import load_or_generate
from cloud.store import Appliance, ApplianceKey, BaseModel, LogRecord, database
from ledger import GENESIS_PREV, Malformed, SigningKey, VerifyKey, make_record, note
from ledger.merkle import CompactRange
from ledger.ownertags import TagKeys, cloud_owner, late_tag_bodies
from ledger.ownertags import new_key as new_tag_key
from ledger.record import FORMAT_VERSION, TYPE_VERSIONS, b64, unb64

log = logging.getLogger(__name__)
ORIGIN = "punchproof-cloud/evidence/1"
BATCH = 1000


class EvidenceState(BaseModel):
    """The log's head: size, the last leaf (the next record's ``prev``) and the tree. The one row is the lock."""

    id = pw.IntegerField(primary_key=True)
    size = pw.BigIntegerField(default=0)
    leaf = pw.BlobField(null=True)
    compact = pw.TextField(default="[]")


class EvidenceRecord(BaseModel):
    seq = pw.BigIntegerField(primary_key=True)
    type = pw.CharField(max_length=16)
    source_kind = pw.CharField(max_length=16)  # attempt | receipt | entry
    source_id = pw.BigIntegerField()
    data = pw.BlobField()
    sig = pw.BlobField()
    leaf = pw.BlobField()
    t_wall_ms = pw.BigIntegerField(index=True)
    employee = pw.CharField(default="", index=True)  # the badge number, as exports name employees
    plant = pw.CharField(default="")
    case_ref = pw.CharField(default="", index=True)

    class Meta:
        indexes = ((("source_kind", "source_id"), True),)


class EvidenceTagKey(BaseModel):
    """Each worker's owner-tag key in this log (a badge number at a plant), also in the log itself: the worker's
    first record carries it (``tagkey``), or a ``tagkey`` record of the log's switch to version 2."""

    owner = pw.CharField(primary_key=True)  # "<plant>/<badge>", ``ledger.ownertags.cloud_owner``
    seq = pw.BigIntegerField()
    key = pw.BlobField()


class EvidenceCheckpoint(BaseModel):
    size = pw.BigIntegerField(primary_key=True)
    root = pw.BlobField()
    note = pw.TextField()  # signed by the evidence key
    cosignature = pw.TextField()  # the witness key's line
    cosigned_at = pw.BigIntegerField()  # Unix seconds
    created_ms = pw.BigIntegerField()


MODELS = (EvidenceState, EvidenceRecord, EvidenceCheckpoint, KeyRevocation, EvidenceTagKey)


class EvidenceKeyMissing(Exception):
    pass


def create_key(settings: CloudSettings) -> SigningKey:
    """The evidence key, made if there is none; its public half is written beside the witness key's."""
    key, made = load_or_generate(settings.evidence_key_path, settings.evidence_public_path)
    if made:
        log.info("generated the cloud evidence key %s", key.kid)
    return key


def load_key(settings: CloudSettings) -> SigningKey:
    try:
        return SigningKey.load(settings.evidence_key_path)
    except FileNotFoundError as err:
        raise EvidenceKeyMissing(
            f"the cloud's evidence key {settings.evidence_key_path} is missing: 'punchproof cloud escalate' "
            "(or 'cloud init') creates it"
        ) from err
    except Malformed as err:
        raise EvidenceKeyMissing(f"the cloud's evidence key is unusable: {err}") from err


@dataclass(frozen=True)
class Appended:
    size: int
    added: int


def _case_of(case_ref: str, cache: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(badge number, plant) of ``case-<id>``; ("", "") for a reference that is no case of ours."""
    if case_ref not in cache:
        found = ("", "")
        if case_ref.startswith("case-") and case_ref[5:].isdigit():
            case = AbsenceCase.get_or_none(AbsenceCase.id == int(case_ref[5:]))
            if case is not None:
                found = (case.user_id, case.plant_id)
        cache[case_ref] = found
    return cache[case_ref]


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


class EvidenceLog:
    def __init__(self, key: SigningKey, witness: SigningKey, clock: Clock, *, origin: str = ORIGIN) -> None:
        self._key = key
        self._witness = witness
        self._clock = clock
        self.origin = origin

    def sign_manifest(self, manifest: bytes, *, as_witness: bool = False) -> tuple[str, bytes]:
        """An evidence bundle's manifest.json signed with the evidence key (FORMAT.md, "The signed manifest"), or the
        witness key for a bundle without this log: the key's kid and the raw Ed25519 signature over those bytes."""
        key = self._witness if as_witness else self._key
        return key.verify_key.kid, key.sign(manifest)

    def catch_up(self, workers: Collection[tuple[str, str]] = ()) -> Appended:
        """Append what is not logged yet (attempts, then receipts, then people's actions) and checkpoint it. Each of
        ``workers`` (badge, plant) without a tag key in this log gets one, in a ``tagkey`` record: an export for a
        worker must disclose the key, so that a reader can check that none of the worker's records is withheld."""
        total = Appended(0, 0)
        while True:
            done = self._batch(workers)
            workers = ()
            total = Appended(done.size, total.added + done.added)
            if done.added < BATCH:
                return total

    def _pending(self, model: type[pw.Model], kind: str, where: Any = True) -> list[Any]:
        return list(
            model.select()
            .join(
                EvidenceRecord,
                pw.JOIN.LEFT_OUTER,
                on=((EvidenceRecord.source_kind == kind) & (EvidenceRecord.source_id == model.id)),
            )
            .where(EvidenceRecord.seq.is_null() & where)
            .order_by(model.id)
            .limit(BATCH)
        )

    def _batch(self, workers: Collection[tuple[str, str]] = ()) -> Appended:
        db = database.obj
        sqlite = isinstance(db, pw.SqliteDatabase)
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():
            EvidenceState.insert(id=1).on_conflict_ignore().execute()
            query = EvidenceState.select().where(EvidenceState.id == 1)
            state = (query if sqlite else query.for_update()).get()
            now = to_ms(self._clock.now())
            tree = CompactRange(state.size, [base64.b64decode(h) for h in json.loads(state.compact)])
            prev = bytes(state.leaf) if state.leaf else GENESIS_PREV
            cases: dict[str, tuple[str, str]] = {}
            contact_seq = {
                r.source_id: r.seq
                for r in EvidenceRecord.select(EvidenceRecord.source_id, EvidenceRecord.seq).where(
                    EvidenceRecord.source_kind == "attempt"
                )
            }
            rows: list[dict[str, Any]] = []
            keys = TagKeys(cloud_owner)
            for row in EvidenceTagKey.select():
                keys.add(row.owner, bytes(row.key))
            new_keys: list[dict[str, Any]] = []

            def add(
                kind: str,
                source_id: int,
                type_: str,
                case_ref: str | None,
                body: dict[str, Any],
                *,
                version: int = FORMAT_VERSION,
                named: tuple[str, str] | None = None,
            ) -> None:
                """One record; ``case_ref`` None for a record about an appliance's key, which names no worker (or
                for a record of the log's switch to owner tags: ``named`` (badge, plant) for a ``tagkey`` record).
                A worker's first record in the log carries the worker's new tag key."""
                nonlocal prev
                if kind == "tags":  # the records of owner tags (a switch, a tag key) come from no row: keyed by seq
                    source_id = tree.size
                emp, plant = _case_of(case_ref, cases) if case_ref is not None else named or ("", body.get("plant", ""))
                seq = tree.size
                owner = {"emp": emp, "plant": plant, "case": case_ref} if case_ref is not None else {}
                if named is not None:
                    owner = {"emp": emp, "plant": plant}
                whose = cloud_owner({"emp": emp, "plant": plant}) if emp else None
                extra: dict[str, Any] = {"tv": 1} if type_ in TYPE_VERSIONS else {}
                if whose is not None and version >= 2:
                    if "tagkey" in body:
                        keys.add(whose, unb64(body["tagkey"], what="tagkey"))
                        new_keys.append({"owner": whose, "seq": seq, "key": unb64(body["tagkey"], what="tagkey")})
                    elif whose not in keys:
                        given = new_tag_key()
                        keys.add(whose, given)
                        new_keys.append({"owner": whose, "seq": seq, "key": given})
                        extra["tagkey"] = b64(given)
                if version >= 2:
                    extra["tag"] = keys.tag(self.origin, seq, whose)
                record = make_record(
                    key=self._key,
                    log=self.origin,
                    seq=seq,
                    type=type_,
                    prev=prev,
                    t_wall_ms=now,
                    version=version,
                    **extra,
                    **owner,
                    **body,
                )
                tree.append(record.leaf)
                prev = record.leaf
                if kind == "attempt":
                    contact_seq[source_id] = seq
                rows.append(
                    {
                        "seq": seq,
                        "type": type_,
                        "source_kind": kind,
                        "source_id": source_id,
                        "data": record.data,
                        "sig": record.sig,
                        "leaf": record.leaf,
                        "t_wall_ms": now,
                        "employee": emp,
                        "plant": plant,
                        "case_ref": case_ref or "",
                    }
                )

            if state.size and _version(state.size - 1) < 2:  # a log from before owner tags: switch it first
                self._switch(add, state.size, keys)
            for k in self._pending(ApplianceKey, "key"):  # registrations first: they precede what the keys sign
                add("key", k.id, "keyreg", None, _registration(k))
            for r in self._pending(KeyRevocation, "revoke"):
                add("revoke", r.id, "keyrevoke", None, _revocation(r))

            for a in self._pending(ContactAttempt, "attempt"):
                add("attempt", a.id, "contact", a.case_ref, _contact(a))
            for r in self._pending(DeliveryReceipt, "receipt"):
                attempt = r.attempt if r.attempt_id else None
                add(
                    "receipt",
                    r.id,
                    "receipt",
                    attempt.case_ref if attempt else "",
                    {
                        "contact_seq": contact_seq.get(r.attempt_id, -1) if r.attempt_id else -1,
                        "provider": r.provider,
                        "provider_id": r.provider_message_id,
                        "status": r.status,
                        "detail": r.detail,
                        "provider_time": r.provider_time,
                        "raw": r.raw,
                        "received_ms": r.received_ms,
                    },
                )
            for e in self._pending(CaseEntry, "entry", CaseEntry.actor != "engine"):
                add(
                    "entry",
                    e.id,
                    "case_action",
                    f"case-{e.case_id}",
                    {
                        "entry": e.seq,
                        "entry_hash": e.hash,
                        "kind": e.kind,
                        "actor": e.actor,
                        "text": e.text_zh,
                        "data": e.data,
                        "at_ms": e.at_ms,
                    },
                )
            for emp, plant in workers:
                if cloud_owner({"emp": emp, "plant": plant}) not in keys:
                    add("tags", 0, "tagkey", None, {"tagkey": b64(new_tag_key())}, named=(emp, plant))
            if not rows:
                return Appended(state.size, 0)
            EvidenceRecord.insert_many(rows).execute()
            if new_keys:
                EvidenceTagKey.insert_many(new_keys).execute()
            checkpoint = note.Checkpoint(self.origin, tree.size, tree.root())
            cosigned_at = now // 1000
            EvidenceCheckpoint.create(
                size=tree.size,
                root=checkpoint.root,
                note=note.render(checkpoint, [note.sign(checkpoint, self._key)]),
                cosignature=note.cosign(checkpoint, self._witness, WITNESS_NAME, cosigned_at).line(),
                cosigned_at=cosigned_at,
                created_ms=now,
            )
            state.size, state.leaf = tree.size, prev
            state.compact = json.dumps([base64.b64encode(h).decode() for h in tree.hashes])
            state.save()
        log.info("evidence log: %d records added, size %d", len(rows), tree.size)
        return Appended(tree.size, len(rows))

    def _switch(self, add: Any, size: int, keys: TagKeys) -> None:
        """Switch a log written before owner tags to version 2 (FORMAT.md): a ``format`` record (version 1), a
        ``tagkey`` record for each worker its records name, and ``tagindex`` records giving each earlier record
        its owner's tag, computed now (the report says these were recorded late)."""
        owners: list[tuple[int, dict[str, Any]]] = []
        for r in EvidenceRecord.select(EvidenceRecord.seq, EvidenceRecord.employee, EvidenceRecord.plant).order_by(
            EvidenceRecord.seq
        ):
            owners.append((r.seq, {"emp": r.employee, "plant": r.plant} if r.employee else {}))
        owners.append((size, {}))  # the format record itself: nobody's
        add("tags", 0, "format", None, {"to": 2}, version=1)
        for _seq, fields in owners:
            whose = cloud_owner(fields) if fields else None
            if whose is not None and whose not in keys:
                add("tags", 0, "tagkey", None, {"tagkey": b64(new_tag_key())}, named=(fields["emp"], fields["plant"]))
        for body in late_tag_bodies(self.origin, owners, keys):
            add("tags", 0, "tagindex", None, body)


def _version(seq: int) -> int:
    return int(json.loads(bytes(EvidenceRecord.get_by_id(seq).data))["v"])


def _registration(k: ApplianceKey) -> dict[str, Any]:
    """A ``keyreg`` record: the appliance key's fingerprint (its kid) and raw key, and when head office took it —
    registered with the appliance, or accepted from a verified ``keyrot`` record (when that record arrived)."""
    appliance = k.appliance
    at_ms = appliance.registered_ms
    if k.valid_from_seq > 0:
        rotation = LogRecord.get_or_none((LogRecord.appliance == appliance) & (LogRecord.seq == k.valid_from_seq - 1))
        at_ms = rotation.received_ms if rotation is not None else at_ms
    return {
        "key_log": appliance.log_origin,
        "plant": appliance.plant_id,
        "appliance": appliance.name,
        "key_kid": k.kid,
        "public_key": b64(VerifyKey.from_pem(k.public_key).raw()),
        "valid_from_seq": k.valid_from_seq,
        "how": "rotation" if k.valid_from_seq > 0 else "registered",
        "at_ms": at_ms,
    }


def _revocation(r: KeyRevocation) -> dict[str, Any]:
    appliance = Appliance.get(Appliance.log_origin == r.key_log)
    return {
        "key_log": r.key_log,
        "plant": appliance.plant_id,
        "appliance": appliance.name,
        "key_kid": r.kid,
        "revoked_ms": r.revoked_ms,
        "since_seq": r.since_seq,
        "since": r.since,
        "by": r.operator,
    }


def _contact(a: ContactAttempt) -> dict[str, Any]:
    # an SMS's words as the phone showed it, when the provider's approved content is configured: signed here, so the
    # bundle proves what the employee read and not only which template and variables went out
    words = {"text": a.sent_text} if a.sent_text else {}
    return words | {
        "step": a.step_id,
        "channel": a.channel,
        "provider": a.provider,
        "recipient": a.recipient,
        "template": f"{a.template_id}@{a.template_version}",
        "subject": a.subject,
        "content_sha256": a.content_sha256,
        "attachments": json.loads(a.attachments or "[]"),
        "status": a.status,
        "reason": a.reason,
        "provider_id": a.provider_message_id,
        "request_sha256": _sha(bytes(a.request or b"")),
        "response_sha256": _sha(a.raw_response or ""),
        "operator": a.operator,
        "at_ms": a.at_ms,
        "attempt": a.id,
        "attempt_no": a.attempt_no,
    }
