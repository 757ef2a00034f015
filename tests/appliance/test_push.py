"""The appliance daemon with an ADMS push terminal (the emulator) talking real HTTP to its receiver.

Each punch is signed once: across re-sent batches, a batch re-sent after the daemon restarted,
and a terminal that ignores the stamp and pushes its whole log again. Bad lines become incidents;
unknown serial numbers are refused and recorded; health follows the terminal's calls.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from appliance.config import Settings
from appliance.identity import load_or_create_key
from appliance.runtime.daemon import ApplianceDaemon
from appliance.store import BadRecord, LogRecord, Punch, PushCursor, TerminalHealth
from firmware_bridge.adms.emulator import AdmsTerminalEmulator
from ledger import GENESIS_PREV, SignedRecord, SigningKey, parse
from ledger.messages import Batch
from ledger.verify import verify_batch
from punchproof.broker import free_port
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

SN = "ADMS-0001"


def appliance_settings(tmp_path: Path, terminals: list[dict], **sections: dict) -> Settings:
    """A daemon's settings: its state in tmp_path, no broker listening (the uplink just retries)."""
    cloud_key = tmp_path / "cloud-witness.pub"
    cloud_key.write_text(SigningKey.generate().verify_key.pem())
    data = {
        "plant": {"id": "test-plant", "timezone": "Asia/Shanghai"},
        "appliance": {"id": "pi-01", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "cloud_key_file": str(cloud_key)},
        "terminals": terminals,
        **sections,
    }
    return Settings.from_dict(data, source=str(tmp_path / "appliance.toml"))


class Appliance:
    """The real daemon, restartable on the same state and port."""

    def __init__(self, settings: Settings, clock: FrozenClock) -> None:
        self.settings = settings
        self.clock = clock
        self.daemon: ApplianceDaemon | None = None

    def start(self) -> Appliance:
        self.daemon = ApplianceDaemon(self.settings, clock=self.clock)
        self.daemon.start()
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def push(self):
        assert self.daemon is not None and self.daemon.push is not None
        return self.daemon.push

    def records(self, type_: str) -> list[dict]:
        rows = LogRecord.select().where(LogRecord.type == type_).order_by(LogRecord.seq)
        return [parse(bytes(r.data)) for r in rows]

    def chain_verifies(self) -> int:
        assert self.daemon is not None and self.daemon.writer is not None
        key = load_or_create_key(self.settings.key_path)  # the daemon's own, created at its first start
        rows = LogRecord.select().order_by(LogRecord.seq)
        batch = Batch(self.settings.log_origin, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
        return len(verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV))


@pytest.fixture
def appliance(tmp_path: Path, clock: FrozenClock) -> Iterator[Appliance]:
    port = free_port()
    settings = appliance_settings(
        tmp_path,
        [{"name": "east-gate", "kind": "adms", "serial": SN}],
        push={"host": "127.0.0.1", "port": port},
    )
    plant = Appliance(settings, clock).start()
    yield plant
    plant.stop()


def terminal(appliance: Appliance, serial: str = SN) -> AdmsTerminalEmulator:
    return AdmsTerminalEmulator(serial, "127.0.0.1", appliance.settings.push.port, tz=PLANT_TZ, now=appliance.clock.now)


def punches() -> list[tuple[str, str]]:
    return [(p.user_id, p.device_time) for p in Punch.select().order_by(Punch.seq)]


class BadLine:
    """A record as a terminal with a corrupted log pushes it: 30 February."""

    def __init__(self, pin: str) -> None:
        self.pin = pin

    def line(self) -> str:
        return f"{self.pin}\t2026-02-30 08:00:00\t0\t1\t0\t0\t0"


def test_pushed_punches_are_signed_once_with_the_terminals_account(appliance):
    device = terminal(appliance)
    device.punch("1001", state=0, verify=1, when=datetime(2026, 3, 2, 7, 58, 3))
    device.punch("1002", state=1, verify=15, when=datetime(2026, 3, 2, 7, 59, 0))
    assert device.run_once()
    assert punches() == [("1001", "2026-03-02T07:58:03"), ("1002", "2026-03-02T07:59:00")]
    first = appliance.records("punch")[0]
    assert first["emp"] == "1001" and first["src"] == "adms"
    term = first["term"]
    assert (term["name"], term["sn"], term["t"], term["tz"], term["state"], term["verify"]) == (
        "east-gate",
        SN,
        "2026-03-02T07:58:03",
        "Asia/Shanghai",
        0,
        1,
    )
    assert bytes.fromhex(term["raw"]) == b"1001\t2026-03-02 07:58:03\t0\t1\t0\t0\t0"
    assert "time_src" not in term and "off_ms" not in term, "the terminal's clock, not measured"
    assert PushCursor.get_by_id(SN).stamp == "2"
    # The OK was lost: the terminal sends the same batch again; and then its whole log, with one more.
    device.acked, device.pending = 0, None
    assert device.run_once()
    device.punch("1001", state=1, verify=1, when=datetime(2026, 3, 2, 17, 30, 0))
    device.acked, device.pending = 0, None
    assert device.run_once()
    assert [u for u, _ in punches()] == ["1001", "1002", "1001"]
    assert appliance.chain_verifies() == len(LogRecord.select())


def test_across_a_daemon_restart_nothing_is_stored_twice_and_the_terminal_resumes_after_the_stored_batch(appliance):
    device = terminal(appliance)
    for minute in range(3):
        device.punch(str(1001 + minute), when=datetime(2026, 3, 2, 7, 50 + minute))
    assert device.run_once()
    sent_before = device.pushes
    appliance.restart()
    # 1. The terminal did not hear the OK before the restart: it re-sends the same batch, unchanged.
    device.acked, device.pending = 0, None
    assert device.push(), "answered OK"
    assert appliance.push.receiver.status(SN).repeated_batches == 1, "recognised from the stored cursor"
    # 2. It reboots: the handshake tells it where to resume, and only the new punch is sent.
    device.handshaken = False
    device.punch("1004", when=datetime(2026, 3, 2, 8, 1))
    assert device.run_once()
    assert device.options["ATTLOGStamp"] == "3", "the stamp stored with the last batch"
    assert device.pushes == sent_before + 2
    # 3. A terminal whose log was rebuilt ignores the stamp and pushes everything: nothing twice.
    appliance.restart()
    device.acked, device.pending = 0, None
    device.punch("1005", when=datetime(2026, 3, 2, 8, 2))
    assert device.run_once()
    assert [u for u, _ in punches()] == ["1001", "1002", "1003", "1004", "1005"]
    assert appliance.chain_verifies() == len(LogRecord.select())


def test_gb18030_text_and_bad_lines_become_punches_and_incidents_once(appliance):
    device = terminal(appliance)  # GB18030 on the wire, as Chinese firmware sends it
    device.punch("王䶮", when=datetime(2026, 3, 2, 7, 58))  # 䶮 is in GB18030, not in GBK
    device.records.append(BadLine("1003"))
    device.punch("1002", when=datetime(2026, 3, 2, 7, 59))
    assert device.run_once()
    assert punches() == [("王䶮", "2026-03-02T07:58:00"), ("1002", "2026-03-02T07:59:00")]
    (incident,) = appliance.records("incident")
    assert incident["kind"] == "bad_terminal_record" and "impossible time" in incident["reason"]
    assert bytes.fromhex(incident["term"]["raw"]) == b"1003\t2026-02-30 08:00:00\t0\t1\t0\t0\t0"
    assert incident["term"]["sn"] == SN
    appliance.restart()
    device.acked, device.pending = 0, None  # everything again, bad line included
    assert device.run_once()
    assert len(appliance.records("incident")) == 1 and BadRecord.select().count() == 1
    assert len(punches()) == 2


def test_an_unknown_serial_is_refused_and_recorded_once(appliance):
    stranger = terminal(appliance, "NOT-OURS-9")
    stranger.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    assert not stranger.run_once(), "refused"
    assert not stranger.run_once()
    (incident,) = wait_until(lambda: appliance.records("incident"), message="the incident committed")
    assert incident["kind"] == "unknown_terminal" and incident["term"]["sn"] == "NOT-OURS-9"
    assert incident["term"]["addr"] == "127.0.0.1"
    assert Punch.select().count() == 0
    assert len(appliance.records("incident")) == 1


def test_health_follows_the_terminals_calls(appliance, clock):
    push = appliance.push
    push.tick()
    row = TerminalHealth.get_by_id("east-gate")
    assert (row.available, row.serial, row.last_contact_ms) == (False, SN, None)
    assert "not called yet" in row.last_error
    assert terminal(appliance).run_once()
    push.tick()
    row = TerminalHealth.get_by_id("east-gate")
    assert row.available and row.last_error == "" and row.last_contact_ms == int(clock.now().timestamp() * 1000)
    clock.advance(seconds=61)
    push.tick()
    row = TerminalHealth.get_by_id("east-gate")
    assert not row.available and "no call for 61 s" in row.last_error


def test_a_push_address_that_cannot_be_bound_yet_is_retried_and_other_terminals_carry_on(tmp_path, clock):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    settings = appliance_settings(
        tmp_path, [{"name": "east-gate", "kind": "adms", "serial": SN}], push={"host": "127.0.0.1", "port": port}
    )
    appliance = Appliance(settings, clock).start()
    try:
        assert not appliance.push.listening
        appliance.push.tick()
        row = TerminalHealth.get_by_id("east-gate")
        assert not row.available and "cannot listen on 127.0.0.1" in row.last_error
        blocker.close()
        appliance.push.tick()
        assert appliance.push.listening
        device = terminal(appliance)
        device.punch("1001", when=datetime(2026, 3, 2, 7, 58))
        assert device.run_once() and len(punches()) == 1
    finally:
        appliance.stop()
        blocker.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "would accept pushes from every network"),
        ("::", "would accept pushes from every network"),
        ("", "push.host: required with an 'adms' terminal"),
        ("plant-lan.local", "is not an IP address"),
    ],
)
def test_the_receiver_must_listen_on_a_specific_lan_address(tmp_path, host, expected):
    with pytest.raises(Exception, match=expected) as info:
        appliance_settings(tmp_path, [{"name": "g", "kind": "adms", "serial": SN}], push={"host": host})
    assert type(info.value).__name__ == "ConfigError"


def test_a_push_section_is_not_needed_without_push_terminals(tmp_path):
    settings = appliance_settings(tmp_path, [{"name": "gate-1", "host": "10.0.0.5"}])
    assert settings.push.host == "" and json.dumps(settings.masked())
