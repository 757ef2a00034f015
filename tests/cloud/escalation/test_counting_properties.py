"""Issue 19 item 7, as a property: over any mixture of absent, excused (a leave fact, approved leave, a
补卡, HR's resolution on a case) and attended working days, a case's counts are the absent days only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.escalation.counting import Excusals, Fact, classify, totals

KINDS = ("absent", "attended", "leave_fact", "leave", "correction", "resolved")
HOUR = 3_600_000


def _working_days(start: date, n: int) -> list[date]:
    out, day = [], start
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def _plant(kinds: list[str], start: date) -> tuple[list[Fact], Excusals]:
    """The day facts and HR's records a plant and HR would hold for ``kinds``, one a working day."""
    facts, hr = [], Excusals()
    for n, (kind, day) in enumerate(zip(kinds, _working_days(start, len(kinds)), strict=True)):
        begin = int(datetime(day.year, day.month, day.day, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00 Shanghai
        key = f"1001/{day}/D"
        status = {"attended": "present", "leave_fact": "on_leave"}.get(kind, "missing")
        facts.append(
            Fact("p1", "1001", key, day.isoformat(), "D", status, begin, begin + 9 * HOUR, "", "", f"f{n}", 1, n)
        )
        if kind == "leave":
            hr.spans.append((f"QJ-{n}", begin - HOUR, begin + 10 * HOUR))
        elif kind == "correction":
            hr.fixes.append((f"BK-{n}", begin + HOUR))
        elif kind == "resolved":
            hr.resolved[("p1", key)] = "理由已接受（hr）"
    return facts, hr


@settings(max_examples=300, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=70),
    start=st.dates(min_value=date(2024, 11, 1), max_value=date(2025, 12, 31)),
    first=st.integers(min_value=0, max_value=69),
)
def test_the_counts_are_the_absent_days_only(kinds, start, first):
    facts, hr = _plant(kinds, start)
    days = classify(facts, hr)
    assert [d.kind == "absent" for d in days] == [k == "absent" for k in kinds]
    assert all(d.kind == "attended" for d, k in zip(days, kinds, strict=True) if k == "attended")

    first = min(first, len(kinds) - 1)
    got = totals(days, facts[first].start_ms or 0)
    absent = [f.work_date for f, k in zip(facts, kinds, strict=True) if k == "absent"]
    spell = kinds[first:]
    run = len(spell) - max((i + 1 for i, k in enumerate(spell) if k != "absent"), default=0)
    if "absent" not in spell:
        assert got == (0, 0, 0, 0)
        return
    latest = max(f.work_date for f, k in zip(facts[first:], spell, strict=True) if k == "absent")
    assert got.days == spell.count("absent")
    assert got.consecutive == run
    assert got.month == sum(1 for d in absent if d[:7] == latest[:7])
    assert got.year == sum(1 for d in absent if d[:4] == latest[:4])


def test_a_table_of_mixtures():
    """A few by hand, Monday 2025-03-03 on: what HR excused never counts, wherever it falls."""
    table = [
        (["absent", "resolved", "absent"], (2, 1, 2, 2)),
        (["resolved", "resolved", "absent", "absent", "absent"], (3, 3, 3, 3)),
        (["absent", "correction", "leave", "leave_fact", "absent"], (2, 1, 2, 2)),
        (["resolved", "attended", "absent"], (1, 1, 1, 1)),
        (["absent", "absent", "resolved", "resolved"], (2, 0, 2, 2)),
        (["resolved"] * 5, (0, 0, 0, 0)),
    ]
    for kinds, expected in table:
        facts, hr = _plant(kinds, date(2025, 3, 3))
        assert totals(classify(facts, hr), facts[0].start_ms or 0) == expected, kinds
