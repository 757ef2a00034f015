"""The escalation wired to real channels: an SMTP server on loopback (aiosmtpd), the Aliyun SMS and WeCom
servers that speak their real APIs (signatures checked), the receipts callback served by Flask, and the
cloud's TOML with [channels.*] and [notices] read the way ``punchproof cloud escalate`` reads it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from flask import Flask
from werkzeug.serving import make_server

from cloud.channels.callbacks import receipts_blueprint
from cloud.channels.dispatch import Dispatcher
from cloud.config import CloudSettings
from cloud.escalation.engine import Engine
from cloud.escalation.outbound import OutboundSender
from cloud.evidence.log import EvidenceLog
from cloud.hr.models import EmergencyContact, Employee, PlantBadge
from cloud.workers.escalate import EscalationService
from ledger import SigningKey
from tests.cloud.channels.test_email import Mailbox, free_port
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.wecom import WeComServer

TOKEN = "cb-5e1d0c9a7b3f4e21"
KEY_ID, KEY_SECRET = "LTAI5tWire0000001", "aliyun-secret-wire-0001"
CORP, CORP_SECRET, AGENT = "ww0011223344", "wecom-secret-wire-01", 1000002
ROBOT_KEY = "robot-key-wire-0001"
PEOPLE = {"employee": "zhangsan", "manager": "lisi", "hr": "wangmin"}
TOML = """
[cloud]
state_dir = "{state}"

[database]
url = "sqlite:///{state}/unused.sqlite3"

[channels]
callback_token_file = "secrets/token"
pull_receipts_every_s = 300

[channels.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = false
from = "hr@factory.example.cn"

[channels.sms_aliyun]
access_key_id = "{key_id}"
access_key_secret_file = "secrets/aliyun"
sign_name = "某某电子"
endpoint = "{aliyun}/"
[channels.sms_aliyun.templates]
reminder = "SMS_100000001"
warning = "SMS_100000002"
cuigao = {{ code = "SMS_100000003", text = "${{name}}：请于${{deadline}}前返岗。全文：${{link}}" }}
welfare = "SMS_100000004"
kuanggong = "SMS_100000005"
union_letter = "SMS_100000006"
jiechu = "SMS_100000007"

[channels.wecom]
corp_id = "{corp}"
corp_secret_file = "secrets/wecom"
agent_id = {agent}
base_url = "{wecom}"

[channels.voice]
enabled = true

[channels.ems]
enabled = true

[notices]
employer = "东莞市某某电子有限公司"
short_name = "某某电子"
address = "广东省东莞市长安镇振安路 88 号"
contact_person = "王敏（人力资源部）"
contact_phone = "0769-8888 1234"
union = "东莞市某某电子有限公司工会委员会"
link_base = "https://hr.example.cn"
report_to = "人力资源部（行政楼二楼）"
hr_email = "hr-team@factory.example.cn"
hr_wecom = "wangmin"
union_email = "union@factory.example.cn"
"""
HANDBOOK = {
    "version": "2025版",
    "article": "第六章第十二条",
    "text": "连续旷工三个工作日及以上的，属严重违反公司规章制度，公司可解除劳动合同。",
    "adopted_on": "2025-01-10",
    "adoption_ref": "职代会决议-2025-01",
    "publication_ref": "公示签收-2025-01",
    "published_on": "2025-01-15",
}


def write_secret(folder: Path, name: str, value: str) -> None:
    path = folder / "secrets" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(value + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


@dataclass
class Wired:
    settings: CloudSettings
    mailbox: Mailbox
    aliyun: AliyunSmsServer
    wecom: WeComServer
    witness: SigningKey = field(default_factory=SigningKey.generate)
    evidence_key: SigningKey = field(default_factory=SigningKey.generate)

    def sender(self, clock) -> OutboundSender:
        """A sender with its own channel objects and dispatcher, as each ``escalate`` process has."""
        channels = self.settings.channels.build(clock, sleep=lambda s: clock.advance(seconds=s))
        return OutboundSender(Dispatcher(channels, clock=clock), self.settings.notices, clock)

    def service(self, clock, runner_id: str = "r1") -> EscalationService:
        channels = self.settings.channels.build(clock)
        sender = OutboundSender(Dispatcher(channels, clock=clock), self.settings.notices, clock)
        return EscalationService(
            Engine(clock, sender, runner_id=runner_id),
            clock,
            channels=channels,
            evidence=EvidenceLog(self.evidence_key, self.witness, clock),
        )

    def smtp_to(self) -> list[str]:
        return [rcpt for envelope in self.mailbox.envelopes for rcpt in envelope.rcpt_tos]


def start(tmp_path: Path, clock, stack) -> Wired:  # type: ignore[no-untyped-def]
    """Everything up, torn down by ``stack`` (an ExitStack)."""
    app = Flask(__name__)
    app.register_blueprint(receipts_blueprint(TOKEN, clock=clock))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    stack.callback(server.shutdown)
    callback = f"http://127.0.0.1:{server.server_port}/channels/receipts/{TOKEN}"
    aliyun = stack.enter_context(AliyunSmsServer(clock, KEY_ID, KEY_SECRET, callback_url=f"{callback}/aliyun"))
    wecom = stack.enter_context(WeComServer(clock, CORP, CORP_SECRET, AGENT, set(PEOPLE.values()), ROBOT_KEY))
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    stack.callback(controller.stop)
    for name, value in (("token", TOKEN), ("aliyun", KEY_SECRET), ("wecom", CORP_SECRET)):
        write_secret(tmp_path, name, value)
    toml = tmp_path / "cloud.toml"
    toml.write_text(
        TOML.format(
            state=tmp_path,
            smtp_port=controller.port,
            key_id=KEY_ID,
            aliyun=aliyun.url,
            corp=CORP,
            agent=AGENT,
            wecom=wecom.url,
        ),
        encoding="utf-8",
    )
    return Wired(CloudSettings.load(toml), mailbox, aliyun, wecom)


def staff(user_id: str) -> Employee:
    """Complete the hired worker's master data: contract, addresses, manager and an emergency contact."""
    emp = PlantBadge.get(PlantBadge.user_id == user_id).employee
    manager = Employee.create(
        employee_no=f"M{user_id}", name="李四", email="lisi@factory.example.cn", wecom_id=PEOPLE["manager"]
    )
    emp.name, emp.id_last4, emp.department, emp.position = "张三", "123X", "装配二车间", "操作工"
    emp.contract_no, emp.contract_start, emp.contract_end = "HT-2024-0317", "2024-03-01", "2027-02-28"
    emp.phone, emp.email, emp.wecom_id = "+8613800138000", "zhangsan@example.cn", PEOPLE["employee"]
    emp.service_address = "湖南省邵阳市某某县某某镇某某村 5 组 12 号"
    emp.manager = manager
    emp.save()
    EmergencyContact.create(employee=emp, name="张父", relation="父亲", phone="+8613900139000")
    return emp
