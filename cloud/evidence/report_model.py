"""What the evidence bundle's report says, once: both report.html and report.pdf are drawn from this model.

The model holds finished Chinese text (times already in the plant's zone), so that the two renderers only
lay it out and cannot tell the reader two different stories. It is built from the manifest, the result
of ``ledger.evidence.verify_bundle`` run on the bundle being exported, and the bundle's files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.channels import names
from cloud.clock import zone_words
from cloud.escalation.policy import step_label
from cloud.evidence.report_checks import UNTRANSLATED, detail_text, no_witness
from cloud.evidence.report_facts import (
    SOFTWARE_RECIPE,
    DeviceLine,
    clock_state,
    devices,
    err_words,
    exporter,
    software,
    system_records,
)
from cloud.notices import templates as notice_templates
from ledger.evidence import (
    MANIFEST,
    SEAL_GAP_S,
    THIRD_PARTY_TIME_FIX_EN,
    THIRD_PARTY_TIME_FIX_ZH,
    Event,
    Report,
    limit_zh,
    record_time,
    span_zh,
)

STATES = {0: "上班", 1: "下班", 2: "外出", 3: "外出返回", 4: "加班签到", 5: "加班签退"}
VERIFY = {0: "密码", 1: "指纹", 2: "卡", 15: "人脸"}
CHECKS = {
    "archive": "压缩包",
    "SHA256SUMS": "文件未被改动",
    "manifest": "证据包说明",
    "manifest signature": "清单签名与文件哈希",
    "bundle id": "证据包编号与证据文件相符",
    "format": "证据包结构符合格式说明",
    "keys": "公钥清单",
    "report times": "报告所示时间与签名记录一致",
    "witness key": "公司服务器会签密钥（非第三方）",
    "witness log": "公司服务器会签日志与第三方时间戳",
    "key registrations": "设备公钥登记",
    "appliance keys": "设备公钥核对",
    "evidence key": "云端证据公钥核对",
}
LOG_CHECKS = {
    "leaves": "叶哈希数量",
    "checkpoints": "检查点签名与公司服务器会签",
    "disclosed records": "披露记录的签名与链接",
    "owner tags": "归属标记：未披露的记录中有无本人记录",
    "log length": "日志长度：是否短于公司服务器会签日志所记录的长度（截断）",
    "contacts": "联络记录与所发文件",
    "compromised key": "设备密钥泄露",
}
UNTIMED_GAPS = {  # gaps the verifier lists without a time, by how their text starts
    "the bundle has no witness log": "本证据包不含公司服务器的会签日志：其中的检查点未在公司服务器的签名日志中得到证明",
}
EXPORT_STAMP = {
    "ok": "本次导出已由 RFC 3161 时间戳机构盖章",
    "no TSA configured": "未配置时间戳机构，本次导出未盖时间戳",
}
OTHER_RECORDS = {
    "dayfact": "考勤结论",
    "correction": "更正",
    "action": "处理",
    "contact": "联系",
    "receipt": "送达回执",
    "case_action": "人工处理",
    "incident": "终端异常",
}
CHANNELS = {
    "email": "电子邮件",
    "sms": "短信",
    "wecom": "企业微信",
    "dingtalk": "钉钉",
    "voice": "电话",
    "ems": "EMS",
    "wecom_robot": "企业微信群",
    "dingtalk_robot": "钉钉群",
}
OUTCOMES = {
    "sent": "服务商已接收",
    "failed": "失败",
    "uncertain": "结果不明",
    "task_open": "待人工办理",
    "done": "人工已办结",
    "delivered": "已送达",
    "read": "已读",
    "unread": "未读",
    "returned": "退回",
    "no_answer": "无人接听",
    "pending": "待回执",
}
SCHEDULE_NOTE = (
    "排班：本证据包不含排班表，报告不判断该员工某日是否应当出勤，只列出设备记录的事实。"
    "“无打卡记录”表示设备当日在正常记录，而其完整日志中没有该员工的打卡：日志的每条记录带有归属标记，"
    "只有用该员工的归属密钥（随本证据包披露）才能认出，核验程序逐条核对，未披露的记录中没有该员工的记录"
    "（旧格式日志没有归属标记，报告会注明不能据此排除）；"
    "“该日无设备记录”则不能据此认定缺勤；"
    "“未覆盖”表示设备当时尚未开始记录（在其日志第一条记录之前，或设备对该班次的结论为未覆盖），不计缺勤。"
)
VERDICTS = {
    "verified": "全部校验通过",
    "untimed": "签名与哈希校验无误，但没有第三方时间戳：报告中的时间仅为用人单位一方的证明（见上方说明）",
    "failed": "校验未全部通过：请勿采信本报告，并联系系统管理员",
    "unpinned": "各项校验无误，但公钥未经独立核对",
    "late": "签名与哈希校验无误，但有打卡记录晚于允许的时限才取得第三方时间戳：其时间仍可能系事后制作（见上方说明）",
}
LATE_NOTE = (
    "第三方时间戳：每条打卡下方列出覆盖它的最早 RFC 3161 时间戳（时间戳机构盖章的公司服务器会签日志检查点包含该记录），"
    "及其与打卡时间的间隔。在此之前，该记录可能由持有密钥的用人单位事后制作；间隔超过 {limit} 的记录如下："
)
KEYS_NOTE = (
    "下列设备签名公钥的指纹（kid，即 DER 公钥的 SHA-256，base64；括号内为同一值的十六进制）由总部在登记设备或接受"
    "密钥轮换时记入云端签名证据日志，并随公司服务器的会签日志由时间戳机构（第三方）盖章。"
    "仲裁方或其他核验者可自行留存这些指纹，核验时用 "
    "punchproof verify --appliance-key 指定，以确认证据包所用的密钥正是当时登记的密钥。"
)
UNCOVERED = "未覆盖：设备当时尚未开始记录，不计缺勤"
NO_RECORD = "该时段无记录（原因未知：可能断电、设备停止或网络中断）"  # a gap no signed record explains
STATUS_WORDS = {"punched": "有打卡", "no_punch": "无打卡记录", "no_device": "设备无记录", "uncovered": "未覆盖"}
VERIFY_STEPS = (
    (
        "用离线核验程序检查全部签名、哈希链、公司服务器会签与第三方时间戳（退出码 0 表示全部通过；公司服务器会签公钥与"
        "时间戳机构根证书须另行取得，用 --witness-key 与 --tsa-ca 指定，否则退出码为 5：公钥未经独立核对；"
        "设备公钥可按“设备公钥登记”中的指纹用 --appliance-key 指定）：",
        "punchproof verify 证据包.zip --witness-key cloud-witness.pub --tsa-ca tsa-ca.pem --appliance-key 指纹",
    ),
    ("不用任何本系统软件，核对每个文件的 SHA-256：", "sha256sum -c SHA256SUMS"),
    ("按 MANUAL-CHECKS.md 中的 OpenSSL 命令，核验记录签名、检查点会签与时间戳；记录格式见 FORMAT.md。", ""),
    ("其他员工的记录仅以加盐哈希（leaves.txt）出现，不披露其内容。", ""),
)


SELF_CHECK_NOTE = (
    "下表是导出程序在制作本证据包时对自身所做的检查，不是证明：本报告可能被改动，"
    "请以 punchproof verify（或“如何独立核验”中的步骤）对证据包本身的核验结果为准。"
)


@dataclass(frozen=True)
class PunchLine:
    terminal_time: str  # the terminal's own clock, plant time
    appliance_time: str  # when the appliance recorded it, by the appliance's clock
    offset: str  # the terminal's clock against the appliance's, measured at the read
    state: str
    verify: str
    terminal: str
    record: str  # the record's file in the bundle
    witnessed: str  # the cloud's cosignature time, the latest the record can have been made
    stamped: str = ""  # the earliest third-party (TSA) time that covers it, and how long after the punch
    stamp_late: bool = False  # stamped later than the policy allows, or not at all
    # what report.html marks each time with, for punchproof verify to compare (``ledger.evidence.check_report_times``)
    log: str = ""  # the record's log origin
    seq: int = -1
    terminal_iso: str = ""  # the record's term.t, as signed
    appliance_iso: str = ""  # its t_wall_ms, ISO 8601 UTC


@dataclass(frozen=True)
class DayLine:
    date: str
    weekday: str
    status: str  # punched, no_punch, no_device (a gap while recording), uncovered (before recording began)
    status_text: str
    recorded: str  # the span the appliances were recording that day, or ""
    punches: tuple[PunchLine, ...]
    notes: tuple[str, ...]  # gaps, incidents and the employee's other records that touch the day
    clock: str = ""  # the appliance clock's synchronisation that day, as the day's records state it (clk)


@dataclass(frozen=True)
class GapLine:
    kind: str  # as ledger.evidence.Event's, or "bundle" for a gap of the whole bundle (no time, no day)
    start: int  # Unix seconds
    end: int  # the same as start for a moment
    zh: str
    en: str  # what the verifier says


@dataclass(frozen=True)
class CheckLine:
    label: str
    name: str
    ok: bool
    detail: str  # Chinese (the verifier's words mapped, never an exception's text)
    detail_en: str = ""  # the verifier's English, cleaned of Python's reprs


@dataclass(frozen=True)
class FileLine:
    name: str
    sha256: str
    about: str


@dataclass(frozen=True)
class ContactLine:
    """One attempt to reach someone about the employee's case, or a person's action on it, from the cloud's log."""

    at: str  # plant time
    what: str  # channel and recipient, or the action
    outcome: str  # the provider's answer and, later, its receipt
    detail: str  # template, content hash, provider message id
    record: str  # the record's file in the bundle
    words: str = ""  # an SMS as the phone showed it (the signed record's text), when the approved content was known


@dataclass(frozen=True)
class KeyLine:
    """One appliance key as head office registered it (设备公钥登记): what a third party holds the employer to."""

    appliance: str
    kid: str  # base64 SHA-256 of the DER public key: the fingerprint --appliance-key takes
    hex: str  # the same SHA-256 in hex, as sha256sum prints it
    registered: str  # when head office registered it (or accepted its rotation), plant time; or why unknown
    logged: str  # which record of the cloud's signed evidence log says so, and by when the cloud witnessed it
    status: str  # the seqs it signs, and a revocation with its compromise point


@dataclass(frozen=True)
class LogLine:
    appliance: str
    log: str
    span: str


@dataclass(frozen=True)
class ReportModel:
    employee: str
    period_from: str
    period_to: str
    timezone: str
    plants: tuple[str, ...]
    logs: tuple[LogLine, ...]
    witness_kid: str
    timestamp: str  # whether a timestamp authority stamped the cloud's witness log for this export
    generated_at: str  # plant time
    generated_utc: datetime
    bundle_id: str  # manifest.json's bundle_id (the evidence files' SHA256SUMS, hashed): names it on every page
    ok: bool  # every check passed (signatures, hashes, proofs, stamps)
    verdict: str
    checks: tuple[CheckLine, ...]
    days: tuple[DayLine, ...]
    gaps: tuple[GapLine, ...]
    files: tuple[FileLine, ...]
    contacts: tuple[ContactLine, ...] = ()
    case: str = ""  # a case's bundle: which case, and what it carries (manifest.json's "case")
    purpose_zh: str = ""  # what the bundle was made for: a work-injury claim, a case, an employee's period
    purpose_en: str = ""
    untimed: tuple[str, str, str, str] | None = None  # no third-party time: what that means and the fix, zh, en
    keys: tuple[KeyLine, ...] = ()  # 设备公钥登记
    late: tuple[str, ...] = ()  # the policy, then each punch stamped later than it allows (zh-CN)
    exported_by: str = "未记录导出人"  # manifest.json's exported_by
    exporter: str = ""  # the exporting software's version and hash
    devices: tuple[DeviceLine, ...] = ()  # the terminals recording in the period (the employee's, and stated)
    software: tuple[str, ...] = ()  # the appliance software in the period (boot records' sw)
    counts: tuple[str, ...] = ()  # the days by status, and each log's records, as sums that add up

    @property
    def green(self) -> bool:
        """Shown as a full pass: every check passed and a TSA's time covers the bundle and every punch in time;
        never without it."""
        return self.ok and self.untimed is None and not self.late

    @property
    def footer(self) -> str:
        return (
            f"员工 {self.employee} · {self.period_from} 至 {self.period_to} · "
            f"证据包 {self.bundle_id[:16]} · 生成于 {self.generated_at}"
        )


def case_zh(ref: str) -> str:
    """A case as head office's pages name it ("案件 1"), not by the evidence log's reference ("case-1")."""
    return f"案件 {ref.removeprefix('case-')}"


def _case_line(claim: dict[str, Any] | None) -> str:
    if not claim:
        return ""
    return (
        f"{case_zh(claim['ref'])}（本案证据包：联络 {len(claim['contacts'])} 次、回执 {len(claim['receipts'])} 份、"
        f"人事操作 {len(claim['actions'])} 项、通知书 {len(claim['notices'])} 份、"
        f"文书 {len(claim.get('documents', []))} 份，缺一即校验不通过）"
    )


def purpose(manifest: dict[str, Any]) -> tuple[str, str]:
    """What the bundle was made for, in Chinese and in English: the manifest's ``purpose`` when it states one (a
    work-injury claim and its accident date), else a case's bundle or an employee's bundle for the period."""
    stated = manifest.get("purpose")
    if isinstance(stated, dict) and stated.get("zh"):
        return str(stated["zh"]), str(stated.get("en", ""))
    emp, first, last = manifest["employee"], manifest["period"]["from"], manifest["period"]["to"]
    claim = manifest.get("case")
    if isinstance(claim, dict) and claim.get("ref"):
        ref = claim["ref"]
        return (
            f"本证据包为{case_zh(ref)}制作：工号 {emp} 自 {first} 至 {last} 的考勤设备记录，以及本案在云端证据日志中的"
            "全部联络、回执、人事操作、通知书与文书",
            f"This bundle was made for case {ref}: badge {emp}'s appliance records from {first} to {last}, and every "
            "contact, receipt, action by people, notice and document of the case in the cloud's evidence log",
        )
    cloud = any(  # the employee's contacts and actions, not only the appliance keys' registrations
        entry.get("kind") == "cloud" and entry["disclosed"] > entry.get("key_records", 0) for entry in manifest["logs"]
    )
    also_zh = "；以及云端证据日志中与本人有关的联络与人事操作" if cloud else ""
    also_en = "; and the contacts and actions about the employee in the cloud's evidence log" if cloud else ""
    return (
        f"本证据包为工号 {emp} 在 {first} 至 {last} 期间的考勤证据制作：考勤设备日志中本人的记录全文，其他记录仅以"
        f"哈希证明其存在{also_zh}",
        f"This bundle was made for badge {emp}'s attendance from {first} to {last}: the employee's records in the "
        f"appliances' logs in full, the others as hashes{also_en}",
    )


def build_model(manifest: dict[str, Any], result: Report, files: dict[str, bytes]) -> ReportModel:
    zones = {p["id"]: ZoneInfo(p["timezone"]) for p in manifest["plants"]}
    tz = next(iter(zones.values()), ZoneInfo("Asia/Shanghai"))
    log_zone = {entry["log"]: zones.get(entry["plant"], tz) for entry in manifest["logs"]}
    generated = datetime.fromisoformat(manifest["generated_at"])
    system = system_records(manifest, files)
    gaps = _gaps(result, log_zone, tz, system)
    purpose_zh, purpose_en = purpose(manifest)
    days = _days(manifest, result, gaps, tz, log_zone, system)
    version, source = exporter()
    return ReportModel(
        employee=manifest["employee"],
        case=_case_line(manifest.get("case")),
        purpose_zh=purpose_zh,
        purpose_en=purpose_en,
        period_from=manifest["period"]["from"],
        period_to=manifest["period"]["to"],
        timezone=zone_words(str(tz)),
        plants=tuple(f"{p['name'] or p['id']}（{p['id']}，{zone_words(p['timezone'])}）" for p in manifest["plants"]),
        logs=tuple(
            LogLine(f"{entry['plant']}/{entry['appliance']}", entry["log"], _log_span(n, entry, files))
            for n, entry in enumerate(manifest["logs"])
        ),
        witness_kid=manifest["witness_kid"],
        timestamp=_timestamp(manifest.get("witness_log")),
        generated_at=f"{generated.astimezone(tz):%Y-%m-%d %H:%M:%S}（{zone_words(str(tz))}）",
        generated_utc=generated,
        bundle_id=str(manifest.get("bundle_id") or hashlib.sha256(files.get(MANIFEST, b"")).hexdigest()),
        ok=result.ok,
        verdict=VERDICTS[result.result],
        untimed=(result.untimed[0], THIRD_PARTY_TIME_FIX_ZH, result.untimed[1], THIRD_PARTY_TIME_FIX_EN)
        if result.untimed
        else None,
        checks=tuple(_check(c.name, c.ok, c.detail) for c in result.checks),
        days=days,
        gaps=gaps,
        files=_files(manifest, files),
        contacts=_contacts(manifest, result, tz),
        keys=_keys(manifest, result, files, tz),
        late=(LATE_NOTE.format(limit=limit_zh(result.stamp_delay)), *(zh for zh, _en in result.late))
        if result.late
        else (),
        exported_by=_exported_by(manifest.get("exported_by")),
        exporter=f"punchproof {version}；源代码 SHA-256 {source}（{SOFTWARE_RECIPE}）",
        devices=devices(
            manifest, [i for i in result.disclosed if i["fields"]["type"] == "punch"], system, log_zone, tz
        ),
        software=software(manifest, system, log_zone, tz),
        counts=_day_counts(days) + _undisclosed_incidents(manifest, result),
    )


def _exported_by(who: Any) -> str:
    """Who exported the bundle, as the manifest names them (a login, or {"name", "login"}); said when it does not."""
    if isinstance(who, dict):
        name, login = str(who.get("name") or ""), str(who.get("login") or "")
        if name and login and name != login:
            return f"{name}（登录名 {login}）"
        return name or login or "未记录导出人"
    return str(who) if isinstance(who, str) and who.strip() else "未记录导出人"


def _log_span(n: int, entry: dict[str, Any], files: dict[str, bytes]) -> str:
    """A log's range as a sum that adds up: its records = the employee's disclosed + system records disclosed + those
    shown only as hashes. Counted from the files themselves."""
    first, end = entry["from_seq"], entry["to_size"]
    own = sum(
        1
        for name in files
        if name.startswith(f"logs/{n}/records/")
        and name.endswith(".sig")
        and first <= int(name.rsplit("/", 1)[1].split(".")[0]) < end
    )
    system = sum(1 for line in files.get(f"logs/{n}/system.jsonl", b"").splitlines() if line.strip())
    hidden = end - first - own - system
    return (
        f"第 {first} 至 {end - 1} 条，共 {end - first} 条 = 披露 {own + system} 条（本人的记录 {own} 条、"
        f"设备的系统记录 {system} 条）+ 未披露 {hidden} 条（仅以加盐哈希出现）"
    )


def _day_counts(days: tuple[DayLine, ...]) -> tuple[str, ...]:
    """The period's days by what the report says of each: the parts add up to the whole."""
    counted = {status: sum(1 for d in days if d.status == status) for status in STATUS_WORDS}
    parts = " + ".join(f"{STATUS_WORDS[status]} {n} 天" for status, n in counted.items())
    punches = sum(len(d.punches) for d in days)
    return (f"期间共 {len(days)} 天 = {parts}；本人打卡记录共 {punches} 条",)


def _undisclosed_incidents(manifest: dict[str, Any], result: Report) -> tuple[str, ...]:
    """How many terminal incidents of the period the bundle holds only as leaves (another worker's, or holding a
    terminal's bytes of no known worker): the verifier's count, else the manifest's; said only when there are some."""
    counted = result.undisclosed_incidents or {
        str(e.get("log")): int(e.get("undisclosed_incidents") or 0) for e in manifest["logs"]
    }
    hidden = sum(counted.values())
    if not hidden:
        return ()
    return (f"本期间另有 {hidden} 条终端异常记录涉及其他员工或无法确定归属，未披露",)


def _keys(manifest: dict[str, Any], result: Report, files: dict[str, bytes], tz: ZoneInfo) -> tuple[KeyLine, ...]:
    """Each appliance key the bundle lists, with its registration record from the cloud's signed evidence log (a
    key of a bundle made before those records existed says so) and any revocation of its log."""
    appliances = {e["log"]: f"{e['plant']}/{e['appliance']}" for e in manifest["logs"] if e.get("kind") != "cloud"}
    registered = {(r["key_log"], r["key_kid"]): r for r in result.key_records if r["type"] == "keyreg"}
    revoked: dict[str, list[dict[str, Any]]] = {}
    for r in result.key_records:
        if r["type"] == "keyrevoke":
            revoked.setdefault(r["key_log"], []).append(r)
    lines = []
    for entry in json.loads(files.get("keys/registry.json", b"[]")):
        if entry["log"] not in appliances:
            continue
        record = registered.get((entry["log"], entry["kid"]))
        if record is None:
            when, logged = "云端证据日志中没有该密钥的登记记录（本证据包或其设备早于登记记录功能）", ""
        else:
            how = "接受密钥轮换" if record["how"] == "rotation" else "登记设备"
            when = f"{_full(record['at_ms'] // 1000, tz)}（{how}）"
            witnessed = _full(record["not_after"], tz) if record["not_after"] else "未经会签"
            logged = (
                f"云端证据日志第 {record['seq']} 条（记入于 {_full(record['t'], tz)}，"
                f"公司服务器会签不晚于 {witnessed}）"
            )
        last = entry.get("valid_to_seq")
        status = f"签署第 {entry.get('valid_from_seq', 0)} 条" + (
            f"至第 {last} 条（已轮换）" if last is not None else "起"
        )
        for r in revoked.get(entry["log"], []):
            status += (
                f"；{_full(r['revoked_ms'] // 1000, tz)} 吊销，自第 {r['since_seq']} 条起记录不作为证据（{r['since']}）"
            )
        digest = base64.b64decode(entry["kid"])
        lines.append(KeyLine(appliances[entry["log"]], entry["kid"], digest.hex(), when, logged, status))
    return tuple(lines)


def _contacts(manifest: dict[str, Any], result: Report, tz: ZoneInfo) -> tuple[ContactLine, ...]:
    """The cloud log's records of the employee, in order: attempts with their receipts, and people's actions."""
    bases = {entry["log"]: f"logs/{n}" for n, entry in enumerate(manifest["logs"])}
    items = [i for i in result.disclosed if i["fields"]["type"] in ("contact", "receipt", "case_action")]
    receipts: dict[int, list[str]] = {}
    for item in items:
        f = item["fields"]
        if f["type"] == "receipt" and f["contact_seq"] >= 0:
            when = f.get("provider_time") or _full(f["received_ms"] // 1000, tz)
            receipts.setdefault(f["contact_seq"], []).append(
                f"回执：{OUTCOMES.get(f['status'], f['status'])}（{when}）"
            )
    lines = []
    for item in items:
        f = item["fields"]
        record = f"{bases.get(item['log'], 'logs/?')}/records/{item['seq']}.json"
        if f["type"] == "contact":
            kind = f["channel"].split(".")[0]
            outcome = OUTCOMES.get(f["status"], f["status"]) + (f"：{f['reason']}" if f.get("reason") else "")
            lines.append(
                ContactLine(
                    at=_full(f["at_ms"] // 1000, tz),
                    what=f"{_step(f)} {CHANNELS.get(kind, kind)} → {f['recipient']}"
                    f"（{names.word(names.OPERATORS, f['operator'])}）",
                    outcome="；".join([outcome, *receipts.get(item["seq"], [])]),
                    detail=f"模板 {_template(f['template'])}；内容 SHA-256 {f['content_sha256'][:16]}…；"
                    f"服务商编号 {f['provider_id'] or '无'}",
                    record=record,
                    words=str(f.get("text", "")),
                )
            )
        elif f["type"] == "case_action":
            lines.append(
                ContactLine(
                    at=_full(f["at_ms"] // 1000, tz),
                    what=f"{ACTORS.get(f['actor'], f['actor'])}：{f['text']}",
                    outcome="",
                    detail=f"案件时间线第 {f['entry']} 条",
                    record=record,
                )
            )
    return tuple(lines)


ACTORS = {  # who wrote a case's timeline line, where it was not a person signed in under their name
    "engine": "系统（案件流程）",
    "appliance": "考勤设备",
    "system": "系统自动发送",
}


def _step(fields: dict[str, Any]) -> str:
    """A contact's step as the case page names it ("第1级 提醒"), from its key and its notice's template."""
    notice = str(fields.get("template", "")).split("@")[0]
    return step_label(str(fields["step"]), notice) if fields.get("step") else "—"


def _template(ref: str) -> str:
    """A notice template as people read it ("《未到岗提醒》第1版"), from its reference ("reminder@1")."""
    template_id, _, version = str(ref).partition("@")
    try:
        found = notice_templates.get(template_id, version or None)
    except notice_templates.UnknownTemplate:
        return f"{template_id} 第{version}版" if version else template_id
    return f"《{found.title}》第{found.version}版"


def _check(name: str, ok: bool, detail: str) -> CheckLine:
    label = CHECKS.get(name)
    if label is None:
        label = next((zh for en, zh in LOG_CHECKS.items() if name.endswith(f": {en}")), name)
    if label == name and name.startswith("case "):
        label = f"{case_zh(name.removeprefix('case '))} 的证据是否齐全"
    zh, en = detail_text(detail)
    return CheckLine(label, name, ok, zh, en)


def _began(manifest: dict[str, Any], result: Report) -> int | None:
    """When the appliances began recording, as far as the bundle shows it: the first record of their logs when
    every appliance log in the bundle starts at its first record (seq 0); None when one was recording before
    the period (a day without records is then a gap in the recording, not a day before it)."""
    appliance_logs = [entry for entry in manifest["logs"] if entry.get("kind") != "cloud"]
    if not appliance_logs or any(entry["from_seq"] != 0 for entry in appliance_logs) or not result.recorded:
        return None
    return min(first for first, _last in result.recorded.values())


def _uncovered_facts(result: Report) -> set[str]:
    """The days whose latest day fact (the appliance's conclusion on a shift) for the employee is 未覆盖: the
    appliance was not recording (a terminal serving the shift not read yet) when the shift began. The verifier
    discloses the employee's day facts (``fact.emp``), verified; a record that is not exact is not among them."""
    latest: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for item in result.disclosed:
        fields = item["fields"]
        fact = fields.get("fact")
        if fields.get("type") != "dayfact" or not isinstance(fact, dict):
            continue
        key = (item["log"], str(fact.get("key")))
        if key not in latest or latest[key][0] < item["seq"]:
            latest[key] = (item["seq"], fact)
    return {str(fact.get("date")) for _seq, fact in latest.values() if fact.get("status") == "uncovered"}


def _days(
    manifest: dict[str, Any],
    result: Report,
    gaps: tuple[GapLine, ...],
    tz: ZoneInfo,
    log_zone: dict[str, ZoneInfo],
    system: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[DayLine, ...]:
    system = system or {}
    bases = {entry["log"]: f"logs/{n}" for n, entry in enumerate(manifest["logs"])}
    began = _began(manifest, result)
    uncovered = _uncovered_facts(result)
    device_logs = [entry["log"] for entry in manifest["logs"] if entry.get("kind") != "cloud"]
    tags_checked = bool(device_logs) and all(result.tag_checks.get(log, {}).get("checked") for log in device_logs)
    late = _late_tags(result, device_logs)
    by_day: dict[str, list[dict[str, Any]]] = {}
    others: dict[str, list[str]] = {}
    clocked: dict[str, list[dict[str, Any]]] = {}  # per plant day: every appliance record disclosed, for its clk
    for log in device_logs:
        zone = log_zone.get(log, tz)
        for fields in system.get(log, []):
            clocked.setdefault(_day_of(fields["t_wall_ms"], zone), []).append(fields)
    for item in result.disclosed:
        if item["log"] in device_logs:
            clocked.setdefault(_day_of(item["fields"]["t_wall_ms"], log_zone.get(item["log"], tz)), []).append(
                item["fields"]
            )
    exported = int(datetime.fromisoformat(manifest["generated_at"]).timestamp())
    boots = [f for log in device_logs for f in system.get(log, []) if f.get("type") == "boot"]
    for item in result.disclosed:
        fields, zone = item["fields"], log_zone.get(item["log"], tz)
        if fields["type"] == "punch" and "t" in fields.get("term", {}):
            by_day.setdefault(fields["term"]["t"][:10], []).append(item)
        else:
            day = datetime.fromtimestamp(fields["t_wall_ms"] // 1000, zone).date().isoformat()
            kind = OTHER_RECORDS.get(fields["type"], fields["type"])
            others.setdefault(day, []).append(f"本人的{kind}记录（日志第 {item['seq']} 条）")
    days = []
    day, last = date.fromisoformat(manifest["period"]["from"]), date.fromisoformat(manifest["period"]["to"])
    while day <= last:
        key = day.isoformat()
        punches = sorted(by_day.get(key, []), key=lambda i: i["fields"]["term"]["t"])
        start = datetime.combine(day, time(), tz).timestamp()
        end = datetime.combine(day + timedelta(days=1), time(), tz).timestamp()
        touching = [g for g in gaps if g.kind != "bundle" and g.start < end and g.end >= start]
        span = result.recorded.get(key)
        edges = _edge_gaps(span, int(start), int(end), touching, began, min(exported, int(end)), tz, boots)
        notes = tuple(edges) + tuple(g.zh for g in touching) + tuple(others.get(key, []))
        notes += tuple(  # a day recorded before a log's switch: its records' tags were given then
            f"该日记录的归属标记于 {_full(at // 1000, tz)} 补记（日志升级到版本 2 时），此前未固定"
            for at in late
            if start * 1000 < at
        )
        before = key in uncovered or (began is not None and end <= began)
        status = _status(bool(punches), key in result.covered_days, before)
        days.append(
            DayLine(
                date=key,
                weekday="一二三四五六日"[day.weekday()],
                status=status,
                status_text=_status_text(
                    status,
                    touching + [GapLine("power_gap", 0, 0, e, "") for e in edges if "设备无任何记录" in e],
                    began if span and span[0] == began else None,
                    tz,
                    tags_checked=tags_checked,
                ),
                recorded=f"{_hm(span[0], tz)}–{_hm(span[1], tz)}" if span else "",
                punches=tuple(
                    _punch(p, bases.get(p["log"], "logs/?"), log_zone.get(p["log"], tz), result.stamp_delay)
                    for p in punches
                ),
                notes=notes,
                clock=clock_state(clocked.get(key, [])),
            )
        )
        day += timedelta(days=1)
    return tuple(days)


def _day_of(t_wall_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(t_wall_ms // 1000, zone).date().isoformat()


def _edge_gaps(
    span: tuple[int, int] | None,
    start: int,
    end: int,
    touching: list[GapLine],
    began: int | None,
    until: int,
    tz: ZoneInfo,
    boots: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The hours of a recorded day before its first record and after its last, when no gap the verifier found covers
    them: shown as gaps (the bundle holds nothing of them), their cause unknown unless the day's first record is a boot
    record, which states whether the run before it ended cleanly. Before the appliances began recording
    it is said so instead; after the export, nothing is said."""
    if span is None:
        return []
    first, last = span
    lines = []
    covered = [(g.start, g.end) for g in touching if g.kind in ("power_gap", "log_ends")]
    if first - start > SEAL_GAP_S and not any(a <= start + SEAL_GAP_S and b >= first - SEAL_GAP_S for a, b in covered):
        if began is not None and first == began:
            lines.append(f"00:00 至 {_hm(first, tz)} 设备尚未开始记录（其日志第一条记录在 {_hm(first, tz)}）")
        else:
            cause = _gap_cause(start, first + SEAL_GAP_S, boots or [])
            lines.append(f"00:00 至 {_hm(first, tz)} 设备无任何记录：{cause}")
    if until - last > SEAL_GAP_S and not any(a <= last + SEAL_GAP_S and b >= until - SEAL_GAP_S for a, b in covered):
        shown = "24:00" if until == end else _hm(until, tz) + "（导出时）"
        lines.append(f"{_hm(last, tz)} 至 {shown} 设备无任何记录：{NO_RECORD}")
    return lines


def _status(punched: bool, covered: bool, before_recording: bool) -> str:
    if punched:
        return "punched"
    if before_recording:
        return "uncovered"
    return "no_punch" if covered else "no_device"


def _late_tags(result: Report, logs: list[str]) -> list[int]:
    """When (ms) each log whose older records were tagged late wrote those tags, at its switch to version 2: a day
    recorded before that moment has tags fixed only from then on."""
    return sorted({item["at_ms"] for log in logs for item in result.tag_checks.get(log, {}).get("late", [])})


def _status_text(
    status: str, gaps: list[GapLine], began: int | None, tz: ZoneInfo, *, tags_checked: bool = False
) -> str:
    """What a day without a punch proves; ``began`` is set on the day the appliances began recording. A day without
    a punch while recording rests on the owner tags: with ``tags_checked`` every record of every appliance log's
    range was checked for the employee's tag, else (an older log) withholding cannot be ruled out."""
    if status == "punched":
        return ""
    if status == "uncovered":
        return UNCOVERED
    if status == "no_device" and any(g.kind == "untrusted" for g in gaps):
        return "该日设备记录不作为证据（设备密钥可能已泄露，见右栏），不能据此认定缺勤"
    if status == "no_device" and any("启动记录第" in g.zh for g in gaps):  # a boot record states the cause
        return "该日无设备记录（见右栏），不能据此认定缺勤"
    if status == "no_device":
        return f"该日无设备记录：{NO_RECORD}，不能据此认定缺勤"
    tags = (
        "已逐条核对归属标记，未披露的记录中没有本人的记录"
        if tags_checked
        else "但日志无归属标记（旧格式），不能排除本人的记录被隐瞒"
    )
    if began is not None:
        return f"无打卡记录；设备当日 {_hm(began, tz)} 才开始记录，此前的时段不能据此认定缺勤；{tags}"
    if any(g.kind in ("power_gap", "log_ends") for g in gaps):
        return f"无打卡记录；但设备当日有未记录的时段（见右栏），该时段不能据此认定缺勤；{tags}"
    return f"无打卡记录（设备当日正常记录；{tags}）"


def _stamp_text(item: dict[str, Any], limit: int, tz: ZoneInfo) -> tuple[str, bool]:
    """The earliest third-party time covering a punch and its delay after the punch's own time, as the report says
    it; and whether it is flagged (none, or later than ``limit`` seconds)."""
    if "stamped" not in item:  # verified without the witness log: the whole bundle is untimed, said at the top
        return "", False
    if item["stamped"] is None:
        return "没有第三方时间戳覆盖", True
    delay = item["stamped"] - item["fields"]["t_wall_ms"] // 1000
    text = f"第三方时间戳 {_full(item['stamped'], tz)}（打卡后 {span_zh(delay)}"
    if delay > limit:
        return text + f"，晚于允许的 {limit_zh(limit)}）", True
    return text + "）", False


def _punch(item: dict[str, Any], base: str, tz: ZoneInfo, limit: int) -> PunchLine:
    fields, term = item["fields"], item["fields"]["term"]
    recorded = datetime.fromtimestamp(fields["t_wall_ms"] / 1000, tz)
    same_day = recorded.date().isoformat() == term["t"][:10]
    terminal = term.get("sn", "")
    stamped, late = _stamp_text(item, limit, tz)
    return PunchLine(
        terminal_time=term["t"][11:19],
        appliance_time=f"{recorded:%H:%M:%S}" if same_day else f"{recorded:%Y-%m-%d %H:%M:%S}",
        offset=_offset(term.get("off_ms"), fields.get("clk")),
        state=STATES.get(term["state"], "打卡"),
        verify=VERIFY.get(term["verify"], "其他方式"),
        terminal=f"{terminal}（{term['name']}）" if term.get("name") else terminal,
        record=f"{base}/records/{item['seq']}.json",
        witnessed=("（未经公司服务器会签）" if item["not_after"] is None else _full(item["not_after"], tz))
        + ("；设备密钥可能已泄露，此条不作为证据" if item.get("untrusted") else ""),
        stamped=stamped,
        stamp_late=late,
        log=item["log"],
        seq=item["seq"],
        terminal_iso=term["t"],
        appliance_iso=record_time(fields["t_wall_ms"]),
    )


def _offset(off_ms: int | None, clk: Any = None) -> str:
    """The terminal's clock against the appliance's, and whether the appliance's own clock was synchronised (its
    record's ``clk``): two clocks that agree say nothing of the time when neither was set from a time source."""
    synced = isinstance(clk, dict) and bool(clk.get("sync"))
    err = clk.get("err_us") if isinstance(clk, dict) else None
    bound = f"，所报误差上限 ±{err_words(err)}" if isinstance(err, int) and err >= 0 else ""
    if not isinstance(clk, dict) or "sync" not in clk or synced:
        state = ""  # not stated (older records): the day's line says so
    else:
        state = f"；设备时钟未与标准时间同步{bound}，两者都可能偏离标准时间"
    if off_ms is None:
        return "考勤机时钟偏差未测量" + state
    if abs(off_ms) < 1000:
        if not state:
            return "考勤机与设备时钟一致（相差不到 1 秒）"
        return "考勤机与设备时钟相差不到 1 秒" + state
    seconds = abs(off_ms) // 1000
    amount = f"{seconds} 秒" if seconds < 120 else f"{seconds // 60} 分 {seconds % 60} 秒"
    return f"考勤机时钟比设备{'快' if off_ms > 0 else '慢'} {amount}" + state


def _gaps(
    result: Report,
    log_zone: dict[str, ZoneInfo],
    tz: ZoneInfo,
    system: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[GapLine, ...]:
    """The verifier's gaps in Chinese, in time order; a log's unwitnessed tail is one line, not one per record. A
    terminal's identity, signed as an incident, is provenance (the report's device table), not an anomaly."""
    system = system or {}
    timed = {e.detail for e in result.events}
    lines = []
    for text in result.gaps:
        if text in timed:
            continue
        zh, en = detail_text(text)
        known = next((words for start, words in UNTIMED_GAPS.items() if text.startswith(start)), None)
        lines.append(GapLine("bundle", 0, 0, known or (zh if zh != UNTRANSLATED else text), en or text))
    tails: dict[str, list[Event]] = {}
    for event in result.events:
        zone = log_zone.get(event.log, tz)
        if event.kind == "unwitnessed":
            tails.setdefault(event.log, []).append(event)
        elif event.kind == "incident" and event.detail.split(":")[0] == "terminal_identity":
            continue
        else:
            end = event.end if event.end is not None else event.start
            zh = _event_text(event, zone, system.get(event.log, []))
            lines.append(GapLine(event.kind, event.start, end, zh, _no_cause_en(event.detail)))
    for log, tail in tails.items():
        zone, first, last = log_zone.get(log, tz), min(tail, key=_seq), max(tail, key=_seq)
        zh = (
            f"{_full(first.start, zone)} 至 {_full(last.start, zone)} 的 {len(tail)} 条披露记录"
            f"（日志第 {first.seq} 至 {last.seq} 条）尚未经公司服务器会签"
        )
        en = f"{log} seq {first.seq}..{last.seq}: {len(tail)} disclosed record(s) not witnessed by the cloud"
        lines.append(GapLine("unwitnessed", first.start, last.start, zh, en))
    return tuple(sorted(lines, key=lambda g: (g.start, g.end, g.en)))


def _timestamp(witnessed: dict[str, Any] | None) -> str:
    if not witnessed:
        return "本证据包不含公司服务器的会签日志，也没有第三方时间戳"
    stamp = str(witnessed.get("export_stamp", ""))
    return EXPORT_STAMP.get(stamp) or f"时间戳机构本次未盖章：{stamp.removeprefix('failed: ')}"


def _seq(event: Event) -> int:
    return event.seq if event.seq is not None else -1


def _event_text(event: Event, tz: ZoneInfo, system: list[dict[str, Any]] | None = None) -> str:
    at = _full(event.start, tz)
    seq = f"（日志第 {event.seq} 条）" if event.seq is not None else ""
    if event.kind == "power_gap" and event.end is not None:
        return (
            f"{at} 至 {_full(event.end, tz)} 设备无任何记录（{(event.end - event.start) // 60} 分钟）："
            + _gap_cause(event.start, event.end, system or [])
        )
    if event.kind == "unclean_boot":
        return f"{at} 设备在非正常关机后重新启动（可能曾断电）{seq}"
    if event.kind == "clock_jump":
        way = "向前" if event.amount > 0 else "向后"
        return (
            f"{at} 设备时钟{way}跳变约 {abs(event.amount) // 60} 分钟（原因未载明：可能为人工调整或时间同步校正）{seq}"
        )
    if event.kind == "log_ends" and event.end is not None:
        text = f"设备日志在 {at}（已会签）结束，早于期间结束 {_full(event.end, tz)}"
        if event.witnessed_size is not None:
            text += (
                f"；公司服务器的会签日志至导出时所记录的该日志长度也止于此（{event.witnessed_size} 条）：设备停止记录，"
                "或此后未再同步，而非日志被截断"
            )
        if event.exported is not None:
            text += f"；本证据包导出于 {_full(event.exported, tz)}，其时期间尚未结束"
        return text + ("" if event.witnessed_size is not None else "：之后的记录不在本证据包内")
    if event.kind == "untrusted":
        return f"{at} 起：该设备日志自第 {event.seq} 条起的记录不作为证据（设备密钥可能已泄露，总部已吊销）"
    if event.kind == "incident":
        kind = event.detail.split(":")[0]  # the record's own words (a parser's message) stay in the English column
        return f"{at} {INCIDENTS.get(kind, '设备记下的其他异常事件（类型见英文原文）')}{seq}"
    return f"{at} {no_witness(event.detail)}"


INCIDENTS = {  # what a signed incident record says happened (FORMAT.md's kinds), never a cause it does not state
    "bad_terminal_record": "考勤机发来无法识别的记录，已原样保存为异常事件",
    "unknown_terminal": "未登记的考勤机试图上传记录（已拒绝并记录）",
    "unknown_card": "刷了未登记的卡",
    "unknown_page": "指纹模块识别出未登记的指纹页",
    "finger_not_identified": "指纹未能识别",
    "bad_reader_read": "读卡器读到无法识别的数据",
    "reader_noise": "读卡器线路持续发送无法识别的数据",
    "clock_alarm": "考勤机时钟偏差超出工厂允许的范围",
    "clock_alarm_cleared": "考勤机时钟偏差恢复到允许范围内",
    "clock_correction_failed": "设置考勤机时钟失败",
    "terminal_log_cleared": "按命令清除了考勤机自身的日志（云端已确认其中每条记录之后）",
    "log_replaced": "发现考勤机日志在设备之外被清除或替换，已重新读取",
}


def _no_cause_en(detail: str) -> str:
    """The verifier's English for a silence, without the cause it asserts (``ledger.evidence`` says "appliance off or
    power cut" of every gap between seals): the Chinese beside it says what a record states, or that none does."""
    return detail.replace(
        ": appliance off or power cut",
        ": no record (cause not recorded: power cut, appliance stopped or network outage)",
    )


def _gap_cause(start: int, end: int, system: list[dict[str, Any]]) -> str:
    """Why nothing was recorded between two records, only as far as a signed record says: a boot record in between
    states whether the run before it ended cleanly; otherwise the cause is unknown."""
    boots = [f for f in system if f.get("type") == "boot" and start < f["t_wall_ms"] // 1000 <= end]
    if not boots:
        return NO_RECORD
    boot = boots[0]
    if boot.get("unclean"):
        return f"设备未正常关机（如断电）后重新启动（启动记录第 {boot['seq']} 条载明上次运行未正常结束）"
    return f"设备正常关机后重新启动（启动记录第 {boot['seq']} 条载明上次运行正常结束）"


def _files(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[FileLine, ...]:
    lines = [
        FileLine(n, hashlib.sha256(d).hexdigest(), _about(n)) for n, d in sorted(files.items()) if "/records/" not in n
    ]
    for n, entry in enumerate(manifest["logs"]):
        count = sum(1 for name in files if name.startswith(f"logs/{n}/records/") and name.endswith(".sig"))
        lines.append(
            FileLine(
                f"logs/{n}/records/",
                "每个文件的 SHA-256 见 SHA256SUMS",
                f"{entry['log']} 的 {count} 条披露记录（本人的记录与设备的系统记录），"
                "每条有原文 .json、签名 .sig 与包含证明 .proof.json",
            )
        )
    lines += [
        FileLine(name, "见 SHA256SUMS", about)
        for name, about in (
            ("manifest.json", "清单：本证据包的内容与其中每个文件（含本报告）的 SHA-256"),
            ("manifest.sig", "清单的签名（云端证据密钥，无证据日志时为公司服务器会签密钥）"),
            ("report.html", "本报告（网页版）"),
            ("report.pdf", "本报告（PDF 版，内嵌中文字体）"),
            ("SHA256SUMS", "以上全部文件的 SHA-256，可用 sha256sum -c 核对"),
        )
    ]
    return tuple(lines)


def _about(name: str) -> str:
    if name.startswith("cloud/notices/"):
        return (
            "案件的通知书 PDF：发出的通知书，及人事出具的解除劳动合同证明、公告文本"
            "（文件名即其 SHA-256，云端证据日志的联系记录或人事操作记录据此指向它）"
        )
    if name.startswith("cloud/documents/"):
        return (
            "案件保存的文件：人事上传的材料（如 EMS 回执）、确认解除时审核的草稿"
            "（文件名即其 SHA-256，云端证据日志的人事操作记录据此指向它）"
        )
    if "/requests/" in name:
        return "联系记录发出时的原始请求（电子邮件为完整邮件原文），其 SHA-256 记在该联系记录中"
    fixed = {
        MANIFEST: "证据包说明：员工、期间、设备日志、公司服务器会签密钥",
        "FORMAT.md": "记录格式规范（可据此独立实现核验）",
        "MANUAL-CHECKS.md": "只用 OpenSSL 与 sha256sum 手工核验的步骤",
        "keys/registry.json": "设备公钥登记：每把密钥的适用范围与吊销时间",
        "keys/witness.pem": "公司服务器会签公钥（用人单位自己的服务器，非第三方）",
        "witness/entries.jsonl": "本证据包各检查点在公司服务器会签日志中的条目及包含证明",
        "witness/checkpoints.jsonl": "公司服务器会签日志的签名检查点，及时间戳机构（第三方）的时间戳",
        "witness/tsa-ca.pem": "时间戳机构的根证书（宜另行取得后用 --tsa-ca 指定）",
        "witness/consistency.jsonl": "公司服务器会签日志各检查点之间的一致性证明：所用检查点属于同一份日志历史",
        "witness/heads.jsonl": "导出时公司服务器会签日志对每份日志所记录的最新长度及包含证明：日志被截断即可发现",
        "witness/log-heads.jsonl": "公司服务器会签日志各检查点所承诺的每份日志最新条目及包含证明",
    }
    if name in fixed:
        return fixed[name]
    if name.startswith("manual/"):
        return "MANUAL-CHECKS.md 手工核验所用的签名内容与签名"
    if name.startswith("keys/"):
        return "设备签名公钥"
    if name.startswith("witness/stamps/"):
        return "RFC 3161 可信时间戳（可用 openssl ts -verify 核验，见 MANUAL-CHECKS.md）"
    if name.startswith("witness/checkpoint-"):
        return "时间戳所盖的公司服务器会签日志检查点"
    suffixes = {
        "log.json": "设备日志的范围与之前记录的默克尔树摘要",
        "leaves.txt": "范围内每条记录的叶哈希（其他员工的记录只以此加盐哈希出现）",
        "checkpoints.jsonl": "设备签名、云端会签并加盖时间的检查点",
        "system.jsonl": "设备的系统记录全文（启动、封存、不涉及任何员工的异常事件等），由 leaves.txt 证明其在日志中",
    }
    return next((about for suffix, about in suffixes.items() if name.endswith(suffix)), "")


def _hm(seconds: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(seconds, tz).strftime("%H:%M")


def _full(seconds: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(seconds, tz).strftime("%Y-%m-%d %H:%M:%S")
