"""#24.4: clients that send their headers and then stall must not take either site's pages down.

Each request took a pooled SQLite connection before reading its body: 13 stalled bodies used up the pool
and every page, the kiosk included, answered 500. The real pages under gunicorn, as the Pi serves them.
"""

from __future__ import annotations

import socket
import time

import pytest

from appliance.store import POOL_WAIT_S
from appliance.web import POOL
from tests.harness.http import WebClient
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e


def stall(port: int, length: int = 1000) -> socket.socket:
    """A POST whose headers arrive and whose body never does."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        "POST /login HTTP/1.1\r\nHost: pi\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def headers_read(port: int) -> int:
    """Connections to ``port`` whose bytes the server has taken from the kernel (its side's receive queue is
    empty): gunicorn has read their headers and is waiting for the body."""
    taken = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:  # noqa: SIM115 - one read
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port and state == "01" and int(queues.split(":")[1], 16) == 0:
            taken += 1
    return taken


def test_stalled_bodies_and_a_huge_one_leave_every_page_answering(tmp_path):
    system = System(tmp_path, 1, ("127.0.0.1", 1)).configure(register=False)
    port = system.start_web("appliance")
    web = WebClient(f"http://127.0.0.1:{port}")
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="gunicorn to serve")
    stalled = [stall(port) for _ in range(POOL + 4)]
    try:
        wait_until(lambda: headers_read(port) >= len(stalled), timeout=10, message="gunicorn reading the stalled posts")
        started = time.monotonic()
        status, _ = web.get("/kiosk")
        took = time.monotonic() - started
        assert status == 200 and took < POOL_WAIT_S / 2, (status, took)
        status, _ = web.get("/login")
        assert status == 200
        big = stall(port, length=10 * 1024 * 1024)
        answer = big.recv(200)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        big.close()
    finally:
        for sock in stalled:
            sock.close()
        system.stop_all()


def test_head_offices_pages_answer_while_clients_stall_their_uploads(tmp_path):
    """Two slow uploads blocked head office's 2 sync workers for 30 s and got them killed: the workers now
    serve on threads, and a stalled body holds a thread."""
    system = System(tmp_path, 1, ("127.0.0.1", 1)).configure(register=False)
    port = system.start_web("cloud")
    web = WebClient(f"http://127.0.0.1:{port}")
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="gunicorn to serve")
    stalled = [stall(port) for _ in range(4)]
    try:
        wait_until(lambda: headers_read(port) >= len(stalled), timeout=10, message="gunicorn reading the stalled posts")
        started = time.monotonic()
        status, _ = web.get("/login")
        assert status == 200 and time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()
        system.stop_all()
