"""A stolen Pi: revoking its key, and from which record on its log is no longer evidence.

``punchproof cloud revoke-key KID --compromised-since TIME|SEQ`` revokes the key (nothing it signs is accepted any
more, ``cloud.appliances.registry.revoke``) and stores the *compromise point*: the first record of that log that
may have been made by whoever copied the key. Every record of the log from that point on is untrusted: the point
is stored here (``KeyRevocation``), written as a signed ``keyrevoke`` record into the cloud's evidence log (so an
RFC 3161 stamp fixes when head office said so), carried by every evidence bundle of that log, and
``punchproof verify`` reports those records as untrusted and fails a bundle whose employee's records are among them.

A time is turned into a seq conservatively: the first record the cloud *received* at or after that time, or whose
own clock says it was made at or after it, whichever comes first (a thief controls the Pi's clock, not when the
cloud received what he sent). Without ``--compromised-since`` the point is the next record after what the cloud
holds: nothing stored is marked, and what comes later is refused anyway.

The employees whose day facts or punches lie past the point are marked for the escalation engine (``HrChange``,
as HR's leave and 补卡 are), so its next tick counts their cases again without those records
(``cloud.escalation.counting``): no 旷工 case rests on what a thief could have signed.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cloud.appliances import registry
from cloud.appliances.revocations import KeyRevocation
from cloud.clock import to_ms
from cloud.escalation.models import AttendanceDay
from cloud.hr.models import HrChange, PlantBadge
from cloud.store import Appliance, ApplianceKey, LogHead, LogRecord, Punch, database


class RevocationError(Exception):
    pass


def compromise_point(appliance: Appliance, since: str | None) -> tuple[int, str]:
    """The first untrusted seq of ``appliance``'s log for ``since`` (a seq, or a time: ISO 8601, in the plant's
    zone when it names none), and the point in words (zh-CN / English) for the record."""
    head = LogHead.get(LogHead.appliance == appliance).seq
    if since is None or not since.strip():
        return head + 1, f"吊销时 / at revocation (seq {head + 1})"
    text = since.strip()
    if text.isdigit():
        return int(text), f"第 {int(text)} 条起 / from seq {int(text)}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise RevocationError(
            f"--compromised-since {text!r} 既不是记录序号也不是时间（例如 2026-03-02T08:00 或 1234）/ "
            "is neither a record seq nor a time (e.g. 2026-03-02T08:00, or 1234)"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(appliance.plant.timezone))
    at_ms = to_ms(moment)
    mine = LogRecord.appliance == appliance
    received = LogRecord.select(LogRecord.seq).where(mine & (LogRecord.received_ms >= at_ms)).order_by(LogRecord.seq)
    made = LogRecord.select(LogRecord.seq).where(mine & (LogRecord.t_wall_ms >= at_ms)).order_by(LogRecord.seq)
    candidates = [seq for seq in (received.scalar(), made.scalar()) if seq is not None]
    seq = min(candidates, default=head + 1)
    return seq, f"{moment.isoformat(timespec='seconds')} 起（第 {seq} 条起）/ since {moment.isoformat()} (seq {seq})"


def revoke(kid: str, now_ms: int, since: str | None, operator: str) -> KeyRevocation:
    """Revoke ``kid`` and store its log's compromise point. A key revoked before may be given an earlier point
    (a theft found out later); a later one changes nothing, since the earliest point counts."""
    with database.atomic():
        row = ApplianceKey.get_or_none(ApplianceKey.kid == kid)
        if row is None:
            raise RevocationError(f"没有登记 id 为 {kid} 的密钥 / no registered key has the id {kid}")
        appliance = row.appliance
        seq, words = compromise_point(appliance, since)
        earlier = untrusted_from(appliance.log_origin)
        if earlier is not None and earlier <= seq:
            raise RevocationError(
                f"{appliance.log_origin} 自第 {earlier} 条起已标为不可信，不变 / already untrusted from seq {earlier}"
            )
        key = registry.revoke(kid, now_ms)
        _recount_past(appliance, seq, now_ms)
        return KeyRevocation.create(
            key_log=appliance.log_origin,
            kid=kid,
            revoked_ms=key.revoked_ms,
            since_seq=seq,
            since=words,
            operator=operator,
        )


def untrusted_from(origin: str) -> int | None:
    """The first untrusted seq of log ``origin`` (the earliest compromise point given), or None."""
    return (
        KeyRevocation.select(KeyRevocation.since_seq)
        .where(KeyRevocation.key_log == origin)
        .order_by(KeyRevocation.since_seq)
        .scalar()
    )


def _recount_past(appliance: Appliance, seq: int, now_ms: int) -> None:
    """Mark the employees with day facts or punches of ``appliance`` from ``seq`` on, for the escalation engine
    to count again at its next tick."""
    facts = AttendanceDay.select(AttendanceDay.user_id).where(
        (AttendanceDay.appliance == appliance) & (AttendanceDay.seq >= seq)
    )
    punches = Punch.select(Punch.employee).where((Punch.appliance == appliance) & (Punch.seq >= seq))
    users = {u for (u,) in facts.tuples()} | {u for (u,) in punches.tuples()}
    if not users:
        return
    employees = (
        PlantBadge.select(PlantBadge.employee)
        .where((PlantBadge.plant == appliance.plant_id) & PlantBadge.user_id.in_(sorted(users)))
        .distinct()
        .tuples()
    )
    for (employee,) in employees:
        HrChange.insert(employee=employee, changed_ms=now_ms).on_conflict(
            conflict_target=[HrChange.employee], update={HrChange.changed_ms: now_ms}
        ).execute()
