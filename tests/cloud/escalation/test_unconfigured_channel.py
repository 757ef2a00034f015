"""Issue 19.4: a channel the policy names but the cloud does not configure never stops the runner.

The real ``punchproof cloud escalate`` process, e-mail only (a real SMTP server on loopback), runs a case whose
policy is the default ladder (SMS and WeCom) published before any channel was set up: each recipient×channel
that cannot go is said so in Chinese, the e-mail still goes, a person gets a task saying what to do, the runner
keeps ticking and no step is left 发送中."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, date, datetime

import pytest
from aiosmtpd.controller import Controller

from cloud.escalation import cases
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseEntry, CaseStep, CaseTask
from cloud.escalation.sender import HoldingSender
from cloud.store import open_db
from tests.cloud.channels.test_email import Mailbox, free_port
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

RAW = re.compile(r"\b(sms|wecom|email|ems|voice|reminder|warning|employee|manager|hr)\b")
NOTICES = wiring.TOML[wiring.TOML.index("[notices]") :]
EMAIL_ONLY = """
[channels.email]
host = "127.0.0.1"
port = {port}
starttls = false
from = "hr@factory.example.cn"

"""
# The runner's clock is the real one: a sending window of all but the day's last minute, so the steps to the
# employee are due whenever the test runs (at 23:59 they wait a minute for the next window).
ALL_DAY = {"start": "00:00", "end": "23:59"}


def cloud_init(tmp_path) -> str:
    config = tmp_path / "cloud.toml"
    subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "init", "-o", str(config), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(config)


@pytest.fixture
def smtp():
    with ExitStack() as stack:
        mailbox = Mailbox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        stack.callback(controller.stop)
        yield mailbox, controller.port


@pytest.fixture
def two_days_absent(tmp_path):
    """A case two confirmed absent days in, under the default ladder; L1 due, nothing sent yet (L2, the warning,
    is planned once the reminder has gone out, or failed)."""
    url = f"sqlite:///{(tmp_path / 's').resolve()}/cloud.sqlite3"
    db = open_db(url)
    cases._policies.clear()
    clock = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    feed = PlantFeed(clock).start(handbook=wiring.HANDBOOK, quiet_hours=ALL_DAY)
    feed.hire("2001")
    wiring.staff("2001")
    engine = Engine(clock, HoldingSender())  # no channels yet: steps wait
    clock.advance_to(local(date(2025, 3, 3), "06:00"))
    day_passes(feed, engine, date(2025, 3, 3))
    day_passes(feed, engine, date(2025, 3, 4))
    case = AbsenceCase.get()
    assert {s.key: s.status for s in case.steps} == {"L1": "due"}
    db.close()
    yield case.id
    db.close()


def test_the_runner_with_email_only_sends_what_it_can_and_says_what_it_cannot(tmp_path, smtp, two_days_absent):
    mailbox, port = smtp
    config = cloud_init(tmp_path)
    with open(config, "a", encoding="utf-8") as toml:
        toml.write(EMAIL_ONLY.format(port=port) + NOTICES)
    runner = subprocess.Popen(
        [sys.executable, "-m", "punchproof", "cloud", "escalate", "-c", config, "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def settled() -> bool:
            with open_db(f"sqlite:///{(tmp_path / 's').resolve()}/cloud.sqlite3").connection_context():
                steps = CaseStep.select().where(CaseStep.case == two_days_absent)
                return {"L1", "L2"} <= {s.key for s in steps} and all(s.status not in ("due", "sending") for s in steps)

        wait_until(lambda: runner.poll() is not None or settled(), timeout=90, message="L1 and L2 settled")
        assert runner.poll() is None, f"the runner stopped:\n{runner.communicate()[1][-3000:]}"
        db = open_db(f"sqlite:///{(tmp_path / 's').resolve()}/cloud.sqlite3")
        with db.connection_context():
            steps = {s.key: s for s in CaseStep.select().where(CaseStep.case == two_days_absent)}
            tasks = {t.kind: t for t in CaseTask.select().where(CaseTask.case == two_days_absent)}
            said = [
                e.text_zh
                for e in CaseEntry.select().where(
                    (CaseEntry.case == two_days_absent) & CaseEntry.kind.in_(("sent", "send_failed"))
                )
            ]
        # L1 names SMS and WeCom only: nothing could go, each said so, in Chinese, no internal codes
        assert steps["L1"].status == "failed"
        assert "员工·短信：无法发送：未配置短信通道" in steps["L1"].error
        assert "员工·企业微信：无法发送：未配置企业微信通道" in steps["L1"].error
        # L2 names WeCom and e-mail: the e-mails went to the manager and HR, WeCom is said to be missing
        assert steps["L2"].status == "sent"
        assert "主管·企业微信：无法发送：未配置企业微信通道" in steps["L2"].error
        assert "人事·企业微信：无法发送：未配置企业微信通道" in steps["L2"].error
        assert sorted(wiring_to(mailbox)) == ["hr-team@factory.example.cn", "lisi@factory.example.cn"]
        digests = [subject(e) for e in mailbox.envelopes]
        assert any("【人事待办】" in subject for subject in digests), "HR is told of the sends that failed"
        for key in ("L1", "L2"):
            task = tasks[f"no_channel:{key}"]
            assert task.status == "open" and "企业微信" in task.title_zh and "配置" in task.title_zh
            assert "sms" not in task.title_zh and "wecom" not in task.title_zh
        assert "短信" in tasks["no_channel:L1"].title_zh
        assert tasks["send_failed:L1"].status == "open"
        # what a Chinese reader sees of these steps (timeline, tasks, errors) names no internal code
        warned = [text for text in said if text.startswith("已发出 预警：")]  # who got it, recipient by channel
        assert warned and "主管·邮件 已发出" in warned[0] and "人事·邮件 已发出" in warned[0], said
        assert "主管·企业微信 未配置企业微信通道，未发送" in warned[0], said
        shown = " ".join(said + [t.title_zh for t in tasks.values()] + [s.error for s in steps.values()])
        shown = re.sub(r" / [^;]*", "", shown)  # each "中文 / English" item, its Chinese half
        assert not RAW.search(shown), RAW.findall(shown)
        assert runner.poll() is None, "the runner still ticks"
    finally:
        runner.terminate()
        runner.communicate(timeout=30)


def subject(envelope) -> str:  # type: ignore[no-untyped-def]
    return str(email.message_from_bytes(envelope.original_content, policy=email.policy.default)["Subject"])


def wiring_to(mailbox: Mailbox) -> list[str]:
    """Who the steps' mails went to (HR's digest of waiting work, cloud.escalation.hr_digest, apart)."""
    return [rcpt for e in mailbox.envelopes if "【人事待办】" not in subject(e) for rcpt in e.rcpt_tos]
