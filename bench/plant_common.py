"""What the plant benchmarks share: a 5,000-worker plant run as real processes, and the clients.

* 20 emulated ZK terminals (the real wire protocol, live events on) served from one process of
  their own, which punches when told and notes the wall-clock time of each punch;
* ``punchproof appliance init`` / ``import-roster`` / ``create-user`` / ``run`` / ``web``, as an
  installer would run them (``web`` is gunicorn with its thread workers);
* an SSE client (``http.client``, no browser) that notes when each event arrived;
* the appliance's processes without the PostgreSQL driver, as a Pi installs them (``_as_on_a_pi``);
* the memory of the appliance's processes from /proc (the daemon, the evaluator's process it
  starts, the gunicorn master and its workers), two ways: the sum of their RSS, an upper bound
  that counts every page they share (libraries, the master's pages a forked worker still shares)
  once per process, and the sum of their PSS, where a page shared by n processes counts 1/n in
  each: what they take together.

Shifts are whole minutes: ``T`` (the shift change) is the next whole minute after the warm-up.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[1]
TERMINALS = 20
PASSWORD = "bench password 1"


def cli(*args: object, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", *map(str, args)], capture_output=True, text=True, input=stdin, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"punchproof {' '.join(map(str, args))}: {result.stderr}")
    return result.stdout


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition, timeout: float, what: str, every: float = 0.2):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout} s for {what}")


# -- the terminals' process ------------------------------------------------------------------
def _terminals(conn, users_by_terminal: list[list[tuple[str, str]]]) -> None:  # noqa: ANN001
    """Serve 20 emulated terminals; on ("burst", [(at_s, terminal, user, state)]) punch on time."""
    from firmware_bridge.zk.emulator import TerminalState, ZKEmulator

    emulators = []
    for n, users in enumerate(users_by_terminal):
        state = TerminalState(serial=f"BENCH-ZK-{n:02d}", tz=TZ, now=lambda: datetime.now(UTC))
        for user_id, name in users:
            state.add_user(user_id, name)
        emulators.append(ZKEmulator(state, port=0).__enter__())
    conn.send([e.address for e in emulators])
    while True:
        command, arg = conn.recv()
        if command == "stop":
            break
        if command == "burst":
            sent: dict[str, float] = {}
            start = time.monotonic()
            for at_s, terminal, user, state_code in arg:
                delay = start + at_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent[user] = time.time()
                emulators[terminal].state.punch(user, state=state_code, when=emulators[terminal].state.device_now())
            conn.send(sent)
    for e in emulators:
        e.__exit__(None, None, None)


@dataclass
class PiBudget:
    """A Raspberry Pi 3's budget for the appliance's processes, on this bigger machine: a cgroup.

    A Pi 3 has 4 Cortex-A53 cores and 1 GB. ``slowdown`` is how many times slower one of its cores
    runs CPython than one core here (measured elsewhere and given on the command line). The
    processes together get ``4 / slowdown`` of this machine's CPUs (CFS quota) and ``memory_mb``
    (the Pi's 1 GB less what its OS takes); each process (the daemon; gunicorn's master with its
    worker; the evaluator's process, moved onto its own by ``adopt``) also gets one Pi core,
    ``1 / slowdown``, since CPython runs one thread at a time.
    Throttling is by 100 ms periods, which makes latency burstier than a slower clock would: the
    figures are a pessimistic estimate, not a Pi's measurement. cgroup v1 (cpu and memory
    hierarchies) or v2 (unified); needs root.
    """

    slowdown: float
    memory_mb: int = 800
    name: str = field(default_factory=lambda: f"punchproof-bench-{os.getpid()}")

    @property
    def cpus(self) -> float:
        return 4 / self.slowdown

    def _dirs(self) -> list[Path]:
        base = Path("/sys/fs/cgroup")
        if (base / "cgroup.controllers").exists():
            return [base / self.name]
        return [base / "cpu" / self.name, base / "memory" / self.name]

    PERIOD_US = 100_000

    def _quota(self, cpus: float) -> int:
        return int(cpus * self.PERIOD_US)

    def create(self) -> None:
        limit = str(self.memory_mb * 2**20)
        for d in self._dirs():
            d.mkdir(exist_ok=True)
        if len(self._dirs()) == 1:
            (self._dirs()[0] / "cgroup.subtree_control").write_text("+cpu")
            (self._dirs()[0] / "cpu.max").write_text(f"{self._quota(self.cpus)} {self.PERIOD_US}")
            (self._dirs()[0] / "memory.max").write_text(limit)
        else:
            cpu, memory = self._dirs()
            (cpu / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(self._quota(self.cpus)))
            (memory / "memory.limit_in_bytes").write_text(limit)

    def _core(self, name: str) -> Path:
        """A child cgroup of one Pi core for the process ``name`` (created on first use)."""
        core = self._dirs()[0] / name
        if not core.exists():
            core.mkdir()
            one = self._quota(1 / self.slowdown)
            if len(self._dirs()) == 1:
                (core / "cpu.max").write_text(f"{one} {self.PERIOD_US}")
            else:
                (core / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                (core / "cpu.cfs_quota_us").write_text(str(one))
        return core

    def wrap(self, argv: list[str], name: str) -> list[str]:
        """``argv`` run inside the budget, on a Pi core of its own (it moves itself in, then execs:
        its children follow it)."""
        groups = [self._core(name)] if len(self._dirs()) == 1 else [self._core(name), self._dirs()[1]]
        moves = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in groups)
        return ["sh", "-c", f'{moves} && exec "$@"', "sh", *argv]

    def adopt(self, pid: int, name: str) -> None:
        """Move the running process ``pid`` (a child the daemon started: the evaluator) onto a Pi core of
        its own, as a Pi's scheduler would give it one of its four cores."""
        (self._core(name) / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> str:
        """How often each process's Pi core held it back (the cgroups' cpu.stat)."""
        parts = []
        for core in sorted(p for p in self._dirs()[0].iterdir() if p.is_dir()):
            stat = dict(line.split() for line in (core / "cpu.stat").read_text().splitlines())
            periods, throttled = int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))
            parts.append(f"{core.name} throttled in {throttled} of {periods} 100 ms periods")
        return "; ".join(parts)

    def remove(self) -> None:
        for d in self._dirs():
            for core in (p for p in d.iterdir() if p.is_dir()):
                try:
                    core.rmdir()
                except OSError:
                    pass  # a process still inside: the kernel keeps the group until it ends
            try:
                d.rmdir()
            except OSError:
                pass

    def describe(self) -> str:
        return (
            f"Pi 3 budget: the appliance's processes limited to {self.cpus:.2f} of this machine's CPUs "
            f"(4 cores / slowdown {self.slowdown:g}), each to {1 / self.slowdown:.3f} (one Pi core), "
            f"and {self.memory_mb} MB"
        )


@dataclass
class Plant:
    """The plant: workers E00000.., names 工人00000.. (unique, so the kiosk's events can be matched)."""

    root: Path
    workers: int = 5000
    change_at: datetime = field(default_factory=lambda: datetime.now(TZ))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    base: str = ""
    budget: PiBudget | None = None  # the daemon and gunicorn run inside it (not the terminals, not the clients)

    def shift_of(self, n: int) -> str:
        return "ABC"[n % 3]

    def terminal_of(self, n: int) -> int:
        return n % TERMINALS

    def start(self) -> Plant:
        if self.budget:
            self.budget.create()
        users: list[list[tuple[str, str]]] = [[] for _ in range(TERMINALS)]
        for n in range(self.workers):
            users[self.terminal_of(n)].append((f"E{n:05d}", f"工人{n:05d}"))
        parent, child = multiprocessing.Pipe()
        self._pipe = parent
        self._emulators = multiprocessing.Process(target=_terminals, args=(child, users), daemon=True)
        self._emulators.start()
        addresses = parent.recv()
        conf = self.root / "appliance.toml"
        self.conf = conf
        terminal_args = [a for n, (h, p) in enumerate(addresses) for a in ("--terminal", f"zk{n:02d}={h}:{p}")]
        # no cloud runs here (the appliance works with the internet down), but the config names its key
        cli("cloud", "init", "-o", self.root / "cloud.toml", "--state-dir", self.root / "cloud")
        cli(
            *("appliance", "init", "-o", conf, "--plant", "bench-plant", "--appliance", "pi-01"),
            *("--state-dir", self.root / "state", "--cloud-key", self.root / "cloud" / "cloud-witness.pub"),
            *("--mqtt-port", free_port()),  # no broker: the appliance works with the internet down
            *terminal_args,
        )
        self._import_roster()
        cli("appliance", "create-user", "-c", conf, "boss", "--password-stdin", stdin=PASSWORD + "\n")
        self.spawn("daemon", "appliance", "run", "-c", conf)
        try:
            evaluator = wait_for(lambda: _evaluators(self.processes["daemon"].pid), 90, "the evaluator's process")[0]
        except TimeoutError:
            print((self.root / "daemon.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        if self.budget:
            self.budget.adopt(evaluator, "evaluator")
        port = free_port()
        self.spawn("web", "appliance", "web", "-c", conf, "--bind", f"127.0.0.1:{port}")
        self.base = f"127.0.0.1:{port}"
        wait_for(lambda: self._serves(), 60, "gunicorn to serve")
        try:
            wait_for(
                lambda: (
                    self.processes["daemon"].poll() is None
                    and self.rows("SELECT count(*) FROM terminal_health WHERE available = 1")[0][0] == TERMINALS
                ),
                90,
                "the daemon to reach all 20 terminals",
            )
            wait_for(lambda: self.rows("SELECT passes FROM evaluator_state")[0][0] > 0, 90, "the first evaluator pass")
            # and its day facts (yesterday's shifts) signed by the daemon, as the pass itself did when it ran there
            wait_for(lambda: self.rows("SELECT count(*) FROM eval_handoff")[0][0] == 0, 300, "the first facts signed")
        except TimeoutError:
            print((self.root / "daemon.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            self.stop()
            raise
        return self

    def _import_roster(self) -> None:
        t = self.change_at
        spans = {
            "A": (t - timedelta(hours=8), t),  # leaving: punch out
            "B": (t, t + timedelta(hours=8)),  # arriving
            "C": (t + timedelta(minutes=5), t + timedelta(hours=8, minutes=5)),  # arriving, staggered 5 min
        }
        names = {"A": "早班", "B": "中班", "C": "中班二"}
        shifts = "班次,名称,时段\n" + "".join(f"{s},{names[s]},{a:%H:%M}-{b:%H:%M}\n" for s, (a, b) in spans.items())
        rosters = "编号,类型,模式,起始日期,节假日\n" + "".join(f"r{s},轮班,{s},2026-01-01,照常\n" for s in "ABC")
        people = "工号,姓名,产线,排班\n" + "".join(
            f"E{n:05d},工人{n:05d},{n % 20 + 1}线,r{self.shift_of(n)}\n" for n in range(self.workers)
        )
        for kind, text in (("shifts", shifts), ("rosters", rosters), ("employees", people)):
            path = self.root / f"{kind}.csv"
            path.write_text(text, encoding="utf-8")
            cli("appliance", "import-roster", "-c", self.conf, path, "--kind", kind)

    def spawn(self, name: str, *args: object) -> None:
        log = (self.root / f"{name}.log").open("ab")
        argv = [sys.executable, "-m", "punchproof", *map(str, args)]
        self.processes[name] = subprocess.Popen(
            self.budget.wrap(argv, name) if self.budget else argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{self._as_on_a_pi()}:{ROOT}"},
            cwd=ROOT,
        )

    def _as_on_a_pi(self) -> Path:
        """A directory that makes ``import psycopg2`` fail, first on the appliance's import path.

        The Pi installs punchproof without the ``[postgres]`` extra (docs/install-pi.md), but this
        machine's virtualenv has the driver for the cloud's tests, and peewee loads it whenever it
        can: about 10 MB more in each process that imports peewee, which a Pi never carries.
        """
        shim = self.root / "as-on-a-pi"
        (shim / "psycopg2").mkdir(parents=True, exist_ok=True)
        (shim / "psycopg2" / "__init__.py").write_text(
            'raise ImportError("the appliance is installed without the PostgreSQL driver")\n'
        )
        return shim

    def _serves(self) -> bool:
        try:
            return request(self.base, "GET", "/login")[0] == 200
        except OSError:
            return False

    def burst(self, schedule: list[tuple[float, int, str, int]]) -> dict[str, float]:
        """Punch per ``schedule`` (seconds from now, terminal, user, state); returns each send time."""
        self._pipe.send(("burst", schedule))
        return self._pipe.recv()  # type: ignore[no-any-return]

    def rows(self, sql: str) -> list[tuple]:
        db = self.root / "state" / "appliance.sqlite3"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql).fetchall()

    def pids(self) -> dict[str, int]:
        """The appliance's processes: the daemon, its evaluator, the gunicorn master and its workers."""
        pids = {"daemon": self.processes["daemon"].pid}
        for n, pid in enumerate(_evaluators(pids["daemon"])):  # a second one: started again after the first ended
            pids["evaluator" if n == 0 else f"evaluator {n + 1}"] = pid
        pids["gunicorn master"] = self.processes["web"].pid
        for n, pid in enumerate(_children(pids["gunicorn master"])):
            pids[f"gunicorn worker {n + 1}"] = pid
        return pids

    def memory(self) -> Memory:
        """RSS and PSS of every appliance process (``pids``), read together."""
        pids = self.pids()
        rollups = {name: _rollup(pid) for name, pid in pids.items()}
        return Memory({k: r["Rss"] for k, r in rollups.items()}, {k: r["Pss"] for k, r in rollups.items()})

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far of every appliance process (``pids``)."""
        pids = self.pids()
        out = {}
        for name, pid in pids.items():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def stop(self) -> dict[str, int]:
        codes = {}
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = -9
        self._pipe.send(("stop", None))
        self._emulators.join(10)
        if self.budget:
            self.budget.remove()
        return codes


def _rollup(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup in bytes (Rss, Pss, Shared_Clean...); zeros if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {"Rss": 0, "Pss": 0}
    out = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        out[name] = int(value.split()[0]) * 1024
    return out


@dataclass(frozen=True)
class Memory:
    """One sample of the appliance's processes: bytes resident (RSS) and proportional (PSS) each."""

    rss: dict[str, int]
    pss: dict[str, int]

    @property
    def rss_sum(self) -> int:
        return sum(self.rss.values())

    @property
    def pss_sum(self) -> int:
        return sum(self.pss.values())

    def report(self, label: str, target: int) -> str:
        """Both sums beside the target, with each process's part."""
        mb = 2**20
        return "\n".join(
            f"{label} {kind}: {total / mb:5.1f} MB ({', '.join(f'{k} {v / mb:.1f}' for k, v in parts.items())})"
            f"  / {target / mb:.0f} MB target = {total / target:.2f}"
            for kind, total, parts in (
                ("RSS sum (upper bound)", self.rss_sum, self.rss),
                ("PSS sum (together)   ", self.pss_sum, self.pss),
            )
        )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _evaluators(daemon: int) -> list[int]:
    """The daemon's evaluator process(es), by their command line (not every child: at its start the
    daemon runs ``ldconfig`` once, through ctypes.util.find_library)."""
    found = []
    for pid in _children(daemon):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"appliance.runtime.evaluator_process" in cmdline:
            found.append(pid)
    return found


class PeakMemory(threading.Thread):
    """Samples the plant's memory every ``every`` s until ``finish()``; keeps the sample with the
    highest RSS sum and the one with the highest PSS sum (not always the same moment)."""

    def __init__(self, plant: Plant, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.plant, self.every = plant, every
        self._done = threading.Event()
        self.highest_rss = self.highest_pss = plant.memory()

    def run(self) -> None:
        while not self._done.wait(self.every):
            now = self.plant.memory()
            if now.rss_sum > self.highest_rss.rss_sum:
                self.highest_rss = now
            if now.pss_sum > self.highest_pss.pss_sum:
                self.highest_pss = now

    def finish(self) -> None:
        self._done.set()
        self.join(10)


# -- HTTP clients -----------------------------------------------------------------------------
def request(base: str, method: str, path: str, body: dict | None = None, cookie: str = "", timeout: float = 30):
    """One request on a new connection: (status, headers, body text)."""
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Cookie": cookie} if cookie else {}
    data = None
    if body is not None:
        data = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    text = response.read().decode("utf-8", errors="replace")
    conn.close()
    return response.status, response.headers, text


def login(base: str) -> str:
    """Log in through the form; returns the session cookie header."""
    _status, headers, page = request(base, "GET", "/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, headers, _ = request(
        base, "POST", "/login", {"csrf": token, "username": "boss", "password": PASSWORD}, cookie=cookie
    )
    if status != 302:
        raise RuntimeError(f"login refused: {status}")
    return headers["Set-Cookie"].split(";")[0]


class SSEClient(threading.Thread):
    """Reads one event stream, noting (arrival time, event, id, data) of each event."""

    def __init__(self, base: str, path: str, cookie: str = "", on_event=None) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.base, self.path, self.cookie = base, path, cookie
        self.events: list[tuple[float, str, str, str]] = []
        self.status = 0
        self.opened = threading.Event()
        self.on_event = on_event
        self.error = ""
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        host, port = self.base.split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            self._conn.request("GET", self.path, headers={"Cookie": self.cookie} if self.cookie else {})
            response = self._conn.getresponse()
            self.status = response.status
            self.opened.set()
            if response.status != 200:
                response.read()
                return
            fields: dict[str, str] = {}
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\n")
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.strip()
                    continue
                if "data" in fields:
                    event = (time.time(), fields.get("event", ""), fields.get("id", ""), fields["data"])
                    self.events.append(event)
                    if self.on_event:
                        self.on_event(event)
                fields = {}
        except OSError as err:
            self.error = str(err)
        finally:
            self.opened.set()

    def close(self) -> None:
        if self._conn is not None and self._conn.sock is not None:
            self._conn.sock.shutdown(2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def schedule(plant: Plant, seconds: float, seed: int = 5) -> list[tuple[float, int, str, int]]:
    """Every worker punches once within ``seconds``, arrivals peaking mid-window (triangular):
    shift A punches out (state 1), B and C punch in (state 0)."""
    rnd = random.Random(seed)
    out = []
    for n in range(plant.workers):
        at = rnd.triangular(0, seconds, seconds / 2)
        out.append((at, plant.terminal_of(n), f"E{n:05d}", 1 if plant.shift_of(n) == "A" else 0))
    return sorted(out)


def decode(data: str) -> dict:
    return json.loads(data)  # type: ignore[no-any-return]
