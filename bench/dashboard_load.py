"""Figure: head office's dashboard under 50 concurrent HR users, on a database with 5,000 open cases.

Builds the cloud's database (SQLite, a temporary file) as the engine leaves it: ``--plants`` plants with
``--per-plant`` badges each, one confirmed working day of facts in the appliances' logs, of which
``--open`` are missing, and one engine tick, which opens a case for each and sends its L1 (timeline
entries, steps). Then serves it with ``punchproof cloud web`` (gunicorn, ``--workers``) and, from a
second process, runs ``--users`` HR users, each signed in with its own account on its own kept-alive
connection: open the case list (a random page, sometimes filtered by plant), then a random case's page,
with ``--think`` seconds (± 50 %) between clicks, as people do.

Printed: requests, errors, p50/p99 per page, beside the target p99 ≤ 1 s as a ratio.

    .venv/bin/python bench/dashboard_load.py [--seconds 30] [--users 50] [--open 5000] [--workers 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_P99_S = 1.0
PASSWORD = "bench password 1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- the database --------------------------------------------------------------------------------


def build(path: Path, plants: int, per_plant: int, open_cases: int, users: int) -> list[int]:
    from zoneinfo import ZoneInfo

    from werkzeug.security import generate_password_hash

    from bench.escalation_tick import Clock, seed
    from cloud.escalation import cases
    from cloud.escalation.engine import Engine
    from cloud.escalation.models import AbsenceCase
    from cloud.escalation.sender import RecordingSender
    from cloud.store import Account, open_db

    db = open_db(f"sqlite:///{path}")
    cases._policies.clear()
    tz = ZoneInfo("Asia/Shanghai")
    day1 = date(2025, 3, 3)
    clock = Clock(datetime(day1.year, day1.month, day1.day, 22, tzinfo=tz).astimezone(UTC))
    seed(
        plants,
        per_plant,
        open_cases,
        day1,
        plant_name="{} 号厂",
        employee=lambda p, u: {"name": f"员工{p}{u}", "phone": "13800138000"},
    )
    engine = Engine(clock, RecordingSender())
    engine.tick()
    clock.at += timedelta(hours=11)  # next morning 09:00: the L1 reminders go out
    engine.tick()
    hashed = generate_password_hash(PASSWORD)
    Account.insert_many(
        [
            {"username": f"hr{n}", "password_hash": hashed, "role": "hr_staff", "plant": "", "created_ms": 0}
            for n in range(users)
        ]
    ).execute()
    case_ids = [c for (c,) in AbsenceCase.select(AbsenceCase.id).where(AbsenceCase.open_key.is_null(False)).tuples()]
    db.close()
    return case_ids


# -- the users (second process) ------------------------------------------------------------------


class User(threading.Thread):
    def __init__(self, n: int, args: argparse.Namespace, case_ids: list[int], pages: int, results: dict, lock) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.n, self.args, self.case_ids, self.pages = n, args, case_ids, pages
        self.results, self.lock = results, lock
        self.rng = random.Random(n)
        self.cookie = ""

    def _request(self, conn: http.client.HTTPConnection, method: str, path: str, body: str = "") -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return response.status, text

    def _timed(self, conn: http.client.HTTPConnection, kind: str, path: str) -> None:
        started = time.monotonic()
        try:
            status, _text = self._request(conn, "GET", path)
            ok = status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            ok = False
        with self.lock:
            self.results.setdefault(kind, []).append((time.monotonic() - started, ok))

    def run(self) -> None:
        host, port = self.args.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        _status, page = self._request(conn, "GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf": csrf, "username": f"hr{self.n}", "password": PASSWORD})
        status, _ = self._request(conn, "POST", "/login", form)
        assert status == 302, status
        self.args.ready.wait()  # everyone signed in (a deliberate password hash each) before the clock starts
        time.sleep(self.rng.uniform(0, self.args.think))
        while time.monotonic() < self.args.until:  # set once every user is signed in
            page_no = self.rng.randint(1, self.pages)
            path = f"/cases?page={page_no}"
            if self.rng.random() < 0.3:
                path = f"/cases?plant=p{self.rng.randrange(self.args.plants):03d}"
            self._timed(conn, "case list", path)
            time.sleep(self.args.think * self.rng.uniform(0.5, 1.5))
            self._timed(conn, "case page", f"/cases/{self.rng.choice(self.case_ids)}")
            time.sleep(self.args.think * self.rng.uniform(0.5, 1.5))
        conn.close()


def client(args: argparse.Namespace) -> None:
    case_ids = json.loads(Path(args.cases_file).read_text())
    pages = max(1, -(-len(case_ids) // 50))
    args.until = float("inf")
    args.ready = threading.Barrier(args.users + 1)
    results: dict[str, list[tuple[float, bool]]] = {}
    lock = threading.Lock()
    users = [User(n, args, case_ids, pages, results, lock) for n in range(args.users)]
    for u in users:
        u.start()
    args.ready.wait(timeout=120)
    args.until = time.monotonic() + args.seconds
    for u in users:
        u.join(args.seconds + 120)
    print(json.dumps(results))


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a user's clicks (± 50 %%)")
    parser.add_argument("--plants", type=int, default=100)
    parser.add_argument("--per-plant", type=int, default=100)
    parser.add_argument("--open", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--cases-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args)
        return
    from tests.harness import cloud_web

    with tempfile.TemporaryDirectory(prefix="dash-load-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cached = (
            Path(tempfile.gettempdir()) / f"pp-dash-{args.plants}x{args.per_plant}-{args.open}-{args.users}.sqlite3"
        )
        if not cached.exists():  # the engine's opening tick takes minutes: built once, copied for each run
            case_ids = build(root / "cloud.sqlite3", args.plants, args.per_plant, args.open, args.users)
            shutil.copy(root / "cloud.sqlite3", cached)
            print(f"built {args.plants * args.per_plant:,} employees, {len(case_ids):,} open cases")
        shutil.copy(cached, root / "cloud.sqlite3")
        with sqlite3.connect(root / "cloud.sqlite3") as db:
            case_ids = [c for (c,) in db.execute("SELECT id FROM absence_case WHERE open_key IS NOT NULL")]
        print(f"database ready in {time.perf_counter() - t0:.1f} s ({cached})")
        (root / "cases.json").write_text(json.dumps(case_ids))
        conf = cloud_web.write_conf(
            root / "cloud.toml", database=root / "cloud.sqlite3", state_dir=root, workers=args.workers
        )
        server, base = cloud_web.start(conf, root / "web.log")
        users = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                "--base",
                base,
                "--cases-file",
                str(root / "cases.json"),
                "--seconds",
                str(args.seconds),
                "--users",
                str(args.users),
                "--think",
                str(args.think),
                "--plants",
                str(args.plants),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    results = json.loads(users.stdout.strip().splitlines()[-1])
    print(
        f"{args.users} HR users (think {args.think:g} s ± 50 %), {args.seconds:g} s, gunicorn {args.workers} workers, "
        f"{len(case_ids):,} open cases, SQLite"
    )
    for kind, samples in sorted(results.items()):
        times = [t for t, _ok in samples]
        errors = sum(1 for _t, ok in samples if not ok)
        p99 = percentile(times, 0.99)
        print(
            f"{kind:<10} {len(samples):6d} requests, {errors} errors ({errors / max(1, len(samples)):.2%}), "
            f"{len(samples) / args.seconds:6.1f}/s  p50 {percentile(times, 0.5) * 1000:6.0f} ms  "
            f"p99 {p99 * 1000:6.0f} ms   p99 / {TARGET_P99_S:g} s target = {p99 / TARGET_P99_S:.2f}"
        )


if __name__ == "__main__":
    main()
