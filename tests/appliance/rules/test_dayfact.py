from datetime import date

from appliance.rules import Correction, Direction, Leave, day_fact, fact_id, supersede
from ledger import canonical
from tests.appliance.rules.build import local, one, plant, punch

MON = date(2026, 3, 2)
LATER = local(2026, 3, 10)


def test_a_fact_is_ints_and_strings_and_canonical():
    ev = one(MON, [punch(local(2026, 3, 2, 8, 22), ref="17")], now=LATER)
    fact = day_fact(ev, plant())
    assert all(isinstance(v, int | str) and not isinstance(v, bool) for v in fact.values())
    canonical.encode(fact)  # raises on anything the signed log cannot hold
    assert fact["emp"] == "E1" and fact["date"] == "2026-03-02" and fact["tz"] == "Asia/Shanghai"
    assert (fact["status"], fact["tier"], fact["late_min"], fact["missed"]) == ("late", "confirmed", 17, 1)
    assert fact["in_ms"] == 1772410920000  # 2026-03-02 00:22 UTC
    assert fact["in_ref"] == "terminal:ZK2:17:1772410920000"
    assert fact["rules_v"] == "rules/1" and fact["policy_v"] == "test" and fact["cal_v"] == "chinesecalendar-1.11.0"
    assert "out_ms" not in fact and "supersedes" not in fact


def test_leave_approved_after_a_confirmed_absence_supersedes_it():
    absent = one(MON, [], now=LATER)
    first = supersede(None, absent, plant())
    assert first is not None and first["status"] == "missing" and first["tier"] == "confirmed"
    kept = dict(first)
    assert supersede(first, one(MON, [], now=local(2026, 3, 11)), plant()) is None  # same decision: nothing new
    leave = Leave("L9", "E1", local(2026, 3, 2), local(2026, 3, 3), "病假")
    second = supersede(first, one(MON, [], now=local(2026, 3, 11), leaves=[leave]), plant())
    assert second is not None and second["status"] == "on_leave" and second["supersedes"] == fact_id(first)
    assert first == kept  # nothing edited


def test_a_correction_supersedes_too_and_chains():
    p = plant()
    first = supersede(None, one(MON, [punch(local(2026, 3, 2, 17, 1))], now=LATER), p)
    fix = Correction("C1", "E1", local(2026, 3, 2, 8), Direction.IN, "忘带卡", "张主管", LATER)
    second = supersede(first, one(MON, [punch(local(2026, 3, 2, 17, 1))], now=LATER, corrections=[fix]), p)
    assert first["status"] == "incomplete" and second["status"] == "present"
    assert second["supersedes"] == fact_id(first) and fact_id(second) != fact_id(first)


def test_fact_id_is_the_hash_of_the_canonical_bytes():
    import hashlib

    fact = day_fact(one(MON, [], now=LATER), plant())
    assert fact_id(fact) == hashlib.sha256(canonical.encode(fact)).hexdigest()
