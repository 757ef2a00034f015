"""Whether an appliance's record is still evidence: the records its log holds from the key's compromise point on
are not.

``punchproof cloud revoke-key KID --compromised-since TIME|SEQ`` stores that point (``cloud.evidence.revocation``,
a ``KeyRevocation`` row): the first record of the appliance's log that may have been made by whoever copied the
key. Every record from that seq on is untrusted; the earliest point given counts.

A page that lists many punches or day facts reads every point once (``Trust.load``, one query: there are a
handful at most) and then asks ``untrusted(appliance_id, seq)`` for each row, with no further I/O. The escalation
engine can ask the same way for the facts it counts.

The time shown for a point is the one the admin gave (``--compromised-since 2026-03-02T08:00``, as the revocation
wrote it at the start of its words); for a point given as a seq, the first untrusted record's: the earlier of the
appliance clock's time for it and when head office received it (a thief sets the Pi's clock, not when the cloud
received what he sent), or, when no record past the point has arrived yet, when the key was revoked. It is shown in
the plant's zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.appliances.revocations import KeyRevocation
from cloud.store import Appliance, LogRecord, Plant


@dataclass(frozen=True)
class Compromise:
    """One appliance log's compromise point."""

    appliance_id: int
    appliance: str  # its name at the plant
    plant_id: str
    log_origin: str
    since_seq: int  # the first untrusted record
    since_ms: int  # when, as said above (UTC)
    timezone: str  # the plant's

    def local_time(self) -> str:
        return datetime.fromtimestamp(self.since_ms / 1000, ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M")

    def words(self) -> tuple[str, str]:
        """The mark beside such a record (zh-CN, English)."""
        at = self.local_time()
        return (
            f"密钥可能泄露后的记录，不作为证据（设备 {self.appliance} 的密钥自 {at} 起可能泄露）",
            f"recorded after the key may have leaked: not evidence ({self.appliance}'s key may be compromised "
            f"since {at})",
        )


def _given_ms(words: str) -> int | None:
    """The time the admin gave, from the revocation's words ("2026-03-02T08:00:00+08:00 起（第 12 条起）/ ..."),
    or None when the point was given as a seq or taken at revocation."""
    try:
        moment = datetime.fromisoformat(words.split(" ", 1)[0])
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo is not None else None


class Trust:
    """The compromise points by appliance id; built by ``load`` (or from points, for a caller that has them)."""

    def __init__(self, points: Mapping[int, Compromise]) -> None:
        self.points = dict(points)

    @classmethod
    def load(cls) -> Trust:
        """Every appliance's compromise point, in one query."""
        first = LogRecord.alias("first")
        rows = (
            KeyRevocation.select(
                KeyRevocation.since_seq,
                KeyRevocation.since,
                KeyRevocation.revoked_ms,
                Appliance.id,
                Appliance.name,
                Plant.id,
                Appliance.log_origin,
                Plant.timezone,
                first.t_wall_ms,
                first.received_ms,
            )
            .join(Appliance, on=(Appliance.log_origin == KeyRevocation.key_log))
            .join(Plant, on=(Plant.id == Appliance.plant))
            .join(
                first,
                pw.JOIN.LEFT_OUTER,
                on=((first.appliance == Appliance.id) & (first.seq == KeyRevocation.since_seq)),
            )
            .tuples()
        )
        points: dict[int, Compromise] = {}
        for since_seq, words, revoked_ms, appliance_id, name, plant_id, origin, zone, made_ms, received_ms in rows:
            known = points.get(appliance_id)
            if known is not None and known.since_seq <= since_seq:
                continue
            stamped = [ms for ms in (made_ms, received_ms) if ms is not None]
            since_ms = _given_ms(words)
            since_ms = since_ms if since_ms is not None else min(stamped, default=revoked_ms)
            points[appliance_id] = Compromise(appliance_id, name, plant_id, origin, since_seq, since_ms, zone)
        return cls(points)

    def untrusted(self, appliance_id: int | None, seq: int | None) -> Compromise | None:
        """The compromise point record ``seq`` of that appliance's log lies past, or None when it is trusted."""
        if appliance_id is None or seq is None:
            return None
        point = self.points.get(appliance_id)
        return point if point is not None and seq >= point.since_seq else None

    def trusted(self, appliance_id: int | None, seq: int | None) -> bool:
        return self.untrusted(appliance_id, seq) is None

    def __bool__(self) -> bool:
        return bool(self.points)
