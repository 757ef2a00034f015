"""A stolen Pi (issue #22, item 6): ``revoke-key --compromised-since TIME|SEQ`` marks that log's records from the
point on as untrusted, in the cloud (stored, and a signed record of its evidence log), in bundles and by verify."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime

import pytest

from cloud.evidence.log import EvidenceRecord
from cloud.evidence.revocation import compromise_point, untrusted_from
from cloud.store import Appliance, ApplianceKey, LogRecord
from ledger.evidence import verify_bundle
from punchproof.cli import main as punchproof
from tests.cloud.test_evidence import EMPLOYEE, LOG, export, failed, repack, unpack, world  # noqa: F401
from tests.cloud.test_third_party_time import verify_cli


def revoke_key(tmp_path, world, *args: str) -> tuple[int, str]:  # noqa: F811
    """``punchproof cloud revoke-key`` against the world's database, on a host that holds the cloud's keys."""
    state = tmp_path / "state"
    if not state.exists():
        world["witness"].save(state / "keys" / "cloud-witness.pem")
        world["evidence"].save(state / "keys" / "cloud-evidence.pem")
    config = tmp_path / "revoke.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/cloud.sqlite3"\n\n[cloud]\nstate_dir = "{state}"\n')
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = punchproof(["cloud", "revoke-key", "-c", str(config), *args])
    return code, out.getvalue()


def seq_at(when: datetime) -> int:
    return (
        LogRecord.select(LogRecord.seq)
        .where(LogRecord.t_wall_ms >= when.timestamp() * 1000)
        .order_by(LogRecord.seq)
        .scalar()
    )


@pytest.mark.parametrize("world", [False], ids=["one-key"], indirect=True)
def test_records_from_the_compromise_point_are_untrusted_in_the_cloud_the_bundle_and_by_verify(world, tmp_path):  # noqa: F811
    kid = world["key"].verify_key.kid
    since = seq_at(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))  # the second day's first record (00:00 in Dongguan)
    code, out = revoke_key(tmp_path, world, kid, "--compromised-since", str(since))
    assert code == 0 and "已吊销" in out and "written into the cloud's signed evidence log" in out, out
    assert untrusted_from(LOG) == since and ApplianceKey.get(ApplianceKey.kid == kid).revoked_ms is not None
    (logged,) = EvidenceRecord.select().where(EvidenceRecord.type == "keyrevoke")
    signed = json.loads(bytes(logged.data))
    assert (signed["key_log"], signed["key_kid"], signed["since_seq"]) == (LOG, kid, since)

    bundle = export(world)
    files = unpack(bundle)
    assert json.loads(files["keys/registry.json"])[0]["compromised_since_seq"] == since
    system = [json.loads(json.loads(line)["data"]) for line in files["logs/1/system.jsonl"].decode().splitlines()]
    assert [(r["type"], r.get("since_seq")) for r in system] == [("keyreg", None), ("keyrevoke", since)]
    report = verify_bundle(bundle, witness_key=world["witness"].verify_key)
    assert report.ok, failed(report)  # the employee's punches (day one) come before the point: they stand
    assert report.untrusted == {LOG: since} and len(report.disclosed) == 2
    (check,) = [c for c in report.checks if c.name.endswith("compromised key")]
    assert f"自第 {since} 条起该设备密钥可能已泄露" in check.detail and "none of them the employee's" in check.detail
    assert "2026-03-03" not in report.covered_days, "untrusted seals do not show the appliance recording"
    html = files["report.html"].decode()
    assert "该日设备记录不作为证据（设备密钥可能已泄露" in html and f"自第 {since} 条起记录不作为证据" in html
    code, out = verify_cli(bundle, tmp_path, world)
    assert code == 4 and "compromised key" in out and "the appliance key may have been copied" in out, out

    # a claim resting on the records past the point fails: the employee's evening punch of day one
    evening = seq_at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    keys = json.loads(files["keys/registry.json"])
    keys[0]["compromised_since_seq"] = evening
    report = verify_bundle(repack({**files, "keys/registry.json": json.dumps(keys).encode()}))
    assert not report.ok
    assert any("compromised key" in p and "本人的记录第" in p for p in failed(report)), failed(report)
    assert [d["seq"] for d in report.disclosed if d.get("untrusted")] == [d["seq"] for d in report.disclosed][1:]


@pytest.mark.parametrize("world", [False], ids=["one-key"], indirect=True)
def test_a_time_is_taken_as_the_first_record_received_or_made_after_it_and_a_later_point_changes_nothing(
    world,  # noqa: F811
    tmp_path,
):
    appliance = Appliance.get(Appliance.log_origin == LOG)
    seq, words = compromise_point(appliance, "2026-03-02T17:00")  # plant time: 09:00 UTC
    nine = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp() * 1000
    received = LogRecord.select(LogRecord.seq).where(LogRecord.received_ms >= nine).order_by(LogRecord.seq).scalar()
    # the batch that reached the cloud at 09:00 holds records the Pi says it made before: they count as after
    assert seq == received < seq_at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) and "2026-03-02T17:00:00+08:00" in words
    assert compromise_point(appliance, None)[0] == LogRecord.select().count(), "at revocation: nothing stored"
    kid = world["key"].verify_key.kid
    assert revoke_key(tmp_path, world, kid, "--compromised-since", "2026-03-02T17:00")[0] == 0
    assert untrusted_from(LOG) == seq
    code, out = revoke_key(tmp_path, world, kid, "--compromised-since", str(seq + 10))
    assert code == 1 and "already untrusted from seq" in out and untrusted_from(LOG) == seq
    assert revoke_key(tmp_path, world, kid, "--compromised-since", "yesterday")[0] == 1
    assert revoke_key(tmp_path, world, kid, "--compromised-since", str(seq - 5))[0] == 0, "a theft found later"
    assert untrusted_from(LOG) == seq - 5
    assert EvidenceRecord.select().where(EvidenceRecord.type == "keyrevoke").count() == 2
