"""MANUAL-CHECKS.md: the checks of an evidence bundle anyone can run by hand with OpenSSL and coreutils.

``manual_check_files`` gives every file those checks need (the text, and whatever it tells the reader to run).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cloud.evidence.report_model import purpose
from ledger.errors import LedgerError
from ledger.timestamp import manual_verify_command, verify_timestamp


def manual_check_files(manifest: dict[str, Any], files: dict[str, bytes]) -> dict[str, bytes]:
    """The files the manual checks add to the bundle, by name."""
    return {"MANUAL-CHECKS.md": manual_checks(manifest, files).encode()}


def manual_checks(manifest: dict[str, Any], files: dict[str, bytes]) -> str:
    example = next(  # a record of the range (the one giving the employee's tag key may lie before it)
        (
            n
            for n in sorted(files)
            if n.startswith("logs/")
            and n.endswith(".json")
            and "/records/" in n
            and not n.endswith(".proof.json")
            and json.loads(files[n])["seq"] >= json.loads(files[n.rsplit("/records/", 1)[0] + "/log.json"])["from_seq"]
        ),
        None,
    )
    base = example.rsplit("/records/", 1)[0] if example else "logs/0"
    seq = example.rsplit("/", 1)[1].split(".")[0] if example else "SEQ"
    info = json.loads(files.get(f"{base}/log.json", b"{}") or b"{}")
    line = int(seq) - info.get("from_seq", 0) + 1 if seq.isdigit() else "N"
    tagged = example is not None and json.loads(files[example]).get("v") == 2
    registry = json.loads(files.get("keys/registry.json", b"[]"))
    key_file = next((r["file"] for r in registry if r["log"] == info.get("log")), "KEY.pem")
    made_for_zh, made_for_en = purpose(manifest)
    return f"""# Checking this bundle by hand (OpenSSL, bash and coreutils only)

{made_for_zh}

{made_for_en}

Unzip the bundle and run these commands in its folder. Each prints OK or the expected value.

## 1. No file was changed since export

Every file is listed, the reports (report.html, report.pdf) included.{_manifest_checks(files, registry)}
## 2. A record is exactly what the appliance signed (example: {example})

{_leaf_steps(example, base, line, tagged)}
    (printf 'punchlog/record/v1\\n'; cat leaf.bin) > signed.bin
    openssl pkeyutl -verify -pubin -inkey keys/{key_file} -rawin -in signed.bin -sigfile {base}/records/{seq}.sig

The appliance key's id is `base64(SHA-256(DER public key))`; compare it with the record's `kid`:

    openssl pkey -pubin -in keys/{key_file} -outform DER | openssl dgst -sha256 -binary | base64

## 3. A checkpoint is signed by the appliance and cosigned by the cloud

Take one line of {base}/checkpoints.jsonl; its `note` field is the signed note. Write the first
three lines of the note (origin, size, root, each ending in a newline) to `body.txt`. The
appliance's signature is the base64 on the line starting `— {info.get("log", "ORIGIN")}`, after a
4-byte key id:

    echo 'BASE64-OF-THE-APPLIANCE-LINE' | base64 -d | tail -c 64 > cp.sig
    openssl pkeyutl -verify -pubin -inkey keys/{key_file} -rawin -in body.txt -sigfile cp.sig

The cloud's cosignature (the last line) is 4 bytes of key id, an 8-byte big-endian Unix time T
and the signature over `cosignature/v1`, `time T` and the body:

    echo 'BASE64-OF-THE-CLOUD-LINE' | base64 -d > cosig.bin
    T=$(( 16#$(tail -c +5 cosig.bin | head -c 8 | od -An -tx1 | tr -d ' \\n') ))
    (printf 'cosignature/v1\\ntime %s\\n' "$T"; cat body.txt) > cosigned.txt
    tail -c 64 cosig.bin > cosig.sig
    openssl pkeyutl -verify -pubin -inkey keys/witness.pem -rawin -in cosigned.txt -sigfile cosig.sig
    date -u -d @"$T"                          # the cloud's witness time

## 4. The whole log range is complete

`punchproof verify` recomputes every checkpoint's Merkle root from `leaves.txt` (RFC 9162; see
FORMAT.md). Any record deleted, inserted, reordered or altered changes those roots.
{_case_checks(manifest, files)}{_timestamp_checks(files)}"""


def _manifest_checks(files: dict[str, bytes], registry: list[dict[str, Any]]) -> str:
    """Section 1's second half: the signed manifest (FORMAT.md, "The signed manifest"), by the evidence key when the
    bundle carries the cloud's evidence log, else by the witness key."""
    cloud = next(
        (
            json.loads(data)["log"]
            for name, data in sorted(files.items())
            if name.endswith("/log.json") and json.loads(data).get("kind") == "cloud"
        ),
        None,
    )
    entry = next((r for r in registry if cloud is not None and r["log"] == cloud), None)
    key, who = (
        (f"keys/{entry['file']}", "the cloud's evidence key") if entry else ("keys/witness.pem", "the witness key")
    )
    return f""" Anyone who changed a file could have
made SHA256SUMS again, but not the manifest: `manifest.json` lists every other file's SHA-256, the
reports included, and `manifest.sig` is {who}'s Ed25519 signature over its exact bytes. The first
command prints OK for each file, the second `Signature Verified Successfully`, the third OK for each
file the manifest lists:

    sha256sum -c SHA256SUMS
    openssl pkeyutl -verify -pubin -inkey {key} -rawin -in manifest.json -sigfile manifest.sig
    grep -oE '"[^"]+": "[0-9a-f]{{64}}"' manifest.json | grep -v '^"bundle_id"' \\
      | sed 's/^"\\(.*\\)": "\\(.*\\)"$/\\2  \\1/' | sha256sum -c

The report shows the times of the signed records; `punchproof verify` compares every time report.html
marks (`<time data-seq>`) with its record ("report times"). The report's own check table is the
exporter's self-check when it made the bundle, not proof.
"""


def _leaf_steps(example: str | None, base: str, line: int | str, tagged: bool) -> str:
    """The record's leaf hash by hand: version 1 ``SHA-256(0x00 || record)``; version 2 ``SHA-256(0x00 || tag ||
    SHA-256(record))``, the tag (the record's ``tag``, in hex) and the record's hash being ``leaves.txt``'s line."""
    if not tagged:
        return f"""    (printf '\\x00'; cat {example}) | openssl dgst -sha256 -binary > leaf.bin
    od -An -tx1 leaf.bin | tr -d ' \\n'; echo  # must equal line {line} of {base}/leaves.txt:
    sed -n '{line}p' {base}/leaves.txt"""
    return f"""    openssl dgst -sha256 -binary {example} | od -An -tx1 | tr -d ' \\n'; echo  # its SHA-256, equal to
    sed -n '{line}p' {base}/leaves.txt | cut -d' ' -f2  # the second field of line {line} of leaves.txt
    sed -n '{line}p' {base}/leaves.txt | cut -d' ' -f1 | xxd -r -p | base64  # its first: the record's "tag"
    (printf '\\x00'; sed -n '{line}p' {base}/leaves.txt | cut -d' ' -f1 | xxd -r -p; \\
      openssl dgst -sha256 -binary {example}) | openssl dgst -sha256 -binary > leaf.bin  # version 2 leaf"""


def _case_checks(manifest: dict[str, Any], files: dict[str, bytes]) -> str:
    """For a case's bundle: that what the case must carry (manifest.json's ``case``) is in it."""
    claim = manifest.get("case")
    if not claim:
        return ""
    base = next(
        (n.rsplit("/", 1)[0] for n in sorted(files) if n.endswith("/log.json") and json.loads(files[n]).get("kind")),
        "logs/N",
    )
    seqs = sorted(claim["contacts"] + claim["receipts"] + claim["actions"])
    documents = claim.get("documents", [])
    return f"""
## 本案证据齐全 / The case's evidence is all here ({claim["ref"]})

This is the bundle of case {claim["ref"]}: `manifest.json`'s `case` lists every contact attempt
({len(claim["contacts"])}), delivery receipt ({len(claim["receipts"])}) and action by people
({len(claim["actions"])}) of the case in the cloud's evidence log, every notice sent or produced
({len(claim["notices"])}: notices, the 解除劳动合同证明, a 公告 text) and every other document its people's
actions name by SHA-256 ({len(documents)}: HR's uploads, the drafts a confirmation reviewed). Each must be
here; each command prints nothing when it is:

    for s in {" ".join(map(str, seqs))}; do test -f {base}/records/$s.json || echo "missing: seq $s"; done
    for h in {" ".join(claim["notices"])}; do
      echo "$h  cloud/notices/$h.pdf" | sha256sum -c --quiet 2>/dev/null || echo "missing: notice $h"
    done
    for h in {" ".join(documents)}; do
      sha256sum cloud/documents/* 2>/dev/null | grep -q "^$h " || echo "missing: document $h"
    done

Check each record as in section 2 (with the evidence key of `keys/registry.json`); its `case` field
is `{claim["ref"]}`. `punchproof verify` runs the same check ("case {claim["ref"]}").
"""


def _timestamp_checks(files: dict[str, bytes]) -> str:
    """Section 5, when the bundle holds RFC 3161 stamps: the exact openssl command for one of them."""
    stamp = next((n for n in sorted(files) if n.startswith("witness/stamps/") and n.endswith(".tsr")), None)
    if stamp is None or "witness/tsa-ca.pem" not in files:
        return ""
    size = stamp.rsplit("/", 1)[1].split("-")[0]
    note_file = f"witness/checkpoint-{size}.note"
    digest = hashlib.sha256(files[note_file]).digest()
    try:
        when = verify_timestamp(files[stamp], digest, files["witness/tsa-ca.pem"])
    except LedgerError:
        return ""  # the verification table in the report says why
    command = manual_verify_command(stamp, digest, "witness/tsa-ca.pem", when)
    return f"""
## 5. A timestamp authority saw the cloud's log of checkpoints by {when.isoformat()}

The cloud keeps its own signed log of every checkpoint it cosigned (witness/entries.jsonl), and an
RFC 3161 timestamp authority stamped checkpoints of that log. `{note_file}` is the checkpoint
the stamp `{stamp}` covers; its SHA-256 is the digest below. This prints `Verification: OK`:

    openssl dgst -sha256 {note_file}
    {command}

`-attime` checks the TSA's certificate as of the stamp's own time (it may have expired since).
"""
