"""MANUAL-CHECKS.md works by hand (issue #22.10): every shell block of it, run as written under dash (Debian's
/bin/sh) and under bash in the unzipped bundle, keeps what the text promises (each ``echo '…: OK'``, ``Signature
Verified Successfully`` per ``openssl pkeyutl -verify``, ``Verification: OK`` per ``openssl ts -verify``), for a
bundle with one appliance key, one whose range spans a key rotation (the record and its checkpoint signed by
different keys), both stamped by a real OpenSSL TSA, and a case's bundle; and a record with one byte changed, or
an inclusion proof with one hash changed, makes the documented check fail."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from cloud.appliances import registry
from cloud.evidence.export import export_bundle
from cloud.evidence.witness_log import WitnessLog
from cloud.store import CloudCheckpoint, LogHead, LogRecord, Punch, open_db
from ledger import GENESIS_PREV, SigningKey, VerifyKey, canonical, leaf_hash, note
from ledger.merkle import CompactRange
from ledger.record import RECORD_DOMAIN
from tests.cloud.test_evidence import stamped_export, tsa, world  # noqa: F401  (fixtures)
from tests.cloud.test_evidence_documents import world as case_world  # noqa: F401  (a fixture)
from tests.harness.clock import FrozenClock

SHELLS = ("dash", "bash")


def shell_blocks(manual: str) -> dict[str, str]:
    """Every shell block of the text, indented or fenced, by the name its first line gives (``# <name>: …``), in
    order; each as the reader would paste it."""
    indented = ["".join(line[4:] + "\n" for line in b.splitlines()) for b in re.findall(r"\n\n((?:    .*\n)+)", manual)]
    fenced = re.findall(r"^```(?:sh|bash|shell)?\n(.*?)^```", manual, re.S | re.M)
    named = {}
    for block in indented + fenced:
        name = re.match(r"# ([a-z]+):", block)
        assert name, f"a shell block without its name:\n{block}"
        assert name[1] not in named, name[1]
        named[name[1]] = block
    return named


def unzipped(bundle: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(folder)
    return folder


def run(folder: Path, shell: str, script: str, *, errexit: bool = True) -> subprocess.CompletedProcess[str]:
    command = [shell, "-e", "-c", script] if errexit else [shell, "-c", script]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)


def assert_kept(name: str, script: str, done: subprocess.CompletedProcess[str]) -> None:
    """The block ran to its end and printed every outcome the text promises for it."""
    said = f"block {name!r}:\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, said
    for ok in re.findall(r"echo '([^']*: OK)'", script):
        assert ok in done.stdout.splitlines(), said
    assert done.stdout.count("Signature Verified Successfully") == script.count("openssl pkeyutl -verify"), said
    assert done.stdout.count("Verification: OK") == script.count("openssl ts -verify"), said
    assert "FAILED" not in done.stdout and "differ" not in done.stdout, said


def run_every_block(bundle: bytes, folder: Path) -> dict[str, dict[str, str]]:
    """Every block, in order, under each shell in a fresh copy of the bundle: what each printed, by shell and name."""
    files = unpack(bundle)
    blocks = shell_blocks(files["MANUAL-CHECKS.md"].decode())
    printed: dict[str, dict[str, str]] = {}
    for shell in SHELLS:
        where = unzipped(bundle, folder / shell)
        printed[shell] = {}
        for name, script in blocks.items():
            done = run(where, shell, script)
            assert_kept(f"{shell}: {name}", script, done)
            printed[shell][name] = done.stdout
    return printed


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def named_keys(blocks: dict[str, str]) -> tuple[str, str]:
    """The key files the text names for the example record and for its checkpoint."""
    record = re.search(r"# record: \S+ signed by (keys/\S+)", blocks["record"])
    checkpoint = re.search(r"# checkpoint: size \d+, signed by (keys/\S+)", blocks["checkpoint"])
    assert record and checkpoint
    return record[1], checkpoint[1]


@pytest.fixture
def stamped(world, tsa, tmp_path):  # noqa: F811
    return stamped_export(world, tsa, tmp_path)


def test_every_block_runs_as_written_under_dash_and_bash(world, stamped, tmp_path):  # noqa: F811
    files = unpack(stamped)
    blocks = shell_blocks(files["MANUAL-CHECKS.md"].decode())
    rotated = any(e["valid_from_seq"] > 0 for e in json.loads(files["keys/registry.json"]))
    expected = ["files", "record", "checkpoint", "cosignature", "inclusion"] + (["rotation"] if rotated else [])
    assert list(blocks) == [*expected, "timestamp", "anchors"]
    printed = run_every_block(stamped, tmp_path)
    assert printed["dash"] == printed["bash"]
    out = printed["dash"]
    assert "2026" in out["cosignature"].splitlines()[-1], "the cloud's witness time, as a date"
    # the fingerprints to compare are the bundle's keys' kids, in hex
    kids = [world["witness"].verify_key.kid] + [e["kid"] for e in json.loads(files["keys/registry.json"])]
    listed = [line.split()[0] for line in out["anchors"].splitlines() if not line.startswith("sha256 Fingerprint=")]
    assert listed == [base64.b64decode(kid).hex() for kid in kids]
    assert "sha256 Fingerprint=" in out["anchors"]  # the TSA's root
    # the record and its checkpoint are each checked with the key the registry gives for their seqs: after a
    # rotation in the range, two different keys (the old text named the first key for both, and failed)
    record_key, checkpoint_key = named_keys(blocks)
    assert (record_key != checkpoint_key) == rotated
    if rotated:
        assert "# rotation: record 333 hands the log from " + record_key + " to " + checkpoint_key in blocks["rotation"]


def test_the_body_files_are_the_bytes_each_signature_covers(world, stamped):  # noqa: F811
    files = unpack(stamped)
    (record_body,) = [n for n in files if re.fullmatch(r"manual/record-\d+-\d+/body\.txt", n)]
    base, seq = re.fullmatch(r"manual/record-(\d+)-(\d+)/body\.txt", record_body).groups()
    sig = files[f"logs/{base}/records/{seq}.sig"]
    assert files[record_body].startswith(RECORD_DOMAIN) and len(files[record_body]) == len(RECORD_DOMAIN) + 32
    registry = json.loads(files["keys/registry.json"])
    keys = [VerifyKey.from_pem(files[f"keys/{e['file']}"].decode()) for e in registry]
    assert sum(_verifies(k, sig, files[record_body]) for k in keys) == 1
    (folder,) = {n.rsplit("/", 1)[0] for n in files if n.startswith("manual/checkpoint-")}
    body = files[f"{folder}/body.txt"].decode()
    assert len(body.splitlines()) == 3 and body.endswith("\n")
    assert sum(_verifies(k, files[f"{folder}/sig.bin"], body.encode()) for k in keys) == 1
    cosigned = files[f"{folder}/cosigned.txt"]
    assert cosigned.startswith(b"cosignature/v1\ntime ") and cosigned.endswith(body.encode())
    assert _verifies(world["witness"].verify_key, files[f"{folder}/cosig.bin"], cosigned)
    # the manifest lists them, so the signed manifest binds them like every other file
    listed = json.loads(files["manifest.json"])["files"]
    assert all(listed.get(n) for n in files if n.startswith("manual/"))


def _verifies(key: VerifyKey, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(sig, data)
    except Exception:  # noqa: BLE001  (any refusal: not this key's signature)
        return False
    return True


@pytest.mark.parametrize("shell", SHELLS)
def test_a_changed_byte_fails_the_documented_checks(stamped, tmp_path, shell):
    files = unpack(stamped)
    blocks = shell_blocks(files["MANUAL-CHECKS.md"].decode())
    record = re.search(r"# record: (\S+) signed by", blocks["record"])[1]
    folder = unzipped(stamped, tmp_path / "bundle")
    data = (folder / record).read_bytes()
    (folder / record).write_bytes(data.replace(b'"emp":"1001"', b'"emp":"1009"', 1))
    assert (folder / record).read_bytes() != data
    files_check = run(folder, shell, blocks["files"], errexit=False)
    assert f"{record}: FAILED" in files_check.stdout, files_check.stdout
    as_written = run(folder, shell, blocks["record"])
    assert as_written.returncode != 0 and "differ" in as_written.stdout, as_written.stdout + as_written.stderr
    assert "Signature Verified Successfully" not in as_written.stdout
    line_by_line = run(folder, shell, blocks["record"], errexit=False)  # as a reader pastes it: every line runs
    assert "Signature Verification Failure" in line_by_line.stdout + line_by_line.stderr
    assert "SHA-256 = line" not in line_by_line.stdout and "body.txt is the signed bytes: OK" not in line_by_line.stdout
    # and a proof with one sibling changed does not lead to the checkpoint's root
    folder = unzipped(stamped, tmp_path / "proof")
    for name in ("files", "record", "checkpoint", "cosignature"):
        assert run(folder, shell, blocks[name]).returncode == 0
    sibling = re.search(r"echo ([0-9a-f]{64}) \| xxd", blocks["inclusion"])[1]
    changed = blocks["inclusion"].replace(sibling, sibling[:-1] + ("0" if sibling[-1] != "0" else "1"), 1)
    done = run(folder, shell, changed)
    assert done.returncode != 0 and "differ" in done.stdout and "root of checkpoint" not in done.stdout


def test_a_case_bundle_runs_as_written(case_world, tmp_path):  # noqa: F811
    blocks = shell_blocks(unpack(case_world.case_bundle)["MANUAL-CHECKS.md"].decode())
    assert "case" in blocks and "record" in blocks and "inclusion" in blocks, list(blocks)
    printed = run_every_block(case_world.case_bundle, tmp_path)
    assert printed["dash"]["case"] == printed["bash"]["case"] == ""  # nothing missing


def untagged_bundle(tmp_path: Path, version: int) -> bytes:
    """A bundle of a log whose records carry no owner tag, their leaves ``SHA-256(0x00 || record)``: a version 1
    log's, or, with ``version`` 2, records labelled 2 without their tag as bench/evidence_bundle.py wrote them
    (MANUAL-CHECKS.md raised KeyError 'tag' on them). The cloud's database is written as ingest leaves it: records,
    punches, one cosigned checkpoint per sync, the witness log sealed over them."""
    log = "punchproof/untagged/pi-01/1"
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in the plant
    clock = FrozenClock(start)
    db = open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    key, witness = SigningKey.generate(), SigningKey.generate()
    appliance = registry.register(
        {"plant": "untagged", "appliance": "pi-01", "log": log, "public_key": key.verify_key.pem()}, clock
    )
    prev, tree = GENESIS_PREV, CompactRange()
    punches = {3: ("1001", 0), 5: ("1002", 0), 40: ("1001", 1)}
    for seq in range(60):
        at = start + timedelta(minutes=seq)
        t_ms = int(at.timestamp() * 1000)
        fields = {
            "v": version,
            "log": log,
            "seq": seq,
            "type": "punch" if seq in punches else "seal",
            "salt": base64.b64encode(bytes([seq]) * 16).decode(),
            "prev": base64.b64encode(prev).decode(),
            "t_wall_ms": t_ms,
            "t_boot_us": seq * 60_000_000,
            "boot_id": "boot-1",
            "clk": {"sync": 1, "src": "chrony", "err_us": 800},
            "kid": key.kid,
        }
        emp = None
        if seq in punches:
            emp, state = punches[seq]
            local = (at + timedelta(hours=8)).replace(tzinfo=None).isoformat()
            term = {"name": "gate-1", "sn": "ZK-1", "t": local, "tz": "Asia/Shanghai", "state": state, "verify": 1}
            fields |= {"emp": emp, "src": "zk", "term": term | {"wc": 0, "idx": seq, "off_ms": 0, "raw": ""}}
            Punch.create(
                appliance=appliance, seq=seq, employee=emp, terminal="gate-1", terminal_sn="ZK-1", device_time=local,
                at_utc_ms=t_ms, state=state, verify=1, received_ms=t_ms,
            )  # fmt: skip
        else:
            fields["why"] = "minute"
        data = canonical.encode(fields)
        prev = leaf_hash(data)
        tree.append(prev)
        LogRecord.create(
            appliance=appliance, seq=seq, type=fields["type"], data=data, sig=key.sign(RECORD_DOMAIN + prev),
            leaf=prev, t_wall_ms=t_ms, employee=emp, received_ms=t_ms,
        )  # fmt: skip
        checkpoint = note.Checkpoint(log, tree.size, tree.root())
        cosigned_at = t_ms // 1000 + 30
        CloudCheckpoint.create(
            appliance=appliance, size=tree.size, root=checkpoint.root,
            note=note.render(checkpoint, [note.sign(checkpoint, key)]),
            cosignature=note.cosign(checkpoint, witness, "test-cloud/witness", cosigned_at).line(),
            cosigned_at=cosigned_at, received_ms=cosigned_at * 1000,
        )  # fmt: skip
    head = LogHead.get(LogHead.appliance == appliance)
    head.seq, head.leaf, head.compact = 59, prev, "[]"
    head.save()
    clock.advance(days=2)
    WitnessLog(witness, clock).seal()
    try:
        return export_bundle(
            "1001", date(2026, 3, 2), date(2026, 3, 2), witness=witness.verify_key, clock=clock,
            witness_log=WitnessLog(witness, clock),
        )  # fmt: skip
    finally:
        db.close()


@pytest.mark.parametrize("version", [1, 2], ids=["version-1-log", "labelled-2-without-tag"])
def test_a_bundle_of_untagged_records_is_worked_by_its_version_1_leaves(tmp_path, version):
    """A record without an owner tag is worked by hand as leaves.txt gives its line, its version 1 leaf hash
    (bench/evidence_bundle.py's export raised KeyError 'tag' for records labelled 2 without one)."""
    bundle = untagged_bundle(tmp_path, version)
    blocks = shell_blocks(unpack(bundle)["MANUAL-CHECKS.md"].decode())
    assert list(blocks)[:5] == ["files", "record", "checkpoint", "cosignature", "inclusion"], list(blocks)
    assert "(printf '\\000'; cat logs/" in blocks["record"] and "tag.bin" not in blocks["record"]
    printed = run_every_block(bundle, tmp_path)
    assert printed["dash"] == printed["bash"]
    assert "leaf = line" in printed["dash"]["record"] and "root of checkpoint" in printed["dash"]["inclusion"]
