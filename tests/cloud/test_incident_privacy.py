"""Other workers' privacy in an employee's evidence bundle (issue #22.8; threat model 4.8).

A terminal's record that is not a punch is kept as a signed incident with its raw bytes, and those bytes say whose
badge and when: a bundle for 1001 used to carry badge 1002 at 02:39:23. Now the appliance names the worker such an
incident is of (its ``emp``, so it carries that worker's owner tag), the export discloses it only in that worker's
bundles, an incident holding a terminal's bytes of no known worker (a log from before this) is a leaf in every
bundle, and the incidents of nobody's (a clock alarm) are still disclosed to all. ``punchproof verify`` passes such
a bundle, counts what it was not shown, and fails one that withholds the employee's own incident.

Real parts end to end: a ZK terminal emulator read by the appliance's poller and ``PunchIngest``, its ``LogWriter``
on a real SQLite file, the signed records shipped to the cloud's ``BatchIngest`` (cosigned), exported and verified
as ``punchproof verify`` does.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from datetime import UTC, date, datetime

import pytest

from appliance.capture.ingest import PunchIngest
from appliance.capture.poller import TerminalWorker
from appliance.capture.punchlog import Entry, LogWriter
from appliance.store import Checkpoint
from appliance.store import LogRecord as ApplianceRecord
from appliance.store import open_db as open_appliance_db
from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.witness_log import WitnessLog
from cloud.ingest.verifier import BatchIngest
from cloud.store import open_db
from firmware_bridge.adms.attlog import parse_attlog
from firmware_bridge.adms.receiver import AttlogCursor, PushBatch
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.records import encode_attendance, encode_attendance_40
from ledger import SignedRecord, SigningKey, topics
from ledger.evidence import verify_bundle
from ledger.messages import Batch
from ledger.record import owner_tag, parse, unb64
from tests.cloud.test_punch_stamps import repack
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.raw_codes import raw_codes, visible_text

PLANT, NAME = "dongguan-1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
DAY = date(2026, 3, 2)


def impossible(record: bytes, offset: int) -> bytes:
    """A terminal record whose time is 30 February: not a punch, kept as an incident with its bytes."""
    bad = bytearray(record)
    seconds = int.from_bytes(bad[offset : offset + 4], "little") + 2 * 86400  # 28 February + 2 days
    bad[offset : offset + 4] = seconds.to_bytes(4, "little")
    return bytes(bad)


# 1002 at 02:39:23 and 1001 at 07:58:00, both on "30 February", as 40-byte records (time at byte 27)
BAD_1002 = impossible(encode_attendance_40(2, "1002", datetime(2026, 2, 28, 2, 39, 23), 1, 0), 27)
BAD_1001 = impossible(encode_attendance_40(1, "1001", datetime(2026, 2, 28, 7, 58), 1, 0), 27)
# an incident written before incidents named their worker: 1003's 16-byte record (time at byte 4), no ``emp``
OLD_1003 = impossible(encode_attendance(16, 0, "1003", datetime(2026, 2, 28, 3, 14, 15), 1, 0), 4)


@pytest.fixture
def plant(tmp_path, terminal_state, zk_terminal):
    """A morning at a plant: the appliance reads its terminal (1001 and 1002 punch, each also left a record that
    cannot be a punch), records a clock alarm and an old incident of 1003's, seals each minute, and syncs; the
    cloud holds the log, cosigned."""
    clock = FrozenClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))  # 08:00 in Dongguan
    cloud_db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    appliance_db = open_appliance_db(tmp_path / "appliance.sqlite3")
    key, witness = SigningKey.generate(), SigningKey.generate()
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(), "timezone": PLANT_TZ.key},
        clock,
    )
    writer = LogWriter(appliance_db, key, LOG, clock, boot_id="boot-1")
    writer.start()
    ingest = PunchIngest(writer, clock, PLANT_TZ.key)
    worker = TerminalWorker("gate-1", ZKTerminal(*zk_terminal.address, tz=PLANT_TZ), ingest, clock, interval_s=1)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    terminal_state.store_raw(BAD_1002)
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 1))
    terminal_state.store_raw(BAD_1001)
    clock.advance(minutes=1)
    assert worker.poll_once() == 2
    writer.append(  # what the appliance wrote before this change: a terminal's bytes, no worker named
        [
            Entry(
                "incident",
                {
                    "kind": "bad_terminal_record",
                    "reason": "impossible date",
                    "term": {"name": "gate-2", "sn": "ZK-OLD", "idx": 7, "raw": OLD_1003.hex()},
                },
            ),
            Entry(
                "incident",
                {
                    "kind": "clock_alarm",
                    "term": {"name": "gate-2", "sn": "ZK-OLD"},
                    "off_ms": 95_000,
                    "threshold_ms": 60_000,
                },
            ),
            Entry(
                "incident",
                {"kind": "terminal_identity", "term": {"name": "gate-2", "sn": "ZK-OLD", "model": "F18", "src": "zk"}},
            ),
        ]
    )
    for _ in range(5):
        clock.advance(minutes=1)
        writer.append([Entry("seal", {"why": "minute"})])
    size = writer.checkpoint()
    with appliance_db.connection_context():
        rows = list(ApplianceRecord.select().order_by(ApplianceRecord.seq))
        checkpoint = Checkpoint.get_by_id(size).note
    records = tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows)
    batch = Batch(LOG, 0, records, checkpoint)
    ack = BatchIngest(clock, witness, "test-cloud/witness").handle(topics.batch(PLANT, NAME), batch.encode()).ack
    assert ack.status == "ok", ack.reason
    clock.advance(minutes=1)
    yield {"clock": clock, "witness": witness, "records": [parse(r.data) for r in records]}
    appliance_db.close()
    cloud_db.close()


def export(plant, employee: str) -> bytes:
    return export_bundle(
        employee,
        DAY,
        DAY,
        witness=plant["witness"].verify_key,
        clock=plant["clock"],
        plant_id=PLANT,
        witness_log=WitnessLog(plant["witness"], plant["clock"]),
    )


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def readable(name: str, data: bytes) -> bytes:
    """A file as a reader could search it: a PDF with its compressed streams inflated too."""
    if not name.endswith(".pdf"):
        return data
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            streams.append(match.group(1))
    return data + b"".join(streams)


def incident_of(plant, raw: bytes) -> dict:
    return next(f for f in plant["records"] if f["type"] == "incident" and f.get("term", {}).get("raw") == raw.hex())


def test_the_appliance_names_the_worker_whose_record_it_kept_and_tags_it_theirs(plant):
    """The incident of 1002's record carries ``emp`` 1002 and 1002's owner tag (the key of 1002's first record)."""
    incident = incident_of(plant, BAD_1002)
    assert incident["emp"] == "1002"
    first = next(f for f in plant["records"] if f.get("emp") == "1002")
    assert owner_tag(unb64(first["tagkey"], what="tagkey"), LOG, incident["seq"]) == unb64(incident["tag"], what="t")
    assert incident_of(plant, BAD_1001)["emp"] == "1001"
    assert "emp" not in incident_of(plant, OLD_1003)


def test_a_push_terminals_bad_line_names_its_pin(tmp_path):
    """The same for a push terminal's ATTLOG line that cannot be a punch: its PIN, plain or ``PIN=``; a line whose
    PIN is not a badge names no one."""
    clock = FrozenClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    db = open_appliance_db(tmp_path / "appliance.sqlite3")
    writer = LogWriter(db, SigningKey.generate(), LOG, clock, boot_id="boot-1")
    writer.start()
    lines = [
        b"1002\t0001-01-01 02:39:23\t0\t1\t0\t0\t0",
        b"PIN=1004\tDateTime=2026-02-30 08:00:00\tVerified=1\tStatus=0",
        b"10 01\t2026-03-02 07:58:00\t0\t1\t0\t0\t0",
        b"-5\t2026-03-02 07:58:00\t0\t1\t0\t0\t0",
    ]
    punches, rejected = parse_attlog(lines, serial="ADMS-1", tz=PLANT_TZ, encoding="utf-8")
    assert not punches and len(rejected) == 4
    batch = PushBatch("gate-9", "ADMS-1", (), tuple(rejected), AttlogCursor(None, "0" * 64), clock.now(), 0)
    PunchIngest(writer, clock, PLANT_TZ.key).accept_push(batch)
    with db.connection_context():
        incidents = [parse(bytes(r.data)) for r in ApplianceRecord.select().where(ApplianceRecord.type == "incident")]
    db.close()
    named = {bytes.fromhex(f["term"]["raw"]): f.get("emp") for f in incidents}
    assert named == dict(zip(lines, ["1002", "1004", None, None], strict=True))


def test_a_bundle_for_1001_shows_nothing_of_1002s_or_1003s_records(plant):
    files = unpack(export(plant, "1001"))
    secrets = {
        "1002's badge as a JSON value": b'"1002"',
        "1002's raw record in hex": BAD_1002.hex().encode(),
        "1002's raw record": BAD_1002,
        "1002's badge in a record's bytes (hex)": b"1002".hex().encode(),
        "1002's time": b"02:39:23",
        "1003's raw record in hex": OLD_1003.hex().encode(),
        "1003's time": b"03:14:15",
        "1003's badge as a JSON value": b'"1003"',
    }
    found = [
        f"{what} in {name}"
        for name, data in files.items()
        for what, secret in secrets.items()
        if secret in readable(name, data)
    ]
    assert not found, found
    manifest = json.loads(files["manifest.json"])
    assert manifest["logs"][0]["undisclosed_incidents"] == 2  # 1002's and the old one of 1003's: counted only
    system = [json.loads(json.loads(line)["data"]) for line in files["logs/0/system.jsonl"].decode().splitlines()]
    # nobody's: shown to all
    assert [f["kind"] for f in system if f["type"] == "incident"] == ["clock_alarm", "terminal_identity"]


def test_1001s_own_incident_is_disclosed_in_full_and_the_bundle_verifies(plant):
    bundle = export(plant, "1001")
    files = unpack(bundle)
    mine = incident_of(plant, BAD_1001)
    shown = json.loads(files[f"logs/0/records/{mine['seq']}.json"])
    assert shown == mine and bytes.fromhex(shown["term"]["raw"]) == BAD_1001
    assert f"logs/0/records/{mine['seq']}.proof.json" in files
    report = verify_bundle(bundle, witness_key=plant["witness"].verify_key)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.undisclosed_incidents == {LOG: 2}
    tags = next(c for c in report.checks if c.name.endswith("owner tags"))
    assert "本期间另有 2 条终端异常记录涉及其他员工或无法确定归属，未披露" in tags.detail
    assert any(d["seq"] == mine["seq"] and d["fields"]["type"] == "incident" for d in report.disclosed)
    # and 1002's bundle shows 1002's incident, not 1001's
    theirs = unpack(export(plant, "1002"))
    assert f"logs/0/records/{incident_of(plant, BAD_1002)['seq']}.json" in theirs
    assert not any(BAD_1001.hex().encode() in data for data in theirs.values())


def test_withholding_1001s_own_incident_fails_verify(plant):
    """The employer drops 1001's incident from 1001's bundle and signs the manifest again: its tag among the
    undisclosed leaves is 1001's, so verify fails as for a withheld punch."""
    files = unpack(export(plant, "1001"))
    seq = incident_of(plant, BAD_1001)["seq"]
    kept = {n: d for n, d in files.items() if not n.startswith(f"logs/0/records/{seq}.")}
    report = verify_bundle(repack(kept, plant["witness"]), witness_key=plant["witness"].verify_key)
    assert not report.ok
    failed = [c.detail for c in report.checks if not c.ok]
    assert any(f"第 {seq} 条记录属于该员工但未披露" in detail for detail in failed), failed


def test_the_report_names_1001s_incident_in_chinese_and_counts_the_undisclosed(plant):
    """report.html says 1001's own incident in words (终端异常, not the record type), counts the incidents it holds
    only as leaves, describes every file it carries (manual/, witness/log-heads.jsonl included), and its Chinese days,
    counts, events and file descriptions show no raw code (``tests.harness.raw_codes``; the bundle's file names are
    data)."""
    files = unpack(export(plant, "1001"))
    html = files["report.html"].decode()
    text = visible_text(html)
    seq = incident_of(plant, BAD_1001)["seq"]
    assert f"本人的终端异常记录（日志第 {seq} 条）" in text and "本人的incident记录" not in text
    counts = re.search(r'<td id="counts">(.*?)</td>', html, re.S)
    assert counts and "本期间另有 2 条终端异常记录涉及其他员工或无法确定归属，未披露" in counts[1]
    rows = re.findall(
        r"<tr><td><code[^>]*>([^<]+)</code></td><td class=\"hash\">[0-9a-f]{64}</td><td>([^<]*)</td>", html
    )
    about = dict(rows)
    assert {n for n in files if n.startswith("manual/")} <= set(about)
    assert all(about[n] == "MANUAL-CHECKS.md 手工核验所用的签名内容与签名" for n in about if n.startswith("manual/"))
    assert about["witness/log-heads.jsonl"] == "公司服务器会签日志各检查点所承诺的每份日志最新条目及包含证明"
    assert not [n for n, said in rows if not said], "a file without its description"
    # the bundle's file names as the report cites them, and the program its manual checks run, are data
    names = set(re.findall(r"[A-Za-z0-9]+", " ".join(files))) | {"OpenSSL"}
    shown = [
        html[html.index("<h2>每日考勤记录</h2>") : html.index("</table>", html.index("<h2>每日考勤记录</h2>"))],
        counts[1],
        html[html.index("<h2>记录缺口与异常</h2>") : html.index("<h2>如何独立核验</h2>")],
    ]
    found = raw_codes(visible_text("".join(shown)), names)
    assert not found, found
