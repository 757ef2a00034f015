"""A day fact: an evaluation as the body of a ``dayfact`` record for the signed log.

Only strings and integers (the record format has no floats, and a boolean is spelled as 0/1), times
as epoch milliseconds UTC beside the plant's zone name, the reason in both languages and the
versions of the rules, the policy and the calendar that produced it. A fact is never edited: a
later evaluation that decides differently becomes a new fact whose ``supersedes`` is the old
fact's id (``fact_id``), and an unchanged decision yields no new fact at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from appliance.rules.evaluate import Evaluation, Plant

RULES_VERSION = "rules/1"  # bump when a rule changes what it decides
FACT_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Fact = dict[str, int | str]

# the fields that are the decision; the others (as-of time, reasons' wording) describe it
DECISION_FIELDS = (
    "emp",
    "date",
    "shift",
    "status",
    "tier",
    "late_min",
    "early_min",
    "missed",
    "in_ref",
    "out_ref",
    "excusal",
    "watch",
    "cal_provisional",  # a year's holidays published later turn a provisional fact into a final one
)


def epoch_ms(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def day_fact(ev: Evaluation, plant: Plant, *, supersedes: str = "") -> Fact:
    """The record body for ``ev`` (add it with ``type="dayfact"``)."""
    first_in = next((s.check_in for s in ev.segments if s.check_in is not None), None)
    last_out = next((s.check_out for s in reversed(ev.segments) if s.check_out is not None), None)
    fact: Fact = {
        "fv": FACT_VERSION,
        "key": f"{ev.employee}/{ev.work_date.isoformat()}/{ev.shift_id}",
        "emp": ev.employee,
        "date": ev.work_date.isoformat(),
        "shift": ev.shift_id,
        "tz": plant.tz.key,
        "status": ev.status.value,
        "tier": ev.confirmation.value,
        "late_min": ev.late_min,
        "early_min": ev.early_min,
        "missed": ev.missed_punches,
        "n_punches": len(ev.punches),
        "n_dups": len(ev.duplicates),
        "excusal": ev.excusal,
        "watch": ev.watch,
        "held_by": ",".join(ev.held_by),
        "cal_unknown": int(ev.calendar_unknown),
        # the result rests on the provisional calendar (its year unpublished): the cloud flags the day and its case
        "cal_provisional": int(ev.calendar_unknown),
        "day_kind": ev.calendar.kind.value,
        "in_ref": _ref(first_in),
        "out_ref": _ref(last_out),
        "as_of_ms": epoch_ms(ev.as_of),
        "reason_zh": ev.reason_zh,
        "reason_en": ev.reason_en,
        "rules_v": RULES_VERSION,
        "policy_v": plant.policy.version,
        "cal_v": plant.calendar.version,
    }
    optional = {
        "start_ms": ev.start,
        "end_ms": ev.end,
        "in_ms": first_in.at if first_in else None,
        "out_ms": last_out.at if last_out else None,
        "confirm_at_ms": ev.confirm_at,
        "wm_ms": ev.watermark,
    }
    fact.update({name: epoch_ms(at) for name, at in optional.items() if at is not None})
    if supersedes:
        fact["supersedes"] = supersedes
    return fact


def _ref(punch: object) -> str:
    if punch is None:
        return ""
    return f"{punch.source}:{punch.terminal}:{punch.ref}:{epoch_ms(punch.at)}"  # type: ignore[attr-defined]


def fact_id(fact: Mapping[str, int | str]) -> str:
    """SHA-256 of the fact's canonical JSON (sorted keys, no spaces, UTF-8: RFC 8785 for ints and strings)."""
    data = json.dumps(dict(fact), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def decision(fact: Mapping[str, int | str]) -> tuple[int | str | None, ...]:
    # ``cal_provisional`` counts only when set: a fact on a published calendar decides as it did before
    # the field existed (stored decisions compare equal, an upgrade supersedes nothing), and a provisional
    # one is superseded once its year is published
    fields = DECISION_FIELDS if fact.get("cal_provisional") else DECISION_FIELDS[:-1]
    return tuple(fact.get(name) for name in fields)


def supersede(previous: Mapping[str, int | str] | None, ev: Evaluation, plant: Plant) -> Fact | None:
    """The fact to append for ``ev`` given the last fact appended for the same key, or None when
    the decision has not changed (so a re-evaluation every minute appends nothing)."""
    current = day_fact(ev, plant)
    if previous is None:
        return current
    if previous.get("key") != current["key"]:
        raise ValueError(f"cannot supersede {previous.get('key')} with {current['key']}")
    if decision(previous) == decision(current):
        return None
    return day_fact(ev, plant, supersedes=fact_id(previous))
