"""FORMAT.md is enough to build a verifier (issue #22 item 9): ``tests/independent/verifier.py``, written from
ledger/FORMAT.md alone (standard library and the openssl command line), verifies every kind of bundle the product
exports, and fails each of them tampered with as the employer, who holds the database and the keys, could tamper:

- a byte of a disclosed record changed;
- one of the employee's punches withheld (its files removed, the manifest listing and signed again, SHA256SUMS
  made again);
- the third-party time of the employee's punches taken away (every RFC 3161 stamp dropped but the export's own, a
  day and more after the punches; the manifest signed again).

The bundles: a whole log range and a mid-log one (``compact``, the employee's tag key record before the range), each
with one appliance key and with a key rotation inside the range (and before the mid-log range), stamped by a real
OpenSSL TSA; a case's bundle (the cloud's evidence log, its notices and documents). The demo's own bundle is
checked in tests/e2e/test_demo.py.
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
from tests.independent.worlds import LOG, MONDAY, TUESDAY, World, tsa_server

UNLISTED = ("manifest.json", "manifest.sig", "manifest.tsr", "SHA256SUMS")


@pytest.fixture(scope="module", params=[False, True], ids=["one-key", "key-rotated"])
def two_days(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("independent")
    with tsa_server(folder / "tsa") as tsa:
        made = World(folder, rotated=request.param, tsa=tsa).build()
        made.bundles = {"whole": made.export(MONDAY, TUESDAY), "mid-log": made.export(TUESDAY, TUESDAY)}
        made.close()
        yield made


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


def check(made: World, files: dict[str, bytes], **kwargs: object) -> verifier.Verifier:
    return verifier.verify(files, made.witness.verify_key.pem().encode(), made.tsa.ca_pem, **kwargs)


@pytest.mark.parametrize("kind", ["whole", "mid-log"])
def test_every_bundle_of_a_log_verifies_independently(two_days, kind):
    files = unpack(two_days.bundles[kind])
    info = json.loads(files["logs/0/log.json"])
    assert info["log"] == LOG
    if kind == "mid-log":  # a range that starts inside the log: the tree before it as its compact range
        assert info["from_seq"] > 0 and info["compact"], info
        assert any(int(n.rsplit("/", 1)[1].split(".")[0]) < info["from_seq"] for n in punch_files(files))
    registry = [k for k in json.loads(files["keys/registry.json"]) if k["log"] == LOG]
    if two_days.rotated:  # the rotation inside the whole range; before the mid-log one
        inside = info["from_seq"] < registry[-1]["valid_from_seq"] < info["to_size"]
        assert len(registry) == 2 and inside == (kind == "whole"), registry
    assert len(punch_files(files)) >= (3 if kind == "mid-log" else 4)  # Monday's in, and the range's ins and outs
    result = check(two_days, files)
    assert not result.failures, result.failures
    assert any(n.startswith("witness/stamps/") for n in files), "stamped by the TSA"


@pytest.mark.parametrize("kind", ["whole", "mid-log"])
@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_tampered_bundle_fails_independently(two_days, kind, tamper):
    edit, expected = TAMPERS[tamper]
    files = resigned(edit(unpack(two_days.bundles[kind])), two_days.evidence)
    result = check(two_days, files)
    assert any(e in f for f in result.failures for e in expected), result.failures


def test_an_edited_bundle_whose_sums_were_not_made_again_fails(two_days):
    files = change_a_record_byte(unpack(two_days.bundles["whole"]))
    assert check(two_days, files).failures[0].startswith("SHA256SUMS")


def test_another_witness_key_pinned_fails(two_days):
    result = verifier.verify(unpack(two_days.bundles["whole"]), SigningKey.generate().verify_key.pem().encode())
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
