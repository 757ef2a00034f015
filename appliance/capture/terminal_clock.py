"""A terminal's clock in the signed log: one alarm per episode, and every correction recorded.

The offset itself travels with every punch (``term.off_ms``). What the log adds here are the
changes: a ``clock_alarm`` incident when the offset first goes above the policy's threshold, a
``clock_alarm_cleared`` incident when it is back within it, and a ``clock`` record for each
correction the policy allowed, so a reader of the log sees when the terminal's time base moved and
by how much. The episode in progress is kept in ``TerminalHealth``: the board shows it, and a
restart does not raise it a second time.
"""

from __future__ import annotations

from typing import Any

from appliance.capture.punchlog import Entry
from appliance.clock import to_ms
from appliance.store import TerminalHealth
from firmware_bridge.types import ClockAlarm
from firmware_bridge.zk.clock import ClockCorrection, ClockPolicy


def alarm_change(
    terminal: str,
    serial: str,
    health: TerminalHealth,
    alarm: ClockAlarm | None,
    offset_ms: int,
    now_ms: int,
    *,
    by: str = "poll",
) -> tuple[list[Entry], dict[str, Any]]:
    """The incident to sign (if the episode starts or ends now) and the health columns to set.

    ``by`` says what ended an episode: a later ``poll`` that found the clock right again (someone
    set it at the terminal), or our own ``correction``.
    """
    term = {"name": terminal, "sn": serial}
    if alarm is not None and health.clock_alarm_since_ms is None:
        body = {"kind": "clock_alarm", "term": term, "off_ms": alarm.offset_ms, "threshold_ms": alarm.threshold_ms}
        return [Entry("incident", body)], {"clock_alarm_ms": alarm.offset_ms, "clock_alarm_since_ms": now_ms}
    if alarm is None and health.clock_alarm_since_ms is not None:
        body = {
            "kind": "clock_alarm_cleared",
            "term": term,
            "off_ms": offset_ms,
            "alarm_off_ms": health.clock_alarm_ms,
            "alarm_since_ms": health.clock_alarm_since_ms,
            "by": by,
        }
        return [Entry("incident", body)], {"clock_alarm_ms": None, "clock_alarm_since_ms": None}
    return [], {}


def correction_entry(terminal: str, tz_name: str, correction: ClockCorrection, policy: ClockPolicy) -> Entry:
    """The ``clock`` record of a correction: what the terminal showed, what it shows now, and why."""
    return Entry(
        "clock",
        {
            "kind": "terminal_set",
            "term": {"name": terminal, "sn": correction.terminal_sn},
            "old_off_ms": correction.old_offset_ms,
            "old_t": correction.old_terminal_time.isoformat(),
            "new_t": correction.new_terminal_time.isoformat(),
            "new_off_ms": correction.new_offset_ms,
            "tz": tz_name,
            "at_ms": to_ms(correction.at_utc),
            "policy": {"alarm_above_ms": policy.alarm_above_ms, "correct_above_ms": policy.correct_above_ms},
        },
    )


def correction_failed_entry(terminal: str, serial: str, offset_ms: int, error: Exception) -> Entry:
    """A correction that failed part-way may still have set the clock: the log says it was tried."""
    return Entry(
        "incident",
        {
            "kind": "clock_correction_failed",
            "term": {"name": terminal, "sn": serial},
            "off_ms": offset_ms,
            "reason": str(error),
        },
    )
