"""ADMS receiver: ATTLOG lines accepted per second over loopback HTTP, beside the raw parse rate.

Prints, measured in the same run on this machine:
  - the raw parse rate of ``parse_attlog`` on the same lines (no HTTP, no receiver);
  - lines/s accepted by the receiver on its werkzeug server over loopback, pushed as a terminal
    does (a new connection per POST, ``table=ATTLOG&Stamp=n``, CRLF lines), with a sink that
    only keeps the batches (the appliance's store is measured by bench/appliance_signing.py).

Run: .venv/bin/python bench/adms_push.py [--lines 50000] [--batch 500]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.adms.attlog import parse_attlog, split_lines  # noqa: E402
from firmware_bridge.adms.receiver import AdmsReceiver, PushBatch, PushTerminal  # noqa: E402
from firmware_bridge.adms.server import serve  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
SN = "BENCH-ADMS-1"


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def bodies(lines: int, batch: int) -> list[bytes]:
    start = datetime(2026, 3, 2, 6, 0)
    out = []
    for first in range(0, lines, batch):
        rows = (
            f"{100000 + i % 5000}\t{start + timedelta(seconds=i):%Y-%m-%d %H:%M:%S}\t{i % 2}\t15\t0\t0\t0\r\n"
            for i in range(first, min(first + batch, lines))
        )
        out.append("".join(rows).encode("gb18030"))
    return out


def raw_parse_rate(batches: list[bytes]) -> float:
    start = time.perf_counter()
    n = 0
    for body in batches:
        punches, _ = parse_attlog(split_lines(body), serial=SN, tz=TZ, encoding="gb18030")
        n += len(punches)
    return n / (time.perf_counter() - start)


def http_rate(batches: list[bytes]) -> tuple[float, int]:
    stored: list[PushBatch] = []
    receiver = AdmsReceiver([PushTerminal(SN)], stored.append, clock=Clock(), tz=TZ)
    server = serve(receiver, "127.0.0.1", 0)
    host, port = server.address
    try:
        start = time.perf_counter()
        for stamp, body in enumerate(batches, 1):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("POST", f"/iclock/cdata?SN={SN}&table=ATTLOG&Stamp={stamp}", body=body)
            response = conn.getresponse()
            if response.read() != b"OK":
                raise SystemExit(f"batch {stamp} refused: {response.status}")
            conn.close()
        elapsed = time.perf_counter() - start
    finally:
        server.stop()
    accepted = sum(len(b.punches) for b in stored)
    return accepted / elapsed, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="lines per POST")
    args = parser.parse_args()
    batches = bodies(args.lines, args.batch)
    parse = raw_parse_rate(batches)
    rate, accepted = http_rate(batches)
    if accepted != args.lines:
        raise SystemExit(f"only {accepted} of {args.lines} lines were accepted")
    print(f"ATTLOG lines: {args.lines}, {args.batch} per POST ({len(batches)} POSTs)")
    print(f"raw parse (parse_attlog):        {parse:12,.0f} lines/s")
    print(f"receiver over loopback HTTP:     {rate:12,.0f} lines/s  ({rate / parse:.2f} of the raw parse rate)")


if __name__ == "__main__":
    main()
