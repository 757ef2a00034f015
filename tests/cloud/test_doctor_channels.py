"""Issue 19.4 in ``punchproof cloud doctor`` (the real command): every step of a policy in force that names a
channel cloud.toml does not configure is listed, as a warning with what to do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloud.escalation.policy import publish
from cloud.store import open_db
from tests.cloud.escalation.plantfeed import policy_body

EMAIL = '\n[channels.email]\nhost = "127.0.0.1"\nport = 2525\nstarttls = false\nfrom = "hr@factory.example.cn"\n'


@pytest.fixture
def cloud(tmp_path):
    """A cloud made by ``cloud init``, its database opened as the services open it; yields (config, publish)."""
    config = tmp_path / "cloud.toml"
    state = tmp_path / "state"
    subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "init", "-o", str(config), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        check=True,
    )
    db = open_db(f"sqlite:///{state.resolve()}/cloud.sqlite3")

    def publish_(body: dict, scope: str = "*") -> None:
        with db.connection_context():
            publish(scope, body, by="hr-admin", now_ms=0)  # as a version published before cloud.toml changed

    yield config, publish_
    db.close()


def doctor(config) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "doctor", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "全部正常" in run.stdout or "项失败" in run.stdout, run.stdout + run.stderr  # it ran to the end
    lines = run.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "政策发送通道 policy channels" in line)
    return "\n".join(lines[at : at + 3])


def test_doctor_lists_each_step_naming_an_unconfigured_channel_with_what_to_do(cloud):
    config, publish_ = cloud
    with open(config, "a", encoding="utf-8") as toml:
        toml.write(EMAIL)
    publish_(policy_body())
    said = doctor(config)
    assert said.startswith("[WARN] 政策发送通道 policy channels"), said
    for line in (
        "*/v1 第1级 提醒 未配置短信、企业微信",
        "*/v1 第2级 预警 未配置企业微信",
        "*/v1 第3级 催告函 未配置短信、企业微信、EMS 邮寄",
        "*/v1 第3级 关怀联系 未配置短信、电话",
        "*/v1 第7级 解除通知书 未配置短信、企业微信、EMS 邮寄",
    ):
        assert line in said, said
    assert "处理：这些步骤到时记为“无法发送”，并为人事生成待办" in said
    assert "[channels.sms_aliyun] 或 [channels.sms_tencent]（短信）" in said and "[channels.wecom]（企业微信）" in said
    assert "Fix: these steps will be recorded as not sent" in said


def test_doctor_is_content_when_every_step_uses_a_configured_channel(cloud):
    config, publish_ = cloud
    with open(config, "a", encoding="utf-8") as toml:
        toml.write(EMAIL)
    body = policy_body()
    body["ladder"] = [{**step, "channels": ["email"]} for step in body["ladder"]]
    body["termination"] = {"channels": ["email"]}
    publish_(body)
    assert doctor(config).startswith("[ OK ] 政策发送通道 policy channels: 各步骤的发送通道均已配置")


def test_doctor_warns_that_steps_wait_when_no_channel_is_configured(cloud):
    config, publish_ = cloud
    publish_(policy_body())
    said = doctor(config)
    assert said.startswith("[WARN] 政策发送通道 policy channels: 未配置任何发送通道"), said
