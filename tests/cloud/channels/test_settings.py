"""[channels.*] in the cloud's TOML: secrets only from 0600 files, every bad key listed at once, secrets never
shown by show-config, the channels built from it, and the receipts endpoint mounted in the web app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.channels.contact_log import DeliveryReceipt
from cloud.channels.email_smtp import SmtpChannel
from cloud.channels.manual import ManualChannel
from cloud.channels.sms_tencent import TencentSms
from cloud.config import CloudSettings, ConfigError
from cloud.store import database
from tests.harness.clock import FrozenClock

GOOD = """
[cloud]
state_dir = "{state}"
[database]
url = "sqlite:///{state}/cloud.sqlite3"
[channels]
callback_token_file = "secrets/token"
[channels.email]
host = "smtp.example.cn"
port = 465
username = "hr@example.cn"
password_file = "secrets/smtp"
from = "hr@example.cn"
[channels.sms_tencent]
secret_id = "AKIDwire"
secret_key_file = "secrets/tencent"
sdk_app_id = "1400000001"
sign_name = "某某电子"
[channels.sms_tencent.templates]
cuigao = {{ id = "1234567", params = ["name", "deadline", "link"] }}
[channels.ems]
enabled = true
[notices]
employer = "东莞市某某电子有限公司"
address = "东莞"
contact_person = "王敏"
contact_phone = "0769-1"
link_base = "https://hr.example.cn"
"""
SECRETS = {"token": "token-abcdefghijklmnop", "smtp": "smtp-pass-Very-Secret", "tencent": "tencent-key-Very-Secret"}


def write(folder: Path, text: str, secrets: dict[str, str] = SECRETS, mode: int = 0o600) -> Path:
    (folder / "secrets").mkdir(exist_ok=True)
    for name, value in secrets.items():
        path = folder / "secrets" / name
        path.write_text(value + "\n", encoding="utf-8")
        os.chmod(path, mode)
    config = folder / "cloud.toml"
    config.write_text(text.format(state=folder), encoding="utf-8")
    return config


def test_secrets_come_from_owner_only_files_and_build_the_channels(tmp_path):
    settings = CloudSettings.load(write(tmp_path, GOOD))
    assert settings.channels.email.password == "smtp-pass-Very-Secret"
    assert settings.channels.callback_token == "token-abcdefghijklmnop"
    assert settings.channels.sms_tencent.templates["cuigao"].params == ("name", "deadline", "link")
    channels = settings.channels.build(FrozenClock())
    assert [type(c) for c in channels] == [SmtpChannel, TencentSms, ManualChannel]
    assert settings.notices.employer == "东莞市某某电子有限公司"


def test_every_bad_key_is_listed_at_once(tmp_path):
    bad = (
        GOOD.replace('password_file = "secrets/smtp"', 'password = "inline"')
        .replace('sign_name = "某某电子"', "sign_name = 7")
        .replace("port = 465", 'port = "465"')
        .replace("[channels.ems]", "[channels.fax]")
        .replace('link_base = "https://hr.example.cn"', "")
    )
    with pytest.raises(ConfigError) as caught:
        CloudSettings.load(write(tmp_path, bad))
    problems = "\n".join(caught.value.problems)
    for expected in (
        "channels.email.password: unknown key (put it in a file: password_file)",
        "channels.sms_tencent.sign_name: expected str, got int",
        "channels.email.port: expected int, got str",
        "channels.fax: unknown key",
        "notices.link_base: missing",
    ):
        assert expected in problems
    assert len(caught.value.problems) >= 5


def test_the_approved_sms_content_is_read_beside_its_code_and_a_wrong_entry_is_said(tmp_path):
    aliyun = """
[channels.sms_aliyun]
access_key_id = "LTAIwire"
access_key_secret_file = "secrets/tencent"
sign_name = "某某电子"
[channels.sms_aliyun.templates]
reminder = "SMS_1"
cuigao = {{ code = "SMS_2", text = "${{name}}：请于${{deadline}}前返岗。${{link}}" }}
"""
    text = GOOD.replace(
        'params = ["name", "deadline", "link"] }}', 'params = ["name", "link"], text = "{{1}}：{{2}}" }}'
    )
    settings = CloudSettings.load(write(tmp_path, text.replace("[channels.ems]", aliyun + "[channels.ems]")))
    ali = settings.channels.sms_aliyun
    assert ali.template_codes == {"reminder": "SMS_1", "cuigao": "SMS_2"}
    assert ali.template_texts == {"cuigao": "${name}：请于${deadline}前返岗。${link}"}
    assert settings.channels.sms_tencent.templates["cuigao"].text == "{1}：{2}"
    wrong = aliyun.replace('cuigao = {{ code = "SMS_2"', 'cuigao = {{ id = "SMS_2"')
    with pytest.raises(ConfigError) as caught:
        CloudSettings.load(write(tmp_path, GOOD.replace("[channels.ems]", wrong + "[channels.ems]")))
    assert any(
        p.startswith("channels.sms_aliyun.templates.cuigao: a TemplateCode string") for p in caught.value.problems
    )


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        CloudSettings.load(write(tmp_path, GOOD, mode=0o644))
    assert sum("chmod 600" in p for p in caught.value.problems) == 3


def test_show_config_masks_every_secret_and_check_config_lists_problems(tmp_path):
    config = write(tmp_path, GOOD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    shown = subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "show-config", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    for secret in SECRETS.values():
        assert secret not in shown
    data = {key.rsplit(".", 1)[-1]: row["value"] for key, row in json.loads(shown).items()}
    assert data["channels"]["email"]["password_file"] == "secrets/smtp (read, ***)"
    os.chmod(tmp_path / "secrets" / "smtp", 0o640)
    checked = subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert checked.returncode != 0 and "channels.email.password_file" in checked.stderr + checked.stdout
    assert "smtp-pass-Very-Secret" not in checked.stderr + checked.stdout


def test_the_web_app_takes_delivery_reports_at_the_token_url_only(tmp_path):
    from cloud.web import create_app

    settings = CloudSettings.load(write(tmp_path, GOOD))
    app = create_app(settings)
    client = app.test_client()
    report = [{"phone_number": "13800138000", "success": True, "biz_id": "900^0", "report_time": "2026-03-02 09:00:04"}]
    try:
        wrong = client.post("/channels/receipts/not-the-token-123456/aliyun", json=report)
        right = client.post(f"/channels/receipts/{SECRETS['token']}/aliyun", json=report)
        assert wrong.status_code == 404
        assert right.status_code == 200 and right.json == {"code": 0, "msg": "接收成功"}  # no CSRF form needed
        with database.connection_context():
            assert [r.provider_message_id for r in DeliveryReceipt.select()] == ["900^0"]
    finally:
        database.close()
