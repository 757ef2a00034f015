"""Chinese first, English second: every visible string of the appliance's pages."""

from __future__ import annotations

from collections.abc import Callable

from flask import g

LANGUAGES = ("zh", "en")
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("Punchproof 考勤", "Punchproof attendance"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码不正确，请重试。", "Wrong user name or password; please try again."),
    "throttled": (
        "登录失败次数过多，请 {wait} 秒后再试。",
        "Too many failed sign-ins: try again in {wait} seconds.",
    ),
    "bad_form": ("页面已过期，请重新提交。", "The page expired; please submit it again."),
    "board": ("今日打卡", "Today's punches"),
    "time": ("时间", "Time"),
    "employee": ("工号", "Employee"),
    "terminal": ("考勤机", "Terminal"),
    "state": ("状态", "State"),
    "seq": ("日志序号", "Log seq"),
    "seq_n": ("第 %s 条", "record %s"),
    "serial": ("序列号", "Serial"),
    "tech_detail": ("技术信息（供信息部门排查）", "Technical detail (for IT)"),
    # the banners at the top of the board: what is wrong, what it means for the punches, what to do
    "banner_terminal_offline": (
        "考勤机“%s”离线（最后通信 %s）：新打卡暂时读不到，但保存在考勤机上，恢复连接后自动补读，"
        "看板上的“缺勤”可能并非缺勤。请检查考勤机的电源和网线。",
        "Terminal '%s' is offline (last contact %s): new punches cannot be read for now; they stay on the "
        "terminal and are read once it is back, so 'missing' on this board may not be an absence. "
        "Check the terminal's power and network cable.",
    ),
    "banner_uplink_down": (
        "与总部的同步已中断：%d 条记录等待上传（最早 %s）。打卡照常记录并签名保存在本机，恢复连接后自动补传。"
        "请检查本机的网络；持续中断请联系信息部门。",
        "Sync with head office has stopped: %d record(s) waiting to be sent (oldest %s). Punches are still "
        "recorded and signed here, and sent once the connection is back. Check this appliance's network; "
        "call IT if it lasts.",
    ),
    "banner_uplink_never": (
        "尚未连接总部：打卡照常记录并签名保存在本机，连接后自动上传。请检查网络设置，或联系信息部门。",
        "Not connected to head office yet: punches are recorded and signed here, and sent once connected. "
        "Check the network settings, or call IT.",
    ),
    "terminals": ("考勤机状态", "Terminals"),
    "available": ("在线", "online"),
    "unavailable": ("离线", "offline"),
    "live_events": ("实时推送", "live events"),
    "live_events_since": ("实时推送开始于", "live events since"),
    "never": ("从未连接", "never reached"),
    "last_contact": ("最后通信", "Last contact"),
    "clock_offset": ("时钟偏差", "Clock offset"),
    "capacity": ("剩余容量", "Records left"),
    # the terminals table: the terminal's own record count against the punches stored from it
    "log_counts": ("终端记录数 / 已保存打卡", "Terminal's records / punches stored"),
    "count_includes": ("含 ", "includes "),
    "count_sep": ("、", ", "),
    "count_dup": (
        "%d 条同一秒重复按压（合并为一条）",
        "%d repeated press(es) in the same second (stored as one punch)",
    ),
    "count_bad": ("%d 条无效记录（已记为异常）", "%d invalid record(s) (kept as incidents)"),
    "count_uncounted": ("%d 条在本设备开始分项统计前已读取", "%d read before this appliance began counting them"),
    "count_unread": ("%d 条尚未读取", "%d not read yet"),
    "count_since": (
        "%s 起的记录（考勤机记录曾被清除或更换）",
        "records since %s (the terminal's log was cleared or replaced)",
    ),
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
    "unregistered": ("未登记", "not registered"),
    "records": ("条", "records"),
    "language": ("English", "中文"),
    "seconds": ("秒", "s"),
    # the live board
    "live_board": ("今日考勤", "Today's attendance"),
    "recent_punches": ("最近打卡", "Recent punches"),
    "date": ("日期", "Date"),
    "shift": ("班次", "Shift"),
    "line": ("产线", "Line"),
    "name": ("姓名", "Name"),
    "status": ("状态", "Status"),
    "reason": ("原因", "Reason"),
    "check_in": ("上班打卡", "Check-in"),
    "check_out": ("下班打卡", "Check-out"),
    "search": ("搜索", "Search"),
    "search_hint": ("工号或姓名", "badge or name"),
    "all": ("全部", "All"),
    "cat_present": ("出勤", "Present"),
    "cat_late": ("迟到", "Late"),
    "cat_missing": ("缺勤", "Missing"),
    "cat_leave": ("请假/出差", "On leave / trip"),
    "cat_off": ("未排班/休息", "Not scheduled / off"),
    "cat_upcoming": ("未到上班时间", "Not due yet"),
    "cat_overdue": ("未打卡（进行中）", "Not punched in (shift begun)"),
    "cat_uncovered": ("未覆盖（设备尚未记录）", "Not covered (not yet recorded)"),
    "st_present": ("出勤", "present"),
    "st_late": ("迟到", "late"),
    "st_left_early": ("早退", "left early"),
    "st_incomplete": ("缺卡", "punch missing"),
    "st_missing": ("缺勤", "missing"),
    "st_uncovered": ("未覆盖", "not covered"),
    "st_on_leave": ("请假", "on leave"),
    "st_business_trip": ("出差", "business trip"),
    "st_rest_day": ("休息日", "rest day"),
    "st_holiday": ("节假日", "public holiday"),
    "st_not_scheduled": ("未排班", "not scheduled"),
    "st_upcoming": ("未到时间", "not due yet"),
    "st_overdue": ("未打卡（进行中）", "not punched in (shift begun)"),
    "tier_tentative": ("待确认", "tentative"),
    "tier_confirmed": ("已确认", "confirmed"),
    "tier_open": ("进行中", "open"),
    "tier_held": ("等待考勤机数据", "held: terminal behind"),
    "tier_confirmed_fact": ("已确认并签名", "confirmed and signed"),
    "no_rows": (
        "没有符合条件的记录。请确认已导入花名册（punchproof appliance import-roster）。",
        "Nothing matches. Has the roster been imported (punchproof appliance import-roster)?",
    ),
    "page_prev": ("上一页", "Previous"),
    "page_next": ("下一页", "Next"),
    "page_rows": ("第 %d–%d 条，共 %d 条", "Rows %d–%d of %d"),
    "page_hint": (
        "点击上方的人数只看缺勤或迟到，或按班次、产线、工号筛选。",
        "Click a count above to see only the missing or the late, or filter by shift, line or badge.",
    ),
    "evaluated_at": ("考勤计算于", "Evaluated at"),
    "evaluator_error": (
        "部分考勤未能计算（详见下方技术信息）。多为花名册或排班数据有误，如员工的排班规则不存在："
        "请改正后重新导入；仍有问题请联系信息部门。",
        "Some attendance could not be worked out (detail below). Mostly the roster or schedule has an error, "
        "such as an employee's roster that does not exist: correct it and import it again; call IT if it stays.",
    ),
    "no_shift": ("无班次", "no shift"),
    "open_yesterday": ("昨日未结束的班次", "Yesterday's shifts not yet final"),
    "export": ("导出", "Export"),
    "export_day": ("导出当日", "Export the day"),
    "export_month": ("导出当月", "Export the month"),
    "minutes": ("分钟", "min"),
    # a person's day
    "person_day": ("个人考勤", "Attendance of"),
    "punches": ("打卡记录", "Punches"),
    "device_time": ("考勤机时间", "Terminal's time"),
    "offset_at_read": ("读取时时钟偏差", "Clock offset at read"),
    "reasoning": ("判定依据", "Reasoning"),
    "actions": ("现场处理", "Actions"),
    "act_seen_on_line": ("已在产线看到", "Seen on the line"),
    "act_terminal_fault": ("考勤机故障", "Terminal fault"),
    "act_sent_home": ("已让其回家", "Sent home"),
    "act_contacted": ("已联系", "Contacted"),
    "act_on_leave": ("请假", "On leave"),
    # missed check-in alerts on the board (appliance.attendance.alerts)
    "alerts": ("未打卡预警", "Missed check-in alerts"),
    "alert_head": ("%s（%s）%d 人未打卡，", "%s (%s): %d not checked in; "),
    "alert_sent": ("已通知主管和人事", "the line manager and HR are told"),
    "alert_sending": ("正在通知主管和人事", "telling the line manager and HR"),
    "alert_queued": ("外网中断，恢复后发送", "the internet is down: sent when it returns"),
    "alert_raised": ("预警时间", "raised at"),
    "no_line": ("未分产线", "no line"),
    "act_reason": ("说明（必填）", "Reason (required)"),
    "act_submit": ("记录", "Record"),
    "act_pending": ("等待签名", "waiting to be signed"),
    "act_signed": ("已签名，日志序号", "signed, log seq"),
    "act_needs_reason": ("请填写说明。", "Please give a reason."),
    "act_refused_kind": ("没有这种处理方式。", "There is no such action."),
    "act_refused_role": (
        "您的账号不能记录这种处理（“已让其回家”须由厂长或管理员记录）。",
        "Your account may not record this action ('sent home' is for a plant manager or admin).",
    ),
    "act_refused_date": ("日期无效，未记录。", "Not a valid date: nothing was recorded."),
    "act_refused_future": ("不能为尚未到来的日期记录处理。", "An action cannot be recorded for a day still to come."),
    "act_refused_old": (
        "超过 31 天的日期不能在现场记录，请联系总部人事补录。",
        "A day more than 31 days ago cannot be recorded here; ask head office HR to correct it.",
    ),
    "act_refused_not_employed": (
        "该员工当天不在职，未记录。",
        "This worker was not employed on that day: nothing was recorded.",
    ),
    "act_refused_shift": ("当天没有这个班次，未记录。", "There is no such shift that day: nothing was recorded."),
    "by_user": ("记录人", "By"),
    "fact": ("已签名的日结论", "Signed day fact"),
    "back": ("返回看板", "Back to the board"),
    "unknown_person": ("花名册中没有此工号。", "This badge is not in the roster."),
    # the kiosk
    "kiosk": ("打卡确认", "Punch confirmation"),
    "kiosk_wait": ("请打卡", "Please punch"),
    "kiosk_offline": ("连接中断，正在重试…", "Connection lost, retrying…"),
    "kiosk_terminal_offline": (
        "考勤机暂时离线：您的打卡已保存在考勤机上，稍后显示，请照常打卡。",
        "The time clock is offline for now: your punch is kept on it and shows later; punch as usual.",
    ),
    "disk_low": (
        "存储空间不足：仅剩 %s MB。新打卡暂时无法保存，但仍保留在考勤机上，腾出空间后会自动补读。"
        "请联系 IT 运行 punchproof appliance doctor。",
        "Storage almost full: %s MB left. New punches cannot be stored for now; they stay on the terminals "
        "and are read again once space is freed. Ask IT to run punchproof appliance doctor.",
    ),
    "export_failed": (
        "导出失败：设备存储空间已满（或临时目录无法写入），无法生成 XLSX 文件。请改为导出 CSV（不占用存储空间），"
        "或请 IT 腾出空间（df -h；journalctl --vacuum-size=100M）并运行 punchproof appliance doctor，然后重试。",
        "Export failed: the appliance's storage is full (or its temporary directory cannot be written), so the XLSX "
        "file cannot be made. Export CSV instead (it needs no space), or ask IT to free space (df -h; "
        "journalctl --vacuum-size=100M) and run punchproof appliance doctor, then try again.",
    ),
}


def pick(wanted: str | None) -> str:
    return wanted if wanted in LANGUAGES else "zh"


def both(key: str, *args: object) -> tuple[str, str]:
    """The message in Chinese and in English (a banner says both: Chinese first, English second)."""
    zh, en = MESSAGES[key]
    return (zh % args, en % args) if args else (zh, en)


def translate(key: str) -> str:
    zh, en = MESSAGES.get(key, (key, key))
    return en if getattr(g, "lang", "zh") == "en" else zh


_BY_LANGUAGE = {lang: {key: texts[n] for key, texts in MESSAGES.items()} for n, lang in enumerate(LANGUAGES)}


def translator(lang: str) -> Callable[[str], str]:
    """``translate`` for one language, chosen once: a page of 500 board rows asks for some 1,500 words, and
    looking up the request's language each time cost more than the words."""
    table = _BY_LANGUAGE.get(lang, _BY_LANGUAGE["zh"])

    def t(key: str) -> str:
        return table.get(key, key)

    return t
