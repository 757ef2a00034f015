"""``punchproof demo --story``: the seed's week of an absence case on the real demo processes, on a virtual clock.

The texts sent are read where the demo's stand-ins keep them (messages/: the SMS provider's JSON, the SMTP sink's
mails): day 1 the reminder SMS to 马艳, day 2 the warning mail to HR, day 3 the 催告函 by SMS to her and to her
emergency contact and by mail to her, stating the return deadline (the end of day 7); its link opens on head
office's page. At the end the story exports the case's bundle and ``punchproof verify`` checks it.

CI runs the first three days (``--story-days 3``); PUNCHPROOF_DEMO_STORY_WEEK=1 runs the whole week, to the
termination draft waiting for HR on day 7 once its return deadline (18:00) passed (about a minute more).
"""

from __future__ import annotations

import email
import json
import os
import re
import signal
import subprocess
import sys
from datetime import date, timedelta
from email import policy
from pathlib import Path

import pytest

from punchproof.broker import free_port
from tests.e2e.test_demo import processes_mentioning
from tests.harness.http import WebClient
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e
WHOLE_WEEK = bool(os.environ.get("PUNCHPROOF_DEMO_STORY_WEEK"))
MA_YAN, HER_FATHER = "13800121012", "13900122012"  # 马艳's phone and her emergency contact's (the demo's workbook)


def test_story_mode_plays_the_seed_week_and_its_bundle_verifies(tmp_path):
    ports = {name: free_port() for name in ("zk", "mqtt", "appliance", "cloud")}
    output = tmp_path / "demo.out"
    demo_dir = tmp_path / "demo"
    argv = [sys.executable, "-m", "punchproof", "demo", "--story", "--day-seconds", "0", "--dir", str(demo_dir)]
    argv += ["--story-days", "0" if WHOLE_WEEK else "3"]
    for name, flag in (("zk", "--zk-port"), ("mqtt", "--mqtt-port"), ("appliance", "--appliance-port")):
        argv += [flag, str(ports[name])]
    argv += ["--cloud-port", str(ports["cloud"])]
    with output.open("w") as out:
        demo = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            said = wait_until(
                lambda: "退出码" in output.read_text() and output.read_text(),
                timeout=240 if WHOLE_WEEK else 150,
                message="the story's closing message",
            )
            banner = said[: said.index("—— 第1天")]
            assert "时间为虚拟时间" in banner and "time is VIRTUAL" in banner
            assert "考勤结论为模拟" in banner and "SIMULATED" in banner and "pi-sim" in banner
            day1 = date.fromisoformat(re.search(r"第1天 (\d{4}-\d{2}-\d{2})", banner).group(1))
            assert day1.weekday() == 1  # a Tuesday: day 7 is the next Monday
            check_the_texts_sent(demo_dir / "messages", day1, WebClient(f"http://127.0.0.1:{ports['cloud']}"))
            # the bundle verifies: signatures, chains, the case's contacts and receipts; no third-party time in
            # story mode (a real-time stamp would contradict the virtual records), and keys from the bundle: exit 4
            assert "退出码 exit 4" in said, said[said.index("故事演到") :]
            assert "无记录缺口 / no gaps" in said
            if WHOLE_WEEK:
                logins = dict(re.findall(r"login: (\w+) / (\S+)", said))
                check_the_termination_draft_waits(said, logins["hr"], ports["cloud"])
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=60)
    text = output.read_text()
    assert code == 0, text
    assert "all stopped." in text
    assert processes_mentioning(str(demo_dir)) == [], "processes left behind"


def check_the_texts_sent(messages: Path, day1: date, cloud: WebClient) -> None:
    sms = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((messages / "sms").glob("*.json"))]
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(messages.glob("mail/*.eml"))
    ]
    index = (messages / "index.txt").read_text(encoding="utf-8")
    # day 1 (evening, when the day is confirmed): the reminder to 马艳, by SMS
    reminder = [s for s in sms if s["template"] == "SMS_DEMO_REMINDER"]
    assert [s["phone"] for s in reminder] == [MA_YAN] and reminder[0]["variables"]["name"] == "马艳"
    assert f"{day1.isoformat()} 18:30" in index.splitlines()[0]  # the day confirmed (the shift ends at 17:00)
    # day 2: the warning to HR, by mail
    warnings = [m for m in mails if "员工缺勤预警" in str(m["Subject"])]
    assert [str(m["To"]) for m in warnings] == ["hr-team@demo-factory.example.cn"], [m["To"] for m in mails]
    assert "马艳" in warnings[0].get_body(("plain",)).get_content()
    # day 3: the 催告函 to 马艳 and to her emergency contact by SMS, to her by mail, with the return deadline
    deadline = day1 + timedelta(days=6)  # the end of day 7 (a Monday), 18:00
    said = f"{deadline.year}年{deadline.month}月{deadline.day}日 18:00"
    cuigao = [s for s in sms if s["template"] == "SMS_DEMO_CUIGAO"]
    assert sorted(s["phone"] for s in cuigao) == sorted([MA_YAN, HER_FATHER])
    assert all(said in s["variables"]["deadline"] for s in cuigao), cuigao
    letters = [m for m in mails if "催告函" in str(m["Subject"])]
    assert [str(m["To"]) for m in letters] == ["1013@staff.example.cn"]
    assert said in letters[0].get_body(("plain",)).get_content()
    assert any(part.get_filename().endswith(".pdf") for part in letters[0].iter_attachments())
    day3 = (day1 + timedelta(days=2)).isoformat()
    assert all(day3 in line for line in index.splitlines() if "SMS_DEMO_CUIGAO" in line)
    # the notice's link opens head office's page of that notice, no login
    link = cuigao[0]["variables"]["link"]
    status, page = cloud.get(link.removeprefix(cloud.base))
    assert status == 200 and "马艳" in page and "催告函" in page


def check_the_termination_draft_waits(said: str, password: str, port: int) -> None:
    """The whole week: on day 7, once the 催告函's deadline passed, 旷工 recorded (its notice sent) and the
    termination drafted, waiting for HR's confirmation."""
    day7 = said[said.index("—— 第7天") : said.index("故事演到")]
    assert "旷工通知书" in day7 and "解除劳动合同通知书草稿待人事确认" in day7, day7
    assert "—— 第8天" not in said
    case = re.search(r"打开 http://127\.0\.0\.1:\d+(/cases/\d+)", said).group(1)
    cloud = WebClient(f"http://127.0.0.1:{port}")
    assert cloud.login("hr", password)[0] == 200
    page = cloud.get(case)[1]
    assert "确认解除劳动合同" in page and "旷工通知书" in page


def test_the_virtual_clock_is_the_demos_only_and_never_reads_earlier_than_it_was_set(tmp_path):
    from datetime import UTC, datetime

    from cloud.clock import VirtualClock, VirtualClockRefused

    with pytest.raises(VirtualClockRefused, match="虚拟时钟只用于演示"):
        VirtualClock(tmp_path / "virtual-clock.json").check()  # no .punchproof-demo beside it: refused
    (tmp_path / ".punchproof-demo").touch()
    clock = VirtualClock(tmp_path / "virtual-clock.json").check()
    assert abs(clock.now() - datetime.now(UTC)).total_seconds() < 1  # no file yet: real time
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3, microseconds=999)
    for _ in range(200):  # set to a moment, read at once: never before it (the offset is rounded up)
        clock.advance_to(ahead)
        assert clock.now() >= ahead
    clock.advance_to(ahead - timedelta(days=1))
    assert clock.now() >= ahead  # never back
    assert VirtualClock(tmp_path / "virtual-clock.json").now() >= ahead  # another process reads the same time
