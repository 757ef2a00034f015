"""Per-log heads in the cloud's witness log (issue #22, item 4): what a bundle says of a log's end is proven, not
picked. Every witness entry names the previous entry of its log (``prev``) and every witness checkpoint commits the
latest entry of each log (``heads/1``), so an exporter who cuts a log cannot cite an older entry as the latest, nor a
"next" entry that skips entries of the log: ``punchproof verify`` fails both. A witness log from before heads/1 still
verifies, and its log length check says that the heads are the exporter's pick.

The world is test_punch_stamps' (a real export, a real OpenSSL TSA on the test's clock), built here twice: as the
cloud seals now, and as it sealed before heads/1 (``commit_heads=False``). The forgeries are the employer's, who
holds every key: records cut, the bundle's files edited, its manifest signed again.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from cloud.evidence.export import export_bundle
from cloud.evidence.log import EvidenceLog
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog
from cloud.store import database
from ledger import note
from ledger.merkle import inclusion_proof
from ledger.witnesslog import committed_heads, head_leaves, head_line, heads_extension, note_digest
from tests.cloud import test_punch_stamps
from tests.cloud.test_punch_stamps import EMPLOYEE, LOG, build_world, punches, repack, unpack, verify
from tests.cloud.test_third_party_time import verify_cli
from tests.cloud.test_truncation import cut_after_first_checkpoint

PICKED = "导出方从会签日志中所选"
PROVEN = "均由会签日志检查点所承诺的各日志最新条目证明"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """The world as the cloud seals now, with a second bundle of Monday alone (exported on Tuesday at 10:00, so the
    log's checkpoint of Tuesday 08:30 is past the period); and the same world sealed as before heads/1. The
    database the models were bound to before (test_punch_stamps' world, if built) is bound again after."""
    previous = database.obj
    made = build_world(tmp_path_factory.mktemp("heads"))
    clock, tsa = made["clock"], made["tsa"]
    made["monday"] = export_bundle(
        EMPLOYEE,
        date(2026, 3, 2),
        date(2026, 3, 2),
        witness=made["witness"].verify_key,
        clock=clock,
        witness_log=WitnessLog(made["witness"], clock, stamper=TimestampClient(tsa.url, tsa.ca_pem)),
        tsa_ca=tsa.ca_pem,
        evidence_log=EvidenceLog(made["evidence"], made["witness"], clock),
        evidence_key=made["evidence"].verify_key,
    )

    def before_heads(key, clock, **kwargs):
        return WitnessLog(key, clock, commit_heads=False, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_punch_stamps, "WitnessLog", before_heads)
        old = build_world(tmp_path_factory.mktemp("before-heads"))
    if previous is not None:
        database.initialize(previous)
    yield {"new": made, "old": old}
    for world in (made, old):
        world["tsa"].stop()
        world["db"].close()


def forged(files: dict[str, bytes], world) -> bytes:
    """The edited bundle as the employer would hand it over: its report made again (here left out: a report made from
    the edited records shows none of the cut ones), its manifest signed again."""
    files.pop("report.html", None)
    return repack(files, world["evidence"])


def _lines(files: dict[str, bytes], name: str) -> list[dict]:
    return [json.loads(line) for line in files.get(name, b"").decode().splitlines()]


def _data(line: dict) -> dict:
    return json.loads(line["data"])


def _length(report) -> str:
    (check,) = [c for c in report.checks if c.name.startswith(LOG) and c.name.endswith("log length")]
    return check.detail


def _failed(report) -> list[str]:
    return [c.detail for c in report.checks if not c.ok]


def test_an_honest_bundle_proves_its_heads(worlds):
    world = worlds["new"]
    for bundle in (world["bundle"], world["monday"]):
        files = unpack(bundle)
        notes = _lines(files, "witness/checkpoints.jsonl")
        assert all("\nheads/1 " in n["note"] for n in notes), "every witness checkpoint commits the heads"
        assert all("prev" in _data(e) for e in _lines(files, "witness/entries.jsonl"))
        report = verify(bundle, world)
        assert report.ok, _failed(report)
        assert PROVEN in _length(report) and PICKED not in _length(report)
    # Monday's bundle: the range ends on Monday; the first checkpoint past it (Tuesday 08:30) names the range's last
    # as the previous entry of the log
    files = unpack(world["monday"])
    heads = {h["role"]: h for h in _lines(files, "witness/heads.jsonl") if h["log"] == LOG}
    end = max((e for e in _lines(files, "witness/entries.jsonl") if _data(e)["log"] == LOG), key=lambda e: e["seq"])
    assert _data(heads["next"])["prev"] == end["seq"] and heads["next"]["seq"] == heads["latest"]["seq"]
    assert "才会签，已在期间结束之后" in _length(verify(world["monday"], world))


def test_a_cut_log_whose_exporter_cites_an_older_entry_as_latest_fails(worlds, tmp_path):
    """Cut after Monday 08:29 and name that checkpoint as the latest the witness log holds: without heads/1 the
    bundle reads as an appliance that stopped on Monday, a gap (it passed verify); the latest witness checkpoint
    commits a later entry of the log."""
    world = worlds["new"]
    files = unpack(world["bundle"])
    kept = cut_after_first_checkpoint(files)
    (cut,) = [e for e in _lines(files, "witness/entries.jsonl") if _data(e)["log"] == LOG and _data(e)["size"] == kept]
    heads = [h for h in _lines(files, "witness/heads.jsonl") if h["log"] != LOG]
    heads.append({**cut, "log": LOG, "role": "latest"})
    files["witness/heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in heads).encode()
    bundle = forged(files, world)
    report = verify(bundle, world)
    assert len(punches(report)) == 1, "Tuesday's punch went with the tail"
    assert not report.ok, "an older entry cited as the log's latest"
    assert any(
        "承诺该日志的最新条目为会签日志第" in d and f"给出的却是第 {cut['seq']} 项" in d for d in _failed(report)
    )
    code, out = verify_cli(bundle, tmp_path, world, "--tsa-ca", str(world["tsa"].ca_path))
    assert code == 1 and "本证据包给出的却是" in out


def test_a_next_entry_that_skips_entries_of_the_log_fails(worlds):
    """Monday's bundle cut after 08:29, its "next" the log's checkpoint of Tuesday 08:30 (witnessed after the period):
    without heads/1 that reads as an appliance off at the period's end (it passed verify); that entry names the one of
    Monday 09:10 as the previous of its log, so the ones between were left out."""
    world = worlds["new"]
    files = unpack(world["monday"])
    kept = cut_after_first_checkpoint(files)
    (cut,) = [e for e in _lines(files, "witness/entries.jsonl") if _data(e)["log"] == LOG and _data(e)["size"] == kept]
    after = next(h for h in _lines(files, "witness/heads.jsonl") if h["log"] == LOG and h["role"] == "next")
    assert _data(after)["size"] > kept and after["seq"] > cut["seq"] + 1
    report = verify(forged(files, world), world)
    assert not report.ok, "a next entry that skips entries of the log"
    assert any(
        f"的前一项为第 {_data(after)['prev']} 项，而非本包范围末尾的第 {cut['seq']} 项" in d for d in _failed(report)
    ), _failed(report)


def test_a_forged_latest_witness_checkpoint_is_contradicted_by_the_stamped_ones_before_it(worlds):
    """The employer goes further: signs again the latest witness checkpoint, its heads saying the cut is the log's
    latest, and has the TSA stamp it (the export's stamp is taken now anyway). The hourly stamped checkpoint that
    proves the cut's entry committed a later entry of the log then: the bundle contradicts itself."""
    world = worlds["new"]
    files = unpack(world["bundle"])
    kept = cut_after_first_checkpoint(files)
    (cut,) = [e for e in _lines(files, "witness/entries.jsonl") if _data(e)["log"] == LOG and _data(e)["size"] == kept]
    notes = _lines(files, "witness/checkpoints.jsonl")
    latest = max(notes, key=lambda n: n["size"])
    checkpoint, _ = note.parse(latest["note"])
    lines = [h for h in _lines(files, "witness/log-heads.jsonl") if h["size"] == checkpoint.size]
    heads = {h["log"]: h["seq"] for h in lines}
    count, _root = committed_heads(checkpoint)
    assert count == len(heads), "the test's witness log holds the bundle's logs only"
    heads[LOG] = cut["seq"]
    resigned = note.Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root, (heads_extension(heads),))
    text = note.render(resigned, [note.sign(resigned, world["witness"])])
    order = sorted(heads, key=lambda origin: head_line(origin, heads[origin]))
    leaves = head_leaves(heads)
    others = [h for h in _lines(files, "witness/log-heads.jsonl") if h["size"] != checkpoint.size]
    mine = [
        {
            "size": resigned.size,
            "log": o,
            "seq": heads[o],
            "index": i,
            "proof": [h.hex() for h in inclusion_proof(leaves, i)],
        }
        for i, o in enumerate(order)
    ]
    files["witness/log-heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in others + mine).encode()
    tsa = world["tsa"]
    token = TimestampClient(tsa.url, tsa.ca_pem).stamp(note_digest(text)).tsr
    stamp = latest["stamps"][0]
    files[stamp["file"]] = token
    latest["stamps"] = [stamp]
    latest["note"] = text
    files[f"witness/checkpoint-{resigned.size}.note"] = text.encode()
    files["witness/checkpoints.jsonl"] = "".join(json.dumps(n, ensure_ascii=False) + "\n" for n in notes).encode()
    heads_lines = [h for h in _lines(files, "witness/heads.jsonl") if h["log"] != LOG]
    heads_lines.append({**cut, "log": LOG, "role": "latest"})
    files["witness/heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in heads_lines).encode()
    report = verify(forged(files, world), world)
    assert not report.ok
    assert any("承诺该日志当时的最新条目为会签日志第" in d for d in _failed(report)), _failed(report)


def test_a_witness_log_from_before_heads_still_verifies_and_says_the_heads_are_picked(worlds):
    world = worlds["old"]
    files = unpack(world["bundle"])
    assert not any("\nheads/1 " in n["note"] for n in _lines(files, "witness/checkpoints.jsonl"))
    assert "witness/log-heads.jsonl" not in files
    report = verify(world["bundle"], world)
    assert report.ok, _failed(report)
    assert PICKED in _length(report) and "（与之相同）" in _length(report)
