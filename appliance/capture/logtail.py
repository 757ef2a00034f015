"""Is a terminal's log still the one this appliance read? A log cleared outside it loses no punch.

A ZK terminal is read from its cursor (the records already stored) less ``OVERLAP``. That is only
right while the log is the same one: an admin who clears the terminal at its menu (monthly, or
with another program) while the appliance is off or cut off, and workers who then punch past the
old cursor, leave records [0, cursor - OVERLAP) of the new log unread for ever. So before trusting
the cursor, each read checks three things, and any one of them means "read the whole log again"
(dedup in ``ingest`` makes that safe: a punch already stored is not stored twice):

- the serial is the one read before (a terminal replaced or swapped at the same address);
- the record count did not fall below the cursor;
- the ``OVERLAP`` records just before the cursor are the ones read before, position by position:
  ``terminal_health.tail_digest`` is a SHA-256 of them (user, time, verify, state, work code; a
  bad record's raw bytes), kept with the cursor in the same transaction.

A log cleared and refilled to exactly its old count looks unchanged and is not transferred (the
protocol has no cheaper "has it changed?"); its punches are read at the first record after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from appliance.capture.punchlog import Entry
from firmware_bridge.types import Download, RawPunch, RejectedRecord

OVERLAP = 32  # records re-read behind the cursor, and compared with what was read there before

SERIAL_CHANGED = "serial_changed"
COUNT_FELL = "count_fell"
RECORDS_DIFFER = "records_differ"

Tail = tuple[list[RawPunch], list[RejectedRecord]]


@dataclass(frozen=True, slots=True)
class LogReplaced:
    """The terminal's log is not the one read before, and why (one of the causes above)."""

    terminal: str
    cause: str
    old_serial: str
    serial: str
    cursor: int  # records stored from the old log
    count: int  # records in the log now

    def why(self) -> tuple[str, str]:
        """The cause in words (zh-CN, English)."""
        if self.cause == SERIAL_CHANGED:
            return (
                f"该地址的考勤机序列号由 {self.old_serial} 变为 {self.serial}（考勤机被更换或调换？）",
                f"the terminal at this address now reports serial {self.serial}, not {self.old_serial} "
                "(replaced or swapped?)",
            )
        if self.cause == COUNT_FELL:
            return (
                f"考勤机现有 {self.count} 条记录，少于已保存的 {self.cursor} 条",
                f"it holds {self.count} records, fewer than the {self.cursor} already stored from it",
            )
        return (
            f"考勤机第 {self.cursor} 条之前的记录与已保存的不同",
            f"the records just before position {self.cursor} are not the ones stored from it",
        )

    def warning(self) -> str:
        """For the daemon's log: what happened and what the appliance does now, for plant IT."""
        return (
            f"terminal {self.terminal} ({self.serial}): its attendance log is not the one this appliance read "
            f"before: {self.why()[1]}. It was cleared or replaced at the terminal (or by another program) while "
            "this appliance was not reading it. Reading the whole log again now: punches already stored are "
            "recognised and not stored twice, every other one is stored, and a signed 'log_replaced' incident "
            "records what happened. To clear a terminal without this, use 'punchproof appliance clear-terminal'."
        )

    def entry(self) -> Entry:
        """The signed ``log_replaced`` incident, appended with the punches of the full re-read."""
        zh, en = self.why()
        return Entry(
            "incident",
            {
                "kind": "log_replaced",
                "cause": self.cause,
                "reason": f"{zh}；考勤记录在本设备之外被清除或替换，已从头重新读取 / {en}: the terminal's log "
                "was cleared or replaced outside this appliance; read again from the start",
                "term": {"name": self.terminal, "sn": self.serial, "old_sn": self.old_serial},
                "cursor": self.cursor,
                "count": self.count,
            },
        )


def tail(download: Download, end: int) -> Tail | None:
    """The download's records at [end - OVERLAP, end) (fewer at a log's start), or None unless it holds them all
    (a read that found the count unchanged transfers nothing)."""
    start = max(0, end - OVERLAP)
    punches = [p for p in download.punches if start <= p.index < end]
    rejected = [r for r in download.rejected if start <= r.index < end]
    return (punches, rejected) if len(punches) + len(rejected) == end - start else None


def digest(records: Tail) -> str:
    """SHA-256 of the records, in log order: what the terminal said (user, time, verify, state, work
    code), not the slot or the bytes, which a firmware's record layout may change; a bad record's bytes."""
    punches, rejected = records
    lines = [
        (p.index, "\x1f".join(map(str, (p.user_id, p.device_time.isoformat(), p.verify, p.state, p.workcode))))
        for p in punches
    ]
    lines += [(r.index, f"bad\x1f{r.raw.hex()}") for r in rejected]
    return hashlib.sha256("\n".join(line for _, line in sorted(lines)).encode()).hexdigest()


def stored_digest(download: Download) -> str | None:
    """The digest to keep with the download's cursor; None: keep the one stored (nothing transferred)."""
    records = tail(download, download.record_count)
    return digest(records) if records is not None else None


def check(
    terminal: str,
    serial: str,
    cursor: int,
    tail_digest: str | None,
    download: Download,
    all_known: Callable[[Tail], bool],
) -> LogReplaced | None:
    """Whether the download shows a log other than the one ``cursor`` counts, or None.

    ``tail_digest`` None (a database from before it was kept, until the next transfer): the
    records before the cursor must each be stored already (``all_known``), which catches a cleared
    log unless its new records happened to be stored by live capture.
    """
    if not cursor:
        return None  # nothing read yet: the read starts at 0 anyway

    def replaced(cause: str) -> LogReplaced:
        return LogReplaced(terminal, cause, serial, download.terminal_sn, cursor, download.record_count)

    if serial and download.terminal_sn != serial:
        return replaced(SERIAL_CHANGED)
    if download.record_count < cursor:
        return replaced(COUNT_FELL)
    records = tail(download, cursor)
    if records is None:
        return None
    same = digest(records) == tail_digest if tail_digest is not None else all_known(records)
    return None if same else replaced(RECORDS_DIFFER)
