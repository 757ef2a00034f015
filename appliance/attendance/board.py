"""The board table: the latest evaluation of every employee's day, as the pages show it.

One status is the board's own: ``overdue`` (未打卡（进行中）). The rules call a shift with no punch
``upcoming`` until ``tentative_after`` past its start plus grace, when it becomes a tentative miss; for
the plant manager at 08:10, though, a worker whose 08:00 shift (5 minutes' grace) began and who has
not punched is not "not due yet" like the 09:00 shift: he is overdue, and the board says so from the
start plus grace (``overdue_from``). Nothing is signed from it: the day facts come from the rules.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from appliance.clock import to_ms
from appliance.roster.store import Person
from appliance.rules import Evaluation, Plant, Status
from appliance.store import CHANGED, BoardRow

KEEP_DAYS = 100  # rows older than this are dropped; the day facts in the log stay
OVERDUE = "overdue"  # the board's status for a shift begun (plus grace) with no punch, not yet a tentative miss


def _ms(at: object) -> int | None:
    return None if at is None else to_ms(at)  # type: ignore[arg-type]


CONTENT = (
    "work_date", "employee", "shift", "name", "line", "shift_name", "status", "tier", "missing_tier", "late_min",
    "early_min", "missed", "start_ms", "end_ms", "late_grace_s", "in_ms", "out_ms", "n_punches", "held_by", "excusal",
    "watch", "reason_zh", "reason_en", "fact_seq",
)  # fmt: skip


def overdue_from(ev: Evaluation, plant: Plant) -> datetime | None:
    """When a shift with no punch yet turns from not due (``upcoming``) to overdue on the board: its
    first expected check-in plus the shift's grace; None for any other result."""
    shift = plant.shifts.get(ev.shift_id)
    if ev.status is not Status.UPCOMING or shift is None:
        return None
    expected = next((s.expected_in for s in ev.segments if s.expected_in is not None), ev.start)
    return None if expected is None else expected + shift.late_grace


def _overdue_reason(ev: Evaluation, plant: Plant, since: datetime) -> tuple[str, str]:
    """The reason of an overdue row: the rules' (待打卡：班次 08:00; and any notes), its first part
    replaced by what is late and when it becomes a tentative miss."""
    shift = plant.shifts[ev.shift_id]
    start = (since - shift.late_grace).astimezone(plant.tz).strftime("%H:%M")
    missing_at = (since + plant.policy.tentative_after).astimezone(plant.tz).strftime("%H:%M")
    grace = int(shift.late_grace.total_seconds() // 60)
    zh = f"未打卡（进行中）：班次 {start} 已开始，宽限 {grace} 分钟已过，至今无打卡；{missing_at} 起记为缺勤（待确认）"
    en = f"No punch yet: shift {start} began, grace {grace} min passed; tentatively missing from {missing_at}"
    rest_zh, rest_en = ev.reason_zh.partition("；")[2], ev.reason_en.partition("; ")[2]
    return (f"{zh}；{rest_zh}" if rest_zh else zh), (f"{en}; {rest_en}" if rest_en else en)


def row(ev: Evaluation, plant: Plant, person: Person | None, fact_seq: int | None) -> dict[str, object]:
    shift = plant.shifts.get(ev.shift_id)
    since = overdue_from(ev, plant)
    overdue = since is not None and ev.as_of >= since
    reason_zh, reason_en = _overdue_reason(ev, plant, since) if overdue and since else (ev.reason_zh, ev.reason_en)
    first_in = next((s.check_in for s in ev.segments if s.check_in is not None), None)
    last_out = next((s.check_out for s in reversed(ev.segments) if s.check_out is not None), None)
    if not ev.segments and ev.punches:  # a day off with punches: show the first and the last
        first_in, last_out = ev.punches[0], (ev.punches[-1] if len(ev.punches) > 1 else None)
    return {
        "work_date": ev.work_date.isoformat(),
        "employee": ev.employee,
        "shift": ev.shift_id,
        "name": person.name if person else "",
        "line": person.line if person else "",
        "shift_name": shift.name if shift else "",
        "status": OVERDUE if overdue else ev.status.value,
        "tier": ev.confirmation.value,
        "missing_tier": ev.missing_tier,
        "late_min": ev.late_min,
        "early_min": ev.early_min,
        "missed": ev.missed_punches,
        "start_ms": _ms(ev.start),
        "end_ms": _ms(ev.end),
        "late_grace_s": int(shift.late_grace.total_seconds()) if shift else 0,
        "in_ms": _ms(first_in.at) if first_in else None,
        "out_ms": _ms(last_out.at) if last_out else None,
        "n_punches": len(ev.punches),
        "held_by": ",".join(ev.held_by),
        "excusal": ev.excusal,
        "watch": ev.watch,
        "reason_zh": reason_zh,
        "reason_en": reason_en,
        "fact_seq": fact_seq,
        "as_of_ms": to_ms(ev.as_of),
    }


def replace_day(
    work_date: str,
    evaluations: Iterable[Evaluation],
    plant: Plant,
    people: Mapping[str, Person],
    fact_seqs: Mapping[str, int],
    employees: Collection[str] | None = None,
    *,
    after: str | None = None,
    upto: str | None = None,
) -> int:
    """Make the day's rows these, in one transaction (a page never sees half of it); return how many
    rows changed. With ``employees``, the evaluations are those employees' only: the other rows of
    the day are left as they are. With ``after`` or ``upto`` (a slice of a full pass), they are those
    of every employee whose id is after ``after`` and up to ``upto``: the rows of that range not among
    them are deleted (a removed employee), the rest of the day is left as it is.

    Only rows whose content changed are written: a pass over 5,000 workers usually changes a handful,
    and the write lock it takes is the one the punches' group commit waits for. ``as_of_ms`` is the
    evaluation that last changed the row.

    Memory: each side of the comparison is one tuple per row, and the stored rows are streamed from
    the cursor. Two dicts per worker (5,000 stored, 5,000 new) were most of a pass's peak, which the
    daemon's resident size keeps. The writes are one prepared statement each (``executemany``):
    building them with peewee cost more than the rest of a punch's evaluation.
    """
    fresh: dict[tuple[object, object], tuple[tuple[object, ...], object]] = {}
    for ev in evaluations:
        values = row(ev, plant, people.get(ev.employee), fact_seqs.get(f"{ev.employee}/{work_date}/{ev.shift_id}"))
        fresh[(ev.employee, ev.shift_id)] = (_content(values), values["as_of_ms"])
    stored = BoardRow.select(*(getattr(BoardRow, name) for name in CONTENT)).where(BoardRow.work_date == work_date)
    if employees is not None:
        stored = stored.where(BoardRow.employee.in_(list(employees)))
    if after is not None:
        stored = stored.where(BoardRow.employee > after)
    if upto is not None:
        stored = stored.where(BoardRow.employee <= upto)
    same: set[tuple[object, object]] = set()
    gone: list[tuple[object, object]] = []
    for content in stored.tuples().iterator():
        key = (content[_EMPLOYEE], content[_SHIFT])
        new = fresh.get(key)
        if new is None:
            gone.append(key)
        elif new[0] == content:
            same.add(key)
    changed = [key for key in fresh if key not in same]
    if not changed and not gone:
        return 0
    db = BoardRow._meta.database
    with db.atomic():
        cursor = db.cursor()
        cursor.executemany(_DELETE, ((work_date, employee, shift) for employee, shift in gone))
        cursor.executemany(_REPLACE, ((*fresh[key][0], fresh[key][1]) for key in changed))
    return len(changed) + len(gone)


_EMPLOYEE, _SHIFT = CONTENT.index("employee"), CONTENT.index("shift")


def _content(values: Mapping[str, object]) -> tuple[object, ...]:
    """What a page shows of a row: everything but when it was computed."""
    return tuple(values[name] for name in CONTENT)


_TABLE = BoardRow._meta.table_name
_COLUMNS = (*CONTENT, "as_of_ms")
_REPLACE = (
    f"INSERT OR REPLACE INTO {_TABLE} ({', '.join(_COLUMNS)}, changed) VALUES ({', '.join('?' * len(_COLUMNS))}, "
    f"{CHANGED})"
)
_DELETE = f"DELETE FROM {_TABLE} WHERE work_date = ? AND employee = ? AND shift = ?"


def prune(before: str) -> int:
    return BoardRow.delete().where(BoardRow.work_date < before).execute()
