"""The evidence report, for an arbitrator (issue #22, item 11): what the report says of the equipment, the software,
the clocks, the exporter and the gaps, said so that a reader is not misled.

The world is test_evidence's, changed where these statements need it: the appliance's clock says in every record
that it is not synchronised (±16 s, the kernel's bound), it signs its terminal's identity (model, serial, firmware)
as it does when it first reads it, the bundle's period starts a day after the log does (so the hours before the
first record of a day have no record before them in the bundle), and the appliance stops for an hour at noon
without restarting, so that no record tells why.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

import cloud
from cloud import witness as cloud_witness
from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.log import EvidenceLog
from cloud.evidence.report_html import report_html
from cloud.evidence.report_model import build_model
from cloud.evidence.witness_log import WitnessLog
from cloud.ingest.verifier import BatchIngest
from cloud.store import open_db
from ledger import SigningKey, make_record, topics
from ledger.evidence import verify_bundle
from ledger.record import GENESIS_PREV, b64
from tests.cloud.web.conftest import app, built, login  # noqa: F401  (fixtures: head office's pages)
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder
from tests.harness.wait import wait_until

PLANT, NAME = "dongguan-1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
EMPLOYEE = "1001"
START = datetime(2026, 2, 28, 23, 50, tzinfo=UTC)  # 07:50 on 1 March in Dongguan
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 3)  # the log began the day before
UNSYNCED = {"sync": 0, "src": "kernel", "err_us": 16_000_000}  # what adjtimex says of a clock never set
IDENTITY = {"name": "gate-1", "sn": "ZK-1", "model": "F18", "firmware": "Ver 6.60 Apr 28 2017", "src": "zk"}
CJK = re.compile(r"[\u4e00-\u9fff]")


class UnsyncedLog(LogBuilder):
    """The harness's log builder, with the appliance clock's state (``clk``) every record carries given here."""

    def __init__(self, *args: Any, clk: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clk = clk

    def add(self, type: str, **body: Any):  # noqa: A002 - the record field's name
        seq, owner = len(self.records), self.owner(body)
        body["tag"] = self.tag_keys.tag(self.origin, seq, owner)
        record = make_record(
            key=self.key,
            log=self.origin,
            seq=seq,
            type=type,
            prev=self.records[-1].leaf if self.records else GENESIS_PREV,
            t_wall_ms=int(self.clock.now().timestamp() * 1000),
            t_boot_us=self.clock.boot_ns() // 1000,
            boot_id="boot-1",
            clk=self.clk,
            **({"anchor": self.anchor} if self.anchor else {}),
            **body,
        )
        self.records.append(record)
        return record

    def owner(self, body: dict[str, Any]) -> str | None:
        from ledger.ownertags import appliance_owner, new_key

        owner = appliance_owner(body)
        if owner is not None and owner not in self.tag_keys:
            self.tag_keys.add(owner, new_key())
            body["tagkey"] = b64(self.tag_keys.key(owner))
        return owner


@pytest.fixture
def world(tmp_path):
    """Three days of an appliance whose clock never synchronised: the 1st (before the period) without 1001; the
    2nd with 1001's two punches and an hour at noon with no record and no restart; the 3rd without 1001, after a
    restart that followed an unclean shutdown. Switched off every night."""
    clock = FrozenClock(START)
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key, witness = SigningKey.generate(), SigningKey.generate()
    registry.register(
        {
            "plant": PLANT,
            "appliance": NAME,
            "log": LOG,
            "public_key": key.verify_key.pem(),
            "timezone": "Asia/Shanghai",
        },
        clock,
    )
    ingest = BatchIngest(clock, witness, "test-cloud/witness")
    log = UnsyncedLog(key, LOG, clock, clk=UNSYNCED)
    log.add("boot", unclean=False, sw="punchproof 0.9.1")
    first_seen = int(clock.now().timestamp() * 1000)

    def send():
        ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
        assert ack.status == "ok", ack.reason
        log.acknowledged(ack.cosignature)

    for day in range(3):
        log.add("incident", kind="terminal_identity", term={**IDENTITY, "first_seen_ms": first_seen}, change="")
        punches = {8: ("1002", 0), 600: ("1002", 1)} | ({9: (EMPLOYEE, 0), 580: (EMPLOYEE, 1)} if day == 1 else {})
        for block in range(0, 660, 30):
            log.minutes(30, {m - block: p for m, p in punches.items() if block <= m < block + 30})
            if day == 1 and block == 240:  # 11:50: nothing recorded for an hour, and no restart after it
                clock.advance(hours=1)
            send()
        clock.advance(hours=13)
        log.add("boot", unclean=day == 1, sw="punchproof 0.9.2" if day == 1 else "punchproof 0.9.1")
    send()
    yield {"clock": clock, "witness": witness, "evidence": SigningKey.generate()}
    db.close()


def export(world, first: date = FIRST, last: date = LAST) -> dict[str, bytes]:
    bundle = export_bundle(
        EMPLOYEE,
        first,
        last,
        witness=world["witness"].verify_key,
        clock=world["clock"],
        witness_log=WitnessLog(world["witness"], world["clock"]),
        evidence_log=EvidenceLog(world["evidence"], world["witness"], world["clock"]),
        evidence_key=world["evidence"].verify_key,
    )
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def text_of(html: bytes | str) -> str:
    from html import unescape

    data = html.decode() if isinstance(html, bytes) else html
    return re.sub(r"\s+", "", unescape(re.sub(r"<[^>]+>", "", data)))


def pdf_of(data: bytes) -> str:
    return "".join(re.sub(r"\s+", "", page.extract_text()) for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def bundle(world):
    files = export(world)
    return files, text_of(files["report.html"]), pdf_of(files["report.pdf"])


def test_the_terminal_that_recorded_the_punches_is_named_by_model_serial_and_firmware(bundle):
    """Which terminal recorded the employee's punches, as the appliance signed it when it read the terminal, and
    which appliance software ran in the period (its boot records' sw)."""
    _files, html, pdf = bundle
    for text in (html, pdf):
        assert "期间内记录的考勤机" in text
        row = text[text.index("gate-1（pi-01）") :]
        assert row.index("F18") < row.index("ZK-1") < row.index("Ver6.60Apr282017"), "model, serial, firmware"
        assert "2026-03-0107:50" in row, "first read by the appliance, the day before the period"
        assert "punchproof0.9.1（启动于2026-03-0207:50" in text and "punchproof0.9.2（启动于2026-03-0308:50" in text


def test_an_absence_names_the_terminals_that_were_recording(world):
    """On 03-03 the employee never punched: the absence rests on the terminals that were recording that day, so the
    report names them from the appliance's signed identity, though no punch of the employee names them."""
    files = export(world, LAST, LAST)
    for text in (text_of(files["report.html"]), pdf_of(files["report.pdf"])):
        assert "本人打卡记录共0条" in text, "the employee has no punch in the period"
        assert "期间内记录的考勤机" in text
        row = text[text.index("gate-1（pi-01）") :]
        assert row.index("F18") < row.index("ZK-1") < row.index("Ver6.60Apr282017")


def test_the_exporting_software_is_named_with_a_hash_an_expert_can_recompute(world):
    """The version and a SHA-256 over the cloud and ledger packages' .py files, by the recipe the report gives (run
    before and after the export: the files of a working tree may change meanwhile)."""
    recipe = "find cloud ledger -name '*.py' | LC_ALL=C sort | xargs sha256sum | sha256sum"

    def recomputed() -> str:
        run = subprocess.run(
            recipe, shell=True, cwd=Path(cloud.__file__).parent.parent, capture_output=True, text=True, check=True
        )
        return run.stdout.split()[0]

    before = recomputed()
    files = export(world)
    after = recomputed()
    for text in (text_of(files["report.html"]), pdf_of(files["report.pdf"])):
        said = re.search(r"punchproof0\.1\.0；源代码SHA-256([0-9a-f]{64})", text)
        assert said is not None and said[1] in (before, after)
        assert re.sub(r"\s+", "", recipe) in text, "the recipe, as an expert would type it"


def test_the_appliance_clock_is_said_unsynchronised_as_every_record_says(bundle):
    """Every record says the appliance clock was not synchronised (±16 s): the report never says the clocks agree."""
    _files, html, pdf = bundle
    for text in (html, pdf):
        assert "时钟一致" not in text
        assert text.count("设备时钟未与标准时间同步，所报误差上限±16秒") == 2, "each punch"
        days = re.findall(r"设备时钟：该日(\d+)条记录均载明未与标准时间同步（所报误差上限±16秒）", text)
        assert len(days) == 2 and all(int(n) > 600 for n in days), "each day, from all its records"


def test_who_exported_the_bundle_and_when(world, bundle):
    files, html, pdf = bundle
    assert "生成时间2026-03-0408:50:00（北京时间）" in html and "生成时间2026-03-0408:50:00（北京时间）" in pdf
    assert "导出人未记录导出人" in html and "导出人未记录导出人" in pdf
    manifest = json.loads(files["manifest.json"]) | {"exported_by": {"name": "李娜", "login": "hr-li"}}
    report = verify_bundle(zipped(files), witness_key=world["witness"].verify_key)
    shown = text_of(report_html(build_model(manifest, report, files)))
    assert "导出人李娜（登录名hr-li）" in shown and "未记录导出人" not in shown


def test_a_bundle_exported_from_the_pages_names_the_logged_in_user(app, login):  # noqa: F811
    """The 证据导出 page's export (its own process, cloud.workers.export_job) names who started it in the signed
    manifest, and the report says it under 导出人; the CLI's ``--by`` (default: the OS user) likewise."""
    cloud_witness.create(app.config["SETTINGS"])
    staff = login("staff")
    response = staff.post(
        "/evidence/export", {"employee": "2001", "plant": "p1", "first": "2025-03-01", "last": "2025-03-18"}
    )
    job, status = response.headers["Location"], {}

    def finished() -> bool:
        status.update(staff.get(job + ".json").get_json())
        return bool(status["done"])

    wait_until(finished, timeout=120, message="the export process to finish")
    assert status["result"]["ok"], status
    with zipfile.ZipFile(io.BytesIO(staff.get(job + "/bundle.zip").data)) as archive:
        manifest, html = json.loads(archive.read("manifest.json")), text_of(archive.read("report.html"))
    assert manifest["exported_by"] == "staff"
    assert "导出人staff" in html and "未记录导出人" not in html


def test_the_employers_own_server_is_not_called_a_witness(bundle):
    """The cloud that cosigns is the employer's: 公司服务器会签（非第三方）; 第三方 is said only of the TSA."""
    _files, html, pdf = bundle
    for text in (html, pdf):
        assert "见证" not in text
        assert "公司服务器会签密钥（非第三方）" in text
        for found in re.finditer("第三方", text):
            around = text[max(0, found.start() - 40) : found.end() + 40]
            assert "时间戳" in around or "非第三方" in around, around


def test_check_details_are_in_chinese_and_never_python(world, bundle):
    files, html, _pdf = bundle
    report = verify_bundle(zipped(files), witness_key=world["witness"].verify_key)
    manifest = json.loads(files["manifest.json"])
    model = build_model(manifest, report, files)
    assert model.checks and all(CJK.search(c.detail) for c in model.checks), [c.detail for c in model.checks]
    assert "1330个叶哈希，范围内共1330条记录" in html
    # a file changed after export, and not a ZIP at all: the verifier says each Chinese first, the report shows its
    # Chinese unchanged and its English beside it, never Python's text
    tampered = verify_bundle(zipped({**files, "report.pdf": files["report.pdf"] + b"x"}))
    broken = verify_bundle(b"not a bundle")
    for result in (tampered, broken):
        said = next(c.detail for c in result.checks if not c.ok)
        zh, sep, en = said.partition(" / ")
        assert CJK.search(zh) and sep, said
        shown = report_html(build_model(manifest, result, files))
        assert zh in shown and en.replace("'", "&#39;") in shown
        for python in ("File is not a zip file", "[&#39;", "[]", "Error", "Traceback"):
            assert python not in shown, python
    assert "以下文件被改动或未列入 SHA256SUMS：report.pdf" in report_html(build_model(manifest, tampered, files))


def test_the_counts_add_up(bundle):
    files, html, pdf = bundle
    for text in (html, pdf):
        days = re.search(
            r"期间共(\d+)天=有打卡(\d+)天\+无打卡记录(\d+)天\+设备无记录(\d+)天\+未覆盖(\d+)天；本人打卡记录共(\d+)条",
            text,
        )
        assert days is not None
        total, *parts, punches = map(int, days.groups())
        assert total == sum(parts) == 2 and parts[:2] == [1, 1] and punches == 2
        logged = re.search(
            r"第(\d+)至(\d+)条，共(\d+)条=披露(\d+)条（本人的记录(\d+)条、设备的系统记录(\d+)条）\+未披露(\d+)条", text
        )
        assert logged is not None
        first, last, size, shown, own, system, hidden = map(int, logged.groups())
        assert size == last - first + 1 == shown + hidden and shown == own + system
        assert size == len(files["logs/0/leaves.txt"].splitlines())
        assert own == sum(1 for n in files if n.startswith("logs/0/records/") and n.endswith(".sig"))
        assert system == len(files["logs/0/system.jsonl"].splitlines())


def test_gaps_are_shown_from_midnight_and_no_cause_is_asserted_that_no_record_states(bundle):
    """The 2nd's records begin at 07:50 (the bundle holds nothing before): that is a gap, and the boot record there
    says the run before it ended cleanly. The hour at noon has no restart after it: its cause is unknown. The night
    before the 3rd ended uncleanly, as the 3rd's boot record says."""
    _files, html, pdf = bundle
    for text in (html, pdf):
        assert "00:00至07:50设备无任何记录：设备正常关机后重新启动（启动记录第" in text
        noon = "2026-03-0212:20:00至2026-03-0213:21:00设备无任何记录（61分钟）："
        assert noon + "该时段无记录（原因未知：可能断电、设备停止或网络中断）" in text
        assert "设备未正常关机（如断电）后重新启动（启动记录第" in text
        for asserted in ("设备关闭或断电", "设备离线或断电", "applianceofforpowercut"):
            assert asserted not in text


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def identities() -> list[dict[str, Any]]:
    from appliance.store import LogRecord
    from ledger.record import parse

    rows = LogRecord.select().where(LogRecord.type == "incident").order_by(LogRecord.seq)
    return [f for f in (parse(bytes(r.data)) for r in rows) if f["kind"] == "terminal_identity"]


def test_the_appliance_signs_a_zk_terminals_identity_when_first_read_when_it_changes_and_once_a_day(
    tmp_path, clock, zk_terminal, terminal_state
):
    """The real driver against the ZK emulator, as the daemon runs it: the first read signs the terminal's model,
    serial and firmware (read from the terminal); further reads that day sign nothing; a firmware upgrade is signed
    with what it was before; the next day's first read states it again; a restart does not repeat it. The report
    shows what the appliance signed."""
    from appliance.capture.ingest import PunchIngest
    from appliance.capture.poller import TerminalWorker
    from appliance.capture.provenance import Provenance
    from appliance.capture.punchlog import LogWriter
    from appliance.store import open_db as open_appliance_db
    from cloud.evidence.report_facts import devices
    from firmware_bridge.zk.driver import ZKTerminal
    from tests.conftest import PLANT_TZ

    db = open_appliance_db(tmp_path / "appliance.sqlite3")
    writer = LogWriter(db, SigningKey.generate(), "punchproof/test/pi-01/1", clock, boot_id="boot-1")
    writer.start()

    def worker() -> TerminalWorker:
        ingest = PunchIngest(writer, clock, "Asia/Shanghai")
        terminal = ZKTerminal(*zk_terminal.address, tz=PLANT_TZ, timeout=2)
        provenance = Provenance(writer, clock, PLANT_TZ)
        return TerminalWorker("gate-1", terminal, ingest, clock, interval_s=1, tz=PLANT_TZ, provenance=provenance)

    gate = worker()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 59))
    assert gate.poll_once() == 1
    (first,) = identities()
    assert first["change"] == "new" and "before" not in first
    assert first["term"] == {
        "name": "gate-1",
        "src": "zk",
        "sn": "TEST-ZK-01",
        "model": "F19",
        "firmware": "Ver 6.60 Apr 28 2015",
        "platform": "ZEM560_TFT",
        "first_seen_ms": first["t_wall_ms"],
    }
    connections = zk_terminal.connections
    assert [gate.poll_once() for _ in range(3)] == [0, 0, 0] and len(identities()) == 1
    assert zk_terminal.connections == connections + 3, "the terminal is asked what it is only when a statement is due"

    terminal_state.firmware = "Ver 6.70 Jan 10 2026"  # upgraded at the terminal
    clock.advance(minutes=30)
    gate.poll_once()
    assert len(identities()) == 1, "the terminal is asked again after an hour, not at every read"
    clock.advance(minutes=31)
    gate.poll_once()
    changed = identities()[-1]
    assert changed["change"] == "changed" and changed["term"]["firmware"] == "Ver 6.70 Jan 10 2026"
    assert changed["before"] == {"sn": "TEST-ZK-01", "model": "F19", "firmware": "Ver 6.60 Apr 28 2015"}
    assert changed["term"]["first_seen_ms"] == first["t_wall_ms"], "the same terminal: first read when it was"

    restarted = worker()  # the daemon restarted: the log says today's statement is made
    restarted.poll_once()
    assert len(identities()) == 2
    clock.advance(hours=17)  # 01:01 the next day
    restarted.poll_once()
    assert [f["change"] for f in identities()] == ["new", "changed", "restated"]

    terminal_state.serial = "TEST-ZK-02"  # another terminal put in its place, the same day
    restarted.poll_once()
    swapped = identities()[-1]
    assert swapped["change"] == "changed" and swapped["term"]["sn"] == "TEST-ZK-02"
    assert swapped["term"]["first_seen_ms"] == swapped["t_wall_ms"], "a new serial is first read now"

    from appliance.store import LogRecord
    from ledger.record import parse

    punch = parse(bytes(LogRecord.get(LogRecord.type == "punch").data))
    system = {"punchproof/test/pi-01/1": identities()}
    manifest = {"logs": [{"log": "punchproof/test/pi-01/1", "plant": "test", "appliance": "pi-01"}]}
    item = {"log": "punchproof/test/pi-01/1", "fields": punch}
    (shown,) = [
        line for line in devices(manifest, [item], system, {}, PLANT_TZ) if line.firmware.startswith("Ver 6.60")
    ]
    assert (shown.model, shown.serial, shown.first_seen) == ("F19", "TEST-ZK-01", "2026-03-02 08:00")
    db.close()


def test_a_serial_reader_is_stated_by_its_type_and_port_at_its_first_read_of_the_day(tmp_path, clock):
    """The real daemon with an emulated card reader; its readers given the provenance the daemon is to pass them
    (set here until appliance/runtime/daemon.py passes it)."""
    from appliance.capture.provenance import Provenance
    from firmware_bridge.readers.emulators import CardReaderEmulator
    from firmware_bridge.readers.endpoints import SocketEndpoint
    from tests.appliance.test_push import Appliance, appliance_settings
    from tests.harness.wait import wait_until

    port = SocketEndpoint().plug()
    (tmp_path / "cards.csv").write_text("卡号,工号\n0012345678,E001\n", encoding="utf-8-sig")
    terminals = [{"name": "canteen-card", "kind": "card", "url": port.url, "cards_file": "cards.csv"}]
    plant = Appliance(appliance_settings(tmp_path, terminals), clock).start()
    try:
        daemon = plant.daemon
        daemon.readers._provenance = Provenance(daemon.writer, clock, daemon.settings.plant.tz)
        reader = daemon.readers.readers["canteen-card"]
        wait_until(lambda: reader.loop.opens, message="the appliance to open the card reader's port")
        card = CardReaderEmulator(port)
        card.present_decimal(12345678)
        wait_until(lambda: plant.records("punch"), message="the read stored")
        (stated,) = [f for f in plant.records("incident") if f["kind"] == "terminal_identity"]
        assert stated["change"] == "new" and stated["term"]["name"] == "canteen-card"
        assert stated["term"]["src"] == "card" and stated["term"]["port"] == port.url
        assert stated["term"]["model"].startswith("serial card reader") and stated["term"]["firmware"] == ""
        assert stated["seq"] < plant.records("punch")[0]["seq"], "stated before the read it came with"
    finally:
        plant.stop()
        port.unplug()


def test_a_push_terminal_is_stated_by_its_checked_serial_once_it_calls(tmp_path, clock):
    """The real daemon and an emulated ADMS terminal; its push receiver given the provenance the daemon is to pass
    (set here until appliance/runtime/daemon.py passes it). Not before the terminal calls; once a day after."""
    from appliance.capture.provenance import Provenance
    from punchproof.broker import free_port
    from tests.appliance.test_push import SN, Appliance, appliance_settings, terminal

    terminals = [{"name": "east-gate", "kind": "adms", "serial": SN}]
    settings = appliance_settings(tmp_path, terminals, push={"host": "127.0.0.1", "port": free_port()})
    plant = Appliance(settings, clock).start()
    try:
        push = plant.push
        push._provenance = Provenance(plant.daemon.writer, clock, settings.plant.tz)
        push.tick()
        assert not [f for f in plant.records("incident") if f["kind"] == "terminal_identity"], "it has not called"
        assert terminal(plant).run_once()
        push.tick()
        push.tick()
        (stated,) = [f for f in plant.records("incident") if f["kind"] == "terminal_identity"]
        assert stated["term"] | {"first_seen_ms": 0} == {
            "name": "east-gate",
            "src": "adms",
            "sn": SN,
            "model": "",
            "firmware": "",
            "first_seen_ms": 0,
        }
    finally:
        plant.stop()
