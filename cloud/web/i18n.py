"""Chinese first, English second: every visible string of head office's pages."""

from __future__ import annotations

from flask import g

LANGUAGES = ("zh", "en")
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("Punchproof 总部", "Punchproof head office"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码不正确，请重试。", "Wrong user name or password; please try again."),
    "plants": ("工厂与考勤终端", "Plants and appliances"),
    "plant": ("工厂", "Plant"),
    "appliance": ("边缘设备", "Appliance"),
    "status": ("状态", "Status"),
    "status_online": ("在线", "online"),
    "status_offline": ("离线", "offline"),
    "status_unknown": ("未知", "unknown"),
    "head": ("已验证日志", "Verified log"),
    "last_batch": ("最后同步", "Last sync"),
    "provisional": ("待入链（实时通道，签名已验）", "Ahead of the chain (live lane, signature checked)"),
    "terminals": ("考勤机", "Terminals"),
    "terminal_up": ("正常", "up"),
    "terminal_down": ("离线", "down"),
    "config_latest": ("最新配置", "Latest configuration"),
    "config_applied": ("已应用配置", "Applied configuration"),
    "config_applied_at": ("应用时间", "Applied at"),
    "config_unpublished": ("未发布", "not published"),
    "config_rejected": ("设备拒绝", "refused"),
    "punches": ("最新打卡（已验证签名）", "Latest punches (signatures verified)"),
    "time": ("打卡时间", "Punch time"),
    "employee": ("工号", "Employee"),
    "terminal": ("考勤机", "Terminal"),
    "direction": ("上/下班", "In/out"),
    "received": ("云端接收", "Received"),
    "state_0": ("上班", "in"),
    "state_1": ("下班", "out"),
    "state_other": ("未知", "unknown"),
    "no_punches": ("还没有收到打卡记录。", "No punches received yet."),
    "quarantine": ("被隔离的消息（验证失败）", "Quarantined messages (failed verification)"),
    "reason": ("原因", "Reason"),
    "none": ("无", "none"),
    "language": ("English", "中文"),
}


def pick(wanted: str | None) -> str:
    return wanted if wanted in LANGUAGES else "zh"


def translate(key: str) -> str:
    zh, en = MESSAGES.get(key, (key, key))
    return en if getattr(g, "lang", "zh") == "en" else zh
