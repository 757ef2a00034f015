"""The evidence bundle: export from the cloud, verify offline, and the tamper matrix."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance import rules
from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.log import EvidenceLog
from cloud.evidence.report_model import build_model
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog
from cloud.ingest.verifier import BatchIngest
from cloud.store import ApplianceKey, open_db
from ledger import SigningKey, note, topics
from ledger.evidence import SUMS, leaf_lines, sha256sums, verify_bundle
from ledger.merkle import inclusion_proof, root
from tests.cloud.test_pinning import (
    assert_registrations_shown,
    assert_unpinned_and_untimed,
    assert_unpinned_is_never_a_pass,
)
from tests.cloud.test_punch_stamps import resign
from tests.cloud.test_third_party_time import (
    assert_green_with_third_party_time,
    assert_never_green_without_third_party_time,
)
from tests.harness.clock import FrozenClock
from tests.harness.logs import LogBuilder
from tests.harness.tsa import OpenSslTsa

PLANT, NAME = "dongguan-1", "pi-01"
LOG = f"punchproof/{PLANT}/{NAME}/1"
EMPLOYEE = "1001"
WORLD_START = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)


@pytest.fixture(params=[False, True], ids=["one-key", "key-rotated"])
def world(tmp_path, request):
    """Two working days at a plant: 1001 punches in and out on the first and never on the second.

    In the ``key-rotated`` variant the appliance rotates its key in the middle of the first day. A test that uses
    the ``tsa`` fixture gets the cloud's witness log stamped at the end of each working day, as the hourly stamps
    would: each punch's earliest third-party time is then hours after it, not days (issue #22.3)."""
    clock = FrozenClock(WORLD_START)  # 07:50 in Dongguan
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
    log = LogBuilder(key, LOG, clock)
    log.add("boot", unclean=False, sw="test")
    tsa = request.getfixturevalue("tsa") if "tsa" in request.fixturenames else None
    stamps = WitnessLog(witness, clock, stamper=TimestampClient(tsa.url, tsa.ca_pem)) if tsa else None

    def send():
        ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
        assert ack.status == "ok", ack.reason
        log.acknowledged(ack.cosignature)

    for day in range(2):
        punches = {8: ("1002", 0), 600: ("1002", 1)} | ({9: (EMPLOYEE, 0), 580: (EMPLOYEE, 1)} if day == 0 else {})
        for block in range(0, 660, 30):  # sync every half hour
            log.minutes(30, {m - block: p for m, p in punches.items() if block <= m < block + 30})
            if request.param and day == 0 and block == 300:
                log.rotate(SigningKey.generate())
            send()
        if stamps is not None:  # the evening's stamp over the day's records
            tsa.signing_time = clock.now()
            stamps.seal()
            assert stamps.stamp_latest("hourly")
        clock.advance(hours=13)  # the appliance is switched off overnight
        log.add("boot", unclean=day == 0, sw="test")
    send()
    yield {"clock": clock, "key": key, "witness": witness, "log": log, "evidence": SigningKey.generate()}
    db.close()


def export(world, **kwargs):
    """As the cloud exports (``export_configured``): with the witness log and the cloud's evidence log, whose key
    registration records the bundle carries."""
    evidence = EvidenceLog(world["evidence"], world["witness"], world["clock"])
    return export_bundle(
        EMPLOYEE,
        date(2026, 3, 2),
        date(2026, 3, 3),
        witness=world["witness"].verify_key,
        clock=world["clock"],
        **(
            {
                "witness_log": WitnessLog(world["witness"], world["clock"]),
                "evidence_log": evidence,
                "evidence_key": world["evidence"].verify_key,
            }
            | kwargs
        ),
    )


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def repack(files: dict[str, bytes], *, resum: bool = True, key: SigningKey | None = None) -> bytes:
    """The files zipped again; ``resum``: with SHA256SUMS made again; ``key``: the manifest signed again with it as
    the employer could (``tests.cloud.test_punch_stamps.resign``)."""
    if key is not None:
        files = resign(files, key)
    if resum:
        files = {**files, SUMS: sha256sums({n: d for n, d in files.items() if n != SUMS})}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def failed(report) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]


def test_the_bundle_verifies_and_tells_the_days_apart(world, tmp_path):
    files = unpack(export(world))
    assert_never_green_without_third_party_time(files, repack(files, resum=False), tmp_path, world)  # no TSA
    report = verify_bundle(repack(files, resum=False), witness_key=world["witness"].verify_key)
    assert report.ok, failed(report)
    days = sorted({d["fields"]["term"]["t"][:10] for d in report.disclosed})
    assert days == ["2026-03-02"], "1001's punches on the first day only"
    assert len(report.disclosed) == 2
    assert any("unclean shutdown" in g for g in report.gaps)
    html = files["report.html"].decode()
    assert any(c.name == "witness log" and "checkpoints in the cloud's signed log" in c.detail for c in report.checks)
    assert "2026-03-03" in html and "无打卡记录" in html
    assert "全部校验通过" not in html and "本证据包没有第三方时间戳" in html  # exported without a TSA: never green
    assert "07:59:30</time> 上班" in html  # the time marked for punchproof verify (issue #22.7)
    # an employee's bundle says first what it was made for (issue #19.11: before, only a case's named itself)
    made_for = f"本证据包为工号 {EMPLOYEE} 在 2026-03-02 至 2026-03-03 期间的考勤证据制作"
    assert html.index(made_for) < html.index("员工工号") and made_for in files["MANUAL-CHECKS.md"].decode()
    manifest = json.loads(files["manifest.json"])
    assert manifest["employee"] == EMPLOYEE and manifest["logs"][0]["disclosed"] > 2
    keys = [k for k in json.loads(files["keys/registry.json"]) if k["log"] == LOG]
    system = [json.loads(line) for line in files["logs/0/system.jsonl"].decode().splitlines()]
    rotations = [r for r in system if '"type":"keyrot"' in r["data"]]
    assert len(keys) == 1 + len(rotations) and len(rotations) == (world["log"].key.kid != keys[0]["kid"])
    assert_registrations_shown(files, world)  # issue #22.5: the keys' dated registrations, signed, in the report
    assert_unpinned_and_untimed(repack(files, resum=False), tmp_path, world)


def test_other_workers_are_disclosed_only_as_hashes(world):
    files = unpack(export(world))
    records = [
        json.loads(d)
        for n, d in files.items()
        if "/records/" in n and n.endswith(".json") and not n.endswith(".proof.json")
    ]
    assert {r.get("emp") for r in records if r["type"] == "punch"} == {EMPLOYEE}
    assert not any(b'"emp":"1002"' in d for d in files.values())
    leaves = files["logs/0/leaves.txt"].decode().splitlines()  # a leaf hash, or an owner tag and a record hash
    info = json.loads(files["logs/0/log.json"])
    assert len(leaves) == info["to_size"] - info["from_seq"]


def test_sha256sums_match_what_sha256sum_would_say(world):
    files = unpack(export(world))
    for line in files[SUMS].decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest


# -- the tamper matrix: each change must be detected, with a message that says what -------------


def first_disclosed_punch(files):
    return next(
        n
        for n in sorted(files)
        if "/records/" in n
        and n.endswith(".json")
        and not n.endswith(".proof.json")
        and json.loads(files[n])["type"] == "punch"
    )


def edit_record(files):
    name = first_disclosed_punch(files)
    files[name] = files[name].replace(b'"state":0', b'"state":1')


def delete_leaf(files):
    lines = files["logs/0/leaves.txt"].decode().splitlines(keepends=True)
    del lines[5]
    files["logs/0/leaves.txt"] = "".join(lines).encode()
    info = json.loads(files["logs/0/log.json"])
    info["to_size"] -= 1
    files["logs/0/log.json"] = json.dumps(info).encode()


def insert_leaf(files):
    lines = files["logs/0/leaves.txt"].decode().splitlines(keepends=True)
    lines.insert(5, hashlib.sha256(b"\x00forged").hexdigest() + "\n")
    files["logs/0/leaves.txt"] = "".join(lines).encode()
    info = json.loads(files["logs/0/log.json"])
    info["to_size"] += 1
    files["logs/0/log.json"] = json.dumps(info).encode()


def reorder_leaves(files):
    lines = files["logs/0/leaves.txt"].decode().splitlines(keepends=True)
    lines[5], lines[6] = lines[6], lines[5]
    files["logs/0/leaves.txt"] = "".join(lines).encode()


def truncate_tail(files):
    """Drop everything after an earlier witnessed checkpoint, re-deriving every proof as an attacker could."""
    checkpoints = files["logs/0/checkpoints.jsonl"].decode().splitlines(keepends=True)
    last_kept = json.loads(checkpoints[-3])["size"]
    info = json.loads(files["logs/0/log.json"])
    lines = files["logs/0/leaves.txt"].decode().splitlines(keepends=True)[: last_kept - info["from_seq"]]
    files["logs/0/leaves.txt"] = "".join(lines).encode()
    files["logs/0/checkpoints.jsonl"] = "".join(checkpoints[:-2]).encode()
    info["to_size"] = last_kept
    files["logs/0/log.json"] = json.dumps(info).encode()
    assert info["from_seq"] == 0
    leaves = leaf_lines("".join(lines).encode(), 0)[0]  # version 2 lines: owner tag and record hash
    for name in [n for n in files if n.startswith("logs/0/records/")]:
        seq = int(name.rsplit("/", 1)[1].split(".")[0])
        if seq >= last_kept:
            del files[name]
        elif name.endswith(".proof.json"):
            proof = inclusion_proof(leaves, seq)
            files[name] = json.dumps({"index": seq, "size": last_kept, "hashes": [h.hex() for h in proof]}).encode()
    system = files["logs/0/system.jsonl"].decode().splitlines(keepends=True)
    files["logs/0/system.jsonl"] = "".join(line for line in system if json.loads(line)["seq"] < last_kept).encode()
    entries = [json.loads(line) for line in files["witness/entries.jsonl"].decode().splitlines()]
    ours = [e for e in entries if json.loads(e["data"])["log"] == LOG]
    files["witness/entries.jsonl"] = "".join(  # the cut checkpoints' entries go
        json.dumps(e) + "\n" for e in entries if e not in ours or json.loads(e["data"])["size"] <= last_kept
    ).encode()
    # the witness log still holds them: exported again from a database whose tail was deleted, the bundle names the
    # first checkpoint witnessed past the cut (FORMAT.md, "A log cut short"; naming a later one is the limit there)
    after = min((e for e in ours if json.loads(e["data"])["size"] > last_kept), key=lambda e: e["seq"])
    if "witness/heads.jsonl" in files:  # bundles of format 4 on
        heads = [json.loads(line) for line in files["witness/heads.jsonl"].decode().splitlines()]
        heads = [h for h in heads if (h["log"], h["role"]) != (LOG, "next")] + [{**after, "log": LOG, "role": "next"}]
        files["witness/heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in heads).encode()


def swap_proofs(files):
    proofs = sorted(n for n in files if n.endswith(".proof.json"))
    files[proofs[0]], files[proofs[1]] = files[proofs[1]], files[proofs[0]]


def hide_an_unclean_restart(files):
    """The appliance's own records are proven by the leaves alone: rewriting one is caught there."""
    files["logs/0/system.jsonl"] = files["logs/0/system.jsonl"].replace(b'\\"unclean\\":true', b'\\"unclean\\":false')


def drop_witness_entry(files):
    lines = files["witness/entries.jsonl"].decode().splitlines(keepends=True)
    files["witness/entries.jsonl"] = "".join(lines[:3] + lines[4:]).encode()


def rewrite_witness_checkpoint(files):
    """Rewrite history in the cloud's own log without its key: the signature gives it away."""
    item = json.loads(files["witness/checkpoints.jsonl"].decode().splitlines()[0])
    item["note"] = item["note"].replace(item["note"].splitlines()[2], "A" * 43 + "=")
    files["witness/checkpoints.jsonl"] = (json.dumps(item) + "\n").encode()


def alter_without_resum(files):
    files["report.html"] = files["report.html"].replace("结论".encode(), b"OK")


@pytest.mark.parametrize(
    ("tamper", "resum", "expected"),
    [
        (alter_without_resum, False, "SHA256SUMS"),
        (edit_record, True, "differs from the log's leaf"),
        (delete_leaf, True, "checkpoints"),
        (insert_leaf, True, "checkpoints"),
        (reorder_leaves, True, "do not hash to its root"),
        (truncate_tail, True, "日志在第"),  # cut: the witness log recorded more of it (issue #22.4)
        (swap_proofs, True, "inclusion proof does not verify"),
        (hide_an_unclean_restart, True, "differs from the log's leaf"),
        (drop_witness_entry, True, "not in the cloud's witness log"),
        (rewrite_witness_checkpoint, True, "witness checkpoint"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_tampering_is_detected(world, tamper, resum, expected):
    files = unpack(export(world))
    tamper(files)
    report = verify_bundle(
        repack(files, resum=resum, key=world["evidence"] if resum else None), witness_key=world["witness"].verify_key
    )
    assert not report.ok
    assert any(expected in problem for problem in failed(report)), failed(report)


def test_a_fork_signed_with_the_appliance_key_is_not_cosigned(world):
    """Whoever holds the appliance key can sign another history, but not the cloud's cosignature of it."""
    files = unpack(export(world))
    lines = files["logs/0/checkpoints.jsonl"].decode().splitlines()
    entry = json.loads(lines[0])
    checkpoint, signatures = note.parse(entry["note"])
    forked = note.Checkpoint(checkpoint.origin, checkpoint.size, root([b"\x01" * 32]))
    entry["note"] = note.render(forked, [note.sign(forked, world["key"]), signatures[-1]])
    lines[0] = json.dumps(entry)
    files["logs/0/checkpoints.jsonl"] = ("\n".join(lines) + "\n").encode()
    report = verify_bundle(repack(files, key=world["evidence"]), witness_key=world["witness"].verify_key)
    assert not report.ok and any("checkpoint" in p for p in failed(report)), failed(report)


def test_a_registry_key_without_its_rotation_record_is_refused(world):
    """The bundle's key list is not taken on trust: a key that takes over must be handed the log in it."""
    files = unpack(export(world))
    keys = json.loads(files["keys/registry.json"])
    mine = [k for k in keys if k["log"] == LOG]  # the cloud's evidence key comes after the appliance's
    mine[-1]["valid_from_seq"] += 7  # as if another key had signed between the rotation and here
    files["keys/registry.json"] = json.dumps(keys).encode()
    report = verify_bundle(repack(files, key=world["evidence"]), witness_key=world["witness"].verify_key)
    assert not report.ok
    expected = "no valid rotation record" if len(mine) > 1 else "not signed by a key valid for its position"
    assert any(expected in p for p in failed(report)), failed(report)


def test_a_bundle_with_another_witness_key_is_refused_when_the_key_is_pinned(world):
    report = verify_bundle(export(world), witness_key=SigningKey.generate().verify_key)
    assert not report.ok and any("witness key" in p for p in failed(report))


def test_records_signed_after_the_key_was_revoked_do_not_count(world):
    ApplianceKey.update(revoked_ms=int(datetime(2026, 3, 2, 1, 0, tzinfo=UTC).timestamp() * 1000)).execute()
    report = verify_bundle(export(world), witness_key=world["witness"].verify_key)
    assert not report.ok
    assert any("not signed by a key valid for its position" in p for p in failed(report)), failed(report)


@pytest.mark.parametrize("hours", [-3, 3], ids=["set-back", "set-forward"])
def test_a_pi_clock_set_wrong_is_flagged(tmp_path, hours):
    clock = FrozenClock(datetime(2026, 3, 1, 23, 50, tzinfo=UTC))
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key, witness = SigningKey.generate(), SigningKey.generate()
    registry.register({"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem()}, clock)
    ingest = BatchIngest(clock, witness, "test-cloud/witness")
    log = LogBuilder(key, LOG, clock)
    log.add("boot", unclean=False, sw="test")
    log.minutes(5, {1: (EMPLOYEE, 0)})
    ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
    log.acknowledged(ack.cosignature)
    clock.jump_wall(hours=hours)  # someone sets the Pi's clock three hours off; a punch is recorded
    log.minutes(3, {1: (EMPLOYEE, 1)})
    clock.jump_wall(hours=-hours)  # the cloud witnesses it at the true time
    assert ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack.status == "ok"
    bundle = export_bundle(
        EMPLOYEE, date(2026, 3, 1), date(2026, 3, 2), witness=witness.verify_key, clock=clock, manifest_key=witness
    )
    report = verify_bundle(bundle, witness_key=witness.verify_key)
    db.close()
    assert any("clock was wrong" in p for p in failed(report)), failed(report)


def test_days_before_the_appliance_recorded_read_uncovered_and_a_day_offline_inside_recording_does_not(tmp_path):
    """Issue #19.1 in the report: a day before the appliance began recording (before its log's first record, or
    a shift its terminal was first read after, as the appliance's day fact says) reads 未覆盖 and counts no
    absence; a day the appliance was off in the middle of its recording keeps saying it cannot prove one.
    Before, both read "该日无设备记录（设备离线或断电）", and Tuesday, a 未覆盖 shift, read as a day recorded
    normally with no punch."""
    tz = ZoneInfo("Asia/Shanghai")
    clock = FrozenClock(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))  # Tuesday 10:00: the appliance is installed
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key, witness = SigningKey.generate(), SigningKey.generate()
    registry.register(
        {"plant": PLANT, "appliance": NAME, "log": LOG, "public_key": key.verify_key.pem(), "timezone": str(tz)},
        clock,
    )
    ingest = BatchIngest(clock, witness, "test-cloud/witness")
    log = LogBuilder(key, LOG, clock)

    def send():
        ack = ingest.handle(topics.batch(PLANT, NAME), log.next_batch().encode()).ack
        assert ack.status == "ok", ack.reason
        log.acknowledged(ack.cosignature)

    def at(day: int, hhmm: str) -> datetime:
        return datetime.combine(date(2026, 3, day), time.fromisoformat(hhmm), tz).astimezone(UTC)

    log.add("boot", unclean=False, sw="test")
    log.minutes(30)
    send()
    # the appliance's own conclusion on 1001's Tuesday shift (08:00-17:00), its terminal first read at 10:00
    plant = rules.Plant(tz, rules.package_calendar(), {"D": rules.make_shift("D", "08:00-17:00")}, ("ZK-1",))
    plant = dataclasses.replace(plant, recording_since={"ZK-1": at(3, "10:00")})
    roster = rules.EmployeeRoster(EMPLOYEE, rules.WeeklyRoster("W", (("D",),) * 5 + ((), ())))
    clock.advance_to(at(3, "18:00"))
    (evaluation,) = rules.evaluate_day(
        plant, roster, date(2026, 3, 3), now=clock.now(), watermarks={"ZK-1": clock.now()}
    )
    assert evaluation.status is rules.Status.UNCOVERED
    log.add("dayfact", fact=rules.supersede(None, evaluation, plant))
    log.minutes(5)
    send()
    for day, punches in ((4, {9: (EMPLOYEE, 0)}), (6, {})):  # Wednesday punched, Thursday off, Friday no punch
        clock.advance_to(at(day, "07:50"))
        log.add("boot", unclean=False, sw="test")
        log.minutes(30, punches)
        send()
    bundle = export_bundle(
        EMPLOYEE, date(2026, 3, 2), date(2026, 3, 6), witness=witness.verify_key, clock=clock, manifest_key=witness
    )
    files = unpack(bundle)
    report = verify_bundle(bundle, witness_key=witness.verify_key)
    model = build_model(json.loads(files["manifest.json"]), report, files)
    db.close()

    assert report.ok, failed(report)
    said = {d.date: (d.status, d.status_text) for d in model.days}
    assert said["2026-03-02"] == (
        "uncovered",
        "未覆盖：设备当时尚未开始记录，不计缺勤",
    )  # before the log's first record
    assert said["2026-03-03"] == ("uncovered", "未覆盖：设备当时尚未开始记录，不计缺勤")  # the shift began before
    assert said["2026-03-04"][0] == "punched"
    assert said["2026-03-05"] == ("no_device", "该日无设备记录（见右栏），不能据此认定缺勤")  # off, mid-way
    assert said["2026-03-06"][0] == "no_punch" and said["2026-03-06"][1].startswith("无打卡记录")
    html = files["report.html"].decode()
    assert html.count("未覆盖：设备当时尚未开始记录，不计缺勤") == 2 and html.count("该日无设备记录") == 2  # +the note


# -- RFC 3161 timestamps on the cloud's witness log, against a real OpenSSL TSA -------------------


@pytest.fixture
def tsa(tmp_path):
    """A TSA whose clock is the world's (faketime, set before each stamp): its stamps come when the world's cloud asks,
    not months later (a punch first stamped more than 24 hours after it is flagged: ledger/FORMAT.md)."""
    not_after = WORLD_START + timedelta(days=30)
    with OpenSslTsa(tmp_path / "tsa", signing_time=WORLD_START, cert_not_after=not_after) as server:
        yield server


def stamped_export(world, tsa, tmp_path):
    tsa.signing_time = world["clock"].now()
    ca = tmp_path / "tsa-ca.pem"
    ca.write_bytes(tsa.ca_pem)
    stamper = TimestampClient(tsa.url, tsa.ca_pem)
    return export(world, witness_log=WitnessLog(world["witness"], world["clock"], stamper=stamper), tsa_ca=ca)


def test_a_tsa_stamps_the_witness_log_at_export_and_openssl_agrees(world, tsa, tmp_path):
    bundle = stamped_export(world, tsa, tmp_path)
    files = unpack(bundle)
    assert_green_with_third_party_time(files, bundle, tmp_path, world, tsa)
    assert_unpinned_is_never_a_pass(bundle, tmp_path, world, tsa)  # issue #22.5
    # its stamps dropped (SHA256SUMS made again): the signatures still hold, the third-party time does not
    lines = [json.loads(line) for line in files["witness/checkpoints.jsonl"].decode().splitlines()]
    dropped = "".join(json.dumps({**x, "stamps": []}) + "\n" for x in lines).encode()
    assert_never_green_without_third_party_time(
        files,
        repack({**files, "witness/checkpoints.jsonl": dropped}, key=world["evidence"]),
        tmp_path,
        world,
        report=False,
    )
    report = verify_bundle(bundle, witness_key=world["witness"].verify_key, tsa_roots=tsa.ca_pem)
    assert report.ok, failed(report)
    (check,) = [c for c in report.checks if c.name == "witness log"]
    assert "timestamped by a TSA (3 stamps" in check.detail  # each evening's, and the export's
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(bundle)).extractall(folder)
    manual = (folder / "MANUAL-CHECKS.md").read_text()
    command = next(line.strip() for line in manual.splitlines() if line.strip().startswith("openssl ts -verify"))
    result = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True, check=False)  # noqa: S602
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_a_stamp_from_an_untrusted_tsa_or_for_another_checkpoint_is_refused(world, tsa, tmp_path):
    files = unpack(stamped_export(world, tsa, tmp_path))
    report = verify_bundle(repack(files, key=world["evidence"]), witness_key=world["witness"].verify_key, tsa_roots=b"")
    assert not report.ok
    stamp = min(n for n in files if n.startswith("witness/stamps/"))
    other = TimestampClient(tsa.url, tsa.ca_pem).stamp(hashlib.sha256(b"another checkpoint").digest())
    files[stamp] = other.tsr
    report = verify_bundle(
        repack(files, key=world["evidence"]), witness_key=world["witness"].verify_key, tsa_roots=tsa.ca_pem
    )
    assert not report.ok and any("timestamp" in p for p in failed(report)), failed(report)
