"""Figure: a shift change at a 5,000-worker plant, from each punch to the kiosk and to the board.

Real processes: 20 emulated ZK terminals (one process, live events on), the appliance daemon
(``punchproof appliance run``: live capture, the signed log), the evaluator's process it starts
(``appliance.runtime.evaluator_process``: the board, day facts and alerts, which the daemon signs)
and gunicorn (``punchproof appliance web``), the roster imported with ``punchproof appliance
import-roster``. 5,000 workers on 3 shifts: at the change, shift A (1,667) punches out while
B (1,667) and C (1,666, starting 5 minutes after B) punch in — every worker once, 5,000 punches
in ``--minutes`` (the brief: 10), arrivals peaking mid-window (triangular, so the peak rate is twice the mean).

Measured, from the wall-clock moment the terminal announced each punch:
* kiosk: the punch's event arriving on a ``/kiosk/events`` stream;
* board notified: a ``/board/events`` version event covering the punch's seq arriving;
* evaluator pass: the checked-in row's ``as_of`` (when the evaluator's pass that wrote it began; the
  evaluator's part of the board row's time);
* board row: the first moment a logged-in board shows the worker's row checked in (B and C: the
  evaluator's pass must run first). By default one board client fetches the board's rows
  (``?partial=1&page=N``: every page of the 5,000, one after the other, as someone paging through
  them) at most once a second when the version moves; a row that moves to a page it already read
  that round waits for the next round. ``--screens`` has one open board per page instead (ten
  screens, each with its own event stream, each doing what the page's script
  appliance/web/static/board.js does: when the version moves, fetch its page, one fetch at a time,
  at most one a second and never sooner after one than it took): ten times the fetches of one
  board. Issue #25's limits: kiosk p99 <= 1 s, board row p99 <= 10 s.
Also the appliance's memory (daemon + evaluator + gunicorn master + workers; limit 200 MB) every
2 s: the sample with the highest RSS sum, and the one with the highest PSS sum (see ``plant_common``).

    .venv/bin/python bench/plant_burst.py [--minutes 10] [--workers 5000]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plant_common import TZ, PeakMemory, PiBudget, Plant, SSEClient, decode, login, percentile, request, schedule  # noqa: E402

KIOSK_TARGET_S = 1.0
BOARD_ROW_TARGET_S = 10.0  # issue #25: punch -> board row p99 <= 10 s at the shift change, under the Pi 3 budget
MEMORY_TARGET = 200 * 1024 * 1024
CHECKED_IN = {"present", "late", "incomplete", "left_early"}
PAGER = re.compile(r'data-pages="(\d+)"')
ROW = re.compile(r'data-board-employee="([^"]+)" data-status="([^"]+)"')


class BoardPage(threading.Thread):
    """The board page's behaviour: on a version event, fetch the rows (one at a time, >= 1 s apart), of
    ``pages`` pages from page ``first`` (0: to the last), one after the other. ``backoff``: as board.js, and
    never sooner after a fetch than it took."""

    def __init__(self, base: str, cookie: str, pages: int = 0, first: int = 1, backoff: bool = False) -> None:
        super().__init__(daemon=True)
        self.base, self.cookie, self.max_pages, self.first, self.backoff = base, cookie, pages, first, backoff
        self.wanted = threading.Event()
        self.first_in: dict[str, float] = {}
        # each worker's last fetch that showed him not yet checked in: (when it began, its page)
        self.last_out: dict[str, tuple[float, int]] = {}
        self.fetches: list[float] = []  # seconds per fetch
        self.errors: list[str] = []
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            if not self.wanted.wait(0.5):
                continue
            self.wanted.clear()
            started = time.time()
            number, pages = self.first, self.first
            while number <= pages:  # the whole board, a page after the other, as someone paging through it
                begun = time.time()
                try:
                    status, _h, page = request(
                        self.base, "GET", f"/?partial=1&page={number}", cookie=self.cookie, timeout=60
                    )
                except OSError as exc:
                    status, page = repr(exc), ""
                now = time.time()
                self.fetches.append(now - begun)
                if status != 200:
                    self.errors.append(f"page {number}: {status}")
                    break
                for employee, st in ROW.findall(page):
                    if employee in self.first_in:
                        continue
                    if st in CHECKED_IN:
                        self.first_in[employee] = now
                    else:
                        self.last_out[employee] = (begun, number)
                found = PAGER.search(page)
                pages = int(found.group(1)) if found else 1
                if self.max_pages:
                    pages = min(pages, self.first + self.max_pages - 1)
                number += 1
            took = time.time() - begun
            time.sleep(max(0.0, 1.0 - (time.time() - started), took if self.backoff else 0.0))


def _boards(base: str, cookie: str, pager: bool, pages: int) -> list[BoardPage]:
    """The board clients: one paging through ``pages`` pages (0: all), or one open board per page."""
    if pager:
        return [BoardPage(base, cookie, pages)]
    _status, _h, first = request(base, "GET", "/?partial=1&page=1", cookie=cookie, timeout=60)
    found = PAGER.search(first)
    count = int(found.group(1)) if found else 1
    last = min(count, pages) if pages else count
    return [BoardPage(base, cookie, 1, number, backoff=True) for number in range(1, last + 1)]


def _first_in(screens: list[BoardPage]) -> dict[str, float]:
    """When any board first showed each worker checked in."""
    seen: dict[str, float] = {}
    for screen in screens:
        for employee, at in list(screen.first_in.items()):
            seen[employee] = min(at, seen.get(employee, at))
    return seen


def _visible(events: list[tuple[float, str, str, str]], changed: dict[str, int]) -> dict[str, float]:
    """When the board told of a board version at which each worker's row as last written is visible (its
    ``changed``: a page reading at that version or later shows it)."""
    versions = sorted((t, int(i.split(".")[0])) for t, ev, i, _d in events if ev == "version")
    out = {}
    for user, version in changed.items():
        seen = next((t for t, v in versions if v >= version), None)
        if seen is not None:
            out[user] = seen
    return out


def _slow_rows(
    sent: dict[str, float], first_in: dict[str, float], bumps: dict[str, float], screens: list[BoardPage]
) -> str:
    """Of the slowest 1% of board rows, how many a fetch begun after the board told of the version showing them
    (``bumps``) still showed not checked in (the page served something older than that version), and how many no
    fetch of their page showed after it before the one that showed them in (the client had not come round to them)."""
    rows = sorted((first_in[u] - sent[u], u) for u in first_in if u in sent and u in bumps)
    slow = rows[-max(1, len(rows) // 100) :]
    stale, late = [], []
    for took, user in slow:
        outs = [s.last_out[user] for s in screens if user in s.last_out]
        began, page = max(outs) if outs else (0.0, 0)
        (stale if began > bumps[user] + 0.05 else late).append((took, user, began - bumps[user], page))
    worst = ", ".join(f"{u} {t:.1f} s (page {p}, {d:+.1f} s)" for t, u, d, p in sorted(stale)[-3:])
    return (
        f"slowest 1% of board rows ({len(slow)}, from {slow[0][0]:.1f} s): shown not checked in by a fetch begun "
        f"after the board told of the version showing them: {len(stale)} [{worst}]; not fetched again before: "
        f"{len(late)}"
        if slow
        else "slowest board rows: none"
    )


def timeline(
    sent: dict[str, float],
    received: dict[str, float],
    shown: dict[str, float],
    rows: dict[str, float],
    signed: list[tuple[int, str]],
    minutes: float,
    passes: dict[str, float] | None = None,
    windows: int = 10,
    bumps: dict[str, float] | None = None,
) -> str:
    """The burst in ``windows`` slices: punches sent, p99 punch -> daemon, -> kiosk and -> board row (arriving
    workers), of the board row's time the part after the evaluator's pass began (``passes``: its ``as_of``, in
    s), split at the board telling of the version that shows the row (``bumps``: the pass's end) into the pass's
    run and the pages' part, the records the daemon signed (by type): where a slow minute's time went. A row changed
    again later (its as_of and version are the later pass's) is first shown before that: its parts are not these."""
    start = min(sent.values())
    width = minutes * 60 / windows
    lines = [
        "timeline (from the first punch): punches, p99 to daemon / to kiosk / to board row (of it, from the pass's "
        "start; p99 of the pass's run from its start to the board telling of the version that shows the row, and "
        "of the pages' part from there), records signed by type"
    ]
    for n in range(windows):
        lo, hi = start + n * width, start + (n + 1) * width
        users = [u for u, t in sent.items() if lo <= t < hi]
        daemon = [received[u] - sent[u] for u in users if u in received]
        kiosk = [shown[f"工人{u[1:]}"] - sent[u] for u in users if f"工人{u[1:]}" in shown]
        row = [rows[u] - sent[u] for u in users if u in rows]
        after = [rows[u] - passes[u] for u in users if u in rows and passes and u in passes]
        ran = [bumps[u] - passes[u] for u in users if u in rows and passes and bumps and u in passes and u in bumps]
        paged = [rows[u] - bumps[u] for u in users if u in rows and bumps and u in bumps]
        types: dict[str, int] = {}
        for at_ms, kind in signed:
            if lo <= at_ms / 1000 < hi:
                types[kind] = types.get(kind, 0) + 1
        p99 = lambda xs: f"{percentile(xs, 0.99) * 1000:6.0f} ms" if xs else "     -   "  # noqa: E731
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(types.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"  {n * width:5.0f}-{(n + 1) * width:4.0f} s: {len(users):4d}  {p99(daemon)} / {p99(kiosk)} / "
            f"{p99(row)} ({p99(after)}; {p99(ran)}, {p99(paged)})  " + kinds
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, plant_type: Callable[..., Plant] = Plant) -> None:
    """``plant_type``: how the appliance's processes are run (bench/plant_burst_arm64.py: in an arm64 root)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="the burst's length (the brief: 10)")
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument(
        "--screens",
        action="store_true",
        help="one open board per page (each as the page's script), instead of one client paging through them all",
    )
    parser.add_argument(
        "--board-pages",
        type=int,
        default=0,
        help="pages of the board watched (default 0: all, to see every row): the pages read at each version; "
        "with --screens, the open boards, one per page from page 1",
    )
    parser.add_argument(
        "--pi3-slowdown",
        type=float,
        default=None,
        help="run the appliance in a cgroup with a Pi 3's budget: 4 cores this many times slower than one here, 800 MB",
    )
    args = parser.parse_args(argv)
    budget = PiBudget(args.pi3_slowdown) if args.pi3_slowdown else None
    if budget:
        print(budget.describe(), flush=True)
    window = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="plant-burst-") as tmp:
        start_at = datetime.now(TZ) + timedelta(seconds=60 + window / 2)  # ~60 s to set up, then the window
        change = start_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        plant = plant_type(Path(tmp), workers=args.workers, change_at=change, budget=budget)
        t0 = time.monotonic()
        plant.start()
        up = time.monotonic() - t0
        print(f"plant up in {up:.0f} s: {args.workers} workers, 20 terminals, shift change {change:%H:%M}")
        kiosk = SSEClient(plant.base, "/kiosk/events")
        kiosk.start()
        cookie = login(plant.base)
        screens = _boards(plant.base, cookie, not args.screens, args.board_pages)
        for screen in screens:
            screen.start()
        streams = [
            SSEClient(plant.base, "/board/events", cookie, on_event=lambda _e, s=screen: s.wanted.set())
            for screen in screens
        ]
        for stream in streams:
            stream.start()
        board = streams[0]
        kiosk.opened.wait(10)
        for stream in streams:
            stream.opened.wait(10)
        opened = [kiosk.status, *(s.status for s in streams)]
        assert all(status == 200 for status in opened), opened
        peak = PeakMemory(plant)
        peak.start()
        cpu_before, cpu_t0 = plant.cpu_seconds(), time.monotonic()
        plan = schedule(plant, window)
        print(f"burst: {len(plan)} punches in {args.minutes:g} min ...", flush=True)
        sent = plant.burst(plan)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len([e for e in kiosk.events if e[1] == "punch"]) < len(sent):
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        arriving = {u for _at, _t, u, state in plan if state == 0}
        while time.monotonic() < deadline and len(arriving & set(_first_in(screens))) < len(arriving):
            time.sleep(0.5)
        peak.finish()
        cpu_after, cpu_span = plant.cpu_seconds(), time.monotonic() - cpu_t0
        for screen in screens:
            screen.stop = True
        for screen in screens:
            screen.join(60)  # its last round of pages, before gunicorn stops under it
        stored = plant.rows("SELECT user_id, seq, received_ms FROM punch")
        checked = ", ".join(f"'{s}'" for s in sorted(CHECKED_IN))
        evaluated = dict(
            plant.rows(f"SELECT employee, max(as_of_ms) FROM board_row WHERE status IN ({checked}) GROUP BY 1")
        )
        changed = dict(
            plant.rows(f"SELECT employee, max(changed) FROM board_row WHERE status IN ({checked}) GROUP BY 1")
        )
        first_sent = min(sent.values()) if sent else time.time()
        signed = plant.rows(f"SELECT t_wall_ms, type FROM log_record WHERE t_wall_ms >= {int(first_sent * 1000)}")
        seq_of = {u: seq for u, seq, _r in stored}
        received = {u: r / 1000 for u, _s, r in stored}
        kiosk.close()
        for stream in streams:
            stream.close()
        throttled = budget.throttled() if budget else ""
        codes = plant.stop()

    shown = {decode(d)["name"]: t for t, ev, _i, d in kiosk.events if ev == "punch"}
    to_kiosk = [shown[f"工人{u[1:]}"] - t for u, t in sent.items() if f"工人{u[1:]}" in shown]
    versions = [(t, int(i.split(".")[1])) for t, ev, i, _d in board.events if ev == "version"]
    to_board = []
    for user, t in sent.items():
        seq = seq_of.get(user)
        if seq is not None:
            arrival = next((at for at, covered in versions if covered >= seq), None)
            if arrival is not None:
                to_board.append(arrival - t)
    first_in = _first_in(screens)
    to_row = [first_in[u] - sent[u] for u in arriving if u in first_in]
    # the evaluator's part: the pass that checked the worker in began at the row's as_of (a later pass that changed
    # the row again moves it on: an upper bound of when the pass began, a lower bound of the whole)
    to_pass = [evaluated[u] / 1000 - sent[u] for u in arriving if u in evaluated]

    def line(what: str, values: list[float], target: float) -> str:
        if not values:
            return f"{what:<32} none received"
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return (
            f"{what:<32} n={len(values):5d}  p50 {p50 * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms  "
            f"max {max(values) * 1000:7.0f} ms   p99 / {target:g} s target = {p99 / target:.2f}"
        )

    rate = len(sent) / window
    print(f"ran: {len(sent)} punches in {args.minutes:g} min (mean {rate:.1f}/s, peak ~{2 * rate:.1f}/s)")
    print(f"stored by the daemon: {len(seq_of)} of {len(sent)}")
    print(line("punch -> daemon received it", [received[u] - t for u, t in sent.items() if u in received], 1.0))
    print(line("punch -> kiosk event", to_kiosk, KIOSK_TARGET_S))
    print(line("punch -> board notified (SSE)", to_board, KIOSK_TARGET_S))
    print(line("punch -> evaluator pass (as_of)", to_pass, BOARD_ROW_TARGET_S))
    print(line("punch -> board row checked in", to_row, BOARD_ROW_TARGET_S))
    read = f"the first {args.board_pages} page(s)" if args.board_pages else "every page"
    who = "one client paging through" if not args.screens else f"{len(screens)} open boards, one per page:"
    fetches = [f for screen in screens for f in screen.fetches]
    errors = [e for screen in screens for e in screen.errors]
    if fetches:
        print(
            f"board rows fetch (?partial=1&page=N, {who} {read} of {args.workers} rows): {len(fetches)} fetches, "
            f"p50 {percentile(fetches, 0.5) * 1000:.0f} ms, p99 {percentile(fetches, 0.99) * 1000:.0f} ms, "
            f"max {max(fetches) * 1000:.0f} ms; {len(errors)} errors {errors[:3]}"
        )
    print(peak.highest_rss.report("memory, sample of highest RSS sum:", MEMORY_TARGET))
    print(peak.highest_pss.report("memory, sample of highest PSS sum:", MEMORY_TARGET))
    used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
    print(
        f"appliance CPU over the {cpu_span:.0f} s of the burst: {sum(used.values()):.1f} s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in used.items())}) = "
        f"{sum(used.values()) / cpu_span:.2f} of one core here, "
        f"{sum(used.values()) / len(sent) * 1000:.1f} ms a punch"
    )
    as_of = {u: evaluated[u] / 1000 for u in arriving if u in evaluated}
    bumps = _visible(board.events, {u: changed[u] for u in arriving if u in changed})
    print(timeline(sent, received, shown, first_in, signed, args.minutes, as_of, bumps=bumps))
    print(_slow_rows(sent, first_in, bumps, screens))
    print(f"exit codes: {codes}")
    if budget:
        print(f"{budget.describe()}: {throttled}")


if __name__ == "__main__":
    main()
