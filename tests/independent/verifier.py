"""An independent verifier of Punchproof evidence bundles, written from ledger/FORMAT.md alone.

It imports nothing of Punchproof's: the Python standard library, and the ``openssl`` command line for the
cryptography (Ed25519 with ``openssl pkeyutl -verify -rawin``, RFC 3161 with ``openssl ts -verify``). Its
purpose is to show that FORMAT.md is enough to check a bundle without the product's software; where FORMAT.md
was not enough, FORMAT.md was fixed, not this file taught from the code.

    python3 verifier.py BUNDLE.zip|FOLDER [--witness-key PEM] [--tsa-ca PEM] [--max-stamp-delay HOURS]
                        [--allow-untimed]

Prints ``OK`` or ``FAIL`` and the reasons, and exits 0 (OK) or 1 (FAIL); 2 when it cannot run. OK means every
check passed *and* every disclosed punch is covered by a verified RFC 3161 stamp within the delay (default 24
hours): without third-party time a bundle is its maker's word alone (``--allow-untimed`` makes a missing stamp a
note; a late one still fails). Notes (keys not pinned, checks that could not apply) are printed after the verdict
and do not change it.

What it checks, in FORMAT.md's words: SHA256SUMS and the signed manifest (its files, bundle_id, its TSA stamp);
the key registry; for every log, every disclosed record's exact canonical bytes, leaf (version 1 or 2), chain link,
signature by the key in force at its seq (rotations handed over by keyrot records with a valid proof; revoked and
compromised keys), inclusion proof; every checkpoint's root from leaves.txt and its compact range, its signature and
the witness's cosignature; owner tags (no undisclosed record carries the employee's tag); key registration records;
the witness log (its checkpoints, entries, consistency, heads and the per-log heads it commits) and its RFC 3161
stamps; each record's time against its anchor and covering cosignature (120 s); each punch's earliest stamp; a
case's records and documents; the report's marked times.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

SUMS, MANIFEST, MANIFEST_SIG, MANIFEST_TSR = "SHA256SUMS", "manifest.json", "manifest.sig", "manifest.tsr"
FORMATS = {f"punchproof-evidence/{n}" for n in range(1, 6)}
RECORD_VERSIONS = {1, 2}
CLOUD_LOG = "punchproof-cloud/evidence/1"
WITNESS_ORIGIN = "punchproof-cloud/checkpoints"
DASH = "\u2014 "  # a signed note's signature lines begin with an em dash and a space
SPKI_ED25519 = bytes.fromhex("302a300506032b6570032100")  # the DER SubjectPublicKeyInfo prefix of an Ed25519 key
TOLERANCE_S = 120  # FORMAT.md, "Times against the witness": a record's time against its anchor and cosignature
OWNED_TYPES = {"punch", "action", "correction", "contact", "receipt", "case_action", "tagkey"}


class Failure(Exception):
    pass


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- canonical JSON (RFC 8785 restricted as FORMAT.md says: ASCII keys, integers, no floats) ---------------------


def _no_float(text: str) -> float:
    raise ValueError(f"a float ({text}) is not allowed")


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k}")
        if not k.isascii():
            raise ValueError(f"non-ASCII key {k!r}")
        out[k] = v
    return out


def parse_canonical(data: bytes) -> dict:
    """The record's fields; raises ValueError when the bytes are not the record's canonical encoding."""
    value = json.loads(data.decode("utf-8"), parse_float=_no_float, object_pairs_hook=_pairs)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    if canonical(value) != data:
        raise ValueError("not canonical (RFC 8785)")
    return value


def canonical(value: object) -> bytes:
    _check_ints(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _check_ints(value: object) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= 2**53:
            raise ValueError("integer out of range")
    elif isinstance(value, list):
        for item in value:
            _check_ints(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
    else:
        raise ValueError(f"type {type(value).__name__} not allowed")


# -- RFC 9162 Merkle trees ------------------------------------------------------------------------------------------


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """Leaves ``from_seq`` .. and the compact range before them: the roots of the perfect subtrees covering
    ``[0, from_seq)``, largest (leftmost) first."""

    def __init__(self, from_seq: int, compact: list[bytes], leaves: list[bytes]) -> None:
        self.from_seq, self.leaves = from_seq, leaves
        self.known: dict[tuple[int, int], bytes] = {}
        lo = 0
        bits = [1 << b for b in range(from_seq.bit_length() - 1, -1, -1) if from_seq & (1 << b)]
        if len(bits) != len(compact):
            raise Failure(f"compact 应有 {len(bits)} 个哈希，实有 {len(compact)} 个")
        for width, digest in zip(bits, compact, strict=True):
            self.known[(lo, lo + width)] = digest
            lo += width

    def root(self, size: int) -> bytes:
        if not self.from_seq <= size <= self.from_seq + len(self.leaves) or size == 0:
            raise Failure(f"size {size} outside the range")
        return self._hash(0, size)

    def _hash(self, lo: int, hi: int) -> bytes:
        if (lo, hi) in self.known:
            return self.known[(lo, hi)]
        if hi - lo == 1:
            if lo < self.from_seq:
                raise Failure(f"leaf {lo} is before the range and not covered by compact")
            return self.leaves[lo - self.from_seq]
        k = split(hi - lo)
        digest = node(self._hash(lo, lo + k), self._hash(lo + k, hi))
        if (hi - lo) & (hi - lo - 1) == 0:  # a perfect subtree: the same node in every larger tree
            self.known[(lo, hi)] = digest
        return digest


def inclusion_root(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root the proof leads to, or None when the proof is malformed."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def consistent(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0 or first > second or not proof and first & (first - 1) != 0:
        return False
    if first & (first - 1) == 0:
        proof = [first_root, *proof]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# -- OpenSSL ----------------------------------------------------------------------------------------------------------


class OpenSsl:
    """Ed25519 and RFC 3161 by the ``openssl`` command line, in a scratch folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.pems: dict[bytes, Path] = {}

    def _file(self, data: bytes, suffix: str = "") -> Path:
        self.count += 1
        path = self.folder / f"f{self.count}{suffix}"
        path.write_bytes(data)
        return path

    def pem(self, raw: bytes) -> Path:
        if raw not in self.pems:
            der = SPKI_ED25519 + raw
            text = "-----BEGIN PUBLIC KEY-----\n" + b64e(der) + "\n-----END PUBLIC KEY-----\n"
            self.pems[raw] = self._file(text.encode(), ".pem")
        return self.pems[raw]

    def verify(self, raw_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64 or len(raw_key) != 32:
            return False
        key, data, sig = self.pem(raw_key), self._file(message), self._file(signature)
        done = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin", "-in", str(data),
             "-sigfile", str(sig)],
            capture_output=True,
            check=False,
        )  # fmt: skip
        data.unlink()
        sig.unlink()
        return done.returncode == 0

    def verify_many(self, jobs: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        for raw, _m, _s in jobs:
            if len(raw) == 32:
                self.pem(raw)  # made before the threads start
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda job: self.verify(*job), jobs))

    def stamp(self, reply: bytes, digest: bytes, ca_pem: bytes) -> tuple[datetime | None, str]:
        """(the stamp's genTime, "") when the reply verifies over ``digest`` under ``ca_pem``; (None, why) else."""
        tsr, ca = self._file(reply, ".tsr"), self._file(ca_pem, ".pem")
        text = subprocess.run(
            ["openssl", "ts", "-reply", "-in", str(tsr), "-text"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"^Time stamp: (.+?)$", text, re.M)
        if not found:
            return None, "not a time-stamp reply"
        when = parse_gentime(found.group(1))
        done = subprocess.run(
            ["openssl", "ts", "-verify", "-digest", digest.hex(), "-in", str(tsr), "-CAfile", str(ca),
             "-attime", str(int(when.timestamp()))],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0 or "Verification: OK" not in done.stdout:
            said = (done.stdout + done.stderr).strip().splitlines()
            return None, said[-1] if said else f"openssl ts -verify exited {done.returncode}"
        return when, ""


def parse_gentime(text: str) -> datetime:
    """OpenSSL prints ``Mar  2 10:50:00 2026 GMT`` (optionally with fractional seconds)."""
    parts = text.split()
    clock = parts[2].split(".")[0]
    return datetime.strptime(f"{parts[0]} {parts[1]} {clock} {parts[3]}", "%b %d %H:%M:%S %Y").replace(tzinfo=UTC)


# -- signed notes (c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature) ------------------------------------------


def note_key_id(name: str, sig_type: int, raw: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + bytes([sig_type]) + raw)[:4]


@dataclass
class Note:
    origin: str
    size: int
    root: bytes
    body: bytes  # the three lines and any extension lines, each ending in a newline
    lines: list[tuple[str, bytes, str]]  # (name, decoded signature blob, the whole line)
    extensions: list[str] = field(default_factory=list)


def parse_note(text: str) -> Note:
    try:
        head, _sep, tail = text.partition("\n\n")
        origin, size, root, *extensions = head.split("\n")  # extension lines (c2sp) are signed with the rest
        if not size.isdigit() or (size.startswith("0") and size != "0"):
            raise ValueError("size")
        lines = []
        for line in tail.split("\n"):
            if not line:
                continue
            if not line.startswith(DASH):
                raise ValueError("signature line")
            name, blob = line[len(DASH) :].rsplit(" ", 1)
            lines.append((name, b64d(blob), line))
        return Note(origin, int(size), b64d(root), (head + "\n").encode(), lines, extensions)
    except ValueError as error:
        raise Failure(f"签名注释格式错误 / malformed signed note: {error}") from error


# -- the bundle -----------------------------------------------------------------------------------------------------


@dataclass
class Key:
    log: str
    kid: str
    raw: bytes
    valid_from: int
    valid_to: int | None
    revoked_at: object
    compromised_since: int | None


@dataclass
class Record:
    seq: int
    data: bytes
    sig: bytes
    fields: dict
    leaf: bytes
    employee: bool  # disclosed under records/ (as the employee's)
    where: str


@dataclass
class LogPart:
    n: str
    meta: dict
    origin: str
    from_seq: int
    to_size: int
    cloud: bool
    leaves: list[bytes] = field(default_factory=list)
    tags: dict[int, bytes] = field(default_factory=dict)  # seq -> tag, from leaves.txt
    records: dict[int, Record] = field(default_factory=dict)
    before: dict[int, Record] = field(default_factory=dict)  # employee's records before the range
    checkpoints: dict[int, Note] = field(default_factory=dict)
    cosig_time: dict[int, int] = field(default_factory=dict)  # checkpoint size -> cosignature time
    cosig_line: dict[int, str] = field(default_factory=dict)
    tree: Tree | None = None


class Verifier:
    def __init__(
        self,
        files: dict[str, bytes],
        witness_pem: bytes | None,
        tsa_ca: bytes | None,
        max_delay_h: float,
        allow_untimed: bool = False,
    ) -> None:
        self.allow_untimed = allow_untimed
        self.files = files
        self.pinned_witness = witness_pem
        self.pinned_tsa = tsa_ca
        self.max_delay = max_delay_h * 3600
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.keys: list[Key] = []
        self.logs: list[LogPart] = []

    # -- helpers
    def fail(self, text: str) -> None:
        self.failures.append(text)

    def json_file(self, name: str) -> object:
        if name not in self.files:
            raise Failure(f"缺少文件 / missing file {name}")
        return json.loads(self.files[name])

    def jsonl(self, name: str) -> list[dict]:
        if name not in self.files:
            return []
        return [json.loads(line) for line in self.files[name].decode().splitlines() if line.strip()]

    # -- the run
    def run(self, scratch: Path) -> None:
        self.ssl = OpenSsl(scratch)
        steps = [
            self.check_sums,
            self.read_manifest,
            self.read_keys,
            self.check_manifest_signature,
            self.read_logs,
            self.check_records,
            self.check_checkpoints,
            self.check_owner_tags,
            self.check_key_records,
            self.check_witness,
            self.check_times,
            self.check_case,
            self.check_report_times,
        ]
        for step in steps:
            try:
                step()
            except Failure as failure:
                self.fail(str(failure))
            except (ValueError, KeyError, TypeError, IndexError) as error:
                self.fail(f"{step.__name__}: {type(error).__name__}: {error}")
            if step in (self.check_sums, self.read_manifest, self.read_keys) and self.failures:
                return  # nothing further can be trusted to parse

    # 1. SHA256SUMS
    def check_sums(self) -> None:
        if SUMS not in self.files:
            raise Failure("缺少 SHA256SUMS")
        listed: dict[str, str] = {}
        for line in self.files[SUMS].decode().splitlines():
            found = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
            if not found:
                raise Failure(f"SHA256SUMS: bad line {line!r}")
            listed[found.group(2)] = found.group(1)
        others = set(self.files) - {SUMS}
        if set(listed) != others:
            raise Failure(f"SHA256SUMS lists {sorted(set(listed) ^ others)} wrongly (missing or extra)")
        for name, digest in listed.items():
            if sha256(self.files[name]).hex() != digest:
                raise Failure(f"SHA256SUMS: {name} changed")

    # 2. the manifest
    def read_manifest(self) -> None:
        self.manifest = self.json_file(MANIFEST)
        self.format = self.manifest.get("format")
        if self.format not in FORMATS:
            raise Failure(f"unknown bundle format {self.format!r}")
        self.version = int(self.format.rsplit("/", 1)[1])
        self.employee = self.manifest["employee"]
        self.plants = {p["id"]: p for p in self.manifest.get("plants", [])}

    def read_keys(self) -> None:
        registry = self.json_file("keys/registry.json")
        for entry in registry:
            raw = pem_raw(self.files[f"keys/{entry['file']}"])
            if kid_of(raw) != entry["kid"]:
                raise Failure(f"keys/{entry['file']}: its kid is not {entry['kid']}")
            self.keys.append(
                Key(entry["log"], entry["kid"], raw, entry["valid_from_seq"], entry.get("valid_to_seq"),
                    entry.get("revoked_at"), entry.get("compromised_since_seq"))
            )  # fmt: skip
        bundled = pem_raw(self.files["keys/witness.pem"]) if "keys/witness.pem" in self.files else None
        if self.pinned_witness is not None:
            self.witness = pem_raw(self.pinned_witness)
            if bundled is not None and bundled != self.witness:
                self.fail("见证公钥与固定的公钥不符 / keys/witness.pem is not the pinned witness key")
        elif bundled is not None:
            self.witness = bundled
            self.notes.append("公钥未经独立核对 / the witness key was taken from the bundle (not pinned)")
        else:
            raise Failure("缺少见证公钥 keys/witness.pem")
        if self.manifest.get("witness_kid") not in (None, kid_of(self.witness)):
            self.fail("manifest.json 的 witness_kid 不是见证公钥 / witness_kid is not the witness key")
        self.tsa_ca = self.pinned_tsa or self.files.get("witness/tsa-ca.pem")

    def check_manifest_signature(self) -> None:
        if self.version < 5:
            return
        if MANIFEST_SIG not in self.files:
            raise Failure("证据包缺少清单签名 manifest.sig")
        cloud = [k for k in self.keys if k.log == CLOUD_LOG]
        has_cloud = any(entry.get("kind") == "cloud" for entry in self.manifest.get("logs", []))
        signer = cloud[-1].raw if has_cloud and cloud else self.witness
        if self.manifest.get("signed_by") != kid_of(signer):
            self.fail("manifest.json 的 signed_by 不是应签名的密钥 / signed_by is not the expected key")
        if not self.ssl.verify(signer, self.files[MANIFEST], self.files[MANIFEST_SIG]):
            self.fail("清单 manifest.json 与其签名不符")
        listed = self.manifest.get("files", {})
        expected = set(self.files) - {MANIFEST, MANIFEST_SIG, MANIFEST_TSR, SUMS}
        if set(listed) != expected:
            self.fail(f"清单所列文件与证据包不符 / manifest files differ: {sorted(set(listed) ^ expected)}")
        for name, digest in listed.items():
            if name in self.files and sha256(self.files[name]).hex() != digest:
                self.fail(f"清单 manifest.json 所列 {name} 的哈希不符")
        derived = {MANIFEST, MANIFEST_SIG, MANIFEST_TSR, SUMS, "MANUAL-CHECKS.md", "report.html", "report.pdf"}
        evidence = sorted(n for n in self.files if n not in derived and not n.startswith("manual/"))
        listing = "".join(f"{sha256(self.files[n]).hex()}  {n}\n" for n in evidence).encode()
        if self.manifest.get("bundle_id") != sha256(listing).hex():
            self.fail("bundle_id 与证据文件不符 / bundle_id does not match the evidence files")
        if MANIFEST_TSR in self.files:
            if not self.tsa_ca:
                self.fail("manifest.tsr without a TSA root (witness/tsa-ca.pem)")
            else:
                when, why = self.ssl.stamp(self.files[MANIFEST_TSR], sha256(self.files[MANIFEST]), self.tsa_ca)
                if when is None:
                    self.fail(f"清单的时间戳 manifest.tsr 与清单不符 ({why})")
        else:
            self.notes.append("清单没有时间戳 manifest.tsr / the manifest has no TSA stamp")

    # 3. the logs
    def read_logs(self) -> None:
        names = sorted({m.group(1) for n in self.files if (m := re.fullmatch(r"logs/([^/]+)/log\.json", n))})
        listed = {e["log"] for e in self.manifest.get("logs", [])}
        for n in names:
            meta = json.loads(self.files[f"logs/{n}/log.json"])
            part = LogPart(n, meta, meta["log"], meta["from_seq"], meta["to_size"], meta.get("kind") == "cloud")
            if part.origin not in listed:
                self.fail(f"logs/{n}: log {part.origin} is not in manifest.json")
            for entry in self.manifest.get("logs", []):
                if entry["log"] == part.origin and (entry["from_seq"], entry["to_size"]) != (
                    part.from_seq,
                    part.to_size,
                ):
                    self.fail(f"logs/{n}: range differs from manifest.json")
            self.read_leaves(part)
            compact = [bytes.fromhex(h) for h in meta.get("compact", [])]
            part.tree = Tree(part.from_seq, compact, part.leaves)
            self.read_records(part)
            for line in self.jsonl(f"logs/{n}/checkpoints.jsonl"):
                note = parse_note(line["note"])
                if note.size != line["size"] or note.origin != part.origin:
                    self.fail(f"logs/{n}/checkpoints.jsonl: size {line['size']} / origin does not match its note")
                part.checkpoints[note.size] = note
            self.logs.append(part)
        if {p.origin for p in self.logs} != listed:
            self.fail("manifest.json lists logs the bundle does not hold")

    def read_leaves(self, part: LogPart) -> None:
        lines = self.files[f"logs/{part.n}/leaves.txt"].decode().splitlines()
        if len(lines) != part.to_size - part.from_seq:
            raise Failure(f"logs/{part.n}/leaves.txt: {len(lines)} lines for range {part.from_seq}..{part.to_size}")
        for offset, line in enumerate(lines):
            seq = part.from_seq + offset
            words = line.split(" ")
            if len(words) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", w) for w in words):
                tag, digest = bytes.fromhex(words[0]), bytes.fromhex(words[1])
                part.tags[seq] = tag
                part.leaves.append(sha256(b"\x00" + tag + digest))
            elif len(words) == 1 and re.fullmatch(r"[0-9a-f]{64}", words[0]):
                part.leaves.append(bytes.fromhex(words[0]))
            else:
                raise Failure(f"logs/{part.n}/leaves.txt line {offset + 1}: malformed")

    def read_records(self, part: LogPart) -> None:
        for line in self.jsonl(f"logs/{part.n}/system.jsonl"):
            self.add_record(part, line["seq"], line["data"].encode(), b64d(line["sig"]), False, "system.jsonl")
        prefix = f"logs/{part.n}/records/"
        for name in self.files:
            found = re.fullmatch(re.escape(prefix) + r"(\d+)\.json", name)
            if found:
                seq = int(found.group(1))
                self.add_record(part, seq, self.files[name], self.files.get(f"{prefix}{seq}.sig", b""), True, name)

    def add_record(self, part: LogPart, seq: int, data: bytes, sig: bytes, employee: bool, where: str) -> None:
        try:
            fields = parse_canonical(data)
        except ValueError as error:
            self.fail(f"{part.origin} #{seq} ({where}): {error}")
            return
        version = fields.get("v")
        if version not in RECORD_VERSIONS:
            self.fail(f"{part.origin} #{seq}: unknown record version {version!r}")
            return
        if version == 2:
            if "tag" not in fields:
                self.fail(f"{part.origin} #{seq}: a version 2 record without tag")
                return
            leaf = sha256(b"\x00" + b64d(fields["tag"]) + sha256(data))
        else:
            if "tag" in fields:
                self.fail(f"{part.origin} #{seq}: a version 1 record with a tag")
            leaf = sha256(b"\x00" + data)
        record = Record(seq, data, sig, fields, leaf, employee, where)
        if fields.get("seq") != seq or fields.get("log") != part.origin:
            self.fail(
                f"{part.origin} #{seq} ({where}): its log/seq fields say {fields.get('log')} #{fields.get('seq')}"
            )
        if seq in part.records or seq in part.before:
            self.fail(f"{part.origin} #{seq}: disclosed twice")
        if part.from_seq <= seq < part.to_size:
            part.records[seq] = record
        elif seq < part.from_seq and employee:
            part.before[seq] = record
        else:
            self.fail(f"{part.origin} #{seq} ({where}): outside the range {part.from_seq}..{part.to_size}")

    def key_at(self, log: str, seq: int) -> Key | None:
        for key in self.keys:
            if key.log == log and key.valid_from <= seq and (key.valid_to is None or seq <= key.valid_to):
                return key
        return None

    def check_records(self) -> None:
        jobs: list[tuple[bytes, bytes, bytes]] = []
        labels: list[str] = []
        for part in self.logs:
            for seq, record in sorted({**part.records, **part.before}.items()):
                label = f"{part.origin} 第 {seq} 条记录"
                if part.from_seq <= seq < part.to_size and part.leaves[seq - part.from_seq] != record.leaf:
                    self.fail(f"{label}: 与 leaves.txt 不符 / does not match its line in leaves.txt")
                if seq == 0:
                    expect = bytes(32)
                elif part.from_seq < seq < part.to_size:
                    expect = part.leaves[seq - 1 - part.from_seq]
                else:
                    expect = None  # the first of a compact range, or a record before the range: proven by its proof
                if expect is not None and b64d(record.fields["prev"]) != expect:
                    self.fail(f"{label}: prev is not the previous record's leaf")
                key = self.key_at(part.origin, seq)
                if key is None:
                    self.fail(f"{label}: no key of the registry may sign it")
                    continue
                if record.fields.get("kid") != key.kid:
                    self.fail(f"{label}: signed by kid {record.fields.get('kid')}, the key in force is {key.kid}")
                jobs.append((key.raw, b"punchlog/record/v1\n" + record.leaf, record.sig))
                labels.append(f"{label}: 签名无效 / bad signature")
                if record.fields.get("type") == "keyrot":
                    fields = dict(record.fields)
                    proof = b64d(fields.pop("proof"))
                    new = b64d(fields["new_key"])
                    if kid_of(new) != fields["new_kid"]:
                        self.fail(f"{label}: keyrot new_kid does not match new_key")
                    signed = b"punchlog/keyrot/v1\n" + sha256(b"\x00" + canonical(fields))
                    jobs.append((new, signed, proof))
                    labels.append(f"{label}: keyrot proof does not verify under new_key")
                    nxt = self.key_at(part.origin, seq + 1)
                    if nxt is None or nxt.raw != new:
                        self.fail(f"{label}: the registry's key from seq {seq + 1} is not the keyrot's new_key")
            for key in self.keys:  # a key taking over inside the range must be handed over by a disclosed keyrot
                if key.log == part.origin and part.from_seq < key.valid_from < part.to_size:
                    rot = part.records.get(key.valid_from - 1)
                    if rot is None or rot.fields.get("type") != "keyrot" or rot.fields.get("new_kid") != key.kid:
                        self.fail(
                            f"{part.origin}: key {key.kid} takes over at {key.valid_from} without a keyrot record"
                        )
            for seq, record in part.before.items():
                self.check_inclusion(part, record, f"{part.origin} 第 {seq} 条记录")
            for seq, record in part.records.items():
                if record.employee:
                    self.check_inclusion(part, record, f"{part.origin} 第 {seq} 条记录")
        for ok, label in zip(self.ssl.verify_many(jobs), labels, strict=True):
            if not ok:
                self.fail(label)

    def check_inclusion(self, part: LogPart, record: Record, label: str) -> None:
        name = f"logs/{part.n}/records/{record.seq}.proof.json"
        if name not in self.files:
            self.fail(f"{label}: missing {name}")
            return
        proof = json.loads(self.files[name])
        note = part.checkpoints.get(proof["size"])
        root = inclusion_root(proof["index"], proof["size"], record.leaf, [bytes.fromhex(h) for h in proof["hashes"]])
        if proof["index"] != record.seq or note is None or root != note.root:
            self.fail(f"{label}: inclusion proof does not lead to a checkpoint of the bundle")

    def check_checkpoints(self) -> None:
        jobs, labels = [], []
        for part in self.logs:
            assert part.tree is not None
            if part.to_size not in part.checkpoints:
                self.fail(f"{part.origin}: no checkpoint at the range's end {part.to_size}")
            for size, note in sorted(part.checkpoints.items()):
                label = f"{part.origin} checkpoint {size}"
                if size <= part.from_seq or size > part.to_size:
                    self.fail(f"{label}: outside the range")
                    continue
                if part.tree.root(size) != note.root:
                    self.fail(f"{label}: leaves.txt does not reproduce its root")
                body = note.body
                signer = self.key_at(part.origin, size - 1)
                own = [line for line in note.lines if line[0] == part.origin]
                witnessed = [line for line in note.lines if line[0] != part.origin]
                if signer is None or not own:
                    self.fail(f"{label}: not signed by the log's key")
                else:
                    blob = own[0][1]
                    if blob[:4] != note_key_id(part.origin, 0x01, signer.raw):
                        self.fail(f"{label}: the signature's key id is not the log's key")
                    jobs.append((signer.raw, body, blob[4:]))
                    labels.append(f"{label}: 检查点签名无效 / bad checkpoint signature")
                cosigs = [line for line in witnessed if line[1][:4] == note_key_id(line[0], 0x04, self.witness)]
                if not cosigs:
                    self.fail(f"{label}: 没有见证服务器的副署 / not cosigned by the witness key")
                    continue
                name, blob, whole = cosigs[0]
                when = int.from_bytes(blob[4:12], "big")
                jobs.append((self.witness, b"cosignature/v1\ntime %d\n" % when + body, blob[12:]))
                labels.append(f"{label}: 副署签名无效 / bad cosignature")
                part.cosig_time[size] = when
                part.cosig_line[size] = whole
        for ok, label in zip(self.ssl.verify_many(jobs), labels, strict=True):
            if not ok:
                self.fail(label)

    # 4. owner tags
    def owner(self, part: LogPart, fields: dict) -> tuple[str, ...] | None:
        emp = fields.get("emp")
        if emp is None and isinstance(fields.get("fact"), dict):
            emp = fields["fact"].get("emp")
        if emp is None:
            return None
        return (emp, fields.get("plant", "")) if part.cloud else (emp,)

    def check_owner_tags(self) -> None:
        for part in self.logs:
            employee_records = {s: r for s, r in {**part.before, **part.records}.items() if r.employee}
            for seq, record in employee_records.items():
                owner = self.owner(part, record.fields)
                if owner is None or owner[0] != self.employee or part.cloud and owner[1] not in self.plants:
                    self.fail(f"{part.origin} 第 {seq} 条记录: disclosed as the employee's but is not theirs")
            tags = dict(part.tags)
            for record in part.records.values():
                if record.fields.get("type") == "tagindex":
                    blob = b64d(record.fields["tags"])
                    first, to = record.fields["from"], record.fields["to"]
                    if len(blob) != 32 * (to - first):
                        self.fail(f"{part.origin} 第 {record.seq} 条记录: tagindex of the wrong length")
                        continue
                    for i, seq in enumerate(range(first, to)):
                        tags.setdefault(seq, blob[32 * i : 32 * i + 32])
            if not tags:
                self.notes.append(f"{part.origin}: 无法证明没有隐瞒该员工的记录 (no owner tags: version 1)")
                continue
            missing = [s for s in range(part.from_seq, part.to_size) if s not in tags]
            if missing:
                self.fail(f"{part.origin}: 第 {missing[0]} 条记录没有归属标记")
                continue
            keys = [r.fields["tagkey"] for r in employee_records.values() if "tagkey" in r.fields]
            if not keys:
                self.fail(f"{part.origin}: 未披露该员工在此日志中的归属密钥")
                continue
            if len(set(keys)) > 1:
                self.fail(f"{part.origin}: 该员工在此日志中有不止一个归属密钥 / more than one tag key for the employee")
            k = b64d(keys[0])
            for seq in range(part.from_seq, part.to_size):
                mine = hmac.new(k, b"punchproof/tag/v1\n" + part.origin.encode() + b"\n" + str(seq).encode(),
                                hashlib.sha256).digest()  # fmt: skip
                disclosed = seq in employee_records
                if tags[seq] == mine and not disclosed:
                    self.fail(f"{part.origin}: 第 {seq} 条记录属于该员工但未披露")
                if disclosed and tags[seq] != mine:
                    self.fail(f"{part.origin}: 第 {seq} 条记录 is disclosed as the employee's but lacks the tag")
            for seq, record in part.before.items():
                mine = hmac.new(k, b"punchproof/tag/v1\n" + part.origin.encode() + b"\n" + str(seq).encode(),
                                hashlib.sha256).digest()  # fmt: skip
                if b64d(record.fields.get("tag", "")) != mine:
                    self.fail(f"{part.origin}: 第 {seq} 条记录 (before the range) lacks the employee's tag")

    # 5. key registrations, revocations
    def check_key_records(self) -> None:
        cloud = [p for p in self.logs if p.cloud]
        points: dict[str, int] = {}
        for key in self.keys:
            if key.compromised_since is not None:
                points[key.log] = min(points.get(key.log, key.compromised_since), key.compromised_since)
        for part in cloud:
            for record in part.records.values():
                f = record.fields
                if f.get("type") == "keyreg":
                    match = [k for k in self.keys if k.log == f["key_log"] and k.kid == f["key_kid"]]
                    if (
                        not match
                        or match[0].raw != b64d(f["public_key"])
                        or kid_of(b64d(f["public_key"])) != f["key_kid"]
                    ):
                        self.fail(f"key registrations: 第 {record.seq} 条 keyreg does not match keys/registry.json")
                elif f.get("type") == "keyrevoke":
                    points[f["key_log"]] = min(points.get(f["key_log"], f["since_seq"]), f["since_seq"])
        for part in self.logs:
            point = points.get(part.origin)
            if point is None:
                continue
            bad = sorted(s for s, r in part.records.items() if r.employee and s >= point)
            if bad:
                self.fail(f"{part.origin}: 自第 {point} 条起该设备密钥可能已泄露（云端已吊销），此后记录不作为证据")

    # 6. the witness log and the stamps
    def check_witness(self) -> None:
        lines = self.jsonl("witness/checkpoints.jsonl")
        if not lines:
            self.fail("witness log: 没有见证检查点 / witness/checkpoints.jsonl is missing or empty")
            return
        self.witness_roots: dict[int, bytes] = {}
        self.commits: dict[int, tuple[int, bytes] | None] = {}  # per witness checkpoint: its heads/1 (n, root)
        self.stamp_times: dict[int, list[datetime]] = {}
        jobs, labels = [], []
        for line in lines:
            note = parse_note(line["note"])
            if note.origin != WITNESS_ORIGIN or note.size != line["size"]:
                self.fail(f"witness checkpoint {line['size']}: wrong origin or size")
                continue
            own = [b for name, b, _ in note.lines if b[:4] == note_key_id(name, 0x01, self.witness)]
            if not own:
                self.fail(f"witness checkpoint {note.size}: not signed by the witness key")
                continue
            jobs.append((self.witness, note.body, own[0][4:]))
            labels.append(f"witness checkpoint {note.size}: bad signature")
            self.witness_roots[note.size] = note.root
            self.commits[note.size] = committed_heads(note)
            times = []
            for stamp in line.get("stamps", []):
                if stamp["file"] not in self.files:
                    self.fail(f"witness checkpoint {note.size}: stamp {stamp['file']} missing")
                    continue
                if not self.tsa_ca:
                    self.fail("stamps without a TSA root (witness/tsa-ca.pem)")
                    continue
                digest = sha256(line["note"].encode())
                when, why = self.ssl.stamp(self.files[stamp["file"]], digest, self.tsa_ca)
                if when is None:
                    self.fail(f"witness checkpoint {note.size}: stamp {stamp['file']} does not verify ({why})")
                else:
                    times.append(when)
            self.stamp_times[note.size] = times
        for ok, label in zip(self.ssl.verify_many(jobs), labels, strict=True):
            if not ok:
                self.fail(label)
        latest = max(self.witness_roots)
        proven = {latest}
        for line in self.jsonl("witness/consistency.jsonl"):
            a, b = line["from"], line["to"]
            if b != latest or a not in self.witness_roots:
                continue
            if consistent(
                a, b, self.witness_roots[a], self.witness_roots[b], [bytes.fromhex(h) for h in line["proof"]]
            ):
                proven.add(a)
        for size in self.witness_roots:
            if size not in proven and self.version >= 4:
                self.fail(f"witness log: checkpoint {size} not proven consistent with {latest} (a fork?)")
        # every checkpoint of every log has its witness entry
        self.entries: dict[tuple[str, int], tuple[int, int]] = {}  # (log, size) -> (position, witness size)
        for line in self.jsonl("witness/entries.jsonl"):
            position = self.proven_entry(line, "entries")
            if position is not None:
                data = json.loads(line["data"])
                self.entries[(data["log"], data["size"])] = (position, line["size"], data)
        for part in self.logs:
            for size in part.checkpoints:
                entry = self.entries.get((part.origin, size))
                if entry is None:
                    self.fail(f"{part.origin} checkpoint {size}: 见证日志中没有该检查点 / no witness entry")
                    continue
                data = entry[2]
                if (
                    b64d(data["root"]) != part.checkpoints[size].root
                    or data.get("cosig") != part.cosig_line.get(size)
                    or data.get("t") != part.cosig_time.get(size)
                ):
                    self.fail(f"{part.origin} checkpoint {size}: witness entry differs (root, cosig or t)")
        if self.version >= 4:
            self.check_heads()

    def proven_entry(self, line: dict, what: str) -> int | None:
        root = self.witness_roots.get(line["size"])
        leaf = sha256(b"\x00" + line["data"].encode())
        path = [bytes.fromhex(h) for h in line["proof"]]
        if root is None or inclusion_root(line["seq"], line["size"], leaf, path) != root:
            self.fail(f"witness {what}: entry {line['seq']} not proven into witness checkpoint {line['size']}")
            return None
        return line["seq"]

    def check_heads(self) -> None:
        heads: dict[tuple[str, str], dict] = {}
        for line in self.jsonl("witness/heads.jsonl"):
            data = json.loads(line["data"])
            if data["log"] != line["log"] or self.proven_entry(line, "heads") is None:
                self.fail(f"witness heads: {line['log']} {line['role']} not proven")
                continue
            heads[(line["log"], line["role"])] = {**data, "at": line["seq"]}
        committed = self.committed_lines()
        for part in self.logs:
            latest = heads.get((part.origin, "latest"))
            largest = max(part.checkpoints, default=0)
            if latest is None or latest["size"] < largest:
                self.fail(f"{part.origin}: log length: 本证据包未给出见证服务器所记录的该日志最新长度")
                continue
            if committed is not None:
                self.check_committed_heads(part, latest, heads.get((part.origin, "next")), committed)
            if part.cloud:
                continue
            nxt = heads.get((part.origin, "next"))
            if latest["size"] > part.to_size and nxt is None:
                self.fail(f"{part.origin}: log length: …却未给出其后见证的第一个检查点")
                continue
            end = self.period_end(part)
            t_end = part.cosig_time.get(part.to_size)
            if (
                latest["size"] > part.to_size
                and t_end is not None
                and t_end < end
                and nxt is not None
                and nxt["t"] < end
            ):
                self.fail(
                    f"{part.origin}: 日志在第 {part.to_size - 1} 条之后被截断：见证服务器曾记录其长度为 {nxt['size']}"
                )

    def committed_lines(self) -> dict[tuple[str, int], int] | None:
        """The per-log heads lines the witness checkpoints commit (heads/1), proven: (origin, witness size) ->
        position of the log's latest entry; None for a witness log from before heads/1."""
        if not self.commits:
            return None
        latest = max(self.commits)
        if self.commits[latest] is None:
            if any(self.commits.values()):
                self.fail(
                    f"witness log: checkpoint {latest}, the latest, commits no per-log heads while earlier ones do"
                )
            else:
                self.notes.append("witness log from before heads/1: each log's heads are the exporter's pick")
            return None
        lines: dict[tuple[str, int], int] = {}
        for item in self.jsonl("witness/log-heads.jsonl"):
            commit = self.commits.get(item["size"])
            line = f"{sha256(item['log'].encode()).hex()} {item['seq']}".encode()
            path = [bytes.fromhex(h) for h in item["proof"]]
            if commit is None or inclusion_root(item["index"], commit[0], sha256(b"\x00" + line), path) != commit[1]:
                self.fail(f"witness log: the head of {item['log']} at witness checkpoint {item['size']} is not proven")
                continue
            lines[(item["log"], item["size"])] = item["seq"]
        return lines

    def check_committed_heads(self, part: LogPart, latest: dict, nxt: dict | None, lines: dict) -> None:
        """FORMAT.md, "Per-log heads": the heads given must be the ones the stamped witness log committed."""
        label = f"{part.origin}: log length"
        top = max(self.commits)
        if lines.get((part.origin, top)) != latest["at"]:
            self.fail(f"{label}: 最新见证检查点（{top}）所承诺的该日志最新条目与本证据包不符或未给出")
            return
        ends = [(size, at) for (log, size), (at, _w, _d) in self.entries.items() if log == part.origin]
        if not ends:
            return
        end = max(ends)[1]
        if nxt is not None and "prev" in nxt and nxt["prev"] != end:
            self.fail(f"{label}: 其后第一个检查点的前一项为第 {nxt['prev']} 项，而非本包范围末尾的第 {end} 项")
            return
        if nxt is None and latest["at"] != end:
            return  # a later head without the entry past the range: "A log cut short" fails it
        for size in sorted(s for s, c in self.commits.items() if c is not None and s > end):
            seen = lines.get((part.origin, size))
            if seen is None or (seen != end if nxt is None or size <= nxt["at"] else seen < nxt["at"]):
                self.fail(f"{label}: 见证检查点 {size} 承诺的该日志最新条目与本证据包的范围末尾不符：其间的条目被略去")
                return

    def period_end(self, part: LogPart) -> int:
        zone = ZoneInfo(self.plants.get(part.meta.get("plant"), {}).get("timezone", "UTC"))
        last = date.fromisoformat(self.manifest["period"]["to"])
        return int(datetime.combine(last + timedelta(days=1), time(0), zone).timestamp())

    # 7. each record's time between its anchor and its first cosignature; each punch's third-party time
    def check_times(self) -> None:
        entries = getattr(self, "entries", {})
        for part in self.logs:
            # a record's anchor: the base64 SHA-256 of the cosignature line with its newline (FORMAT.md)
            anchors = {b64e(sha256(line.encode() + b"\n")): part.cosig_time[s] for s, line in part.cosig_line.items()}
            for data in (e[2] for (log, _s), e in entries.items() if log == part.origin):
                anchors.setdefault(b64e(sha256(data["cosig"].encode() + b"\n")), data["t"])
            for seq, record in sorted(part.records.items()):
                t = record.fields.get("t_wall_ms", 0) // 1000
                covering = [s for s in part.cosig_time if s > seq]
                if covering:
                    cosigned = part.cosig_time[min(covering)]
                    if t > cosigned + TOLERANCE_S:
                        self.fail(f"{part.origin} 第 {seq} 条记录: its time is after the cosignature covering it")
                key = self.key_at(part.origin, seq)
                revoked = key.revoked_at if key is not None else None
                if revoked is not None and (not covering or part.cosig_time[min(covering)] >= revoked):
                    self.fail(f"{part.origin} 第 {seq} 条记录: signed by a key revoked before the cloud witnessed it")
                anchor = record.fields.get("anchor")
                if anchor is not None and anchor in anchors and t < anchors[anchor] - TOLERANCE_S:
                    self.fail(f"{part.origin} 第 {seq} 条记录: its time is before its anchor's cosignature")
        # third-party time of each disclosed punch
        stamp_times = getattr(self, "stamp_times", {})
        untimed = self.notes.append if self.allow_untimed else self.fail
        if not any(stamp_times.values()):
            untimed("本证据包没有第三方时间戳 / no verified RFC 3161 stamp in the bundle")
            return
        for part in self.logs:
            for seq, record in sorted(part.records.items()):
                if not record.employee or record.fields.get("type") != "punch":
                    continue
                best: datetime | None = None
                for size in part.checkpoints:
                    if size <= seq or (part.origin, size) not in entries:
                        continue
                    position, proven_into, _data = entries[(part.origin, size)]
                    for w, times in stamp_times.items():
                        if w == proven_into or w > position:
                            for when in times:
                                best = when if best is None or when < best else best
                if best is None:
                    untimed(f"{part.origin}: 第 {seq} 条记录没有第三方时间戳覆盖")
                elif best.timestamp() - record.fields["t_wall_ms"] / 1000 > self.max_delay:
                    self.fail(f"{part.origin}: 第 {seq} 条记录晚于允许的 {self.max_delay / 3600:g} 小时才取得时间戳")

    # 8. a case's bundle
    def check_case(self) -> None:
        case = self.manifest.get("case")
        if not case:
            return
        ref = case["ref"]
        part = next((p for p in self.logs if p.origin == case.get("log", CLOUD_LOG)), None)
        if part is None:
            raise Failure(f"case {ref}: 证据包中没有云端证据日志")
        for what, type_ in (("contacts", "contact"), ("receipts", "receipt"), ("actions", "case_action")):
            for seq in case.get(what, []):
                record = part.records.get(seq)
                if record is None or record.fields.get("type") != type_ or record.fields.get("case") != ref:
                    self.fail(f"case {ref}: 本案的 {type_} 第 {seq} 条记录未披露或不符")
        for digest in case.get("notices", []):
            name = f"cloud/notices/{digest}.pdf"
            if name not in self.files or sha256(self.files[name]).hex() != digest:
                self.fail(f"case {ref}: 缺少文书 {name}")
        hashed = {
            sha256(d).hex() for n, d in self.files.items() if n.startswith(("cloud/notices/", "cloud/documents/"))
        }
        for digest in case.get("documents", []):
            if digest not in hashed:
                self.fail(f"case {ref}: 缺少文书（SHA-256 {digest}）")
        for record in part.records.values():
            if record.fields.get("type") == "contact" and record.fields.get("case") == ref:
                for attachment in record.fields.get("attachments", []):
                    name = f"cloud/notices/{attachment['sha256']}.pdf"
                    if attachment.get("mime") == "application/pdf" and name not in self.files:
                        self.notes.append(f"case {ref}: attachment {attachment['sha256']} not in cloud/notices/")

    # 9. the report's times
    def check_report_times(self) -> None:
        if self.version < 5 or "report.html" not in self.files:
            return
        parser = TimeMarks()
        parser.feed(self.files["report.html"].decode())
        by_origin = {p.origin: p for p in self.logs}
        shown: set[tuple[str, int]] = set()
        for attrs, text in parser.marks:
            origin, seq = attrs.get("data-log"), int(attrs.get("data-seq", "-1"))
            part = by_origin.get(origin)
            record = part.records.get(seq) if part else None
            if record is None or not record.employee or record.fields.get("type") != "punch":
                self.fail(f"report times: 报告第 {seq} 条记录 is not a disclosed punch")
                continue
            shown.add((origin, seq))
            f = record.fields
            if attrs.get("data-clock") == "terminal":
                t = f.get("term", {}).get("t")
                good = attrs.get("datetime") == t and t is not None and text == t[11:19]
            else:
                instant = datetime.fromtimestamp(f["t_wall_ms"] / 1000, UTC)
                iso = instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{f['t_wall_ms'] % 1000:03d}Z"
                zone = ZoneInfo(self.plants.get(part.meta.get("plant"), {}).get("timezone", "UTC"))
                local = instant.astimezone(zone)
                good = attrs.get("datetime") == iso and text in (
                    local.strftime("%H:%M:%S"),
                    local.strftime("%Y-%m-%d %H:%M:%S"),
                )
            if not good:
                self.fail(f"report times: 报告第 {seq} 条记录显示的时间与签名记录不符")
        for part in self.logs:
            for seq, record in part.records.items():
                punch = record.employee and record.fields.get("type") == "punch"
                if punch and "t" in record.fields.get("term", {}) and (part.origin, seq) not in shown:
                    self.fail(f"report times: 报告未显示第 {seq} 条打卡记录")


class TimeMarks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[dict, str]] = []
        self._open: dict | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "time":
            values = {k: v or "" for k, v in attrs}
            if "data-seq" in values:
                self._open, self._text = values, ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "time" and self._open is not None:
            self.marks.append((self._open, self._text))
            self._open = None


def committed_heads(note: Note) -> tuple[int, bytes] | None:
    """A witness checkpoint's ``heads/1 <n> <base64 root>`` extension line, or None."""
    for line in note.extensions:
        name, _sep, rest = line.partition(" ")
        if name == "heads/1":
            count, _sep, root = rest.partition(" ")
            if not count.isdigit() or len(b64d(root)) != 32:
                raise Failure(f"witness checkpoint {note.size}: malformed heads/1 line")
            return int(count), b64d(root)
    return None


def pem_raw(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    der = base64.b64decode(body)
    if len(der) != 44 or not der.startswith(SPKI_ED25519):
        raise Failure("not an Ed25519 public key")
    return der[12:]


def kid_of(raw: bytes) -> str:
    return b64e(sha256(SPKI_ED25519 + raw))


def read_bundle(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        return {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}


def verify(
    files: dict[str, bytes],
    witness_pem: bytes | None = None,
    tsa_ca: bytes | None = None,
    max_delay_h: float = 24,
    allow_untimed: bool = False,
) -> Verifier:
    verifier = Verifier(files, witness_pem, tsa_ca, max_delay_h, allow_untimed)
    with tempfile.TemporaryDirectory(prefix="indep-verify-") as scratch:
        verifier.run(Path(scratch))
    return verifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--witness-key", type=Path, help="the cloud's witness public key (PEM), obtained separately")
    parser.add_argument("--tsa-ca", type=Path, help="the TSA's root certificate (PEM), obtained separately")
    parser.add_argument("--max-stamp-delay", type=float, default=24, help="hours (default 24)")
    parser.add_argument(
        "--allow-untimed", action="store_true", help="a bundle without RFC 3161 time is not a failure (a note)"
    )
    args = parser.parse_args(argv)
    try:
        files = read_bundle(args.bundle)
        witness = args.witness_key.read_bytes() if args.witness_key else None
        tsa = args.tsa_ca.read_bytes() if args.tsa_ca else None
    except (OSError, zipfile.BadZipFile) as error:
        print(f"cannot read: {error}", file=sys.stderr)
        return 2
    result = verify(files, witness, tsa, args.max_stamp_delay, args.allow_untimed)
    print("FAIL" if result.failures else "OK")
    for line in result.failures:
        print(f"  FAIL {line}")
    for line in result.notes:
        print(f"  note {line}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
