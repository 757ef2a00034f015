"""Owner tags (FORMAT.md, "Version 2: owner tags"): withholding one of the employee's records from a bundle is
detected, and the bundle lets no one recognise another worker's records.

The bundles here are built from real signed records, real checkpoints cosigned by a witness key and the layout
``punchproof verify`` reads (ledger/evidence.py); the exporter's own bundles are tests/e2e/test_withholding.py's.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import GENESIS_PREV, Malformed, SignedRecord, SigningKey, make_record, note, parse
from ledger.evidence import SUMS, sha256sums, verify_bundle
from ledger.merkle import CompactRange, inclusion_proofs, root
from ledger.ownertags import TagKeys, appliance_owner, late_tag_bodies, undisclosed_line
from ledger.record import TAG_SIZE, b64, employee_of, owner_tag

LOG = "punchproof/test-plant/pi-01/1"
TERM = {"sn": "ZK1", "t": "2026-03-02T07:58:00", "tz": "Asia/Shanghai", "state": 0, "verify": 1}
T0 = 1_772_409_480_000  # 2026-03-02 07:58 in Shanghai
E, F = "1001", "1002"


def fixed_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def test_golden_vector_version_2():
    """A version 2 record for reimplementers (FORMAT.md quotes it). The tag, the leaf and the signature's check were
    computed with the OpenSSL command line, not with our code:

        printf 'punchproof/tag/v1\\npunchproof/test-plant/pi-01/1\\n0' \\
          | openssl dgst -sha256 -mac HMAC -macopt hexkey:202122...3f -binary > tag.bin
        (printf '\\000'; cat tag.bin; openssl dgst -sha256 -binary record.json) | openssl dgst -sha256 -binary
    """
    k = bytes(range(32, 64))
    tag = owner_tag(k, LOG, 0)
    assert tag.hex() == "5bb81ef1a2cb00306f958f790a47e515284342ab16d42877ec76754ffb8e90dd"
    record = make_record(
        key=fixed_key(),
        log=LOG,
        seq=0,
        type="punch",
        prev=GENESIS_PREV,
        t_wall_ms=T0,
        salt=bytes(16),
        emp="1000",
        term=TERM,
        tag=tag,
        tagkey=b64(k),
    )
    assert record.data == (
        b'{"emp":"1000","kid":"oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU=","log":"punchproof/test-plant/pi-01/1",'
        b'"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","salt":"AAAAAAAAAAAAAAAAAAAAAA==","seq":0,'
        b'"t_wall_ms":1772409480000,"tag":"W7ge8aLLADBvlY95CkflFShDQqsW1Ch37HZ1T/uOkN0=",'
        b'"tagkey":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=","term":{"sn":"ZK1","state":0,'
        b'"t":"2026-03-02T07:58:00","tz":"Asia/Shanghai","verify":1},"type":"punch","v":2}'
    )
    assert b64(record.leaf) == "hfSHQ66wBqsrf7XUcsYhGTue0PYkXeZVp1K99XAla+M="
    assert record.sig.hex() == (  # openssl pkeyutl -verify -rawin: Signature Verified Successfully
        "824765a78a06a2d61901c896fae70d36b2e674a07b3d313bbdad19f680e3d180"
        "1df7d4bc835a816f5ca0ecffdd6be8f88fdc4df23a50bd01420a2579ea618c03"
    )
    # the leaf a bundle rebuilds from an undisclosed record's line is the same
    line = undisclosed_line(record.data, record.leaf)
    assert line == f"{tag.hex()} {hashlib.sha256(record.data).hexdigest()}"


@pytest.mark.parametrize(
    ("body", "version", "message"),
    [
        ({"tag": bytes(32)}, 1, "version 1 record carries no tag"),
        ({"tagkey": b64(bytes(32))}, 2, "tagkey belongs in a record of an employee"),
        ({"tag": bytes(31)}, 2, "base64 of 32 bytes"),
    ],
)
def test_a_record_with_a_misplaced_tag_is_refused(body, version, message):
    with pytest.raises((Malformed, ValueError), match=message):
        make_record(
            key=fixed_key(), log=LOG, seq=0, type="seal", prev=GENESIS_PREV, t_wall_ms=T0, version=version, **body
        )


# -- a log, as the appliance's writer makes it, and a bundle of it, as the exporter lays it out --------------------


@dataclass
class Log:
    key: SigningKey = field(default_factory=SigningKey.generate)
    records: list[SignedRecord] = field(default_factory=list)
    keys: TagKeys = field(default_factory=lambda: TagKeys(appliance_owner))

    def add(self, type_: str, version: int = 2, **body: object) -> int:
        seq = len(self.records)
        prev = self.records[-1].leaf if self.records else GENESIS_PREV
        owner = appliance_owner(body)
        extra: dict[str, object] = {}
        if version == 2:
            if owner is not None and owner not in self.keys and "tagkey" not in body:
                k = hashlib.sha256(f"key of {owner}".encode()).digest()
                self.keys.add(owner, k)
                extra["tagkey"] = b64(k)
            if "tagkey" in body and owner is not None:
                self.keys.add(owner, base64.b64decode(str(body["tagkey"])))
            extra["tag"] = self.keys.tag(LOG, seq, owner)
        record = make_record(
            key=self.key,
            log=LOG,
            seq=seq,
            type=type_,
            prev=prev,
            t_wall_ms=T0 + 1000 * seq,
            version=version,
            **extra,
            **body,
        )
        self.records.append(record)
        return seq

    def punch(self, emp: str, version: int = 2) -> int:
        return self.add("punch", version, emp=emp, term=TERM)

    def switch_to_v2(self) -> None:
        """What the writer does when the new version first runs over an older log."""
        switch = len(self.records)
        owners = [
            (i, {"emp": employee_of(parse(r.data))} if employee_of(parse(r.data)) else {})
            for i, r in enumerate(self.records)
        ]
        owners.append((switch, {}))
        self.add("format", version=1, to=2)
        for emp in sorted({o["emp"] for _s, o in owners if o}):
            k = hashlib.sha256(f"key of {emp}".encode()).digest()
            self.add("tagkey", emp=emp, tagkey=b64(k))
        for body in late_tag_bodies(LOG, owners, self.keys):
            self.add("tagindex", **body)


def bundle(
    log: Log, employee: str, *, start: int = 0, withhold: tuple[int, ...] = (), bare: tuple[int, ...] = ()
) -> dict[str, bytes]:
    """The bundle's files for ``employee``: their records (and the one giving their tag key) disclosed with proofs,
    seals and the switch's records in system.jsonl, every other record as its leaves.txt line. ``withhold`` leaves
    seqs out as a hostile exporter would (files, manifest count; the line stays), ``bare`` lists seqs as a bare leaf
    hash instead of tag and hash."""
    witness = SigningKey.generate()
    records, end = log.records, len(log.records)
    leaves = [r.leaf for r in records]
    checkpoint = note.Checkpoint(LOG, end, root(leaves))
    cosigned = (T0 + 1000 * end) // 1000 + 5
    text = note.render(
        checkpoint, [note.sign(checkpoint, log.key), note.cosign(checkpoint, witness, "witness", cosigned)]
    )
    compact = CompactRange()
    compact.extend(leaves[:start])
    fields = [parse(r.data) for r in records]
    theirs = [s for s, f in enumerate(fields) if employee_of(f) == employee and (s >= start or "tagkey" in f)]
    given = [s for s in theirs if "tagkey" in fields[s]]
    theirs = [s for s in theirs if s >= start or s == given[0]]
    theirs = [s for s in theirs if s not in withhold]
    proofs = inclusion_proofs(leaves, theirs)
    files: dict[str, bytes] = {}
    for s in theirs:
        files[f"logs/0/records/{s}.json"] = records[s].data
        files[f"logs/0/records/{s}.sig"] = records[s].sig
        files[f"logs/0/records/{s}.proof.json"] = json.dumps(
            {"index": s, "size": end, "hashes": [h.hex() for h in proofs[s]]}
        ).encode()
    files["logs/0/system.jsonl"] = "".join(
        json.dumps({"seq": s, "data": records[s].data.decode(), "sig": b64(records[s].sig)}) + "\n"
        for s in range(start, end)
        if fields[s]["type"] in ("seal", "format", "tagindex")
    ).encode()
    files["logs/0/leaves.txt"] = "".join(
        (leaves[s].hex() if s in bare else undisclosed_line(records[s].data, leaves[s])) + "\n"
        for s in range(start, end)
    ).encode()
    files["logs/0/checkpoints.jsonl"] = (json.dumps({"size": end, "note": text}) + "\n").encode()
    info = {"log": LOG, "plant": "p1", "appliance": "pi-01", "from_seq": start, "to_size": end}
    files["logs/0/log.json"] = json.dumps(
        {**info, "compact": [h.hex() for h in compact.hashes], "witnessed_to": True}
    ).encode()
    files["keys/a.pem"] = log.key.verify_key.pem().encode()
    files["keys/witness.pem"] = witness.verify_key.pem().encode()
    files["keys/registry.json"] = json.dumps(
        [
            {
                "log": LOG,
                "kid": log.key.kid,
                "file": "a.pem",
                "valid_from_seq": 0,
                "valid_to_seq": None,
                "revoked_at": None,
            }
        ]
    ).encode()
    files["manifest.json"] = json.dumps(
        {
            "format": "punchproof-evidence/4",  # unsigned (signed manifests: tests/cloud/test_report_checked.py)
            "employee": employee,
            "period": {"from": "2026-03-02", "to": "2026-03-02"},
            "plants": [{"id": "p1", "name": "P", "timezone": "Asia/Shanghai"}],
            "logs": [{**info, "disclosed": len(theirs)}],
            "witness_kid": witness.kid,
        }
    ).encode()
    return files


def verified(files: dict[str, bytes]):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in {**files, SUMS: sha256sums(files)}.items():
            archive.writestr(name, data)
    return verify_bundle(out.getvalue())


def owner_check(report):
    return next(c for c in report.checks if c.name.endswith("owner tags"))


def plant_day() -> Log:
    log = Log()
    log.add("seal")
    log.punch(F)
    log.punch(E)
    log.add("seal")
    log.punch(F)
    log.punch(E)  # seq 5: the one a hostile exporter takes out
    log.add("seal")
    return log


def test_an_honest_bundle_passes_the_owner_tag_check():
    report = verified(bundle(plant_day(), E))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert owner_check(report).ok and report.tag_checks[LOG]["checked"]
    assert [d["seq"] for d in report.disclosed] == [2, 5]


def test_withholding_one_of_the_employees_punches_is_detected():
    report = verified(bundle(plant_day(), E, withhold=(5,)))
    assert not report.ok
    assert "第 5 条记录属于该员工但未披露" in owner_check(report).detail
    assert not report.tag_checks[LOG]["checked"]


def test_hiding_the_tag_behind_a_bare_leaf_hash_is_detected():
    """The withheld record listed by its leaf hash alone: the root still matches, but the seq has no tag."""
    report = verified(bundle(plant_day(), E, withhold=(5,), bare=(5,)))
    assert not report.ok
    assert "第 5 条记录没有归属标记" in owner_check(report).detail


def test_withholding_the_record_that_gave_the_key_is_detected():
    """Without the employee's key nothing could be checked: so the bundle must disclose it."""
    report = verified(bundle(plant_day(), E, withhold=(2,)))
    assert not report.ok
    assert "未披露该员工在此日志中的归属密钥" in owner_check(report).detail


def test_a_range_after_the_key_carries_the_key_record_with_its_proof():
    """A bundle starting after the employee's first record still discloses that record, proven into the range's
    checkpoint, so that the key is there for an absence day with no punch of theirs."""
    log = plant_day()
    log.add("seal")
    log.punch(F)
    log.add("seal")
    report = verified(bundle(log, E, start=6))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.disclosed == []  # the key's record is not a record of the period
    assert "none of the undisclosed is theirs" in owner_check(report).detail
    late = verified(bundle(log, E, start=4, withhold=(5,)))
    assert "第 5 条记录属于该员工但未披露" in owner_check(late).detail


def test_a_bundle_for_one_worker_lets_no_one_recognise_anothers_records():
    """E's bundle holds nothing of F's key, and F's tags are unlike each other and unlike E's: a reader with E's key
    (or none) cannot tell F's records from a seal's."""
    log = plant_day()
    files = bundle(log, E)
    f_key = hashlib.sha256(f"key of {F}".encode()).digest()
    blob = b"".join(files.values())
    assert f_key.hex().encode() not in blob and b64(f_key).encode() not in blob
    lines = files["logs/0/leaves.txt"].decode().split("\n")
    f_tags = [bytes.fromhex(lines[s].split()[0]) for s in (1, 4)]
    e_key = hashlib.sha256(f"key of {E}".encode()).digest()
    assert f_tags[0] != f_tags[1]
    assert all(owner_tag(e_key, LOG, s) not in f_tags for s in range(len(log.records)))
    report = verified(files)
    assert report.ok and all(employee_of(d["fields"]) == E for d in report.disclosed)
    assert all(len(bytes.fromhex(line.split()[0])) == TAG_SIZE for line in lines if line)


def old_log_switched() -> Log:
    """A log written by the old software (version 1), then switched, then written in version 2."""
    log = Log()
    log.add("seal", version=1)
    log.punch(E, version=1)  # seq 1: tagged late, by the switch's tagindex
    log.punch(F, version=1)
    log.switch_to_v2()  # seq 3 format, 4-5 tag keys, 6 tagindex
    log.add("seal")
    log.punch(E)
    log.add("seal")
    return log


def test_a_bundle_spanning_the_switch_verifies_and_says_the_older_tags_came_late():
    log = old_log_switched()
    assert [parse(r.data)["type"] for r in log.records[3:7]] == ["format", "tagkey", "tagkey", "tagindex"]
    report = verified(bundle(log, E))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.tag_checks[LOG]["late"] == [{"from": 0, "to": 4, "at_ms": T0 + 6000}]
    assert [d["seq"] for d in report.disclosed] == [1, 8]


def test_withholding_a_record_from_before_the_switch_is_detected_too():
    report = verified(bundle(old_log_switched(), E, withhold=(1,)))
    assert "第 1 条记录属于该员工但未披露" in owner_check(report).detail


def test_a_version_1_log_says_it_cannot_show_that_nothing_was_withheld():
    log = Log()
    log.add("seal", version=1)
    log.punch(E, version=1)
    log.punch(E, version=1)
    files = bundle(log, E, withhold=(2,))
    files["logs/0/leaves.txt"] = "".join(r.leaf.hex() + "\n" for r in log.records).encode()
    report = verified(files)
    assert report.ok  # a bundle of an older log still verifies...
    assert not report.tag_checks[LOG]["checked"]  # ...but the absence cannot rest on tags, and it says so
    assert "无法证明没有隐瞒该员工的记录" in owner_check(report).detail
