"""Bundles of every kind the product makes, for the independent verifier's tests.

Each world is a real cloud database (SQLite) fed by an appliance log built as the appliance builds it
(``tests.harness.logs.LogBuilder``), cosigned by the cloud's ingest, entered in the witness log and, where a TSA
is given, stamped by a real OpenSSL TSA whose clock is the world's (faketime). The bundles are exported by
``cloud.evidence.export.export_bundle`` as ``punchproof cloud export-evidence`` does.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.log import EvidenceLog
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog
from cloud.ingest.verifier import BatchIngest
from cloud.store import open_db
from ledger import SigningKey, topics
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder
from tests.harness.tsa import OpenSslTsa

PLANT, NAME = "dongguan-1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
EMPLOYEE = "1001"
START = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)  # 07:50 in Dongguan, Monday 2 March


@dataclass
class World:
    """Two working days at a plant (``tests/cloud/test_evidence.py``'s world): 1001 and 1002 punch in and out on
    both days (1001 at 07:59 and at 17:30 on Monday, 16:30 on Tuesday); the appliance rotates its key at noon on
    Monday when ``rotated``; the witness log is stamped each evening and at each export when a TSA runs."""

    folder: Path
    rotated: bool
    tsa: OpenSslTsa | None
    clock: FrozenClock = field(init=False)
    witness: SigningKey = field(default_factory=SigningKey.generate)
    evidence: SigningKey = field(default_factory=SigningKey.generate)
    keys: list[SigningKey] = field(default_factory=list)

    def build(self) -> World:
        self.clock = FrozenClock(START)
        self.db = open_db(f"sqlite:///{self.folder}/cloud.sqlite3")
        key = SigningKey.generate()
        self.keys.append(key)
        registry.register(
            {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(),
             "timezone": "Asia/Shanghai"},
            self.clock,
        )  # fmt: skip
        ingest = BatchIngest(self.clock, self.witness, "test-cloud/witness")
        log = LogBuilder(key, LOG, self.clock)
        log.add("boot", unclean=False, sw="test")

        def send() -> None:
            ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
            assert ack.status == "ok", ack.reason
            log.acknowledged(ack.cosignature)

        for day in range(2):
            punches = {8: ("1002", 0), 600: ("1002", 1), 9: (EMPLOYEE, 0), 580 - 60 * day: (EMPLOYEE, 1)}
            for block in range(0, 660, 30):  # a sync every half hour
                log.minutes(30, {m - block: p for m, p in punches.items() if block <= m < block + 30})
                if self.rotated and day == 0 and block == 300:
                    self.keys.append(SigningKey.generate())
                    log.rotate(self.keys[-1])
                send()
            if self.tsa is not None:  # the evening's stamp, as the hourly stamps would
                self.tsa.signing_time = self.clock.now()
                stamps = self.witness_log()
                stamps.seal()
                assert stamps.stamp_latest("hourly")
            self.clock.advance(hours=13)  # switched off overnight
            log.add("boot", unclean=day == 0, sw="test")
        send()
        self.clock.advance(hours=6)  # Wednesday 13:50: the export's own stamp is more than a day after Tuesday 08:00
        self.log = log
        return self

    def witness_log(self) -> WitnessLog:
        stamper = TimestampClient(self.tsa.url, self.tsa.ca_pem) if self.tsa is not None else None
        return WitnessLog(self.witness, self.clock, stamper=stamper)

    def export(self, first: date, last: date, **kwargs: object) -> bytes:
        if self.tsa is not None:
            self.tsa.signing_time = self.clock.now()
            kwargs.setdefault("tsa_ca", self.tsa.ca_pem)
        return export_bundle(
            EMPLOYEE,
            first,
            last,
            witness=self.witness.verify_key,
            clock=self.clock,
            witness_log=self.witness_log(),
            evidence_log=EvidenceLog(self.evidence, self.witness, self.clock),
            evidence_key=self.evidence.verify_key,
            **kwargs,
        )

    def close(self) -> None:
        self.db.close()


MONDAY, TUESDAY = date(2026, 3, 2), date(2026, 3, 3)


def tsa_server(folder: Path) -> OpenSslTsa:
    return OpenSslTsa(folder, signing_time=START, cert_not_after=START + timedelta(days=30))


@dataclass
class SwitchedWorld:
    """A log begun by the software before owner tags (version 1) and switched by the new one (ledger/FORMAT.md,
    "Switching an existing log"), written by the appliance's own ``LogWriter`` on its own database and sent to the
    cloud in checkpointed batches; the appliance anchors its records to the cloud's cosignatures as its uplink
    does. Monday 07:50-09:50 in version 1 (1001 punches at 07:59, 1002 at 07:58); Tuesday the new software starts
    (``format``, ``tagkey``, ``tagindex``), then 1001 punches at 07:59 in version 2. The witness log is stamped each
    evening; the bundles are exported on Wednesday afternoon."""

    folder: Path
    tsa: OpenSslTsa
    witness: SigningKey = field(default_factory=SigningKey.generate)
    evidence: SigningKey = field(default_factory=SigningKey.generate)
    rotated: bool = False

    def build(self) -> SwitchedWorld:
        from appliance.capture.punchlog import Entry, LogWriter
        from appliance.store import Checkpoint, LogRecord
        from appliance.store import open_db as open_appliance_db
        from ledger import SignedRecord
        from ledger.messages import Batch

        self.clock = FrozenClock(START)
        self.db = open_db(f"sqlite:///{self.folder}/cloud.sqlite3")
        self.appliance_db = open_appliance_db(self.folder / "appliance.sqlite3")
        key = SigningKey.generate()
        registry.register(
            {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(),
             "timezone": "Asia/Shanghai"},
            self.clock,
        )  # fmt: skip
        ingest = BatchIngest(self.clock, self.witness)  # the product's witness name
        sent = 0

        def send(writer: LogWriter) -> None:
            nonlocal sent
            size = writer.checkpoint()
            signed = Checkpoint.get(Checkpoint.size == size).note
            rows = LogRecord.select().where(LogRecord.seq >= sent).order_by(LogRecord.seq)
            records = tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows)
            ack = ingest.handle(topics.batch(PLANT, NAME), Batch(LOG, sent, records, signed).encode()).ack
            assert ack.status == "ok", ack.reason
            sent = size
            line = ack.cosignature if ack.cosignature.endswith("\n") else ack.cosignature + "\n"
            writer.set_anchor(base64.b64encode(hashlib.sha256(line.encode()).digest()).decode())  # as the uplink

        def working_day(writer: LogWriter, version: int, punches: dict[int, str]) -> None:
            writer.append([Entry("boot", {"unclean": False, "sw": f"v{version}"}, version=version)])
            for minute in range(120):
                self.clock.advance(seconds=30)
                if minute in punches:
                    local = self.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
                    term = {"sn": "ZK-1", "name": "gate-1", "t": local.isoformat(timespec="seconds"),
                            "tz": "Asia/Shanghai", "state": 0, "verify": 1, "uid": 1, "wc": 0, "idx": minute,
                            "off_ms": 0, "raw": ""}  # fmt: skip
                    body = {"emp": punches[minute], "src": "zk", "term": term}
                    writer.append([Entry("punch", body, version=version)])
                self.clock.advance(seconds=30)
                writer.append([Entry("seal", {"why": "minute"}, version=version)])
                if minute % 30 == 29:
                    send(writer)
            self.tsa.signing_time = self.clock.now()
            stamps = self.witness_log()
            stamps.seal()
            assert stamps.stamp_latest("hourly")

        old = LogWriter(self.appliance_db, key, LOG, self.clock, boot_id="boot-1")
        old.start()
        working_day(old, 1, {8: "1002", 9: EMPLOYEE})
        self.clock.advance_to(START + timedelta(days=1))
        new = LogWriter(self.appliance_db, key, LOG, self.clock, boot_id="boot-2")
        new.start()  # the switch: format, tagkey, tagindex
        send(new)  # synced before anyone punches (see the report: else a Monday bundle cannot be exported)
        working_day(new, 2, {9: EMPLOYEE})
        self.clock.advance_to(START + timedelta(days=2, hours=6))  # Wednesday 13:50: over a day after the punches
        return self

    witness_log = World.witness_log
    export = World.export

    def close(self) -> None:
        self.appliance_db.close()
        self.db.close()
