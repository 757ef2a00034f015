"""The push receiver's limits, on the wire: connections, time and body size are bounded, what is
malformed is answered 400, and the terminal's next batch always goes through."""

from __future__ import annotations

import itertools
import socket
import threading
from datetime import datetime, timedelta

import pytest

from firmware_bridge.adms.connections import DeadlineReader, Limits
from tests.firmware_bridge.test_adms_receiver import SN, Plant, keys
from tests.harness.wait import wait_until

ATTLOG = f"/iclock/cdata?SN={SN}&table=ATTLOG"
MIB = 1024 * 1024
MINUTES = itertools.count()


@pytest.fixture
def make_plant(clock):
    plants: list[Plant] = []

    def make(**limits) -> Plant:
        plants.append(Plant(clock, Limits(**limits)).start())
        return plants[-1]

    yield make
    for plant in plants:
        plant.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def answer(sock: socket.socket, within: float = 5.0) -> tuple[int, bytes]:
    """Status and body of the reply on ``sock``, read to the end."""
    sock.settimeout(within)
    reply = b""
    try:
        while chunk := sock.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass  # after the reply: the receiver stopped reading a body it refused
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), f"no HTTP answer: {reply[:80]!r}"
    return int(head.split()[1]), body


def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    with connect(port) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # the request ends here, whatever its headers said
        return answer(sock)


def post_head(path: str, *headers: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: pi\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def next_batch_goes_through(plant: Plant) -> None:
    """The terminal pushes its next punch, as it does after any answer: it is stored, once."""
    stored = len(plant.store.punches)
    when = datetime(2026, 3, 2, 9, 0) + timedelta(minutes=next(MINUTES))
    line = f"2001\t{when:%Y-%m-%d %H:%M:%S}\t0\t1\t0\t0\t0\r\n".encode()
    assert plant.post(f"{ATTLOG}&Stamp={200_000 + when.minute}", line) == (200, "OK")
    assert keys(plant.store.punches[stored:]) == [("2001", when)]


def test_silent_connections_cost_no_thread_and_are_closed_after_the_idle_timeout(make_plant):
    plant = make_plant(idle_s=0.5)
    next_batch_goes_through(plant)  # the workers that serve requests exist now
    threads = threading.active_count()
    silent = [connect(plant.port) for _ in range(50)]
    seen = []

    def closed(sock: socket.socket) -> bool:
        seen.append(threading.active_count())
        return closed_by_server(sock, within=5)

    try:
        assert all(closed(sock) for sock in silent), "a silent connection is closed after idle_s"
    finally:
        for sock in silent:
            sock.close()
    assert max(seen) == threads, "a silent connection must not take a thread"
    assert plant.server.gate.closed_idle == 50
    next_batch_goes_through(plant)


def test_at_the_connection_limit_the_oldest_silent_connection_makes_room(make_plant):
    plant = make_plant(max_connections=4, idle_s=60)
    silent = [connect(plant.port) for _ in range(10)]  # accepted in this order
    try:
        assert all(closed_by_server(sock, within=5) for sock in silent[:6]), "the six oldest closed for newer ones"
        assert plant.server.gate.evicted == 6 and plant.server.gate.open_connections == 4
        next_batch_goes_through(plant)  # room made for the terminal too
        assert closed_by_server(silent[6], within=5)
    finally:
        for sock in silent:
            sock.close()


def test_a_slow_request_is_cut_at_its_deadline_and_when_all_are_slow_a_new_connection_is_told_busy(make_plant):
    plant = make_plant(max_connections=2, workers=1, request_s=1.0)
    unfinished = post_head(ATTLOG, "Content-Length: 100") + b"1001\t2026"  # a request that never ends
    slow = [connect(plant.port), connect(plant.port)]  # one on the worker, one waiting for it
    try:
        for sock in slow:
            sock.sendall(unfinished)
        assert [answer(sock)[0] for sock in slow] == [408, 408], "each request has request_s to arrive"
    finally:
        for sock in slow:
            sock.close()
    gate = plant.server.gate
    wait_until(lambda: gate.open_connections == 0, 5, "the timed-out requests let go")
    slow = [connect(plant.port), connect(plant.port)]
    try:
        for sock in slow:
            sock.sendall(unfinished)
        wait_until(lambda: gate.busy_connections == 2, 5, "both requests being received")
        with connect(plant.port) as third:
            assert answer(third)[0] == 503 and gate.refused == 1
    finally:
        for sock in slow:
            sock.close()
    wait_until(lambda: gate.open_connections == 0, 5, "the abandoned requests let go")
    next_batch_goes_through(plant)
    assert [p.user_id for p in plant.store.punches] == ["2001"], "the slow requests stored nothing"


def test_a_request_that_stops_half_way_is_cut_at_its_deadline(make_plant):
    plant = make_plant(request_s=0.5)
    with connect(plant.port) as stalled_body:
        stalled_body.sendall(post_head(ATTLOG, "Content-Length: 100") + b"1001\t2026-03-02")
        status, text = answer(stalled_body)
        assert status == 408 and b"in time" in text
    with connect(plant.port) as stalled_head:
        stalled_head.sendall(b"POST /iclock/cdata?SN=" + SN.encode() + b" HTTP/1.1\r\nHost: pi\r\n")
        assert closed_by_server(stalled_head, within=5)
    assert plant.store.batches == []
    next_batch_goes_through(plant)


def test_the_deadline_holds_for_the_whole_request_not_for_each_read():
    """A byte now and then does not keep a request alive (a frozen clock, moved by hand)."""
    now = [100.0]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineReader(ours, deadline=101.0, budget=10, monotonic=lambda: now[0])
        buffer = bytearray(4)
        for _ in range(3):
            theirs.sendall(b"x")
            assert reader.readinto(memoryview(buffer)) == 1
            now[0] += 0.3  # each read well inside any per-read timeout
        theirs.sendall(b"y")
        now[0] = 101.0
        with pytest.raises(TimeoutError):
            reader.readinto(memoryview(buffer))
        now[0] = 100.0
        theirs.sendall(b"z" * 20)
        assert reader.readinto(memoryview(bytearray(64))) == 7 and reader.budget == 0
        assert reader.readinto(memoryview(buffer)) == 0, "past its budget a request reads as ended"


def stream(sock: socket.socket, head: bytes, total: int, piece: bytes, sent: list[int]) -> None:
    """Send ``head``, then ``piece`` again and again up to ``total`` bytes or until refused."""
    try:
        sock.sendall(head)
        while sent[0] < total:
            sent[0] += sock.send(piece)
    except OSError:
        pass


def test_a_full_log_in_one_body_is_stored_and_a_200_mib_body_is_refused_413_unread(make_plant):
    plant = make_plant()
    start = datetime(2026, 3, 1, 0, 0)
    log = b"".join(
        f"{10000 + i % 3000}\t{start + timedelta(seconds=7 * i):%Y-%m-%d %H:%M:%S}\t0\t1\t0\t0\t0\r\n".encode()
        for i in range(100_000)
    )
    assert len(log) > 3 * MIB
    assert plant.post(f"{ATTLOG}&Stamp=100000", log) == (200, "OK"), "a terminal's whole log is a real batch"
    assert len(plant.store.punches) == 100_000

    sent = [0]
    with connect(plant.port) as sock:
        head = post_head(f"/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=9", f"Content-Length: {200 * MIB}")
        sender = threading.Thread(target=stream, args=(sock, head, 200 * MIB, b"x" * 65536, sent))
        sender.start()
        status, text = answer(sock, within=10)
        sender.join(10)
    assert status == 413 and b"too large" in text
    assert sent[0] < 32 * MIB, f"the receiver read {sent[0] / MIB:.0f} MiB of a body it refused"
    assert plant.tables == []
    next_batch_goes_through(plant)


def test_a_chunked_body_is_refused_413_as_soon_as_it_passes_the_cap(make_plant):
    plant = make_plant(max_body_bytes=MIB)
    sent = [0]
    piece = b"10000\r\n" + b"x" * 65536 + b"\r\n"  # 64 KiB chunks, for ever
    with connect(plant.port) as sock:
        sender = threading.Thread(
            target=stream, args=(sock, post_head(ATTLOG, "Transfer-Encoding: chunked"), 200 * MIB, piece, sent)
        )
        sender.start()
        status, _ = answer(sock, within=10)
        sender.join(10)
    assert status == 413
    assert sent[0] < 16 * MIB, f"the receiver read {sent[0] / MIB:.0f} MiB past a 1 MiB cap"
    assert plant.store.batches == []
    next_batch_goes_through(plant)


MALFORMED = {
    "chunk size not hex": post_head(ATTLOG, "Transfer-Encoding: chunked") + b"zz\r\n1001\r\n0\r\n\r\n",
    "negative chunk size": post_head(ATTLOG, "Transfer-Encoding: chunked") + b"-5\r\n1001\r\n0\r\n\r\n",
    "chunk without its line end": post_head(ATTLOG, "Transfer-Encoding: chunked") + b"2\r\n1001\r\n0\r\n\r\n",
    "chunked body cut short": post_head(ATTLOG, "Transfer-Encoding: chunked") + b"20\r\n1001\t2026",
    "no last chunk": post_head(ATTLOG, "Transfer-Encoding: chunked") + b"4\r\n1001\r\n",
    "unknown transfer coding": post_head(ATTLOG, "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
    "chunked and a length": post_head(ATTLOG, "Transfer-Encoding: chunked", "Content-Length: 5") + b"0\r\n\r\n",
    "two different lengths": post_head(ATTLOG, "Content-Length: 4", "Content-Length: 5") + b"1001\t",
    "length not a number": post_head(ATTLOG, "Content-Length: 4x") + b"1001",
    "negative length": post_head(ATTLOG, "Content-Length: -1") + b"1001",
    "body shorter than its length": post_head(ATTLOG, "Content-Length: 50") + b"1001\t2026-03-02 07:00:00",
    "HTTP/2.0 request line": f"POST {ATTLOG} HTTP/2.0\r\nContent-Length: 0\r\n\r\n".encode(),
    "HTTP/0.9 request line": f"GET {ATTLOG}\r\n".encode(),
    "garbled version": f"POST {ATTLOG} HTTP/1.x\r\nContent-Length: 0\r\n\r\n".encode(),
}


def test_malformed_framing_is_answered_400_and_the_next_batch_is_stored(make_plant):
    plant = make_plant()
    answers = {case: exchange(plant.port, request)[0] for case, request in MALFORMED.items()}
    assert answers == dict.fromkeys(MALFORMED, 400)
    assert plant.store.batches == []
    next_batch_goes_through(plant)


def test_a_stamp_that_is_not_digits_is_never_echoed_into_the_handshake(make_plant):
    plant = make_plant()
    line = b"1001\t2026-03-02 07:00:00\t0\t1\t0\r\n"
    assert plant.post(f"{ATTLOG}&Stamp=7004%0ATimeZone=-12", line) == (200, "OK"), "the punch is stored anyway"
    assert [p.user_id for p in plant.store.punches] == ["1001"]
    assert plant.store.cursors[SN].stamp is None
    status, handshake = exchange(plant.port, f"GET /iclock/cdata?SN={SN}&options=all HTTP/1.1\r\n\r\n".encode())
    lines = handshake.decode().splitlines()
    assert status == 200 and "TimeZone=8" in lines and "TimeZone=-12" not in lines
    assert "ATTLOGStamp=None" in lines and "Stamp=None" in lines
    # A cursor stored before stamps were checked is not echoed either.
    plant.store.cursors[SN] = type(plant.store.cursors[SN])("7004\nTimeZone=-12", "0" * 64)
    plant.restart()
    _, handshake = exchange(plant.port, f"GET /iclock/cdata?SN={SN}&options=all HTTP/1.1\r\n\r\n".encode())
    assert "TimeZone=-12" not in handshake.decode().splitlines() and "ATTLOGStamp=None" in handshake.decode()
    assert plant.post(f"/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1%0ADelay=1", b"USER PIN=1") == (200, "OK")
    _, handshake = exchange(plant.port, f"GET /iclock/cdata?SN={SN}&options=all HTTP/1.1\r\n\r\n".encode())
    assert "Delay=1" not in handshake.decode().splitlines() and "OPERLOGStamp=None" in handshake.decode()
