"""Users and fingerprint templates of a push terminal, on the wire: the emulated terminal keeps what the
receiver's commands say (``DATA UPDATE``/``DELETE`` of USERINFO, FINGERTMP, BIODATA) and answers each with
``Return=0``; it uploads what is enrolled at its keypad; the receiver's directory follows both, and the
enrolment's source turns changes into commands whose outcomes come back from the terminal."""

from __future__ import annotations

import base64

from firmware_bridge.adms.directory import fields_of, parse_info
from firmware_bridge.zk.records import FLAG_VALID, FingerTemplate, UserRecord
from firmware_bridge.zk.userwrite import PutTemplates, PutUser, RemoveTemplate, RemoveUser
from tests.firmware_bridge import test_adms_receiver
from tests.firmware_bridge.test_adms_receiver import SN

plant = test_adms_receiver.plant  # a receiver on a real HTTP server, as test_adms_receiver runs it
TEMPLATE = bytes(range(256)) * 5


def test_the_terminal_keeps_users_and_fingers_from_commands_and_uploads_a_finger_enrolled_at_its_keypad(plant):
    terminal = plant.terminal()
    receiver = plant.receiver
    b64 = base64.b64encode(TEMPLATE).decode()
    commands = [
        receiver.queue(SN, "DATA UPDATE USERINFO PIN=1001\tName=张三\tPri=0\tPasswd=\tCard=8807\tGrp=1"),
        receiver.queue(SN, f"DATA UPDATE FINGERTMP PIN=1001\tFID=6\tSize={len(b64)}\tValid=1\tTMP={b64}"),
        receiver.queue(SN, f"DATA UPDATE FINGERTMP PIN=7777\tFID=1\tSize={len(b64)}\tValid=1\tTMP={b64}"),
    ]
    assert terminal.run_once()
    assert [c.result.return_code for c in commands] == [0, 0, -1], "no finger for a user the terminal lacks"
    assert terminal.users["1001"]["Name"] == "张三" and terminal.users["1001"]["Card"] == "8807"
    assert terminal.identify(TEMPLATE) == "1001"
    directory = receiver.directory(SN)
    assert directory.users["1001"]["Name"] == "张三" and directory.fingers[("1001", 6)].data == TEMPLATE
    keypad = terminal.enrol_finger("1001", 2)
    assert terminal.run_once()
    upload = plant.tables[-1]
    assert upload.table == "OPERLOG" and upload.lines[0].startswith("FP PIN=1001\tFID=2\tSize=")
    assert directory.fingers[("1001", 2)].data == keypad and directory.counts() == (1, 2)
    assert directory.reported is not None and (directory.reported.users, directory.reported.fingers) == (1, 2)
    assert directory.reported.algorithm == "10"
    deleted = [
        receiver.queue(SN, "DATA DELETE FINGERTMP PIN=1001\tFID=6"),
        receiver.queue(SN, "DATA DELETE USERINFO PIN=1001"),
    ]
    assert terminal.run_once() and all(c.state == "done" for c in deleted)
    assert terminal.users == {} and terminal.fingers == {} and directory.counts() == (0, 0)


def test_the_enrolment_source_learns_the_terminal_then_queues_changes_whose_outcomes_come_back(plant):
    terminal = plant.terminal(biodata=True)
    terminal.users["9000"] = {"PIN": "9000", "Name": "admin", "Pri": "14", "Card": "55"}
    terminal.fingers[("9000", 0)] = (1, TEMPLATE)
    source = plant.receiver.enrolment_source(SN)
    assert not source.ready()  # queries queued: users, and fingers as FINGERTMP, which this firmware refuses
    assert terminal.run_once()
    assert not source.ready() and plant.receiver.directory(SN).biodata  # so they are asked for as BIODATA
    assert terminal.run_once()
    assert source.ready()
    with source.directory() as reader:
        (admin,) = reader.users().users
        assert (admin.user_id, admin.name, admin.privilege, admin.card) == ("9000", "admin", 14, 55)
        assert reader.templates() == (FingerTemplate(admin.uid, 0, FLAG_VALID, TEMPLATE),)
        assert reader.counts().algorithm == "10"
    worker = UserRecord(2, "1001", "李四")
    queued = source.queue_changes(
        [
            PutUser(worker),
            PutTemplates(worker, (FingerTemplate(2, 5, FLAG_VALID, TEMPLATE[::-1]),)),
            PutUser(UserRecord(1, "9000", "管理员", privilege=14, card=55)),  # a rename keeps what the terminal has
            RemoveTemplate(1, "9000", 0),
        ]
    )
    assert queued.outcomes() is None, "not run yet"
    terminal.refuse["DATA DELETE BIODATA"] = -2
    assert terminal.run_once()
    outcomes = queued.outcomes()
    assert [o.done for o in outcomes] == [True, True, True, False]
    assert outcomes[3].error == "refused by the terminal: DATA DELETE BIODATA Pin=9000: Return=-2"
    assert terminal.finger("1001", 5) == TEMPLATE[::-1] and terminal.users["9000"]["Name"] == "管理员"
    assert terminal.users["9000"]["Card"] == "55" and terminal.users["9000"]["Pri"] == "14"
    assert any(
        c.startswith("DATA UPDATE BIODATA Pin=1001\tNo=5\tIndex=0\tValid=1\tDuress=0\tType=1")
        for c in terminal.executed
    )
    assert plant.receiver.commands.list(SN) == [], "forgotten once taken: no template stays queued"
    last = source.queue_changes([RemoveUser(2, "1001")])
    assert terminal.run_once() and [o.done for o in last.outcomes()] == [True]
    assert "1001" not in terminal.users and source.ready(), "what the terminal reports agrees with what is known"


def test_what_terminals_send_is_read_whatever_the_spelling():
    assert fields_of("USER PIN=1\tName=John Doe\tPri=0") == ("USER", {"PIN": "1", "Name": "John Doe", "Pri": "0"})
    assert fields_of("PIN=1\tName=A B") == ("", {"PIN": "1", "Name": "A B"})
    assert fields_of("OPLOG 4\t0\t2026-03-02 08:00:00\t0\t0\t0\t0")[0] == "OPLOG"
    reported = parse_info("Ver 2.4.0 20121127,41,19,4023,192.168.0.201,10,7,12,1,111")
    assert (reported.users, reported.fingers, reported.algorithm) == (41, 19, "10")
    assert parse_info("Ver 8.0.4,,") is None and parse_info("") is None
