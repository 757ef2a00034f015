"""Users and fingerprint templates on the wire (issue #23.5): the emulator keeps what pyzk writes the way
a terminal does, and our driver reads and writes them around pyzk 0.9's defects.

pyzk is the independent client here: what it writes, our emulator must keep; what our emulator holds,
pyzk must read back the same.
"""

from __future__ import annotations

import struct

import pytest
from zk import ZK
from zk.finger import Finger

from firmware_bridge.errors import TerminalProtocolError
from firmware_bridge.zk import wire
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from firmware_bridge.zk.records import FingerTemplate, UserRecord, encode_templates, fit_name
from firmware_bridge.zk.session import ZKSession
from firmware_bridge.zk.userwrite import PutTemplates, PutUser, RemoveTemplate, RemoveUser
from tests.conftest import PLANT_TZ


def pyzk(emulator: ZKEmulator, encoding: str = "gbk") -> ZK:
    conn = ZK(*emulator.address, timeout=3, ommit_ping=True, encoding=encoding)
    conn.connect()
    return conn


def driver(emulator: ZKEmulator, encoding: str = "gbk") -> ZKTerminal:
    return ZKTerminal(*emulator.address, tz=PLANT_TZ, timeout=2, encoding=encoding)


@pytest.fixture
def second():
    state = TerminalState(serial="TEST-ZK-02", tz=PLANT_TZ)
    with ZKEmulator(state, port=0) as emulator:
        yield emulator


def test_what_pyzk_writes_the_emulator_keeps_and_pyzk_reads_back(zk_terminal, terminal_state):
    conn = pyzk(zk_terminal)
    try:
        conn.get_users()  # as pyzk's own examples do: it learns the 72-byte layout from the read
        conn.set_user(uid=7, name="王五", user_id="1003", card=4_000_123)
        conn.set_user(uid=1, name="张三丰", user_id="1001")  # a rename: same slot
        assert [(u.uid, u.user_id, u.name, u.card) for u in conn.get_users()] == [
            (1, "1001", "张三丰", 0),
            (2, "1002", "李四", 0),
            (7, "1003", "王五", 4_000_123),
        ]
        template = terminal_state.enrol_finger("1002", 6)  # at the keypad
        user = next(u for u in conn.get_users() if u.user_id == "1003")
        conn.save_user_template(user, [Finger(user.uid, 1, 1, template[::-1])])
        assert {(f.uid, f.fid, f.template) for f in conn.get_templates()} == {(2, 6, template), (7, 1, template[::-1])}
        conn.delete_user(uid=2)  # the terminal deletes the user's fingers with the user
        assert [f.uid for f in conn.get_templates()] == [7]
        assert conn.delete_user_template(uid=7, temp_id=1) and conn.get_templates() == []
        assert not conn.delete_user_template(uid=7, temp_id=1), "a finger that is not there"
    finally:
        conn.disconnect()
    assert terminal_state.user("1002") is None and terminal_state.templates == {}


def test_a_written_finger_is_recognised_after_the_refresh_and_a_keypad_one_at_once(zk_terminal, terminal_state):
    template = terminal_state.enrol_finger("1001", 2)
    assert terminal_state.present_finger(template).user_id == "1001", "the terminal's own enrolment works at once"
    session = ZKSession(*zk_terminal.address, timeout=2)
    session.open()
    try:  # a user and a finger written as pyzk writes them, without the refresh pyzk sends after it
        user = struct.pack("<BHB8s24sIB7sx24s", 2, 9, 0, b"", "赵六".encode("gbk"), 0, 1, b"", b"1009")
        table = struct.pack("<BHBI", 2, 9, 0x10 + 4, 0)
        upload = struct.pack("<III", len(user), len(table), len(template) + 2) + user + table
        upload += struct.pack("<H", len(template)) + template[::-1]
        assert session.request(wire.CMD_FREE_DATA).command == wire.CMD_ACK_OK
        assert session.request(wire.CMD_PREPARE_DATA, struct.pack("<I", len(upload))).command == wire.CMD_ACK_OK
        for start in range(0, len(upload), 1024):
            assert session.request(wire.CMD_DATA, upload[start : start + 1024]).command == wire.CMD_ACK_OK
        assert session.request(wire.CMD_SAVE_USERTEMPS, struct.pack("<IHH", 12, 0, 8)).command == wire.CMD_ACK_OK
        assert terminal_state.finger("1009", 4) == template[::-1], "kept at once"
        assert terminal_state.present_finger(template[::-1]) is None, "not loaded before CMD_REFRESHDATA"
        assert session.request(wire.CMD_REFRESHDATA).command == wire.CMD_ACK_OK
        assert terminal_state.present_finger(template[::-1]).user_id == "1009"
        badge = struct.pack("<24sB", b"1009", 4)
        assert session.request(wire.CMD_DEL_FPTMP, badge).command == wire.CMD_ACK_OK
        assert session.request(wire.CMD_DEL_FPTMP, badge).command == wire.CMD_ACK_ERROR
    finally:
        session.close()


def test_a_badge_held_by_another_slot_is_refused_as_a_terminal_would(zk_terminal, terminal_state):
    conn = pyzk(zk_terminal)
    try:
        conn.get_users()
        with pytest.raises(Exception, match="Can't set user"):
            conn.set_user(uid=5, name="冒名", user_id="1001")
    finally:
        conn.disconnect()
    assert [u.uid for u in terminal_state.users] == [1, 2]


def test_the_driver_reads_counts_users_and_templates_in_one_session(zk_terminal, terminal_state):
    first = terminal_state.enrol_finger("1001", 0)
    second = terminal_state.enrol_finger("1002", 9)
    before = zk_terminal.connections
    with driver(zk_terminal).directory() as directory:
        counts = directory.counts()
        table = directory.users(counts.users)
        templates = directory.templates()
    assert zk_terminal.connections == before + 1
    assert (counts.serial, counts.users, counts.fingers, counts.algorithm) == ("TEST-ZK-01", 2, 2, "10")
    assert [(u.uid, u.user_id, u.name) for u in table.users] == [(1, "1001", "张三"), (2, "1002", "李四")]
    assert table.layout == 72
    assert [(t.uid, t.finger, t.data) for t in templates] == [(1, 0, first), (2, 9, second)]
    assert first.hex()[:16] not in repr(templates), "a template's bytes never show in a repr"


def test_the_driver_copies_users_and_fingers_from_one_terminal_to_another(zk_terminal, terminal_state, second):
    template = terminal_state.enrol_finger("1001", 3)
    with driver(zk_terminal).directory() as directory:
        (held,) = directory.templates()
    with driver(second).directory() as directory:
        table = directory.users(directory.counts().users)
    new = UserRecord(uid=1, user_id="1001", name=table.shown("张三"))
    outcomes = driver(second).write_changes(
        [PutUser(new), PutTemplates(new, (FingerTemplate(1, 3, 1, held.data),))], layout=table.layout
    )
    assert [o.done for o in outcomes] == [True, True]
    target = second.state
    assert target.finger("1001", 3) == template
    assert target.present_finger(template).user_id == "1001", "works at the other terminal"
    assert target.enabled, "re-enabled after the batch"


def test_a_refused_change_does_not_stop_the_others_and_each_says_what_happened(zk_terminal, terminal_state):
    zhang = terminal_state.user("1001")
    enroller = UserRecord(uid=2, user_id="1002", name="李四", privilege=2)
    outcomes = driver(zk_terminal).write_changes(
        [
            RemoveUser(uid=40, user_id="9999"),  # not there: the terminal refuses
            PutUser(enroller),  # pyzk would demote the enroller: refused before sending
            RemoveTemplate(uid=1, user_id="1001", finger=5),  # no such finger
            PutUser(UserRecord(uid=zhang.uid, user_id="1001", name="张三丰")),
        ],
        layout=72,
    )
    assert [bool(o.error) for o in outcomes] == [True, True, True, False]
    assert "privilege 2" in outcomes[1].error
    assert terminal_state.user("1001").name == "张三丰" and terminal_state.enabled


def test_a_long_chinese_name_is_cut_between_characters_and_reads_back_exactly(zk_terminal, terminal_state):
    long_name = "欧阳" + "娜" * 20  # 44 bytes in GBK
    with driver(zk_terminal).directory() as directory:
        table = directory.users(directory.counts().users)
    shown = table.shown(long_name)
    assert shown == "欧阳" + "娜" * 9 and len(shown.encode("gbk")) == 22
    driver(zk_terminal).write_changes([PutUser(UserRecord(uid=1, user_id="1001", name=shown))], layout=72)
    with driver(zk_terminal).directory() as directory:
        (zhang, _li) = directory.users(directory.counts().users).users
    assert zhang.name == shown, "what was written reads back: the next comparison finds nothing to rename"
    assert fit_name("𠀀工", "gbk", 23) == "?工", "a character GBK lacks is shown as the terminal would show it"


def test_a_finger_written_after_another_terminal_connected_keeps_its_own_terminals_encoding(zk_terminal, second):
    """pyzk's User.encoding is one class attribute that every ``ZK()`` sets: a connection to a UTF-8 terminal
    made by another thread between our connect and our write would make pyzk write our name in UTF-8."""

    def connect_then_another(*args, **kwargs):
        ours = ZK(*args, **kwargs)
        ZK(*second.address, ommit_ping=True, encoding="utf-8")  # another worker's connection, meanwhile
        return ours

    terminal = ZKTerminal(
        *zk_terminal.address, tz=PLANT_TZ, timeout=2, encoding="gbk", client_factory=connect_then_another
    )
    user = UserRecord(uid=20, user_id="2000", name="钱七")
    (outcome,) = terminal.write_changes([PutTemplates(user, (FingerTemplate(20, 0, 1, b"\x07" * 600),))], layout=72)
    assert outcome.done, outcome.error
    assert zk_terminal.state.user("2000").name == "钱七", "written in GBK, as the terminal reads it"


def test_a_template_dataset_that_does_not_add_up_is_an_error_not_a_hang(zk_terminal, terminal_state, monkeypatch):
    """pyzk 0.9's get_templates loops forever on an entry whose size is 0."""
    entry = encode_templates([FingerTemplate(1, 0, 1, b"\x01" * 50)])
    broken = entry + struct.pack("<HHBB", 0, 2, 1, 1) + b"\x00" * 10
    monkeypatch.setattr(terminal_state, "template_buffer", lambda: struct.pack("<I", len(broken)) + broken)
    with driver(zk_terminal).directory() as directory, pytest.raises(TerminalProtocolError, match="an entry of 0"):
        directory.templates()
