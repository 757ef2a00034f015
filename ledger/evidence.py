"""The evidence bundle: its layout, and its offline verification.

A bundle is one ZIP that an arbitrator can check without trusting Punchproof:

    manifest.json                 what the bundle is about: employee, period, logs, witness; a case's
                                  bundle also its case and what the case must carry ("case", format 2)
    SHA256SUMS                    sha256sum -c of every other file
    manifest.sig                  (format 5) Ed25519 over manifest.json's exact bytes, by the evidence key (else
                                  the witness key); the manifest's "files" lists every other file's SHA-256
    keys/<kid>.pem                the appliances' public keys; keys/registry.json their validity
    keys/witness.pem              the cloud's witness key (pin it with --witness-key)
    logs/<n>/log.json             one appliance log: origin, the range [from_seq, to_size), and the
                                  Merkle compact range before from_seq
    logs/<n>/leaves.txt           the leaf hash (hex) of every record in the range, one per line:
                                  other workers' records are disclosed only as these salted hashes
    logs/<n>/checkpoints.jsonl    the checkpoints a reader needs (those around the employee's records, the
                                  first of each hour, the last), signed by the appliance and cosigned
                                  (timestamped) by the cloud
    logs/<n>/records/<seq>.json   the employee's records, byte for byte as signed, with <seq>.sig (raw
                                  Ed25519) and <seq>.proof.json (inclusion proof into the last checkpoint)
    logs/<n>/system.jsonl         the appliance's own records that hold no worker's data (boot, seal, clock,
                                  keyrot, the incidents ``public_record`` names), one per line: {"seq", "data"
                                  (exact text), "sig"}; leaves.txt proves them. A terminal's incident that names
                                  the employee (``emp``) is among their records; any other that holds a
                                  terminal's bytes is a leaf, counted in the manifest's undisclosed_incidents
    logs/<n>/requests/<seq>       (the cloud's evidence log, "kind": "cloud") what a contact record sent
    cloud/notices/<sha256>.pdf    the notices the cloud's contact records attached, and the documents a person
                                  produced on a case (解除证明, 公告 text), named by their hash
    cloud/documents/<sha256>.ext  the files kept with a case (HR's uploads, the drafts a confirmation
                                  reviewed) that a person's action in the cloud's log names by hash
    witness/                      the cloud's own signed log of checkpoints: entries with inclusion
                                  proofs, its checkpoints, RFC 3161 stamps (.tsr) and the TSA's certificate;
                                  consistency.jsonl proves the checkpoints used one history, heads.jsonl gives
                                  each log's latest witnessed checkpoint at export and the first past its range
                                  (a log cut short fails), log-heads.jsonl proves them against the per-log heads
                                  each witness checkpoint commits (heads/1), so they are not the exporter's pick
    report.html, report.pdf       the same Chinese report for people (the PDF embeds its CJK font); report.html
                                  marks each punch time it shows (<time data-seq>), compared with the records
    MANUAL-CHECKS.md, FORMAT.md   how to check all this with OpenSSL alone, and the record format

``verify_bundle`` runs every check and reports each, with the gaps it found.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

from ledger import note
from ledger.errors import LedgerError
from ledger.keys import VerifyKey
from ledger.merkle import CompactRange, verify_inclusion
from ledger.record import (
    OWNER_TYPES,
    RECORD_DOMAIN,
    TAG_SIZE,
    b64,
    employee_of,
    owner_tag,
    parse,
    record_leaf,
    rotation_key,
    tagged_leaf,
    unb64,
)
from ledger.timestamp import verify_timestamp
from ledger.witnesslog import WitnessResult, verify_witness

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
# 2: the manifest may name a case ("case"); 3: the cloud's evidence log carries the appliance keys' registrations
# and revocations (``keyreg``, ``keyrevoke``), and keys/registry.json a log's ``compromised_since_seq``; 4: the
# witness checkpoints used are proven one history (witness/consistency.jsonl) and each log's latest witnessed
# checkpoint is given (witness/heads.jsonl); 5: the manifest lists every file's hash and is signed (manifest.sig),
# and report.html marks the times it shows (checked against the records). FORMAT.md, "The evidence bundle"
FORMAT = "punchproof-evidence/5"
FORMATS = (
    "punchproof-evidence/1",
    "punchproof-evidence/2",
    "punchproof-evidence/3",
    "punchproof-evidence/4",
    FORMAT,
)  # others are refused
LINKED_FORMATS = ("punchproof-evidence/4", FORMAT)  # formats whose witness part carries consistency proofs, log heads
SIGNED_FORMATS = (FORMAT,)  # formats whose manifest is signed and whose report's times are checked
MANIFEST_SIG = "manifest.sig"  # raw Ed25519 over manifest.json's exact bytes (FORMAT.md, "The signed manifest")
MANIFEST_TSR = "manifest.tsr"  # an RFC 3161 stamp over manifest.json's SHA-256, where a TSA is configured
UNLISTED = (MANIFEST, MANIFEST_SIG, MANIFEST_TSR, SUMS)  # the files a signed manifest's "files" cannot list
REPORT = "report.html"
STAMP_DELAY = timedelta(hours=24)  # the default policy: a punch stamped later than this after it is flagged
KEY_TYPES = ("keyreg", "keyrevoke")  # the cloud's evidence log: appliance keys registered (or rotated in), revoked
CLOCK_TOLERANCE_S = 120  # how far a record's own time may stray outside its witnessed bounds
SEAL_GAP_S = 180  # seals come every 60 s: a longer silence is a gap (power cut, appliance off)
# the appliance's own records, disclosed in every bundle when they hold no worker's data (``public_record``);
# ``format`` and ``tagindex`` (a log's switch to owner tags, and the tags it gave its older records late) are needed
# to check that none is withheld
SYSTEM_TYPES = ("boot", "seal", "incident", "clock", "keyrot", "format", "tagindex")
# incidents about a terminal or the appliance, not about anyone's punch: no terminal's or reader's bytes, no badge,
# no card. Any other incident (a terminal's record that is not a punch, an unknown card, a reader's noise) is
# disclosed only in the bundles of the worker it names (its ``emp``), and a leaf in every other
NOBODYS_INCIDENTS = frozenset(
    {
        "clock_alarm",
        "clock_alarm_cleared",
        "clock_correction_failed",
        "terminal_log_cleared",
        "log_replaced",
        "unknown_terminal",
        "terminal_identity",  # a terminal's model, serial number and firmware, as the appliance read them
    }
)


def public_record(fields: dict[str, Any]) -> bool:
    """Whether every bundle discloses an appliance record (FORMAT.md, "The evidence bundle"): a system record of no
    one's, and for an incident one of ``NOBODYS_INCIDENTS`` that carries no terminal's bytes. Not a worker's record
    (a punch, an incident naming its worker): that is disclosed only in the worker's own bundles."""
    if fields.get("type") not in SYSTEM_TYPES or employee_of(fields) is not None:
        return False
    if fields["type"] != "incident":
        return True
    term = fields.get("term")
    held = set(term) if isinstance(term, dict) else set()
    return fields.get("kind") in NOBODYS_INCIDENTS and not held & {"raw", "card", "page"} and "raw" not in fields


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Event:
    """A gap or an incident placed in time, so that a report can show it on the day it happened."""

    kind: str  # power_gap, unclean_boot, clock_jump, unwitnessed, log_ends, incident
    log: str
    start: int  # Unix seconds
    end: int | None = None  # for spans: power_gap, log_ends (the period's end)
    seq: int | None = None
    amount: int = 0  # clock_jump: seconds, positive when the clock jumped forward
    detail: str = ""  # what the gap list says, in English
    witnessed_size: int | None = None  # log_ends: the witness log's latest size of the log at export, when given
    exported: int | None = None  # log_ends: when the bundle was made, if that was before the period's end
    zh: str = ""  # what the gap list says, in Chinese (``Report.gap_lines``)


NO_THIRD_PARTY_TIME_ZH = (
    "本证据包没有第三方时间戳：其中的时间仅由用人单位自己的设备与服务器证明，对方可主张记录系事后制作。"
)
NO_THIRD_PARTY_TIME_EN = (
    "This bundle has no third-party timestamp: its times rest only on the employer's own devices and server, "
    "and the other side may say the records were made afterwards."
)
PARTLY_THIRD_PARTY_TIME_ZH = (
    "本证据包中有 {n} 个检查点没有第三方时间戳：其下记录的时间仅由用人单位自己的设备与服务器证明，"
    "对方可主张这些记录系事后制作。"
)
PARTLY_THIRD_PARTY_TIME_EN = (
    "{n} of this bundle's checkpoints carry no third-party timestamp: the times of the records under them rest "
    "only on the employer's own devices and server, and the other side may say they were made afterwards."
)
THIRD_PARTY_TIME_FIX_ZH = (
    "补救：在云端配置一个或多个 RFC 3161 时间戳机构（punchproof cloud init --tsa-url，或 cloud.toml 的 "
    "[[tsa.authority]]），此后的记录将由其盖章；现有记录重新导出后只能证明其不晚于新盖章的时间存在。"
)
THIRD_PARTY_TIME_FIX_EN = (
    "To fix: configure one or more RFC 3161 timestamp authorities on the cloud ('punchproof cloud init "
    "--tsa-url', or [[tsa.authority]] in cloud.toml); later records get stamped. Re-exported, the existing "
    "records can only be shown to have existed by the time of the new stamp."
)


UNPINNED_ZH = (
    "公钥未经独立核对：本次核验所用的公钥取自证据包本身。用新生成的密钥伪造的证据包同样自洽，"
    "因此签名只证明证据包内部一致，不证明出自用人单位登记的设备与服务器。"
)
UNPINNED_EN = (
    "The public keys were not checked against copies obtained independently: this run took them from the bundle "
    "itself. A bundle forged with freshly made keys is just as self-consistent, so its signatures show only that "
    "it agrees with itself, not that it comes from the employer's registered appliances and server."
)
PIN_HOWTO_ZH = (
    "核对方法：向用人单位总部另行索取公司服务器的会签公钥 cloud-witness.pub（云端服务器的数据目录，默认 "
    "/var/lib/punchproof/），用 --witness-key 指定；设备公钥用 --appliance-key 指定（PEM 文件或指纹），"
    "其指纹与登记日期见报告的“设备公钥登记”（云端签名证据日志中的登记记录，经时间戳机构盖章），"
    "宜在争议发生前留存；时间戳机构根证书从该机构官网取得，用 --tsa-ca 指定。"
)
PIN_HOWTO_EN = (
    "To pin: obtain the cloud's witness public key (cloud-witness.pub, in the state directory of head office's "
    "server, /var/lib/punchproof/ by default) separately and pass it with --witness-key; pass each appliance "
    "key with --appliance-key (a PEM file or its fingerprint): the fingerprints and the dates they were "
    "registered are in the report's key registrations (设备公钥登记: records of the cloud's signed evidence "
    "log, stamped by the TSA), best kept before any dispute; get the TSA's root certificate from its own "
    "website and pass it with --tsa-ca."
)
UNSTAMPED_ZH = "第 {seq} 条记录没有第三方时间戳覆盖"
UNSTAMPED_EN = "record {seq} is covered by no third-party timestamp"
LATE_ZH = "第 {seq} 条记录晚于允许的 {limit}才取得时间戳：打卡于 {t}，最早的第三方时间戳为 {stamped}（相隔 {delay}）"
LATE_EN = (
    "record {seq} was stamped later than the {limit_en} allowed: punched at {t}, earliest third-party timestamp "
    "{stamped} ({delay_en} later); the employer could have made it in between"
)
CUT_ZH = (
    "日志在第 {last} 条之后被截断：公司服务器（会签）曾记录其长度为 {size} 条（{at} 会签），本证据包却止于第 {last} 条"
)
CUT_EN = (
    "the log was cut after record {last}: the witness log recorded it at {size} records (witnessed {at}), yet the "
    "bundle ends at record {last} and reads as if the appliance had stopped"
)
UNTRUSTED_ZH = "自第 {since} 条起该设备密钥可能已泄露（云端已吊销），此后记录不作为证据"
UNTRUSTED_EN = "the appliance key may have been copied from seq {since} on: those records are not evidence"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # the gaps, and the terminals' incidents, in time
    # the employee's records, verified: {"log", "seq", "emp", "fields", "not_after"}; a day fact names its worker
    # inside ``fact`` (``fact.emp``), and its ``fields`` carry that as ``emp`` too, like every other record's
    disclosed: list[dict[str, Any]] = field(default_factory=list)
    covered_days: set[str] = field(default_factory=set)  # plant-local days the appliances were recording
    recorded: dict[str, tuple[int, int]] = field(default_factory=dict)  # per covered day: first, last record
    # why the bundle's times are the employer's word alone, zh-CN then English; "" when a TSA stamp that
    # verified covers every checkpoint of the bundle (its records' third-party time)
    untimed: tuple[str, str] | None = (NO_THIRD_PARTY_TIME_ZH, NO_THIRD_PARTY_TIME_EN)
    # why the keys are the bundle's own word, zh-CN then English; None when the witness key was pinned
    unpinned: tuple[str, str] | None = (UNPINNED_ZH, UNPINNED_EN)
    # the appliance keys' registrations and revocations, from the cloud's signed evidence log (verified records):
    # {"type", "key_log", "key_kid", "public_key", "at_ms", "how", "seq", "t" (logged at, Unix s), "not_after", ...}
    key_records: list[dict[str, Any]] = field(default_factory=list)
    untrusted: dict[str, int] = field(default_factory=dict)  # per log: the first seq no longer evidence
    # per log: whether every record of its range was checked against the employee's owner tag ("checked"), and the
    # tagindex records that tagged records from before its switch to version 2 late ("late": from, to, at_ms)
    tag_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per disclosed punch of the employee: {"log", "seq", "t" (its own time, Unix s), "stamped" (the earliest verified
    # TSA time covering it, Unix s, or None), "delay" (s), "late" (later than the policy allows)}
    punch_stamps: list[dict[str, Any]] = field(default_factory=list)
    stamp_delay: int = int(STAMP_DELAY.total_seconds())  # the policy the punches were held to, seconds
    # punches stamped later than the policy allows, each said zh-CN then English; a flag, not a failed check
    late: list[tuple[str, str]] = field(default_factory=list)
    # per log: the incidents of its range the bundle does not disclose (other workers', or holding a terminal's bytes
    # of no known worker), as the signed manifest counts them; they are leaves like any other record
    undisclosed_incidents: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every check passed: signatures, hashes, proofs, stamps. Not by itself a green result: see ``result``."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def timed(self) -> bool:
        """A verified RFC 3161 stamp covers every checkpoint in the bundle: its times are not only the employer's."""
        return self.untimed is None

    @property
    def pinned(self) -> bool:
        """The witness key was pinned: it cosigns every checkpoint of the bundle, the cloud's evidence log's too."""
        return self.unpinned is None

    @property
    def result(self) -> str:
        """``verified`` (every check passed, third-party time covers the bundle and the keys were pinned),
        ``untimed`` (every check passed, but the bundle's times are the employer's word alone), ``late`` (every
        check passed, but a punch's earliest third-party time came later than the policy allows: it could have been
        made in between), ``unpinned`` (every check passed, but its keys were taken from the bundle itself), or
        ``failed``. None but ``verified`` is ever shown as a full pass; when several apply the first in that order
        counts: without third-party time the keys' holder could have made every record afterwards, pinned or not,
        so that is the first thing to fix (all are said)."""
        if not self.ok:
            return "failed"
        if not self.timed:
            return "untimed"
        if self.late:
            return "late"
        return "verified" if self.pinned else "unpinned"

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def gap(self, event: Event) -> None:
        self.gaps.append(event.detail)
        self.events.append(event)

    def gap_lines(self) -> list[str]:
        """The gaps as ``verify`` prints them: Chinese first, then " / " and English. ``gaps`` keeps each event's
        English (``Event.detail``), which is what the report matches its events by."""
        said = {e.detail: e.zh for e in self.events if e.zh}
        return [f"{said[g]} / {g}" if g in said else g for g in self.gaps]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "result": self.result,
            "third_party_time": self.timed,
            "untimed": list(self.untimed) if self.untimed else None,
            "keys_pinned": self.pinned,
            "unpinned": list(self.unpinned) if self.unpinned else None,
            "key_records": self.key_records,
            "untrusted_from": self.untrusted,
            "owner_tags": self.tag_checks,
            "punch_stamps": self.punch_stamps,
            "stamp_delay_s": self.stamp_delay,
            "late": [list(pair) for pair in self.late],
            "undisclosed_incidents": self.undisclosed_incidents,
            "checks": [asdict(c) for c in self.checks],
            "gaps": self.gap_lines(),
            "disclosed": self.disclosed,
        }


def sha256sums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())).encode()


def key_pin(value: bytes | str) -> str:
    """The key id (``kid``: base64 of SHA-256 of the DER public key) a pin names: a PEM public key, its kid, or the
    same SHA-256 in hex (``openssl pkey -pubin -outform DER | sha256sum``). Raise ``ValueError`` otherwise."""
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    if "BEGIN PUBLIC KEY" in text:
        try:
            return VerifyKey.from_pem(text).kid
        except LedgerError as err:
            raise ValueError("PEM 文件不是可用的 Ed25519 公钥 / the PEM is not a usable Ed25519 public key") from err
    text = text.strip().removeprefix("SHA256:").strip()
    if _HEX64.fullmatch(text.lower()):
        return base64.b64encode(bytes.fromhex(text)).decode()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as err:
        raise ValueError(
            f"“{text}”既不是 PEM 公钥，也不是公钥指纹 / “{text}” is neither a PEM public key nor a key fingerprint"
        ) from err
    if len(raw) != 32:
        raise ValueError(
            f"“{text}”既不是 PEM 公钥，也不是公钥指纹（32 字节） / “{text}” is neither a PEM public key nor a key "
            "fingerprint (32 bytes)"
        )
    return text


def verify_bundle(
    data: bytes,
    *,
    witness_key: VerifyKey | None = None,
    tsa_roots: bytes | None = None,
    appliance_keys: Collection[str] | None = None,
    evidence_keys: Collection[str] | None = None,
    stamp_delay: timedelta = STAMP_DELAY,
) -> Report:
    """Check a bundle offline. ``witness_key`` pins the cloud's key, ``tsa_roots`` (PEM) the timestamp
    authority's; without them the bundle's own are used (and the report says so: ``unpinned``). ``appliance_keys``
    and ``evidence_keys`` are key ids (``key_pin``): when given, every key that signs an appliance's log (the
    cloud's evidence log) in the bundle, rotations included, must be one of them. ``stamp_delay`` is the policy:
    a punch whose earliest third-party time came later than that after it is flagged (``late``)."""
    report = Report(stamp_delay=int(stamp_delay.total_seconds()))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError):
        report.add(
            "archive",
            False,
            "证据包不是 ZIP 文件，或已损坏、不完整：无法读取其中任何文件，请向出具方索取原始证据包 / "
            "the bundle is not an intact ZIP file (damaged, cut short, or not a bundle): none of its files can be "
            "read; ask the exporter for the original bundle",
        )
        return report
    if not _check_sums(files, report):
        return report
    manifest_problem = _manifest_problem(files)
    if manifest_problem is not None:
        report.add("manifest", False, manifest_problem)
        return report
    manifest = json.loads(files[MANIFEST])
    witness = VerifyKey.from_pem(files["keys/witness.pem"])
    if manifest.get("format", FORMATS[0]) not in FORMATS:
        report.add(
            "manifest",
            False,
            f"证据包格式 {manifest.get('format')} 未知，本程序只认 {', '.join(FORMATS)}：请用更新的 "
            "punchproof verify / unknown bundle format: use a newer punchproof verify",
        )
        return report
    if witness_key is not None:
        same = witness.kid == witness_key.kid
        report.add(
            "witness key",
            same,
            f"证据包中的公司服务器会签公钥 {witness.kid} {'与' if same else '不是'}核验时指定的公钥 {witness_key.kid}"
            f"{'一致' if same else ''} / the bundle's witness key {witness.kid}, "
            f"{'the one pinned' if same else f'not the one pinned ({witness_key.kid})'}",
        )
        witness = witness_key
        report.unpinned = None
    else:
        report.add(
            "witness key",
            True,
            f"取自证据包本身（{witness.kid}），未经独立核对：请用 --witness-key 指定另行取得的公钥 / taken from the "
            f"bundle ({witness.kid}); pin it with --witness-key",
        )
    _check_bundle_id(files, manifest, report)
    try:
        registry = json.loads(files.get("keys/registry.json", b"[]"))
    except ValueError:
        registry = None
    if not isinstance(registry, list) or not all(isinstance(e, dict) for e in registry):
        report.add(
            "keys",
            False,
            "keys/registry.json 不是密钥登记列表（JSON 数组，每项一个对象） / keys/registry.json is not the list of "
            "keys (a JSON array of objects)",
        )
        return report
    try:
        _verify_contents(
            files, manifest, registry, witness, report, tsa_roots, appliance_keys, evidence_keys, stamp_delay
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, LedgerError):
        # a part of the bundle that does not follow FORMAT.md and that no check above caught: said in words, after
        # the checks that ran; the library's message would name no file a reader could look at
        where = report.checks[-1].name if report.checks else "manifest"
        report.add(
            "format",
            False,
            f"证据包的结构不符合格式说明 FORMAT.md（在“{where}”之后的检查中发现缺少或无法读取的文件或字段），核验无法"
            f"继续，请向出具方索取原始证据包 / the bundle does not follow FORMAT.md (a file or field is missing or "
            f"unreadable, found after the check '{where}'): verification cannot go on; ask the exporter for the "
            "original bundle",
        )
    return report


def _verify_contents(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    registry: list[dict[str, Any]],
    witness: VerifyKey,
    report: Report,
    tsa_roots: bytes | None,
    appliance_keys: Collection[str] | None,
    evidence_keys: Collection[str] | None,
    stamp_delay: timedelta,
) -> None:
    """``verify_bundle``'s checks past the archive, SHA256SUMS, the manifest and the witness key."""
    signed = manifest.get("format") in SIGNED_FORMATS
    if signed:
        _check_manifest(files, manifest, registry, witness, report, tsa_roots)
    else:
        report.gaps.append(
            f"本证据包为旧格式 {manifest.get('format', FORMATS[0])}：清单未签名，报告所示时间未与记录核对 / an older "
            "format: its manifest is unsigned and its report's times were not compared with the records"
        )
    report.untrusted = _compromised(files, manifest, registry)
    tails = [
        _verify_log(files, f"logs/{index}", manifest, registry, witness, report)
        for index in range(len(manifest.get("logs", [])))
    ]
    _check_key_records(files, registry, report)
    for name, pins, cloud in (("appliance keys", appliance_keys, False), ("evidence key", evidence_keys, True)):
        if pins is not None:
            _check_pins(files, manifest, registry, set(pins), cloud, name, report)
    if manifest.get("witness_log") or "witness/entries.jsonl" in files:
        cosigned = {
            (json.loads(files[f"logs/{i}/log.json"])["log"], entry["size"]): entry["note"]
            for i in range(len(manifest.get("logs", [])))
            for entry in map(json.loads, files[f"logs/{i}/checkpoints.jsonl"].decode().splitlines())
        }
        linked = manifest.get("format") in LINKED_FORMATS
        witnessed = verify_witness(files, cosigned, witness, tsa_roots, linked=linked)
        detail = witnessed.detail
        if witnessed.times and tsa_roots is None:
            zh, _, en = detail.partition(" / ")
            detail = (
                f"{zh}；时间戳机构的根证书取自证据包本身，宜用 --tsa-ca 指定 / {en}; the TSA certificate was taken "
                "from the bundle: pin it with --tsa-ca"
            )
        report.add("witness log", witnessed.ok, detail)
        if witnessed.ok and witnessed.times and cosigned:
            n = witnessed.unstamped
            report.untimed = (
                (PARTLY_THIRD_PARTY_TIME_ZH.format(n=n), PARTLY_THIRD_PARTY_TIME_EN.format(n=n)) if n else None
            )
        _punch_stamps(report, manifest, witnessed.covered, stamp_delay)
        for tail in tails:
            if tail is not None:
                _check_tail(report, tail, witnessed.heads if linked and witnessed.ok else None, witnessed)
    else:
        report.gaps.append(
            "本证据包不含公司服务器的会签日志：其中的检查点未在公司服务器的签名日志中得到证明 / the bundle has no "
            "witness log: its checkpoints are not proven in the cloud's signed log"
        )
        for tail in tails:
            if tail is not None:
                _check_tail(report, tail, None)
    if "case" in manifest:  # whatever the format says: a case named is a case checked
        _verify_case(files, manifest, report)
    if signed:
        check_report_times(files, manifest, report)


def manifest_signer(files: dict[str, bytes], manifest: dict[str, Any], registry: list[dict[str, Any]]) -> str:
    """Which key must sign a bundle's manifest (FORMAT.md, "The signed manifest"): ``evidence`` (the cloud's evidence
    key, the one signing the cloud's evidence log) when the bundle carries that log, else ``witness``."""
    for index in range(len(manifest.get("logs", []))):
        if json.loads(files.get(f"logs/{index}/log.json", b"{}")).get("kind") == "cloud":
            return "evidence"
    return "witness"


def _check_manifest(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    registry: list[dict[str, Any]],
    witness: VerifyKey,
    report: Report,
    tsa_roots: bytes | None = None,
) -> None:
    """A signed manifest (format 5): ``manifest.sig`` verifies over manifest.json's exact bytes under the key that
    must sign it, and the manifest's ``files`` gives the SHA-256 of every other file, the reports included, and of
    no file the bundle lacks. SHA256SUMS alone can be recomputed by anyone who edits a file; this cannot without
    the cloud's key."""
    name = "manifest signature"
    sig = files.get(MANIFEST_SIG)
    if sig is None:
        report.add(
            name,
            False,
            "证据包缺少清单签名 manifest.sig：无法确认清单及其所列文件（含报告）未在导出后被改动，请向出具方索取原始"
            "证据包 / the bundle has no manifest.sig: nothing shows that the manifest and the files it lists (the "
            "reports included) are as exported; ask the exporter for the original bundle",
        )
        return
    signer = manifest_signer(files, manifest, registry)
    kid = manifest.get("signed_by")
    if signer == "witness":
        key: VerifyKey | None = witness if kid == witness.kid else None
    else:
        origins = {
            json.loads(files.get(f"logs/{i}/log.json", b"{}")).get("log")
            for i in range(len(manifest.get("logs", [])))
            if json.loads(files.get(f"logs/{i}/log.json", b"{}")).get("kind") == "cloud"
        }
        entry = next((e for e in registry if e.get("log") in origins and e.get("kid") == kid), None)
        try:
            key = VerifyKey.from_pem(files[f"keys/{entry['file']}"]) if entry else None
        except (KeyError, LedgerError):
            key = None
    who_zh, who_en = (
        ("云端证据密钥", "the cloud's evidence key")
        if signer == "evidence"
        else ("公司服务器的会签密钥", "the witness key")
    )
    if key is None or key.kid != kid:
        report.add(
            name,
            False,
            f"清单声明的签名密钥 {kid} 不是{who_zh}：清单不可信 / the manifest names signing key {kid}, which is not "
            f"{who_en}",
        )
        return
    try:
        key.verify(sig, files[MANIFEST])
    except LedgerError:
        report.add(
            name,
            False,
            "清单 manifest.json 与其签名不符：清单在导出后被改动过，证据包中的文件与报告不可信 / "
            f"manifest.json does not match its signature by {who_en}: it was changed after export",
        )
        return
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        report.add(name, False, "清单没有文件哈希列表 files / the manifest lists no file hashes")
        return
    present = {n: d for n, d in files.items() if n not in UNLISTED}
    changed = sorted(n for n, d in present.items() if listed.get(n) != hashlib.sha256(d).hexdigest())
    missing = sorted(set(listed) - set(present))
    if changed or missing:
        report.add(
            name,
            False,
            f"以下文件与签名清单所记哈希不符或不在清单中：{_names(changed, '无')}；清单所列而缺少的文件："
            f"{_names(missing, '无')} / files altered or not in the signed manifest: {_names(changed, 'none')}; "
            f"missing: {_names(missing, 'none')}",
        )
        return
    stamped_zh, stamped_en = "；清单本身没有第三方时间戳", "; the manifest itself carries no third-party timestamp"
    if MANIFEST_TSR in files:  # by the TSA that stamps the witness log (its root: --tsa-ca, or the bundle's)
        roots = tsa_roots if tsa_roots is not None else files.get("witness/tsa-ca.pem", b"")
        try:
            when = verify_timestamp(files[MANIFEST_TSR], hashlib.sha256(files[MANIFEST]).digest(), roots)
        except LedgerError:
            report.add(
                name,
                False,
                "清单的时间戳 manifest.tsr 与清单不符，或不能以时间戳机构的根证书验证 / manifest.tsr does not stamp "
                "this manifest, or does not verify under the TSA's root certificate",
            )
            return
        stamped_zh = f"；时间戳机构于 {when:%Y-%m-%d %H:%M:%S} UTC 为其盖章"
        stamped_en = f"; stamped by the TSA at {when:%Y-%m-%d %H:%M:%S} UTC"
    report.add(
        name,
        True,
        f"清单由{who_zh} {kid} 签名，所列 {len(listed)} 个文件均未改动{stamped_zh} / signed by {who_en} {kid}; the "
        f"{len(listed)} files it lists are as exported{stamped_en}",
    )


def record_time(t_wall_ms: int) -> str:
    """A record's own time as report.html's ``<time datetime>`` gives it: ISO 8601 in UTC, milliseconds."""
    return datetime.fromtimestamp(t_wall_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


TIME_MISMATCH_ZH = "报告第 {seq} 条记录显示的时间与签名记录不符"


class _TimeMarks(HTMLParser):
    """Every ``<time data-log data-seq data-clock datetime>`` of report.html, with the text it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "time":
            self._open = {k: v or "" for k, v in attrs} | {"text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "time" and self._open is not None:
            self.marks.append(self._open)
            self._open = None


def check_report_times(files: dict[str, bytes], manifest: dict[str, Any], report: Report) -> None:
    """report.html shows each of the employee's punches at the times its signed record gives (FORMAT.md, "The
    report's times"): every ``<time>`` it marks for a record (``data-log``, ``data-seq``; ``data-clock`` ``terminal``:
    the terminal's ``term.t``, or ``appliance``: ``t_wall_ms``) carries that record's time and shows it, in the
    plant's zone, and every disclosed punch is shown. A bundle without report.html (and whose signed manifest lists
    none) has nothing to compare."""
    name = "report times"
    if REPORT not in files:
        if REPORT in (manifest.get("files") or {}):
            report.add(name, False, "缺少 report.html / report.html is missing")
        return
    parser = _TimeMarks()
    parser.feed(files[REPORT].decode("utf-8", errors="replace"))
    zones = {e.get("log"): _plant_zone(manifest, e.get("plant")) for e in manifest.get("logs", [])}
    punches = {
        (item["log"], item["seq"]): item["fields"]
        for item in report.disclosed
        if item["fields"].get("type") == "punch" and "t" in item["fields"].get("term", {})
    }
    wrong: list[str] = []
    shown: set[tuple[str, int]] = set()
    for mark in parser.marks:
        try:
            seq = int(mark.get("data-seq", ""))
        except ValueError:
            continue  # not a record's time
        fields = punches.get((mark.get("data-log", ""), seq))
        if fields is None:
            wrong.append(f"报告第 {seq} 条记录不是本证据包披露的打卡 / record {seq} shown is no disclosed punch")
            continue
        shown.add((mark["data-log"], seq))
        clock, text = mark.get("data-clock"), mark["text"].strip()
        if clock == "terminal":
            signed_t = fields["term"]["t"]
            expected, ok = signed_t, mark.get("datetime") == signed_t and text == signed_t[11:19]
        else:
            local = datetime.fromtimestamp(fields["t_wall_ms"] / 1000, zones.get(mark["data-log"], ZoneInfo("UTC")))
            expected = f"{local:%Y-%m-%d %H:%M:%S}"
            ok = mark.get("datetime") == record_time(fields["t_wall_ms"]) and text in (expected, expected[11:])
        if not ok:
            wrong.append(
                TIME_MISMATCH_ZH.format(seq=seq) + f"（显示 {text}，签名记录为 {expected}） / the report shows record "
                f"{seq} at {text}, its signed record says {expected}"
            )
    hidden = sorted(seq for log, seq in punches if (log, seq) not in shown)
    if hidden:
        wrong.append(
            f"报告未显示第 {_seqs(hidden)} 条打卡记录 / the report leaves out disclosed punches {_seqs(hidden)}"
        )
    report.add(
        name,
        not wrong,
        _joined(wrong)
        or f"报告所显示的 {len(punches)} 条打卡的时间均与签名记录一致 / the report shows each of the {len(punches)} "
        "punches at its signed record's times",
    )


DOCUMENT_DIRS = ("cloud/notices/", "cloud/documents/")  # where a bundle keeps what records name by hash
_NAMED_HASH = re.compile(r"SHA-256 ([0-9a-f]{64})")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def named_documents(fields: dict[str, Any]) -> set[str]:
    """The SHA-256 of each document a person's action on a case (a ``case_action`` record) names: its data's
    ``sha256`` (a 解除证明 or 公告 text produced, a file uploaded) and every "SHA-256 <hex>" in its words or its
    data (the drafts a confirmation reviewed, a task done with a document as proof). Whoever holds the signed
    record can ask for those exact bytes; a case's bundle carries them."""
    if fields.get("type") != "case_action":
        return set()
    raw = fields.get("data")
    found = set(_NAMED_HASH.findall(str(fields.get("text", "")))) | set(_NAMED_HASH.findall(str(raw or "")))
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        data = None
    digest = data.get("sha256") if isinstance(data, dict) else None
    if isinstance(digest, str) and _HEX64.fullmatch(digest):
        found.add(digest)
    return found


CASE_LISTS = {  # the manifest's list: the record type, and how the message names them (zh-CN, English)
    "contacts": ("contact", "联络记录 {n} 条", "{n} contact attempts"),
    "receipts": ("receipt", "回执 {n} 条", "{n} receipts"),
    "actions": ("case_action", "人事操作 {n} 项", "{n} actions by people"),
}


def _verify_case(files: dict[str, bytes], manifest: dict[str, Any], report: Report) -> None:
    """A case's bundle carries what its manifest's ``case`` lists: each record of the case in the cloud's
    evidence log (contacts, receipts, people's actions; disclosed, of this case, of that type), each notice
    (``cloud/notices/<sha256>.pdf``, with that hash) and each document (a file of that hash under
    ``cloud/notices/`` or ``cloud/documents/``), as well as every notice a disclosed contact of the case attached
    and every document a disclosed action on the case names (``named_documents``: the 解除证明, the 公告 text,
    HR's uploads, the drafts reviewed). Their signatures and proofs are the disclosed-records check's; here,
    that none is missing. A bundle made before documents were listed has no ``documents``: the records still
    name what it must hold."""
    claim = manifest["case"]
    ref = claim.get("ref") if isinstance(claim, dict) else None
    if not isinstance(ref, str):
        report.add("case", False, "manifest 的 case 不可读 / the manifest's case is unreadable")
        return
    records: dict[int, dict[str, Any]] = {}
    found_log = False
    for index in range(len(manifest.get("logs", []))):
        base = f"logs/{index}"
        if json.loads(files.get(f"{base}/log.json", b"{}")).get("log") != claim.get("log"):
            continue
        found_log = True
        for name in files:
            if name.startswith(f"{base}/records/") and name.endswith(".json") and not name.endswith(".proof.json"):
                try:
                    fields = parse(files[name])
                except LedgerError:
                    continue  # reported by the disclosed-records check
                records[fields["seq"]] = fields
    zh: list[str] = []
    en: list[str] = []
    wrong: list[int] = []
    counts: dict[str, int] = {}
    for key, (kind, in_zh, in_en) in CASE_LISTS.items():
        seqs = claim.get(key, [])
        counts[key] = len(seqs)
        absent = [seq for seq in seqs if seq not in records]
        if absent:
            zh.append(in_zh.format(n=len(absent)) + f"（seq {', '.join(map(str, absent))}）")
            en.append(in_en.format(n=len(absent)))
        wrong += [s for s in seqs if s in records and (records[s].get("type"), records[s].get("case")) != (kind, ref)]
    attached = {
        item.get("sha256")
        for fields in records.values()
        if fields.get("type") == "contact" and fields.get("case") == ref
        for item in fields.get("attachments", [])
    }
    notices = sorted(set(claim.get("notices", [])) | attached)
    absent = [sha for sha in notices if hashlib.sha256(files.get(f"cloud/notices/{sha}.pdf", b"")).hexdigest() != sha]
    if absent:
        zh.append(f"通知书 {len(absent)} 份（{', '.join(sha[:12] for sha in absent)}）")
        en.append(f"{len(absent)} notices")
    named = {sha for fields in records.values() if fields.get("case") == ref for sha in named_documents(fields)}
    documents = sorted((set(claim.get("documents", [])) | named) - set(notices))
    held = {hashlib.sha256(data).hexdigest() for name, data in files.items() if name.startswith(DOCUMENT_DIRS)}
    absent = [sha for sha in documents if sha not in held]
    if absent:
        zh.append(f"文书 {len(absent)} 份（SHA-256 {', '.join(sha[:12] for sha in absent)}）")
        en.append(f"{len(absent)} documents its records name (SHA-256 {', '.join(sha[:12] for sha in absent)})")
    problems = []
    if not found_log:
        problems.append(f"缺少云端证据日志 {claim.get('log')} / the cloud's evidence log is missing")
    if zh:
        problems.append(f"本案 {ref} 的证据包缺少：{'；'.join(zh)} / the bundle of {ref} lacks {', '.join(en)}")
    if wrong:
        problems.append(
            f"seq {', '.join(map(str, wrong))} 不是本案所列类型的记录 / not {ref}'s records of the type listed"
        )
    report.add(
        f"case {ref}",
        not problems,
        _joined(problems)
        or f"本案 {ref} 的证据齐全：联络 {counts['contacts']} 次、回执 {counts['receipts']} 份、人事操作 "
        f"{counts['actions']} 项、通知书 {len(notices)} 份、文书 {len(documents)} 份 / every contact, receipt, "
        "action, notice and document the case lists is in the bundle",
    )


def _said(pairs: list[tuple[str, str]]) -> str:
    """Several findings as one check's detail: every Chinese sentence first, then " / " and every English one."""
    return "；".join(zh for zh, _en in pairs) + " / " + "; ".join(en for _zh, en in pairs)


def _joined(details: list[str]) -> str:
    """Findings each said "zh / en", as one detail that reads Chinese first: "" for none."""
    return _said([(zh, en) for zh, _, en in (d.partition(" / ") for d in details)]) if details else ""


def _names(names: list[str], none: str) -> str:
    """File names as words: the first 10, and how many more."""
    if not names:
        return none
    return ", ".join(names[:10]) + (f" … ({len(names)})" if len(names) > 10 else "")


def _check_sums(files: dict[str, bytes], report: Report) -> bool:
    if SUMS not in files:
        return report.add("SHA256SUMS", False, "证据包缺少 SHA256SUMS / the bundle has no SHA256SUMS")
    listed: dict[str, str] = {}
    unreadable: list[int] = []
    for number, line in enumerate(files[SUMS].decode("utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or not _HEX64.fullmatch(digest) or not name:
            unreadable.append(number)
            continue
        listed[name] = digest
    others = {n: d for n, d in files.items() if n != SUMS}
    bad = sorted(n for n, d in others.items() if listed.get(n) != hashlib.sha256(d).hexdigest())
    missing = sorted(set(listed) - set(others))
    problems = []
    if bad or missing:
        problems.append(
            (
                f"以下文件被改动或未列入 SHA256SUMS：{_names(bad, '无')}；列出而缺少的文件：{_names(missing, '无')}",
                f"altered or unlisted: {_names(bad, 'none')}; missing: {_names(missing, 'none')}",
            )
        )
    if unreadable:
        lines = ", ".join(map(str, unreadable[:10]))
        problems.append(
            (
                f"SHA256SUMS 第 {lines} 行不是“64 位十六进制哈希、两个空格、文件名”的格式",
                f"line(s) {lines} of SHA256SUMS are not '<64 hex digits>  <file name>'",
            )
        )
    if problems:
        return report.add("SHA256SUMS", False, _said(problems))
    return report.add("SHA256SUMS", True, f"SHA256SUMS 所列的每个文件均未改动 / {len(others)} files")


def _manifest_problem(files: dict[str, bytes]) -> str | None:
    """What makes manifest.json or keys/witness.pem unusable, in words (zh / en), or None."""
    if MANIFEST not in files:
        return "证据包缺少证据包说明 manifest.json / the bundle has no manifest.json"
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except UnicodeDecodeError:
        return "manifest.json 不是 UTF-8 文本 / manifest.json is not UTF-8 text"
    except json.JSONDecodeError as err:
        return (
            f"manifest.json 不是有效的 JSON：第 {err.lineno} 行第 {err.colno} 列处不符合 JSON 格式 / manifest.json is "
            f"not valid JSON: at line {err.lineno}, column {err.colno}"
        )
    if not isinstance(manifest, dict):
        return "manifest.json 不是 JSON 对象（{…}） / manifest.json is not a JSON object ({…})"
    if "keys/witness.pem" not in files:
        return "证据包缺少公司服务器的会签公钥 keys/witness.pem / the bundle has no keys/witness.pem"
    try:
        VerifyKey.from_pem(files["keys/witness.pem"])
    except (LedgerError, ValueError):
        return (
            "keys/witness.pem 不是可用的 Ed25519 公钥（PEM 格式） / keys/witness.pem is not a usable Ed25519 public "
            "key (PEM)"
        )
    return None


DERIVED = (MANIFEST, MANIFEST_SIG, MANIFEST_TSR, SUMS, "MANUAL-CHECKS.md", REPORT, "report.pdf")  # not in bundle_id


def bundle_id(files: dict[str, bytes]) -> str:
    """The bundle's name (FORMAT.md, "The signed manifest"): SHA-256 (hex) of the SHA256SUMS-format listing of its
    evidence files, every file but ``DERIVED`` and those under ``manual/`` (made from the evidence, after it)."""
    evidence = {n: d for n, d in files.items() if n not in DERIVED and not n.startswith("manual/")}
    return hashlib.sha256(sha256sums(evidence)).hexdigest()


def _check_bundle_id(files: dict[str, bytes], manifest: dict[str, Any], report: Report) -> None:
    """The manifest's ``bundle_id`` (printed on every page of the report) names these evidence files. A signed
    manifest (format 5) must give one; an older one is checked when it does."""
    given = manifest.get("bundle_id")
    if given is None and manifest.get("format") not in SIGNED_FORMATS:
        return
    actual = bundle_id(files)
    if given == actual:
        report.add(
            "bundle id",
            True,
            f"清单中的证据包编号 {actual[:16]}… 与证据文件相符 / the manifest's bundle_id {actual[:16]}… matches the "
            "evidence files",
        )
    elif given is None:
        report.add(
            "bundle id",
            False,
            "清单没有给出证据包编号 bundle_id / the manifest gives no bundle_id",
        )
    else:
        report.add(
            "bundle id",
            False,
            f"清单中的证据包编号与文件不符：清单为 {str(given)[:16]}…，按证据文件计算为 {actual[:16]}…（报告每页"
            f"所印编号"
            f"即清单所载） / the manifest's bundle_id ({str(given)[:16]}…) does not match the evidence files "
            f"({actual[:16]}…)",
        )


def _verify_log(
    files: dict[str, bytes],
    base: str,
    manifest: dict[str, Any],
    registry: list[dict[str, Any]],
    witness: VerifyKey,
    report: Report,
) -> dict[str, Any] | None:
    """Check one log of the bundle; return what the witness log's heads are to be held against (``_check_tail``):
    where its range ends, when that was cosigned, and the period's end."""
    info = json.loads(files[f"{base}/log.json"])
    origin, start, end = info["log"], info["from_seq"], info["to_size"]
    label = f"{origin} [{start}, {end})"
    keys = {r["kid"]: (VerifyKey.from_pem(files[f"keys/{r['file']}"]), r) for r in registry if r["log"] == origin}
    try:
        leaves, tags = leaf_lines(files[f"{base}/leaves.txt"], start)
    except KeyError:
        report.add(f"{label}: leaves", False, f"缺少 {base}/leaves.txt / {base}/leaves.txt is missing")
        return None
    except ValueError as err:
        report.add(f"{label}: leaves", False, f"{base}/leaves.txt {err}")
        return None
    if not report.add(
        f"{label}: leaves",
        len(leaves) == end - start,
        f"{len(leaves)} 个叶哈希，范围内共 {end - start} 条记录 / {len(leaves)} leaf hashes for {end - start} records",
    ):
        return None
    # 1. every checkpoint is the appliance's, cosigned by the witness, and the leaves hash to its root
    tree = CompactRange(start, [bytes.fromhex(h) for h in info["compact"]])
    checkpoints = [json.loads(line) for line in files[f"{base}/checkpoints.jsonl"].decode().splitlines() if line]
    cosigned_at: dict[int, int] = {}
    roots: dict[int, bytes] = {}
    anchors: dict[str, int] = {}
    problems: list[tuple[str, str]] = []
    position = start
    for entry in sorted(checkpoints, key=lambda c: c["size"]):
        try:
            checkpoint = _verify_checkpoint(entry["note"], keys, entry["size"])
            witness_name = note.parse(entry["note"])[1][-1].name
            cosigned_at[checkpoint.size] = note.verify_cosignature(entry["note"], witness, witness_name)
            roots[checkpoint.size] = checkpoint.root
            line = entry["note"].rpartition("\n\n")[2].splitlines()[-1] + "\n"
            anchors[b64(hashlib.sha256(line.encode()).digest())] = cosigned_at[checkpoint.size]
        except _CheckpointFault as err:
            problems.append(err.said)
            continue
        except (LedgerError, KeyError, TypeError, ValueError, IndexError):
            size = entry.get("size") if isinstance(entry, dict) else None
            problems.append(
                (
                    f"检查点 {size} 没有有效的公司服务器会签（会签行缺失、格式不符或不是会签公钥所签）",
                    f"checkpoint {size}: no valid cosignature by the witness key",
                )
            )
            continue
        while position < checkpoint.size and position < end:
            tree.append(leaves[position - start])
            position += 1
        if checkpoint.size > end or tree.root() != checkpoint.root:
            problems.append(
                (
                    f"检查点 {checkpoint.size}：记录重算的树根与之不符",
                    f"checkpoint {checkpoint.size}: the records do not hash to its root",
                )
            )
    uncovered = (
        ("", "")
        if end in cosigned_at
        else (f"；没有检查点覆盖范围末尾（第 {end} 条）", f"; none covers the end of the range ({end})")
    )
    report.add(
        f"{label}: checkpoints",
        not problems and end in cosigned_at,
        _said(problems)
        if problems
        else f"{len(cosigned_at)} 个检查点经设备签名、由公司服务器会签，叶哈希重算的树根与每个检查点一"
        f"致{uncovered[0]} / "
        f"{len(cosigned_at)} signed and cosigned; the leaves reproduce every root{uncovered[1]}",
    )
    # 2. disclosed records: exact bytes, signature, chain, inclusion, time bounds
    final_root = roots.get(end)
    problems = []
    sizes = sorted(cosigned_at)
    seals: list[int] = []
    boots: list[tuple[int, int, bool]] = []  # (time, seq, unclean) of each disclosed boot record
    rotations: dict[int, str] = {}
    tz = _plant_zone(manifest, info.get("plant"))
    previous: dict[str, Any] | None = None
    shown_seqs: dict[int, dict[str, Any]] = {}  # every disclosed record that verified, by seq
    since = report.untrusted.get(origin)  # a stolen Pi: from this seq on, the log's records are not evidence
    untrusted: list[tuple[int, int, str | None]] = []  # (seq, time, whose) of the disclosed records past it
    # The employee's records come one file each with an inclusion proof (what MANUAL-CHECKS.md checks by
    # hand); the appliance's own records (boots, seals...) in system.jsonl, proven by leaves.txt alone.
    disclosed: dict[int, tuple[bytes, bytes, dict[str, Any] | None]] = {
        int(n.rsplit("/", 1)[1].split(".")[0]): (
            files[n],
            files.get(n[:-5] + ".sig", b""),
            json.loads(files.get(n[:-5] + ".proof.json", b"{}")),
        )
        for n in files
        if n.startswith(f"{base}/records/") and n.endswith(".json") and not n.endswith(".proof.json")
    }
    for line in files.get(f"{base}/system.jsonl", b"").decode().splitlines():
        item = json.loads(line)
        disclosed.setdefault(item["seq"], (item["data"].encode(), base64.b64decode(item["sig"]), None))
    for seq, (data, sig, proof) in sorted(disclosed.items()):
        try:
            fields = parse(data)
        except LedgerError:
            problems.append((f"第 {seq} 条记录不符合记录格式（FORMAT.md）", f"seq {seq}: not a well-formed record"))
            continue
        leaf = record_leaf(data, fields)
        key = keys.get(fields["kid"])
        failures = []
        # the record that gave the employee's tag key, from before the range: proven by its inclusion proof alone
        early_key = "tagkey" in fields and proof is not None and 0 <= seq < start
        if fields["log"] != origin or fields["seq"] != seq or not (start <= seq < end or early_key):
            failures.append(("不是本日志该位置的记录", "is not this log's record at this position"))
        elif early_key:
            pass
        elif fields["v"] == 2 and tags.get(seq) != unb64(fields["tag"], what="tag"):
            failures.append(("归属标记与 leaves.txt 所列不符", "its owner tag differs from the one leaves.txt lists"))
        elif leaves[seq - start] != leaf:
            failures.append(("与日志该位置的叶哈希不符", "differs from the log's leaf at its position"))
        elif seq > start and fields["prev"] != b64(leaves[seq - 1 - start]):
            failures.append(("未链接到前一条记录", "does not link to the previous record"))
        signed = proof is None or (key is not None and _signed(key[0], sig, leaf))  # else: its leaf proves it
        if key is None or not signed or not _key_valid(key[1], seq, cosigned_at):
            failures.append(("签名不是该位置有效密钥所签", "is not signed by a key valid for its position"))
        if proof is not None and (
            final_root is None
            or proof.get("index") != seq
            or proof.get("size") != end
            or not verify_inclusion(leaf, seq, end, [bytes.fromhex(h) for h in proof.get("hashes", [])], final_root)
        ):
            failures.append(("包含证明不成立", "its inclusion proof does not verify"))
        if failures:
            problems.append(
                (
                    f"第 {seq} 条记录" + "、".join(zh for zh, _en in failures),
                    f"seq {seq} " + ", ".join(en for _zh, en in failures),
                )
            )
            continue
        shown_seqs[seq] = fields
        if early_key:
            continue  # an employee's tag key from before the range: proven, but no part of the range's story
        after_index = bisect.bisect_right(sizes, seq)
        witnessed = cosigned_at[sizes[after_index]] if after_index < len(sizes) else None
        after = anchors.get(fields.get("anchor", ""), 0)
        t = fields["t_wall_ms"] // 1000
        if witnessed is None:
            report.gap(
                Event(
                    "unwitnessed",
                    origin,
                    t,
                    seq=seq,
                    detail=f"{origin} seq {seq}: not witnessed by the cloud",
                    zh=f"{origin} 第 {seq} 条记录尚未经公司服务器会签",
                )
            )
        elif t > witnessed + CLOCK_TOLERANCE_S or t < after - CLOCK_TOLERANCE_S:
            problems.append(
                (
                    f"第 {seq} 条记录自身的时间 {_local(t, tz)} 超出公司服务器会签所界定的范围（"
                    f"{_local(after, tz) if after else '日志开始'} 至 {_local(witnessed, tz)}）：设备时钟当时有误",
                    f"seq {seq}: its time {_local(t, tz)} lies outside what the cloud witnessed "
                    f"({_local(after, tz) if after else 'the start'} .. {_local(witnessed, tz)}): "
                    "the appliance's clock was wrong",
                )
            )
        if previous is not None and "boot_id" in fields and previous.get("boot_id") == fields["boot_id"]:
            jump = (fields["t_wall_ms"] - previous["t_wall_ms"]) / 1000 - (
                fields["t_boot_us"] - previous["t_boot_us"]
            ) / 1e6
            if abs(jump) > CLOCK_TOLERANCE_S:
                report.gap(
                    Event(
                        "clock_jump",
                        origin,
                        t,
                        seq=seq,
                        amount=round(jump),
                        detail=f"{origin} seq {previous['seq']}..{seq}: the appliance's wall clock jumped "
                        f"{'forward' if jump > 0 else 'back'} by {abs(jump) / 60:.0f} min (set by hand, "
                        "or corrected by time sync)",
                        zh=f"{origin} 第 {previous['seq']} 至 {seq} 条：设备时钟{'向前' if jump > 0 else '向后'}跳变约 "
                        f"{abs(jump) / 60:.0f} 分钟（原因未载明：可能为人工调整或时间同步校正）",
                    )
                )
        previous = fields
        emp = employee_of(fields)  # punches and the cloud's records name ``emp``, day facts ``fact.emp``
        mine = emp is not None and emp == manifest.get("employee")
        if fields["type"] == "tagkey":
            mine = False  # a worker's tag key given at a log's switch: ``_check_owner_tags``, not a record of the days
        if since is not None and seq >= since:
            untrusted.append((seq, t, emp if mine else None))
            if mine:
                shown = fields if "emp" in fields else {**fields, "emp": emp}
                report.disclosed.append(
                    {"log": origin, "seq": seq, "emp": emp, "fields": shown, "not_after": witnessed, "untrusted": True}
                )
            continue  # neither the employee's record nor a sign that the appliance was recording
        if info.get("kind") == "cloud" and fields["type"] in KEY_TYPES:
            report.key_records.append({**fields, "t": t, "not_after": witnessed})
        if fields["type"] in ("seal", "boot", "punch"):
            day = datetime.fromtimestamp(t, tz).date().isoformat()
            report.covered_days.add(day)
            first, last = report.recorded.get(day, (t, t))
            report.recorded[day] = (min(first, t), max(last, t))
        if fields["type"] == "seal":
            seals.append(t)
        if fields["type"] == "boot":
            boots.append((t, seq, bool(fields.get("unclean"))))
        if fields["type"] == "keyrot":
            try:
                rotations[seq] = rotation_key(fields).kid
            except LedgerError:
                problems.append((f"第 {seq} 条记录（密钥轮换）无效", f"seq {seq}: the key rotation is invalid"))
        if fields["type"] == "boot" and fields.get("unclean"):
            report.gap(
                Event(
                    "unclean_boot",
                    origin,
                    t,
                    seq=seq,
                    detail=f"{origin} seq {seq}: restarted after an unclean shutdown (its boot record says the run "
                    "before it did not end cleanly)",
                    zh=f"{origin} 第 {seq} 条：设备在非正常关机后重新启动（启动记录载明上次运行未正常结束，如断电）",
                )
            )
        if fields["type"] == "incident":
            what = ": ".join(str(fields[k]) for k in ("kind", "reason") if fields.get(k))
            report.events.append(Event("incident", origin, t, seq=seq, detail=what))
        if mine:
            shown = fields if "emp" in fields else {**fields, "emp": emp}
            report.disclosed.append({"log": origin, "seq": seq, "emp": emp, "fields": shown, "not_after": witnessed})
    problems += _check_rotations(keys, rotations, start, end)
    report.add(
        f"{label}: disclosed records",
        not problems,
        _said(problems)
        if problems
        else "每条披露记录的原文、签名、哈希链接与包含证明均无误 / every disclosed record is exact, signed, chained "
        "and included",
    )
    entry = manifest["logs"][int(base.rsplit("/", 1)[1])]  # the signed manifest's count: not shown, not checkable
    hidden = entry.get("undisclosed_incidents", 0) if isinstance(entry, dict) else 0
    if isinstance(hidden, int) and hidden > 0:
        report.undisclosed_incidents[origin] = hidden
    _check_owner_tags(report, label, origin, start, end, tags, shown_seqs, manifest, info.get("kind") == "cloud")
    if since is not None and since < end:
        _report_untrusted(report, label, origin, since, untrusted, tz, manifest)
    tail = {"origin": origin, "label": label, "end": end, "cosigned": cosigned_at.get(end), "tz": tz}
    tail["sizes"] = sizes
    if info.get("kind") == "cloud":  # the cloud's evidence log: no seals, no power; its contacts checked instead
        _verify_contacts(files, base, label, disclosed, report)
        return {**tail, "kind": "cloud"}
    for a, b in zip(seals, seals[1:], strict=False):
        if b - a > SEAL_GAP_S:
            report.gap(_silence(origin, a, b, tz, boots))
    period_end = datetime.combine(date.fromisoformat(manifest["period"]["to"]) + timedelta(days=1), time(), tz)
    try:
        exported = int(datetime.fromisoformat(manifest["generated_at"]).timestamp())
    except (KeyError, TypeError, ValueError):
        exported = None
    return {**tail, "kind": "appliance", "period_end": int(period_end.timestamp()), "exported": exported}


def _silence(origin: str, a: int, b: int, tz: ZoneInfo, boots: list[tuple[int, int, bool]]) -> Event:
    """A gap between two seals: what was (not) recorded, and its cause only as far as a signed record states it, a
    boot record in between saying whether the run before it ended cleanly (FORMAT.md, ``boot``'s ``unclean``)."""
    span_zh = f"{origin}：{_local(a, tz)} 至 {_local(b, tz)} 设备无任何记录（{(b - a) // 60} 分钟）"
    span_en = f"{origin}: nothing recorded from {_local(a, tz)} to {_local(b, tz)} ({(b - a) // 60} min)"
    boot = next(((seq, unclean) for t, seq, unclean in boots if a < t <= b), None)
    if boot is None:
        zh, en = "原因未知（可能断电、设备停止或网络中断）", "cause not recorded"
    elif boot[1]:
        zh = f"第 {boot[0]} 条启动记录载明设备此前未正常关机（如断电）"
        en = f"the boot record at seq {boot[0]} says the appliance had not shut down cleanly (a power cut, or a crash)"
    else:
        zh = f"第 {boot[0]} 条启动记录载明设备此前正常关机"
        en = f"the boot record at seq {boot[0]} says the appliance had been shut down cleanly"
    return Event("power_gap", origin, a, end=b, detail=f"{span_en}: {en}", zh=f"{span_zh}：{zh}")


def _heads_basis(witnessed: WitnessResult | None, origin: str) -> tuple[str, str]:
    """What the witnessed sizes a log's length check names rest on (FORMAT.md, "Per-log heads"): (zh, en)."""
    if witnessed is None or not witnessed.committed:
        return (
            "；以上会签长度为导出方从会签日志中所选，未经会签日志检查点承诺（旧格式会签日志）",
            "; these witnessed sizes are the exporter's pick among the witness log's entries, not committed by its "
            "checkpoints (a witness log from before per-log heads)",
        )
    if witnessed.head_proven.get(origin):
        return (
            "；均由会签日志检查点所承诺的各日志最新条目证明",
            "; both proven by the per-log heads the witness checkpoints commit",
        )
    return (
        "；最新长度由会签日志检查点承诺；其后第一个检查点为旧格式条目，其间有无遗漏未经证明",
        "; the latest size is committed by the witness checkpoints; the entry past the range predates per-log heads, "
        "so nothing between is proven",
    )


def _check_tail(
    report: Report,
    tail: dict[str, Any],
    heads: dict[str, dict[str, dict[str, int]]] | None,
    witnessed: WitnessResult | None = None,
) -> None:
    """Whether a log's range ends where it may (FORMAT.md, "A log cut short"). ``heads`` is, per log, the latest
    checkpoint the witness log had recorded at export and the first one past the range (None: a bundle without them,
    format 3 and before, or a witness log that did not verify). A range that ends before the period does while the
    witness log recorded a later checkpoint of the log before the period's end was cut: the check fails. One that
    ends where the witness log's record ends is a log that stopped (the appliance off, or not synced since): a gap,
    said so. ``witnessed`` says whether the witness checkpoints commit per-log heads (heads/1): heads that contradict
    them fail; without them, the heads are the exporter's pick, and the check says so."""
    origin, label, end, cosigned = tail["origin"], tail["label"], tail["end"], tail["cosigned"]
    given = heads.get(origin, {}) if heads is not None else {}
    head, after = given.get("latest"), given.get("next")
    name = f"{label}: log length"
    if heads is not None:
        last_shown = max(tail["sizes"], default=0)
        if head is None or head["size"] < last_shown:
            report.add(
                name,
                False,
                f"本证据包未给出公司服务器（会签）所记录的该日志最新长度（或给出的早于本包的检查点 {last_shown}），"
                "无法排除日志被截断 / the bundle does not give the latest size the witness log recorded for this log "
                f"(or gives one older than its own checkpoint {last_shown}): a cut cannot be ruled out",
            )
            return
        if (
            tail["kind"] != "cloud"
            and head["size"] > end
            and (after is None or not end < after["size"] <= head["size"])
        ):
            report.add(
                name,
                False,
                f"公司服务器（会签）记录该日志 {head['size']} 条，本证据包止于第 {end - 1} 条，却未给出其后会签"
                f"的第一个检查点，"
                "无法排除日志被截断 / the witness log recorded more of this log than the bundle holds, and the bundle "
                "does not give the first checkpoint witnessed after its range: a cut cannot be ruled out",
            )
            return
    # the heads contradict what the witness checkpoints committed (heads/1): a failure, said with the cut if any
    fault = witnessed.head_faults.get(origin) if heads is not None and witnessed is not None else None
    zh_basis, en_basis = _heads_basis(witnessed, origin) if heads is not None else ("", "")
    if tail["kind"] == "cloud" or cosigned is None:
        if fault is not None:
            report.add(name, False, fault)
        elif head is not None:
            report.add(
                name,
                True,
                f"公司服务器（会签）至导出时记录该日志 {head['size']} 条{zh_basis} / witnessed size"
                f" {head['size']}{en_basis}",
            )
        return
    tz, until = tail["tz"], tail["period_end"]
    if after is not None and head is not None and head["size"] > end and cosigned < until and after["t"] < until:
        zh = CUT_ZH.format(last=end - 1, size=after["size"], at=_local(after["t"], tz))
        en = CUT_EN.format(last=end - 1, size=after["size"], at=_local(after["t"], tz))
        if fault is not None:
            fault_zh, _, fault_en = fault.partition(" / ")
            zh, en = f"{zh}；{fault_zh}", f"{en}; {fault_en}"
        report.add(name, False, f"{zh} / {en}")
        return
    if fault is not None:
        report.add(name, False, fault)
        return
    if head is not None:
        beyond = (
            f"；其后会签的第一个检查点（{after['size']} 条）于 {_local(after['t'], tz)} 才会签，已在期间结束之后"
            if after is not None and head["size"] > end
            else "（与之相同）"
        )
        report.add(
            name,
            True,
            f"公司服务器（会签）至导出时记录该日志 {head['size']} 条；本证据包的范围止于第 {end - 1} "
            f"条{beyond}{zh_basis} / "
            f"the witness log had recorded {head['size']} records of it at export; the range ends at {end - 1}"
            f"{en_basis}",
        )
    if cosigned < until:
        stopped = head is not None and head["size"] == end
        exported = tail.get("exported")
        early = exported is not None and exported < until  # made before the period was over
        detail = (
            f"{origin}: its records end at {_local(cosigned, tz)} (witnessed), before the period ends "
            f"at {_local(until, tz)}: later events are not in this bundle"
            + (f"; it was exported at {_local(exported, tz)}, before the period ended" if early else "")
            + (
                f"; the witness log had recorded no more of this log by the export ({end} records): the appliance "
                "stopped recording, or has not synced since"
                if stopped
                else ""
            )
        )
        zh = (
            f"{origin}：设备日志在 {_local(cosigned, tz)}（已会签）结束，早于期间结束 {_local(until, tz)}"
            + (f"；本证据包导出于 {_local(exported, tz)}，其时期间尚未结束" if early else "")
            + (
                f"；公司服务器（会签）至导出时所记录的该日志长度也止于此（{end} 条）：设备停止记录，或此后未再同步"
                if stopped
                else "：之后的记录不在本证据包内"
            )
        )
        report.gap(
            Event(
                "log_ends",
                origin,
                cosigned,
                end=until,
                detail=detail,
                zh=zh,
                witnessed_size=end if stopped else None,
                exported=exported if early else None,
            )
        )


def _punch_stamps(
    report: Report, manifest: dict[str, Any], covered: dict[tuple[str, int], datetime | None], limit: timedelta
) -> None:
    """For every disclosed punch of the employee, the earliest verified TSA time that covers it: over each of the
    log's checkpoints in the bundle that includes it (size > its seq; the leaves reproduce every root, so each
    includes it), the earliest stamp over a witness checkpoint that holds that checkpoint's entry (``covered``).
    A punch with none is said in the untimed message; one whose earliest stamp came more than ``limit`` after its
    own time (``t_wall_ms``) is flagged ``late``: the employer could have made it in between."""
    unstamped_zh, unstamped_en = [], []
    for item in report.disclosed:
        fields = item["fields"]
        if fields.get("type") != "punch":
            continue
        origin, seq = item["log"], item["seq"]
        times = [t for (log, size), t in covered.items() if log == origin and size > seq and t is not None]
        t = fields["t_wall_ms"] // 1000
        stamped = int(min(times).timestamp()) if times else None
        delay = stamped - t if stamped is not None else None
        late = delay is not None and delay > limit.total_seconds()
        item["stamped"] = stamped
        report.punch_stamps.append(
            {"log": origin, "seq": seq, "t": t, "stamped": stamped, "delay": delay, "late": late}
        )
        if stamped is None:
            unstamped_zh.append(UNSTAMPED_ZH.format(seq=seq))
            unstamped_en.append(UNSTAMPED_EN.format(seq=seq))
        elif late:
            tz = _plant_zone(manifest, next((p["id"] for p in manifest.get("plants", [])), None))
            report.late.append(
                (
                    LATE_ZH.format(
                        seq=seq,
                        limit=limit_zh(int(limit.total_seconds())),
                        t=_local(t, tz),
                        stamped=_local(stamped, tz),
                        delay=_span_zh(delay),
                    ),
                    LATE_EN.format(
                        seq=seq,
                        limit_en=f"{limit.total_seconds() / 3600:g} hours",
                        t=_local(t, tz),
                        stamped=_local(stamped, tz),
                        delay_en=_span_en(delay),
                    ),
                )
            )
    if unstamped_zh and report.untimed is not None:
        zh, en = report.untimed
        report.untimed = (zh + "（" + "；".join(unstamped_zh) + "）", en + " (" + "; ".join(unstamped_en) + ")")


def span_zh(seconds: int) -> str:
    """A delay as people say it: 3 天 2 小时, 5 小时 10 分, 12 分."""
    return _span_zh(seconds)


def limit_zh(seconds: int) -> str:
    """The policy's limit as it was given: whole hours as hours (24 小时), else as a delay."""
    return f"{seconds // 3600} 小时" if seconds % 3600 == 0 else _span_zh(seconds)


def _span_zh(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} 天" + (f" {hours} 小时" if hours else "")
    if hours:
        return f"{hours} 小时" + (f" {minutes} 分" if minutes else "")
    return f"{minutes} 分" if minutes else f"{max(seconds, 0)} 秒"


def _span_en(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min"


CLOUD_TYPES = ("contact", "receipt", "case_action")


def _verify_contacts(
    files: dict[str, bytes],
    base: str,
    label: str,
    disclosed: dict[int, tuple[bytes, bytes, dict[str, Any] | None]],
    report: Report,
) -> None:
    """What the cloud's records name by hash is the bytes in the bundle: each notice PDF attached to a contact
    (``cloud/notices/<sha256>.pdf``), each request as it went on the wire (``requests/<seq>``), each document
    a person's action names (counted when held; a case's bundle must hold them); and each receipt follows the
    contact it reports on (an earlier record of this log, same provider message id)."""
    records = {}
    for seq, (data, _sig, _proof) in disclosed.items():
        try:
            records[seq] = parse(data)
        except LedgerError:
            continue  # reported by the disclosed-records check
    problems: list[tuple[str, str]] = []
    counts = dict.fromkeys(CLOUD_TYPES, 0)
    matched = 0
    held = {hashlib.sha256(data).hexdigest() for name, data in files.items() if name.startswith(DOCUMENT_DIRS)}
    for seq, fields in sorted(records.items()):
        kind = fields["type"]
        if kind in KEY_TYPES or kind in OWNER_TYPES:
            continue  # the appliance keys' registrations and revocations (``_check_key_records``), owner tags
        if kind not in CLOUD_TYPES:
            problems.append(
                (
                    f"第 {seq} 条 {kind} 记录不应出现在云端证据日志中",
                    f"seq {seq}: a {kind} record has no place in the cloud's evidence log",
                )
            )
            continue
        counts[kind] += 1
        if kind == "contact":
            for item in fields["attachments"]:
                pdf = files.get(f"cloud/notices/{item.get('sha256')}.pdf")
                if pdf is not None:
                    if hashlib.sha256(pdf).hexdigest() != item.get("sha256"):
                        problems.append(
                            (
                                f"第 {seq} 条记录所附 {item.get('name')} 与发出的文件不符",
                                f"seq {seq}: the attached {item.get('name')} is not the one sent",
                            )
                        )
                    else:
                        matched += 1
            sent = files.get(f"{base}/requests/{seq}")
            if sent is not None:
                if hashlib.sha256(sent).hexdigest() != fields.get("request_sha256"):
                    problems.append(
                        (
                            f"第 {seq} 条记录：requests/{seq} 与记录所载发出的内容不符",
                            f"seq {seq}: requests/{seq} is not what the record says went on the wire",
                        )
                    )
                else:
                    matched += 1
        elif kind == "case_action":
            matched += len(named_documents(fields) & held)  # a case's bundle must hold them: ``_verify_case``
        elif kind == "receipt" and fields["contact_seq"] >= 0:
            contact = records.get(fields["contact_seq"])
            if (
                fields["contact_seq"] >= seq
                or contact is None
                or contact["type"] != "contact"
                or contact["provider_id"] != fields["provider_id"]
            ):
                problems.append(
                    (
                        f"第 {seq} 条回执没有对应的、在其之前且消息编号相同的已披露联络记录",
                        f"seq {seq}: the receipt does not follow a disclosed contact with its message id",
                    )
                )
    detail = (
        f"联络 {counts['contact']} 次、回执 {counts['receipt']} 份、人事操作 {counts['case_action']} 项"
        f"；{matched} 个所发"
        f"文件与记录中的哈希一致 / {counts['contact']} contact attempts, {counts['receipt']} receipts, "
        f"{counts['case_action']} actions by people; {matched} sent files match their hashes"
    )
    report.add(f"{label}: contacts", not problems, _said(problems) if problems else detail)


def _compromised(files: dict[str, bytes], manifest: dict[str, Any], registry: list[dict[str, Any]]) -> dict[str, int]:
    """Per appliance log, the first seq that is no longer evidence: the earliest compromise point that the cloud's
    signed ``keyrevoke`` records (in the bundle's copy of the evidence log) or ``keys/registry.json`` give. Read
    before the logs are checked, so that their records are judged by it; the evidence log's own check fails if a
    revocation in it is not the cloud's, and the registry can only make more records untrusted, never fewer."""
    points: dict[str, int] = {}

    def earliest(log: Any, seq: Any) -> None:
        if isinstance(log, str) and type(seq) is int:
            points[log] = min(seq, points.get(log, seq))

    for entry in registry:
        earliest(entry.get("log"), entry.get("compromised_since_seq"))
    for index in range(len(manifest.get("logs", []))):
        if json.loads(files.get(f"logs/{index}/log.json", b"{}")).get("kind") != "cloud":
            continue
        for line in files.get(f"logs/{index}/system.jsonl", b"").decode().splitlines():
            try:
                fields = parse(json.loads(line)["data"].encode())
            except (LedgerError, ValueError, KeyError, TypeError):
                continue  # reported by the evidence log's own check
            if fields["type"] == "keyrevoke":
                earliest(fields["key_log"], fields["since_seq"])
    return points


def _report_untrusted(
    report: Report,
    label: str,
    origin: str,
    since: int,
    untrusted: list[tuple[int, int, str | None]],
    tz: ZoneInfo,
    manifest: dict[str, Any],
) -> None:
    """The records of a log past its compromise point: a gap in what the appliance is known to have recorded, and
    a failure when the employee's own records are among them (the bundle's claim would rest on them)."""
    zh, en = UNTRUSTED_ZH.format(since=since), UNTRUSTED_EN.format(since=since)
    theirs = [seq for seq, _t, whose in untrusted if whose is not None]
    if untrusted:
        first, last = untrusted[0][1], untrusted[-1][1]
        period_end = datetime.combine(date.fromisoformat(manifest["period"]["to"]) + timedelta(days=1), time(), tz)
        report.gap(
            Event(
                "untrusted",
                origin,
                first,
                end=max(last, int(period_end.timestamp())),
                seq=since,
                detail=f"{origin}: {en}; {len(untrusted)} disclosed record(s) from {_local(first, tz)} on",
                zh=f"{origin}：{zh}；自 {_local(first, tz)} 起本证据包中有 {len(untrusted)} 条披露记录",
            )
        )
    if theirs:
        detail = (
            f"{zh}：本人的记录第 {', '.join(map(str, theirs))} 条在其中，本证据包不能以其为据 / {en}: the employee's "
            f"records at seq {', '.join(map(str, theirs))} are among them, and this bundle cannot rest on them"
        )
    else:
        detail = (
            f"{zh}（本证据包中 {len(untrusted)} 条披露记录，均非本人记录，不计为设备在记录） / {en} ({len(untrusted)} "
            "disclosed here, none of them the employee's; they do not count as the appliance recording)"
        )
    report.add(f"{label}: compromised key", not theirs, detail)


def _check_key_records(files: dict[str, bytes], registry: list[dict[str, Any]], report: Report) -> None:
    """Each key registration the cloud signed names the very key the bundle lists under that id (the fingerprint a
    reader pins is the one head office registered, on the date it says); keys without one are named."""
    if not report.key_records:
        return
    listed = {(r["log"], r["kid"]): r for r in registry}
    problems = []
    registered = set()
    for record in report.key_records:
        if record["type"] != "keyreg":
            continue
        entry = listed.get((record["key_log"], record["key_kid"]))
        registered.add((record["key_log"], record["key_kid"]))
        if entry is None:
            continue  # a key of another period: not used in this bundle
        try:
            same = VerifyKey.from_pem(files[f"keys/{entry['file']}"]).raw() == base64.b64decode(record["public_key"])
        except (KeyError, LedgerError, ValueError):
            same = False
        if not same or VerifyKey.from_raw(base64.b64decode(record["public_key"])).kid != record["key_kid"]:
            problems.append(
                (
                    f"证据日志第 {record['seq']} 条以指纹 {record['key_kid']} 登记的是另一把密钥",
                    f"evidence log seq {record['seq']}: registers another key under {record['key_kid']}",
                )
            )
    logs = {r["key_log"] for r in report.key_records}
    missing = sorted(kid for (log, kid) in listed if log in logs and (log, kid) not in registered)
    count = sum(1 for r in report.key_records if r["type"] == "keyreg")
    unregistered = (
        (f"；以下公钥没有登记记录：{', '.join(missing)}", f"; no registration record for {', '.join(missing)}")
        if missing
        else ("", "")
    )
    detail = (
        _said(problems)
        if problems
        else f"云端签名证据日志中 {count} 条设备公钥登记记录与所列公钥一致{unregistered[0]} / {count} key "
        f"registration(s) in the cloud's signed evidence log match the keys listed{unregistered[1]}"
    )
    report.add("key registrations", not problems, detail)


def _check_pins(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    registry: list[dict[str, Any]],
    pins: set[str],
    cloud: bool,
    name: str,
    report: Report,
) -> None:
    """Every key that may sign a record or checkpoint of the bundle's range of each log (rotations included) is one
    the reader pinned: for the appliances' logs, or (``cloud``) for the cloud's evidence log."""
    problems, used = [], []
    for index in range(len(manifest.get("logs", []))):
        info = json.loads(files.get(f"logs/{index}/log.json", b"{}"))
        if (info.get("kind") == "cloud") != cloud:
            continue
        start, end = info["from_seq"], info["to_size"]
        for entry in registry:
            last = entry.get("valid_to_seq")
            if (
                entry["log"] != info["log"]
                or entry.get("valid_from_seq", 0) >= end
                or (last is not None and last < start)
            ):
                continue
            used.append(entry["kid"])
            if entry["kid"] not in pins:
                problems.append(
                    (
                        f"{info['log']} 的密钥 {entry['kid']} 不是核验时指定的公钥",
                        f"key {entry['kid']} of {info['log']} is not among the pinned keys",
                    )
                )
    if not used:
        detail = (
            "证据包中没有此类日志的密钥可与指定的公钥核对 / the bundle has no key of such a log to hold the pins to"
        )
    else:
        detail = (
            _said(problems)
            if problems
            else f"{len(used)} 把密钥，均为核验时指定的公钥 / {len(used)} key(s), each one pinned"
        )
    report.add(name, bool(used) and not problems, detail)


def _plant_zone(manifest: dict[str, Any], plant: str | None) -> ZoneInfo:
    zone = next((p["timezone"] for p in manifest.get("plants", []) if p["id"] == plant), "Asia/Shanghai")
    return ZoneInfo(zone)


def _local(seconds: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(seconds, tz).strftime("%Y-%m-%d %H:%M")


def _verify_checkpoint(text: str, keys: dict[str, tuple[VerifyKey, dict[str, Any]]], size: int) -> note.Checkpoint:
    """The checkpoint is signed by the key that signed its last record (a rotation's by the old key)."""
    for key, info in keys.values():
        if not _in_range(info, size - 1):
            continue
        try:
            checkpoint = note.verify(text, key)
        except LedgerError:
            continue
        if checkpoint.size != size:
            raise _CheckpointFault(
                f"检查点 {size}：所列长度为 {size}，签名所载长度却为 {checkpoint.size}",
                f"checkpoint {size}: listed as size {size}, signed as {checkpoint.size}",
            )
        return checkpoint
    raise _CheckpointFault(
        f"检查点 {size} 不是本日志任何有效密钥所签", f"checkpoint {size}: not signed by any of this log's keys"
    )


class _CheckpointFault(LedgerError):
    """A log's checkpoint that does not verify, said in words: ``said`` is (zh, en)."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.said = (zh, en)


def _signed(key: VerifyKey, sig: bytes, leaf: bytes) -> bool:
    try:
        key.verify(sig, RECORD_DOMAIN + leaf)
    except LedgerError:
        return False
    return True


def _key_valid(info: dict[str, Any], seq: int, cosigned_at: dict[int, int]) -> bool:
    """A key counts from its first seq to its rotation; a revoked key only for records witnessed before the
    revocation."""
    if not _in_range(info, seq):
        return False
    revoked = info.get("revoked_at")
    if revoked is None:
        return True
    witnessed = min((t for s, t in cosigned_at.items() if s > seq), default=None)
    return witnessed is not None and witnessed < revoked


def _in_range(info: dict[str, Any], seq: int) -> bool:
    last = info.get("valid_to_seq")
    return info.get("valid_from_seq", 0) <= seq and (last is None or seq <= last)


def _check_rotations(
    keys: dict[str, tuple[VerifyKey, dict[str, Any]]], rotations: dict[int, str], start: int, end: int
) -> list[tuple[str, str]]:
    """Every key the registry lists as taking over inside the range must be handed over by a disclosed,
    valid keyrot record: the registry is not taken on trust."""
    problems = []
    for kid, (_key, info) in keys.items():
        seq = info.get("valid_from_seq", 0) - 1
        if seq >= 0 and start <= seq < end and rotations.get(seq) != kid:
            problems.append(
                (
                    f"密钥 {kid} 登记为自第 {seq + 1} 条起有效，但第 {seq} 条没有交接给它的有效密钥轮换记录",
                    f"key {kid} is listed from seq {seq + 1}, but no valid rotation record at {seq} names it",
                )
            )
    return problems


WITHHELD_ZH = "第 {seq} 条记录属于该员工但未披露"
WITHHELD_EN = "record {seq} is the employee's but is not disclosed"


def leaf_lines(text: bytes, start: int) -> tuple[list[bytes], dict[int, bytes]]:
    """``leaves.txt``: per record of the range one line, either its leaf hash (a version 1 record) or its owner
    tag and the SHA-256 of its bytes (version 2), hex, separated by one space; the leaf is rebuilt from them,
    so the checkpoints' roots bind every tag. Returns the leaves and, per seq, the tags shown."""
    leaves: list[bytes] = []
    tags: dict[int, bytes] = {}
    for offset, line in enumerate(text.decode("ascii", errors="replace").splitlines()):
        parts = line.split()
        if len(parts) == 1 and _HEX64.fullmatch(parts[0].lower()):
            leaves.append(bytes.fromhex(parts[0]))
        elif len(parts) == 2 and all(_HEX64.fullmatch(part.lower()) for part in parts):
            tag, digest = bytes.fromhex(parts[0]), bytes.fromhex(parts[1])
            tags[start + offset] = tag
            leaves.append(tagged_leaf(tag, digest))
        else:
            raise ValueError(
                f"第 {offset + 1} 行既不是叶哈希，也不是归属标记加记录哈希（均为 64 位十六进制） / line {offset + 1} "
                "is neither a leaf hash nor a tag and a record hash (64 hex digits each)"
            )
    return leaves, tags


def _check_owner_tags(
    report: Report,
    label: str,
    origin: str,
    start: int,
    end: int,
    tags: dict[int, bytes],
    shown: dict[int, dict[str, Any]],
    manifest: dict[str, Any],
    cloud: bool,
) -> None:
    """No record of the range that is the employee's is withheld (FORMAT.md, "Version 2: owner tags"). Each seq's
    owner tag comes from ``leaves.txt`` (a version 2 record) or from a disclosed ``tagindex`` record (a version 1
    record from before the log's switch, tagged late); with the employee's tag key (the ``tagkey`` of a disclosed
    record of theirs: first record in the log, or a ``tagkey`` record of its switch) every seq whose tag is the
    employee's must be disclosed as their record, and every record disclosed as theirs must carry their tag. A
    range without any tag (a log from before version 2) cannot show this: the check says so, and the report does
    not rest an absence on it."""
    employee = manifest.get("employee")
    plants = {p.get("id") for p in manifest.get("plants", [])}
    late: dict[int, bytes] = {}  # tags a tagindex record gave a version 1 record
    late_at: list[tuple[int, int, int]] = []  # (from, to, written at ms) of each tagindex record
    for _seq, fields in sorted(shown.items()):
        if fields["type"] == "tagindex":
            raw = unb64(fields["tags"], what="tags")
            for offset, seq_tagged in enumerate(range(fields["from"], fields["to"])):
                late.setdefault(seq_tagged, raw[offset * TAG_SIZE : (offset + 1) * TAG_SIZE])
            late_at.append((fields["from"], fields["to"], fields["t_wall_ms"]))
    tagged = bool(tags) or any(f["v"] == 2 for f in shown.values()) or bool(late)
    name = f"{label}: owner tags"
    hidden = report.undisclosed_incidents.get(origin, 0)
    untold = (  # the incidents of others (or of no known worker) left as leaves: counted, never shown
        [
            f"本期间另有 {hidden} 条终端异常记录涉及其他员工或无法确定归属，未披露 / {hidden} more incident(s) of "
            "the range concern other workers or no known worker: not disclosed, counted only"
        ]
        if hidden
        else []
    )
    if not tagged:
        report.tag_checks[origin] = {"checked": False}
        report.add(
            name,
            True,
            _joined(
                [
                    "本日志为版本 1（无归属标记）：无法证明没有隐瞒该员工的记录 / a version 1 log has no owner tags: "
                    "that none of the employee's records was withheld cannot be shown",
                    *untold,
                ]
            ),
        )
        return
    keys = [
        unb64(f["tagkey"], what="tagkey", size=TAG_SIZE)
        for f in shown.values()
        if "tagkey" in f and employee_of(f) == employee and (not cloud or f.get("plant") in plants)
    ]
    untagged = [seq for seq in range(start, end) if seq not in tags and seq not in late]
    problems: list[str] = []
    if untagged:
        problems.append(f"第 {_seqs(untagged)} 条记录没有归属标记 / record(s) {_seqs(untagged)} carry no owner tag")
    if not keys:
        problems.append(
            f"未披露该员工在此日志中的归属密钥（tagkey），无法确认没有隐瞒其记录 / the record giving the employee's "
            f"tag key (tagkey) in {origin} is not disclosed: withheld records cannot be ruled out"
        )
    withheld, mistagged = [], []
    for seq in range(start, end):
        theirs = {tags.get(seq), late.get(seq)} & {owner_tag(k, origin, seq) for k in keys}
        fields = shown.get(seq)
        disclosed_as_theirs = fields is not None and employee_of(fields) == employee
        if theirs and not disclosed_as_theirs:
            withheld.append(seq)
        elif disclosed_as_theirs and keys and not theirs:
            mistagged.append(seq)
    if withheld:
        problems.append(
            "；".join(WITHHELD_ZH.format(seq=seq) for seq in withheld[:20])
            + f" / {WITHHELD_EN.format(seq=_seqs(withheld))}"
        )
    if mistagged:
        problems.append(
            f"第 {_seqs(mistagged)} 条记录是该员工的，但其归属标记不是该员工的 / record(s) {_seqs(mistagged)} are the "
            "employee's but do not carry their tag"
        )
    first_tagged = min(tags, default=end)
    report.tag_checks[origin] = {
        "checked": not problems,
        "late": [
            {"from": a, "to": b, "at_ms": at} for a, b, at in late_at if a < end and b > start
        ],  # tags recorded at the log's switch, for records made before it
        "late_before": first_tagged if late else None,
    }
    report.add(
        name,
        not problems,
        _joined(problems)
        or _joined(
            [
                f"已用该员工的归属密钥逐条核对第 {start} 至 {end - 1} 条记录：未披露的记录无一属于该员工 / every "
                f"record "
                "of the range checked against the employee's tag key: none of the undisclosed is theirs",
                *untold,
            ]
        ),
    )


def _seqs(seqs: list[int]) -> str:
    shown = ", ".join(map(str, seqs[:20]))
    return shown + (f" … ({len(seqs)})" if len(seqs) > 20 else "")
