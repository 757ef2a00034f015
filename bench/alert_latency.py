"""Missed check-in alerts: from the tentative miss on the appliance to the line manager's message at the provider.

Real processes as deployed (``punchproof appliance run``, ``cloud ingest``, ``cloud escalate --interval 60`` as the
systemd unit runs it), a real Mosquitto, the ZK emulator and the local WeCom server (tests/harness/providers) with
the real wall clock. ``--shifts`` shifts start a minute apart (grace 0), each with ``--lines`` lines of two workers:
one punches before the shift, one does not. Each line's alert is one sample: from the shift's start plus grace (the
moment the worker is overdue on the board) to the moment the WeCom server received the manager's message. Printed:
p50 and p99 beside the 2-minute limit, as a ratio. The runner sends alerts at each tick and, on the system clock,
every 5 s between ticks (``cloud.workers.escalate.ALERT_EVERY_S``): ``--interval`` changes the tick, not that.

Run: .venv/bin/python bench/alert_latency.py [--shifts 3] [--lines 10] [--interval 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openpyxl import Workbook  # noqa: E402

from cloud.escalation.policy import publish  # noqa: E402
from cloud.store import open_db  # noqa: E402
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator  # noqa: E402
from punchproof.broker import Mosquitto  # noqa: E402
from tests.cloud.escalation.plantfeed import policy_body  # noqa: E402
from tests.harness.providers.wecom import WeComServer  # noqa: E402
from tests.harness.system import PLANT, System, cli  # noqa: E402

LIMIT_S = 120.0
TZ = ZoneInfo("Asia/Shanghai")
CORP, SECRET, AGENT = "ww-bench-alerts", "wecom-secret-bench", 1000004
CHANNELS = """
[channels.wecom]
corp_id = "{corp}"
corp_secret_file = "secrets/wecom"
agent_id = {agent}
base_url = "{url}"

[notices]
employer = "东莞市某某电子有限公司"
address = "广东省东莞市长安镇振安路 88 号"
contact_person = "王敏（人力资源部）"
contact_phone = "0769-8888 1234"
link_base = "https://hr.example.cn"
hr_wecom = "hr"
"""


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def workbook(path: Path, starts: list[datetime], lines: int, hired: str) -> dict[str, datetime]:
    """Shift S<i> at starts[i], lines L<i>-<j> of two workers each; returns each manager's id -> shift start."""
    book = Workbook()
    book.remove(book.active)
    shifts, rosters = [["班次", "名称", "时段", "迟到宽限"]], [["编号", "类型", "模式", "节假日"]]
    workers = [["工号", "考勤号", "姓名", "产线", "排班", "主管工号", "企业微信", "入职日期"]]
    managers: dict[str, datetime] = {}
    for i, start in enumerate(starts):
        local = start.astimezone(TZ)
        shifts.append([f"S{i}", f"S{i}", f"{local:%H:%M}-{local + timedelta(hours=8):%H:%M}", 0])
        rosters.append([f"R{i}", "固定", ",".join([f"S{i}"] * 7), "照常"])
        for j in range(lines):
            line, manager = f"L{i}-{j}", f"mgr{i}x{j}"
            managers[manager] = start
            workers.append([f"M{i}x{j}", f"9{i:02d}{j:03d}", f"主管{i}-{j}", line, "", "", manager, hired])
            for k in range(2):
                badge = f"{i + 1}{j:03d}{k}"
                workers.append([f"E{badge}", badge, f"工人{badge}", line, f"R{i}", f"M{i}x{j}", "", hired])
    for title, rows in {"班次": shifts, "排班规则": rosters, "员工": workers}.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return managers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, default=3, help="shifts, starting a minute apart")
    parser.add_argument("--lines", type=int, default=10, help="lines per shift: one alert each")
    parser.add_argument("--interval", type=float, default=60.0, help="the runner's tick (systemd unit: 60 s)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pp-alerts-"))
    state = TerminalState(serial="BENCH-ZK-02", tz=TZ, now=lambda: datetime.now(UTC))
    broker = Mosquitto(root / "broker").start()
    with ZKEmulator(state, port=0) as zk, WeComServer(WallClock(), CORP, SECRET, AGENT, set(), "robot") as wecom:  # type: ignore[arg-type]
        system = System(root, broker.port, zk.address).configure()
        secret = root / "secrets" / "wecom"
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(SECRET + "\n", encoding="utf-8")
        os.chmod(secret, 0o600)
        with system.cloud_conf.open("a", encoding="utf-8") as toml:
            toml.write(CHANNELS.format(corp=CORP, agent=AGENT, url=wecom.url))
        now = datetime.now(UTC)
        first = (now + timedelta(seconds=100)).replace(second=0, microsecond=0)
        starts = [first + timedelta(minutes=i) for i in range(args.shifts)]
        managers = workbook(root / "roster.xlsx", starts, args.lines, (now - timedelta(days=60)).date().isoformat())
        wecom.members.update({*managers, "hr"})
        system.recording_since(now - timedelta(days=1))
        db = open_db(f"sqlite:///{root / 'cloud' / 'cloud.sqlite3'}")
        with db.connection_context():
            publish(
                "*", policy_body() | {"alerts": {"channels": ["wecom"]}}, by="bench", now_ms=int(now.timestamp() * 1000)
            )
        db.close()
        cli("cloud", "import-hr", "-c", system.cloud_conf, "--plant", PLANT, root / "roster.xlsx")
        system.start_ingest()
        system.start_appliance()
        system.spawn("escalate", "cloud", "escalate", "-c", system.cloud_conf, "--interval", args.interval)
        cli("cloud", "push-plant-config", "-c", system.cloud_conf, "--plant", PLANT)
        total = args.shifts * args.lines * 3  # a manager and two workers a line
        wait(lambda: system.appliance_rows("SELECT count(*) FROM employee")[0][0] == total, 60, "the roster")
        for i, start in enumerate(starts):
            before = (start - timedelta(minutes=2)).astimezone(TZ).replace(tzinfo=None)
            for j in range(args.lines):
                state.add_user(f"{i + 1}{j:03d}0", "")
                state.punch(f"{i + 1}{j:03d}0", when=before)  # one of the two punched; the other is missing
        if datetime.now(UTC) >= first:
            raise SystemExit("the setup took longer than the margin before the first shift; run again")
        print(
            f"{len(managers)} alerts due from {first.astimezone(TZ):%H:%M} ({args.shifts} shifts x {args.lines} lines)"
        )
        received: dict[str, datetime] = {}

        def arrived() -> bool:
            for message in wecom.messages:
                for to in message["to"]:
                    if to in managers:
                        received.setdefault(to, message["at"])
            return len(received) == len(managers)

        wait(arrived, (starts[-1] - datetime.now(UTC)).total_seconds() + 2 * LIMIT_S, "every manager's alert")
        system.stop_all()
    broker.kill()
    latencies = [(received[m] - managers[m]).total_seconds() for m in managers]
    extra = [m for m in wecom.messages if any(to in managers for to in m["to"])]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"alerts: {len(latencies)}, messages to managers: {len(extra)} (one each), runner interval {args.interval:g} s"
    )
    print(f"tentative miss -> provider receipt: p50 {p50:.1f} s, p99 {p99:.1f} s, max {max(latencies):.1f} s")
    print(f"limit {LIMIT_S:.0f} s: p99 ratio {p99 / LIMIT_S:.2f}")


if __name__ == "__main__":
    main()
