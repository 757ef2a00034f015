"""The daemon's push receiver has limits (issue #23, item 4), on the real daemon over raw sockets.

Before: 300 idle connections took 300 threads of the process that signs and polls every
terminal, a 200 MiB OPERLOG body was read whole and answered 200, a broken chunked body got
500, and ``Stamp=7004%0ATimeZone=-12`` set an option on the terminal through the handshake.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from appliance.config import ConfigError
from appliance.store import LogRecord, Punch, PushCursor
from firmware_bridge.adms.connections import Limits
from punchproof.broker import free_port
from tests.appliance import test_push
from tests.appliance.test_push import SN, Appliance, punches, terminal
from tests.firmware_bridge.test_adms_limits import answer, closed_by_server, connect, exchange, post_head, stream

MIB = 1024 * 1024
ATTLOG = f"/iclock/cdata?SN={SN}&table=ATTLOG"


appliance = test_push.appliance  # the daemon with one push terminal, as test_push runs it


def port(appliance: Appliance) -> int:
    return appliance.settings.push.port


def next_batch_goes_through(appliance: Appliance, pin: str, when: datetime) -> None:
    """The terminal's next push, as it sends one after any answer: stored."""
    line = f"{pin}\t{when:%Y-%m-%d %H:%M:%S}\t0\t1\t0\t0\t0\r\n".encode()
    request = post_head(f"{ATTLOG}&Stamp=99", f"Content-Length: {len(line)}") + line
    assert exchange(port(appliance), request) == (200, b"OK"), "the terminal's next batch was refused"
    assert (pin, when.isoformat()) in punches()


def test_hundreds_of_idle_connections_take_no_threads_and_a_terminals_batch_still_goes_through(appliance):
    assert terminal(appliance).run_once()  # handshake and poll: the receiver's workers are running
    threads = threading.active_count()
    idle = [connect(port(appliance)) for _ in range(300)]  # accepted in this order
    try:
        kept = Limits().max_connections
        assert all(closed_by_server(sock, within=5) for sock in idle[:-kept]), "the oldest closed for newer ones"
        assert threading.active_count() <= threads + Limits().workers, "idle connections take no thread"
        assert appliance.push.server.gate.open_connections == kept
        device = terminal(appliance)
        device.punch("1001", when=datetime(2026, 3, 2, 7, 58))
        assert device.run_once(), "a terminal still gets through"
        assert punches() == [("1001", "2026-03-02T07:58:00")]
    finally:
        for sock in idle:
            sock.close()
    assert threading.active_count() <= threads + Limits().workers


def test_a_200_mib_operlog_body_is_refused_413_without_being_read_and_the_next_batch_is_stored(appliance):
    records = LogRecord.select().count()
    sent = [0]
    with connect(port(appliance)) as sock:
        head = post_head(f"/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1", f"Content-Length: {200 * MIB}")
        sender = threading.Thread(target=stream, args=(sock, head, 200 * MIB, b"USER PIN=1\t" * 6000, sent))
        sender.start()
        status, text = answer(sock, within=10)
        sender.join(10)
    assert status == 413 and b"too large" in text
    assert sent[0] < 32 * MIB, f"the daemon read {sent[0] / MIB:.0f} MiB of a 200 MiB body it refused"
    assert LogRecord.select().count() == records
    next_batch_goes_through(appliance, "1001", datetime(2026, 3, 2, 7, 58))


def test_a_malformed_chunked_body_gets_400_nothing_of_it_is_stored_and_the_next_batch_is_stored(appliance):
    line = b"1001\t2026-03-02 07:58:00\t0\t1\t0\t0\t0\r\n"
    body = f"{len(line):x}\r\n".encode() + line + b"\r\nzz\r\nmore\r\n0\r\n\r\n"
    chunked = post_head(f"{ATTLOG}&Stamp=1", "Transfer-Encoding: chunked")
    status, _ = exchange(port(appliance), chunked + body)
    assert status == 400
    assert Punch.select().count() == 0, "half a body is not a batch"
    well_formed = f"{len(line):x}\r\n".encode() + line + b"\r\n0\r\n\r\n"
    status, text = exchange(port(appliance), chunked + well_formed)
    assert (status, text) == (200, b"OK"), "the terminal sends it again, whole: stored"
    assert punches() == [("1001", "2026-03-02T07:58:00")]
    next_batch_goes_through(appliance, "1002", datetime(2026, 3, 2, 7, 59))


def test_a_stamp_that_is_not_digits_never_reaches_the_terminals_options(appliance):
    line = b"1001\t2026-03-02 07:58:00\t0\t1\t0\t0\t0\r\n"
    request = post_head(f"{ATTLOG}&Stamp=7004%0ATimeZone=-12", f"Content-Length: {len(line)}")
    assert exchange(port(appliance), request + line) == (200, b"OK")
    assert punches() == [("1001", "2026-03-02T07:58:00")] and PushCursor.get_by_id(SN).stamp is None
    appliance.restart()  # the handshake reads the stored cursor
    status, text = exchange(port(appliance), f"GET /iclock/cdata?SN={SN}&options=all HTTP/1.1\r\n\r\n".encode())
    options = text.decode().splitlines()
    assert status == 200 and "ATTLOGStamp=None" in options
    assert [o for o in options if o.startswith("TimeZone=")] == ["TimeZone=8"]
    next_batch_goes_through(appliance, "1002", datetime(2026, 3, 2, 7, 59))


def test_the_limits_come_from_the_push_section(tmp_path, clock):
    """[push] max_connections, idle_seconds, request_seconds, max_body_mb: a plant with more terminals, or one on
    a slow link, can change them without a new release; a wrong value is a configuration error."""
    settings = test_push.appliance_settings(
        tmp_path,
        [{"name": "east-gate", "kind": "adms", "serial": SN}],
        push={"host": "127.0.0.1", "port": free_port(), "max_connections": 4, "max_body_mb": 1},
    )
    plant = Appliance(settings, clock).start()
    try:
        idle = [connect(port(plant)) for _ in range(10)]
        try:
            assert all(closed_by_server(sock, within=5) for sock in idle[:-4]), "the oldest closed for newer ones"
            assert plant.push.server.gate.open_connections == 4
        finally:
            for sock in idle:
                sock.close()
        head = post_head(f"/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1", f"Content-Length: {2 * MIB}")
        status, _ = exchange(port(plant), head)
        assert status == 413
    finally:
        plant.stop()
    with pytest.raises(ConfigError, match="push.max_connections"):
        test_push.appliance_settings(
            tmp_path,
            [{"name": "east-gate", "kind": "adms", "serial": SN}],
            push={"host": "127.0.0.1", "max_connections": 0},
        )
