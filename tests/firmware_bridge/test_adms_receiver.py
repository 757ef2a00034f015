"""The push receiver under a real HTTP server, with the emulated terminal talking to it over HTTP."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from firmware_bridge.adms.connections import Limits
from firmware_bridge.adms.emulator import AdmsTerminalEmulator
from firmware_bridge.adms.receiver import AdmsReceiver, AttlogCursor, PushBatch, PushTerminal, TableUpload
from firmware_bridge.adms.server import AdmsServer, serve
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock

SN = "ADMS-0001"


class Store:
    """The appliance's database, as far as the receiver can tell: punches and the cursor together.

    Deliberately not idempotent: every delivery is counted, so a duplicate shows."""

    def __init__(self) -> None:
        self.batches: list[PushBatch] = []
        self.cursors: dict[str, AttlogCursor] = {}
        self.fail = False  # refuse to store (disk full)
        self.lose_reply = False  # store, then fail before the terminal hears OK

    def sink(self, batch: PushBatch) -> None:
        if self.fail:
            raise OSError("disk full")
        self.batches.append(batch)
        self.cursors[batch.serial] = batch.cursor
        if self.lose_reply:
            self.lose_reply = False
            raise ConnectionError("the process died after the commit")

    def cursor_of(self, serial: str) -> AttlogCursor | None:
        return self.cursors.get(serial)

    @property
    def punches(self):
        return [p for b in self.batches for p in b.punches]

    @property
    def rejected(self):
        return [r for b in self.batches for r in b.rejected]


class Plant:
    """A receiver on a real HTTP server, restartable on the same port, sharing one store."""

    def __init__(self, clock: FrozenClock, limits: Limits | None = None) -> None:
        self.clock = clock
        self.limits = limits
        self.store = Store()
        self.unknown: list = []
        self.results: list = []
        self.tables: list[TableUpload] = []
        self.port = 0
        self.server: AdmsServer | None = None
        self.receiver: AdmsReceiver | None = None

    def start(self) -> Plant:
        self.receiver = AdmsReceiver(
            [PushTerminal(SN, "gate-1")],
            self.store.sink,
            clock=self.clock,
            tz=PLANT_TZ,
            cursor_of=self.store.cursor_of,
            on_unknown=self.unknown.append,
            on_result=self.results.append,
            on_table=self.tables.append,
        )
        self.server = serve(self.receiver, "127.0.0.1", self.port, limits=self.limits)
        self.port = self.server.address[1]
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def terminal(self, serial: str = SN, **kwargs) -> AdmsTerminalEmulator:
        return AdmsTerminalEmulator(serial, "127.0.0.1", self.port, tz=PLANT_TZ, now=self.clock.now, **kwargs)

    def post(self, path: str, body: bytes, content_type: str = "text/plain") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)  # a whole log: seconds on a busy CI
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


@pytest.fixture
def plant(clock: FrozenClock) -> Iterator[Plant]:
    p = Plant(clock).start()
    yield p
    p.stop()


def keys(punches):
    return sorted((p.user_id, p.device_time) for p in punches)


def test_handshake_options_and_punches_arrive_once_with_what_the_terminal_said(plant):
    terminal = plant.terminal()
    terminal.punch("1001", state=255, verify=15, when=datetime(2026, 3, 2, 7, 58, 3))
    terminal.punch("1002", state=0, verify=1, when=datetime(2026, 3, 2, 7, 59, 0))
    assert terminal.run_once()
    assert terminal.options["ATTLOGStamp"] == "None" and terminal.options["TimeZone"] == "8"
    assert terminal.options["Realtime"] == "1"
    first, second = plant.store.punches
    assert (first.terminal_sn, first.user_id, first.state, first.verify) == (SN, "1001", 255, 15)
    assert first.device_time == datetime(2026, 3, 2, 7, 58, 3) and first.raw.startswith(b"1001\t2026-03-02 07:58:03")
    assert plant.store.cursors[SN].stamp == "2"
    assert plant.store.batches[0].terminal == "gate-1"
    assert terminal.run_once() and len(plant.store.punches) == 2, "nothing new, nothing re-sent"
    status = plant.receiver.status(SN)
    assert status.punches == 2 and status.user_agent.startswith("iClock") and status.last_contact == plant.clock.now()


def test_receiver_down_the_terminal_keeps_its_records_and_delivers_them_once_when_it_is_back(plant):
    terminal = plant.terminal(batch_size=3)
    terminal.punch("1000", when=datetime(2026, 3, 2, 7, 0))
    assert terminal.run_once()
    plant.stop()
    for minute in range(1, 8):
        terminal.punch(str(1000 + minute), when=datetime(2026, 3, 2, 7, minute))
    assert not terminal.run_once(), "nobody listening: the push fails and the records stay"
    assert not terminal.run_once()
    plant.start()  # a new process, same port, same database
    assert terminal.run_once()
    assert keys(plant.store.punches) == sorted((str(1000 + m), datetime(2026, 3, 2, 7, m)) for m in range(8))
    assert plant.store.cursors[SN].stamp == "8"


def test_a_batch_stored_but_not_acknowledged_is_not_delivered_twice_after_a_restart(plant):
    terminal = plant.terminal()
    terminal.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    terminal.punch("1002", when=datetime(2026, 3, 2, 7, 1))
    plant.store.lose_reply = True
    assert not terminal.run_once(), "no OK: the terminal must send the batch again"
    assert len(plant.store.punches) == 2
    plant.restart()
    terminal.punch("1003", when=datetime(2026, 3, 2, 7, 2))
    assert terminal.run_once()
    assert keys(plant.store.punches) == [
        ("1001", datetime(2026, 3, 2, 7, 0)),
        ("1002", datetime(2026, 3, 2, 7, 1)),
        ("1003", datetime(2026, 3, 2, 7, 2)),
    ]
    assert plant.receiver.status(SN).repeated_batches == 1


def test_a_batch_stored_but_not_acknowledged_is_not_delivered_twice_by_the_same_process(plant):
    terminal = plant.terminal()
    terminal.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    plant.store.lose_reply = True
    assert not terminal.run_once()
    assert terminal.run_once()
    assert keys(plant.store.punches) == [("1001", datetime(2026, 3, 2, 7, 0))]


def test_a_sink_that_cannot_store_makes_the_terminal_send_again(plant):
    terminal = plant.terminal()
    terminal.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    plant.store.fail = True
    assert not terminal.run_once()
    assert plant.store.punches == [] and plant.receiver.status(SN).failed_batches == 1
    plant.store.fail = False
    assert terminal.run_once()
    assert keys(plant.store.punches) == [("1001", datetime(2026, 3, 2, 7, 0))]


def test_a_rebooted_terminal_resumes_after_the_stamp_the_receiver_stored(plant):
    terminal = plant.terminal()
    for minute in range(5):
        terminal.punch("1001", when=datetime(2026, 3, 2, 7, minute))
    assert terminal.run_once()
    plant.restart()
    terminal.acked, terminal.handshaken = 0, False  # the terminal forgot how far it got
    terminal.punch("1002", when=datetime(2026, 3, 2, 8, 0))
    assert terminal.run_once()
    assert terminal.options["ATTLOGStamp"] == "5"
    assert len(plant.store.punches) == 6 and plant.store.batches[-1].punches[0].user_id == "1002"


def test_overlap_resent_inside_a_bigger_batch_is_delivered_once(plant):
    first = b"1001\t2026-03-02 07:00:00\t0\t1\t0\r\n"
    assert plant.post(f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1", first) == (200, "OK")
    both = first + b"1002\t2026-03-02 07:01:00\t0\t1\t0\r\n"
    assert plant.post(f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=2", both) == (200, "OK")
    assert [p.user_id for p in plant.store.punches] == ["1001", "1002"]
    assert plant.store.batches[-1].repeated == 1


def test_an_unknown_serial_number_is_refused_and_reported_once(plant):
    stranger = plant.terminal("STRANGER-9")
    stranger.punch("1001")
    assert not stranger.run_once()
    assert not stranger.run_once()
    assert plant.store.batches == [] and len(stranger.records) == 1
    (report,) = plant.unknown
    assert (report.serial, report.address, report.path) == ("STRANGER-9", "127.0.0.1", "/iclock/cdata")
    status, text = plant.post("/iclock/cdata?SN=STRANGER-9&table=ATTLOG", b"1001\t2026-03-02 07:00:00\r\n")
    assert status == 403 and "unknown" in text
    assert plant.post("/iclock/cdata?table=ATTLOG", b"")[0] == 400


def test_bad_lines_are_reported_and_the_good_ones_stored(plant):
    body = (
        b"1001\t2026-03-02 07:00:00\t0\t1\t0\r\n"
        b"1002\t2026-13-01 07:00:00\t0\t1\t0\r\n"  # month 13
        b"1003\t2026-03-02 07:02:00\t1\t1\t0\r\n"
    )
    assert plant.post(f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=3", body) == (200, "OK")
    assert [p.user_id for p in plant.store.punches] == ["1001", "1003"]
    (bad,) = plant.store.rejected
    assert bad.index == 1 and bad.terminal_sn == SN and "impossible time" in bad.reason


def test_form_encoded_bodies_are_read_raw_or_percent_decoded(plant):
    raw = b"1001\t2026-03-02 07:00:00\t0\t1\t0\r\n"
    form = "application/x-www-form-urlencoded"
    assert plant.post(f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1", raw, form) == (200, "OK")
    encoded = b"1002%092026-03-02+07%3A01%3A00%090%091%090%0D%0A"
    assert plant.post(f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=2", encoded, form) == (200, "OK")
    assert [p.user_id for p in plant.store.punches] == ["1001", "1002"]


def test_time_sync_command_sets_the_terminal_clock_and_the_result_comes_back(plant):
    terminal = plant.terminal(clock_offset=timedelta(hours=3))
    assert terminal.run_once()
    command = plant.receiver.sync_time(SN)
    plant.clock.advance(seconds=40)  # delivered later than queued: the time is "now" at delivery
    assert terminal.run_once()
    assert command.state == "done" and command.text.startswith("SET OPTION DateTime=")
    assert terminal.device_now() == plant.clock.now().astimezone(PLANT_TZ).replace(tzinfo=None)
    (result,) = plant.results
    assert (result.command_id, result.return_code, result.verb, result.matched) == (command.id, 0, "SET OPTION", True)


def test_user_upload_with_a_chinese_name_goes_out_and_comes_back_in_gb18030(plant):
    terminal = plant.terminal()
    upload = plant.receiver.upload_user(SN, "1001", "张三丰", card="12345678")
    query = plant.receiver.queue(SN, "DATA QUERY USERINFO")
    assert terminal.run_once()
    assert terminal.users["1001"]["Name"] == "张三丰"
    assert upload.state == "done" and query.state == "done"
    (table,) = plant.tables
    assert table.table == "OPERLOG" and table.lines == ("USER PIN=1001\tName=张三丰\tPri=0\tCard=12345678",)
    assert "张三丰".encode("gb18030") in table.raw
    terminal.handshaken = False
    assert terminal.run_once() and terminal.options["OPERLOGStamp"] == "1", "operation logs are not sent twice"


def test_a_command_the_terminal_rejects_is_failed_with_its_meaning(plant):
    terminal = plant.terminal()
    command = plant.receiver.queue(SN, "USER ADD PIN=1")
    assert terminal.run_once()
    assert command.state == "failed" and command.result.return_code == -1002
    assert "syntax" in command.result.meaning


def test_an_unconfirmed_command_is_sent_again_later_and_results_for_unknown_ids_are_flagged(plant):
    command = plant.receiver.queue(SN, "CHECK")
    conn = http.client.HTTPConnection("127.0.0.1", plant.port, timeout=5)
    conn.request("GET", f"/iclock/getrequest?SN={SN}")
    assert conn.getresponse().read() == f"C:{command.id}:CHECK\n".encode()
    conn.close()
    terminal = plant.terminal()
    assert terminal.run_once() and terminal.executed == [], "sent a moment ago: not again yet"
    plant.clock.advance(minutes=3)
    assert terminal.run_once() and terminal.executed == ["CHECK"] and command.sends == 2
    assert plant.post(f"/iclock/devicecmd?SN={SN}", b"ID=999999&Return=0&CMD=INFO") == (200, "OK")
    assert plant.results[-1].matched is False


def test_the_date_header_is_the_receivers_clock_and_a_terminal_may_follow_it(plant):
    terminal = plant.terminal(clock_offset=timedelta(minutes=-7), follows_date_header=True)
    assert terminal.run_once()
    assert terminal.device_now() == plant.clock.now().astimezone(PLANT_TZ).replace(tzinfo=None)


def test_the_receiver_will_not_listen_on_every_interface(plant):
    with pytest.raises(ValueError, match="plant LAN"):
        AdmsServer(plant.receiver, "0.0.0.0", 0)
    with pytest.raises(ValueError, match="plant LAN"):
        AdmsServer(plant.receiver, "::", 0)
    AdmsServer(plant.receiver, "0.0.0.0", 0, allow_all_interfaces=True)  # said explicitly: allowed (not started)


def test_a_port_in_use_is_a_clear_error_not_an_exit(plant):
    """werkzeug's make_server calls sys.exit() when it cannot bind; the receiver must raise instead."""
    with (
        serve(plant.receiver, "127.0.0.1", 0) as first,
        pytest.raises(OSError, match="ADMS receiver cannot listen on 127.0.0.1"),
    ):
        AdmsServer(plant.receiver, "127.0.0.1", first.address[1]).start()


def test_construction_does_no_io():
    def boom(*_):
        raise AssertionError("I/O in the constructor")

    AdmsReceiver([PushTerminal(SN)], boom, clock=FrozenClock(), tz=PLANT_TZ, cursor_of=boom)
    AdmsTerminalEmulator(SN, "127.0.0.1", 1, tz=PLANT_TZ)


def test_the_emulator_entry_point_pushes_to_a_receiver(plant):
    import subprocess
    import sys

    from tests.harness.wait import wait_until

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from firmware_bridge.adms.emulator import main; sys.exit(main(sys.argv[1:]))",
        ]
        + ["--server", f"127.0.0.1:{plant.port}", "--serial", SN, "--punch-every", "0.05", "--poll-every", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "pushing to" in proc.stdout.readline()
        wait_until(lambda: len(plant.store.punches) >= 3, 10, "punches from the emulator process")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
