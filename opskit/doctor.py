"""What both sides' ``doctor`` print: one finding per check, what to do for each failure.

Each line is ``[ OK ]``, ``[WARN]`` or ``[FAIL]`` with the check's name and what it saw; a warning or a
failure is followed by what to do, in Chinese first, then English. The exit code is 1 while any
check fails. The checks themselves are each side's (``appliance.admin.doctor``, ``cloud.admin.doctor``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    name: str  # "时钟 clock"
    status: str  # ok | warn | fail
    detail: str
    fix_zh: str = ""
    fix_en: str = ""

    def lines(self) -> list[str]:
        mark = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]"}[self.status]
        out = [f"{mark} {self.name}: {self.detail}"]
        if self.status != OK:
            out += [f"       处理：{self.fix_zh}", f"       Fix: {self.fix_en}"]
        return out


def run_command(argv: list[str]) -> str | None:
    """A command's standard output, or None when it is missing or fails (the check then says so)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def check_disk(path: Path, min_free_bytes: int, fix_zh: str, fix_en: str) -> Finding:
    """Free space where ``path`` is (or would be: its nearest existing parent), against ``min_free_bytes``."""
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    detail = f"{usage.free // 2**20} MB free of {usage.total // 2**20} MB on {path}"
    if usage.free < min_free_bytes:
        return Finding("磁盘空间 disk", FAIL, f"{detail} (needs {min_free_bytes // 2**20} MB)", fix_zh, fix_en)
    return Finding("磁盘空间 disk", OK, detail)


def broker_finding(host: str, port: int, error: str | None, fix_zh: str, fix_en: str) -> Finding:
    """The finding for a broker probe (``opskit.mqttprobe.probe_broker``) that answered ``error``."""
    name = "消息服务器 broker"
    if error is None:
        return Finding(name, OK, f"MQTT CONNECT accepted by {host}:{port}")
    return Finding(name, FAIL, f"{host}:{port}: {error}", fix_zh, fix_en)


def report(findings: list[Finding]) -> tuple[str, int]:
    """The text to print and the exit code: 1 if any check failed."""
    lines = [line for finding in findings for line in finding.lines()]
    failed = [f for f in findings if f.status == FAIL]
    lines.append(f"{len(failed)} 项失败 / {len(failed)} check(s) failed" if failed else "全部正常 / every check passed")
    return "\n".join(lines), 1 if failed else 0
