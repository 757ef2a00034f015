"""Figure: the plant's pages under load from a second process, and the appliance's memory meanwhile.

The 5,000-worker plant of ``plant_burst.py`` (real daemon, gunicorn, 20 emulated terminals), with
punches trickling in (2 a second, all within the run) so the board's version keeps moving. From this process, on
loopback: 20 kiosks hold ``/kiosk/events`` streams, and 200 board clients, logged in (8 sessions
shared among them: each login costs a deliberate password hash), each poll as the page's
fallback does — ``/board/version`` every ``--every`` seconds on a kept-alive connection, and the
board's rows (``/?partial=1&cat=missing``, the missing workers) when the version moved. No wrk on
this machine: threads with http.client.

Printed: requests, errors, p50/p99 latency per kind; the kiosks' events: each kiosk must show
every punch made during the run, within 1 s (the streams stay open until the last punch has been
shown, or 10 s after it); and the memory of the daemon + gunicorn master + workers at that load
(the sample of highest RSS sum and of highest PSS sum, every 2 s), beside the 200 MB target.

    .venv/bin/python bench/plant_pages_load.py [--seconds 60] [--clients 200] [--kiosks 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plant_common import TZ, PeakMemory, PiBudget, Plant, SSEClient, decode, login, percentile  # noqa: E402

MEMORY_TARGET = 200 * 1024 * 1024
LATENCY_TARGET_S = 1.0
SESSIONS = 8


class BoardClient(threading.Thread):
    def __init__(self, base: str, cookie: str, every: float, until: float, results: dict, lock) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.base, self.cookie, self.every, self.until = base, cookie, every, until
        self.results, self.lock = results, lock

    def _get(self, conn: http.client.HTTPConnection, kind: str, path: str) -> str | None:
        started = time.monotonic()
        try:
            conn.request("GET", path, headers={"Cookie": self.cookie})
            response = conn.getresponse()
            body = response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            ok, body = False, b""
        with self.lock:
            self.results[kind].append((time.monotonic() - started, ok))
        return body.decode("utf-8", errors="replace") if ok else None

    def run(self) -> None:
        host, port = self.base.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        seen = ""
        time.sleep(self.every * (hash(self.name) % 1000) / 1000)  # spread the clients over a period
        while time.monotonic() < self.until:
            tick = time.monotonic()
            text = self._get(conn, "board version", "/board/version")
            if text:
                version = json.loads(text)["version"]
                if version != seen:
                    seen = version
                    self._get(conn, "board rows (missing)", "/?partial=1&cat=missing")
            time.sleep(max(0.0, self.every - (time.monotonic() - tick)))
        conn.close()


def _shown(kiosk: SSEClient) -> int:
    return sum(1 for e in kiosk.events if e[1] == "punch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--every", type=float, default=1.0, help="each board client's poll period, s")
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument(
        "--pi3-slowdown",
        type=float,
        default=None,
        help="run the appliance in a cgroup with a Pi 3's budget: 4 cores this many times slower than one here, 800 MB",
    )
    args = parser.parse_args()
    budget = PiBudget(args.pi3_slowdown) if args.pi3_slowdown else None
    if budget:
        print(budget.describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="plant-load-") as tmp:
        change = datetime.now(TZ).replace(second=0, microsecond=0) + timedelta(minutes=2)
        plant = Plant(Path(tmp), workers=args.workers, change_at=change, budget=budget).start()
        cookies = [login(plant.base) for _ in range(SESSIONS)]
        kiosks = [SSEClient(plant.base, "/kiosk/events") for _ in range(args.kiosks)]
        for k in kiosks:
            k.start()
        for k in kiosks:
            k.opened.wait(10)
        refused = sum(1 for k in kiosks if k.status != 200)
        results: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        lock = threading.Lock()
        until = time.monotonic() + args.seconds
        clients = [
            BoardClient(plant.base, cookies[n % SESSIONS], args.every, until, results, lock)
            for n in range(args.clients)
        ]
        peak = PeakMemory(plant)
        peak.start()
        for c in clients:
            c.start()
        # shift B arriving, one punch every 0.5 s, the last one 2.5 s before the clients stop
        trickle = [(k * 0.5, plant.terminal_of(n), f"E{n:05d}", 0) for k, n in enumerate(range(1, args.workers, 3))][
            : max(1, int(args.seconds * 2) - 4)
        ]
        sent: dict[str, float] = {}
        feeder = threading.Thread(target=lambda: sent.update(plant.burst(trickle)), daemon=True)
        feeder.start()
        for c in clients:
            c.join(args.seconds + 60)
        feeder.join(60)
        if feeder.is_alive() or len(sent) != len(trickle):
            raise RuntimeError(f"the terminals made {len(sent)} of {len(trickle)} punches in time")
        deadline = time.monotonic() + 10  # the kiosks see the last punch, or the count below says they did not
        while time.monotonic() < deadline and any(_shown(k) < len(sent) for k in kiosks):
            time.sleep(0.1)
        peak.finish()
        for k in kiosks:
            k.close()
        throttled = budget.throttled() if budget else ""
        codes = plant.stop()

    print(
        f"{args.clients} board clients (poll every {args.every:g} s) + {args.kiosks} kiosks on SSE, "
        f"{args.seconds:g} s, {args.workers} workers, {len(trickle)} punches meanwhile"
    )
    for kind, samples in results.items():
        times = [t for t, _ok in samples]
        errors = sum(1 for _t, ok in samples if not ok)
        p99 = percentile(times, 0.99)
        print(
            f"{kind:<22} {len(samples):6d} requests, {errors} errors ({errors / len(samples):.2%}), "
            f"{len(samples) / args.seconds:6.1f}/s  p50 {percentile(times, 0.5) * 1000:6.0f} ms  "
            f"p99 {p99 * 1000:6.0f} ms   p99 / {LATENCY_TARGET_S:g} s = {p99 / LATENCY_TARGET_S:.2f}"
        )
    punch_events = [_shown(k) for k in kiosks]
    delays = []
    for k in kiosks:
        shown = {decode(d)["name"]: at for at, ev, _i, d in k.events if ev == "punch"}
        delays += [shown[f"工人{u[1:]}"] - t for u, t in sent.items() if f"工人{u[1:]}" in shown]
    late = sum(1 for d in delays if d > LATENCY_TARGET_S)
    print(
        f"kiosks: {args.kiosks - refused} streams held, {refused} refused; punch events each: "
        f"min {min(punch_events)} max {max(punch_events)} of {len(sent)} punches made"
    )
    if delays:
        print(
            f"punch -> kiosk event ({len(delays)} events): p50 {percentile(delays, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms; "
            f"{late} later than {LATENCY_TARGET_S:g} s"
        )
    print(peak.highest_rss.report("memory, sample of highest RSS sum:", MEMORY_TARGET))
    print(peak.highest_pss.report("memory, sample of highest PSS sum:", MEMORY_TARGET))
    print(f"exit codes: {codes}")
    if budget:
        print(f"{budget.describe()}: {throttled}")


if __name__ == "__main__":
    main()
