"""The time each punch was fixed (issue #22, item 3): for every disclosed punch, the earliest third-party (RFC 3161)
time that covers it, shown in the report with its delay after the punch; a punch with none, or stamped later than
the policy allows (24 hours unless ``--max-stamp-delay`` says otherwise), is flagged.

One bundle is exported from a real cloud database with a real OpenSSL TSA whose clock follows the test's (faketime);
the tampered bundles are made from it the way the employer, who holds the database, could make them.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.log import EvidenceLog
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog, leaves
from cloud.ingest.verifier import BatchIngest
from cloud.store import WitnessCheckpoint, open_db
from ledger import SigningKey, topics
from ledger.evidence import MANIFEST, SUMS, bundle_id, sha256sums, verify_bundle
from ledger.merkle import inclusion_proofs
from ledger.witnesslog import note_digest
from tests.cloud.test_third_party_time import verify_cli
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder
from tests.harness.tsa import OpenSslTsa

PLANT, NAME = "dongguan-1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
EMPLOYEE = "1001"
TZ = ZoneInfo("Asia/Shanghai")


def at(day: int, hhmm: str) -> datetime:
    return datetime.combine(date(2026, 3, day), time.fromisoformat(hhmm), TZ).astimezone(UTC)


def build_world(tmp_path) -> dict:
    """Monday 2 March: 1001 punches in at 08:05; the cloud's witness log is stamped at 08:59 (hourly) and the
    appliance is switched off at 09:10. Tuesday: on again at 08:00, 1001 punches at 08:05, and the bundle for both
    days is exported at 10:00, its own stamp then. The TSA's clock is the test's (faketime). Returns the world,
    with the database still open (``world["db"]``)."""
    clock = FrozenClock(at(2, "07:59"))
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key, witness, evidence = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(), "timezone": str(TZ)},
        clock,
    )
    ingest = BatchIngest(clock, witness, "test-cloud/witness")
    log = LogBuilder(key, LOG, clock)
    tsa = OpenSslTsa(tmp_path / "tsa", signing_time=clock.now(), cert_not_after=clock.now() + timedelta(days=30))
    tsa.start()
    witness_log = WitnessLog(witness, clock, stamper=TimestampClient(tsa.url, tsa.ca_pem))

    def send() -> None:
        ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
        assert ack.status == "ok", ack.reason
        log.acknowledged(ack.cosignature)

    log.add("boot", unclean=False, sw="test")
    log.minutes(30, {6: (EMPLOYEE, 0)})  # 08:05:30
    send()
    log.minutes(30)
    send()
    tsa.signing_time = clock.now()
    witness_log.seal()
    assert witness_log.stamp_latest("hourly")  # 08:59: the hourly stamp covers Monday's punch
    log.minutes(10, {3: ("1002", 0)})
    send()
    clock.advance_to(at(3, "08:00"))
    log.add("boot", unclean=False, sw="test")
    log.minutes(30, {5: (EMPLOYEE, 0)})
    send()
    clock.advance_to(at(3, "10:00"))
    tsa.signing_time = clock.now()
    bundle = export_bundle(
        EMPLOYEE,
        date(2026, 3, 2),
        date(2026, 3, 3),
        witness=witness.verify_key,
        clock=clock,
        witness_log=witness_log,
        tsa_ca=tsa.ca_pem,
        evidence_log=EvidenceLog(evidence, witness, clock),
        evidence_key=evidence.verify_key,
    )
    latest = WitnessCheckpoint.select().order_by(WitnessCheckpoint.size.desc()).first()
    everything = list(leaves(latest.size))  # what the employer's database holds, for the forgeries below
    return {
        "db": db,
        "tsa": tsa,
        "witness": witness,
        "evidence": evidence,
        "bundle": bundle,
        "clock": clock,
        "witness_leaves": everything,
    }


_BUILT: list[dict] = []


def stamped_world(tmp_path_factory, config) -> dict:
    """The world, built once per test process: test_truncation reads the same bundle (an export costs seconds)."""
    if not _BUILT:
        made = build_world(tmp_path_factory.mktemp("punch-stamps"))
        _BUILT.append(made)

        def done() -> None:
            made["tsa"].stop()
            made["db"].close()

        config.add_cleanup(done)
    return _BUILT[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory, pytestconfig):
    return stamped_world(tmp_path_factory, pytestconfig)


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def resign(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    """What the employer, who holds the keys, can do after editing a bundle: list the files' new hashes in the
    manifest, sign it again (``key``: the bundle's evidence key) and make SHA256SUMS again."""
    manifest = json.loads(files[MANIFEST])
    unlisted = (MANIFEST, "manifest.sig", "manifest.tsr", SUMS)
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items()) if n not in unlisted}
    manifest["signed_by"] = key.verify_key.kid
    if "bundle_id" in manifest:  # the evidence files' name, which whoever holds the key makes again too
        manifest["bundle_id"] = bundle_id(files)
    text = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    kept = {n: d for n, d in files.items() if n != "manifest.tsr"}  # the TSA's stamp was of the manifest before
    return {**kept, MANIFEST: text, "manifest.sig": key.sign(text)}


def repack(files: dict[str, bytes], key: SigningKey | None = None) -> bytes:
    """The files zipped again with SHA256SUMS made again; with ``key``, the manifest signed again (``resign``)."""
    files = resign(files, key) if key is not None else files
    files = {**files, SUMS: sha256sums({n: d for n, d in files.items() if n != SUMS})}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def verify(bundle: bytes, world, **kwargs):
    return verify_bundle(bundle, witness_key=world["witness"].verify_key, tsa_roots=world["tsa"].ca_pem, **kwargs)


def punches(report) -> list[dict]:
    return [d for d in report.disclosed if d["fields"]["type"] == "punch"]


def stamps_dropped(world) -> dict[str, bytes]:
    """What an employer holding the database can export after deleting the stamp that covered Monday's punch: every
    witness entry proven into the latest witness checkpoint instead, whose stamp is the export's (26 hours after)."""
    files = unpack(world["bundle"])
    witnessed = [json.loads(line) for line in files["witness/checkpoints.jsonl"].decode().splitlines()]
    latest = max(w["size"] for w in witnessed)
    everything = world["witness_leaves"][:latest]
    for name in ("witness/entries.jsonl", "witness/heads.jsonl"):  # heads: the latest witnessed size (format 4)
        lines = [json.loads(line) for line in files.get(name, b"").decode().splitlines()]
        proofs = inclusion_proofs(everything, [e["seq"] for e in lines])
        files[name] = "".join(
            json.dumps({**e, "size": latest, "proof": [h.hex() for h in proofs[e["seq"]]]}) + "\n" for e in lines
        ).encode()
    if not files["witness/heads.jsonl"]:
        del files["witness/heads.jsonl"]  # a bundle from before heads were given
    for item in witnessed:
        if item["size"] != latest:
            for stamp in item["stamps"]:
                del files[stamp["file"]]
            files.pop(f"witness/checkpoint-{item['size']}.note", None)
    files["witness/checkpoints.jsonl"] = "".join(
        json.dumps(w, ensure_ascii=False) + "\n" for w in witnessed if w["size"] == latest
    ).encode()
    if "witness/consistency.jsonl" in files:  # one witness checkpoint left: nothing to prove consistent
        files["witness/consistency.jsonl"] = b""
    return files


def test_each_punch_shows_the_earliest_stamp_covering_it_and_its_delay(world):
    report = verify(world["bundle"], world)
    assert report.result == "verified", [c for c in report.checks if not c.ok]
    monday, tuesday = sorted(punches(report), key=lambda d: d["seq"])
    hourly, export = int(at(2, "08:59").timestamp()), int(at(3, "10:00").timestamp())
    assert monday["stamped"] == hourly, "the hourly stamp, not the export's a day later"
    assert tuesday["stamped"] == export
    by_seq = {s["seq"]: s for s in report.punch_stamps}
    assert by_seq[monday["seq"]]["delay"] == hourly - monday["fields"]["t_wall_ms"] // 1000 < 3600
    assert not any(s["late"] for s in report.punch_stamps) and not report.late
    files = unpack(world["bundle"])
    html = files["report.html"].decode()
    assert "第三方时间戳 2026-03-02 08:59:00（打卡后 53 分）" in html  # the punch at 08:05:30
    assert "第三方时间戳 2026-03-03 10:00:00（打卡后 1 小时 54 分）" in html
    pdf = "".join(page.extract_text() for page in PdfReader(io.BytesIO(files["report.pdf"])).pages)
    assert "第三方时间戳 2026-03-02 08:59:00（打卡后 53 分）" in pdf.replace("\n", "")


def test_a_punch_whose_stamps_were_dropped_is_flagged_late(world, tmp_path):
    """The employer deletes the 08:59 stamp and exports again: only the export's stamp, a day later, covers Monday's
    punch. Before, the bundle passed in full (every checkpoint under some stamp)."""
    bundle = repack(stamps_dropped(world), world["evidence"])
    report = verify(bundle, world)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.result == "late"
    (late,) = report.late
    monday = min(punches(report), key=lambda d: d["seq"])
    assert late[0].startswith(f"第 {monday['seq']} 条记录晚于允许的 24 小时才取得时间戳")
    assert "相隔 1 天 1 小时" in late[0]
    code, out = verify_cli(bundle, tmp_path, world, "--tsa-ca", str(world["tsa"].ca_path))
    assert code == 6 and "晚于允许的 24 小时才取得时间戳" in out and "RESULT" in out.splitlines()[-1], out
    assert "全部校验通过" not in out.splitlines()[-1]


def test_stamps_obtained_three_days_later_are_flagged_unless_the_policy_allows_them(world, tmp_path):
    files = stamps_dropped(world)
    (item,) = [json.loads(line) for line in files["witness/checkpoints.jsonl"].decode().splitlines()]
    world["tsa"].signing_time = at(5, "10:00")  # the witness log stamped only on Thursday
    late = TimestampClient(world["tsa"].url, world["tsa"].ca_pem).stamp(note_digest(item["note"]))
    (stamp,) = item["stamps"]
    files[stamp["file"]] = late.tsr
    bundle = repack(files, world["evidence"])
    report = verify(bundle, world)
    assert report.ok and report.result == "late"
    assert len(report.late) == 2 and all("才取得时间戳" in zh for zh, _en in report.late)
    assert "相隔 3 天 1 小时" in report.late[0][0] and "相隔 2 天 1 小时" in report.late[1][0]
    relaxed = verify(bundle, world, stamp_delay=timedelta(days=4))
    assert relaxed.result == "verified" and not relaxed.late
    ca = ("--tsa-ca", str(world["tsa"].ca_path))
    assert verify_cli(bundle, tmp_path, world, *ca)[0] == 6
    assert verify_cli(bundle, tmp_path, world, *ca, "--max-stamp-delay", "96")[0] == 0


def test_a_punch_no_stamp_covers_is_named(world, tmp_path):
    """The export's own stamp dropped as well: Tuesday's punch has no third-party time at all."""
    files = unpack(world["bundle"])
    lines = [json.loads(line) for line in files["witness/checkpoints.jsonl"].decode().splitlines()]
    latest = max(item["size"] for item in lines)
    for item in lines:
        if item["size"] == latest:
            for stamp in item["stamps"]:
                del files[stamp["file"]]
            item["stamps"] = []
    files["witness/checkpoints.jsonl"] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    report = verify(repack(files, world["evidence"]), world)
    assert report.ok and report.result == "untimed"
    tuesday = max(punches(report), key=lambda d: d["seq"])
    assert tuesday["stamped"] is None
    assert f"第 {tuesday['seq']} 条记录没有第三方时间戳覆盖" in report.untimed[0]
