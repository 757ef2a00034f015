"""``cloud.appliances.trust``: which appliance records the pages mark as not evidence, and the time they name, after
``punchproof cloud revoke-key --compromised-since`` on a real log (the evidence tests' world: a Dongguan plant's
appliance, a week of signed punches and day facts stored at head office)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cloud.appliances.trust import Trust
from cloud.store import Appliance, LogRecord
from tests.cloud.test_compromised import revoke_key, seq_at
from tests.cloud.test_evidence import LOG, world  # noqa: F401


def local(ms: int, zone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize("world", [False], ids=["one-key"], indirect=True)
def test_a_seq_point_is_dated_by_its_first_record_a_time_as_given_and_the_earliest_point_counts(world, tmp_path):  # noqa: F811
    appliance = Appliance.get(Appliance.log_origin == LOG)
    zone = appliance.plant.timezone
    kid = world["key"].verify_key.kid
    assert not Trust.load() and Trust.load().trusted(appliance.id, 10**9), "nothing revoked: everything stands"

    since = seq_at(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))
    assert revoke_key(tmp_path, world, kid, "--compromised-since", str(since))[0] == 0
    trust = Trust.load()
    point = trust.untrusted(appliance.id, since)
    assert point is not None and trust.untrusted(appliance.id, since + 3) == point
    assert trust.trusted(appliance.id, since - 1) and trust.trusted(appliance.id + 1, since), "other logs stand"
    first = LogRecord.get((LogRecord.appliance == appliance) & (LogRecord.seq == since))
    at = local(min(first.t_wall_ms, first.received_ms), zone)  # a seq names no time: its first record's
    zh, en = point.words()
    assert zh == f"密钥可能泄露后的记录，不作为证据（设备 {appliance.name} 的密钥自 {at} 起可能泄露）"
    assert f"{appliance.name}'s key may be compromised since {at}" in en

    # a theft found out later, given as a time (plant time): the earlier point counts, named as the admin gave it
    assert revoke_key(tmp_path, world, kid, "--compromised-since", "2026-03-02T12:00")[0] == 0
    earlier = Trust.load().untrusted(appliance.id, since)
    assert earlier is not None and earlier.since_seq < since and earlier.local_time() == "2026-03-02 12:00"
    assert Trust.load().trusted(appliance.id, earlier.since_seq - 1)
