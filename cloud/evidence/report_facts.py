"""What the report says about the equipment and its clocks, from the records the bundle discloses: the terminals that
recorded the employee's punches (model, serial number, firmware, first read), the appliance software that ran in the
period (boot records' ``sw``), the appliance clock's synchronisation as each record states it (``clk``), and the
exporting software itself (its version and a hash anyone can recompute from the same release).

The appliance's system records come from each log's ``system.jsonl``, which ``ledger.evidence.verify_bundle`` checks
(signature, chain, leaf) before the report is written: a bundle whose records do not verify says so in its verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cloud
import ledger
from ledger.errors import LedgerError
from ledger.record import parse

IDENTITY = "terminal_identity"  # the incident kind the appliance signs a terminal's model, serial and firmware in
SOURCES = {"zk": "中控（ZK）考勤机，设备主动读取", "adms": "推送（ADMS）考勤机", "card": "读卡器", "r30x": "指纹模块"}
SOFTWARE_RECIPE = (
    "哈希的算法：在安装目录（site-packages）中执行 "
    "find cloud ledger -name '*.py' | LC_ALL=C sort | xargs sha256sum | sha256sum，"
    "即按路径字节序列出 cloud 与 ledger 两个包的全部 .py 文件的 sha256sum 输出，再对该输出取 SHA-256；"
    "用同一版本的安装包安装后重算，结果应相同。"
)


@dataclass(frozen=True)
class DeviceLine:
    """One terminal that recorded the employee's punches, as the appliance signed its identity."""

    terminal: str  # its name at the plant, and the appliance
    source: str
    model: str
    serial: str
    firmware: str
    first_seen: str  # when the appliance first read it, plant time
    stated: str  # which signed records say so, or that none does


def system_records(manifest: dict[str, Any], files: dict[str, bytes]) -> dict[str, list[dict[str, Any]]]:
    """Per appliance log origin: the fields of each system record the bundle discloses, in seq order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for n, entry in enumerate(manifest["logs"]):
        if entry.get("kind") == "cloud":
            continue
        records = out.setdefault(entry["log"], [])
        for line in files.get(f"logs/{n}/system.jsonl", b"").decode("utf-8", errors="replace").splitlines():
            try:
                records.append(parse(json.loads(line)["data"].encode()))
            except (ValueError, KeyError, TypeError, LedgerError):
                continue  # the verifier fails the log's disclosed records; the report's verdict says so
        records.sort(key=lambda f: f["seq"])
    return out


def _local(ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms // 1000, tz).strftime("%Y-%m-%d %H:%M")


def devices(
    manifest: dict[str, Any],
    punches: list[dict[str, Any]],
    system: dict[str, list[dict[str, Any]]],
    log_zone: dict[str, ZoneInfo],
    tz: ZoneInfo,
) -> tuple[DeviceLine, ...]:
    """Each terminal the employee's punches name or the appliance stated the identity of in the bundle's range (by
    log, terminal name and serial), with what the appliance signed about it: every identity it stated in the range,
    or a line saying no signed record states one."""
    appliances = {e["log"]: e["appliance"] for e in manifest["logs"]}
    used: dict[tuple[str, str, str], str] = {}
    for item in punches:
        fields = item["fields"]
        term = fields.get("term", {})
        used.setdefault((item["log"], str(term.get("name", "")), str(term.get("sn", ""))), str(fields.get("src", "")))
    for log, records in system.items():  # and every terminal the appliance stated in the range: for an absence,
        for f in records:  # the terminals that were recording are what the claim rests on
            term = f.get("term")
            if f.get("type") == "incident" and f.get("kind") == IDENTITY and isinstance(term, dict):
                used.setdefault((log, str(term.get("name", "")), str(term.get("sn", ""))), str(term.get("src", "")))
    lines = []
    for (log, name, sn), src in sorted(used.items()):
        zone = log_zone.get(log, tz)
        label = f"{name or sn}（{appliances.get(log, log)}）"
        stated = [
            f
            for f in system.get(log, [])
            if f.get("type") == "incident"
            and f.get("kind") == IDENTITY
            and isinstance(f.get("term"), dict)
            and (f["term"].get("sn") == sn or (not f["term"].get("sn") and f["term"].get("name") == name))
        ]
        if not stated:
            lines.append(
                DeviceLine(
                    label,
                    SOURCES.get(src, src or "未知"),
                    "未载明",
                    f"{sn}（取自打卡记录本身）" if sn else "未载明",
                    "未载明",
                    "未载明",
                    "本证据包中没有设备对该考勤机型号、序列号与固件的签名记录（设备软件早于该功能，或期间内未读取）",
                )
            )
            continue
        seen: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for f in stated:
            t = f["term"]
            seen.setdefault((str(t.get("model", "")), str(t.get("sn", "")), str(t.get("firmware", ""))), []).append(f)
        for (model, serial, firmware), records in seen.items():
            t = records[0]["term"]
            first = t.get("first_seen_ms")
            lines.append(
                DeviceLine(
                    label,
                    SOURCES.get(str(t.get("src", src)), str(t.get("src", src))),
                    model or "考勤机未报告",
                    serial or "考勤机未报告",
                    firmware or "考勤机未报告",
                    _local(first, zone) if isinstance(first, int) else "未载明",
                    f"设备签名记录：日志第 {', '.join(str(r['seq']) for r in records[:5])}"
                    + (f" 等 {len(records)} 条" if len(records) > 5 else " 条")
                    + f"（{_local(records[0]['t_wall_ms'], zone)} 起）",
                )
            )
    return tuple(lines)


def software(
    manifest: dict[str, Any], system: dict[str, list[dict[str, Any]]], log_zone: dict[str, ZoneInfo], tz: ZoneInfo
) -> tuple[str, ...]:
    """The appliance software of each log in the period, from its boot records' ``sw``."""
    lines = []
    for entry in manifest["logs"]:
        if entry.get("kind") == "cloud":
            continue
        zone = log_zone.get(entry["log"], tz)
        boots = [f for f in system.get(entry["log"], []) if f.get("type") == "boot"]
        name = f"{entry['plant']}/{entry['appliance']}"
        if not boots:
            lines.append(f"{name}：本期间内没有启动记录，设备软件版本未在本证据包中载明（设备在期间开始前已启动）")
            continue
        versions: dict[str, list[dict[str, Any]]] = {}
        for boot in boots:
            versions.setdefault(str(boot.get("sw") or "未载明"), []).append(boot)
        said = "；".join(
            f"{version}（启动于 {'、'.join(_local(b['t_wall_ms'], zone) for b in found)}，"
            f"日志第 {'、'.join(str(b['seq']) for b in found)} 条）"
            for version, found in versions.items()
        )
        lines.append(f"{name}：设备软件版本 {said}")
    return tuple(lines)


def clock_state(records: list[dict[str, Any]]) -> str:
    """What the records of one day say of the appliance clock (``clk``: ``sync``, ``err_us``), in Chinese."""
    states = [f.get("clk") for f in records]
    stated = [c for c in states if isinstance(c, dict) and "sync" in c]
    if not records:
        return ""
    if not stated:
        return "设备时钟同步状态：该日记录未载明"
    unsynced = [c for c in stated if not c.get("sync")]
    worst = max((c.get("err_us", -1) for c in stated), default=-1)
    bound = f"所报误差上限 ±{err_words(worst)}" if isinstance(worst, int) and worst >= 0 else "误差上限未知"
    missing = len(records) - len(stated)
    tail = f"；另有 {missing} 条记录未载明" if missing else ""
    if not unsynced:
        return f"设备时钟：该日 {len(stated)} 条记录均载明已与标准时间同步（{bound}）{tail}"
    if len(unsynced) == len(stated):
        return (
            f"设备时钟：该日 {len(stated)} 条记录均载明未与标准时间同步（{bound}）：设备时间只表明设备自己的时钟{tail}"
        )
    return (
        f"设备时钟：该日 {len(stated)} 条记录中有 {len(unsynced)} 条载明未与标准时间同步"
        f"（{bound}）：这些记录的设备时间只表明设备自己的时钟{tail}"
    )


def err_words(err_us: int) -> str:
    if err_us < 1000:
        return f"{err_us} 微秒"
    if err_us < 1_000_000:
        return f"{err_us // 1000} 毫秒"
    return f"{err_us / 1_000_000:g} 秒"


def exporter() -> tuple[str, str]:
    """The exporting software: (its version, the SHA-256 of its ``cloud`` and ``ledger`` packages' .py files, as
    ``SOFTWARE_RECIPE`` says to recompute it). Read at each export (a few milliseconds): the files as installed now."""
    try:
        version = metadata.version("punchproof")
    except metadata.PackageNotFoundError:
        version = "未安装为软件包（版本未知）"
    return version, source_hash([Path(cloud.__file__).parent, Path(ledger.__file__).parent])


def source_hash(packages: list[Path]) -> str:
    """``find <packages> -name '*.py' | LC_ALL=C sort | xargs sha256sum | sha256sum``, run in their parent folder."""
    names = sorted(
        (str(path.relative_to(package.parent)), path) for package in packages for path in package.rglob("*.py")
    )
    names.sort(key=lambda item: item[0].encode())
    listing = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n" for name, path in names)
    return hashlib.sha256(listing.encode()).hexdigest()
