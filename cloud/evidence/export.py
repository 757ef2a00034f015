"""Export the evidence bundle for one employee and period (layout: ``ledger.evidence``).

Everything the employee's case rests on goes in, byte for byte as signed: the employee's own
records with inclusion proofs (the terminals' incidents that name the employee among them), every
appliance record of the period as a salted leaf hash only (other workers' data is never disclosed),
the appliance's system records that hold no worker's data (boots, seals, clock alarms...) in full,
every checkpoint with the cloud's timestamped cosignature, the keys, a Chinese report, and the
commands that check it all with OpenSSL alone. A terminal's incident that is another worker's, or
holds a terminal's bytes whose worker is unknown, is a leaf like any other record: the manifest
counts them (``undisclosed_incidents``).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud import witness as witness_key
from cloud.clock import Clock, to_ms
from cloud.config import CloudSettings
from cloud.escalation.actions import injury_claim
from cloud.escalation.models import AbsenceCase
from cloud.evidence.bundle_log import case_claim, export_cloud_log
from cloud.evidence.bundle_witness import export_witness
from cloud.evidence.log import EvidenceKeyMissing, EvidenceLog, load_key
from cloud.evidence.manual_checks import manual_check_files
from cloud.evidence.report_html import report_html
from cloud.evidence.report_model import build_model
from cloud.evidence.report_pdf import report_pdf
from cloud.evidence.revocation import untrusted_from
from cloud.evidence.tsa import TimestampError
from cloud.evidence.witness_log import WitnessLog, witness_log
from cloud.report_font import ReportFontMissing, find_font
from cloud.store import Appliance, ApplianceKey, CloudCheckpoint, LogHead, LogRecord, Plant, Punch
from ledger import SigningKey, VerifyKey
from ledger.evidence import (
    FORMAT,
    MANIFEST,
    MANIFEST_SIG,
    MANIFEST_TSR,
    SUMS,
    SYSTEM_TYPES,
    UNLISTED,
    Report,
    check_report_times,
    public_record,
    sha256sums,
    verify_bundle,
)
from ledger.merkle import CompactRange, inclusion_proofs
from ledger.ownertags import undisclosed_line
from ledger.record import b64

Progress = Callable[[str], None]


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class CaseScope:
    """What a case's bundle covers: the case's worker at its plant, from the case's first day."""

    ref: str  # case-<id>, as the evidence log names cases
    employee: str
    plant: str
    first_day: date
    timezone: str

    def today(self, clock: Clock) -> date:
        return clock.now().astimezone(ZoneInfo(self.timezone)).date()


def case_scope(case_id: int) -> CaseScope:
    case = AbsenceCase.get_or_none(AbsenceCase.id == case_id)
    if case is None:
        raise ExportError(f"没有案件 {case_id} / there is no case {case_id}")
    return CaseScope(
        f"case-{case.id}", case.user_id, case.plant_id, date.fromisoformat(case.first_day), case.plant.timezone
    )


def injury_purpose(case_id: int) -> tuple[CaseScope, date, dict[str, object]]:
    """The bundle a work-injury claim on the case needs (issue #19.11): the worker's plant on the accident's
    date, the whole day. It shows what the appliance recorded that day: the worker's punches and day facts (or
    that there were none) and, as leaf hashes proven under the cloud's cosigned checkpoints, every other record
    of the plant's log that day, so that the appliance is seen to have been recording, with or without him.
    Returns the case's scope, the date and what the manifest says about it (``purpose``)."""
    scope = case_scope(case_id)
    claim = injury_claim(case_id)
    if claim is None:
        raise ExportError(
            f"案件 {case_id} 没有登记工伤申请：请先在案件的“登记工伤申请”页登记 / case {case_id} has no work-injury "
            "claim: register it first"
        )
    day = date.fromisoformat(claim.accident_day)
    purpose: dict[str, object] = {
        "kind": "injury_claim",
        "case": scope.ref,
        "accident_date": claim.accident_day,
        "claimant": claim.claimant,
        "claimed_at": datetime.fromtimestamp(claim.at_ms / 1000, UTC).isoformat(timespec="seconds"),
        "zh": f"本证据包为案件 {scope.ref.removeprefix('case-')} 的工伤认定申请制作：事故日 {claim.accident_day}，"
        f"{scope.plant} 厂区考勤设备"
        f"当日的全部日志（工号 {scope.employee} 的记录全文，其他记录仅以哈希证明其存在）",
        "en": f"This bundle was made for the work-injury claim of case {scope.ref}: the accident date "
        f"{claim.accident_day}, the whole day's log of plant {scope.plant}'s appliances (badge {scope.employee}'s "
        "records in full, the others as hashes)",
    }
    return scope, day, purpose


# who exported a bundle, as the manifest names them: a login, or {"name": ..., "login": ...}
ExportedBy = str | dict[str, str] | None


def export_configured(
    settings: CloudSettings,
    employee: str,
    first_day: date,
    last_day: date,
    *,
    clock: Clock,
    plant_id: str | None = None,
    case: CaseScope | None = None,
    purpose: dict[str, object] | None = None,
    progress: Progress = lambda _m: None,
    exported_by: ExportedBy = None,
) -> bytes:
    """The bundle as this cloud is configured: what ``punchproof cloud export-evidence`` and the dashboard's
    export (``cloud.workers.export_job``, behind the 证据导出 page and the case page's 导出本案证据包) both run, so that
    they make the same bundle: the witness log, the TSA's stamp, and the cloud's evidence log of contacts,
    receipts and people's actions. With ``case``, a case's bundle (its manifest lists what the case must carry);
    it needs the evidence key. The caller holds the database connection."""
    try:
        signing = witness_key.load(settings)
    except witness_key.WitnessKeyMissing as err:
        raise ExportError(str(err)) from err
    try:
        evidence = load_key(settings)
    except EvidenceKeyMissing as err:
        if case is not None:
            raise ExportError(f"{err}; 本案证据包需要云端证据日志 / a case's bundle needs the evidence log") from err
        progress(f"{err}: the bundle has no contacts to show")  # no escalation has run here
        evidence = None
    if case is not None and (employee, plant_id) != (case.employee, case.plant):
        raise ExportError(f"{case.ref} is worker {case.employee} at plant {case.plant}, not {employee} at {plant_id}")
    return export_bundle(
        employee,
        first_day,
        last_day,
        witness=signing.verify_key,
        clock=clock,
        plant_id=plant_id,
        report_font=settings.report_font,
        progress=progress,
        witness_log=witness_log(settings, signing),
        tsa_ca=_tsa_roots(settings),
        evidence_log=EvidenceLog(evidence, signing, clock) if evidence else None,
        evidence_key=evidence.verify_key if evidence else None,
        case_ref=case.ref if case else None,
        purpose=purpose,
        exported_by=exported_by,
    )


def _tsa_roots(settings: CloudSettings) -> bytes | None:
    """The root certificates of every configured TSA, one PEM file (``witness/tsa-ca.pem``): a stamp verifies
    under the root of the TSA that made it. An unreadable file: ``witness_log`` has said so already."""
    roots = []
    for authority in settings.tsas:
        pem = Path(authority.ca_file).read_bytes()
        if pem not in roots:
            roots.append(pem)
    return b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in roots) or None


def export_bundle(
    employee: str,
    first_day: date,
    last_day: date,
    *,
    witness: VerifyKey,
    clock: Clock,
    plant_id: str | None = None,
    report_font: str = "",
    progress: Progress = lambda _m: None,
    witness_log: WitnessLog | None = None,
    tsa_ca: Path | bytes | None = None,
    evidence_log: EvidenceLog | None = None,
    evidence_key: VerifyKey | None = None,
    case_ref: str | None = None,
    purpose: dict[str, object] | None = None,
    manifest_key: SigningKey | None = None,
    exported_by: ExportedBy = None,
) -> bytes:
    """The bundle (ZIP bytes). With ``witness_log``, the cloud's log of cosigned checkpoints is sealed first
    and, when a TSA is configured, stamped for this export; its proofs go into ``witness/``. With
    ``evidence_log`` (and its ``evidence_key``), the cloud's own log of the employee's contacts, receipts and
    the actions people took on the employee's cases goes in as one more log (``cloud.evidence.bundle_log``).
    With ``case_ref`` (``case-<id>``) it is that case's bundle: the manifest's ``case`` lists every record of
    the case in the evidence log, every notice sent or produced and every document its people's actions name
    (``cloud/documents/``), and ``punchproof verify`` fails a bundle without them. ``purpose`` says in the
    manifest what the bundle was made for (``injury_purpose``: a work-injury claim and its accident date); the
    report and MANUAL-CHECKS.md say it first (a bundle without one: the case's, or the employee's for the
    period). The manifest lists every file's hash and is signed (``manifest.sig``): with the evidence key when the
    bundle carries the evidence log, else with the witness key (``witness_log``'s, or ``manifest_key``). Callers
    with a configuration use ``export_configured``. ``exported_by`` names who exported it in the manifest (the
    report's 导出人): the logged-in user of head office's pages, the OS user or ``--by`` of the CLI."""
    if last_day < first_day:
        raise ExportError("the period ends before it starts")
    if evidence_log is None and witness_log is None and manifest_key is None:
        raise ExportError(
            "证据包的清单须签名：缺少公司服务器的会签密钥 / the bundle's manifest is signed: no witness key was given"
        )
    if case_ref is not None and evidence_key is None:
        raise ExportError("本案证据包需要云端证据日志 / a case's bundle needs the cloud's evidence log")
    try:
        font = find_font(report_font)
    except ReportFontMissing as err:
        raise ExportError(str(err)) from err
    plants = [Plant.get_by_id(plant_id)] if plant_id else _plants_of(employee)
    if not plants:
        raise ExportError(f"no punch of employee {employee} was ever received; name the plant with --plant")
    files: dict[str, bytes] = {}
    logs, registry = [], []
    witnessed: dict[str, object] = {}
    if evidence_log is not None:
        progress("bringing the cloud's evidence log up to date")
        evidence_log.catch_up(workers=[(employee, p.id) for p in plants])  # the worker's tag key, made if none
    if witness_log is not None:
        progress("sealing the cloud's witness log")
        witness_log.seal()
        try:
            witnessed["export_stamp"] = "ok" if witness_log.stamp_latest("export") else "no TSA configured"
            for failure in witness_log.failures:  # another TSA stamped; this one is named in the log
                progress(f"one timestamp authority did not stamp this export: {failure}")
        except TimestampError as err:
            witnessed["export_stamp"] = f"failed: {err}"
            progress(f"the timestamp authority did not stamp this export: {err}")
    checkpoint_ids: list[int] = []
    appliances = [a for p in plants for a in Appliance.select().where(Appliance.plant == p).order_by(Appliance.name)]
    for appliance in appliances:
        tz = ZoneInfo(appliance.plant.timezone)
        start_ms = to_ms(datetime.combine(first_day, time(), tz))
        end_ms = to_ms(datetime.combine(last_day + timedelta(days=1), time(), tz))
        progress(f"{appliance.plant.id}/{appliance.name}: reading the log")
        entry = _export_log(files, f"logs/{len(logs)}", appliance, employee, start_ms, end_ms, checkpoint_ids)
        if entry is not None:
            logs.append(entry)
        for key in ApplianceKey.select().where(ApplianceKey.appliance == appliance):
            name = f"{hashlib.sha256(key.kid.encode()).hexdigest()[:16]}.pem"
            files[f"keys/{name}"] = key.public_key.encode()
            registry.append(
                {
                    "log": appliance.log_origin,
                    "kid": key.kid,
                    "file": name,
                    "valid_from_seq": key.valid_from_seq,
                    "valid_to_seq": key.valid_to_seq,
                    "revoked_at": key.revoked_ms // 1000 if key.revoked_ms else None,
                    # the log's records from this seq on are untrusted (a stolen Pi); signed in the evidence log
                    "compromised_since_seq": untrusted_from(appliance.log_origin),
                }
            )
    evidence_sizes: list[int] = []
    claim = None
    if evidence_key is not None:
        tz = ZoneInfo(plants[0].timezone)
        start_ms = to_ms(datetime.combine(first_day, time(), tz))
        end_ms = to_ms(datetime.combine(last_day + timedelta(days=1), time(), tz))
        progress("the cloud's evidence log: contacts, receipts, people's actions")
        entry, evidence_sizes, key_entry = export_cloud_log(
            files,
            f"logs/{len(logs)}",
            employee,
            [p.id for p in plants],
            start_ms,
            end_ms,
            evidence_key,
            origins=[a.log_origin for a in appliances],
        )
        if entry is not None:
            logs.append(entry)
            registry.append(key_entry)
        if case_ref is not None:
            claim, left_out = case_claim(files, f"logs/{len(logs) - 1}" if entry else None, case_ref)
            if left_out:
                raise ExportError(
                    f"{case_ref} 的联络或操作记录（证据日志 seq {', '.join(map(str, left_out))}）不在 "
                    f"{first_day} – {last_day} 之内 / records of {case_ref} lie outside the period"
                )
    if witness_log is not None:
        progress("proving the checkpoints in the cloud's witness log")
        witnessed["checkpoints"] = export_witness(
            files,
            checkpoint_ids,
            tsa_ca,
            evidence_sizes,
            ends={a.id: e["to_size"] for a in appliances for e in logs if e["log"] == a.log_origin},
            evidence_log=bool(evidence_sizes),
        )
    files["keys/registry.json"] = json.dumps(registry, ensure_ascii=False, indent=1).encode()
    files["keys/witness.pem"] = witness.pem().encode()
    made = clock.now().replace(microsecond=0)
    files["FORMAT.md"] = resources.files("ledger").joinpath("FORMAT.md").read_bytes()
    manifest = {
        "format": FORMAT,
        "employee": employee,
        "period": {"from": first_day.isoformat(), "to": last_day.isoformat()},
        "plants": [{"id": p.id, "name": p.name, "timezone": p.timezone} for p in plants],
        "logs": logs,
        "witness_kid": witness.kid,
        "witness_log": witnessed or None,
        "generated_at": made.isoformat(timespec="seconds"),
    }
    if claim is not None:
        manifest["case"] = claim
    if purpose is not None:
        manifest["purpose"] = purpose
    if exported_by:
        manifest["exported_by"] = exported_by
    # names the bundle on every page of its report: the hash of the evidence (the report cannot hold its own)
    manifest["bundle_id"] = hashlib.sha256(sha256sums(files)).hexdigest()
    sign = _manifest_signer(any(e.get("kind") == "cloud" for e in logs), evidence_log, witness_log, manifest_key)
    progress("verifying what will be exported")
    result = verify_bundle(_zip(_signed(files, manifest, sign), made), witness_key=witness)
    progress("writing the report")
    files.update(manual_check_files(manifest, files))
    model = build_model(manifest, result, files)
    files["report.html"] = report_html(model).encode()
    files["report.pdf"] = report_pdf(model, font)
    files = _signed(files, manifest, sign, witness_log.stamp_manifest if witness_log is not None else None)
    checked = Report()  # the exporter's own report shows the signed records' times, or the bundle is not made
    checked.disclosed = result.disclosed
    check_report_times(files, json.loads(files[MANIFEST]), checked)
    if not checked.ok:
        raise ExportError(
            f"报告与签名记录不符，未导出 / the report does not match the records: {checked.checks[-1].detail}"
        )
    return _zip(files, made)


Signer = Callable[[bytes], tuple[str, bytes]]


def _manifest_signer(
    cloud_log: bool, evidence_log: EvidenceLog | None, witness_log: WitnessLog | None, manifest_key: SigningKey | None
) -> tuple[str, Signer]:
    """The key that signs the manifest (``ledger.evidence.manifest_signer``): the evidence key when the bundle
    carries the cloud's evidence log, else the witness key. Its kid, and how to sign with it."""
    if cloud_log and evidence_log is not None:
        kid = evidence_log.sign_manifest(b"")[0]
        return kid, evidence_log.sign_manifest
    if witness_log is not None:
        return witness_log.sign_manifest(b"")[0], witness_log.sign_manifest
    if evidence_log is not None:
        return evidence_log.sign_manifest(b"", as_witness=True)[0], lambda data: evidence_log.sign_manifest(
            data, as_witness=True
        )
    assert manifest_key is not None  # export_bundle refused a bundle without any of them
    return manifest_key.verify_key.kid, lambda data: (manifest_key.verify_key.kid, manifest_key.sign(data))


def _signed(
    files: dict[str, bytes],
    manifest: dict[str, object],
    sign: tuple[str, Signer],
    stamp: Callable[[bytes], bytes | None] | None = None,
) -> dict[str, bytes]:
    """``files`` with the manifest, which names its signer and lists every file's SHA-256, its signature
    (``manifest.sig``) and SHA256SUMS (FORMAT.md, "The signed manifest")."""
    kid, signer = sign
    listed = {n: d for n, d in files.items() if n not in UNLISTED}
    text = json.dumps(
        {**manifest, "signed_by": kid, "files": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(listed.items())}},
        ensure_ascii=False,
        indent=1,
    ).encode()
    out = {**listed, MANIFEST: text, MANIFEST_SIG: signer(text)[1]}
    token = stamp(text) if stamp is not None else None  # a TSA's stamp over it, where one is configured
    if token is not None:
        out[MANIFEST_TSR] = token
    return {**out, SUMS: sha256sums(out)}


def _zip(files: dict[str, bytes], made: datetime) -> bytes:
    """Entries dated at the export time (not the time of writing), so that an export can be reproduced."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, made.astimezone(UTC).timetuple()[:6])
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _plants_of(employee: str) -> list[Plant]:
    query = (
        Plant.select()
        .join(Appliance)
        .join(Punch, on=(Punch.appliance == Appliance.id))
        .where(Punch.employee == employee)
        .distinct()
    )
    return list(query)


def _export_log(
    files: dict[str, bytes],
    base: str,
    appliance: Appliance,
    employee: str,
    start_ms: int,
    end_ms: int,
    checkpoint_ids: list[int],
) -> dict[str, object] | None:
    in_period = LogRecord.select(LogRecord.seq).where(
        (LogRecord.appliance == appliance) & (LogRecord.t_wall_ms >= start_ms) & (LogRecord.t_wall_ms < end_ms)
    )
    first = in_period.order_by(LogRecord.seq).scalar()
    last = in_period.order_by(LogRecord.seq.desc()).scalar()
    head = LogHead.get(LogHead.appliance == appliance)
    if first is None or last is None:
        return None
    index_end = _late_tags_end(appliance, first)
    if index_end is not None and index_end > last:  # the range has records tagged late: their tagindex goes in
        last = index_end
    cover = (
        CloudCheckpoint.select(CloudCheckpoint.size)
        .where((CloudCheckpoint.appliance == appliance) & (CloudCheckpoint.size > last))
        .order_by(CloudCheckpoint.size)
        .scalar()
    )
    end = cover if cover is not None else head.seq + 1
    leaves, lines = [], []
    for r in (
        LogRecord.select(LogRecord.seq, LogRecord.leaf, LogRecord.data)
        .where((LogRecord.appliance == appliance) & (LogRecord.seq < end))
        .order_by(LogRecord.seq)
        .iterator()
    ):
        leaves.append(bytes(r.leaf))
        if r.seq >= first:  # an owner tag shows for every record (version 2): leaves.txt gives it with the hash
            lines.append(undisclosed_line(bytes(r.data), leaves[-1]))
    tree = CompactRange()
    tree.extend(leaves[:first])
    candidates = (
        LogRecord.select()
        .where(
            (LogRecord.appliance == appliance)
            & (LogRecord.seq >= first)
            & (LogRecord.seq < end)
            & ((LogRecord.employee == employee) | LogRecord.type.in_(SYSTEM_TYPES))
        )
        .order_by(LogRecord.seq)
    )
    # the employee's own records, and the appliance's that hold no worker's data; another worker's incident, or one
    # holding a terminal's bytes that names nobody (a log from before incidents named their worker), stays a leaf
    disclosed = [r for r in candidates if r.employee == employee or public_record(json.loads(bytes(r.data)))]
    incidents = (
        LogRecord.select()
        .where((LogRecord.appliance == appliance) & (LogRecord.seq >= first) & (LogRecord.seq < end))
        .where(LogRecord.type == "incident")
        .count()
    )
    undisclosed = incidents - sum(1 for r in disclosed if r.type == "incident")
    own = [r for r in disclosed if r.employee == employee]
    given = _tag_key_record(appliance, employee, first)  # the employee's tag key, given before the range
    own = ([given] if given is not None else []) + own
    proofs = inclusion_proofs(leaves, [r.seq for r in own])
    for record in own:  # one file each, with its proof: what MANUAL-CHECKS.md checks by hand
        files[f"{base}/records/{record.seq}.json"] = bytes(record.data)
        files[f"{base}/records/{record.seq}.sig"] = bytes(record.sig)
        files[f"{base}/records/{record.seq}.proof.json"] = json.dumps(
            {"index": record.seq, "size": end, "hashes": [h.hex() for h in proofs[record.seq]]}
        ).encode()
    files[f"{base}/system.jsonl"] = "".join(  # boots, seals, incidents...: many, so one file; leaves.txt proves them
        json.dumps({"seq": r.seq, "data": bytes(r.data).decode(), "sig": b64(bytes(r.sig))}) + "\n"
        for r in disclosed
        if r.employee != employee
    ).encode()
    checkpoints = _checkpoints_needed(appliance, first, end, own)
    checkpoint_ids += [c.id for c in checkpoints]
    files[f"{base}/checkpoints.jsonl"] = "".join(
        json.dumps({"size": c.size, "note": c.note + c.cosignature}) + "\n" for c in checkpoints
    ).encode()
    files[f"{base}/leaves.txt"] = "".join(line + "\n" for line in lines).encode()
    files[f"{base}/log.json"] = json.dumps(
        {
            "log": appliance.log_origin,
            "plant": appliance.plant.id,
            "appliance": appliance.name,
            "from_seq": first,
            "to_size": end,
            "compact": [h.hex() for h in tree.hashes],
            "witnessed_to": cover is not None,
        },
        indent=1,
    ).encode()
    return {
        "log": appliance.log_origin,
        "plant": appliance.plant.id,
        "appliance": appliance.name,
        "from_seq": first,
        "to_size": end,
        "disclosed": len(disclosed),
        # incidents of the range not disclosed: other workers', or holding a terminal's bytes of no known worker
        "undisclosed_incidents": undisclosed,
    }


def _tag_key_record(appliance: Appliance, employee: str, before: int) -> LogRecord | None:
    """The employee's record before ``before`` that gave them their tag key in this log (their first record, or a
    ``tagkey`` record of the log's switch to version 2), or None: a reader needs the key to check that none of the
    range's records is theirs and withheld."""
    query = (
        LogRecord.select()
        .where((LogRecord.appliance == appliance) & (LogRecord.employee == employee) & (LogRecord.seq < before))
        .order_by(LogRecord.seq)
    )
    for record in query.iterator():
        if b'"tagkey":"' in bytes(record.data):
            return record
    return None


def _late_tags_end(appliance: Appliance, first: int) -> int | None:
    """The seq of the last ``tagindex`` record that tags a record at or after ``first`` (tags given late, at the
    log's switch to version 2), or None."""
    query = LogRecord.select(LogRecord.seq, LogRecord.data).where(
        (LogRecord.appliance == appliance) & (LogRecord.type == "tagindex")
    )
    seqs = [r.seq for r in query if json.loads(bytes(r.data))["to"] > first]
    return max(seqs, default=None)


def _checkpoints_needed(appliance: Appliance, first: int, end: int, own: list[LogRecord]) -> list[CloudCheckpoint]:
    """The cosigned checkpoints a reader needs, not the one per minute the cloud holds: for each of the
    employee's records the one it names as its anchor (made after it) and the first covering it (made
    before it), the first of every hour (bounds for the rest), and the one at the end of the range."""
    rows = list(
        CloudCheckpoint.select(
            CloudCheckpoint.id, CloudCheckpoint.size, CloudCheckpoint.cosignature, CloudCheckpoint.cosigned_at
        )
        .where(
            (CloudCheckpoint.appliance == appliance) & (CloudCheckpoint.size > first) & (CloudCheckpoint.size <= end)
        )
        .order_by(CloudCheckpoint.size)
        .tuples()
    )
    sizes = [size for _id, size, _line, _at in rows]
    wanted: set[int] = {end}
    hour = None
    for _id, size, _line, at in rows:
        if at // 3600 != hour:
            hour = at // 3600
            wanted.add(size)
    anchors = {json.loads(bytes(r.data)).get("anchor") for r in own} - {None}
    by_anchor = {b64(hashlib.sha256(line.encode()).digest()): size for _id, size, line, _at in rows}
    wanted |= {by_anchor[a] for a in anchors if a in by_anchor}
    for record in own:
        index = bisect.bisect_right(sizes, record.seq)
        if index < len(sizes):
            wanted.add(sizes[index])
    ids = [row_id for row_id, size, _line, _at in rows if size in wanted]
    return list(CloudCheckpoint.select().where(CloudCheckpoint.id.in_(ids)).order_by(CloudCheckpoint.size))
