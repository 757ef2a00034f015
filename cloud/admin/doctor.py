"""``punchproof cloud doctor``: can head office's service do its job, and if not, what to do.

Checks the clock, the disk, the database (SQLite integrity or PostgreSQL reachability), the
witness key, the timestamp authorities (a warning without one), the appliances (registered, heard
from lately), the broker (a real MQTT CONNECT with the configured credentials), the quarantine, the
policies' channels (a step naming a channel cloud.toml does not configure cannot send by it), and the
statutory calendar (a year starting within 60 days that nobody has published). Each failure says what to do, in Chinese
first, then English. It only reads, so it is safe beside running workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from cloud import witness
from cloud.channels import names
from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from opskit.doctor import FAIL, OK, WARN, Finding, broker_finding, check_disk, run_command
from opskit.mqttprobe import probe_broker
from opskit.sqlite_check import quick_check


@dataclass(frozen=True)
class Limits:
    min_free_bytes: int = 1024 * 1024 * 1024
    silent_after_s: float = 3600.0  # an appliance not heard from this long is worth a look
    connect_timeout_s: float = 3.0


class CloudDoctor:
    def __init__(
        self,
        settings: CloudSettings,
        *,
        clock: Clock | None = None,
        limits: Limits = Limits(),
        command: Callable[[list[str]], str | None] = run_command,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.limits = limits
        self._command = command

    def run(self) -> list[Finding]:
        findings = [
            self.check_clock(),
            self.check_disk(),
            self.check_witness_key(),
            self.check_timestamp_authorities(),
            self.check_broker(),
        ]
        database = self.check_database()
        findings.append(database)
        if database.status == OK:
            findings += [
                self.check_appliances(),
                self.check_quarantine(),
                self.check_policy_channels(),
                self.check_calendar(),
            ]
        return findings

    def check_clock(self) -> Finding:
        name = "时钟同步 clock"
        chrony = self._command(["chronyc", "-n", "tracking"])
        if chrony is not None:
            fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in chrony.splitlines())}
            detail = f"chrony: leap status {fields.get('Leap status', '?')}, {fields.get('System time', '?')}"
            synced = fields.get("Leap status") == "Normal"
        elif (answer := self._command(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])) is not None:
            detail, synced = f"timedatectl NTPSynchronized={answer.strip()}", answer.strip() == "yes"
        else:
            return Finding(
                name,
                WARN,
                "cannot tell: neither chronyc nor timedatectl is available",
                "安装 chrony（sudo apt-get install chrony）以同步并检查时钟；云端的确认和时间戳依赖准确的时钟。",
                "install chrony (sudo apt-get install chrony) to keep and check the clock; the cloud's "
                "acknowledgements and cosignatures carry its time.",
            )
        if synced:
            return Finding(name, OK, detail)
        return Finding(
            name,
            FAIL,
            f"not synchronised ({detail})",
            "检查 chrony 的服务器（/etc/chrony/chrony.conf）与防火墙（UDP 123），sudo systemctl restart chrony。",
            "check chrony's servers (/etc/chrony/chrony.conf) and the firewall (UDP 123), then "
            "sudo systemctl restart chrony.",
        )

    def check_disk(self) -> Finding:
        return check_disk(
            Path(self.settings.state_dir),
            self.limits.min_free_bytes,
            "扩容磁盘或清理空间（sudo journalctl --vacuum-size=500M，旧的导出文件）；"
            "数据库在 PostgreSQL 时也检查其所在磁盘。",
            "grow the disk or free space (sudo journalctl --vacuum-size=500M, old exports); with PostgreSQL, "
            "check its disk too.",
        )

    def check_witness_key(self) -> Finding:
        name = "见证密钥 witness key"
        try:
            key = witness.load(self.settings)
        except witness.WitnessKeyMissing as err:
            return Finding(
                name,
                FAIL,
                str(err),
                "从备份恢复 keys/cloud-witness.pem（每台 ingest 主机须相同）；"
                "不要重新生成，否则所有设备都要更换 cloud-witness.pub。",
                "restore keys/cloud-witness.pem from a backup (every ingest host needs the same file); do not "
                "generate a new one, or every appliance needs a new cloud-witness.pub.",
            )
        mode = self.settings.witness_key_path.stat().st_mode
        if mode & 0o077:
            return Finding(
                name,
                FAIL,
                f"{self.settings.witness_key_path} is readable by others",
                f"sudo chmod 600 {self.settings.witness_key_path}",
                f"sudo chmod 600 {self.settings.witness_key_path}",
            )
        return Finding(name, OK, f"{key.kid}")

    def check_timestamp_authorities(self) -> Finding:
        """A warning without any: bundles then carry no third-party time; a failure when one cannot be used."""
        from cloud.config import ConfigError
        from cloud.evidence.tsa import NO_TSA_EN, NO_TSA_ZH, configured_clients

        name = "时间戳机构 timestamp authority"
        try:
            clients = configured_clients(self.settings)
        except ConfigError as err:
            return Finding(
                name,
                FAIL,
                "; ".join(err.problems),
                "检查 cloud.toml 中 [[tsa.authority]] 的 url 与 ca_file（根证书须为 PEM，且 punchproof 用户可读）。",
                "check url and ca_file of each [[tsa.authority]] in cloud.toml (the root certificate must be PEM, "
                "readable by the punchproof user).",
            )
        if not clients:
            return Finding(name, WARN, "未配置第三方时间戳 / no third-party timestamp authority", NO_TSA_ZH, NO_TSA_EN)
        return Finding(name, OK, ", ".join(client.url for client in clients))

    def check_broker(self) -> Finding:
        cfg = self.settings
        error = probe_broker(
            cfg.mqtt_host,
            cfg.mqtt_port,
            username=cfg.mqtt_username,
            password=cfg.mqtt_password,
            tls=cfg.mqtt_tls,
            ca_file=cfg.mqtt_ca_file,
            client_id=f"pp-cloud-doctor-{os.getpid()}",
            timeout=self.limits.connect_timeout_s,
        )
        return broker_finding(
            cfg.mqtt_host,
            cfg.mqtt_port,
            error,
            "检查 Mosquitto 是否运行（sudo systemctl status mosquitto）、端口与防火墙，以及 [mqtt] username/password"
            "（docs/broker-security.md）。",
            "check that Mosquitto runs (sudo systemctl status mosquitto), the port and firewall, and [mqtt] username "
            "and password (docs/broker-security.md).",
        )

    def check_database(self) -> Finding:
        name = "数据库 database"
        url = self.settings.database_url
        if url.startswith("sqlite"):
            path = Path(url.split(":///", 1)[-1])
            if not path.exists():
                return Finding(
                    name,
                    FAIL,
                    f"{path} does not exist",
                    "运行 punchproof cloud init，或从备份恢复数据库。",
                    "run 'punchproof cloud init', or restore the database from a backup.",
                )
            result = quick_check(path, timeout=10)
            if result != ["ok"]:
                return Finding(
                    name,
                    FAIL,
                    f"{path} is damaged: {'; '.join(result[:3])}",
                    "停止 ingest 与 web 服务，保留损坏的文件，从最近的备份恢复；设备会重发云端未确认的记录。",
                    "stop the ingest and web services, keep the damaged file, restore the latest backup; the "
                    "appliances resend whatever the restored database lacks.",
                )
            return Finding(name, OK, f"{path}: quick_check ok")
        try:
            import psycopg2
        except ImportError:
            return Finding(
                name,
                FAIL,
                "the PostgreSQL driver is not installed",
                "安装时加上 postgres 选项：/opt/punchproof/bin/pip install 'punchproof[postgres]'。",
                "install with the postgres extra: /opt/punchproof/bin/pip install 'punchproof[postgres]'.",
            )
        try:
            conn = psycopg2.connect(url, connect_timeout=max(1, int(self.limits.connect_timeout_s)))
        except psycopg2.OperationalError as err:
            return Finding(
                name,
                FAIL,
                f"PostgreSQL unreachable: {str(err).strip().splitlines()[0]}",
                "检查 PostgreSQL 是否运行（sudo systemctl status postgresql）、[database] url 的主机、用户和密码，"
                "以及 pg_hba.conf。",
                "check that PostgreSQL runs (sudo systemctl status postgresql), the host, user and password of "
                "[database] url, and pg_hba.conf.",
            )
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW server_version")
                version = cursor.fetchone()[0]
                cursor.execute("SELECT to_regclass('schema_version') IS NOT NULL")
                made = cursor.fetchone()[0]
        finally:
            conn.close()
        if not made:  # a new database: the tables are made when a service (or a command that writes) first opens it
            return Finding(
                name,
                FAIL,
                f"PostgreSQL {version} answers, but the database holds no Punchproof tables yet",
                "启动服务一次（sudo systemctl start punchproof-ingest@1），它会建表；或检查 [database] url 的库名。",
                "start the services once (sudo systemctl start punchproof-ingest@1): they create the tables; or "
                "check the database name in [database] url.",
            )
        return Finding(name, OK, f"PostgreSQL {version} answers")

    def _database(self) -> pw.Database:
        from cloud.store import open_db

        return open_db(self.settings.database_url, create=False)

    def check_appliances(self) -> Finding:
        from cloud.store import Appliance

        name = "设备 appliances"
        db = self._database()
        with db.connection_context():
            rows = list(Appliance.select(Appliance.log_origin, Appliance.status, Appliance.last_batch_ms))
        if not rows:
            return Finding(
                name,
                WARN,
                "no appliance registered yet",
                "用设备的身份文件登记：punchproof cloud register-appliance pi.json。",
                "register each appliance from its identity file: punchproof cloud register-appliance pi.json.",
            )
        now = to_ms(self.clock.now())
        silent = [
            f"{row.log_origin} ({_ago(now, row.last_batch_ms)})"
            for row in rows
            if row.last_batch_ms is None or now - row.last_batch_ms > self.limits.silent_after_s * 1000
        ]
        detail = f"{len(rows)} registered, {sum(r.status == 'online' for r in rows)} online"
        if silent:
            return Finding(
                name,
                WARN,
                f"{detail}; not heard from: {', '.join(silent)}",
                "请工厂 IT 在该设备上运行 punchproof appliance doctor；设备离线期间打卡保存在本地，恢复后补传。",
                "ask the plant's IT to run 'punchproof appliance doctor' on it; while it is offline its punches wait "
                "on the appliance and arrive later.",
            )
        return Finding(name, OK, detail)

    def check_quarantine(self) -> Finding:
        from cloud.store import Quarantine

        since = to_ms(self.clock.now()) - 24 * 3600 * 1000
        db = self._database()
        with db.connection_context():
            count = Quarantine.select().where(Quarantine.received_ms >= since).count()
            latest = Quarantine.select().order_by(Quarantine.received_ms.desc()).first() if count else None
        name = "隔离消息 quarantine"
        if not count:
            return Finding(name, OK, "no message quarantined in the last 24 h")
        return Finding(
            name,
            WARN,
            f"{count} message(s) failed verification in the last 24 h; latest on {latest.topic}: {latest.reason}",
            "查看总部页面的“隔离消息”；未登记的设备请登记，密钥被吊销的设备请按 docs/operations.md 更换。",
            "see the quarantine on head office's pages; register an unregistered appliance, replace one whose key was "
            "revoked (docs/operations.md).",
        )

    def check_policy_channels(self) -> Finding:
        """Every step of a policy in force (the newest of each scope, or one open cases run under) that names
        a channel cloud.toml does not configure: at run time it says 无法发送 for it, with a task for HR."""
        from cloud.escalation.models import AbsenceCase
        from cloud.escalation.policy import PolicyVersion, step_label, unconfigured

        name = "政策发送通道 policy channels"
        db = self._database()
        with db.connection_context():
            newest = PolicyVersion.select(pw.fn.MAX(PolicyVersion.id)).group_by(PolicyVersion.scope)
            running = AbsenceCase.select(AbsenceCase.policy).where(AbsenceCase.open_key.is_null(False))
            versions = list(
                PolicyVersion.select()
                .where(PolicyVersion.id.in_(newest) | PolicyVersion.id.in_(running))
                .order_by(PolicyVersion.scope, PolicyVersion.number)
            )
        if not versions:
            return Finding(name, OK, "尚未发布政策 / no policy published yet")
        channels = self.settings.channels
        if not channels.configured:
            return Finding(
                name,
                WARN,
                "未配置任何发送通道：升级步骤都在等待 / no [channels.*] is configured: every escalation step waits",
                "在 cloud.toml 配置政策使用的发送通道（[channels.email]、[channels.sms_aliyun] 等，见 "
                "cloud/channels/settings.py），然后 sudo systemctl restart punchproof-escalate。",
                "configure the channels the policies use in cloud.toml ([channels.email], [channels.sms_aliyun]...), "
                "then sudo systemctl restart punchproof-escalate.",
            )
        have = channels.kinds()
        lines_zh: list[str] = []
        lines_en: list[str] = []
        kinds: dict[str, None] = {}
        for version in versions:
            by_step: dict[tuple[str, str], list[str]] = {}
            for key, notice, kind in unconfigured(version.parsed(), have):
                by_step.setdefault((key, notice), []).append(kind)
                kinds[kind] = None
            for (key, notice), missing in by_step.items():
                lines_zh.append(f"{version.label} {step_label(key, notice)} 未配置{'、'.join(map(names.zh, missing))}")
                lines_en.append(f"{version.label} {key} names {', '.join(map(names.en, missing))}")
        labels = ", ".join(v.label for v in versions)
        if not lines_zh:
            return Finding(name, OK, f"各步骤的发送通道均已配置 / every step's channels are configured ({labels})")
        sections = "、".join(f"{names.how_to_configure(k)}（{names.zh(k)}）" for k in kinds)
        return Finding(
            name,
            WARN,
            "；".join(lines_zh) + " / " + "; ".join(lines_en),
            f"这些步骤到时记为“无法发送”，并为人事生成待办。在 cloud.toml 配置 {sections}，然后 sudo systemctl "
            "restart punchproof-escalate 与 punchproof-cloud-web；或在总部页面发布不使用这些通道的新版政策。",
            "these steps will be recorded as not sent by those channels, with a task for HR. Configure "
            f"{', '.join(names.how_to_configure(k, 'en') for k in kinds)} in cloud.toml, then sudo systemctl restart "
            "punchproof-escalate punchproof-cloud-web; or publish a policy version without them on head office's "
            "pages.",
        )

    def check_calendar(self) -> Finding:
        """This year and, 60 days ahead, next year: each covered by the package or published by head office."""
        from zoneinfo import ZoneInfo

        from cloud.hr.calendar import CalendarError, head_office_calendar

        name = "法定节假日 statutory calendar"
        db = self._database()
        try:
            with db.connection_context():
                calendar = head_office_calendar()
        except CalendarError as err:
            return Finding(
                name, FAIL, str(err), "重新发布该年份：punchproof cloud calendar set-year。", "publish the year again."
            )
        today = self.clock.now().astimezone(ZoneInfo(self.settings.timezone)).date()
        covered = sorted(calendar.covered_years)
        detail = f"covered {covered[0]}–{covered[-1]}" + (
            f" (head office: {', '.join(f'{y} v{v}' for y, v in sorted(calendar.published.items()))})"
            if calendar.published
            else ""
        )
        missing = calendar.unpublished_years(today)
        if not missing:
            return Finding(name, OK, detail)
        years = "、".join(str(y) for y in missing)
        return Finding(
            name,
            WARN,
            f"{', '.join(str(y) for y in missing)} not published ({detail}): the plants judge it by a provisional "
            "calendar (no public holidays) and flag every day and case",
            f"{years} 年节假日安排尚未发布：国务院办公厅通知一经公布，写成 TOML 文件（见 docs/operations.md），运行 "
            f"punchproof cloud calendar set-year {missing[-1]} 文件.toml，它会签名推送到每个厂区；"
            "在此之前各厂按临时日历（无法定节假日）判定，并在每一天和每个案件上标注。",
            f"the {', '.join(str(y) for y in missing)} public holidays are not published: once the State Council's "
            f"notice is out, write it as TOML (docs/operations.md) and run 'punchproof cloud calendar set-year "
            f"{missing[-1]} FILE.toml', which pushes it signed to every plant; until then the plants use a provisional "
            "calendar (no public holidays) and flag every day and case resting on it.",
        )


def _ago(now_ms: int, then_ms: int | None) -> str:
    return "never" if then_ms is None else f"{(now_ms - then_ms) // 60000} min ago"
