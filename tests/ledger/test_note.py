"""Checkpoints and cosignatures in the C2SP signed-note format."""

import base64
import hashlib

import pytest

from ledger import Forged, Malformed, SigningKey
from ledger.note import Checkpoint, cosign, key_id, parse, render, sign, verify, verify_cosignature

ORIGIN = "punchproof/dongguan-1/pi-01/1"
ROOT = hashlib.sha256(b"root").digest()


def test_checkpoint_note_layout_follows_c2sp():
    key = SigningKey.generate()
    checkpoint = Checkpoint(ORIGIN, 1234, ROOT)
    note = render(checkpoint, [sign(checkpoint, key)])
    body, sig_line = note.split("\n\n")
    assert body + "\n" == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    assert sig_line.startswith(f"\u2014 {ORIGIN} ") and sig_line.endswith("\n")
    raw = base64.b64decode(sig_line.split(" ")[-1])
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.verify_key.raw()).digest()[:4]
    assert verify(note, key.verify_key) == checkpoint


def test_a_changed_size_or_root_or_another_key_fails():
    key = SigningKey.generate()
    note = render(Checkpoint(ORIGIN, 1234, ROOT), [sign(Checkpoint(ORIGIN, 1234, ROOT), key)])
    with pytest.raises(Forged):
        verify(note.replace("\n1234\n", "\n1233\n"), key.verify_key)
    with pytest.raises(Forged):
        verify(note, SigningKey.generate().verify_key)


def test_unknown_signatures_are_ignored_and_cosignatures_verify():
    log_key, witness, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    checkpoint = Checkpoint(ORIGIN, 10, ROOT)
    note = render(
        checkpoint,
        [
            sign(checkpoint, log_key),
            cosign(checkpoint, stranger, "someone.example/w", 1_700_000_000),
            cosign(checkpoint, witness, "cloud.punchproof/witness", 1_772_409_600),
        ],
    )
    assert verify(note, log_key.verify_key) == checkpoint
    assert verify_cosignature(note, witness.verify_key, "cloud.punchproof/witness") == 1_772_409_600
    with pytest.raises(Forged):
        verify_cosignature(note, witness.verify_key, "someone.example/w")
    tampered_time = cosign(checkpoint, witness, "cloud.punchproof/witness", 1_772_409_600)
    forged = tampered_time.__class__(
        tampered_time.name, tampered_time.key_id, (1_772_409_601).to_bytes(8, "big") + tampered_time.signature[8:]
    )
    with pytest.raises(Forged):
        verify_cosignature(render(checkpoint, [forged]), witness.verify_key, "cloud.punchproof/witness")
    assert key_id("cloud.punchproof/witness", 0x04, witness.verify_key) == forged.key_id


@pytest.mark.parametrize(
    "note",
    [
        "",
        "no blank line\n",
        f"{ORIGIN}\n12\nroot\n\n\u2014 x AAAA\n",
        f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n\n",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n\nnot a signature\n",
        "a\x01b\n\n",
    ],
)
def test_malformed_notes_are_refused(note):
    with pytest.raises(Malformed):
        parse(note)
