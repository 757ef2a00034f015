"""A log cut short (issue #22, item 4): a bundle carries, for each log, the latest size the cloud's witness log had
recorded for it at export, proven in the stamped witness log; ``punchproof verify`` fails a log that ends before
the period does while the witness log recorded it longer ("日志在第 N 条之后被截断"), and tells that from an appliance
that stopped (nothing witnessed beyond the end: a gap, said so).

The bundle is test_punch_stamps' (the same one in a test process: a real export, a real OpenSSL TSA on the
test's clock); the cut is made the way a forger holding the appliance key would: records removed, leaves, proofs,
manifest and SHA256SUMS rebuilt.
"""

from __future__ import annotations

import json

import pytest

from cloud.store import WitnessEntry
from ledger.evidence import leaf_lines
from ledger.merkle import inclusion_proof
from tests.cloud.test_punch_stamps import LOG, punches, repack, stamped_world, unpack, verify
from tests.cloud.test_third_party_time import verify_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory, pytestconfig):
    return stamped_world(tmp_path_factory, pytestconfig)


def cut_after_first_checkpoint(files: dict[str, bytes]) -> int:
    """Keep the appliance log up to its first checkpoint in the bundle (Monday 08:29, after 1001's punch): Tuesday's
    records, 1001's punch among them, are gone, and the bundle reads as if the appliance had stopped on Monday.
    Returns the size kept."""
    base = "logs/0"
    info = json.loads(files[f"{base}/log.json"])
    assert info["log"] == LOG and info["from_seq"] == 0
    checkpoints = [json.loads(line) for line in files[f"{base}/checkpoints.jsonl"].decode().splitlines()]
    kept = min(c["size"] for c in checkpoints)
    lines = files[f"{base}/leaves.txt"].decode().splitlines(keepends=True)[:kept]
    files[f"{base}/leaves.txt"] = "".join(lines).encode()
    leaves = leaf_lines("".join(lines).encode(), 0)[0]
    files[f"{base}/checkpoints.jsonl"] = "".join(
        json.dumps(c) + "\n" for c in checkpoints if c["size"] <= kept
    ).encode()
    for name in [n for n in files if n.startswith(f"{base}/records/")]:
        seq = int(name.rsplit("/", 1)[1].split(".")[0])
        if seq >= kept:
            del files[name]
        elif name.endswith(".proof.json"):
            proof = [h.hex() for h in inclusion_proof(leaves, seq)]
            files[name] = json.dumps({"index": seq, "size": kept, "hashes": proof}).encode()
    system = files[f"{base}/system.jsonl"].decode().splitlines(keepends=True)
    files[f"{base}/system.jsonl"] = "".join(line for line in system if json.loads(line)["seq"] < kept).encode()
    info["to_size"] = kept
    files[f"{base}/log.json"] = json.dumps(info).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["logs"][0]["to_size"] = kept
    files["manifest.json"] = json.dumps(manifest, ensure_ascii=False).encode()
    entries = files["witness/entries.jsonl"].decode().splitlines(keepends=True)  # the cut checkpoints' entries
    files["witness/entries.jsonl"] = "".join(
        line for line in entries if _entry(line)["log"] != LOG or _entry(line)["size"] <= kept
    ).encode()
    return kept


def _entry(line: str) -> dict:
    return json.loads(json.loads(line)["data"])


def test_an_appliance_that_stopped_is_a_gap_said_so(world):
    """Exported on Tuesday at 10:00, the log ends at its last sync (08:29), before the period does: the cloud had
    witnessed nothing more of it, so the appliance stopped (or has not synced since); a gap, not a failure."""
    report = verify(world["bundle"], world)
    assert report.ok, [c for c in report.checks if not c.ok]
    (length,) = [c for c in report.checks if c.name.startswith(LOG) and c.name.endswith("log length")]
    assert "（与之相同）" in length.detail
    (ends,) = [e for e in report.events if e.kind == "log_ends" and e.log == LOG]
    assert ends.witnessed_size is not None and "the witness log had recorded no more of this log" in ends.detail
    html = unpack(world["bundle"])["report.html"].decode()
    assert "会签日志至导出时所记录的该日志长度也止于此" in html and "设备停止记录" in html
    assert "本证据包导出于 2026-03-03 10:00:00，其时期间尚未结束" in html  # exported on the period's last day


def test_a_log_cut_after_a_checkpoint_fails(world, tmp_path):
    files = unpack(world["bundle"])
    kept = cut_after_first_checkpoint(files)
    report = verify(repack(files, world["evidence"]), world)
    assert not report.ok, "the witness log recorded more of the log, and no checkpoint past the cut is given"
    assert any("却未给出其后会签的第一个检查点" in c.detail for c in report.checks if not c.ok)
    assert len(punches(report)) == 1, "Tuesday's punch went with the tail"
    # the forger keeps the witness log's latest size, and names as the next checkpoint the one right after the cut
    # (Monday 08:59, witnessed before the period ended), as the exporter would have: the witness entry that names the
    # cut's as the previous of its log (heads/1), proven into the latest witness checkpoint
    heads = [json.loads(line) for line in files["witness/heads.jsonl"].decode().splitlines()]
    entries = [json.loads(line) for line in files["witness/entries.jsonl"].decode().splitlines()]
    (cut,) = [e for e in entries if _entry(json.dumps(e))["log"] == LOG and _entry(json.dumps(e))["size"] == kept]
    witnessed = WitnessEntry.select().bind(world["db"])  # the world's database, whatever other tests opened since
    (successor,) = [e for e in witnessed if json.loads(bytes(e.data)).get("prev") == cut["seq"]]
    everything = world["witness_leaves"]
    after = {
        "seq": successor.seq,
        "data": bytes(successor.data).decode(),
        "size": len(everything),
        "proof": [h.hex() for h in inclusion_proof(everything, successor.seq)],
    }
    heads = [h for h in heads if h.get("role") != "next" or h["log"] != LOG] + [{**after, "log": LOG, "role": "next"}]
    files["witness/heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in heads).encode()
    bundle = repack(files, world["evidence"])
    report = verify(bundle, world)
    failed = [c.detail for c in report.checks if not c.ok]
    size = _entry(json.dumps(after))["size"]
    cut = f"日志在第 {kept - 1} 条之后被截断：公司服务器（会签）曾记录其长度为 {size} 条"
    assert any(cut in d for d in failed), failed
    code, out = verify_cli(bundle, tmp_path, world, "--tsa-ca", str(world["tsa"].ca_path))
    assert code == 1 and "被截断" in out

    # the forger leaves out the witnessed sizes as well: a format 4 bundle must give them
    files["witness/heads.jsonl"] = b""
    report = verify(repack(files, world["evidence"]), world)
    assert not report.ok
    assert any("未给出公司服务器（会签）所记录的该日志最新长度" in c.detail for c in report.checks if not c.ok)
