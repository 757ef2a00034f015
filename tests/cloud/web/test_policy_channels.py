"""Issue 19.4 on the policy page: a version whose steps name a channel cloud.toml does not configure is refused,
each step and channel named in the reader's language, unless the publisher ticks "skip" for those channels."""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest

from cloud.channels.email_smtp import SmtpSettings
from cloud.channels.settings import ChannelSettings
from cloud.config import CloudSettings
from cloud.escalation import cases
from cloud.escalation.policy import PolicyVersion
from cloud.store import database
from cloud.web import create_app
from tests.cloud.web.conftest import Browser
from tests.harness.clock import FrozenClock

EMAIL_ONLY = ChannelSettings(email=SmtpSettings(host="127.0.0.1", port=2525, sender="hr@factory.example.cn"))


@pytest.fixture
def app(built, tmp_path):
    """Head office's pages on the engine-filled database, with cloud.toml configuring e-mail only."""
    source, now = built
    shutil.copy(source, tmp_path / "cloud.sqlite3")
    cases._policies.clear()
    settings = CloudSettings(
        database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path), channels=EMAIL_ONLY
    )
    application = create_app(settings)
    application.config["CLOCK"] = FrozenClock(now)
    yield application
    if not database.is_closed():
        database.close()


def _current_body() -> str:
    with database.connection_context():
        return PolicyVersion.select().order_by(PolicyVersion.number.desc()).first().body


def _versions() -> int:
    with database.connection_context():
        return PolicyVersion.select().count()


def _shown(page: str, element: str) -> str:
    """The visible text of the element with id ``element``."""
    match = re.search(rf'<(div|p) [^>]*id="{element}"[^>]*>(.*?)</\1>', page, flags=re.S)
    assert match, f"no #{element} on the page"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(2)))


def test_a_policy_naming_unconfigured_channels_is_refused_step_by_step(app):
    admin = Browser(app, "admin")
    before = _versions()
    refused = admin.post("/policy/new", {"scope": "*", "body": _current_body(), "note": "2026 版"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    said = _shown(page, "channels-missing")
    for line in (
        "第1级 提醒：未配置短信通道",
        "第1级 提醒：未配置企业微信通道",
        "第2级 预警：未配置企业微信通道",
        "第3级 催告函：未配置EMS 邮寄通道",
        "第3级 关怀联系：未配置电话通道",
        "第7级 解除通知书：未配置短信通道",
    ):
        assert line in said, said
    assert "未配置邮件通道" not in said, "e-mail is configured"
    boxes = _shown(page, "skip-channels")
    assert all(f"跳过{name}（未配置）" in boxes for name in ("短信", "企业微信", "EMS 邮寄", "电话")), boxes
    assert not re.search(r"sms|wecom|voice|\bems\b", said + boxes), "no internal code on a Chinese page"
    assert _versions() == before

    # ticking some channels only: still refused, naming what is left
    partly = admin.post(
        "/policy/new", {"scope": "*", "body": _current_body(), "note": "2026 版", "skip": ["sms", "voice"]}
    )
    assert partly.status_code == 422
    left = _shown(partly.get_data(as_text=True), "channels-missing")
    assert "未配置企业微信通道" in left and "未配置短信通道" not in left and "未配置电话通道" not in left
    assert _versions() == before

    # ticking every one: published, and the version says so
    done = admin.post(
        "/policy/new",
        {"scope": "*", "body": _current_body(), "note": "2026 版", "skip": ["sms", "wecom", "ems", "voice"]},
    )
    assert done.status_code == 302, done.get_data(as_text=True)
    with database.connection_context():
        newest = PolicyVersion.select().order_by(PolicyVersion.id.desc()).first()
    assert newest.number == before + 1 and newest.note.startswith("2026 版")
    assert "未配置短信、企业微信、EMS 邮寄、电话通道，确认跳过" in newest.note, newest.note


def test_the_refusal_in_english(app):
    admin = Browser(app, "admin")
    admin.get("/policy/new?lang=en")
    refused = admin.post("/policy/new", {"scope": "*", "body": _current_body(), "note": "v"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    said = _shown(page, "channels-missing")
    assert "L1 (reminder): no SMS channel is configured" in said, said
    assert "skip WeCom (not configured)" in _shown(page, "skip-channels")


def test_a_policy_using_only_configured_channels_is_published(app):
    admin = Browser(app, "admin")
    body = json.loads(_current_body())
    for step in body["ladder"]:
        step["channels"] = ["email"]
    body["termination"]["channels"] = ["email"]
    response = admin.post("/policy/new", {"scope": "*", "body": json.dumps(body), "note": "只用邮件"})
    assert response.status_code == 302, response.get_data(as_text=True)
