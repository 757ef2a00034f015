"""Pinning keys (issue #22, item 5): ``punchproof verify`` never gives a full pass on keys taken from the bundle
itself (exit 5, "公钥未经独立核对"), appliance keys can be pinned (``--appliance-key``: a PEM file or its
fingerprint), and each appliance key's fingerprint is registered, dated, in the cloud's signed evidence log; the
bundle carries those records and its report shows them (设备公钥登记).

The bundle checks (``assert_...``) run on the exports test_evidence makes anyway: an export costs seconds.
"""

from __future__ import annotations

import base64
import json

import pytest

from ledger import SigningKey
from ledger.evidence import PIN_HOWTO_ZH, UNPINNED_ZH, key_pin
from tests.cloud.test_third_party_time import verify_cli as pinned_verify_cli

UNPINNED_SENTENCE = "公钥未经独立核对 / the public keys were not checked against copies obtained independently"


def run_verify(bundle: bytes, tmp_path, *args: str) -> tuple[int, str]:
    """``punchproof verify`` without the witness key pinned unless ``args`` pin it."""
    import io
    from contextlib import redirect_stdout

    from punchproof.cli import main as punchproof

    path = tmp_path / "pinning.zip"
    path.write_bytes(bundle)
    out = io.StringIO()
    with redirect_stdout(out):
        code = punchproof(["verify", str(path), *args])
    return code, out.getvalue()


def appliance_keys(world) -> list:
    """The appliance's keys in the world: the first, and the one it rotated to (the same without rotation)."""
    return list({k.kid: k for k in (world["key"].verify_key, world["log"].key.verify_key)}.values())


def pin_files(tmp_path, world) -> list[str]:
    """``--appliance-key`` for each appliance key (the first as a PEM file, a rotated one as its fingerprint) and
    ``--evidence-key``: what a reader who kept the registered fingerprints passes."""
    first, *rotated = appliance_keys(world)
    pem = tmp_path / "appliance.pem"
    pem.write_text(first.pem())
    args = ["--appliance-key", str(pem)]
    for key in rotated:
        args += ["--appliance-key", base64.b64decode(key.kid).hex()]  # as sha256sum prints it
    return [*args, "--evidence-key", world["evidence"].verify_key.kid]


def assert_unpinned_is_never_a_pass(bundle: bytes, tmp_path, world, tsa) -> None:
    """A stamped bundle: exit 5 and the sentence without pins (a bundle forged with fresh keys reads the same);
    0 with the right pins; 1 with a pin that is not the bundle's key (the bundle was re-signed)."""
    ca = ["--tsa-ca", str(tsa.ca_path)]
    code, out = run_verify(bundle, tmp_path, *ca)
    assert code == 5, out
    assert UNPINNED_SENTENCE in out and UNPINNED_ZH in out and PIN_HOWTO_ZH in out
    assert "全部校验通过" not in out.strip().splitlines()[-1] and "(exit 5)" in out
    assert pinned_verify_cli(bundle, tmp_path, world, *ca, *pin_files(tmp_path, world))[0] == 0
    real = SigningKey.generate().verify_key  # the keys the reader got from head office are not the bundle's
    code, out = pinned_verify_cli(bundle, tmp_path, world, *ca, "--appliance-key", real.kid)
    assert code == 1 and "not among the pinned keys" in out, out
    wrong = tmp_path / "real-witness.pem"
    wrong.write_text(real.pem())
    code, out = run_verify(bundle, tmp_path, *ca, "--witness-key", str(wrong))
    assert code == 1 and "witness key" in out, out


def assert_unpinned_and_untimed(bundle: bytes, tmp_path, world) -> None:
    """No TSA and no pins: exit 4 (third-party time comes first), and both are said. Pinned: still 4, and the
    keys' sentence is gone."""
    code, out = run_verify(bundle, tmp_path)
    assert code == 4 and UNPINNED_SENTENCE in out and "没有第三方时间戳" in out, out
    code, out = pinned_verify_cli(bundle, tmp_path, world, *pin_files(tmp_path, world))
    assert code == 4 and UNPINNED_SENTENCE not in out, out


def assert_registrations_shown(files: dict[str, bytes], world) -> None:
    """Each appliance key's registration (and a rotation's acceptance) is a signed record of the cloud's evidence
    log in the bundle, and the report lists its fingerprint with the date."""
    manifest = json.loads(files["manifest.json"])
    (index,) = [n for n, entry in enumerate(manifest["logs"]) if entry.get("kind") == "cloud"]
    lines = files[f"logs/{index}/system.jsonl"].decode().splitlines()
    records = [json.loads(json.loads(line)["data"]) for line in lines]
    keys = appliance_keys(world)
    assert [(r["type"], r["key_kid"]) for r in records] == [("keyreg", k.kid) for k in keys]
    assert [r["how"] for r in records] == ["registered", "rotation"][: len(keys)]
    assert records[0]["at_ms"] == 1772409000000, "the date head office registered it (2026-03-01 23:50 UTC)"
    html = files["report.html"].decode()
    section = html[html.index("设备公钥登记") :]
    assert "2026-03-02 07:50:00（登记设备）" in section
    for key in keys:
        assert key.kid in section and base64.b64decode(key.kid).hex() in section


@pytest.mark.parametrize("value", ["kid", "hex", "pem"])
def test_a_pin_is_a_pem_key_or_its_fingerprint_in_base64_or_hex(value):
    key = SigningKey.generate().verify_key
    given = {"kid": key.kid, "hex": base64.b64decode(key.kid).hex(), "pem": key.pem()}[value]
    assert key_pin(given) == key.kid


def test_a_pin_that_is_no_key_is_refused(tmp_path):
    for bad in ("not a key", "abcd", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(ValueError):
            key_pin(bad)
    code, _out = run_verify(b"", tmp_path, "--appliance-key", "not a key")
    assert code == 2
