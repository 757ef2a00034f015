"""MANUAL-CHECKS.md: the checks of an evidence bundle anyone can run by hand with OpenSSL, sha256sum and xxd.

``manual_check_files`` gives every file those checks need: the text, and under ``manual/`` the exact bytes each
signature it checks covers (``body.txt``), so that ``openssl pkeyutl -verify`` runs on them directly, beside the
commands that rebuild those bytes from the records and compare.

Every command is written for a POSIX shell (Debian's dash as well as bash): ``printf`` with octal escapes only, hex
through ``xxd``, arithmetic without ``16#``. Each shell block starts with a comment ``# <name>:`` that names it (the
tests find the blocks by it, and run every one as written).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cloud.evidence.report_model import purpose
from ledger.errors import LedgerError
from ledger.record import RECORD_DOMAIN, record_tag
from ledger.timestamp import manual_verify_command, verify_timestamp


@dataclass(frozen=True)
class _Checkpoint:
    size: int
    lines: list[str]  # the signed note's lines, without the trailing empty one
    appliance: int  # the line (0-based) of the appliance's signature
    cloud: int | None  # the line of the cloud's cosignature


@dataclass(frozen=True)
class _Choice:
    """What the text works through: one of the employee's records and the checkpoint its inclusion proof leads to."""

    base: str  # logs/<n>
    index: int  # n
    info: dict[str, Any]  # logs/<n>/log.json
    registry: list[dict[str, Any]]  # keys/registry.json
    seq: int | None  # the example record's seq (None: the bundle discloses none)
    data: bytes  # its exact bytes
    proof: dict[str, Any] | None  # its .proof.json
    checkpoint: _Checkpoint | None

    @property
    def record(self) -> str:
        return f"{self.base}/records/{self.seq}.json"

    @property
    def dir(self) -> str:
        return f"manual/record-{self.index}-{self.seq}"

    @property
    def checkpoint_dir(self) -> str:
        assert self.checkpoint is not None
        return f"manual/checkpoint-{self.index}-{self.checkpoint.size}"

    def key(self, seq: int) -> dict[str, Any] | None:
        """The registry's entry for the key in force at ``seq`` of this log (FORMAT.md, "A range is valid when")."""
        return _key_at(self.registry, self.info.get("log"), seq)


def manual_check_files(manifest: dict[str, Any], files: dict[str, bytes]) -> dict[str, bytes]:
    """The files the manual checks add to the bundle, by name: MANUAL-CHECKS.md and what it tells the reader to run
    ``openssl pkeyutl -verify`` on."""
    choice = _choose(files)
    out = {"MANUAL-CHECKS.md": manual_checks(manifest, files).encode()}
    if choice is None:
        return out
    if choice.seq is not None:
        out[f"{choice.dir}/body.txt"] = RECORD_DOMAIN + _leaf(choice.data)
    if choice.checkpoint is not None:
        cp = choice.checkpoint
        body = "".join(line + "\n" for line in cp.lines[:3]).encode()
        out[f"{choice.checkpoint_dir}/body.txt"] = body
        out[f"{choice.checkpoint_dir}/sig.bin"] = _signature(cp.lines[cp.appliance])[-64:]
        if cp.cloud is not None:
            cosig = _signature(cp.lines[cp.cloud])
            when = int.from_bytes(cosig[4:12], "big")
            out[f"{choice.checkpoint_dir}/cosigned.txt"] = f"cosignature/v1\ntime {when}\n".encode() + body
            out[f"{choice.checkpoint_dir}/cosig.bin"] = cosig[-64:]
    for seq, data in _rotations(choice, files):
        out[f"manual/keyrot-{choice.index}-{seq}/record.json"] = data
    return out


def manual_checks(manifest: dict[str, Any], files: dict[str, bytes]) -> str:
    choice = _choose(files)
    registry = json.loads(files.get("keys/registry.json", b"[]"))
    made_for_zh, made_for_en = purpose(manifest)
    text = f"""# Checking this bundle by hand (OpenSSL, sha256sum and xxd)

{made_for_zh}

{made_for_en}

Unzip the bundle and run these commands in its folder, in the order given (a later block uses files an earlier
one wrote, such as `leaf.bin`). Each block starts with a comment naming it; each check prints OK, `Signature
Verified Successfully` or `Verification: OK` when it holds, and `cmp` prints where two files differ when they do
not. The commands run in any POSIX shell: bash, Debian's dash, macOS's sh, Git Bash on Windows (see "On macOS
and Windows" at the end for what differs there). They need OpenSSL 3.0 or later (`openssl version`), sha256sum,
xxd and base64. Every check here only shows the bundle agrees with its own keys: see "Keys obtained
independently" for what makes it proof.

## 1. No file was changed since export

Every file is listed, the reports (report.html, report.pdf) included.{_manifest_checks(files, registry)}
{_key_section(choice, files)}{_worked_sections(choice, files)}
## 7. The whole log range is complete

`punchproof verify` recomputes every checkpoint's Merkle root from `leaves.txt` (RFC 9162; see
FORMAT.md). Any record deleted, inserted, reordered or altered changes those roots.
{_case_checks(manifest, files)}{_timestamp_checks(files)}{_anchors(files, registry)}{_platforms()}"""
    numbers = iter(range(1, 100))
    return re.sub(r"^## \d+\.", lambda _: f"## {next(numbers)}.", text, flags=re.MULTILINE)  # sections left out


# -- choosing what the text works through ---------------------------------------------------------------------


def _choose(files: dict[str, bytes]) -> _Choice | None:
    registry = json.loads(files.get("keys/registry.json", b"[]"))
    example = next(  # a record of the range (the one giving the employee's tag key may lie before it)
        (
            n
            for n in sorted(files, key=_by_log_and_seq)
            if n.startswith("logs/")
            and n.endswith(".json")
            and "/records/" in n
            and not n.endswith(".proof.json")
            and f"{n[:-5]}.proof.json" in files
            and json.loads(files[n])["seq"] >= json.loads(files[n.rsplit("/records/", 1)[0] + "/log.json"])["from_seq"]
        ),
        None,
    )
    if example is not None:
        base = example.rsplit("/records/", 1)[0]
        seq = int(example.rsplit("/", 1)[1].split(".")[0])
        proof = json.loads(files[f"{base}/records/{seq}.proof.json"])
        data = files[example]
    else:
        logs = sorted(
            (n for n in files if n.startswith("logs/") and n.endswith("/checkpoints.jsonl")), key=_by_log_and_seq
        )
        if not logs:
            return None
        base, seq, proof, data = logs[0].rsplit("/", 1)[0], None, None, b""
    info = json.loads(files.get(f"{base}/log.json", b"{}") or b"{}")
    notes = [json.loads(line) for line in files.get(f"{base}/checkpoints.jsonl", b"").decode().splitlines() if line]
    wanted = proof["size"] if proof else None
    entry = next((c for c in notes if c["size"] == wanted), None)
    if entry is None:  # no checkpoint of the proof's size: the last one, and the proof is not worked by hand
        entry, proof = (notes[-1] if notes else None), None
    return _Choice(
        base=base,
        index=int(base.split("/")[1]),
        info=info,
        registry=registry,
        seq=seq,
        data=data,
        proof=proof,
        checkpoint=_parse_note(entry["size"], entry["note"], info.get("log", "")) if entry else None,
    )


def _by_log_and_seq(name: str) -> tuple[int, int, str]:
    """logs/<n>/records/<seq>.json in the order of n, then seq (not 10 before 9)."""
    parts = name.split("/")
    index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    last = parts[-1].split(".")[0]
    return index, int(last) if last.isdigit() else -1, name


def _parse_note(size: int, text: str, origin: str) -> _Checkpoint:
    lines = text.rstrip("\n").split("\n")
    signed = [i for i, line in enumerate(lines) if line.startswith("— ")]
    appliance = next((i for i in signed if lines[i].startswith(f"— {origin} ")), signed[0])
    cloud = next((i for i in signed if i != appliance), None)
    return _Checkpoint(size, lines, appliance, cloud)


def _key_at(registry: list[dict[str, Any]], log: str | None, seq: int) -> dict[str, Any] | None:
    for entry in registry:
        last = entry.get("valid_to_seq")
        if entry["log"] == log and entry.get("valid_from_seq", 0) <= seq and (last is None or seq <= last):
            return entry
    return None


def _signature(line: str) -> bytes:
    return base64.b64decode(line.rsplit(" ", 1)[1])


def _tagged(data: bytes) -> bool:
    """Whether the record's leaf is the version 2 one, with its owner tag: as ``leaves.txt`` writes its line
    (``ledger.ownertags.undisclosed_line``), by the tag the record carries, so a record without one (a version 1
    log's) is worked by its version 1 leaf."""
    return record_tag(data) is not None


def _leaf(data: bytes) -> bytes:
    tag = record_tag(data)
    if tag is not None:
        return hashlib.sha256(b"\x00" + tag + hashlib.sha256(data).digest()).digest()
    return hashlib.sha256(b"\x00" + data).digest()


def _rotations(choice: _Choice | None, files: dict[str, bytes]) -> list[tuple[int, bytes]]:
    """The keyrot records of the chosen log's range that ``system.jsonl`` discloses, by seq: each hands the log over
    to the key the registry lists from the next seq."""
    if choice is None:
        return []
    start, end = choice.info.get("from_seq", 0), choice.info.get("to_size", 0)
    wanted = {
        e["valid_from_seq"] - 1
        for e in choice.registry
        if e["log"] == choice.info.get("log") and start <= e.get("valid_from_seq", 0) - 1 < end
    }
    found = []
    for line in files.get(f"{choice.base}/system.jsonl", b"").decode().splitlines():
        item = json.loads(line)
        if item["seq"] in wanted:
            found.append((item["seq"], item["data"].encode()))
    return sorted(found)


# -- the sections ---------------------------------------------------------------------------------------------


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

    # files: every file as exported, and the manifest as signed
    sha256sum -c SHA256SUMS
    openssl pkeyutl -verify -pubin -inkey {key} -rawin -in manifest.json -sigfile manifest.sig
    grep -oE '"[^"]+": "[0-9a-f]{{64}}"' manifest.json | grep -v '^"bundle_id"' \\
      | sed 's/^"\\(.*\\)": "\\(.*\\)"$/\\2  \\1/' | sha256sum -c

The report shows the times of the signed records; `punchproof verify` compares every time report.html
marks (`<time data-seq>`) with its record ("report times"). The report's own check table is the
exporter's self-check when it made the bundle, not proof.
"""


def _worked_sections(choice: _Choice | None, files: dict[str, bytes]) -> str:
    """Sections 3 to 6: the example record, its checkpoint, the inclusion proof between them, the key rotations."""
    return (
        _record_section(choice)
        + _checkpoint_section(choice)
        + _inclusion_section(choice)
        + _rotation_section(choice, files)
    )


def _key_section(choice: _Choice | None, files: dict[str, bytes]) -> str:
    """Section 2: which key signs which record and checkpoint, and which key the example's steps use."""
    registry = choice.registry if choice else []
    rows = "\n".join(
        f"| {e['log']} | `keys/{e['file']}` | `{e['kid']}` | {e.get('valid_from_seq', 0)} – "
        f"{'' if e.get('valid_to_seq') is None else e['valid_to_seq']} |"
        for e in registry
    )
    text = f"""
## 2. Which key signs which record and checkpoint

`keys/registry.json` lists each key of each log with the seqs it signs (`valid_from_seq` .. `valid_to_seq`; open
when it is still in use). **A record at seq s is signed by the key whose range holds s. A checkpoint of size n
(it covers seqs 0 .. n − 1) is signed by the key whose range holds n − 1**, the key of its last record: when a key
is rotated, the `keyrot` record at the old key's last seq is signed by the old key, and so is the checkpoint that
covers it; every later record and checkpoint by the new key. The cloud's evidence log (`punchproof-cloud/evidence/1`)
is signed by the cloud's evidence key; every checkpoint is cosigned by the witness key, `keys/witness.pem`.

| log | key file | kid (fingerprint) | seqs |
|---|---|---|---|
{rows}
"""
    if choice is None or choice.seq is None and choice.checkpoint is None:
        return text
    said = []
    if choice.seq is not None:
        key = choice.key(choice.seq)
        said.append(f"the example record `{choice.record}` (seq {choice.seq}) by `keys/{_file(key)}`")
    if choice.checkpoint is not None:
        size = choice.checkpoint.size
        said.append(
            f"its checkpoint of size {size} (in `{choice.base}/checkpoints.jsonl`) by "
            f"`keys/{_file(choice.key(size - 1))}`"
            f" (the key of seq {size - 1})"
        )
    return text + f"\nBelow: {' and '.join(said)}.\n"


def _rotation_section(choice: _Choice | None, files: dict[str, bytes]) -> str:
    """Section 6, when the range holds a key rotation: each hand-over checked by hand."""
    rotations = _rotations(choice, files)
    if choice is None or not rotations:
        return ""
    return "\n## 6. The key rotation inside this range\n" + "".join(
        _rotation_block(choice, seq, data) for seq, data in rotations
    )


def _file(entry: dict[str, Any] | None) -> str:
    return entry["file"] if entry else "KEY-NOT-IN-REGISTRY.pem"


def _rotation_block(choice: _Choice, seq: int, data: bytes) -> str:
    """A keyrot record checked by hand: in the log (leaves.txt), signed by the old key, naming the new key's file,
    and agreed to by the new key (its ``proof``, FORMAT.md "Records")."""
    old, new = _file(choice.key(seq)), _file(choice.key(seq + 1))
    record = f"manual/keyrot-{choice.index}-{seq}/record.json"
    line = seq - choice.info.get("from_seq", 0) + 1
    return f"""
Record {seq}, in `{choice.base}/system.jsonl` (its exact bytes copied to `{record}`),
hands the log over from `keys/{old}` to `keys/{new}`. The first two commands check that these are the bytes of seq {seq}
(line {line} of `{choice.base}/leaves.txt`), the next four its signature by the old key, the next two that its
`new_kid` is the new key file's fingerprint, the last four the new key's consent (`proof`: its signature over
`punchlog/keyrot/v1`, a newline and the version 1 leaf hash of the record without its `proof` field):

    # rotation: record {seq} hands the log from keys/{old} to keys/{new}
{_leaf_lines(record, choice.base, line, _tagged(data), "keyrot")}
    grep '^{{"seq": {seq},' {choice.base}/system.jsonl | sed 's/.*"sig": "\\([^"]*\\)".*/\\1/' | base64 -d > keyrot.sig
    (printf 'punchlog/record/v1\\n'; cat keyrot-leaf.bin) > keyrot-signed.bin
    openssl pkeyutl -verify -pubin -inkey keys/{old} -rawin -in keyrot-signed.bin -sigfile keyrot.sig
    openssl pkey -pubin -in keys/{new} -outform DER | openssl dgst -sha256 -binary | base64 > new-kid.txt
    grep -o '"new_kid":"[^"]*"' {record} | cut -d'"' -f4 | cmp - new-kid.txt && echo 'new_kid is keys/{new}: OK'
    sed 's/,"proof":"[^"]*"//' {record} | tr -d '\\n' > keyrot-unproven.json
    (printf '\\000'; cat keyrot-unproven.json) | openssl dgst -sha256 -binary > keyrot-unproven.bin
    (printf 'punchlog/keyrot/v1\\n'; cat keyrot-unproven.bin) > keyrot-consent.bin
    grep -o '"proof":"[^"]*"' {record} | cut -d'"' -f4 | base64 -d > keyrot-proof.sig
    openssl pkeyutl -verify -pubin -inkey keys/{new} -rawin -in keyrot-consent.bin -sigfile keyrot-proof.sig
"""


def _leaf_lines(record: str, base: str, line: int, tagged: bool, prefix: str) -> str:
    """The record's leaf hash by hand, into ``<prefix>-leaf.bin``, each part compared with ``leaves.txt``'s line:
    version 1 ``SHA-256(0x00 || record)``, the line being that hash; version 2 ``SHA-256(0x00 || tag ||
    SHA-256(record))``, the line being the tag and the record's SHA-256 (hex)."""
    pick, ok = f"sed -n '{line}p' {base}/leaves.txt", f"line {line} of leaves.txt: OK"
    if not tagged:
        return f"""    (printf '\\000'; cat {record}) | openssl dgst -sha256 -binary > {prefix}-leaf.bin
    {pick} | xxd -r -p | cmp - {prefix}-leaf.bin && echo 'leaf = {ok}'"""
    return f"""    openssl dgst -sha256 -binary {record} > {prefix}-hash.bin
    {pick} | cut -d' ' -f2 | xxd -r -p | cmp - {prefix}-hash.bin && echo 'SHA-256 = {ok}'
    {pick} | cut -d' ' -f1 | xxd -r -p > {prefix}-tag.bin
    grep -o '"tag":"[^"]*"' {record} | cut -d'"' -f4 | base64 -d | cmp - {prefix}-tag.bin && echo 'tag = {ok}'
    (printf '\\000'; cat {prefix}-tag.bin {prefix}-hash.bin) | openssl dgst -sha256 -binary > {prefix}-leaf.bin"""


def _record_section(choice: _Choice | None) -> str:
    if choice is None or choice.seq is None:
        return """
## 3. A record is exactly what the appliance signed

This bundle discloses no record of the employee, so there is none to work through here; FORMAT.md ("Hashes and
signatures") gives the commands for any record.
"""
    line = choice.seq - choice.info.get("from_seq", 0) + 1
    tagged = _tagged(choice.data)
    key = _file(choice.key(choice.seq))
    sig = f"{choice.base}/records/{choice.seq}.sig"
    signer = _signer(choice)
    how = (
        "its leaf hash is `SHA-256(0x00 || tag || SHA-256(record))` (version 2): the record's SHA-256 and its `tag` "
        f"are line {line} of `{choice.base}/leaves.txt`"
        if tagged
        else f"its leaf hash is `SHA-256(0x00 || record)` (version 1), line {line} of `{choice.base}/leaves.txt`"
    )
    return f"""
## 3. A record is exactly what {signer} signed (example: {choice.record})

The record's file holds its exact bytes as signed; {how}. The key signed `punchlog/record/v1`, a newline
and the 32 bytes of that leaf hash: `{choice.dir}/body.txt` holds those 51 bytes ready to check, and the commands
rebuild them from the record and compare (`cmp` prints nothing when equal). The record names its key's id
(`kid`), `base64(SHA-256(DER public key))`; the last two commands compare it with `keys/{key}`, the key for seq
{choice.seq}:

    # record: {choice.record} signed by keys/{key}
{_leaf_lines(choice.record, choice.base, line, tagged, "record")}
    cp record-leaf.bin leaf.bin
    (printf 'punchlog/record/v1\\n'; cat leaf.bin) > signed.bin
    cmp signed.bin {choice.dir}/body.txt && echo 'body.txt is the signed bytes: OK'
    openssl pkeyutl -verify -pubin -inkey keys/{key} -rawin -in signed.bin -sigfile {sig}
    openssl pkey -pubin -in keys/{key} -outform DER | openssl dgst -sha256 -binary | base64 > kid.txt
    grep -o '"kid":"[^"]*"' {choice.record} | cut -d'"' -f4 | cmp - kid.txt && echo 'kid is keys/{key}: OK'

The shipped bytes verify directly too: `openssl pkeyutl -verify -pubin -inkey keys/{key} -rawin -in
{choice.dir}/body.txt -sigfile {choice.base}/records/{choice.seq}.sig`.
"""


def _signer(choice: _Choice) -> str:
    return "the cloud's evidence key" if choice.info.get("kind") == "cloud" else "the appliance"


def _checkpoint_section(choice: _Choice | None) -> str:
    if choice is None or choice.checkpoint is None:
        return ""
    cp = choice.checkpoint
    key = _file(choice.key(cp.size - 1))
    signer = _signer(choice)
    where = (
        f"grep '^{{\"size\": {cp.size},' {choice.base}/checkpoints.jsonl"
        " | sed 's/.*\"note\": \"//; s/\\\\n/|/g' | tr '|' '\\n'"
    )
    folder = choice.checkpoint_dir
    text = f"""
## 4. The checkpoint is signed by {signer} and cosigned by the cloud

The line of `{choice.base}/checkpoints.jsonl` with `"size": {cp.size}` holds the signed note (`note`, with `\\n` for
each newline). Its first three lines (origin, size, root, each ending in a newline) are what {signer} signed:
`{folder}/body.txt`. Line {cp.appliance + 1} is its signature, `— <origin>` and the base64 of a 4-byte
key id and the 64-byte signature (`{folder}/sig.bin`), by `keys/{key}`, the key of seq {cp.size - 1}. The commands
take each from the note and compare:

    # checkpoint: size {cp.size}, signed by keys/{key}
    {where} | head -n 3 > note-body.txt
    cmp note-body.txt {folder}/body.txt && echo 'body.txt is the note: OK'
    {where} | sed -n '{cp.appliance + 1}p' | sed 's/.* //' | base64 -d | tail -c 64 > note.sig
    cmp note.sig {folder}/sig.bin && echo 'sig.bin is the note: OK'
    openssl pkeyutl -verify -pubin -inkey keys/{key} -rawin -in {folder}/body.txt -sigfile {folder}/sig.bin
"""
    if cp.cloud is None:
        return text
    return (
        text
        + f"""
The cloud's cosignature (line {cp.cloud + 1}) is the base64 of 4 bytes of key id, an 8-byte big-endian Unix time T
and the witness key's signature over `cosignature/v1`, `time T` and the body, each line ending in a newline
(`{folder}/cosigned.txt`, `{folder}/cosig.bin`). The last command prints the cloud's witness time:

    # cosignature: checkpoint {cp.size} cosigned by keys/witness.pem
    {where} | sed -n '{cp.cloud + 1}p' | sed 's/.* //' | base64 -d > cosig.bin
    T=$(tail -c +5 cosig.bin | head -c 8 | xxd -p)
    T=$((0x$T))
    (printf 'cosignature/v1\\ntime %s\\n' "$T"; cat note-body.txt) > cosigned.txt
    tail -c 64 cosig.bin > cosig.sig
    cmp cosigned.txt {folder}/cosigned.txt && cmp cosig.sig {folder}/cosig.bin && echo 'cosigned.txt, cosig.bin: OK'
    openssl pkeyutl -verify -pubin -inkey keys/witness.pem -rawin -in cosigned.txt -sigfile cosig.sig
    date -u -d "@$T" 2>/dev/null || date -u -r "$T"
"""
    )


def _inclusion_section(choice: _Choice | None) -> str:
    """Section 5: the example record's leaf up its inclusion proof to the checkpoint's root (RFC 9162 §2.1.3.2)."""
    if choice is None or choice.proof is None or choice.checkpoint is None or choice.seq is None:
        return ""
    index, size, hashes = choice.proof["index"], choice.proof["size"], choice.proof["hashes"]
    steps, fn, sn = [], index, size - 1
    for number, sibling in enumerate(hashes, start=1):
        if fn & 1 or fn == sn:
            steps.append(
                f"    (printf '\\001'; echo {sibling} | xxd -r -p; cat h{number - 1}.bin) "
                f"| openssl dgst -sha256 -binary > h{number}.bin"
            )
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            steps.append(
                f"    (printf '\\001'; cat h{number - 1}.bin; echo {sibling} | xxd -r -p) "
                f"| openssl dgst -sha256 -binary > h{number}.bin"
            )
        fn, sn = fn >> 1, sn >> 1
    last = len(hashes)
    proof_file = f"{choice.base}/records/{choice.seq}.proof.json"
    return f"""
## 5. The record is in the checkpoint's tree (a worked inclusion proof)

The records of a log are the leaves of an RFC 9162 Merkle tree; an inner node is `SHA-256(0x01 || left || right)`.
`{proof_file}` proves leaf {index} (the record's seq, counted from 0) into the tree of size {size}, the checkpoint
of section 4: its `hashes` are the siblings on the way up, from the leaf. Whether a sibling goes left or right
follows from the index and the size (RFC 9162, 2.1.3.2: with `fn` the index and `sn` the size − 1, a sibling goes
left when `fn` is odd or `fn` = `sn`, and then, if `fn` was even, `fn` and `sn` are halved until `fn` is odd or 0;
after each step both are halved). For this record the {last} steps are below, from `h0.bin`, the leaf hash of
section 3, to `h{last}.bin`, which must be the checkpoint's root (the third line of its body, base64):

    # inclusion: leaf {index} of {size}, {choice.record}, up to the root of checkpoint {size}
    cp leaf.bin h0.bin
{chr(10).join(steps)}
    sed -n 3p {choice.checkpoint_dir}/body.txt | base64 -d > root.bin
    cmp h{last}.bin root.bin && echo 'root of checkpoint {size}: OK'
"""


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

    # case: every record, notice and document of {claim["ref"]} is in the bundle
    for s in {" ".join(map(str, seqs))}; do test -f {base}/records/$s.json || echo "missing: seq $s"; done
    for h in {" ".join(claim["notices"])}; do
      echo "$h  cloud/notices/$h.pdf" | sha256sum -c --quiet 2>/dev/null || echo "missing: notice $h"
    done
    for h in {" ".join(documents)}; do
      sha256sum cloud/documents/* 2>/dev/null | grep -q "^$h " || echo "missing: document $h"
    done

Check each record as in section 3 (with the evidence key of `keys/registry.json`); its `case` field
is `{claim["ref"]}`. `punchproof verify` runs the same check ("case {claim["ref"]}").
"""


def _timestamp_checks(files: dict[str, bytes]) -> str:
    """The timestamps section, when the bundle holds RFC 3161 stamps: the exact openssl command for one of them."""
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
## 8. A timestamp authority saw the cloud's log of checkpoints by {when.isoformat()}

The cloud keeps its own signed log of every checkpoint it cosigned (witness/entries.jsonl), and an
RFC 3161 timestamp authority stamped checkpoints of that log. `{note_file}` is the checkpoint
the stamp `{stamp}` covers; the first command checks its SHA-256 is the digest in the second, which prints
`Verification: OK`:

    # timestamp: {stamp} over {note_file}
    test "$(openssl dgst -sha256 -r {note_file} | cut -d' ' -f1)" = {digest.hex()} && echo 'digest: OK'
    {command}

`-attime` checks the TSA's certificate as of the stamp's own time (it may have expired since). It proves the time
only if `witness/tsa-ca.pem` is the TSA's own root certificate (see "Keys obtained independently").
"""


def _anchors(files: dict[str, bytes], registry: list[dict[str, Any]]) -> str:
    """The trust anchors section: where the reader gets each trust anchor other than from the bundle, and what each
    check proves only then; with the commands that print the bundle's fingerprints to compare."""
    appliance = [e for e in registry if not e["log"].startswith("punchproof-cloud/")]
    evidence = [e for e in registry if e["log"].startswith("punchproof-cloud/")]
    cloud_log = next(
        (n.rsplit("/", 1)[0] for n in sorted(files) if n.endswith("/log.json") and json.loads(files[n]).get("kind")),
        None,
    )
    lines = ["    # anchors: the fingerprints to compare with copies obtained independently"]
    lines.append("    openssl pkey -pubin -in keys/witness.pem -outform DER | sha256sum  # the witness key")
    for entry in appliance + evidence:
        lines.append(
            f"    openssl pkey -pubin -in keys/{entry['file']} -outform DER | sha256sum  # {entry['log']}, "
            f"from seq {entry.get('valid_from_seq', 0)}"
        )
    if "witness/tsa-ca.pem" in files:
        lines.append("    openssl x509 -in witness/tsa-ca.pem -noout -fingerprint -sha256  # the TSA's root")
    where = f"`{cloud_log}/system.jsonl`" if cloud_log else "the cloud's evidence log"
    return f"""
## 9. Keys obtained independently (trust anchors)

Every key in this bundle came with it: an employer who made a bundle afterwards with fresh keys would make every
check above pass just the same. Each check is proof only against a copy of its key obtained elsewhere, earlier:

- **The witness key** (`keys/witness.pem`; `witness_kid` in manifest.json) cosigns every checkpoint of every log
  (section 4) and signs the cloud's witness log that the TSA stamps. Get it from head office separately, before
  any dispute where possible: the file `/var/lib/punchproof/cloud-witness.pub` on the cloud's server, or the
  fingerprint the employer published or handed to the union or a notary. Only then do the cosignatures show that
  the cloud, not someone who made the bundle, saw each checkpoint; `punchproof verify --witness-key FILE` pins it.
- **The appliance keys** (`keys/*.pem` by `keys/registry.json`) sign the records and checkpoints (sections 2 to 4).
  Their fingerprints were written, when head office registered each key or accepted its rotation, as `keyreg`
  records in the cloud's signed evidence log ({where}; the report lists them under 设备公钥登记, fingerprint in base64
  and hex, with the date); a TSA stamp over the witness log fixes when. Compare with the fingerprints the employer
  gave out at registration, or with a bundle obtained earlier. Only then do the records' signatures show that the
  appliance made them (`--appliance-key`). The cloud's evidence key, which signs the cloud's own log and the
  manifest, likewise (`--evidence-key`).
- **The TSA's root certificate** (`witness/tsa-ca.pem`): get it from the TSA's own website over HTTPS or its
  published certificate policy and compare the SHA-256 fingerprint the TSA publishes; a bundle's own copy proves
  nothing (`--tsa-ca`). Only then does a stamp show when the cloud's log, and every record under it, existed.

The fingerprints of the bundle's keys, to compare (`sha256sum` prints the hex form of a key's kid; the TSA's is
`openssl x509`'s form):

{chr(10).join(lines)}
"""


def _platforms() -> str:
    """The last section: what differs on macOS and Windows (inline: the blocks above are the ones run as written)."""
    return """
## 10. On macOS and Windows

**macOS.** In Terminal, type `sh` first and paste the commands there (zsh, the default, reads the `#` comments as
commands unless `setopt interactivecomments`). Then:

- `/usr/bin/openssl` is LibreSSL, which cannot verify these Ed25519 signatures (`pkeyutl -rawin` came with
  OpenSSL 3.0; OpenSSL 1.1.1 has Ed25519 but not this option). Install OpenSSL 3 with Homebrew, `brew install
  openssl@3`, and put it first: `export PATH="$(brew --prefix openssl@3)/bin:$PATH"`; `openssl version` must say
  OpenSSL 3.
- Where `sha256sum` is missing (older macOS), use `shasum -a 256` in its place (`shasum -a 256 -c SHA256SUMS`),
  or `brew install coreutils`.
- Older macOS spells `base64 -d` as `base64 -D`. `xxd` comes with macOS. The cosignature's time prints with
  `date -u -r "$T"` (the command above falls back to it).

**Windows.** Use Git Bash (installed with Git for Windows: bash, openssl, sha256sum, base64 and xxd; recent
versions ship OpenSSL 3) or WSL (Ubuntu or Debian: everything as on Linux); run `openssl version` first. Unzip with
Explorer or `unzip`: the files keep their exact bytes. Without either, one file's SHA-256 in cmd.exe is
`certutil -hashfile FILE SHA256` (compare the hex with its line in SHA256SUMS; older Windows prints it in pairs),
in PowerShell `Get-FileHash -Algorithm SHA256 FILE`; signatures need OpenSSL 3 (for example Git for Windows',
`C:\\Program Files\\Git\\usr\\bin\\openssl.exe`).
"""
