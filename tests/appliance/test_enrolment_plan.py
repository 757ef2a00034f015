"""The enrolment plan on its own (a pure function): what is left alone and why, and what is never inferred.

The behaviour on the wire is in test_enrolment.py; these are the cases a terminal rarely shows.
"""

from __future__ import annotations

from appliance.capture.enrolment_plan import Kept, Roster, Seen, Terminal, Tombstone, plan
from firmware_bridge.zk.directory import UserTable
from firmware_bridge.zk.records import UserRecord
from firmware_bridge.zk.userwrite import PutTemplates, PutUser, RemoveTemplate, RemoveUser

GATE = Terminal("gate-2", "SN-2", "10")


def table(*users: UserRecord, layout: int = 72) -> UserTable:
    return UserTable(tuple(users), layout, "gbk")


def roster(current: dict[str, str], leaving: dict[str, str] | None = None) -> Roster:
    return Roster(current, leaving or {}, "digest")


def kept(mac: str, algorithm: str = "10") -> Kept:
    return Kept(mac, 1400, "gate-1", "SN-1", algorithm)


def run(roster_, users, *, seen=None, complete=True, kept_=None, held=None, tombstones=None, limit=50):
    return plan(
        GATE,
        roster_,
        users,
        seen,
        complete=complete,
        kept=kept_ or {},
        held=held or {},
        tombstones=tombstones or {},
        limit=limit,
    )


def test_an_enroller_is_not_renamed_and_unknown_users_are_named_not_touched():
    users = table(UserRecord(1, "1001", "张三", privilege=2), UserRecord(2, "9", "管理员", privilege=14))
    result = run(roster({"1001": "张三丰"}), users)
    assert result.steps == []
    assert result.notes == [
        "1 user(s) with a privilege pyzk cannot keep were not renamed",
        "1 user(s) on the terminal are not on the roster: left as they are",
    ]


def test_an_old_terminal_keeps_numeric_badges_only():
    result = run(roster({"A-17": "王五", "1003": "赵六"}), table(layout=28))
    assert [type(s.change) for s in result.steps] == [PutUser]
    assert result.steps[0].change.user.name == "赵六" and result.steps[0].change.user.user_id == "1003"
    assert result.notes == ["badge 'A-17' cannot be kept by this terminal (numbers only)"]


def test_a_finger_of_another_zkfinger_version_is_not_copied():
    result = run(roster({"1001": "张三"}), table(UserRecord(1, "1001", "张三")), kept_={("1001", 1): kept("m", "9")})
    assert result.steps == []
    assert result.notes == ["1001: 1 finger(s) enrolled on another ZKFinger version not copied"]


def test_an_incomplete_read_infers_no_deletion_and_a_finger_not_read_is_not_new():
    users = table(UserRecord(1, "1001", "张三"))
    result = run(
        roster({"1001": "张三"}),
        users,
        seen={},
        complete=False,
        kept_={("1001", 1): kept("m")},
        held={("1001", 1): "m"},
    )
    assert result.deleted_here == [] and result.steps == [] and result.found == []
    not_read = run(roster({"1001": "张三"}), users, seen=None, kept_={("1001", 2): kept("n")}, held={})
    assert [type(s.change) for s in not_read.steps] == [PutTemplates] and not_read.found == []


def test_a_leaver_goes_first_and_the_limit_leaves_the_rest_for_the_next_poll():
    users = table(UserRecord(1, "1001", "张三"), UserRecord(2, "1002", "李四"))
    result = run(
        roster({f"20{n:02}": f"工人{n}" for n in range(10)}, {"1002": "inactive on the roster"}),
        users,
        held={("1002", 3): "x"},
        limit=4,
    )
    assert [type(s.change) for s in result.steps] == [RemoveUser, PutUser, PutUser, PutUser]
    assert result.steps[0].records[0]["fingers"] == 1 and result.steps[0].held == ((("1002", 3), None),)
    assert [s.change.user.uid for s in result.steps[1:]] == [3, 4, 5], "new slots after the highest"
    assert result.more


def test_a_tombstoned_finger_is_removed_only_where_it_is_the_one_last_seen():
    users = table(UserRecord(1, "1001", "张三"))
    stones = {("1001", 4): Tombstone("gate-1", "old")}
    seen = {("1001", 4): Seen("old", 1400)}
    removed = run(roster({"1001": "张三"}), users, seen=seen, held={("1001", 4): "old"}, tombstones=stones)
    assert [type(s.change) for s in removed.steps] == [RemoveTemplate]
    assert removed.steps[0].records[0]["reason"] == "deleted at gate-1's menu"
    enrolled_again_here = run(
        roster({"1001": "张三"}),
        users,
        seen={("1001", 4): Seen("new", 1300)},
        held={("1001", 4): "old"},
        tombstones=stones,
    )
    assert enrolled_again_here.found == [(("1001", 4), "enrolled again at this terminal")]
    assert enrolled_again_here.steps == []
