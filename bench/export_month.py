"""Figure: the plant manager's month export (CSV and XLSX) of a 5,000-worker plant, and the web worker's memory.

A real appliance database (``punchproof appliance init``, then ``appliance.store.open_db``) gets
5,000 workers x 31 days = 155,000 board rows, as the evaluator would have left them: Chinese names,
three shifts, mostly present, some late, early, missing, on leave or resting, the reasons in both
languages, signed day facts. The real pages run under gunicorn (``punchproof appliance web``); from
this process a logged-in client downloads the month as CSV, then as XLSX, over HTTP on loopback.

Printed for each download: time to first byte, total time, size, the gunicorn worker's peak RSS
while it ran (``/proc/PID/smaps_rollup`` every 0.1 s) beside the 200 MB the appliance's processes
must stay under together, and the most the worker held open in temporary files under the state
directory's ``tmp/`` (its fds, every 0.1 s): the disk an export needs. No daemon and no terminals
run: the export only reads.

    .venv/bin/python bench/export_month.py [--workers 5000] [--code DIR]

``--code DIR`` serves the pages from another checkout (e.g. a ``git worktree`` of an older commit)
to compare; the database and the client are this checkout's.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plant_common import PASSWORD, ROOT, TZ, _children, _rollup, cli, free_port, login, wait_for  # noqa: E402

MEMORY_TARGET = 200 * 1024 * 1024
MONTH = date(2026, 3, 1)
DAYS = 31
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志海燕红梅玉春"
SHIFTS = {"A": ("早班", 8), "B": ("中班", 16), "C": ("夜班", 0)}  # name, start hour; 8 hours each
FIELDS = (
    "work_date", "employee", "shift", "name", "line", "shift_name", "status", "tier", "missing_tier", "late_min",
    "early_min", "missed", "start_ms", "end_ms", "late_grace_s", "in_ms", "out_ms", "n_punches", "reason_zh",
    "reason_en", "fact_seq", "as_of_ms",
)  # fmt: skip


def _ms(day: date, hour: int, second: int = 0) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=TZ) + timedelta(hours=hour, seconds=second)
    return int(local.astimezone(UTC).timestamp() * 1000)


def _hhmm(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, TZ):%H:%M}"


def board_rows(workers: int, days: int = DAYS, seed: int = 6):  # noqa: ANN201
    """The month's rows as tuples of ``FIELDS``: mostly present, some late, early, absent, on leave or
    resting (Sundays, half the plant), the reasons worded as the evaluator words them."""
    rnd = random.Random(seed)
    names = [rnd.choice(SURNAMES) + "".join(rnd.choices(GIVEN, k=rnd.choice((1, 2)))) for _ in range(workers)]
    fact = 1000
    for d in range(days):
        day = MONTH + timedelta(days=d)
        for n in range(workers):
            shift = "ABC"[n % 3]
            shift_name, hour = SHIFTS[shift]
            start, end = _ms(day, hour), _ms(day, hour + 8)
            span = f"{hour:02d}:00–{(hour + 8) % 24:02d}:00"
            gate = f"{n % 20 + 1} 号机"
            status, late, early, in_ms, out_ms, missing_tier = "present", 0, 0, None, None, ""
            roll = rnd.random()
            if day.weekday() == 6 and n % 2:
                status, shift, shift_name, start, end = "rest_day", "", "", None, None
                zh, en = "休息日：排班无班次", "Rest day: no shift in the roster"
            elif roll < 0.02:
                status, missing_tier = "missing", "confirmed"
                zh, en = f"缺勤：班次 {span} 无打卡", f"Absent: no punch for shift {span}"
            elif roll < 0.04:
                status, label = "on_leave", rnd.choice(("事假", "病假", "年假"))
                zh, en = f"请假（{label}）：{span}", f"On leave ({label}): {span}"
            else:
                late = rnd.randint(6, 40) if roll < 0.09 else 0
                early = rnd.randint(6, 30) if 0.09 <= roll < 0.11 else 0
                in_ms = start + (late * 60 + rnd.randint(0, 59) if late else -rnd.randint(60, 1500)) * 1000
                out_ms = end + (-early * 60 - rnd.randint(0, 59) if early else rnd.randint(0, 1800)) * 1000
                if late:
                    status = "late"
                    zh = f"迟到 {late} 分钟：班次 {hour:02d}:00，宽限 5 分钟，首次打卡 {_hhmm(in_ms)} 于 {gate}"
                    en = f"Late {late} min: shift {hour:02d}:00, grace 5 min, first punch {_hhmm(in_ms)} at {gate}"
                elif early:
                    status = "left_early"
                    zh = f"早退 {early} 分钟：班次 {span[-5:]} 下班，宽限 5 分钟，末次打卡 {_hhmm(out_ms)} 于 {gate}"
                    en = f"Left {early} min early: shift ends {span[-5:]}, grace 5 min, last punch {_hhmm(out_ms)}"
                else:
                    zh = f"正常：班次 {span}，上班打卡 {_hhmm(in_ms)} 于 {gate}，下班打卡 {_hhmm(out_ms)} 于 {gate}"
                    en = f"Present: shift {span}, in {_hhmm(in_ms)} at {gate}, out {_hhmm(out_ms)} at {gate}"
            fact += 1
            yield (
                day.isoformat(), f"E{n:05d}", shift, names[n], f"{n % 20 + 1}线", shift_name, status, "confirmed",
                missing_tier, late, early, 2 if status == "missing" else 0, start, end, 300, in_ms, out_ms,
                (in_ms is not None) + (out_ms is not None), zh, en, fact, (end or _ms(day, 23)) + 600_000,
            )  # fmt: skip


def seed(db_path: Path, workers: int) -> int:
    """Insert the month's board rows into the appliance's database, 1,000 a statement; returns how many."""
    from appliance.store import BoardRow, open_db

    db = open_db(db_path)
    fields = [getattr(BoardRow, name) for name in FIELDS]
    count, batch = 0, []
    with db.atomic():
        for row in board_rows(workers):
            batch.append(row)
            if len(batch) == 1000:
                BoardRow.insert_many(batch, fields=fields).execute()
                count, batch = count + len(batch), []
        if batch:
            BoardRow.insert_many(batch, fields=fields).execute()
            count += len(batch)
    db.close()
    return count


class PeakUse(threading.Thread):
    """The highest RSS of one process, and the most it held open in ``scratch`` (the pages' temporary
    files, named or not), sampled every 0.1 s from /proc/PID."""

    def __init__(self, pid: int, scratch: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.scratch = pid, str(scratch)
        self.rss = self.start_rss = _rollup(pid)["Rss"]
        self.temp = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            self._sample()

    def _sample(self) -> None:
        self.rss = max(self.rss, _rollup(self.pid)["Rss"])
        held = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                if os.readlink(fd).startswith(self.scratch):
                    held += fd.stat().st_size
            except OSError:
                continue  # closed meanwhile
        self.temp = max(self.temp, held)

    def finish(self) -> None:
        self._done.set()
        self.join(5)
        self._sample()


def download(base: str, cookie: str, path: str, worker: int, scratch: Path) -> str:
    """One download, read in 64 kB blocks as a browser saves it; returns the line that reports it."""
    use = PeakUse(worker, scratch)
    use.start()
    host, port = base.split(":")
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    size = len(response.read(1))
    first_byte = time.monotonic() - started
    while block := response.read(65536):
        size += len(block)
    total = time.monotonic() - started
    conn.close()
    use.finish()
    mb = 2**20
    return (
        f"{path.rsplit('=', 1)[-1].upper():4} {response.status}: first byte {first_byte:6.2f} s, total {total:6.2f} s, "
        f"{size / mb:5.1f} MB; worker RSS {use.start_rss / mb:5.1f} MB before, peak {use.rss / mb:5.1f} MB "
        f"/ {MEMORY_TARGET / mb:.0f} MB target = {use.rss / MEMORY_TARGET:.2f}; "
        f"temporary files in state/tmp: {use.temp / mb:5.1f} MB at most"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose pages are served")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-month-") as tmp:
        root = Path(tmp)
        conf = root / "appliance.toml"
        cli("cloud", "init", "-o", root / "cloud.toml", "--state-dir", root / "cloud")
        cli(
            *("appliance", "init", "-o", conf, "--plant", "bench-plant", "--appliance", "pi-01"),
            *("--state-dir", root / "state", "--cloud-key", root / "cloud" / "cloud-witness.pub"),
            *("--mqtt-port", free_port()),
        )
        started = time.monotonic()
        rows = seed(root / "state" / "appliance.sqlite3", args.workers)
        print(
            f"seeded {rows:,} board rows ({args.workers:,} workers x {DAYS} days) in {time.monotonic() - started:.1f} s"
        )
        cli("appliance", "create-user", "-c", conf, "boss", "--password-stdin", stdin=PASSWORD + "\n")
        port = free_port()
        code = args.code.resolve()
        with (root / "web.log").open("ab") as log:
            web = subprocess.Popen(
                [sys.executable, "-m", "punchproof", "appliance", "web", "-c", conf, "--bind", f"127.0.0.1:{port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(code)},
                cwd=code,
            )
        base = f"127.0.0.1:{port}"
        try:
            wait_for(lambda: _serves(base), 60, "gunicorn to serve")
            (worker,) = _children(web.pid)
            cookie = login(base)
            print(f"pages from {code} (git {_commit(code)}), gunicorn worker pid {worker}")
            for fmt in ("csv", "xlsx"):
                path = f"/export?period=month&date={MONTH.isoformat()}&format={fmt}"
                print(download(base, cookie, path, worker, root / "state" / "tmp"))
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(30)
    return 0


def _serves(base: str) -> bool:
    host, port = base.split(":")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/login")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _commit(code: Path) -> str:
    done = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
