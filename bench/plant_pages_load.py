"""Figure: the plant's pages under load from a second process, and the appliance's memory meanwhile.

The 5,000-worker plant of ``plant_burst.py`` (real daemon, gunicorn, 20 emulated terminals), with
punches trickling in (2 a second) so the board's version keeps moving. From this process, on
loopback: 20 kiosks hold ``/kiosk/events`` streams, and 200 board clients, logged in (8 sessions
shared among them: each login costs a deliberate password hash), each poll as the page's
fallback does — ``/board/version`` every ``--every`` seconds on a kept-alive connection, and the
board's rows (``/?partial=1&cat=missing``, the missing workers) when the version moved. No wrk on
this machine: threads with http.client.

Printed: requests, errors, p50/p99 latency per kind, the kiosks' events, and the resident size
of the daemon + gunicorn master + workers at that load, beside the 200 MB target.

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

from bench.plant_common import TZ, Plant, SSEClient, login, percentile  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--every", type=float, default=1.0, help="each board client's poll period, s")
    parser.add_argument("--workers", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plant-load-") as tmp:
        change = datetime.now(TZ).replace(second=0, microsecond=0) + timedelta(minutes=2)
        plant = Plant(Path(tmp), workers=args.workers, change_at=change).start()
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
        for c in clients:
            c.start()
        trickle = [(n / 2, plant.terminal_of(n), f"E{n:05d}", 0) for n in range(1, args.workers, 3)][
            : int(args.seconds * 2) - 4
        ]  # shift B arriving, 2 a second
        feeder = threading.Thread(target=plant.burst, args=(trickle,), daemon=True)
        feeder.start()
        time.sleep(args.seconds / 2)
        memory = plant.rss()
        for c in clients:
            c.join(args.seconds + 60)
        feeder.join(60)
        memory_end = plant.rss()
        for k in kiosks:
            k.close()
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
    punch_events = [sum(1 for e in k.events if e[1] == "punch") for k in kiosks]
    print(
        f"kiosks: {args.kiosks - refused} streams held, {refused} refused; punch events each: "
        f"min {min(punch_events)} max {max(punch_events)} of {len(trickle)}"
    )
    for label, rss in (("mid-run", memory), ("end", memory_end)):
        total = sum(rss.values())
        parts = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in rss.items())
        ratio = total / MEMORY_TARGET
        print(f"resident memory {label}: {total / 2**20:.0f} MB ({parts})  / 200 MB target = {ratio:.2f}")
    print(f"exit codes: {codes}")


if __name__ == "__main__":
    main()
