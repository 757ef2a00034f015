"""The evaluator in a process of its own (#25 item 1), on real processes: the daemon (``punchproof appliance run``)
reading an emulated ZK terminal, the evaluator's process it starts, and the pages (gunicorn) for the kiosk.

The plant: three workers on a rest-day roster (yesterday's rest day is confirmed at midnight: a day fact each,
whatever the time of day) and two workers on 一号线 whose shift began 20 minutes ago (grace 0) and who have not
punched (one missed check-in alert). The evaluator decides them; the daemon, the one log writer, signs them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ledger import parse
from tests.harness.system import System, cli
from tests.harness.wait import wait_until

TZ = ZoneInfo("Asia/Shanghai")
RESTING = ("2001", "2002", "2003")
ON_SHIFT = ("3001", "3002")
CHECKED_IN = ("present", "late", "incomplete", "left_early")  # a check-in, as the board shows it


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    now = datetime.now(UTC)
    chain.recording_since(now - timedelta(days=3))
    start = (now - timedelta(minutes=20)).astimezone(TZ)
    end = start + timedelta(hours=8)
    files = {
        "shifts": f"班次,名称,时段,迟到宽限\nS,白班,{start:%H:%M}-{end:%H:%M},0\n",
        "rosters": "编号,类型,模式,起始日期,节假日\nrest,轮班,-,2026-01-01,照常\nday,轮班,S,2026-01-01,照常\n",
        "employees": "工号,姓名,产线,排班\n"
        + "".join(f"{u},休{u},二号线,rest\n" for u in RESTING)
        + "".join(f"{u},班{u},一号线,day\n" for u in ON_SHIFT),
    }
    for kind, text in files.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        cli("appliance", "import-roster", "-c", chain.appliance_conf, path, "--kind", kind)
    yield chain
    chain.stop_all_cleanly()


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
    return found


def _records(system: System, kind: str) -> list[dict]:
    rows = system.appliance_rows(f"SELECT data FROM log_record WHERE type = '{kind}' ORDER BY seq")
    return [parse(bytes(data)) for (data,) in rows]


def _signed_once(system: System) -> tuple[Counter, Counter, set[str]]:
    """The day facts by key, the alerts by (date, shift, line), and every key that signed them."""
    facts, alerts = _records(system, "dayfact"), _records(system, "alert")
    kids = {r["kid"] for r in facts + alerts}
    return (
        Counter(r["fact"]["key"] for r in facts),
        Counter(f"{r['date']}/{r['shift']}/{r['line']}" for r in alerts),
        kids,
    )


def _evaluator_pid(system: System) -> int:
    daemon = system.processes["appliance"].pid
    pid = wait_until(
        lambda: system.appliance_rows("SELECT pid FROM evaluator_state")[0][0], timeout=60, message="the evaluator"
    )
    assert pid != daemon and pid in _children(daemon), "the evaluator is a process of its own, the daemon's child"
    return pid


def _expected(system: System) -> None:
    """Every resting worker's day fact for yesterday and 一号线's alert, each signed once by the log's key."""
    yesterday = (datetime.now(TZ) - timedelta(days=1)).date().isoformat()

    def done():
        facts, alerts, _ = _signed_once(system)
        return {f"{u}/{yesterday}/" for u in RESTING} <= set(facts) and len(alerts) == 1 and (facts, alerts)

    facts, alerts = wait_until(done, timeout=90, message="the evaluator's facts and alert, signed")
    assert set(facts.values()) == {1} and list(alerts.values()) == [1], (facts, alerts)
    (boot,) = _records(system, "boot")[:1]
    assert _signed_once(system)[2] == {boot["kid"]}, "signed by the daemon's log key"
    (alert,) = _records(system, "alert")
    assert alert["line"] == "一号线" and sorted(b for b, _ in alert["who"]) == list(ON_SHIFT)
    assert system.appliance_rows("SELECT count(*) FROM eval_handoff")[0][0] == 0, "nothing left queued"


def test_the_evaluator_runs_in_its_own_process_and_the_daemon_signs_its_facts_and_alert_once(system):
    system.start_appliance()
    pid = _evaluator_pid(system)
    _expected(system)
    assert system.appliance_rows("SELECT pid FROM evaluator_state")[0][0] == pid
    board = system.appliance_rows("SELECT employee, fact_seq FROM board_row WHERE shift = '' AND fact_seq IS NOT NULL")
    assert {e for e, _ in board} >= set(RESTING), "the board's rows point at their signed facts"


def test_an_evaluator_killed_while_handing_over_is_started_again_and_each_record_is_signed_once(system):
    """``handoff.queued``: the evaluator's first process is killed (SIGKILL) right after its first records are queued,
    before the rest of its pass; the daemon starts it again, and it decides and queues the same again."""
    system.spawn(
        "appliance",
        "appliance",
        "run",
        "-c",
        system.appliance_conf,
        env={"PUNCHPROOF_EVALUATOR_FAILPOINTS": "handoff.queued=1"},
    )
    daemon = system.processes["appliance"].pid
    first = _evaluator_pid(system)
    second = wait_until(
        lambda: [p for p in _children(daemon) if p != first], timeout=60, message="the evaluator started again"
    )
    assert "the attendance evaluator (process" in system.log("appliance") and "ended with status -9" in system.log(
        "appliance"
    )
    _expected(system)
    assert system.appliance_rows("SELECT pid FROM evaluator_state")[0][0] in second


def test_capture_and_the_kiosk_keep_working_while_the_evaluator_is_stopped(system, terminal_state):
    system.start_appliance()
    port = system.start_web("appliance")
    pid = _evaluator_pid(system)
    _expected(system)  # its first passes are done: it holds no write lock now
    kiosk = _Kiosk(port)
    kiosk.start()
    assert kiosk.opened.wait(30) and kiosk.status == 200
    os.kill(pid, signal.SIGSTOP)
    try:
        terminal_state.add_user("3001", "班3001")
        terminal_state.punch("3001", state=0, when=terminal_state.device_now())
        wait_until(lambda: any(e.get("name") == "班3001" for e in kiosk.events), timeout=20, message="on the kiosk")
        stored = system.appliance_rows("SELECT count(*) FROM punch WHERE user_id = '3001'")[0][0]
        assert stored == 1, "stored and shown while the evaluator is stopped"
        assert not _checked_in("3001", system), "the board waits for the evaluator"
    finally:
        os.kill(pid, signal.SIGCONT)
        kiosk.close()
    wait_until(lambda: _checked_in("3001", system), timeout=30, message="the board catches up")


def _checked_in(employee: str, system: System) -> bool:
    """The board shows the worker's shift checked in (today's, or yesterday's when it began before midnight)."""
    marks = ", ".join(f"'{s}'" for s in CHECKED_IN)
    sql = f"SELECT count(*) FROM board_row WHERE employee = '{employee}' AND shift = 'S' AND status IN ({marks})"
    return system.appliance_rows(sql)[0][0] > 0


class _Kiosk(threading.Thread):
    """The kiosk's event stream (``/kiosk/events``): each punch event's data, as it arrives."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.events: list[dict] = []
        self.status = 0
        self.opened = threading.Event()
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self._conn.request("GET", "/kiosk/events")
            response = self._conn.getresponse()
            self.status = response.status
            self.opened.set()
            event = ""
            while line := response.readline():
                text = line.decode("utf-8").rstrip("\n")
                if text.startswith("event:"):
                    event = text.partition(":")[2].strip()
                elif text.startswith("data:") and event == "punch":
                    self.events.append(json.loads(text.partition(":")[2]))
                elif not text:
                    event = ""
        except OSError:
            pass
        finally:
            self.opened.set()

    def close(self) -> None:
        if self._conn is not None and self._conn.sock is not None:
            self._conn.sock.shutdown(2)
