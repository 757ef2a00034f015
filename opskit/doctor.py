"""What both sides' ``doctor`` print: one finding per check, what to do for each failure.

Each line is ``[ OK ]``, ``[WARN]`` or ``[FAIL]`` with the check's name and what it saw; a warning or a
failure is followed by what to do, in Chinese first, then English. The exit code is 1 while any
check fails. The checks themselves are each side's (``appliance.doctor``, ``cloud.doctor``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

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


def report(findings: list[Finding]) -> tuple[str, int]:
    """The text to print and the exit code: 1 if any check failed."""
    lines = [line for finding in findings for line in finding.lines()]
    failed = [f for f in findings if f.status == FAIL]
    lines.append(f"{len(failed)} 项失败 / {len(failed)} check(s) failed" if failed else "全部正常 / every check passed")
    return "\n".join(lines), 1 if failed else 0
