"""Chinese first, English second: every visible string of the appliance's pages."""

from __future__ import annotations

from flask import g

LANGUAGES = ("zh", "en")
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("Punchproof 考勤", "Punchproof attendance"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码不正确，请重试。", "Wrong user name or password; please try again."),
    "bad_form": ("页面已过期，请重新提交。", "The page expired; please submit it again."),
    "board": ("今日打卡", "Today's punches"),
    "time": ("时间", "Time"),
    "employee": ("工号", "Employee"),
    "terminal": ("考勤机", "Terminal"),
    "state": ("状态", "State"),
    "seq": ("日志序号", "Log seq"),
    "terminals": ("考勤机状态", "Terminals"),
    "available": ("在线", "online"),
    "unavailable": ("离线", "offline"),
    "never": ("从未连接", "never reached"),
    "last_contact": ("最后通信", "Last contact"),
    "clock_offset": ("时钟偏差", "Clock offset"),
    "capacity": ("剩余容量", "Records left"),
    "error": ("错误", "Error"),
    "sync": ("云端同步", "Cloud sync"),
    "broker": ("消息服务器", "Broker"),
    "connected": ("已连接", "connected"),
    "disconnected": ("未连接", "not connected"),
    "log_head": ("本地日志", "Local log"),
    "acked": ("云端已确认", "Confirmed by the cloud"),
    "backlog": ("待同步", "Waiting to sync"),
    "oldest_unsynced": ("最早未同步", "Oldest unsynced"),
    "no_punches": ("今天还没有打卡记录。", "No punches yet today."),
    "state_0": ("上班", "in"),
    "state_1": ("下班", "out"),
    "state_other": ("未知", "unknown"),
    "records": ("条", "records"),
    "language": ("English", "中文"),
    "seconds": ("秒", "s"),
}


def pick(wanted: str | None) -> str:
    return wanted if wanted in LANGUAGES else "zh"


def translate(key: str) -> str:
    zh, en = MESSAGES.get(key, (key, key))
    return en if getattr(g, "lang", "zh") == "en" else zh
