"""``punchproof demo``: the whole system on one machine, with a plant whose day tells the story.

What runs: an emulated ZK terminal whose workers punch on cue (``punchproof.demo_terminal``), the appliance
(daemon and pages) reading it, a local Mosquitto, head office (ingest worker, pages, escalation runner),
the demo's own RFC 3161 timestamp authority (``punchproof.demo_tsa``: named as the demo's own, not a third
party) and stand-ins for the message channels (``punchproof.demo_mail``: an SMTP sink and an SMS provider,
whose messages land in ``messages/``). Ctrl-C stops everything.

What is loaded, through the commands and pages an installer and HR use, never by writing tables:
``cloud init`` and ``appliance init``, the channels and the notices' employer facts added to cloud.toml as
an installer would, ``cloud register-appliance``, the logins (``create-user``), the plant's attendance
settings (``cloud push-config``), HR's workbook (``cloud import-hr``, which pushes the roster to the
appliance, signed), and the escalation policy published on head office's policy page by HR. The plant's day
(``punchproof.demo_story``) starts its shift just after the appliance first read the terminal, so within
minutes the board shows who is in, late and missing, and head office opens the two absence cases.

The demo waits for the appliance to have done each step by reading its database (read-only): its first
read of the terminal, and the settings and roster applied from head office.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from cloud.clock import VirtualClock, zone_words
from punchproof.broker import Mosquitto, wait_for_port
from punchproof.demo_mail import Outbox
from punchproof.demo_story import (
    ABSENT,
    EARLY,
    FAST,
    LATE,
    NOT_BACK,
    ON_LEAVE,
    STORY,
    Story,
    attendance_settings,
    cast,
    escalation_policy,
    plan,
)
from punchproof.demo_terminal import DemoTerminal
from punchproof.demo_tsa import LocalTsa
from punchproof.demo_week import CLOCK_FILE, Week, first_day
from punchproof.demo_week_text import (
    SEED_LEAVE_END,
    WeekPlan,
    closing_text,
    seed_policy,
    week_banner_text,
    week_story,
)

PLANT, APPLIANCE = "demo-plant", "pi-01"
PLANT_NAME = "演示工厂（东莞）"
TZ = ZoneInfo("Asia/Shanghai")
MARKER = ".punchproof-demo"
T = TypeVar("T")

# The demo's SMS templates as a company would have them approved at Aliyun: our template -> (TemplateCode, the
# approved content with ${var}). The content is what the phone shows, kept with every SMS as evidence.
DEMO_SMS: dict[str, tuple[str, str]] = {
    "reminder": (
        "SMS_DEMO_REMINDER",
        "${name}您好：您${date}未到岗打卡，也未请假。请尽快到岗或说明情况，详见：${link}",
    ),
    "warning": ("SMS_DEMO_WARNING", "缺勤预警：${name}（文号${doc_no}）未到岗，请核实并登记：${link}"),
    "cuigao": ("SMS_DEMO_CUIGAO", "${name}：您自${date}起未到岗，请于${deadline}前返岗或说明原因。通知全文：${link}"),
    "welfare": (
        "SMS_DEMO_WELFARE",
        "您好，您是${name}的紧急联系人。其自${date}起未到岗且联系不上，请协助联系：${link}",
    ),
    "kuanggong": ("SMS_DEMO_KUANGGONG", "${name}：经核查，您自${date}起未到岗，按旷工处理。通知全文：${link}"),
    "union_letter": ("SMS_DEMO_UNION", "本单位拟解除与${name}的劳动合同，已书面通知工会，详见：${link}"),
    "jiechu": ("SMS_DEMO_JIECHU", "${name}：本单位已依法解除与您的劳动合同，请查看通知全文并办理交接：${link}"),
    "missed_alert": ("SMS_DEMO_ALERT", "未打卡提醒：${line} ${date} ${count}人未打卡，请查看：${link}"),
    "contact_verify": (
        "SMS_DEMO_CONTACT",
        "${name}将您登记为紧急联系人，请回复“确认”。回复其他内容或不回复视为未确认。",
    ),
}


def demo_sms_templates() -> str:
    """``[channels.sms_aliyun.templates]``'s lines for ``DEMO_SMS``."""
    return "\n".join(f'{ours} = {{ code = "{code}", text = "{text}" }}' for ours, (code, text) in DEMO_SMS.items())


# [channels] and [notices] as an installer adds them to cloud.toml (docs/channels: cloud/channels/settings.py)
CHANNELS_TOML = """
# Added by punchproof demo: the channels point at the demo's own stand-ins on loopback (messages/ holds what
# they received). A real cloud names the company's mail server and its SMS account here.
[channels.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = false
from = "hr@demo-factory.example.cn"
from_name = "人力资源部"

[channels.sms_aliyun]
access_key_id = "DEMO-ACCESS-KEY"
access_key_secret_file = "secrets/sms-aliyun"
sign_name = "演示电子"
endpoint = "{sms_url}"
[channels.sms_aliyun.templates]
{sms_templates}

[channels.voice]
enabled = true

[channels.ems]
enabled = true

[notices]
employer = "东莞市演示电子有限公司"
short_name = "演示电子"
address = "广东省东莞市长安镇振安路 88 号"
contact_person = "王敏（人力资源部）"
contact_phone = "0769-8888 1234"
union = "东莞市演示电子有限公司工会委员会"
link_base = "http://127.0.0.1:{cloud_port}"
report_to = "人力资源部（行政楼二楼）"
hr_email = "hr-team@demo-factory.example.cn"
hr_phone = "13800009999"
union_email = "union@demo-factory.example.cn"
"""


@dataclass(frozen=True)
class DemoPorts:
    zk: int = 4370
    mqtt: int = 18830
    appliance_web: int = 8080
    cloud_web: int = 8000


class Demo:
    def __init__(
        self,
        directory: str | Path,
        ports: DemoPorts,
        *,
        fast: bool = False,
        story: bool = False,
        story_days: int = 0,
        day_seconds: float = 30.0,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.ports = ports
        self.fast = fast
        self.pace = FAST if fast else STORY
        self.week: WeekPlan | None = WeekPlan(story_days, day_seconds) if story else None
        self.broker: Mosquitto | None = None
        self.tsa: LocalTsa | None = None
        self.outbox: Outbox | None = None
        self.terminal: DemoTerminal | None = None
        self.story: Story | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            logins = self.prepare()
            self.start_processes()
            self.wait_until_up()
            if self.week is not None:
                return self.play_week(logins, self.week)
            self.story = self.load_plant(logins)
            self.banner(logins, self.story)
            return self.supervise()
        finally:
            self.shutdown()

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> dict[str, tuple[str, str]]:
        if self.dir.exists():
            if not (self.dir / MARKER).exists():
                raise SystemExit(f"{self.dir} exists and is not a demo directory; choose another --dir")
            shutil.rmtree(self.dir)
        for folder in ("logs", "plant"):
            (self.dir / folder).mkdir(parents=True)
        (self.dir / MARKER).touch()
        self.log_to_file("terminal", "punchproof.demo_terminal", "firmware_bridge")
        self.log_to_file("messages", "punchproof.demo_mail")
        self.log_to_file(
            "story", "punchproof.demo_week", "cloud", "ledger", "appliance", "fontTools"
        )  # story mode: ingest and export here
        self.broker = Mosquitto(self.dir / "broker", self.ports.mqtt).start()
        # story mode: no timestamp authority. Its time is real, the story's virtual: a stamp would contradict the
        # records it covers, so the story's bundle says plainly that it has no third-party time
        self.tsa = LocalTsa(self.dir / "tsa").start() if self.week is None else None
        clock = VirtualClock(self.dir / CLOCK_FILE).check() if self.week is not None else None
        approved = dict(DEMO_SMS.values())
        self.outbox = Outbox(self.dir / "messages", tz=TZ, clock=clock, approved=approved).start()
        self.terminal = DemoTerminal(cast(), self.ports.zk, TZ).start()
        cloud_pw, manager_pw = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
        cloud_init = (
            "cloud", "init", "-o", self.cloud_conf, "--state-dir", self.dir / "cloud",
            "--mqtt-port", self.ports.mqtt, "--web-bind", f"127.0.0.1:{self.ports.cloud_web}",
            *(("--tsa-url", self.tsa.url, "--tsa-ca-file", self.tsa.ca_path) if self.tsa else ("--no-tsa",)),
        )  # fmt: skip
        appliance_init = (
            "appliance", "init", "-o", self.appliance_conf, "--plant", PLANT, "--plant-name", PLANT_NAME,
            "--appliance", APPLIANCE, "--timezone", TZ.key, "--state-dir", self.dir / "appliance",
            "--mqtt-port", self.ports.mqtt, "--web-bind", f"127.0.0.1:{self.ports.appliance_web}",
            "--cloud-key", self.dir / "cloud" / "cloud-witness.pub", "--terminal", f"gate-1=127.0.0.1:{self.ports.zk}",
            "--poll-seconds", "2", "--identity", self.dir / "identity.json",
        )  # fmt: skip
        self.cli(*cloud_init)
        self.configure_channels()
        # the steps that do not wait for each other run side by side: start-up is mostly Python's
        self.cli_together(appliance_init, ("cloud", "check-config", "-c", self.cloud_conf))
        self.read_terminal_often()
        self.cli_together(
            ("appliance", "check-config", "-c", self.appliance_conf),
            ("cloud", "register-appliance", "-c", self.cloud_conf, self.dir / "identity.json"),
            ("cloud", "create-user", "-c", self.cloud_conf, "hr", "--password-stdin"),
            ("appliance", "create-user", "-c", self.appliance_conf, "manager", "--role", "plant_manager",
             "--password-stdin"),
            stdin={2: cloud_pw, 3: manager_pw},
        )  # fmt: skip
        return {"cloud": ("hr", cloud_pw), "appliance": ("manager", manager_pw)}

    def log_to_file(self, name: str, *loggers: str) -> None:
        """What runs inside this process logs to ``logs/<name>.log``, as the children do, not over the banner."""
        handler = logging.FileHandler(self.dir / "logs" / f"{name}.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for logger_name in loggers:
            logger = logging.getLogger(logger_name)
            logger.addHandler(handler)
            logger.propagate = False

    def configure_channels(self) -> None:
        """What an installer adds to cloud.toml: the channels (secrets in files of mode 0600) and the notices'
        employer facts."""
        assert self.outbox is not None
        secret = self.dir / "secrets" / "sms-aliyun"
        secret.parent.mkdir(mode=0o700)
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(16) + "\n")
        text = CHANNELS_TOML.format(
            smtp_port=self.outbox.smtp_port,
            sms_url=self.outbox.sms_url,
            cloud_port=self.ports.cloud_web,
            sms_templates=demo_sms_templates(),
        )
        with self.cloud_conf.open("a", encoding="utf-8") as conf:
            conf.write(text)

    def read_terminal_often(self) -> None:
        """``live_poll_seconds = 2`` for the terminal (appliance.toml, as an installer sets it): while live events
        arrive the appliance still reads the whole log every 2 s instead of every minute, so the day's results are
        confirmed seconds after the shift rather than up to a minute later."""
        text = self.appliance_conf.read_text(encoding="utf-8")
        if "\npoll_seconds = 2.0\n" not in text:
            raise SystemExit(f"演示准备失败 / demo set-up failed: no poll_seconds in {self.appliance_conf}")
        text = text.replace("\npoll_seconds = 2.0\n", "\npoll_seconds = 2.0\nlive_poll_seconds = 2.0\n", 1)
        self.appliance_conf.write_text(text, encoding="utf-8")

    @property
    def cloud_conf(self) -> Path:
        return self.dir / "cloud.toml"

    @property
    def appliance_conf(self) -> Path:
        return self.dir / "appliance.toml"

    def cli(self, *args: object, stdin: str | None = None) -> str:
        command = [sys.executable, "-m", "punchproof", *map(str, args)]
        result = subprocess.run(
            command, input=(stdin + "\n") if stdin else None, text=True, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"演示准备失败 / demo set-up failed at {' '.join(map(str, args[:2]))}:\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def cli_together(self, *commands: tuple[object, ...], stdin: dict[int, str] | None = None) -> None:
        """Several commands at once (none needs another's result); each must succeed."""
        stdin = stdin or {}
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "punchproof", *map(str, args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        results = [p.communicate((stdin[i] + "\n") if i in stdin else None) for i, p in enumerate(running)]
        for args, process, (out, err) in zip(commands, running, results, strict=True):
            if process.returncode != 0:
                raise SystemExit(f"演示准备失败 / demo set-up failed at {' '.join(map(str, args[:2]))}:\n{out}{err}")

    def start_processes(self) -> None:
        self.spawn("cloud-ingest", "cloud", "ingest", "-c", self.cloud_conf)
        self.spawn("cloud-web", "cloud", "web", "-c", self.cloud_conf)
        self.spawn("appliance", "appliance", "run", "-c", self.appliance_conf)
        self.spawn("appliance-web", "appliance", "web", "-c", self.appliance_conf)

    def spawn(self, name: str, *args: object) -> None:
        self.spawn_module(name, "punchproof", *args)

    def spawn_module(self, name: str, module: str, *args: object) -> None:
        log = (self.dir / "logs" / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", module, *map(str, args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children in order
        )

    def wait_until_up(self, timeout: float = 30.0) -> None:
        if not wait_for_port("127.0.0.1", self.ports.zk, timeout):
            raise SystemExit("the demo's terminal is not listening")
        for name, port in (("cloud-web", self.ports.cloud_web), ("appliance-web", self.ports.appliance_web)):
            deadline = time.monotonic() + timeout
            while not _http_ok(f"http://127.0.0.1:{port}/login"):
                if self.processes[name].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(self.failure(name))
                time.sleep(0.1)

    # -- the plant's data, as an installer and HR load it ------------------------------------
    def load_plant(self, logins: dict[str, tuple[str, str]]) -> Story:
        assert self.terminal is not None
        settings = self.dir / "plant" / "attendance-settings.json"
        settings.write_text(json.dumps(attendance_settings(self.pace), ensure_ascii=False, indent=2), encoding="utf-8")
        first_read = self.wait_for("the appliance's first read of the terminal", self._first_read)
        story = plan(datetime.now(UTC), first_read, TZ, self.pace) if self.fast else None
        if story is not None:  # no time to lose: the first punches may come before the roster is applied
            self.terminal.play(story.presses)
        self.cli(
            "cloud", "push-config", "-c", self.cloud_conf, "--plant", PLANT, "--appliance", APPLIANCE, "--by", "hr",
            settings,
        )  # fmt: skip
        self.wait_for("the attendance settings applied on the appliance", self._settings_applied)
        if story is None:  # the workers punch in before the shift: the roster is applied by then
            story = plan(datetime.now(UTC), first_read, TZ, self.pace)
        workbook = story.write_hr_workbook(self.dir / "plant" / "hr-master-data.xlsx")
        self.cli("cloud", "import-hr", "-c", self.cloud_conf, "--plant", PLANT, workbook)
        self.wait_for("the roster applied on the appliance", lambda: self._roster_applied(len(story.workers)))
        if not self.fast:
            self.terminal.play(story.presses)
        self.publish_policy(*logins["cloud"])
        self.spawn("cloud-escalate", "cloud", "escalate", "-c", self.cloud_conf, "--interval", 1 if self.fast else 5)
        return story

    def hr_site(self, user: str, password: str) -> _Site:
        """Head office's pages, logged in as HR."""
        site = _Site(f"http://127.0.0.1:{self.ports.cloud_web}")
        site.post("/login", {"username": user, "password": password}, form_page="/login")
        return site

    def publish_policy(self, user: str, password: str, policy: dict[str, object] | None = None, note: str = "") -> None:
        """HR publishes the escalation policy on head office's policy page, as a person would."""
        site = self.hr_site(user, password)
        note = (
            note or "演示政策：免打扰时段已关闭，以便随时演示（正式政策建议 08:00–21:00）/ demo policy: no quiet hours"
        )
        # a missed check-in alert links the line's leader to this plant's board
        alerts = {"alerts": {"board_url": f"http://127.0.0.1:{self.ports.appliance_web}"}}
        body = json.dumps({**(policy or escalation_policy()), **alerts}, ensure_ascii=False, indent=2)
        status, page = site.post("/policy/new", {"scope": "*", "body": body, "note": note}, form_page="/policy/new")
        if status != 200 or "/policy/new" in site.last_url:
            raise SystemExit(f"演示政策未发布 / the demo's policy was not published (HTTP {status}):\n{page[:2000]}")

    # -- story mode: a week of one case on a virtual clock (punchproof.demo_week) --------------
    def play_week(self, logins: dict[str, tuple[str, str]], plan_: WeekPlan) -> int:
        """Load the plant for the story's week (HR's roster from day 1, the seed's preset published), start the
        runner on the virtual clock, play the days, then export the case's bundle and verify it."""
        from cloud.config import CloudSettings
        from cloud.store import open_db

        day1 = first_day(datetime.now(UTC).astimezone(TZ).date())
        story = week_story(day1)
        settings = self.dir / "plant" / "attendance-settings.json"
        settings.write_text(json.dumps(attendance_settings(story.pace), ensure_ascii=False, indent=2), encoding="utf-8")
        self.cli(
            "cloud", "push-config", "-c", self.cloud_conf, "--plant", PLANT, "--appliance", APPLIANCE, "--by", "hr",
            settings,
        )  # fmt: skip
        workbook = story.write_hr_workbook(self.dir / "plant" / "hr-master-data.xlsx")
        self.cli("cloud", "import-hr", "-c", self.cloud_conf, "--plant", PLANT, workbook)
        self.publish_policy(*logins["cloud"], policy=seed_policy(), note=f"{SEED_LEAVE_END}（演示故事模式）")
        cloud = CloudSettings.load(self.cloud_conf)
        open_db(cloud.database_url)
        clock = VirtualClock(self.dir / CLOCK_FILE).check()
        week = Week(
            directory=self.dir,
            settings=cloud,
            clock=clock,
            tz=TZ,
            plant_id=PLANT,
            cloud_url=f"http://127.0.0.1:{self.ports.cloud_web}",
            badge=NOT_BACK,
            day1=day1,
            day_seconds=plan_.day_seconds,
            hr_site=lambda: self.hr_site(*logins["cloud"]),
            stopping=self._story_stops,
            say=lambda text: print(text, flush=True),
        ).start()
        self.spawn_module(
            "cloud-escalate", "punchproof.demo_week", "runner", "-c", self.cloud_conf, "--clock", clock.path,
            "--interval", 0.3,
        )  # fmt: skip
        self.story = story
        print(week_banner_text(self, logins, story, plan_), flush=True)
        reports = week.play(plan_.days)
        if week.case_id is not None and reports and not self.stopping.is_set():
            path, code, said = week.export_and_verify(reports[-1].day)
            print(closing_text(path, code, said, reports), flush=True)
        return self.supervise()

    def _story_stops(self) -> bool:
        if self.stopping.is_set():
            return True
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(self.failure(name))
        return False

    def wait_for(self, what: str, found: Callable[[], T | None], timeout: float = 60.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = found()
            if value is not None and value is not False:
                return value
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SystemExit(self.failure(name))
            if time.monotonic() > deadline or self.stopping.is_set():
                raise SystemExit(f"演示等待超时 / the demo gave up waiting for {what}; logs in {self.dir / 'logs'}")
            time.sleep(0.2)

    def _appliance_db(self, query: str) -> tuple[object, ...] | None:
        path = self.dir / "appliance" / "appliance.sqlite3"
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as conn:
                row = conn.execute(query).fetchone()
            return tuple(row) if row is not None else None
        except sqlite3.Error:  # not created yet, or being migrated
            return None

    def _first_read(self) -> datetime | None:
        row = self._appliance_db("SELECT min(first_read_ms) FROM terminal_health")
        if row is None or row[0] is None:
            return None
        return datetime.fromtimestamp(int(row[0]) / 1000, UTC)  # type: ignore[call-overload]

    def _settings_applied(self) -> bool:
        row = self._appliance_db("SELECT source FROM plant_policy WHERE id = 1")
        return row is not None and str(row[0]).startswith("cloud:")

    def _roster_applied(self, size: int) -> bool:
        row = self._appliance_db("SELECT count(*) FROM employee WHERE source LIKE 'cloud:%' AND active")
        return row is not None and int(row[0]) >= size  # type: ignore[call-overload]

    # -- what to look at ---------------------------------------------------------------------
    def banner(self, logins: dict[str, tuple[str, str]], story: Story) -> None:
        print(banner_text(self, logins, story), flush=True)

    # -- running -----------------------------------------------------------------------------
    def supervise(self) -> int:
        while not self.stopping.wait(0.5):
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(self.failure(name), file=sys.stderr)
                    return 1
        print("正在停止 / stopping ...", flush=True)
        return 0

    def failure(self, name: str) -> str:
        log = self.dir / "logs" / f"{name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        return f"{name} 意外停止 / stopped unexpectedly; the end of {log}:\n{tail}"

    def shutdown(self) -> None:
        if self.terminal is not None:
            self.terminal.stop()
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for part in (self.broker, self.tsa, self.outbox):
            if part is not None:
                part.stop()
        if self.processes:
            print("全部已停止 / all stopped.", flush=True)


def banner_text(demo: Demo, logins: dict[str, tuple[str, str]], story: Story) -> str:
    """What to look at, Chinese first, English after."""
    ports, hhmm = demo.ports, story.hhmm
    cloud_user, cloud_pw = logins["cloud"]
    plant_user, plant_pw = logins["appliance"]
    messages = demo.dir / "messages"

    def who(badges: tuple[str, ...]) -> str:
        return "、".join(f"{story.worker(b).name}（{b}）" for b in badges)

    def who_en(badges: tuple[str, ...]) -> str:
        return ", ".join(f"{story.worker(b).name} ({b})" for b in badges)

    absent, not_back = who(ABSENT), story.worker(NOT_BACK).name
    on_leave = story.worker(ON_LEAVE)
    pace = story.pace
    late_at = story.tentative_at + timedelta(minutes=1)
    return f"""
Punchproof 演示已启动（工作目录 {demo.dir}）

  总部（云端）      http://127.0.0.1:{ports.cloud_web}/    登录 login: {cloud_user} / {cloud_pw}
  工厂看板          http://127.0.0.1:{ports.appliance_web}/    登录 login: {plant_user} / {plant_pw}
  考勤机旁的屏幕    http://127.0.0.1:{ports.appliance_web}/kiosk（无需登录 / no login）
  ZK 考勤机（模拟） 127.0.0.1:{ports.zk}，{len(story.workers)} 名工人，两条产线
  发出的消息        {messages / "index.txt"}（邮件 mail/*.eml，短信 sms/*.json）
  HR 导入的表格     {demo.dir / "plant" / "hr-master-data.xlsx"}
  时间戳机构        {demo.tsa.url if demo.tsa else "无"}（演示自带，非第三方 / the demo's own, not a third party）
  MQTT（Mosquitto） 127.0.0.1:{ports.mqtt}    日志 logs: {demo.dir / "logs"}

今天的演示（{zone_words(story.tz.key)}，一个班次压缩为 {pace.shift_min} 分钟）：
  {hhmm(story.start)}  白班开始（{hhmm(story.start)}–{hhmm(story.end)}，迟到宽限 {pace.grace_min} 分钟）；多数工人已打卡
  {hhmm(story.tentative_at)}  看板上还没打卡的人显示“缺勤（待确认）”；{on_leave.name}（{ON_LEAVE}）病假中；
         几秒内每条产线的主管收到一条未打卡提醒短信（列出未到的人，附看板链接），看板顶部可答复“已在产线看到”等
  {hhmm(late_at)}  {who(LATE)} 迟到到岗{f"；{who(EARLY)} 早退" if pace.checkout_after_min else ""}；{absent} 一直没来
  {hhmm(story.end)}  下班打卡
  {hhmm(story.confirmed_at)}  当天结论确认：总部为 {absent} 立案（{not_back} 为病假结束后未返岗），
         向本人发提醒短信和邮件——见上面的“发出的消息”
  操作步骤：docs/walkthrough.md

Punchproof demo is running (working directory {demo.dir}).

  Head office (cloud)  http://127.0.0.1:{ports.cloud_web}/ (login above); plant board http://127.0.0.1:{ports.appliance_web}/,
  kiosk /kiosk; messages the channels "sent": {messages / "index.txt"}.
  Today, plant time, one shift compressed into {pace.shift_min} minutes: the day shift starts at {hhmm(story.start)};
  from {hhmm(story.tentative_at)} whoever has not punched is "absent (tentative)" on the board, and within seconds
  each line's manager gets one SMS alert listing them, with the board's link (answer it at the top of the board);
  {who_en(LATE)} come late; {who_en(ABSENT)} never come; the shift ends at {hhmm(story.end)};
  at {hhmm(story.confirmed_at)} the day is confirmed and head office opens their absence cases ({not_back}: not back
  after sick leave) and sends each a reminder by SMS and e-mail. What to click: docs/walkthrough.md.
Press Ctrl-C to stop. / 按 Ctrl-C 停止。
"""


class _Site:
    """A logged-in browser, minimal: cookies kept, each form's CSRF token taken from the page it is on."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.last_url = ""

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, form: dict[str, str], *, form_page: str) -> tuple[int, str]:
        _status, page = self.get(form_page)
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        data = urllib.parse.urlencode({**form, "csrf": match.group(1) if match else ""}).encode()
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST"))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                self.last_url = response.geturl()
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            self.last_url = err.geturl() or ""
            return err.code, err.read().decode("utf-8", "replace")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
