"""Bundles of every kind the product makes, for the independent verifier's tests.

Each world is a real cloud database (SQLite) fed by an appliance log built as the appliance builds it
(``tests.harness.logs.LogBuilder``), cosigned by the cloud's ingest, entered in the witness log and, where a TSA
is given, stamped by a real OpenSSL TSA whose clock is the world's (faketime). The bundles are exported by
``cloud.evidence.export.export_bundle`` as ``punchproof cloud export-evidence`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

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
