"""Build an appliance's signed log the way the appliance does, and feed it to the cloud in checkpointed batches."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from zoneinfo import ZoneInfo

from ledger import GENESIS_PREV, SignedRecord, SigningKey, make_record, merkle, note
from ledger.messages import Batch
from ledger.ownertags import TagKeys, appliance_owner, new_key
from ledger.record import b64
from tests.harness.clock import FrozenClock

TZ = "Asia/Shanghai"


class LogBuilder:
    def __init__(self, key: SigningKey, origin: str, clock: FrozenClock) -> None:
        self.key, self.origin, self.clock = key, origin, clock
        self.records: list[SignedRecord] = []
        self.sent = 0
        self.anchor = ""
        self.next_key: SigningKey | None = None
        self.tag_keys = TagKeys(appliance_owner)  # owner tags, as the appliance's LogWriter gives them

    def acknowledged(self, cosignature: str) -> None:
        """Like the appliance: later records carry the hash of the latest cosignature."""
        self.anchor = base64.b64encode(hashlib.sha256(cosignature.encode()).digest()).decode()

    def add(self, type: str, **body: Any) -> SignedRecord:  # noqa: A002 - the record field's name
        seq, owner = len(self.records), appliance_owner(body)
        if owner is not None and owner not in self.tag_keys:  # a worker's first record gives the worker's key
            self.tag_keys.add(owner, new_key())
            body["tagkey"] = b64(self.tag_keys.key(owner))
        body["tag"] = self.tag_keys.tag(self.origin, seq, owner)
        record = make_record(
            key=self.key,
            log=self.origin,
            seq=len(self.records),
            type=type,
            prev=self.records[-1].leaf if self.records else GENESIS_PREV,
            t_wall_ms=int(self.clock.now().timestamp() * 1000),
            t_boot_us=self.clock.boot_ns() // 1000,
            boot_id="boot-1",
            clk={"sync": 1, "src": "test", "err_us": 1000},
            **({"anchor": self.anchor} if self.anchor else {}),
            **body,
        )
        self.records.append(record)
        return record

    def rotate(self, new_key: SigningKey) -> SignedRecord:
        """A keyrot record; like the appliance, the next checkpoint is the old key's, then the new key signs."""
        record = self.add("keyrot", reason="test", rotate_to=new_key)
        self.next_key = new_key
        return record

    def punch(self, employee: str, state: int = 0) -> SignedRecord:
        local = self.clock.now().astimezone(ZoneInfo(TZ)).replace(tzinfo=None)
        term = {
            "sn": "ZK-1",
            "name": "gate-1",
            "t": local.isoformat(timespec="seconds"),
            "tz": TZ,
            "state": state,
            "verify": 1,
            "uid": 1,
            "wc": 0,
            "idx": len(self.records),
            "off_ms": 0,
            "raw": "",
        }
        return self.add("punch", emp=employee, src="zk", term=term)

    def minutes(self, count: int, punches: dict[int, tuple[str, int]] | None = None) -> None:
        """``count`` minutes of appliance life: a seal each minute, and the punches given by minute."""
        for minute in range(count):
            self.clock.advance(seconds=30)
            if punches and minute in punches:
                self.punch(*punches[minute])
            self.clock.advance(seconds=30)
            self.add("seal", why="minute")

    def next_batch(self) -> Batch:
        """Everything not sent yet, ending at a checkpoint signed by the appliance."""
        size = len(self.records)
        checkpoint = note.Checkpoint(self.origin, size, merkle.root([r.leaf for r in self.records]))
        signed = note.render(checkpoint, [note.sign(checkpoint, self.key)])
        batch = Batch(self.origin, self.sent, tuple(self.records[self.sent :]), signed)
        self.sent = size
        if self.next_key is not None:
            self.key, self.next_key = self.next_key, None
        return batch
