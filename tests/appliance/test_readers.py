"""The appliance daemon with serial readers: an emulated card reader and R30x module on socket://.

Each read is one punch, timed by the appliance (and the record says so); cards and pages nobody
owns, unreadable fingers and garbage lines are kept as incidents; health follows the port.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.capture.readers import NOISE_AFTER, NOISE_ALARM, NOISE_QUIET_S
from appliance.store import LogRecord, Punch, TerminalHealth
from firmware_bridge.readers import r30x as r30x_protocol
from firmware_bridge.readers.emulators import CardReaderEmulator, R30xEmulator
from firmware_bridge.readers.endpoints import SocketEndpoint
from tests.appliance.test_push import Appliance, appliance_settings
from tests.harness.wait import wait_until

NO_FINGER = (r30x_protocol.GEN_IMG, r30x_protocol.NO_FINGER)  # the module's answer once the finger is lifted


@pytest.fixture
def card_port() -> Iterator[SocketEndpoint]:
    endpoint = SocketEndpoint().plug()
    yield endpoint
    endpoint.unplug()


@pytest.fixture
def r30x_port() -> Iterator[SocketEndpoint]:
    endpoint = SocketEndpoint().plug()
    yield endpoint
    endpoint.unplug()


@pytest.fixture
def appliance(tmp_path: Path, clock, card_port, r30x_port) -> Iterator[Appliance]:
    (tmp_path / "cards.csv").write_text("卡号,工号\n0012345678,E001\n87654321,E003\n", encoding="utf-8-sig")
    (tmp_path / "pages.csv").write_text("page,employee\n0,E001\n1,E002\n", encoding="utf-8")
    settings = appliance_settings(
        tmp_path,
        [
            {"name": "canteen-card", "kind": "card", "url": card_port.url, "cards_file": "cards.csv"},
            {"name": "office-finger", "kind": "r30x", "url": r30x_port.url, "pages_file": "pages.csv"},
        ],
    )
    plant = Appliance(settings, clock).start()
    yield plant
    plant.stop()


@pytest.fixture
def card_reader(appliance, card_port) -> CardReaderEmulator:
    # open, not only connected: opening a port discards what arrived before (pyserial's reset_input_buffer),
    # so a line written between the connection and the end of the open would be lost, as on a real line
    reader = appliance.daemon.readers.readers["canteen-card"]
    wait_until(lambda: reader.loop.opens, message="the appliance to open the card reader's port")
    return CardReaderEmulator(card_port)


@pytest.fixture
def r30x(appliance, r30x_port) -> Iterator[R30xEmulator]:
    module = R30xEmulator(r30x_port).start()
    module.enroll(0, "finger-zhang")
    module.enroll(1, "finger-li")
    module.enroll(7, "finger-visitor")  # enrolled on the module, but not in the page table
    yield module
    module.stop()


def reads(terminal: str) -> list[tuple[str, str]]:
    query = Punch.select().where(Punch.terminal == terminal).order_by(Punch.seq)
    return [(p.user_id, p.device_time) for p in query]


def reader_incidents(appliance: Appliance) -> list[dict]:
    """The reader's incidents, without the readers' signed identity (tests/cloud/test_report_arbitrator.py)."""
    return [r for r in appliance.records("incident") if r["kind"] != "terminal_identity"]


def health(name: str) -> TerminalHealth:
    return TerminalHealth.get_by_id(name)


def test_a_card_is_one_punch_timed_by_the_appliance(appliance, card_reader, clock):
    card_reader.present_decimal(12345678)
    card_reader.present_decimal(12345678)  # held at the reader: it repeats
    wait_until(lambda: reads("canteen-card"), message="the card read stored")
    clock.advance(seconds=30)
    card_reader.present_decimal(87654321)
    wait_until(lambda: len(reads("canteen-card")) == 2, message="the second card")
    assert reads("canteen-card") == [("E001", "2026-03-02T08:00:00"), ("E003", "2026-03-02T08:00:30")]
    first = appliance.records("punch")[0]
    assert first["src"] == "card" and first["emp"] == "E001"
    assert first["term"]["time_src"] == "appliance" and first["term"]["sn"] == "canteen-card"
    assert bytes.fromhex(first["term"]["raw"]) == b"0012345678"
    assert appliance.chain_verifies() == LogRecord.select().count()


def test_unknown_cards_and_garbage_are_recorded_not_punched(appliance, card_reader, caplog):
    card_reader.present_decimal(99)
    card_reader.write_raw(b"\xff\xfeNOISE\r\n")
    card_reader.present_decimal(12345678)
    wait_until(lambda: reads("canteen-card"), message="the good read after the bad ones")
    incidents = wait_until(lambda: len(reader_incidents(appliance)) == 2 and reader_incidents(appliance))
    unknown, garbage = incidents
    assert unknown["kind"] == "unknown_card" and unknown["term"]["card"] == "99"
    assert unknown["term"]["name"] == "canteen-card" and bytes.fromhex(unknown["term"]["raw"]) == b"0000000099"
    assert garbage["kind"] == "bad_reader_read" and "not a card read" in garbage["reason"]
    assert [u for u, _ in reads("canteen-card")] == ["E001"]
    told = [r for r in caplog.records if r.name == "appliance.capture.readers" and "not in the card table" in r.message]
    assert len(told) == 1


def test_fingers_become_punches_and_strangers_incidents(appliance, r30x, clock):
    wait_until(lambda: health("office-finger").available, message="the module open")
    r30x.place("finger-li")
    wait_until(lambda: reads("office-finger"), message="the finger's punch")
    r30x.lift()
    wait_until(lambda: r30x.replies[-1] == NO_FINGER, message="the sensor empty again")
    r30x.place("finger-visitor")
    wait_until(lambda: reader_incidents(appliance), message="the unknown page recorded")
    r30x.lift()
    wait_until(lambda: r30x.replies[-1] == NO_FINGER, message="the sensor empty again")
    r30x.place("finger-nobody")
    wait_until(lambda: len(reader_incidents(appliance)) == 2, message="the unidentified finger recorded")
    assert reads("office-finger") == [("E002", "2026-03-02T08:00:00")]
    punch = appliance.records("punch")[0]
    assert punch["src"] == "r30x" and punch["term"]["time_src"] == "appliance" and punch["term"]["uid"] == 1
    page, nobody = reader_incidents(appliance)
    assert page["kind"] == "unknown_page" and page["term"]["page"] == 7
    assert nobody["kind"] == "finger_not_identified"


def test_reader_health_follows_the_port(appliance, card_reader, card_port, clock):
    row = wait_until(lambda: health("canteen-card").available and health("canteen-card"), message="available")
    assert row.serial == "canteen-card" and row.last_error == ""
    clock.advance(minutes=5)
    appliance.daemon.readers.tick()
    assert health("canteen-card").last_contact_ms == int(clock.now().timestamp() * 1000), "silent but open"
    card_port.unplug()
    row = wait_until(lambda: not health("canteen-card").available and health("canteen-card"), message="unplugged")
    assert card_port.url in row.last_error, "the reason names the port"
    before = row.last_contact_ms
    clock.advance(minutes=5)
    appliance.daemon.readers.tick()
    assert health("canteen-card").last_contact_ms == before, "an unplugged reader's contact does not move"
    card_port.replug()
    wait_until(lambda: health("canteen-card").available, timeout=20, message="back after replug")


def _noise(size: int, seed: int) -> bytes:
    """Line noise: random bytes and line ends, but no digit or hex letter, so no line reads as a card."""
    alphabet = bytes(b for b in range(256) if not chr(b).isalnum() or b > 127)
    rng = random.Random(seed)
    return bytes(rng.choice(alphabet) for _ in range(size))


def test_a_noisy_line_is_one_counted_episode_not_a_flood_of_records(appliance, card_reader, clock):
    noise = _noise(20_000, seed=7) + b"\r\n"
    for at in range(0, len(noise), 500):
        card_reader.write_raw(noise[at : at + 500])
    reader = appliance.daemon.readers.readers["canteen-card"]
    wait_until(lambda: health("canteen-card").last_error == NOISE_ALARM, message="the alarm on the reader's row")
    card_reader.present_decimal(12345678)  # the line is readable again
    wait_until(lambda: reads("canteen-card"), message="the good read after the noise")
    garbage_lines = reader.reads - 1
    assert garbage_lines > 200, "the noise made hundreds of unreadable lines"
    incidents = wait_until(lambda: len(reader_incidents(appliance)) == 3 and reader_incidents(appliance))
    first, began, ended = incidents
    assert first["kind"] == "bad_reader_read"
    assert (began["kind"], began["state"], ended["kind"], ended["state"]) == (
        "reader_noise",
        "began",
        "reader_noise",
        "ended",
    )
    assert began["term"]["reads"] == NOISE_AFTER and began["term"]["since_ms"] == ended["term"]["since_ms"]
    assert ended["term"]["reads"] == garbage_lines, "every unreadable read is counted"
    assert ended["term"]["bytes"] > 15_000
    wait_until(lambda: health("canteen-card").last_error == "", message="the alarm cleared by the good read")
    assert [u for u, _ in reads("canteen-card")] == ["E001"]
    assert appliance.chain_verifies() == LogRecord.select().count()


def test_noise_that_goes_on_is_recorded_at_a_bounded_rate_and_ends_when_quiet(appliance, card_reader, clock):
    reader = appliance.daemon.readers.readers["canteen-card"]
    noise = _noise(2_000, seed=8)
    card_reader.write_raw(noise)
    wait_until(lambda: health("canteen-card").last_error == NOISE_ALARM, message="the alarm")
    for minute in range(25):  # 25 minutes of noise, a burst every minute
        clock.advance(minutes=1)
        before = reader.reads
        card_reader.write_raw(_noise(300, seed=100 + minute) + b"\r\n")
        wait_until(lambda b=before: reader.reads > b, message=f"minute {minute}'s noise read")
    clock.advance(seconds=NOISE_QUIET_S)
    appliance.daemon.readers.tick()
    noise_records = wait_until(
        lambda: (
            [r for r in reader_incidents(appliance) if r["kind"] == "reader_noise" and r["state"] == "ended"]
            and [r for r in reader_incidents(appliance) if r["kind"] == "reader_noise"]
        )
    )
    states = [r["state"] for r in noise_records]
    assert states == ["began", "continues", "continues", "ended"], "one record per ten minutes at most"
    assert health("canteen-card").last_error == ""


def test_random_byte_streams_never_stop_the_reader(appliance, card_reader, clock, caplog):
    """The short form of bench/fuzz_serial.py: 1,000 random streams, then a good card is a punch."""
    rng = random.Random(11)
    reader = appliance.daemon.readers.readers["canteen-card"]
    with caplog.at_level(logging.ERROR):
        for n in range(1_000):
            data = bytearray(rng.randbytes(rng.randrange(1, 120)))
            data.insert(rng.randrange(0, len(data) + 1), rng.choice(b"\r\n\x03"))
            card_reader.write_raw(bytes(data))
            if n % 100 == 99:
                clock.advance(seconds=1)
        card_reader.write_raw(b"\r\n")
        card_reader.present_decimal(12345678)
        wait_until(lambda: reads("canteen-card"), message="the good card after the garbage")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert reader.loop.available
    kinds = Counter(r["kind"] for r in reader_incidents(appliance))
    assert kinds["bad_reader_read"] + kinds["reader_noise"] <= 10, kinds
