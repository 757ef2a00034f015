"""FORMAT.md is enough to build a verifier (issue #22 item 9): ``tests/independent/verifier.py``, written from
ledger/FORMAT.md alone (standard library and the openssl command line), verifies every kind of bundle the product
exports, and fails each of them tampered with as the employer, who holds the database and the keys, could tamper:

- a byte of a disclosed record changed;
- one of the employee's punches withheld (its files removed, the manifest listing and signed again, SHA256SUMS
  made again);
- the third-party time of the employee's punches taken away (every RFC 3161 stamp dropped but the export's own, a
  day and more after the punches; the manifest signed again).

The bundles: a whole log range and a mid-log one (``compact``, the employee's tag key record before the range), each
with one appliance key and with a key rotation inside the range (and before the mid-log range); a log begun in
version 1 and switched to version 2 by the appliance's own writer (a range of version 1 records, one across the
switch, one after it), all stamped by a real OpenSSL TSA; a case's bundle (the cloud's evidence log, its notices
and documents). The demo's own bundle is checked in tests/e2e/test_demo.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable

import pytest

from ledger import SigningKey
from tests.cloud.test_evidence_documents import world  # noqa: F401 - the case's bundle, a module fixture
from tests.independent import verifier
from tests.independent.worlds import LOG, MONDAY, TUESDAY, SwitchedWorld, World, tsa_server

UNLISTED = ("manifest.json", "manifest.sig", "manifest.tsr", "SHA256SUMS")


KINDS = {  # bundle kind -> (world, first day, last day)
    "one-key/whole": ("one-key", MONDAY, TUESDAY),
    "one-key/mid-log": ("one-key", TUESDAY, TUESDAY),
    "key-rotated/whole": ("key-rotated", MONDAY, TUESDAY),
    "key-rotated/mid-log": ("key-rotated", TUESDAY, TUESDAY),
    "v1-switched/v1": ("v1-switched", MONDAY, MONDAY),
    "v1-switched/across": ("v1-switched", MONDAY, TUESDAY),
    "v1-switched/v2-mid-log": ("v1-switched", TUESDAY, TUESDAY),
}
_BUILT: dict[str, World | SwitchedWorld] = {}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """The worlds, each built on first use (a few seconds each) with its TSA, and its bundles exported once."""
    servers = []

    def get(name: str) -> World | SwitchedWorld:
        if name not in _BUILT:
            folder = tmp_path_factory.mktemp(name)
            tsa = tsa_server(folder / "tsa")
            tsa.start()
            servers.append(tsa)
            made = SwitchedWorld(folder, tsa) if name == "v1-switched" else World(folder, name == "key-rotated", tsa)
            made.build()
            made.bundles = {k: made.export(a, b) for k, (w, a, b) in KINDS.items() if w == name}
            made.close()
            _BUILT[name] = made
        return _BUILT[name]

    yield get
    for server in servers:
        server.stop()
    _BUILT.clear()


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def resigned(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    """What the employer holding the evidence key can do after editing: list every file's new hash in the manifest,
    make its bundle_id again, sign it again and make SHA256SUMS again (the TSA's stamp of the old manifest goes)."""
    files = {n: d for n, d in files.items() if n not in ("manifest.tsr", "SHA256SUMS")}
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items()) if n not in UNLISTED}
    derived = {*UNLISTED, "MANUAL-CHECKS.md", "report.html", "report.pdf"}
    evidence = sorted(n for n in files if n not in derived and not n.startswith("manual/"))
    listing = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in evidence).encode()
    manifest["bundle_id"] = hashlib.sha256(listing).hexdigest()
    text = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    files = {**files, "manifest.json": text, "manifest.sig": key.sign(text)}
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())).encode()
    return {**files, "SHA256SUMS": sums}


def punch_files(files: dict[str, bytes]) -> list[str]:
    """The employee's disclosed punches (records/<seq>.json), first first."""
    names = [
        n
        for n, d in files.items()
        if "/records/" in n and n.endswith(".json") and not n.endswith(".proof.json") and b'"type":"punch"' in d
    ]
    return sorted(names, key=lambda n: int(n.rsplit("/", 1)[1].split(".")[0]))


def change_a_record_byte(files: dict[str, bytes]) -> dict[str, bytes]:
    name = punch_files(files)[0]
    data = files[name]
    at = data.index(b'"t":"') + len(b'"t":"2026-03-0')  # the terminal's day: 2 -> 1, still canonical JSON
    return {**files, name: data[:at] + bytes([data[at] - 1]) + data[at + 1 :]}


def withhold_a_punch(files: dict[str, bytes]) -> dict[str, bytes]:
    name = punch_files(files)[-1]
    stem = name[: -len(".json")]
    return {n: d for n, d in files.items() if n not in (name, stem + ".sig", stem + ".proof.json")}


def drop_stamps(files: dict[str, bytes]) -> dict[str, bytes]:
    """Every witness checkpoint's stamps dropped but the export's (the latest): what covers the punches then is a
    stamp a day and more after them."""
    listed = [json.loads(line) for line in files["witness/checkpoints.jsonl"].decode().splitlines()]
    latest = max(item["size"] for item in listed)
    dropped = [s["file"] for item in listed if item["size"] != latest for s in item["stamps"]]
    assert dropped, "the bundle has stamps besides the export's"
    for item in listed:
        if item["size"] != latest:
            item["stamps"] = []
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in listed).encode()
    return {**{n: d for n, d in files.items() if n not in dropped}, "witness/checkpoints.jsonl": text}


TAMPERS: dict[str, tuple[Callable[[dict[str, bytes]], dict[str, bytes]], tuple[str, ...]]] = {
    "record-byte": (change_a_record_byte, ("与 leaves.txt 不符", "签名无效")),  # the tag key's, before a mid-log range
    "punch-withheld": (withhold_a_punch, ("属于该员工但未披露",)),
    "stamps-dropped": (drop_stamps, ("小时才取得时间戳",)),
}


def check(made: World | SwitchedWorld, files: dict[str, bytes], **kwargs: object) -> verifier.Verifier:
    return verifier.verify(files, made.witness.verify_key.pem().encode(), made.tsa.ca_pem, **kwargs)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_bundle_of_a_log_verifies_independently(worlds, kind):
    made = worlds(KINDS[kind][0])
    files = unpack(made.bundles[kind])
    info = json.loads(files["logs/0/log.json"])
    assert info["log"] == LOG
    if "mid-log" in kind:  # a range that starts inside the log: the tree before it as its compact range
        assert info["from_seq"] > 0 and info["compact"], info
        seqs = [int(n.split("/")[-1].split(".")[0]) for n in files if n.startswith("logs/0/records/")]
        if not kind.startswith("v1-switched"):  # there, the range reaches back to the switch's tagkey records
            assert min(seqs) < info["from_seq"], "the record giving the employee's tag key, before the range"
    else:
        assert info["from_seq"] == 0 and info["compact"] == [], info
    registry = [k for k in json.loads(files["keys/registry.json"]) if k["log"] == LOG]
    if made.rotated:  # the rotation inside the whole range; before the mid-log one
        inside = info["from_seq"] < registry[-1]["valid_from_seq"] < info["to_size"]
        assert len(registry) == 2 and inside == kind.endswith("whole"), registry
    if kind.startswith("v1-switched"):  # version 1 records (a bare leaf hash) and version 2 (tag and hash)
        widths = {len(line.split()) for line in files["logs/0/leaves.txt"].decode().splitlines()}
        assert widths == {1, 2}, widths  # the Tuesday range too: it begins at the (version 1) format record
    assert punch_files(files), "the employee's punches are disclosed"
    assert any(n.startswith("witness/stamps/") for n in files), "stamped by the TSA"
    result = check(made, files)
    assert not result.failures, result.failures


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_tampered_bundle_fails_independently(worlds, kind, tamper):
    made = worlds(KINDS[kind][0])
    edit, expected = TAMPERS[tamper]
    files = resigned(edit(unpack(made.bundles[kind])), made.evidence)
    result = check(made, files)
    assert any(e in f for f in result.failures for e in expected), result.failures


def test_an_edited_bundle_whose_sums_were_not_made_again_fails(worlds):
    made = worlds("one-key")
    files = change_a_record_byte(unpack(made.bundles["one-key/whole"]))
    assert check(made, files).failures[0].startswith("SHA256SUMS")


def test_a_file_the_verifier_does_not_know_is_fine_when_the_signed_manifest_lists_it(worlds):
    """Other files come (manual/…, a new record type's attachments): the rules, not today's file list, decide."""
    made = worlds("one-key")
    files = {
        **unpack(made.bundles["one-key/mid-log"]),
        "manual/extra/notes.txt": "将来的文件 / a later file\n".encode(),
    }
    assert not check(made, resigned(files, made.evidence)).failures
    unlisted = {**files, "SHA256SUMS": files["SHA256SUMS"] + b"%s  manual/extra/notes.txt\n" % hashlib.sha256(
        files["manual/extra/notes.txt"]).hexdigest().encode()}  # fmt: skip
    assert any("manifest files differ" in f for f in check(made, unlisted).failures)


def test_a_log_said_to_end_with_the_range_fails_against_the_witness_logs_committed_heads(worlds):
    """The exporter names the range's last checkpoint as the log's latest and drops the next one: "the appliance
    stopped". The witness checkpoint's heads/1 line commits a later entry of the log (FORMAT.md, "Per-log heads")."""
    made = worlds("one-key")
    files = unpack(made.bundles["one-key/whole"])
    heads = [json.loads(line) for line in files["witness/heads.jsonl"].decode().splitlines()]
    assert {h["role"] for h in heads if h["log"] == LOG} == {"latest", "next"}, "the log goes on past the range"
    entries = [json.loads(line) for line in files["witness/entries.jsonl"].decode().splitlines()]
    end = max((e for e in entries if json.loads(e["data"])["log"] == LOG), key=lambda e: json.loads(e["data"])["size"])
    cut = [h for h in heads if h["log"] != LOG] + [{"log": LOG, "role": "latest", **end}]
    files["witness/heads.jsonl"] = "".join(json.dumps(h) + "\n" for h in cut).encode()
    failures = check(made, resigned(files, made.evidence)).failures
    assert any("最新见证检查点" in f for f in failures), failures


def test_another_witness_key_pinned_fails(worlds):
    files = unpack(worlds("one-key").bundles["one-key/whole"])
    result = verifier.verify(files, SigningKey.generate().verify_key.pem().encode())
    assert any("not the pinned witness key" in f for f in result.failures), result.failures


# -- a case's bundle: the cloud's evidence log, its notices and documents ----------------------------------------


def test_a_case_bundle_verifies_independently_and_fails_without_its_certificate(world):  # noqa: F811
    files = unpack(world.case_bundle)
    assert json.loads(files["manifest.json"])["case"]["ref"] == f"case-{world.case_id}"
    pinned = world.witness_pem.read_bytes()
    result = verifier.verify(files, pinned, allow_untimed=True)  # the documents world runs no TSA
    assert not result.failures, result.failures
    certificate = f"cloud/notices/{world.certificate.pdf_sha256}.pdf"
    stripped = resigned({n: d for n, d in files.items() if n != certificate}, world.evidence)
    failures = verifier.verify(stripped, pinned, allow_untimed=True).failures
    assert any(world.certificate.pdf_sha256 in f for f in failures), failures
    edited = resigned(change_a_cloud_record(files), world.evidence)
    assert verifier.verify(edited, pinned, allow_untimed=True).failures


def change_a_cloud_record(files: dict[str, bytes]) -> dict[str, bytes]:
    cloud = next(n[: -len("log.json")] for n, d in files.items() if n.endswith("log.json") and b'"cloud"' in d)
    name = next(n for n in sorted(files) if n.startswith(cloud + "records/") and n.endswith(".json"))
    data = files[name]
    at = data.index(b'"salt":"') + len(b'"salt":"')
    return {**files, name: data[:at] + (b"A" if data[at : at + 1] != b"A" else b"B") + data[at + 1 :]}
