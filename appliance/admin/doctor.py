"""``punchproof appliance doctor``: is this Pi able to do its job, and if not, what to do.

Each check looks at one thing a plant's IT person can fix (the clock, the disk, the database,
the keys and registration, the broker, the terminals, the backlog, the statutory calendar of a
year starting within 60 days) and says what is wrong and
what to do, in Chinese first, then English. It only reads: the database is opened read-only,
the broker gets a connection of its own (never the daemon's client id), a terminal only a TCP
connect, so it is safe to run while the daemon runs.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from appliance.capture.logcheck import LogDamaged, check_latest_checkpoint, rotation_keys
from appliance.clock import Clock, SystemClock, to_ms
from appliance.config import (
    AdmsTerminalSettings,
    CardReaderSettings,
    ConfigError,
    R30xReaderSettings,
    Settings,
    TerminalSettings,
)
from appliance.rules import RulesError, package_calendar, parse_overrides, with_overrides
from appliance.rules.calendar_cn import unpublished_years
from appliance.runtime.daemonlock import daemon_running
from appliance.timesync import kernel_clock_status
from ledger import Malformed, SigningKey
from opskit.doctor import FAIL, OK, WARN, Finding, broker_finding, check_disk, run_command
from opskit.mqttprobe import probe_broker
from opskit.sqlite_check import quick_check

CLOCK_MAX_ERROR_US = 1_000_000  # a punch time off by more than a second is worth saying


@dataclass(frozen=True)
class Limits:
    min_free_bytes: int = 500 * 1024 * 1024  # below this, the daemon may stop storing punches
    backlog_warn_s: float = 300.0  # records unsent this long: the uplink is having trouble
    backlog_fail_s: float = 3600.0
    connect_timeout_s: float = 3.0


class ApplianceDoctor:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        limits: Limits = Limits(),
        clock_status: Callable[[], dict[str, int | str]] = kernel_clock_status,
        command: Callable[[list[str]], str | None] = run_command,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.limits = limits
        self._clock_status = clock_status
        self._command = command

    def run(self) -> list[Finding]:
        return [
            self.check_clock(),
            self.check_disk(),
            self.check_database(),
            self.check_log(),
            self.check_keys(),
            self.check_registration(),
            self.check_broker(),
            *self.check_terminals(),
            self.check_backlog(),
            self.check_calendar(),
        ]

    # -- the machine ----------------------------------------------------------------------
    def check_clock(self) -> Finding:
        name = "时钟同步 clock"
        status = self._clock_status()
        chrony = self._command(["chronyc", "-n", "tracking"])
        said = ""
        if chrony:
            said = next((line.split(":", 1)[1].strip() for line in chrony.splitlines() if "System time" in line), "")
        elif (timedatectl := self._command(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])) is not None:
            said = f"timedatectl NTPSynchronized={timedatectl.strip()}"
        detail = f"max error {int(status['err_us']) / 1000:.0f} ms" + (f"; chrony: {said}" if said else "")
        if not status["sync"]:
            return Finding(
                name,
                FAIL,
                "the system clock is not synchronised" + (f" ({said})" if said else ""),
                "安装并启用 chrony：sudo apt-get install chrony；在 /etc/chrony/chrony.conf 写入能访问的 NTP 服务器"
                "（如 ntp.aliyun.com、cn.pool.ntp.org 或厂内 NTP），sudo systemctl restart chrony，"
                "再用 chronyc tracking 查看。"
                "时钟未同步时打卡仍会保存，但记录会标明时间不可靠。",
                "install and enable chrony (sudo apt-get install chrony), list NTP servers this Pi can reach in "
                "/etc/chrony/chrony.conf (ntp.aliyun.com, cn.pool.ntp.org or the plant's own), "
                "sudo systemctl restart chrony, then check with chronyc tracking. Punches are still stored, "
                "marked as taken with an unsynchronised clock.",
            )
        if int(status["err_us"]) > CLOCK_MAX_ERROR_US:
            return Finding(
                name,
                WARN,
                f"synchronised, but the kernel's maximum error is {detail}",
                "NTP 服务器太远或网络不稳定：在 chrony.conf 中加入更近的服务器（厂内或同城）。",
                "the NTP servers are far or the link is poor: add a closer server (the plant's own) to chrony.conf.",
            )
        return Finding(name, OK, f"synchronised, {detail}")

    def check_disk(self) -> Finding:
        return check_disk(
            self.settings.state_dir,
            self.limits.min_free_bytes,
            "空间不足时将无法保存打卡。删除无用文件（sudo journalctl --vacuum-size=100M，旧备份），"
            "或换更大的存储卡后用 punchproof appliance backup / restore 迁移。",
            "when the disk fills, punches can no longer be stored. Free space (sudo journalctl --vacuum-size=100M, "
            "old backups) or move to a larger card with 'punchproof appliance backup' and 'restore'.",
        )

    # -- the database, keys and registration -------------------------------------------------
    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        """Read-only, so the doctor never creates, migrates or locks the daemon's database."""
        conn = sqlite3.connect(f"file:{self.settings.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def check_database(self) -> Finding:
        name = "数据库 database"
        path = self.settings.db_path
        if not path.exists():
            return Finding(
                name,
                FAIL,
                f"{path} does not exist",
                "尚未初始化：运行 punchproof appliance init，或从备份恢复（punchproof appliance restore）。",
                "not set up: run 'punchproof appliance init', or restore a backup ('punchproof appliance restore').",
            )
        try:
            result = quick_check(path, timeout=10)
        except sqlite3.DatabaseError as err:  # opening it failed
            result = [str(err)]
        if result != ["ok"]:
            return Finding(
                name,
                FAIL,
                f"{path} is damaged: {'; '.join(result[:3])}",
                "停止服务（sudo systemctl stop punchproof-appliance），保留损坏的文件，用最近的备份恢复"
                "（punchproof appliance restore），并联系支持：云端保有已确认的记录。",
                "stop the daemon (sudo systemctl stop punchproof-appliance), keep the damaged file, restore the "
                "latest backup ('punchproof appliance restore') and call support: the cloud holds every acknowledged "
                "record.",
            )
        return Finding(name, OK, f"{path}: quick_check ok, {path.stat().st_size // 1024} KiB")

    def check_log(self) -> Finding:
        """The latest signed checkpoint against the log, re-hashed from genesis in one read snapshot."""
        name = "签名日志 signed log"
        if not self.settings.db_path.exists():
            return Finding(name, FAIL, "no database", "见上一项。", "see the database finding above.")
        keys = []
        try:
            keys.append(SigningKey.load(self.settings.key_path).verify_key)
        except (OSError, Malformed):
            pass  # the keys finding says what is wrong with it; the root is checked all the same
        conn = sqlite3.connect(f"file:{self.settings.db_path}?mode=ro", uri=True, timeout=10)
        try:
            checked = check_latest_checkpoint(conn, keys=keys + rotation_keys(conn))
        except LogDamaged as err:
            return Finding(
                name,
                FAIL,
                str(err),
                "签名日志与其最新检查点不符，守护进程不会再追加记录。停止服务（sudo systemctl stop "
                "punchproof-appliance），保留数据库文件，用最近的备份恢复（punchproof appliance restore）并联系支持："
                "云端保有已确认的记录。",
                "the signed log does not match its latest checkpoint, and the daemon will not extend it. Stop the "
                "service, keep the database file, restore the latest backup ('punchproof appliance restore') and "
                "call support: the cloud holds every acknowledged record.",
            )
        except sqlite3.DatabaseError as err:
            return Finding(name, FAIL, f"cannot read the log: {err}", "先修复数据库。", "fix the database first.")
        finally:
            conn.close()
        if not checked.checkpoint:
            return Finding(name, OK, f"{checked.records} records, no checkpoint yet")
        return Finding(
            name,
            OK,
            f"{checked.records} records; the latest checkpoint (size {checked.checkpoint}) matches the log "
            f"re-hashed from genesis; signature {checked.signature}",
        )

    def check_keys(self) -> Finding:
        name = "密钥 keys"
        path = self.settings.key_path
        try:
            key = SigningKey.load(path)
        except FileNotFoundError:
            return Finding(
                name,
                FAIL,
                f"no log-signing key at {path}",
                "签名密钥丢失：若有备份请恢复；否则按“更换被盗或损坏的设备”操作（docs/operations.md），不要自行生成新密钥。",
                "the log-signing key is gone: restore it from a backup, or follow 'replacing a stolen or broken Pi' "
                "in docs/operations.md; do not just generate a new one.",
            )
        except (OSError, Malformed) as err:
            return Finding(
                name,
                FAIL,
                f"{path} cannot be read: {err}",
                "检查文件权限：sudo chown punchproof: 该文件，chmod 600。",
                "check its ownership and mode: sudo chown punchproof: FILE; chmod 600 FILE.",
            )
        problems = []
        if path.stat().st_mode & 0o077:
            problems.append(f"{path} is readable by others (chmod 600 it)")
        try:
            self.settings.cloud_key()
        except ConfigError as err:
            problems += err.problems
        if problems:
            return Finding(
                name,
                FAIL,
                "; ".join(problems),
                "密钥文件只能由 punchproof 用户读取（chmod 600）；"
                "mqtt.cloud_key_file 须指向总部提供的 cloud-witness.pub。",
                "the key file must be readable by the punchproof user only (chmod 600); mqtt.cloud_key_file must name "
                "the cloud-witness.pub head office gave you.",
            )
        return Finding(name, OK, f"log-signing key {key.kid}; cloud key {self.settings.mqtt.cloud_key_file}")

    def check_registration(self) -> Finding:
        name = "云端登记 registration"
        try:
            ((acked, acked_at, error),) = self._read("SELECT acked_seq, acked_at_ms, last_error FROM sync_state")
            head = self._read("SELECT max(seq) FROM log_record")[0][0]
        except sqlite3.Error as err:
            return Finding(
                name, FAIL, f"cannot read the sync state: {err}", "先修复数据库。", "fix the database first."
            )
        waiting = 0 if head is None else head - acked
        if acked_at is None and not waiting:
            return Finding(
                name,
                WARN,
                "nothing recorded or sent yet: the daemon has not run",
                "启动服务：sudo systemctl enable --now punchproof-appliance，再运行本检查。",
                "start the daemon (sudo systemctl enable --now punchproof-appliance) and run this check again.",
            )
        if acked_at is None:
            return Finding(
                name,
                FAIL,
                f"the cloud has never acknowledged a record ({waiting} waiting)" + (f": {error}" if error else ""),
                "把本机的身份文件（punchproof appliance identity -o pi.json）交给总部，由总部运行 "
                "punchproof cloud register-appliance pi.json；并确认 mqtt.cloud_key_file 是总部的 cloud-witness.pub。",
                "give head office this appliance's identity file ('punchproof appliance identity -o pi.json') to run "
                "'punchproof cloud register-appliance pi.json', and check that mqtt.cloud_key_file is head office's "
                "cloud-witness.pub.",
            )
        age = (to_ms(self.clock.now()) - acked_at) / 1000
        detail = f"acknowledged up to seq {acked}, last {age:.0f} s ago"
        if error:
            return Finding(
                name,
                FAIL if "restored from an old backup" in error or "different record" in error else WARN,
                f"{detail}; sync error: {error}",
                "按上面的错误处理；若提示“不同的记录/从旧备份恢复”，请勿再次恢复，联系支持（docs/operations.md）。",
                "act on the error above; if it says the cloud holds a different record (an old backup restored), do "
                "not restore again and call support (docs/operations.md).",
            )
        return Finding(name, OK, detail)

    # -- the network ------------------------------------------------------------------------
    def check_broker(self) -> Finding:
        cfg = self.settings.mqtt
        if daemon_running(self.settings):
            return self._broker_as_the_daemon_sees_it()
        error = probe_broker(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            tls=cfg.tls,
            ca_file=cfg.ca_file,
            client_id=f"pp-doctor-{self.settings.plant.id}-{self.settings.appliance.id}-{os.getpid()}",
            timeout=self.limits.connect_timeout_s,
        )
        return broker_finding(
            cfg.host,
            cfg.port,
            error,
            "网络不通时检查本机能否访问该地址和端口（防火墙、路由）；被拒绝时核对 [mqtt] username/password，"
            "或请总部检查该账号（docs/broker-security.md）。断网期间打卡照常保存，恢复后自动上传。",
            "if unreachable, check that this Pi can reach that host and port (firewall, routing); if refused, check "
            "[mqtt] username and password or ask head office about the account (docs/broker-security.md). Punches are "
            "stored meanwhile and sent when the link is back.",
        )

    def _broker_as_the_daemon_sees_it(self) -> Finding:
        """While the daemon runs, its own connection is the answer. The broker takes one login per appliance
        (``use_username_as_clientid``): a second one from here would disconnect the daemon."""
        name = "消息服务器 broker"
        cfg = self.settings.mqtt
        try:
            ((connected, error),) = self._read("SELECT connected, last_error FROM sync_state")
        except (sqlite3.Error, ValueError) as err:
            return Finding(name, WARN, f"the daemon runs; its connection state cannot be read: {err}", "", "")
        where = f"{cfg.host}:{cfg.port}"
        if connected:
            return Finding(
                name, OK, f"{where}: the running daemon is connected (not probed again: it would cut the daemon off)"
            )
        return Finding(
            name,
            FAIL,
            f"{where}: the running daemon is not connected" + (f": {error}" if error else ""),
            "网络不通时检查本机能否访问该地址和端口（防火墙、路由）；被拒绝时核对 [mqtt] username/password，"
            "或请总部检查该账号（docs/broker-security.md）。断网期间打卡照常保存，恢复后自动上传。",
            "if unreachable, check that this Pi can reach that host and port (firewall, routing); if refused, check "
            "[mqtt] username and password or ask head office about the account (docs/broker-security.md). Punches are "
            "stored meanwhile and sent when the link is back.",
        )

    def check_terminals(self) -> list[Finding]:
        findings = []
        timeout = self.limits.connect_timeout_s
        for terminal in self.settings.terminals:
            name = f"考勤机 terminal {terminal.name}"
            if isinstance(terminal, TerminalSettings):
                if terminal.udp:
                    findings.append(Finding(name, OK, f"{terminal.host}:{terminal.port}/udp (not probed: UDP)"))
                    continue
                try:
                    socket.create_connection((terminal.host, terminal.port), timeout=timeout).close()
                except OSError as err:
                    findings.append(
                        Finding(
                            name,
                            FAIL,
                            f"{terminal.host}:{terminal.port}: {err.strerror or err}",
                            "检查考勤机电源和网线，在考勤机菜单“通讯设置”中核对 IP 地址与端口（默认 4370），"
                            "并 ping 该地址。",
                            "check the terminal's power and cable, its IP address and port (default 4370) in its "
                            "'Comm.' menu, and ping it from this Pi.",
                        )
                    )
                    continue
                findings.append(Finding(name, OK, f"{terminal.host}:{terminal.port} answers"))
                findings += self._enrolment(terminal.name)
            elif isinstance(terminal, CardReaderSettings | R30xReaderSettings):
                findings.append(self._serial(name, terminal.url))
            elif isinstance(terminal, AdmsTerminalSettings):
                findings.append(self._pushed(name, terminal))
                findings += self._enrolment(terminal.name)
        return findings

    def _enrolment(self, terminal: str) -> list[Finding]:
        """The roster and fingers the daemon could not write to a terminal at its last try (docs/enrolment.md)."""
        try:
            rows = self._read("SELECT last_error FROM enrolment_state WHERE terminal = ?", (terminal,))
        except sqlite3.Error:
            return []
        if not rows or not rows[0][0]:
            return []
        return [
            Finding(
                f"名单与指纹同步 enrolment {terminal}",
                WARN,
                f"not done, tried again at each poll: {rows[0][0]}",
                "考勤机在线但拒绝写入时：检查考勤机存储是否已满、是否有人正在其菜单中操作；仍失败请联系支持"
                "（docs/enrolment.md）。打卡不受影响。",
                "when the terminal answers but refuses the writes: check whether its memory is full or someone is "
                "using its menu; if it goes on, call support (docs/enrolment.md). Punches are not affected.",
            )
        ]

    def _serial(self, name: str, url: str) -> Finding:
        if url.startswith("socket://"):
            host, _, port = url.removeprefix("socket://").rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=self.limits.connect_timeout_s).close()
            except (OSError, ValueError) as err:
                return Finding(
                    name,
                    FAIL,
                    f"{url}: {err}",
                    "检查串口服务器的电源、网线和 IP 端口设置。",
                    "check the serial server's power, cable and its IP and port.",
                )
            return Finding(name, OK, f"{url} answers")
        if not os.access(url, os.R_OK | os.W_OK):
            why = "does not exist" if not os.path.exists(url) else "is not readable and writable by this user"
            return Finding(
                name,
                FAIL,
                f"{url} {why}",
                "检查读卡器的 USB 线；ls -l /dev/serial/by-id/ 查看实际设备名；punchproof 用户须在 dialout 组"
                "（sudo usermod -aG dialout punchproof）。",
                "check the reader's USB cable; 'ls -l /dev/serial/by-id/' shows the real device name; the punchproof "
                "user must be in group dialout (sudo usermod -aG dialout punchproof).",
            )
        return Finding(name, OK, f"{url} present")

    def _pushed(self, name: str, terminal: AdmsTerminalSettings) -> Finding:
        try:
            rows = self._read("SELECT last_contact_ms FROM terminal_health WHERE name = ?", (terminal.name,))
        except sqlite3.Error:
            rows = []
        contact = rows[0][0] if rows else None
        if contact is None:
            return Finding(
                name,
                FAIL,
                f"serial {terminal.serial} has never called in",
                "在考勤机菜单“云服务器设置”中填写本机地址和 [push] 端口，并核对序列号。",
                "set this Pi's address and the [push] port in the terminal's 'Cloud server' menu; check the serial.",
            )
        age = (to_ms(self.clock.now()) - contact) / 1000
        return Finding(
            name, OK if age < 600 else WARN, f"last request {age:.0f} s ago", "检查考勤机网络。", "check its network."
        )

    # -- the backlog ------------------------------------------------------------------------
    def check_backlog(self) -> Finding:
        name = "待上传 backlog"
        try:
            head = self._read("SELECT max(seq) FROM log_record")[0][0]
            acked = self._read("SELECT acked_seq FROM sync_state")[0][0]
            oldest = self._read("SELECT t_wall_ms FROM log_record WHERE seq = ?", (acked + 1,))
        except sqlite3.Error as err:
            return Finding(name, FAIL, f"cannot read the log: {err}", "先修复数据库。", "fix the database first.")
        waiting = 0 if head is None else head - acked
        if not waiting or not oldest:
            return Finding(name, OK, "every record acknowledged by the cloud")
        age = (to_ms(self.clock.now()) - oldest[0][0]) / 1000
        detail = f"{waiting} record(s) not yet acknowledged, the oldest {age / 60:.0f} min old"
        status = FAIL if age > self.limits.backlog_fail_s else WARN if age > self.limits.backlog_warn_s else OK
        return Finding(
            name,
            status,
            detail,
            "记录都安全保存在本机；请按上面的“消息服务器/云端登记”检查处理，连通后会自动补传。",
            "the records are safe on this Pi; fix what the broker and registration checks above say and they are "
            "sent automatically.",
        )

    def check_calendar(self) -> Finding:
        """The calendar the evaluator uses (package, head office's years, the plant's file) covers this year and,
        60 days ahead, the next: else its days are judged by the provisional calendar, and flagged."""
        name = "法定节假日 statutory calendar"
        calendar = package_calendar()
        try:
            rows = self._read("SELECT id, text, source FROM calendar_file WHERE text != '' ORDER BY id DESC")
        except sqlite3.Error as err:
            return Finding(name, FAIL, f"cannot read the calendar: {err}", "先修复数据库。", "fix the database first.")
        for _row_id, text, source in rows:  # 2: head office's, then 1: the plant's own file over it
            try:
                calendar = with_overrides(calendar, parse_overrides(text, source=source or "calendar_file"))
            except RulesError as err:
                return Finding(
                    name,
                    WARN,
                    f"ignored: {err}",
                    "用 punchproof appliance import-calendar 重新导入本厂日历文件，或请总部重新推送配置。",
                    "import the plant's calendar file again ('punchproof appliance import-calendar'), or ask head "
                    "office to push the configuration again.",
                )
        today = self.clock.now().astimezone(self.settings.plant.tz).date()
        missing = unpublished_years(calendar, today)
        detail = f"{calendar.version}, covers up to {max(calendar.covered_years)}"
        if not missing:
            return Finding(name, OK, detail)
        years = ", ".join(str(y) for y in missing)
        return Finding(
            name,
            WARN,
            f"{years} not published ({detail}): its days are judged by a provisional calendar (no public holidays) "
            "and flagged 临时日历",
            f"{'、'.join(str(y) for y in missing)} 年节假日安排尚未发布到本机：请总部在国务院通知公布后运行 "
            f"punchproof cloud calendar set-year {missing[-1]}，配置会签名推送到本机；"
            "在此之前按临时日历（无法定节假日）判定，并在每一天和每个案件上标注。",
            f"the {years} public holidays have not reached this appliance: ask head office to run 'punchproof cloud "
            f"calendar set-year {missing[-1]}' once the State Council's notice is out; it is pushed here signed. Until "
            "then days are judged by a provisional calendar (no public holidays) and flagged on every day and case.",
        )
