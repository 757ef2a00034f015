"""Every decision's reason, in zh-CN and in English, from the figures the decision used.

A reason names the rule's inputs so that a plant manager (or an arbitrator) can check it by hand:
"迟到 17 分钟：班次 08:00，宽限 5 分钟，首次打卡 08:22 于 2 号机". Times are the plant's local
times; a time on another date than the shift's own says so (次日 / +1d).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from appliance.rules.model import Punch

Text = tuple[str, str]  # (zh, en)


@dataclass(frozen=True, slots=True)
class Wording:
    tz: ZoneInfo
    work_date: date
    terminal_names: Mapping[str, str]

    def time(self, at: datetime) -> Text:
        local = at.astimezone(self.tz)
        hhmm = f"{local.hour:02d}:{local.minute:02d}"
        shift = (local.date() - self.work_date).days
        if shift == 0:
            return hhmm, hhmm
        if shift == 1:
            return f"{hhmm}（次日）", f"{hhmm} (+1d)"
        if shift == -1:
            return f"{hhmm}（前日）", f"{hhmm} (-1d)"
        stamp = f"{local.month:02d}-{local.day:02d} {hhmm}"
        return stamp, stamp

    def terminal(self, punch: Punch) -> Text:
        if punch.source == "correction":
            return "补卡", "correction"
        name = self.terminal_names.get(punch.terminal, punch.terminal)
        return name, name

    def punch(self, punch: Punch) -> Text:
        (tz, te), (nz, ne) = self.time(punch.at), self.terminal(punch)
        return f"{tz} 于 {nz}", f"{te} at {ne}"


def minutes(span: timedelta) -> int:
    return span // timedelta(minutes=1)


def join(parts: list[Text]) -> Text:
    return "；".join(p[0] for p in parts if p[0]), "; ".join(p[1] for p in parts if p[1])


def late(w: Wording, late_min: int, start: datetime, grace: timedelta, punch: Punch, first: bool) -> Text:
    (sz, se), (pz, pe) = w.time(start), w.punch(punch)
    which_zh, which_en = ("首次打卡", "first punch") if first else ("打卡", "punch")
    return (
        f"迟到 {late_min} 分钟：班次 {sz}，宽限 {minutes(grace)} 分钟，{which_zh} {pz}",
        f"Late {late_min} min: shift {se}, grace {minutes(grace)} min, {which_en} {pe}",
    )


def early(w: Wording, early_min: int, end: datetime, grace: timedelta, punch: Punch) -> Text:
    (ez, ee), (pz, pe) = w.time(end), w.punch(punch)
    return (
        f"早退 {early_min} 分钟：班次 {ez} 下班，宽限 {minutes(grace)} 分钟，末次打卡 {pz}",
        f"Left {early_min} min early: shift ends {ee}, grace {minutes(grace)} min, last punch {pe}",
    )


def missing_in(w: Wording, start: datetime) -> Text:
    sz, se = w.time(start)
    return f"缺上班卡：班次 {sz}", f"No check-in: shift {se}"


def missing_out(w: Wording, end: datetime) -> Text:
    ez, ee = w.time(end)
    return f"缺下班卡：班次 {ez} 下班", f"No check-out: shift ends {ee}"


def present(w: Wording, start: datetime, end: datetime, check_in: Punch | None, check_out: Punch | None) -> Text:
    (sz, se), (ez, ee) = w.time(start), w.time(end)
    zh, en = [f"正常：班次 {sz}–{ez}"], [f"Present: shift {se}–{ee}"]
    if check_in is not None:
        pz, pe = w.punch(check_in)
        zh.append(f"上班打卡 {pz}")
        en.append(f"in {pe}")
    if check_out is not None:
        pz, pe = w.punch(check_out)
        zh.append(f"下班打卡 {pz}")
        en.append(f"out {pe}")
    return "，".join(zh), ", ".join(en)


def no_punch(w: Wording, start: datetime, end: datetime, grace: timedelta, now: datetime, final: bool) -> Text:
    """Without the time of the evaluation: a reason that changed every minute would rewrite every
    missing worker's row each minute; the page says when the board was evaluated."""
    (sz, se), (ez, ee) = w.time(start), w.time(end)
    if final:
        return f"缺勤：班次 {sz}–{ez} 无打卡", f"Absent: no punch for shift {se}–{ee}"
    if now >= end:
        return f"未打卡（暂定）：班次 {sz}–{ez} 无打卡", f"No punch (tentative): none for shift {se}–{ee}"
    return (
        f"未打卡（暂定）：班次 {sz}，宽限 {minutes(grace)} 分钟，至今无打卡",
        f"No punch yet (tentative): shift {se}, grace {minutes(grace)} min, none so far",
    )


def uncovered(w: Wording, start: datetime, unwatched: list[tuple[str, datetime | None]]) -> Text:
    """No punch on a shift the appliance did not record from its start: said as what it is, never 缺勤."""
    sz, se = w.time(start)
    parts: list[Text] = []
    for sn, since in unwatched:
        name = w.terminal_names.get(sn, sn)
        if since is None:
            parts.append((f"{name}尚未读取", f"{name} never read yet"))
        else:
            stamp = since.astimezone(w.tz).strftime("%Y-%m-%d %H:%M")  # often another day: the date in full
            parts.append(
                (f"{name} 自 {stamp} 起才由本设备记录", f"{name} recorded by this appliance only from {stamp}")
            )
    zh, en = join(parts)
    return (
        f"未覆盖：班次 {sz} 开始时本设备尚未记录（{zh}），无打卡不能据此认定缺勤",
        f"Not covered: this appliance was not recording when shift {se} began ({en}); no punch proves no absence",
    )


def upcoming(w: Wording, start: datetime) -> Text:
    sz, se = w.time(start)
    return f"待打卡：班次 {sz}", f"Awaiting check-in: shift {se}"


def excused(w: Wording, kind: str, label: str, start: datetime, end: datetime) -> Text:
    (sz, se), (ez, ee) = w.time(start), w.time(end)
    if kind == "trip":
        return f"出差（{label}）：{sz} 至 {ez}", f"Business trip ({label}): {se} to {ee}"
    return f"请假（{label}）：{sz} 至 {ez}", f"On leave ({label}): {se} to {ee}"


def partly_excused(w: Wording, start: datetime | None, end: datetime | None) -> Text:
    parts: list[Text] = []
    if start is not None:
        sz, se = w.time(start)
        parts.append((f"假期至 {sz}，按 {sz} 起计", f"leave until {se}, counted from {se}"))
    if end is not None:
        ez, ee = w.time(end)
        parts.append((f"假期自 {ez} 起，按 {ez} 止计", f"leave from {ee}, counted until {ee}"))
    return join(parts)


def day_off(kind: str, name_zh: str, name_en: str) -> Text:
    if kind == "holiday":
        return f"法定节假日：{name_zh}" if name_zh else "节假日", f"Public holiday: {name_en}" if name_en else "Holiday"
    if kind == "rest_day":
        return "休息日：排班无班次", "Rest day: no shift in the roster"
    return "未排班", "Not scheduled"


def makeup_day(name_zh: str, name_en: str) -> Text:
    return f"调休上班日（{name_zh}）", f"Make-up working day ({name_en})"


def holiday_worked(name_zh: str, name_en: str) -> Text:
    return f"节假日照常排班（{name_zh}）", f"Holiday, scheduled all the same ({name_en})"


def calendar_provisional(year: int) -> Text:
    """A day of a year nobody has published: judged by the roster's own week, no holidays, no 调休."""
    return (
        f"临时日历（{year} 年节假日安排尚未发布）",
        f"Provisional calendar ({year} public holidays not yet published)",
    )


def watched(w: Wording, kind: str, ref: str, ended: datetime) -> Text:
    ez, ee = w.time(ended)
    what_zh, what_en = ("出差", "trip") if kind == "trip" else ("假期", "leave")
    return (
        f"{what_zh}结束后首个班次（{ref} 于 {ez} 结束），重点关注",
        f"First shift after {what_en} {ref} ended {ee}: watched",
    )


def mismatched(w: Wording, punch: Punch, taken_as_in: bool) -> Text:
    tz, te = w.time(punch.at)
    said_zh, said_en = ("下班", "out") if taken_as_in else ("上班", "in")
    role_zh, role_en = ("上班", "in") if taken_as_in else ("下班", "out")
    return f"{tz} 记录为{said_zh}，按时间视为{role_zh}", f"{te} recorded as {said_en}, taken as {role_en} by time"


def corrections(w: Wording, entries: list[tuple[Punch, str, str]]) -> Text:
    parts = []
    for punch, by, why in entries:
        tz, te = w.time(punch.at)
        parts.append((f"补卡 {tz}（{by}：{why}）", f"correction {te} (by {by}: {why})"))
    return join(parts)


def counted(count: int, zh: str, en: str) -> Text:
    return (zh.format(n=count), en.format(n=count)) if count else ("", "")


def held(w: Wording, behind: list[tuple[str, datetime | None]]) -> Text:
    """Why a result is not final."""
    parts: list[Text] = []
    for sn, mark in behind:
        name = w.terminal_names.get(sn, sn)
        if mark is None:
            parts.append((f"{name}未曾读取，未确认", f"{name} never read, not confirmed"))
        else:
            lz, le = w.time(mark)
            parts.append((f"{name}仅读取至 {lz}，未确认", f"{name} read only up to {le}, not confirmed"))
    return join(parts)


def no_terminal() -> Text:
    return "本班次无考勤机，未确认", "No terminal serves this shift: not confirmed"


def confirmed(w: Wording, moment: datetime) -> Text:
    mz, me = w.time(moment)
    return f"所有考勤机已读取至 {mz} 之后", f"every terminal read past {me}"
