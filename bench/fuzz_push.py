"""Fuzz the appliance's ADMS push receiver: N malformed requests, then a good batch.

Starts the real appliance daemon (its SQLite log, signing and push receiver on loopback, no
broker) in a temporary directory, sends ``--requests`` malformed ADMS requests over raw sockets
from several client threads (random ATTLOG lines and fields, encodings, query strings, headers,
chunked and sized bodies, endpoints), then pushes one good batch as a terminal does and counts
its punches in the store. Prints:

  requests          sent, and the answers by status
  crashes           a 5xx answer, or a connection dropped before any answer
  errors logged     ERROR records logged by the receiver while it ran
  signed records    punches and incidents the run left in the signed log
  good punches      of the good batch pushed after the fuzzing, stored (each once)
  threads           the process's threads at most while it ran (the daemon's and the clients')
  dead threads      the daemon's threads that died (``ApplianceDaemon.dead_threads``)

Exit status 1 if there was a crash or a good punch is missing.

Run: .venv/bin/python bench/fuzz_push.py [--requests 100000] [--seed 1] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import peewee as pw  # noqa: E402

from appliance.config import Settings  # noqa: E402
from appliance.runtime.daemon import ApplianceDaemon  # noqa: E402
from appliance.store import LogRecord, Punch  # noqa: E402
from ledger import SigningKey  # noqa: E402
from punchproof.broker import free_port  # noqa: E402

SN = "FUZZ-ADMS-1"
GOOD_DAY = "2026-03-03"
GOOD_LINES = 100
ENCODINGS = ("gb18030", "utf-8", "utf-16", "latin-1", "shift_jis")
PATHS = ("/iclock/cdata", "/iclock/getrequest", "/iclock/devicecmd", "/iclock/cdata.aspx", "/", "//[", "/iclock/../x")
TABLES = ("ATTLOG", "OPERLOG", "options", "ATTPHOTO", "BIODATA", "", "attlog", "ATTLOG\x00", "表")
HUGE = (str(2**63), str(2**64), "9" * 20, "9" * 400, "-1", "-9223372036854775809", "1e9", "0x10", "١٢", "1_0", " 7 ")


class Cases:
    """Random malformed requests, as raw bytes; each draws a line, a query, a framing and headers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # ---- ATTLOG lines and bodies --------------------------------------------------------------

    def good_line(self) -> str:
        r = self.rng
        return (
            f"{r.randrange(1, 99999)}\t2026-03-0{r.randrange(1, 3)} {r.randrange(24):02d}:{r.randrange(60):02d}:"
            f"{r.randrange(60):02d}\t{r.randrange(6)}\t{r.choice((0, 1, 15, 255))}\t0\t0\t0"
        )

    def bad_line(self) -> str:
        r = self.rng
        fields = self.good_line().split("\t")
        kind = r.randrange(12)
        if kind == 0:
            fields[1] = r.choice(
                (
                    "9" * r.randrange(9, 30),
                    "0001-01-01 00:00:00",
                    "5138-11-16 09:46:40",
                    "1999-12-31 23:59:59",
                    "9999-12-31 23:59:59",
                    "2026-02-30 08:00:00",
                    "2026-13-01 00:00:00",
                    "0",
                    "-5",
                    "now",
                    "",
                )
            )
        elif kind in (1, 2, 3):
            fields[kind + 1] = r.choice(HUGE)
        elif kind == 4:
            fields[0] = r.choice(("-5", "10 01", "", "\x00", "1" * 40, "王" * 20, "a\tb", "PIN=", "%0A", "1001\r"))
        elif kind == 5:
            fields = fields[: r.randrange(0, 2)]
        elif kind == 6:
            fields = ["PIN=" + fields[0], "DateTime=" + r.choice((fields[1], "9" * 20)), "Status=" + r.choice(HUGE)]
        elif kind == 7:
            fields += [r.choice(HUGE)] * r.randrange(1, 50)
        elif kind == 8:
            return "".join(chr(r.randrange(0x20, 0x3000)) for _ in range(r.randrange(1, 80)))
        elif kind == 9:
            return "x" * r.choice((600, 5000, 70000))
        elif kind == 10:
            fields[1] = fields[1].replace("2026", r.choice(("２０２６", "0000", "20266")))
        else:
            fields[r.randrange(len(fields))] = r.choice(HUGE)
        return "\t".join(fields)

    def attlog_body(self) -> bytes:
        r = self.rng
        lines = [self.bad_line() if r.random() < 0.6 else self.good_line() for _ in range(r.randrange(1, 12))]
        text = r.choice(("\r\n", "\n", "\r", "\r\n\r\n")).join(lines) + r.choice(("\r\n", "", "\n"))
        encoding = r.choice(ENCODINGS)
        body = text.encode(encoding, errors="replace")
        mutation = r.randrange(8)
        if mutation == 0:
            body = urllib.parse.quote_from_bytes(body).encode()
        elif mutation == 1 and body:
            at = r.randrange(len(body))
            body = body[:at] + bytes(r.randrange(256) for _ in range(r.randrange(1, 8))) + body[at:]
        elif mutation == 2:
            body = bytes(r.randrange(256) for _ in range(r.randrange(0, 300)))
        return body

    def other_body(self) -> bytes:
        r = self.rng
        return r.choice(
            (
                b"ID=1&Return=0&CMD=INFO",
                f"ID={r.choice(HUGE)}&Return={r.choice(HUGE)}&CMD=DATA".encode(),
                b"ID=\nReturn=\nCMD=Shell\nContent=" + bytes(r.randrange(256) for _ in range(50)),
                "USER PIN=1001\tName=张三\tPri=0\tCard=1".encode("gb18030"),
                bytes(r.randrange(256) for _ in range(r.randrange(0, 500))),
                b"",
            )
        )

    # ---- the request --------------------------------------------------------------------------

    def query(self) -> str:
        r = self.rng
        params: list[tuple[str, str]] = []
        if r.random() < 0.9:
            params.append(("SN", SN if r.random() < 0.8 else r.choice(("UNKNOWN-9", "", SN + "\x00", SN.lower()))))
        if r.random() < 0.8:
            params.append(("table", r.choice(TABLES)))
        if r.random() < 0.8:
            stamp = r.choice(("1", str(r.randrange(10**9)), "7004\nTimeZone=-12", "None", "", "-1", "9" * 40, "１"))
            params.append(("Stamp", stamp))
        if r.random() < 0.2:
            params.append(("options", "all"))
        if r.random() < 0.1:
            params.append(("SN", "DUP"))
        query = urllib.parse.urlencode(params)
        if r.random() < 0.1:
            query += r.choice(("&%ZZ", "&=", "&&", "%00", "&SN=%ff%fe", "#frag", "&" + "a" * 9000))
        return query

    def request(self) -> bytes:
        """Six in ten are well-formed HTTP carrying a malformed ADMS request; the rest break HTTP too."""
        r = self.rng
        http_ok = r.random() < 0.6
        path = r.choice(PATHS) if r.random() < 0.2 else "/iclock/cdata"
        if http_ok:
            method, version = r.choice(("POST", "POST", "POST", "GET")), r.choice(("HTTP/1.1", "HTTP/1.0"))
        else:
            method = r.choice(("POST", "POST", "GET", "PUT", "HEAD", "OPTIONS", "G\x01T"))
            version = r.choice(("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.x", "FOO/1.1", "HTTP/0.9"))
        body = self.attlog_body() if r.random() < 0.7 else self.other_body()
        headers = [("Host", "127.0.0.1"), ("User-Agent", "iClock Proxy/1.09")]
        if r.random() < 0.7:
            headers.append(
                ("Content-Type", r.choice(("application/x-www-form-urlencoded", "text/plain", "", "a/b; c")))
            )
        framing = r.randrange(10) if not http_ok else r.choice((0, 0, 0, 9))
        if framing == 9:
            headers.append(("Transfer-Encoding", "chunked"))
            body = self.chunked(body, broken=False)
        elif framing < 5:
            headers.append(("Content-Length", str(len(body))))
        elif framing == 5:
            headers.append(("Content-Length", r.choice(HUGE + (str(len(body) + 5), str(max(0, len(body) - 3))))))
        elif framing == 6:
            headers.append(
                ("Transfer-Encoding", r.choice(("chunked", "gzip, chunked", "chunked, chunked", "identity")))
            )
            body = self.chunked(body)
        elif framing == 7:
            headers += [("Transfer-Encoding", "chunked"), ("Content-Length", str(len(body)))]
            body = self.chunked(body)
        elif framing == 8:
            headers += [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 1))]
        if r.random() < 0.05:
            headers.append(("Expect", "100-continue"))
        if not http_ok and r.random() < 0.1:
            headers += [(f"X-{i}", "v" * r.randrange(100)) for i in range(r.randrange(1, 120))]
        if r.random() < 0.05:
            headers.append(("X-Binary", bytes(r.randrange(128, 256) for _ in range(20)).decode("latin-1")))
        if not http_ok and r.random() < 0.005:
            headers = [h for h in headers if h[0] != "Content-Length"] + [("Content-Length", str(17 * 1024 * 1024))]
        line = f"{method} {path}?{self.query()} {version}"
        if not http_ok and r.random() < 0.05:
            line = r.choice(
                (f"{method} {path}", "GARBAGE", f"{method}  {path} {version}", f"{method} {'/' * 70000} {version}")
            )
        head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return head.encode("latin-1", errors="replace") + body

    def chunked(self, body: bytes, *, broken: bool = True) -> bytes:
        r = self.rng
        out, at = b"", 0
        while at < len(body):
            size = min(r.randrange(1, 64), len(body) - at)
            out += f"{size:x}\r\n".encode() + body[at : at + size] + b"\r\n"
            at += size
        out += b"0\r\n\r\n"
        if not broken:
            return out
        broken = r.randrange(8)
        if broken == 0:
            out = out.replace(b"\r\n", b"\n", 1)
        elif broken == 1:
            out = b"zz\r\n" + out
        elif broken == 2:
            out = out[: max(0, len(out) - r.randrange(1, 10))]
        elif broken == 3:
            out = b"ffffffffff\r\n" + out
        elif broken == 4:
            out = b"-5\r\n" + out
        elif broken == 5:
            out = out.replace(b"0\r\n\r\n", b"0\r\nX-Trailer: " + b"t" * 2000 + b"\r\n\r\n")
        return out


def send(host: str, port: int, data: bytes) -> int | str:
    """The answer's status, or why there was none ('dropped', 'timeout')."""
    reply = b""
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)  # the body ends here: a short one is answered now, not at the deadline
            except OSError:
                pass  # refused before the end of the body: the answer is still to be read
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except TimeoutError:
        return "timeout"
    except OSError:
        if not reply.startswith(b"HTTP/"):
            return "dropped"
    while reply.startswith(b"HTTP/1.1 100 "):  # 100 Continue, then the answer
        reply = reply.partition(b"\r\n\r\n")[2]
    parts = reply.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return "dropped"
    return int(parts[1])


def good_batch(host: str, port: int) -> bytes:
    lines = [f"GOOD{i:04d}\t{GOOD_DAY} 08:{i // 60:02d}:{i % 60:02d}\t0\t1\t0\t0\t0" for i in range(GOOD_LINES)]
    body = "".join(line + "\r\n" for line in lines).encode("gb18030")
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=4000000001",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "iClock Proxy/1.09"},
        )
        response = conn.getresponse()
        return response.read()
    finally:
        conn.close()


class ErrorCount(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(self.format(record))


def appliance(state: Path) -> ApplianceDaemon:
    cloud_key = state / "cloud-witness.pub"
    state.mkdir(parents=True, exist_ok=True)
    cloud_key.write_text(SigningKey.generate().verify_key.pem())
    settings = Settings.from_dict(
        {
            "plant": {"id": "fuzz-plant", "timezone": "Asia/Shanghai"},
            "appliance": {"id": "pi-fuzz", "state_dir": str(state / "state")},
            "mqtt": {"host": "127.0.0.1", "port": free_port(), "cloud_key_file": str(cloud_key)},
            "terminals": [{"name": "fuzz-gate", "kind": "adms", "serial": SN}],
            "push": {"host": "127.0.0.1", "port": free_port()},
        },
        source=str(state / "appliance.toml"),
    )
    daemon = ApplianceDaemon(settings)
    daemon.start()
    return daemon


def run(requests: int, seed: int, clients: int) -> int:
    errors = ErrorCount()
    logging.basicConfig(level=logging.CRITICAL)  # each rejected line is logged: not on the terminal here
    for name in ("firmware_bridge", "appliance"):
        logging.getLogger(name).addHandler(errors)
    with tempfile.TemporaryDirectory(prefix="fuzz-push-") as tmp:
        daemon = appliance(Path(tmp))
        try:
            assert daemon.push is not None and daemon.push.listening, "the push receiver did not start"
            host, port = daemon.push.server.address
            rng = random.Random(seed)
            cases = Cases(rng)
            payloads = (cases.request() for _ in range(requests))
            statuses: Counter[int | str] = Counter()
            started, peak = time.monotonic(), threading.active_count()
            with ThreadPoolExecutor(clients) as pool:
                for status in pool.map(lambda data: send(host, port, data), payloads, chunksize=64):
                    statuses[status] += 1
                    peak = max(peak, threading.active_count())
            elapsed = time.monotonic() - started
            answer = good_batch(host, port)
            stored = (
                Punch.select()
                .where(
                    Punch.terminal_sn == SN, Punch.user_id.startswith("GOOD"), Punch.device_time.startswith(GOOD_DAY)
                )
                .count()
            )
            distinct = len({(p.user_id, p.device_time) for p in Punch.select().where(Punch.user_id.startswith("GOOD"))})
            dead = daemon.dead_threads()
            signed = Counter(
                dict(LogRecord.select(LogRecord.type, pw.fn.COUNT(LogRecord.seq)).group_by(LogRecord.type).tuples())
            )
        finally:
            daemon.stop()
    crashes = sum(n for s, n in statuses.items() if not isinstance(s, int) or s >= 500)
    print(f"requests:       {requests:,} in {elapsed:.1f} s from {clients} clients (seed {seed})")
    print("answers:        " + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items(), key=lambda i: str(i[0]))))
    print(f"crashes:        {crashes:,} (5xx or dropped connections)")
    print(f"errors logged:  {errors.count:,}" + "".join(f"\n  {line}" for line in errors.first))
    print(f"signed records: {signed['punch']:,} punches, {signed['incident']:,} incidents (one per distinct bad line)")
    print(f"good batch:     answered {answer!r}")
    print(f"good punches:   {stored} of {GOOD_LINES} stored after it ({distinct} distinct)")
    print(f"threads:        {peak} at most while it ran ({clients} of them the clients')")
    print(f"dead threads:   {', '.join(dead) or 'none'} (of the daemon's, after it)")
    return 0 if crashes == 0 and stored == distinct == GOOD_LINES and answer == b"OK" and not dead else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    return run(args.requests, args.seed, args.clients)


if __name__ == "__main__":
    sys.exit(main())
