"""ZK: download of N attendance records from the emulator over loopback TCP.

Prints, measured in the same run on this machine (the emulator runs in its own process, so it
does not share the GIL with the client being measured; the terminal's encoded log is warmed first):
  - the floor: pyzk 0.9 ``read_with_buffer`` (the raw transfer, no parsing), best of 3;
  - our ``ZKTerminal.download()`` end to end (connect, serial, clock, sizes, disable, chunked
    transfer over our own session, linear parse into RawPunch, enable, exit), best of 3, as a
    ratio to the floor (target <= 1.2x);
  - pyzk 0.9 ``get_attendance()``, which is quadratic, measured at N itself (seconds at 100,000 records;
    it was once extrapolated from smaller sizes, which overstated it 2x: only measured figures are printed),
    and at each of --pyzk-records as well if given. Target: ours >= 10x faster.

Run: .venv/bin/python bench/zk_download.py [--records 100000] [--pyzk-records 25000 50000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zk import ZK  # noqa: E402

from firmware_bridge.zk import wire  # noqa: E402
from firmware_bridge.zk.driver import ZKTerminal  # noqa: E402
from firmware_bridge.zk.emulator import StoredPunch, TerminalState, ZKEmulator  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")


def serve(records: int, ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    state = TerminalState(serial="BENCH-ZK", tz=TZ)
    for i in range(500):
        state.add_user(str(10000 + i), f"工人{i}")
    start = datetime(2025, 1, 1, 7, 0)
    state.punches.extend(  # directly into the log: no listeners, no per-punch lock round trips
        StoredPunch(1 + i % 500, str(10000 + i % 500), start + timedelta(seconds=37 * i), 1, i % 2)
        for i in range(records)
    )
    state.attendance_buffer()  # encode once: the terminal's log already exists
    with ZKEmulator(state, port=0, udp=False) as emulator:
        ready.put(emulator.address)
        stop.wait()


def best(n: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def pyzk_raw(host: str, port: int) -> float:
    conn = ZK(host, port=port, timeout=30, ommit_ping=True).connect()
    try:
        t0 = time.perf_counter()
        data, _size = conn.read_with_buffer(wire.CMD_ATTLOG_RRQ)
        return time.perf_counter() - t0
    finally:
        conn.disconnect()


def pyzk_get_attendance(host: str, port: int) -> tuple[float, int]:
    conn = ZK(host, port=port, timeout=60, ommit_ping=True).connect()
    try:
        t0 = time.perf_counter()
        records = conn.get_attendance()
        return time.perf_counter() - t0, len(records)
    finally:
        conn.disconnect()


def with_emulator(records: int, body: Callable[[str, int], object]) -> object:
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=serve, args=(records, ready, stop), daemon=True)
    proc.start()
    try:
        host, port = ready.get(timeout=120)
        return body(host, port)
    finally:
        stop.set()
        proc.join(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pyzk-records", type=int, nargs="*", default=[], help="more sizes to measure it at")
    args = parser.parse_args()
    n = args.records

    def main_run(host: str, port: int) -> dict[str, float]:
        raw = min(pyzk_raw(host, port) for _ in range(3))
        terminal = ZKTerminal(host, port, tz=TZ, timeout=30)
        ours, download = best(3, terminal.download)
        assert len(download.punches) == n and not download.rejected  # type: ignore[attr-defined]
        out = {"raw": raw, "ours": ours}
        out["pyzk"], got = pyzk_get_attendance(host, port)
        assert got == n
        return out

    print(f"ZK download of {n} records (40 B each) over loopback TCP, emulator in its own process")
    figures = with_emulator(n, main_run)
    assert isinstance(figures, dict)
    raw, ours = figures["raw"], figures["ours"]
    print(f"  pyzk read_with_buffer (raw transfer, the floor)   {raw:7.3f} s")
    print(f"  our ZKTerminal.download() (end to end)          {ours:7.3f} s   {ours / raw:5.2f}x the floor (<= 1.2x)")
    for size in args.pyzk_records:
        seconds, got = with_emulator(size, pyzk_get_attendance)  # type: ignore[misc]
        assert got == size
        print(f"  pyzk get_attendance() at {size:>7} records         {seconds:7.3f} s   (measured)")
    pyzk, label = figures["pyzk"], "measured"
    print(f"  pyzk get_attendance() at {n:>7} records         {pyzk:7.3f} s   ({label})")
    print(f"  ours vs pyzk get_attendance: {pyzk / ours:6.1f}x faster (target >= 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
